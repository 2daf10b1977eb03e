package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// rateCurve is the offered load as a piecewise-linear function of virtual
// time: knots every res, linear in between. The scenario's curve, trace or
// steps are sampled at the knots once, before the run; the arrival process
// then follows the interpolated rate exactly (thinning against each
// segment's larger knot), so the process is a non-homogeneous Poisson
// process with that intensity (Lewis and Shedler, "Simulation of
// nonhomogeneous Poisson processes by thinning", Naval Research Logistics
// Quarterly 26(3), 1979).
type rateCurve struct {
	res   int64     // ns between knots
	knots []float64 // requests per second at k·res
	gap   []bool    // knot k lies inside a trace gap
}

func (rc *rateCurve) at(t int64) float64 {
	k := t / rc.res
	if k < 0 {
		return rc.knots[0]
	}
	if int(k) >= len(rc.knots)-1 {
		return rc.knots[len(rc.knots)-1]
	}
	f := float64(t-k*rc.res) / float64(rc.res)
	return rc.knots[k] + f*(rc.knots[k+1]-rc.knots[k])
}

// mean is the average rate over [from, to).
func (rc *rateCurve) mean(from, to int64) float64 {
	if to <= from {
		return rc.at(from)
	}
	const n = 60
	s := 0.0
	for i := 0; i < n; i++ {
		s += rc.at(from + (to-from)*int64(2*i+1)/(2*n))
	}
	return s / n
}

// inGap reports whether t falls in a trace gap.
func (rc *rateCurve) inGap(t int64) bool {
	k := int((t + rc.res/2) / rc.res)
	return k >= 0 && k < len(rc.gap) && rc.gap[k]
}

// buildRate samples the scenario's load at the knots.
func buildRate(sc *Scenario, evs []CalendarEvent) (*rateCurve, error) {
	l := &sc.Load
	res := int64(l.Resolution)
	n := int(int64(sc.Duration)/res) + 2
	rc := &rateCurve{res: res, knots: make([]float64, n), gap: make([]bool, n)}
	epoch := sc.Start
	var peakScale float64
	if tl := l.Trace; tl != nil {
		tr := sc.trace
		if tr == nil {
			return nil, fmt.Errorf("load.trace: trace %s not loaded (Scenario.LoadTrace)", tl.File)
		}
		from := tl.From
		if from.IsZero() {
			from = tr.first()
		}
		stepS := float64(tr.step) / 1e9
		for k := 0; k < n; k++ {
			rc.knots[k], rc.gap[k] = tr.value(traceTime(from, tl.Speed, int64(k)*res))
		}
		if tl.PeakRPS > 0 {
			// The maximum over the replayed span, [0, duration], maps to
			// PeakRPS: the knots up to the end, and the curve at the end
			// (the last knot lies past it, there for the interpolation
			// only; a spike just after the span must not scale it down).
			mx := rc.at(int64(sc.Duration))
			for k := 0; k < n && int64(k)*res <= int64(sc.Duration); k++ {
				mx = math.Max(mx, rc.knots[k])
			}
			if mx <= 0 {
				return nil, fmt.Errorf("load.trace: the replayed span of %s has no demand", tl.File)
			}
			peakScale = tl.PeakRPS / mx
		} else {
			peakScale = tl.Speed / stepS
		}
		for k := range rc.knots {
			rc.knots[k] *= peakScale
		}
	}
	for k := 0; k < n; k++ {
		t := int64(k) * res
		cal := epoch.Add(time.Duration(t))
		var base float64
		switch {
		case l.Trace != nil:
			base = rc.knots[k]
		case l.Curve != nil:
			base = curveAt(l.Curve, cal)
		case l.Steps != nil:
			s := l.Steps
			lvl := int(t / int64(s.Each))
			if lvl >= s.Count {
				lvl = s.Count - 1
			}
			x := s.From
			if s.Count > 1 {
				x = s.From + (s.To-s.From)*float64(lvl)/float64(s.Count-1)
			}
			base = x * sc.Capacity(s.Service)
		default:
			base = l.Rate
		}
		m := 1.0
		for _, w := range l.Campaigns {
			m *= windowFactor(&w, epoch, t)
		}
		for _, w := range l.FlashSales {
			m *= windowFactor(&w, epoch, t)
		}
		if len(evs) > 0 {
			m *= eventFactor(evs, cal)
		}
		rc.knots[k] = base * m
	}
	return rc, nil
}

