package sim

import (
	"math/rand/v2"
	"time"
)

// The engine is a classic discrete-event loop: a min-heap of timestamped
// events, a virtual clock that jumps to the next event, and handlers that
// schedule further events. Time is an int64 count of virtual nanoseconds
// since the scenario's start; decision code gets time.Time values built from
// it (epoch + offset), so it never sees the wall clock.
//
// Why not clock.Manual: its AfterFunc allocates a timer and a closure per
// call and takes a lock, which at several events per simulated request would
// dominate the cost. Here an event is a 40-byte value in a typed 4-ary heap
// (fewer levels than a binary heap, and the four children share a cache
// line or two), and handlers are long-lived objects (requests, replicas,
// sessions) recycled through free lists, so the steady state allocates
// nothing.

// handler is anything an event can wake. arg carries what the handler needs
// to recognise the event (typically a kind and a generation, so a recycled
// object ignores events meant for its previous life).
type handler interface {
	handle(arg int64)
}

// event is one scheduled call.
type event struct {
	at  int64  // virtual ns
	seq uint64 // insertion order: ties run first-scheduled first, deterministically
	h   handler
	arg int64
}

func (a *event) before(b *event) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// eventHeap is a 4-ary min-heap ordered by (at, seq).
type eventHeap struct {
	ev []event
}

func (h *eventHeap) len() int { return len(h.ev) }

func (h *eventHeap) push(e event) {
	h.ev = append(h.ev, e)
	i := len(h.ev) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !h.ev[i].before(&h.ev[p]) {
			break
		}
		h.ev[i], h.ev[p] = h.ev[p], h.ev[i]
		i = p
	}
}

// pop removes and returns the earliest event. The heap must not be empty.
func (h *eventHeap) pop() event {
	top := h.ev[0]
	n := len(h.ev) - 1
	last := h.ev[n]
	h.ev[n] = event{} // drop the handler reference for the GC
	h.ev = h.ev[:n]
	if n == 0 {
		return top
	}
	// Sift the last element down from the root.
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		best := c
		end := c + 4
		if end > n {
			end = n
		}
		for j := c + 1; j < end; j++ {
			if h.ev[j].before(&h.ev[best]) {
				best = j
			}
		}
		if !h.ev[best].before(&last) {
			break
		}
		h.ev[i] = h.ev[best]
		i = best
	}
	h.ev[i] = last
	return top
}

// engine owns virtual time and the event queue.
type engine struct {
	now    int64
	seq    uint64
	heap   eventHeap
	epoch  time.Time // calendar time of virtual 0
	events uint64    // events run so far
	// soonQ holds events due now, run in FIFO order after the current
	// handler returns and before anything else. Handing an answer back
	// through it instead of calling the receiver directly keeps handlers
	// from re-entering a replica in the middle of its own bookkeeping (a
	// newcomer overtaking the queue), at the cost of a slice append rather
	// than a heap operation.
	soonQ    []event
	soonHead int
}

// soon schedules h.handle(arg) at the current time, after the running
// handler and any earlier soon events.
func (e *engine) soon(h handler, arg int64) {
	e.soonQ = append(e.soonQ, event{at: e.now, h: h, arg: arg})
}

// at schedules h.handle(arg) at virtual time t (clamped to now: the past
// is not reachable).
func (e *engine) at(t int64, h handler, arg int64) {
	if t < e.now {
		t = e.now
	}
	e.seq++
	e.heap.push(event{at: t, seq: e.seq, h: h, arg: arg})
}

// after schedules h.handle(arg) d virtual nanoseconds from now.
func (e *engine) after(d int64, h handler, arg int64) { e.at(e.now+d, h, arg) }

// wall converts a virtual time to the calendar time decision code sees.
func (e *engine) wall(t int64) time.Time { return e.epoch.Add(time.Duration(t)) }

// run processes events up to and including virtual time end, then sets the
// clock to end. stop, when not nil, is polled every 4096 events and ends
// the run early when it returns true.
func (e *engine) run(end int64, stop func() bool) {
	for {
		if e.soonHead < len(e.soonQ) {
			ev := e.soonQ[e.soonHead]
			e.soonQ[e.soonHead] = event{}
			e.soonHead++
			if e.soonHead == len(e.soonQ) {
				e.soonQ, e.soonHead = e.soonQ[:0], 0
			}
			e.events++
			ev.h.handle(ev.arg)
			continue
		}
		if e.heap.len() == 0 || e.heap.ev[0].at > end {
			break
		}
		ev := e.heap.pop()
		e.now = ev.at
		e.events++
		ev.h.handle(ev.arg)
		if stop != nil && e.events&4095 == 0 && stop() {
			return
		}
	}
	if end > e.now {
		e.now = end
	}
}

// newStream returns an independent seeded generator for one purpose. The
// seed is mixed with the stream's name and index through SplitMix64
// (Steele, Lea, Flood: "Fast splittable pseudorandom number generators",
// OOPSLA 2014), so streams of one seed are uncorrelated and a stream's
// numbers do not depend on how many other streams exist: adding a replica
// does not change the arrivals.
func newStream(seed uint64, name string, idx int) *rand.Rand {
	h := uint64(14695981039346656037) // FNV-1a over the name
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	a := splitmix(seed ^ h)
	b := splitmix(a ^ uint64(idx)*0x9e3779b97f4a7c15)
	return rand.New(rand.NewPCG(a, b))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
