package clock

import (
	"sync"
	"time"
)

// Scaled is a clock running Factor times faster than the wall clock from
// a chosen origin: the demo replays hours of a day in minutes, and its
// controller, autoscaler and forecaster live on that compressed time
// (a virtual minute per real second at Factor 60), so their rules — a
// 15-second autoscaler sync, a 300-second stabilisation window, minutes
// of forecast — keep their meaning.
type Scaled struct {
	// Origin is the virtual time at Start; Factor how many virtual
	// seconds pass per real one.
	Origin time.Time
	Factor float64

	mu    sync.Mutex
	start time.Time
	base  Clock
}

// NewScaled starts a scaled clock now on base (Real when nil).
func NewScaled(base Clock, origin time.Time, factor float64) *Scaled {
	if base == nil {
		base = Real{}
	}
	if factor <= 0 {
		factor = 1
	}
	return &Scaled{Origin: origin, Factor: factor, start: base.Now(), base: base}
}

// Restart sets the clock to origin now (the demo starts its clock when
// the load starts, after everything is up).
func (s *Scaled) Restart(origin time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Origin, s.start = origin, s.base.Now()
}

// Now is the virtual time.
func (s *Scaled) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Origin.Add(time.Duration(float64(s.base.Now().Sub(s.start)) * s.Factor))
}

// Real is the wall time of a virtual time.
func (s *Scaled) Real(v time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start.Add(time.Duration(float64(v.Sub(s.Origin)) / s.Factor))
}

// Virtual is the virtual time of a wall time.
func (s *Scaled) Virtual(r time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Origin.Add(time.Duration(float64(r.Sub(s.start)) * s.Factor))
}

// RealDuration is how long a virtual duration lasts on the wall clock.
func (s *Scaled) RealDuration(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.Factor)
}

// AfterFunc calls f once d of virtual time has passed.
func (s *Scaled) AfterFunc(d time.Duration, f func()) Timer {
	return s.base.AfterFunc(s.RealDuration(d), f)
}
