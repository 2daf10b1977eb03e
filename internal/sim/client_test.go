package sim

import (
	"fmt"
	"testing"
	"time"
)

// TestSessionAbandonment: a visitor whose answer comes later than
// abandon_after leaves (a drop-off): it sends nothing more, is not retried
// and never checks out; an answer exactly at the limit keeps it. Every
// session looks (a fast request, 3ms) and then buys (a slow one, 300ms),
// on a replica with room for all, so latencies are exact.
func TestSessionAbandonment(t *testing.T) {
	cases := []struct {
		name    string
		abandon time.Duration
		// what every session that finished did
		requests int  // sent per session
		dropOff  bool // left
	}{
		{"patient", 5 * time.Second, 2, false},
		{"exactly the slow answer's wait", 300 * time.Millisecond, 2, false},
		{"a nanosecond less", 300*time.Millisecond - 1, 2, true},
		{"not even the fast answer", 2 * time.Millisecond, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := mustParse(t, fmt.Sprintf(`
duration: 1m
load: {rate: 20}
clients:
  mode: sessions
  think: 0s
  abandon_after: %v
  funnel:
    - {name: look, reach: 1, requests: [{service: a, class: look}]}
    - {name: buy, reach: 1, requests: [{service: a, class: buy}], retries: 2}
services:
  - name: a
    workers: 1000
    queue: -1
    service_time: {mean: 300ms, dist: constant}
    classes: [{name: look, cost: 0.01}, {name: buy}]
`, tc.abandon))
			pr := run(t, sc, "round_robin", 1)
			tot := pr.Totals
			// Sessions started in the last 0.3s may still be walking.
			const unfinished = 13 // 10 sessions/s × 0.31s, with ample slack
			if tot.Sessions < 500 {
				t.Fatalf("%d sessions: the scenario does not work", tot.Sessions)
			}
			if tot.ClientRetries != 0 || tot.Errors+tot.Sheds+tot.Timeouts != 0 {
				t.Errorf("%d client retries, %d failures: abandoning is neither", tot.ClientRetries, tot.Errors+tot.Sheds+tot.Timeouts)
			}
			if tc.dropOff {
				if tot.Checkouts != 0 || tot.DropOffs < tot.Sessions-unfinished {
					t.Errorf("%d sessions: %d drop-offs, %d checkouts; want every session to leave", tot.Sessions, tot.DropOffs, tot.Checkouts)
				}
			} else if tot.DropOffs != 0 || tot.Checkouts < tot.Sessions-unfinished {
				t.Errorf("%d sessions: %d drop-offs, %d checkouts; want none to leave", tot.Sessions, tot.DropOffs, tot.Checkouts)
			}
			sent := tot.Requests + tot.Unfinished
			if want := int64(tc.requests) * tot.Sessions; sent > want || sent < want-2*unfinished {
				t.Errorf("%d requests for %d sessions, want %d per session", sent, tot.Sessions, tc.requests)
			}
		})
	}
}
