package ui

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// forecastPoints turns a section's forecast (why.forecast) into points in
// unix seconds, sorted by time. An upper band of 0 means none was given.
func forecastPoints(s *directive.Service) []fpoint {
	if s.Why == nil || len(s.Why.Forecast) == 0 {
		return nil
	}
	out := make([]fpoint, 0, len(s.Why.Forecast))
	for _, p := range s.Why.Forecast {
		hi := p.Hi
		if hi <= 0 {
			hi = math.NaN()
		}
		out = append(out, fpoint{t: float64(p.At.UnixNano()) / 1e9, rps: p.RPS, hi: hi})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].t < out[j].t })
	return out
}

// interpolate reads the forecast at t: linear between the two points
// around it, NaN outside the forecast's span (the UI shows no forecast
// rather than an extrapolated one).
func interpolate(ps []fpoint, t float64) (rps, hi float64) {
	if len(ps) == 0 || t < ps[0].t || t > ps[len(ps)-1].t {
		return math.NaN(), math.NaN()
	}
	i := sort.Search(len(ps), func(i int) bool { return ps[i].t >= t })
	if ps[i].t == t || i == 0 {
		return ps[i].rps, ps[i].hi
	}
	a, b := ps[i-1], ps[i]
	f := (t - a.t) / (b.t - a.t)
	return a.rps + f*(b.rps-a.rps), a.hi + f*(b.hi-a.hi)
}

// Bounds on the forecast ahead of now that a series answer carries per
// service: the directive's forecast may run for hours in points of any
// spacing, and the page draws it beside a window of seconds.
const (
	maxAheadSeconds = 3600
	maxAheadPoints  = 360
)

// ahead is a service's coming seconds as the running directive sees them:
// the forecast, its upper band and the replica floor at each point of the
// forecast after now (now included, so that the drawn line starts there),
// and when the floor should be ready (by) and lapses (until); NaN where
// there is none.
type ahead struct {
	t, rps, hi, floor []float64
	by, until         float64
}

// aheadOf computes a service's ahead from now (unix seconds, the newest
// frame) into a, reusing its slices. It reports false when there is
// nothing after now to draw.
func (c *Collector) aheadOf(a *ahead, name string, now float64) bool {
	a.t, a.rps, a.hi, a.floor = a.t[:0], a.rps[:0], a.hi[:0], a.floor[:0]
	a.by, a.until = math.NaN(), math.NaN()
	end := now + maxAheadSeconds
	ps := c.forecast[name]
	a.t = append(a.t, now)
	for _, p := range ps {
		if p.t > now && p.t <= end && len(a.t) < maxAheadPoints {
			a.t = append(a.t, p.t)
		}
	}
	var sc *directive.Scale
	if sec := c.section(name); sec != nil && sec.Scale != nil && sec.Scale.Replicas > 0 {
		sc = sec.Scale
		at := func(t *time.Time) float64 {
			if t == nil {
				return math.NaN()
			}
			return float64(t.UnixNano()) / 1e9
		}
		a.by, a.until = at(sc.By), at(sc.Until)
		// The floor's lapse is a point of its own, so that the drawn
		// step ends there.
		if a.until > now && a.until <= end && !slices.Contains(a.t, a.until) {
			a.t = append(a.t, a.until)
			slices.Sort(a.t)
			a.t = a.t[:min(len(a.t), maxAheadPoints)]
		}
	}
	if len(a.t) < 2 {
		return false
	}
	for _, t := range a.t {
		rps, hi := interpolate(ps, t)
		fl := math.NaN()
		if sc != nil && (math.IsNaN(a.until) || t <= a.until) {
			fl = float64(sc.Replicas)
		}
		a.rps, a.hi, a.floor = append(a.rps, rps), append(a.hi, hi), append(a.floor, fl)
	}
	return true
}
