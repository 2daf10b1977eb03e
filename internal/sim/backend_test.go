package sim

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestCacheHitDependsOnWarmth: a request is a cache hit (hit_cost of the
// service time) when its uniform draw u is below hit_ratio × (1 −
// exp(−served/warm_requests)), served being the answers the replica gave
// since it (re)started; the replicas present at the start are warm.
func TestCacheHitDependsOnWarmth(t *testing.T) {
	const full = float64(10 * time.Millisecond)
	cases := []struct {
		name   string
		cache  string
		served int64 // -1: an initial replica, as it is
		u      float64
		want   float64 // service time
	}{
		{"cold: never a hit", "{hit_ratio: 0.6}", 0, 0, full},
		{"warm_requests answers: below 0.6·(1−1/e)", "{hit_ratio: 0.6}", 1000, 0.379, full / 10},
		{"warm_requests answers: above it", "{hit_ratio: 0.6}", 1000, 0.3795, full},
		{"three time constants: below", "{hit_ratio: 0.6}", 3000, 0.5701, full / 10},
		{"three time constants: above", "{hit_ratio: 0.6}", 3000, 0.5702, full},
		{"fully warm: below the hit ratio", "{hit_ratio: 0.6}", 800_000, 0.5999999, full / 10},
		{"fully warm: at the hit ratio", "{hit_ratio: 0.6}", 800_000, 0.6, full},
		{"an initial replica is warm", "{hit_ratio: 0.6}", -1, 0.5999999, full / 10},
		{"an initial replica, a miss", "{hit_ratio: 0.6}", -1, 0.6, full},
		{"hit_cost", "{hit_ratio: 0.6, hit_cost: 0.25}", -1, 0.1, full / 4},
		{"warm_requests", "{hit_ratio: 0.6, warm_requests: 10}", 10, 0.379, full / 10},
		{"no hits without a hit ratio", "{hit_ratio: 0}", -1, 0, full},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := mustParse(t, fmt.Sprintf(`
duration: 1m
clients: {mode: requests}
load: {rate: 1}
services: [{name: a, service_time: {mean: 10ms, dist: constant}, cache: %s}]
`, tc.cache))
			s, err := New(sc, Options{Policy: "round_robin"})
			if err != nil {
				t.Fatal(err)
			}
			svc := s.services[0]
			rep := svc.reps[0]
			if tc.served >= 0 {
				rep.served = tc.served
			}
			r := s.allocRequest()
			r.route = svc.routes[0]
			r.work = svc.drawService(s.workRng)
			r.u = tc.u
			a := s.allocAttempt()
			a.req, a.rt, a.rep = r, r.route, rep
			rep.start(a, s.now())
			got := math.NaN()
			for _, ev := range s.eng.heap.ev {
				if ev.h == handler(a) {
					got = float64(ev.at - s.now())
				}
			}
			if math.Abs(got-tc.want) > 1 {
				t.Errorf("served %d, u %v: service time %v, want %v", rep.served, tc.u, time.Duration(got), time.Duration(tc.want))
			}
		})
	}
}

// TestCacheWarmsWithTraffic: end to end, a restarted replica's cache is
// empty, so its requests cost more (a higher utilisation for the same
// load) until its answers warm it again.
func TestCacheWarmsWithTraffic(t *testing.T) {
	sc := mustParse(t, `
duration: 3m
clients: {mode: requests}
load: {rate: 50}
proxies: {health: {outlier: {disabled: true}}}
failures: [{service: a, replicas: [0], at: 1m, for: 1s}]
services:
  - name: a
    workers: 1
    queue: -1
    queue_timeout: 0s
    service_time: {mean: 10ms, dist: constant}
    cache: {hit_ratio: 0.6, hit_cost: 0.1, warm_requests: 500}
`)
	pr := run(t, sc, "round_robin", 1)
	u := func(m int) float64 { return pr.Minutes[m].Services[0].UtilMean }
	// Warm: 50/s × 10ms × (1 − 0.6·0.9) = 0.23; after the restart the hit
	// ratio climbs with a time constant of 500 answers (10s): about 0.275
	// over the minute.
	t.Logf("utilisation per minute: %.3f %.3f %.3f", u(0), u(1), u(2))
	if math.Abs(u(0)-0.23) > 0.015 {
		t.Errorf("minute 0: utilisation %.3f, want 0.23 (a warm cache)", u(0))
	}
	if u(1) < u(0)+0.03 {
		t.Errorf("minute 1, after the restart: utilisation %.3f, not clearly above the warm %.3f", u(1), u(0))
	}
	if math.Abs(u(2)-u(0)) > 0.015 {
		t.Errorf("minute 2: utilisation %.3f, want the warm %.3f again", u(2), u(0))
	}
}
