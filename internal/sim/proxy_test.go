package sim

import (
	"math"
	"testing"
)

// TestReqFIFODropDone: answered requests leave the head of the deadline
// ring at once; the first one still in flight, and everything behind it,
// stays.
func TestReqFIFODropDone(t *testing.T) {
	s := &Sim{}
	var q reqFIFO
	var reqs []*request
	for range 40 { // more than the initial ring, so it grows and wraps
		r := s.allocRequest()
		reqs = append(reqs, r)
		q.push(r)
	}
	finish := func(i int) { s.freeRequest(reqs[i]) }
	for i := range 10 {
		finish(i)
	}
	reqs[12].done = true // answered but not yet recycled
	finish(13)
	q.dropDone()
	if r, _, _ := q.peek(); q.size != 30 || r != reqs[10] {
		t.Fatalf("after dropping 10 answered requests: %d left, head %p, want 30 and %p", q.size, r, reqs[10])
	}
	finish(10)
	finish(11)
	q.dropDone()
	if r, _, _ := q.peek(); q.size != 26 || r != reqs[14] {
		t.Fatalf("%d left, want 26 from the 15th (the 13th is done, the 14th recycled)", q.size)
	}
	for i := 14; i < 40; i++ {
		finish(i)
	}
	q.dropDone()
	if q.size != 0 {
		t.Fatalf("%d left after every request was answered", q.size)
	}
}

// TestDeadlinesBesideFastAnswers: a request past the proxy's deadline is
// answered 504 at the deadline even while the requests around it are
// answered quickly (their answers must not take the slow ones' deadlines
// with them). Round-robin alternates a normal replica and one a thousand
// times slower, whose every request outlives the 1s deadline.
func TestDeadlinesBesideFastAnswers(t *testing.T) {
	sc := mustParse(t, `
duration: 1m
clients: {mode: requests}
load: {rate: 100}
proxies: {timeout: 1s, retries: {attempts: 0}, health: {outlier: {disabled: true}}}
services:
  - name: a
    replicas: 2
    speeds: [1, 0.001]
    workers: 1000
    queue: -1
    queue_timeout: 0s
    service_time: {mean: 10ms, dist: constant}
`)
	pr := run(t, sc, "round_robin", 1)
	st := pr.Services[0]
	half := float64(pr.Totals.Requests+pr.Totals.Unfinished) / 2
	if math.Abs(float64(st.Timeouts)-half) > 100 || math.Abs(float64(st.OK)-half) > 100 {
		t.Errorf("%d timeouts and %d answers of %d requests: want half each", st.Timeouts, st.OK, st.Requests)
	}
	if st.P999Ms < 1000 || st.P999Ms > 1010 {
		t.Errorf("p99.9 %.1f ms, want the 1s deadline", st.P999Ms)
	}
	// Nothing waits much past its deadline at the end.
	if pr.Totals.Unfinished > 110 {
		t.Errorf("%d requests unfinished: deadlines lost", pr.Totals.Unfinished)
	}
}
