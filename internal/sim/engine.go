package sim

import (
	"math/bits"
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

// set fills an event in place. The hot paths write events field by field
// into their slot rather than building one and copying it: the copy is
// made with wide loads that stall on the narrow stores just made
// (store-to-load forwarding), which cost more than the rest of a push.
func (a *event) set(at int64, seq uint64, h handler, arg int64) {
	a.at, a.seq, a.h, a.arg = at, seq, h, arg
}

// eventHeap is a 4-ary min-heap ordered by (at, seq).
type eventHeap struct {
	ev []event
}

func (h *eventHeap) len() int { return len(h.ev) }

func (h *eventHeap) push(at int64, seq uint64, hd handler, arg int64) {
	n := len(h.ev)
	if n < cap(h.ev) {
		h.ev = h.ev[:n+1]
	} else {
		h.ev = append(h.ev, event{})
	}
	ev := h.ev
	// Move parents down into the hole until the new event's place is
	// found (keys are unique: seq never repeats).
	i := n
	for i > 0 {
		p := (i - 1) / 4
		if pe := &ev[p]; at > pe.at || (at == pe.at && seq > pe.seq) {
			break
		}
		ev[i] = ev[p]
		i = p
	}
	ev[i].set(at, seq, hd, arg)
}

// pop removes the earliest event. The heap must not be empty.
func (h *eventHeap) pop() {
	ev := h.ev
	n := len(ev) - 1
	last := ev[n]
	ev[n] = event{} // drop the handler reference for the GC
	ev = ev[:n]
	h.ev = ev
	if n == 0 {
		return
	}
	// Sift the last element down from the root. The order of random
	// event times is unpredictable, so a branch per comparison would be
	// mispredicted half the time; a node with all four children picks
	// the least with a branch-free tournament instead (the keys are
	// unique, so any way of finding the least finds the same one).
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		var best int
		if c+3 < n {
			kids := ev[c : c+4 : c+4]
			b01 := int(earlier(&kids[1], &kids[0]))
			b23 := 2 + int(earlier(&kids[3], &kids[2]))
			m := -int(earlier(&kids[b23], &kids[b01]))
			best = c + (b01 ^ ((b01 ^ b23) & m))
		} else {
			best = c
			for j := c + 1; j < n; j++ {
				if ev[j].before(&ev[best]) {
					best = j
				}
			}
		}
		if !ev[best].before(&last) {
			break
		}
		ev[i] = ev[best]
		i = best
	}
	ev[i] = last
}

// earlier is a.before(b) as 0 or 1, computed without a branch: (at, seq)
// compared as one 128-bit number (at is never negative).
func earlier(a, b *event) uint64 {
	_, borrow := bits.Sub64(a.seq, b.seq, 0)
	_, borrow = bits.Sub64(uint64(a.at), uint64(b.at), borrow)
	return borrow
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
	// lanes hold events that are scheduled in the order they fall due:
	// the next arrival (there is only ever one), and events a constant
	// delay ahead (prequal's probe tick, half a network round trip). A
	// lane is a FIFO already sorted by (at, seq), so such an event costs
	// a ring append and a comparison with the heap's top rather than two
	// heap operations; the run order is exactly the heap's (see atLane).
	lanes [numLanes]lane
	// wallAt and wallT memoise wall: decision code asks for the calendar
	// time several times per virtual instant.
	wallAt int64
	wallT  time.Time
	wallOK bool
}

// Lanes of the engine.
const (
	laneArrival = iota // the next client arrival
	laneProbe          // prequal probe ticks, proxies.probe_tick ahead
	laneRTT            // events half a network round trip ahead
	numLanes
)

// lane is a growable ring of events in (at, seq) order.
type lane struct {
	buf        []event
	head, size int
}

// slot appends an empty event to the lane and returns it.
func (l *lane) slot() *event {
	if l.size == len(l.buf) {
		n := max(16, 2*len(l.buf))
		nb := make([]event, n)
		for i := 0; i < l.size; i++ {
			nb[i] = l.buf[(l.head+i)%len(l.buf)]
		}
		l.buf, l.head = nb, 0
	}
	i := l.head + l.size
	if i >= len(l.buf) {
		i -= len(l.buf)
	}
	l.size++
	return &l.buf[i]
}

