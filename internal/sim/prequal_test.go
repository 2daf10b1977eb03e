package sim

import (
	"testing"
	"time"

	"github.com/lbsys/lbsys/scenarios"
)

// heterogeneous loads scenarios/heterogeneous.yaml scaled to n replicas
// and n proxies, with load steps (and metric windows) of each.
func heterogeneous(t testing.TB, n int, each time.Duration) *Scenario {
	t.Helper()
	data, err := scenarios.Read("heterogeneous")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(data, "heterogeneous.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Proxies.Count = n
	svc := &sc.Services[0]
	svc.Replicas = n
	// A few replicas drawn from speed_range would make the slowest one a
	// matter of luck; spread them evenly over the range instead, so the
	// reduced testbed keeps the full one's slowest and fastest machines.
	r := svc.SpeedRange
	svc.Speeds = make([]float64, n)
	for i := range svc.Speeds {
		svc.Speeds[i] = r.Min + (r.Max-r.Min)*float64(i)/float64(n-1)
	}
	svc.SpeedRange = nil
	sc.Load.Steps.Each = each
	sc.Window = each
	sc.Duration = time.Duration(sc.Load.Steps.Count) * each
	return sc
}

// stepLevel is the load of step i as a multiple of the allocated capacity.
func stepLevel(sc *Scenario, i int) float64 {
	s := sc.Load.Steps
	return s.From + (s.To-s.From)*float64(i)/float64(s.Count-1)
}

// TestHeterogeneousPrequalDegradesGracefully reproduces the qualitative
// result of the Prequal paper's testbed (NSDI'24, section 5): under a load
// ramp on heterogeneous, antagonist-shared replicas, round-robin's tail
// reaches the deadline near 1x the allocated capacity, while Prequal's
// grows slowly and stays far below it up to 1.74x.
func TestHeterogeneousPrequalDegradesGracefully(t *testing.T) {
	n, each := 30, 10*time.Second
	if testing.Short() || raceEnabled {
		n = 8
	}
	sc := heterogeneous(t, n, each)
	deadline := float64(sc.Proxies.Timeout) / 1e6
	rr := run(t, sc, "round_robin", 1)
	pq := run(t, sc, "prequal", 1)
	rrHit := -1.0
	for i := range rr.Minutes {
		lvl := stepLevel(sc, i)
		r, p := rr.Minutes[i].Services[0], pq.Minutes[i].Services[0]
		t.Logf("load %.2fx: round_robin p99.9 %7.1f ms (%5d timeouts)  prequal p99.9 %6.1f ms (%d timeouts)",
			lvl, r.P999Ms, r.Timeouts, p.P999Ms, p.Timeouts)
		if rrHit < 0 && r.P999Ms >= 0.9*deadline {
			rrHit = lvl
		}
		if p.P999Ms > deadline/4 || p.Timeouts > 0 {
			t.Errorf("load %.2fx: prequal p99.9 %.1f ms with %d timeouts: not graceful (deadline %.0f ms)", lvl, p.P999Ms, p.Timeouts, deadline)
		}
	}
	switch {
	case rrHit < 0:
		t.Errorf("round_robin's p99.9 never reached the %.0f ms deadline", deadline)
	case rrHit < 0.9 || rrHit > 1.15:
		t.Errorf("round_robin's p99.9 reached the deadline at %.2fx, want near 1x (0.9..1.15)", rrHit)
	default:
		t.Logf("round_robin's p99.9 reaches the deadline at %.2fx load", rrHit)
	}
}
