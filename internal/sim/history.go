package sim

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// Shares returns, per service, the requests it receives per unit of the
// offered load (a client request): the share of the mix or of a session's
// requests it gets directly, plus the downstream calls of the classes
// reached, each with its probability. Retries are not counted. It is the
// expectation the history and the oracle's future follow; the run itself
// draws every request.
func (sc *Scenario) Shares() map[string]float64 {
	out := map[string]float64{}
	bySvc := map[string]*Service{}
	for i := range sc.Services {
		bySvc[sc.Services[i].Name] = &sc.Services[i]
	}
	var add func(svc, class string, w float64, depth int)
	add = func(svc, class string, w float64, depth int) {
		out[svc] += w
		s := bySvc[svc]
		if s == nil || depth > 16 {
			return
		}
		for _, c := range s.Classes {
			if c.Name != class {
				continue
			}
			for _, call := range c.Calls {
				add(call.Service, call.Class, w*call.P, depth+1)
			}
		}
	}
	switch sc.Clients.Mode {
	case "requests":
		total := 0.0
		for _, m := range sc.Clients.Mix {
			total += m.Weight
		}
		for _, m := range sc.Clients.Mix {
			if total > 0 {
				add(m.Service, m.Class, m.Weight/total, 0)
			}
		}
	default:
		exp := 0.0
		for _, st := range sc.Clients.Funnel {
			for _, c := range st.Requests {
				exp += st.Reach * c.P
			}
		}
		if exp == 0 {
			return out
		}
		for _, st := range sc.Clients.Funnel {
			for _, c := range st.Requests {
				add(c.Service, c.Class, st.Reach*c.P/exp, 0)
			}
		}
	}
	return out
}

// baseRate is the offered load at calendar time t without the run's
// campaigns and unannounced flash sales (the load curve, trace or rate),
// with the announced events' effects: the arrival process the history is
// drawn from. NaN inside a gap of a replayed trace or before it.
func (sc *Scenario) baseRate(t time.Time, evs []CalendarEvent) float64 {
	l := &sc.Load
	var base float64
	switch {
	case l.Trace != nil:
		tr := sc.trace
		if tr == nil {
			return math.NaN()
		}
		from := l.Trace.From
		if from.IsZero() {
			from = tr.first()
		}
		v, gap := tr.value(traceTime(from, l.Trace.Speed, int64(t.Sub(sc.Start))))
		if gap {
			return math.NaN()
		}
		// The scale of the run (buildRate): a trace's count per step as a
		// rate, or PeakRPS over the run's span.
		base = v * sc.traceScale()
	case l.Curve != nil:
		base = curveAt(l.Curve, t)
	case l.Steps != nil:
		base = l.Steps.From * sc.Capacity(l.Steps.Service)
	default:
		base = l.Rate
	}
	return base * eventFactor(evs, t)
}

// traceScale is buildRate's factor from a trace's values to requests per
// second.
func (sc *Scenario) traceScale() float64 {
	tl, tr := sc.Load.Trace, sc.trace
	if tl.PeakRPS <= 0 {
		return tl.Speed / (float64(tr.step) / 1e9)
	}
	from := tl.From
	if from.IsZero() {
		from = tr.first()
	}
	mx := 0.0
	res := int64(sc.Load.Resolution)
	for k := int64(0); k*res <= int64(sc.Duration); k++ {
		if v, gap := tr.value(traceTime(from, tl.Speed, k*res)); !gap {
			mx = math.Max(mx, v)
		}
	}
	if mx <= 0 {
		return 1
	}
	return tl.PeakRPS / mx
}

// HistorySeries draws the days before the start: per service, the requests per
// second of each minute, Poisson counts around the arrival process (the
// load curve or trace with the announced events' effects, through the
// services' shares), as the proxies' telemetry would have recorded them.
// The same seed gives the same history, whatever is simulated after.
func (sc *Scenario) HistorySeries(seed uint64) map[string]*forecast.Series {
	days := sc.History.Days
	if days <= 0 {
		return nil
	}
	step := time.Minute
	n := days * 24 * 60
	start := sc.Start.Add(-time.Duration(n) * step)
	evs := sc.Events(seed)
	shares := sc.Shares()
	rng := newStream(seed, "history", 0)
	out := map[string]*forecast.Series{}
	rates := make([]float64, n)
	for i := range rates {
		t := start.Add(time.Duration(i) * step)
		// The mean over the minute, from four points.
		s := 0.0
		for k := 0; k < 4; k++ {
			s += sc.baseRate(t.Add(time.Duration(2*k+1)*step/8), evs)
		}
		rates[i] = s / 4
	}
	for _, svc := range sc.Services {
		sh := shares[svc.Name]
		v := make(forecast.Values, n)
		for i, r := range rates {
			if math.IsNaN(r) {
				v[i] = math.NaN()
				continue
			}
			v[i] = float64(poisson(rng, r*sh*step.Seconds())) / step.Seconds()
		}
		out[svc.Name] = &forecast.Series{Name: svc.Name, Start: start, Step: step, Values: v}
	}
	return out
}

// poisson draws a Poisson count: exactly by inversion for small means,
// by the normal approximation (continuity-corrected, exact to well under
// a percent there) for large ones.
func poisson(r *rand.Rand, mean float64) int64 {
	switch {
	case !(mean > 0):
		return 0
	case mean < 50:
		l := math.Exp(-mean)
		k := int64(0)
		p := r.Float64()
		for p > l {
			k++
			p *= r.Float64()
		}
		return k
	default:
		x := math.Round(mean + math.Sqrt(mean)*r.NormFloat64())
		return int64(math.Max(0, x))
	}
}

// Future is the true expected load of a service at calendar time t in the
// run (requests per second): the rate the arrivals follow, through the
// service's share. The oracle controller reads it; nothing else may.
func (s *Sim) Future(service string, t time.Time) float64 {
	sh := s.shares[service]
	return s.rc.at(int64(t.Sub(s.sc.Start))) * sh
}
