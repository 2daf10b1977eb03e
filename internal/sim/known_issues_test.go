package sim

import (
	"fmt"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/balance/balancetest"
)

// Regressions of the decision code found with the simulator.

// TestRoundRobinProxiesDoNotStartInLockstep: round_robin balancers used to
// start their schedule at the same offset, so N proxy replicas started
// together (a rollout, a scale-out) sent their first requests to the same
// backend, one after the other: a synchronised burst (in the heterogeneous
// testbed with 100 proxies, the first 10s window's p99.9 was about five
// times the steady one). Envoy seeds each WRR instance to desynchronise the
// fleet (envoyproxy/envoy#3271) and grpc-java randomises the start index
// (grpc/grpc-java#4462); our pickers now start at a random point drawn from
// the caller's randomness.
func TestRoundRobinProxiesDoNotStartInLockstep(t *testing.T) {
	f, err := balance.New("round_robin", nil)
	if err != nil {
		t.Fatal(err)
	}
	eps := balancetest.Endpoints(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	first := map[string]int{}
	for i := 0; i < 100; i++ {
		pk, err := f().Update(eps).Pick(&balance.PickInfo{Now: DefaultStart, Rand: balancetest.NewSeeded(uint64(i))})
		if err != nil {
			t.Fatal(err)
		}
		first[pk.Endpoint.ID]++
	}
	if len(first) < 5 {
		t.Errorf("100 fresh round_robin balancers over 10 endpoints picked %d distinct first endpoints (%v); want them spread", len(first), first)
	}

	sc := heterogeneous(t, 100, 10*time.Second)
	sc.Load.Steps.From, sc.Load.Steps.To = 0.75, 0.75
	sc.Services[0].NoisyNeighbours = nil
	sc.Duration = 40 * time.Second
	if raceEnabled || testing.Short() {
		sc.Services[0].Replicas, sc.Proxies.Count = 30, 30
	}
	p999 := func(proxies int) []float64 {
		sc.Proxies.Count = proxies
		var out []float64
		for _, m := range run(t, sc, "round_robin", 1).Minutes {
			out = append(out, m.Services[0].P999Ms)
		}
		return out
	}
	one, many := p999(1), p999(sc.Services[0].Replicas)
	t.Logf("p99.9 per 10s window: one proxy %v, %d proxies %v", one, sc.Services[0].Replicas, many)
	if many[0] > 2*many[len(many)-1] {
		t.Errorf("first window p99.9 %.0f ms with many proxies vs %.0f ms later: a synchronised start (%s)", many[0], many[len(many)-1], fmt.Sprint(first))
	}
}
