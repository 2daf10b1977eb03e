package control

import (
	"fmt"
	"math"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/scaler"
)

// Oracle is the predictive controller's scaler and planner fed the true
// future load instead of forecasts: the announced events' load as it will
// be, the services' own path as it will be. Nothing can plan better with
// the same scaler, so its gap to Predictive is what better forecasts
// could still win, and its extra replica-hours over the reactive
// autoscaler the price of readiness.
type Oracle struct {
	*common
}

// NewOracle builds the oracle; s.Future is required.
func NewOracle(s Setup) (*Oracle, error) {
	if s.Future == nil {
		return nil, fmt.Errorf("control: the oracle needs the true future load (Setup.Future)")
	}
	return &Oracle{common: newCommon("oracle", s)}, nil
}

// Name implements Controller.
func (o *Oracle) Name() string { return o.name }

// Observe implements Controller.
func (o *Oracle) Observe(m Minute) { o.observe(m) }

// truth is the mean true load over the step starting at t.
func (o *Oracle) truth(svc string, t time.Time) float64 {
	const n = 4
	s := 0.0
	for i := 0; i < n; i++ {
		s += o.s.Future(svc, t.Add(time.Duration(2*i+1)*o.s.Step/(2*n)))
	}
	return s / n
}

// Decide implements Controller.
func (o *Oracle) Decide(now time.Time) Plan {
	decisions := make([]scaler.Decision, len(o.svcs))
	paths := map[string][]scaler.Point{}
	for i, st := range o.svcs {
		in := o.input(st, now)
		cfg := o.scalerConfig(st).WithDefaults()
		reach := now.Add(in.Startup + cfg.Warmup + cfg.Margin + 2*time.Minute)
		for t := now; !t.After(reach); t = t.Add(o.s.Step) {
			v := o.truth(st.setup.Name, t)
			in.Forecast = append(in.Forecast, scaler.Point{At: t, Point: v, Upper: v})
		}
		for _, e := range o.s.Events {
			end := e.End.Add(30 * time.Minute)
			if end.Before(now) || e.Start.After(reach) {
				continue
			}
			se := scaler.Event{Category: e.Category, Start: e.Start, End: e.End, Uplift: "the true load (oracle)"}
			for t := e.Start; t.Before(end); t = t.Add(o.s.Step) {
				v := o.truth(st.setup.Name, t)
				se.Load = append(se.Load, scaler.Point{At: t, Point: v, Upper: v})
			}
			in.Events = append(in.Events, se)
		}
		in.ExpectedRPS = o.truth(st.setup.Name, now.Add(-o.s.Step))
		decisions[i] = scaler.Decide(in, cfg)
		paths[st.setup.Name] = mergeEvents(in.Forecast, in.Events)
	}
	return o.plan(now, planner.Model{Name: "oracle", RunID: "truth"}, decisions, paths, true)
}

// HoltWinters is the predictive-horizontal-pod-autoscaler peer: per
// service, additive Holt-Winters over the HPA's replica calculation (here
// on load, see scaler.HoltWinters) with a daily season, tuned on the
// history, predicting as far ahead as a replica takes to start; the floor
// is the prediction's replicas at the HPA's target (the PHPA's "maximum"
// decision over the HPA's own calculation, which the reactive autoscaler
// keeps doing). It reads no calendar.
type HoltWinters struct {
	*common
	models map[string]*scaler.HoltWinters
}

// NewHoltWinters fits the peer on the setup's history.
func NewHoltWinters(s Setup) *HoltWinters {
	h := &HoltWinters{common: newCommon("holt_winters", s), models: map[string]*scaler.HoltWinters{}}
	cfg := h.s.Scaler.WithDefaults()
	look := int(math.Ceil(float64(h.s.StartupPrior+cfg.Warmup) / float64(h.s.Step)))
	season := int(24 * time.Hour / h.s.Step)
	for _, st := range h.svcs {
		if m := scaler.FitHoltWinters(st.series.Values, season, look); m != nil {
			h.models[st.setup.Name] = m
		}
	}
	return h
}

// Name implements Controller.
func (h *HoltWinters) Name() string { return h.name }

// Observe implements Controller.
func (h *HoltWinters) Observe(m Minute) {
	h.observe(m)
	for _, sm := range m.Services {
		if mod := h.models[sm.Service]; mod != nil {
			mod.Observe(sm.RPS)
		}
	}
}

