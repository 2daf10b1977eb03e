package control

import (
	"math"
	"testing"
	"time"
)

// TestOriginShare: the share a plan assumes is the largest of the hour's,
// NaN minutes skipped, bounded below by minOriginShare and above by 1, and
// 1 when nothing is known.
func TestOriginShare(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 1},
		{[]float64{nan, nan}, 1},
		{[]float64{0.1, 0.3, 0.2}, 0.3},
		{[]float64{nan, 0.25}, 0.25},
		{[]float64{0.001}, minOriginShare},
		{[]float64{1.4, 0.9}, 1},
	} {
		if got := originShare(tc.in); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("originShare(%v) = %v, want %v", tc.in, got, tc.want)
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