// tail is the last event; the lane must not be empty.
func (l *lane) tail() *event {
	i := l.head + l.size - 1
	if i >= len(l.buf) {
		i -= len(l.buf)
	}
	return &l.buf[i]
}

// pop removes the first event.
func (l *lane) pop() {
	l.buf[l.head] = event{}
	l.head++
	if l.head == len(l.buf) {
		l.head = 0
	}
	l.size--
}

// soon schedules h.handle(arg) at the current time, after the running
// handler and any earlier soon events.
func (e *engine) soon(h handler, arg int64) {
	n := len(e.soonQ)
	if n < cap(e.soonQ) {
		e.soonQ = e.soonQ[:n+1]
	} else {
		e.soonQ = append(e.soonQ, event{})
	}
	e.soonQ[n].set(e.now, 0, h, arg)
}

// at schedules h.handle(arg) at virtual time t (clamped to now: the past
// is not reachable).
func (e *engine) at(t int64, h handler, arg int64) {
	if t < e.now {
		t = e.now
	}
	e.seq++
	e.heap.push(t, e.seq, h, arg)
}

// atLane is at through lane ln. It numbers the event from the same
// sequence as at, so the run order is the same as if it had gone through
// the heap; an event that would fall due before the lane's last one (not
// the lane's pattern) goes to the heap instead, so any use is correct.
func (e *engine) atLane(ln int, t int64, h handler, arg int64) {
	if t < e.now {
		t = e.now
	}
	e.seq++
	l := &e.lanes[ln]
	if l.size > 0 && t < l.tail().at {
		e.heap.push(t, e.seq, h, arg)
		return
	}
	l.slot().set(t, e.seq, h, arg)
}

// after schedules h.handle(arg) d virtual nanoseconds from now.
func (e *engine) after(d int64, h handler, arg int64) { e.at(e.now+d, h, arg) }

// afterLane is after through lane ln (see atLane).
func (e *engine) afterLane(ln int, d int64, h handler, arg int64) { e.atLane(ln, e.now+d, h, arg) }

// wall converts a virtual time to the calendar time decision code sees.
func (e *engine) wall(t int64) time.Time {
	if !e.wallOK || t != e.wallAt {
		e.wallAt, e.wallT, e.wallOK = t, e.epoch.Add(time.Duration(t)), true
	}
	return e.wallT
}

// next returns the source of the earliest scheduled event: a lane index,
// -1 for the heap, or -2 when nothing is scheduled.
func (e *engine) next() (int, *event) {
	src, best := -2, (*event)(nil)
	if len(e.heap.ev) > 0 {
		src, best = -1, &e.heap.ev[0]
	}
	for i := range e.lanes {
		l := &e.lanes[i]
		if l.size == 0 {
			continue
		}
		if h := &l.buf[l.head]; best == nil || h.before(best) {
			src, best = i, h
		}
	}
	return src, best
}

// run processes events up to and including virtual time end, then sets the
// clock to end. stop, when not nil, is polled every 4096 events and ends
// the run early when it returns true.
func (e *engine) run(end int64, stop func() bool) {
	for {
		if e.soonHead < len(e.soonQ) {
			ev := &e.soonQ[e.soonHead]
			h, arg := ev.h, ev.arg
			ev.h = nil
			e.soonHead++
			if e.soonHead == len(e.soonQ) {
				e.soonQ, e.soonHead = e.soonQ[:0], 0
			}
			e.events++
			h.handle(arg)
			continue
		}
		src, top := e.next()
		if src == -2 || top.at > end {
			break
		}
		at, h, arg := top.at, top.h, top.arg
		if src < 0 {
			e.heap.pop()
		} else {
			e.lanes[src].pop()
		}
		e.now = at
		e.events++
		h.handle(arg)
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