// Decide implements Controller.
func (h *HoltWinters) Decide(now time.Time) Plan {
	decisions := make([]scaler.Decision, len(h.svcs))
	for i, st := range h.svcs {
		in := h.input(st, now)
		d := scaler.Decision{Service: st.setup.Name, PerReplicaRPS: in.PerReplicaRPS}
		mod := h.models[st.setup.Name]
		cfg := h.scalerConfig(st).WithDefaults()
		switch {
		case mod == nil:
			d.Why = "no floor: less than two days of history to fit Holt-Winters on"
		case !(in.PerReplicaRPS > 0):
			d.Why = "no floor: a replica's capacity is not learned yet"
		default:
			load := mod.Predict()
			d.LoadRPS, d.Utilization, d.Driver = load, cfg.TargetUtilization, "forecast"
			d.Need = int(math.Ceil(load/(in.PerReplicaRPS*cfg.TargetUtilization) - 1e-9))
			d.Floor = d.Need
			if in.Max > 0 && d.Floor > in.Max {
				d.Floor, d.Capped = in.Max, true
			}
			if d.Floor <= in.Min {
				d.Floor = 0
			}
			d.Until = now.Add(cfg.Hold)
			d.Why = fmt.Sprintf("Holt-Winters (α %.2g β %.2g γ %.2g, daily season) predicts %.4g rps within %d minutes: %d replicas at %.2g utilisation of %.4g rps",
				mod.Alpha, mod.Beta, mod.Gamma, load, mod.LookAhead, d.Need, cfg.TargetUtilization, in.PerReplicaRPS)
		}
		decisions[i] = d
	}
	return h.plan(now, planner.Model{Name: "holt_winters", RunID: "phpa"}, decisions, nil, false)
}

// Hourly is the AWS-predictive-scaling-style peer: every PlanEvery (6h)
// it forecasts the next 48 hours hour by hour from the last 14 days of
// load (daily and weekly patterns, no calendar), and schedules each
// hour's capacity (forecast ÷ per-replica target) as the minimum from 5
// minutes before the hour.
type Hourly struct {
	*common
	plans   map[string]*scaler.HourlyPlan
	planned time.Time
	// PlanEvery is how often the forecast is remade. Default 6h.
	PlanEvery time.Duration
}

// NewHourly builds the peer.
func NewHourly(s Setup) *Hourly {
	return &Hourly{common: newCommon("hourly", s), plans: map[string]*scaler.HourlyPlan{}, PlanEvery: 6 * time.Hour}
}

// Name implements Controller.
func (a *Hourly) Name() string { return a.name }

// Observe implements Controller.
func (a *Hourly) Observe(m Minute) { a.observe(m) }

// Decide implements Controller.
func (a *Hourly) Decide(now time.Time) Plan {
	if a.planned.IsZero() || now.Sub(a.planned) >= a.PlanEvery {
		a.planned = now
		for _, st := range a.svcs {
			a.plans[st.setup.Name] = scaler.NewHourlyPlan(st.series.Values, st.series.Start, st.series.Step, now, 48, 14)
		}
	}
	decisions := make([]scaler.Decision, len(a.svcs))
	for i, st := range a.svcs {
		in := a.input(st, now)
		cfg := a.scalerConfig(st).WithDefaults()
		d := scaler.Decision{Service: st.setup.Name, PerReplicaRPS: in.PerReplicaRPS}
		load := a.plans[st.setup.Name].LoadAt(now)
		switch {
		case math.IsNaN(load):
			d.Why = "no floor: no history for this hour"
		case !(in.PerReplicaRPS > 0):
			d.Why = "no floor: a replica's capacity is not learned yet"
		default:
			d.LoadRPS, d.Utilization, d.Driver = load, cfg.TargetUtilization, "forecast"
			d.Need = int(math.Ceil(load/(in.PerReplicaRPS*cfg.TargetUtilization) - 1e-9))
			d.Floor = d.Need
			if in.Max > 0 && d.Floor > in.Max {
				d.Floor, d.Capped = in.Max, true
			}
			if d.Floor <= in.Min {
				d.Floor = 0
			}
			d.Until = now.Add(cfg.Hold)
			d.Why = fmt.Sprintf("hourly forecast %.4g rps for %s (14-day daily and weekly pattern, scheduled 5 minutes early): %d replicas", load,
				now.Add(5*time.Minute).UTC().Format("15:00"), d.Need)
		}
		decisions[i] = d
	}
	return a.plan(now, planner.Model{Name: "hourly", RunID: "aws-style"}, decisions, nil, false)
}

var (
	_ Controller = (*Oracle)(nil)
	_ Controller = (*HoltWinters)(nil)
	_ Controller = (*Hourly)(nil)
	_            = forecast.Ensemble
)