// traceTime is the trace time (unix ns) replayed at virtual time t. A
// replay running past the year 2262 (a high speed over a long run) reads
// beyond any trace rather than wrapping around.
func traceTime(from time.Time, speed float64, t int64) int64 {
	off := float64(t) * speed
	if off >= 1<<62 {
		return math.MaxInt64
	}
	return from.UnixNano() + int64(off)
}

// curveAt is the parametric daily and weekly cycle at calendar time cal.
// The weekly cosine peaks at noon of the peak day (d − pd = ½), so the
// peak day is the busiest of the week and its neighbours are equally
// busy; centred on the day's first instant instead, the day before would
// be exactly as busy as the peak day.
func curveAt(c *Curve, cal time.Time) float64 {
	h := float64(cal.Hour()) + float64(cal.Minute())/60 + float64(cal.Second())/3600 + float64(cal.Nanosecond())/3.6e12
	r := c.Base
	if c.Diurnal > 0 {
		r *= 1 + c.Diurnal*math.Cos(2*math.Pi*(h-c.PeakHour)/24)
	}
	if c.Weekly > 0 {
		d := float64(cal.Weekday()) + h/24
		pd := float64(slices.Index(weekdays, strings.ToLower(c.PeakDay))) + 0.5
		r *= 1 + c.Weekly*math.Cos(2*math.Pi*(d-pd)/7)
	}
	return r
}

// windowStart is a window's opening as an offset from the start.
func windowStart(w *Window, epoch time.Time) int64 {
	if !w.At.IsZero() {
		return int64(w.At.Sub(epoch))
	}
	return int64(w.After)
}

// windowFactor is loadgen.FlashSale.Multiplier's shape: 1 outside the
// window, rising linearly to X over Rise, falling back over Fall.
func windowFactor(w *Window, epoch time.Time, t int64) float64 {
	start := windowStart(w, epoch)
	end := start + int64(w.For)
	if t < start || t >= end {
		return 1
	}
	m := w.X
	if w.Rise > 0 && t < start+int64(w.Rise) {
		m = 1 + (w.X-1)*float64(t-start)/float64(w.Rise)
	}
	if w.Fall > 0 && t > end-int64(w.Fall) {
		down := 1 + (w.X-1)*float64(end-t)/float64(w.Fall)
		if (w.X >= 1 && down < m) || (w.X < 1 && down > m) {
			m = down
		}
	}
	return m
}

// arrivals draws the non-homogeneous Poisson process of rate × scale by
// thinning, one segment between knots at a time. Jumping to the segment's
// end when a candidate overshoots it is exact (the exponential is
// memoryless).
type arrivals struct {
	rc     *rateCurve
	scale  float64
	end    int64
	rng    *rand.Rand
	t      int64
	seg    int64 // current segment index
	bound  float64
	segEnd int64
}

func newArrivals(rc *rateCurve, scale float64, end int64, rng *rand.Rand) *arrivals {
	a := &arrivals{rc: rc, scale: scale, end: end, rng: rng, seg: -1}
	return a
}

// next returns the next arrival time, or false when past the end.
func (a *arrivals) next() (int64, bool) {
	for {
		if a.t >= a.end {
			return 0, false
		}
		if a.seg < 0 || a.t >= a.segEnd {
			// Time only moves forward, and within [seg·res, segEnd) it is
			// in segment seg: one division per segment, not per candidate.
			k := a.t / a.rc.res
			a.seg = k
			a.segEnd = min((k+1)*a.rc.res, a.end)
			i := int(min(k, int64(len(a.rc.knots)-2)))
			a.bound = math.Max(a.rc.knots[i], a.rc.knots[i+1]) * a.scale
		}
		if a.bound <= 0 {
			a.t = a.segEnd
			continue
		}
		dt := a.rng.ExpFloat64() / a.bound * 1e9
		if a.t+int64(dt) >= a.segEnd || dt > 1e18 {
			a.t = a.segEnd
			continue
		}
		a.t += int64(dt)
		if dt == 0 {
			a.t++ // keep time moving at absurd rates
		}
		if lam := a.rateInSeg() * a.scale; lam >= a.bound || a.rng.Float64()*a.bound <= lam {
			return a.t, true
		}
	}
}

// rateInSeg is rc.at(a.t) for a.t in the current segment, without
// rc.at's division to find the segment (the same arithmetic otherwise, so
// the same bits).
func (a *arrivals) rateInSeg() float64 {
	rc, k := a.rc, a.seg
	if int(k) >= len(rc.knots)-1 {
		return rc.knots[len(rc.knots)-1]
	}
	f := float64(a.t-k*rc.res) / float64(rc.res)
	return rc.knots[k] + f*(rc.knots[k+1]-rc.knots[k])
}
