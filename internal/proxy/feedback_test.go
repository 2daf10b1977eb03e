package proxy

import (
	"testing"
	"time"
)

// TestFeedbackSteersPeakEWMA checks, end to end, that the proxy reports each
// attempt's outcome to the policy (balance.DoneInfo: Latency, Status,
// Failed): peak_ewma only moves traffic away from an endpoint through that
// feedback. In each case the bad endpoint would win every pick if the
// feedback were lost (it answers at once, or at least faster than the good
// one), so the margins are wide: the bad endpoint gets a handful of the
// requests with feedback and nearly all or half of them without.
//
// Outlier ejection is off so that only the policy can avoid the bad
// endpoint. decay is 1s rather than 10s so that a scheduling hiccup on the
// good endpoint (a peak in its cost) is forgotten within the test.
func TestFeedbackSteersPeakEWMA(t *testing.T) {
	const requests = 100
	cases := []struct {
		name string
		// setup makes bad misbehave and sets good's delay.
		setup func(bad, good *testBackend)
		// retries is the service's retries block.
		retries string
		// status is what the client gets from the bad endpoint.
		status int
		maxBad int64
	}{
		// Latency: the bad endpoint is slow. Without latency feedback
		// every cost stays 0 and the picks split evenly.
		{"latency", func(bad, good *testBackend) {
			bad.delay.Store(int64(50 * time.Millisecond))
		}, "{attempts: 0}", 200, requests / 4},
		// Status: the bad endpoint fails fast with 500s; only the 5xx
		// status multiplies its cost by error_penalty.
		{"status", func(bad, good *testBackend) {
			bad.status.Store(500)
			good.delay.Store(int64(10 * time.Millisecond))
		}, "{attempts: 0}", 500, requests / 5},
		// Status of an attempt that is retried: its Done comes from the
		// retry path, not from the end of the response.
		{"status_retried", func(bad, good *testBackend) {
			bad.status.Store(500)
			good.delay.Store(int64(10 * time.Millisecond))
		}, "{attempts: 1, on: [5xx], backoff_base: 1ms, backoff_max: 1ms}", 200, requests / 5},
		// Failed: the bad endpoint resets the connection at once; there is
		// no status, only Failed marks the attempt.
		{"failed", func(bad, good *testBackend) {
			bad.reset.Store(true)
			good.delay.Store(int64(10 * time.Millisecond))
		}, "{attempts: 0}", 502, requests / 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad, good := newBackend(t, "bad"), newBackend(t, "good")
			c.setup(bad, good)
			px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    policy: {name: peak_ewma, options: {decay: 1s}}
    retries: `+c.retries+`
    health: {outlier: {disabled: true}}
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
`, bad, good))
			for i := 0; i < requests; i++ {
				s, _, h := do(t, "GET", px.url+"/", "", nil)
				want := 200
				if h.Get("X-Backend") != "good" {
					want = c.status
				}
				if s != want {
					t.Fatalf("request %d: status %d from %q, want %d", i, s, h.Get("X-Backend"), want)
				}
			}
			nb, ng := bad.hits.Load(), good.hits.Load()
			t.Logf("bad endpoint: %d requests, good: %d", nb, ng)
			if nb == 0 {
				t.Fatal("the bad endpoint was never tried: nothing was learnt")
			}
			if nb > c.maxBad {
				t.Fatalf("the bad endpoint got %d of %d requests, want at most %d (good got %d)", nb, requests, c.maxBad, ng)
			}
		})
	}
}
