package loadgen

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// DefaultCoalesce is how early an event may be handled by default: an
// arrival or wake-up due within it is handled now, because waking for a
// shorter wait costs more than the precision it buys (the poller's wake-up
// itself takes ~25 µs). Latency is measured from the later of the scheduled
// and the actual send time, so an early send never makes latency look
// better. Config.Coalesce raises it to trade punctuality for CPU at very
// high rates.
const DefaultCoalesce = 20 * time.Microsecond

// scheduler is the run's single clock: it issues the arrivals at their
// times and wakes sessions at theirs (the end of a think time, a checkout
// backoff), all from one goroutine sleeping on one precise alarm, so that
// every scheduled send is equally punctual.
type scheduler struct {
	alarm alarm
	// early is the coalescing window (Config.Coalesce).
	early time.Duration

	mu    sync.Mutex
	wakes wakeHeap
	// armed is when the alarm is set to fire while the loop waits (zero:
	// not waiting); a wake-up registered earlier than it re-arms it.
	armed time.Time
}

type wakeup struct {
	at time.Time
	ch chan<- struct{}
}

type wakeHeap []wakeup

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wakeup)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = wakeup{}
	*h = old[:len(old)-1]
	return w
}

func newScheduler(early time.Duration) *scheduler { return &scheduler{alarm: newAlarm(), early: early} }

// wakeAt sends on ch (buffered, capacity 1) at t.
func (s *scheduler) wakeAt(t time.Time, ch chan<- struct{}) {
	s.mu.Lock()
	heap.Push(&s.wakes, wakeup{t, ch})
	if !s.armed.IsZero() && t.Before(s.armed) {
		s.armed = t
		s.alarm.set(time.Until(t))
	}
	s.mu.Unlock()
}

// interrupt wakes the loop at once (cancellation).
func (s *scheduler) interrupt() {
	s.mu.Lock()
	s.alarm.set(0)
	s.mu.Unlock()
}

// run issues the arrivals of arr from start until end, calling dispatch
// for each (in order, with its index and scheduled time), and fires the
// wake-ups registered with wakeAt. It reports whether ctx ended it early.
//
// Arrivals already due are dispatched at once: when the generator falls
// behind (a GC pause, a saturated core) it catches up rather than sliding
// the schedule, and the lag shows in each request's latency (measured from
// its scheduled time) and in the late count.
func (s *scheduler) run(ctx context.Context, start, end time.Time, arr *Arrivals, dispatch func(i int64, sched time.Time)) (cancelled bool) {
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()
	defer func() {
		// Sessions may still register wake-ups until they see the stop;
		// with nothing armed they no longer touch the alarm.
		s.mu.Lock()
		s.armed = time.Time{}
		s.mu.Unlock()
	}()
	var i int64
	var due []chan<- struct{}
	off, more := arr.Next()
	for {
		if ctx.Err() != nil {
			return true
		}
		horizon := time.Now().Add(s.early)
		for more {
			sched := start.Add(off)
			if sched.After(horizon) {
				break
			}
			dispatch(i, sched)
			i++
			off, more = arr.Next()
			if i&1023 == 0 && ctx.Err() != nil {
				return true
			}
		}

		s.mu.Lock()
		s.armed = time.Time{}
		for len(s.wakes) > 0 && !s.wakes[0].at.After(horizon) {
			due = append(due, heap.Pop(&s.wakes).(wakeup).ch)
		}
		next := end
		if more && start.Add(off).Before(next) {
			next = start.Add(off)
		}
		if len(s.wakes) > 0 && s.wakes[0].at.Before(next) {
			next = s.wakes[0].at
		}
		finished := !more && !horizon.Before(end)
		d := time.Until(next)
		sleep := !finished && d > s.early
		if sleep {
			s.armed = next
			s.alarm.set(d)
		}
		s.mu.Unlock()

		for j, ch := range due {
			select {
			case ch <- struct{}{}:
			default:
			}
			due[j] = nil
		}
		due = due[:0]
		if finished {
			return false
		}
		if sleep {
			s.alarm.wait()
		}
	}
}
