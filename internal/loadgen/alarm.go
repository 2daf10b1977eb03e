package loadgen

import "time"

// alarm is the scheduler's one-shot, re-armable wake-up. set may be called
// from any goroutine, also while the scheduler is in wait: re-arming moves
// the wake-up. wait may return early (a stale expiry); the scheduler always
// re-reads the clock.
type alarm interface {
	set(d time.Duration)
	wait()
	close()
}

// timerAlarm is the portable alarm on a Go timer (millisecond-ish
// precision when the process is idle; see timerfdAlarm).
type timerAlarm struct{ t *time.Timer }

func newTimerAlarm() alarm {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &timerAlarm{t: t}
}

// set re-arms the timer; since Go 1.23 Reset also discards an expiry not
// yet received, so wait never sees a stale one from before the reset.
func (a *timerAlarm) set(d time.Duration) { a.t.Reset(max(d, 1)) }
func (a *timerAlarm) wait()               { <-a.t.C }
func (a *timerAlarm) close()              { a.t.Stop() }
