package control

import (
	"math"
	"testing"
	"time"
)

// TestOriginShare: the share a plan assumes counts requests, not
// minutes: the hour's, or its last minutes' when the cache is colder now;
// bounded below by minOriginShare and above by 1, and 1 when nothing is
// known.
func TestOriginShare(t *testing.T) {
	m := func(answered, served float64) originMinute { return originMinute{answered: answered, served: served} }
	steady := func(n int, answered, served float64) []originMinute {
		out := make([]originMinute, n)
		for i := range out {
			out[i] = m(answered, served)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []originMinute
		want float64
	}{
		{"nothing known", nil, 1},
		{"no request", []originMinute{{}, {}}, 1},
		{"weighted by requests", []originMinute{m(10, 3), m(90, 9)}, 0.12},
		// A cold start 50 minutes ago: 5 minutes at 0.5, 45 at 0.1, same
		// rate: the hour's share 0.133, not the cold minutes' 0.5.
		{"old cold start", append(steady(5, 100, 50), steady(45, 100, 10)...), (5*50 + 45*10) / 5000.0},
		// The last 10 minutes at 0.4 after 50 at 0.1: the recent share.
		{"colder now", append(steady(50, 100, 10), steady(10, 100, 40)...), 0.4},
		// One quiet minute at 0.5 among busy ones at 0.1 (the last: the
		// recent share, 0.102): hardly counts.
		{"a quiet unlucky minute", append(steady(59, 100, 10), m(4, 2)), (9*10 + 2) / (900 + 4.0)},
		{"floor", []originMinute{m(1000, 1)}, minOriginShare},
		{"ceiling", []originMinute{m(100, 140), m(100, 90)}, 1},
	} {
		if got := originShare(tc.in); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: originShare = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCachedServiceCapacityInReceivedRequests: a service whose proxies
// answer nine requests in ten from their caches shows each replica taking
// a tenth of what the proxies receive; the scaler input's capacity is in
// received requests (10× what a replica answers), so a forecast of
// received requests is not planned as if every request reached a replica.
// Without a cache (every answered request reached a replica) it stays as
// learned.
func TestCachedServiceCapacityInReceivedRequests(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	perReplica := func(served float64) float64 {
		c := newCommon("test", Setup{Start: start, Step: time.Minute, Services: []ServiceSetup{{Name: "catalog", Min: 1, Max: 20}}})
		for i := 1; i <= 30; i++ {
			c.observe(Minute{At: start.Add(time.Duration(i) * time.Minute), Services: []ServiceMinute{{
				Service: "catalog", RPS: 1000, ServedRPS: served, Ready: 2, Util: 0.5, Answered: served * 60,
			}}})
		}
		return c.input(c.svcs[0], start.Add(31*time.Minute)).PerReplicaRPS
	}
	plain, cached := perReplica(1000), perReplica(100)
	if plain <= 0 || math.Abs(plain-1000) > 1 {
		t.Fatalf("uncached capacity %.1f requests/s a replica, want 1000 (1000 answered by 2 replicas at 50%%)", plain)
	}
	if math.Abs(cached-plain) > 1 {
		t.Errorf("cached service: %.1f received requests/s a replica, want %.1f (100 answered by 2 replicas at 50%%, a tenth of the requests)", cached, plain)
	}
}
