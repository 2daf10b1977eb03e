// Package clock abstracts time so that decision code, tests and the simulator
// can run on a clock they control. Production code uses Real; tests and the
// discrete-event simulator use Manual and advance it explicitly (the etcd-raft
// idea: time is an input, not an ambient fact).
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and schedules callbacks.
type Clock interface {
	// Now returns the current time. Real clocks include a monotonic reading.
	Now() time.Time
	// AfterFunc calls f in its own goroutine (Real) or during Advance (Manual)
	// once d has elapsed. The returned Timer can cancel the call.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a cancellable scheduled call.
type Timer interface {
	// Stop cancels the call; it reports whether the call was still pending.
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Manual is a clock that moves only when told to. It is safe for concurrent
// use. Callbacks scheduled with AfterFunc run synchronously inside Advance or
// Set, in deadline order, without the clock's lock held, so a callback may
// schedule further callbacks or read the time.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

// NewManual returns a Manual clock set to start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now returns the clock's current time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// AfterFunc schedules f to run when the clock reaches Now()+d. A non-positive
// d runs f at the next Advance (even Advance(0)).
func (m *Manual) AfterFunc(d time.Duration, f func()) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	t := &manualTimer{clock: m, when: m.now.Add(d), seq: m.seq, f: f}
	m.timers = append(m.timers, t)
	return t
}

// Advance moves the clock forward by d, firing every timer that falls due,
// each with the clock set to its deadline.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	target := m.now.Add(d)
	m.mu.Unlock()
	m.Set(target)
}

// Set moves the clock to t (never backwards: an earlier t only fires timers
// already due), firing due timers in order.
func (m *Manual) Set(t time.Time) {
	for {
		m.mu.Lock()
		if len(m.timers) == 0 {
			if t.After(m.now) {
				m.now = t
			}
			m.mu.Unlock()
			return
		}
		sort.Slice(m.timers, func(i, j int) bool {
			a, b := m.timers[i], m.timers[j]
			if !a.when.Equal(b.when) {
				return a.when.Before(b.when)
			}
			return a.seq < b.seq
		})
		next := m.timers[0]
		if next.when.After(t) {
			if t.After(m.now) {
				m.now = t
			}
			m.mu.Unlock()
			return
		}
		m.timers = m.timers[1:]
		if next.when.After(m.now) {
			m.now = next.when
		}
		next.fired = true
		m.mu.Unlock()
		next.f()
	}
}

// Pending reports how many timers are scheduled and not yet fired or stopped.
func (m *Manual) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.timers)
}

type manualTimer struct {
	clock *Manual
	when  time.Time
	seq   uint64
	f     func()
	fired bool
}

func (t *manualTimer) Stop() bool {
	m := t.clock
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.fired {
		return false
	}
	for i, x := range m.timers {
		if x == t {
			m.timers = append(m.timers[:i], m.timers[i+1:]...)
			t.fired = true
			return true
		}
	}
	return false
}
