package control

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/scaler"
)

// Setup is what every controller starts from.
type Setup struct {
	// Start is the first instant the controller runs at; History ends
	// there.
	Start time.Time
	// Step is the telemetry resolution (one minute).
	Step time.Duration
	// Services are the services to control, in report order.
	Services []ServiceSetup
	// Proxies is the number of proxies sharing the load.
	Proxies int
	// History is each service's request rate (rps per step) before
	// Start, by service name; a service without history starts empty.
	History map[string]*forecast.Series
	// Events are the announced calendar events, past and future
	// (categories, times — never their effect).
	Events []forecast.Event
	// Featured are the announced events that name the paths they feature
	// (the calendar's X-LBSYS-WARM): the planner warms the cached
	// services' proxies with them before each event starts.
	Featured []Featured
	// NoWarm turns warm lists off (the cold cache a comparison measures
	// warming against); the rest of the plan is unchanged.
	NoWarm bool
	// Scaler tunes the floors.
	Scaler scaler.Config
	// StartupPrior is assumed for a replica's startup until some are
	// observed. Default 3m.
	StartupPrior time.Duration
	// Forecast are the forecaster's options (Horizons is set to Horizon).
	Forecast forecast.Options
	// Horizon is the forecast's reach in steps. Default 30.
	Horizon int
	// ForecastEvery is how often the forecaster runs (the scaler runs at
	// every Decide). Default 5m.
	ForecastEvery time.Duration
	// RetrainEvery is how often the model is retrained on everything
	// seen so far. Default 12h; negative: never.
	RetrainEvery time.Duration
	// Model is a model already trained on History (to share one training
	// between runs); nil: New trains it.
	Model *forecast.Model
	// Uplift tunes the event-uplift model.
	Uplift forecast.UpliftOptions
	// Future is the true load of a service at a time (rps); only the
	// oracle reads it.
	Future func(service string, t time.Time) float64
}

func (s *Setup) defaults() {
	if s.Step <= 0 {
		s.Step = time.Minute
	}
	if s.StartupPrior <= 0 {
		s.StartupPrior = 3 * time.Minute
	}
	if s.Horizon <= 0 {
		s.Horizon = 30
	}
	if s.ForecastEvery <= 0 {
		s.ForecastEvery = 5 * time.Minute
	}
	if s.RetrainEvery == 0 {
		s.RetrainEvery = 12 * time.Hour
	}
	if s.Proxies <= 0 {
		s.Proxies = 1
	}
	s.Forecast.Horizons = []int{s.Horizon}
}

// TrainModel trains the forecaster on the setup's history (the expensive
// step, shared by runs that have the same history).
func TrainModel(ctx context.Context, s Setup) (*forecast.Model, error) {
	s.defaults()
	inputs := make([]forecast.Input, 0, len(s.Services))
	for _, svc := range s.Services {
		h := s.History[svc.Name]
		if h == nil || h.Len() == 0 {
			continue
		}
		inputs = append(inputs, forecast.Input{Series: h, Events: s.Events})
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("no service has history to train on")
	}
	tr, err := forecast.Prepare(inputs, s.Forecast)
	if err != nil {
		return nil, err
	}
	return forecast.Train(ctx, tr, inputs)
}

// svcState is what a controller keeps per service.
type svcState struct {
	setup    ServiceSetup
	series   *forecast.Series // history + live minutes
	capacity scaler.Capacity
	lead     scaler.Lead
	epCap    map[string]*scaler.Capacity
	last     ServiceMinute
	recent   []planner.Minute // last hour, for the planner's latency
	// shares are the last hour's minutes of answered requests and of
	// those a replica answered (the rest the proxies' caches answered):
	// the origin share's evidence.
	shares  []originMinute
	hot     []string       // the cache's hot keys of the last minute
	path    []scaler.Point // latest forecast from its origin on
	expect  map[int64]float64
	uplifts map[string]*forecast.Uplift
	base    *forecast.Baseline
	origin  int
	seen    bool
}

// common is the state every controller shares: the series, the learned
// capacity and startup, the running directive.
type common struct {
	name    string
	s       Setup
	svcs    []*svcState
	current *directive.Directive
	version uint64
	now     time.Time
}

func newCommon(name string, s Setup) *common {
	s.defaults()
	c := &common{name: name, s: s}
	for _, ss := range s.Services {
		st := &svcState{setup: ss, expect: map[int64]float64{}, epCap: map[string]*scaler.Capacity{}}
		st.lead.Prior = s.StartupPrior
		if h := s.History[ss.Name]; h != nil && h.Len() > 0 {
			st.series = &forecast.Series{Name: ss.Name, Start: h.Start, Step: h.Step, Values: append(forecast.Values(nil), h.Values...)}
			// History must end where the run starts: pad or cut.
			want := int(s.Start.Sub(h.Start) / h.Step)
			for st.series.Len() < want {
				st.series.Values = append(st.series.Values, math.NaN())
			}
			if st.series.Len() > want && want >= 0 {
				st.series.Values = st.series.Values[:want]
			}
		} else {
			st.series = &forecast.Series{Name: ss.Name, Start: s.Start, Step: s.Step}
		}
		c.svcs = append(c.svcs, st)
	}
	return c
}

// observe appends a minute to the series and the learners.
func (c *common) observe(m Minute) {
	c.now = m.At
	for _, sm := range m.Services {
		st := c.svc(sm.Service)
		if st == nil {
			continue
		}
		st.last, st.seen = sm, true
		st.hot = sm.HotKeys
		idx := int(m.At.Add(-c.s.Step).Sub(st.series.Start) / st.series.Step)
		for st.series.Len() < idx {
			st.series.Values = append(st.series.Values, math.NaN())
		}
		if idx == st.series.Len() {
			st.series.Values = append(st.series.Values, sm.RPS)
		}
		st.capacity.Observe(scaler.Sample{At: m.At, RPS: sm.ServedRPS, Replicas: float64(sm.Ready), Util: sm.Util, Answers: sm.Answered})
		for _, d := range sm.Startups {
			st.lead.Observe(d)
		}
		for _, e := range sm.Endpoints {
			ec := st.epCap[e.ID]
			if ec == nil {
				ec = &scaler.Capacity{Window: 30}
				st.epCap[e.ID] = ec
			}
			ec.Observe(scaler.Sample{At: m.At, RPS: e.ServedRPS, Replicas: 1, Util: e.Util, Answers: e.Answered})
		}
		st.recent = append(st.recent, planner.Minute{T: m.At, RPS: sm.RPS, P50ms: sm.P50Ms})
		if len(st.recent) > 60 {
			st.recent = st.recent[len(st.recent)-60:]
		}
		// The origin share counts the answered requests only: a shed or
		// failed request reached no replica either, but it is load the
		// replicas should have taken, not a cache's answer. Without a
		// cache the share is 1 (retries and a replica's own errors make
		// it more; it is capped).
		var om originMinute
		if ok := sm.RPS * (1 - sm.ErrorRate); ok > 0 && !math.IsNaN(sm.ErrorRate) && sm.ServedRPS >= 0 {
			om = originMinute{answered: ok, served: sm.ServedRPS}
		}
		st.shares = append(st.shares, om)
		if len(st.shares) > 60 {
			st.shares = st.shares[len(st.shares)-60:]
		}
	}
}

func (c *common) svc(name string) *svcState {
	for _, st := range c.svcs {
		if st.setup.Name == name {
			return st
		}
	}
	return nil
}

// input is the scaler input every controller starts from.
//
// The forecast and the observed rate count every request the proxies
// received; a replica's capacity is learned from the requests that reached
// one. Where the proxies cache the service, the two differ by the caches'
// hits: a replica's capacity is converted into received requests by the
// origin share (the hour's, or its last minutes' when the cache is colder
// now: originShare), or the plan would start a replica for every answer a
// cache gave.
func (c *common) input(st *svcState, now time.Time) scaler.Input {
	cap, _, _ := st.capacity.PerReplica()
	if share := originShare(st.shares); cap > 0 && share < 1 {
		cap /= share
	}
	startup, _ := st.lead.Startup()
	return scaler.Input{Service: st.setup.Name, Now: now, Current: st.last.Ready + st.last.Starting + st.last.Pending, Ready: st.last.Ready,
		Min: st.setup.Min, Max: st.setup.Max, PerReplicaRPS: cap, Startup: startup, ObservedRPS: st.last.RPS}
}

func (c *common) scalerConfig(st *svcState) scaler.Config {
	cfg := c.s.Scaler
	if cfg.TargetUtilization == 0 {
		cfg.TargetUtilization = st.setup.TargetUtilization
	}
	if cfg.Tolerance == 0 {
		cfg.Tolerance = st.setup.Tolerance
	}
	return cfg
}

// endpointCapacity is the learned capacity of every endpoint with enough
// minutes, when they differ enough to be worth weighting (more than 15%
// between the extremes).
func (c *common) endpointCapacity(st *svcState, live []EndpointMinute) map[string]float64 {
	if !st.setup.Weighted || len(live) < 2 {
		return nil
	}
	out := map[string]float64{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, e := range live {
		ec := st.epCap[e.ID]
		if ec == nil {
			return nil
		}
		v, _, ok := ec.PerReplica()
		if !ok {
			return nil
		}
		out[e.ID] = v
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi < 1.15*lo {
		return nil
	}
	return out
}

// plan turns the decisions and paths into a directive with the planner.
func (c *common) plan(now time.Time, model planner.Model, decisions []scaler.Decision, paths map[string][]scaler.Point, withForecast bool) Plan {
	out := Plan{Decisions: decisions, Expected: map[string]float64{}, ExpectedUpper: map[string]float64{}}
	var plans []planner.Plan
	for i, st := range c.svcs {
		d := decisions[i]
		var cur *directive.Service
		if c.current != nil {
			cur = c.current.Services[st.setup.Name]
		}
		path := paths[st.setup.Name]
		for _, pt := range path {
			if !pt.At.Before(now) {
				// The first step from now: what the coming minute should
				// see.
				out.Expected[st.setup.Name], out.ExpectedUpper[st.setup.Name] = pt.Point, pt.Upper
				break
			}
		}
		in := planner.Input{Service: st.setup.Name, RPSPerUnit: 1, Unit: "requests per second", Current: cur, Proxies: c.s.Proxies, Scale: &d,
			Observed: planner.Observed{From: now.Add(-time.Hour), To: now, Service: st.recent},
			Forecast: toForecast(st.setup.Name, now, c.s.Step, path)}
		if !withForecast {
			in.Forecast = forecast.Forecast{} // peers plan replicas only
		}
		in.EndpointCapacity = c.endpointCapacity(st, st.last.Endpoints)
		if withForecast {
			in.Cache = c.cacheInput(st, now)
		}
		p := planner.PlanService(in, model, planner.Options{MaxWhyPoints: 30})
		if p.Section == nil && d.Floor > 0 {
			// No forecast for the planner (peers): the floor alone.
			p.Section = scaleOnly(cur, d)
		}
		if in.Cache != nil && (p.Section != nil || (cur != nil && cur.Cache != nil)) {
			// The planner speaks for the cache whenever it was asked: a
			// list whose event is over must not live on in a section it
			// did not rebuild.
			if p.Section == nil {
				p.Section = scaleOnly(cur, d)
				if d.Floor == 0 {
					p.Section.Scale = cur.Scale
				}
			}
			p.Section.Cache = p.Cache
		}
		if p.Section != nil && p.Section.Admission != nil && !st.setup.Admission {
			p.Section.Admission = nil // the proxies run no limiter for it
		}
		plans = append(plans, p)
	}
	d, err := planner.Directive(c.current, plans)
	if err != nil {
		out.Notes = append(out.Notes, "directive not built: "+err.Error())
		return out
	}
	// A service whose plan is empty keeps nothing stale: drop a floor that
	// its decision no longer asks for.
	for i, st := range c.svcs {
		if sec := d.Services[st.setup.Name]; sec != nil && decisions[i].Floor == 0 && sec.Scale != nil {
			sec.Scale = nil
		}
		if sec := d.Services[st.setup.Name]; sec != nil && sec.Scale == nil && sec.Admission == nil && len(sec.Weights) == 0 && len(sec.SlowStart) == 0 && sec.Cache == nil {
			delete(d.Services, st.setup.Name)
		}
	}
	if c.current != nil && (directive.Equal(c.current, d) || (sameMaterial(c.current, d) && !c.lapsing(now))) {
		// Nothing a proxy or an autoscaler would do differently, and no
		// floor about to lapse: no new version (a change every minute
		// would flood the coordinator's change log).
		return out
	}
	c.version++
	d.Version = c.version
	d.CommittedAt = now
	c.current = d
	out.Directive = d
	return out
}

// cacheInput is what the planner needs to warm a cached service's proxies
// at now (nil: the service is not cached, or warming is off).
func (c *common) cacheInput(st *svcState, now time.Time) *planner.CacheInput {
	cs := st.setup.Cache
	if cs == nil || c.s.NoWarm {
		return nil
	}
	in := &planner.CacheInput{Now: now, Prefixes: cs.Prefixes, WarmRate: cs.WarmRate, Freshness: cs.Freshness, Heuristic: cs.Heuristic,
		HotKeys: st.hot, LoadRPS: st.last.RPS, Options: cs.Options}
	for _, f := range c.s.Featured {
		if len(f.Paths) == 0 || (len(f.Services) > 0 && !slices.Contains(f.Services, st.setup.Name)) {
			continue
		}
		in.Events = append(in.Events, planner.CacheEvent{Name: f.Name, Category: f.Category, Start: f.Start, End: f.End, Paths: f.Paths})
	}
	return in
}

// sameMaterial reports whether two directives ask the same of proxies and
// autoscalers: the same weights, ramps, admission bounds, cache hints and
// replica floors, whatever their reasons, ready-by and lapse times say.
func sameMaterial(a, b *directive.Directive) bool {
	strip := func(d *directive.Directive) *directive.Directive {
		c := d.WithoutReasons()
		for _, s := range c.Services {
			if s.Scale != nil {
				s.Scale.Until, s.Scale.By, s.Scale.Current = nil, nil, 0
			}
		}
		return c
	}
	return directive.Equal(strip(a), strip(b))
}

// lapsing reports whether a floor of the running directive lapses within
// half a hold: time to renew it.
func (c *common) lapsing(now time.Time) bool {
	hold := c.s.Scaler.WithDefaults().Hold
	for _, s := range c.current.Services {
		if s.Scale != nil && s.Scale.Until != nil && s.Scale.Until.Before(now.Add(hold/2)) {
			return true
		}
	}
	return false
}

func scaleOnly(cur *directive.Service, d scaler.Decision) *directive.Service {
	sec := &directive.Service{}
	if cur != nil {
		c := *cur
		sec = &c
	}
	u := d.Until.UTC()
	sec.Scale = &directive.Scale{Replicas: d.Floor, Until: &u, Why: &directive.Reason{Text: d.Why, Driver: d.Driver,
		LoadRPS: math.Round(d.LoadRPS*1000) / 1000, PerReplicaRPS: math.Round(d.PerReplicaRPS*1000) / 1000}}
	if !d.ReadyBy.IsZero() {
		by := d.ReadyBy.UTC()
		sec.Scale.By = &by
	}
	return sec
}

// toForecast wraps a path as the planner's forecast (one horizon).
func toForecast(name string, origin time.Time, step time.Duration, path []scaler.Point) forecast.Forecast {
	f := forecast.Forecast{Series: name, Origin: origin, Step: step}
	if len(path) == 0 {
		return f
	}
	h := forecast.HorizonForecast{Steps: len(path)}
	for _, p := range path {
		h.Times = append(h.Times, p.At.UTC().Format(time.RFC3339))
		h.Point = append(h.Point, p.Point)
		h.Upper = append(h.Upper, p.Upper)
	}
	f.Horizons = []forecast.HorizonForecast{h}
	return f
}

// Predictive is lbsys's controller: the stacking forecaster for the
// services' own dynamics, the event uplift learned from past events of
// each announced category, the scaler's floors and the planner's
// admission bounds.
type Predictive struct {
	*common
	model     *forecast.Model
	trainedAt time.Time
	lastFc    time.Time
	notes     []string
}

// NewPredictive builds the controller; it trains the forecaster on the
// history unless s.Model is given.
func NewPredictive(ctx context.Context, s Setup) (*Predictive, error) {
	p := &Predictive{common: newCommon("predictive", s)}
	p.model = p.s.Model
	if p.model == nil {
		m, err := TrainModel(ctx, p.s)
		if err != nil {
			p.notes = append(p.notes, "forecaster not trained: "+err.Error()+"; floors from announced events and the baseline only")
		}
		p.model = m
	}
	p.trainedAt = p.s.Start
	p.learnUplifts()
	return p, nil
}

// Name implements Controller.
func (p *Predictive) Name() string { return p.name }

// Observe implements Controller.
func (p *Predictive) Observe(m Minute) { p.observe(m) }

// learnUplifts relearns each service's event uplifts on what it has seen.
func (p *Predictive) learnUplifts() {
	for _, st := range p.svcs {
		if st.series.Len() == 0 {
			continue
		}
		st.uplifts = forecast.LearnUplift(st.series, p.s.Events, p.s.Uplift)
	}
}

func (p *Predictive) retrain(now time.Time) {
	if p.s.RetrainEvery < 0 || now.Sub(p.trainedAt) < p.s.RetrainEvery {
		return
	}
	s := p.s
	s.History = map[string]*forecast.Series{}
	for _, st := range p.svcs {
		s.History[st.setup.Name] = st.series
	}
	m, err := TrainModel(context.Background(), s)
	p.trainedAt = now
	if err != nil {
		p.notes = append(p.notes, "retraining failed, the previous model stays: "+err.Error())
		return
	}
	p.model = m
	p.learnUplifts()
	p.notes = append(p.notes, fmt.Sprintf("forecaster retrained at %s on %d steps", now.UTC().Format(time.RFC3339), p.svcs[0].series.Len()))
}

// refresh runs the forecaster and rebuilds the baselines.
func (p *Predictive) refresh(now time.Time) {
	p.lastFc = now
	var inputs []forecast.Input
	for _, st := range p.svcs {
		st.path = nil
		st.base = forecast.NewBaseline(st.series, p.s.Events, p.s.Uplift)
		st.origin = st.series.Len() - 1
		for st.origin > 0 && math.IsNaN(st.series.Values[st.origin]) {
			st.origin--
		}
		if p.model != nil && st.series.Len() > 0 {
			inputs = append(inputs, forecast.Input{Series: st.series, Events: p.s.Events})
		}
	}
	if p.model == nil || len(inputs) == 0 {
		return
	}
	fcs, err := p.model.Forecast(inputs)
	if err != nil {
		p.notes = append(p.notes, "forecast failed: "+err.Error())
		return
	}
	for _, f := range fcs {
		st := p.svc(f.Series)
		if st == nil || len(f.Horizons) == 0 {
			continue
		}
		h := f.Horizons[0]
		for i := range h.Point {
			at := f.Origin.Add(time.Duration(i+1) * f.Step)
			pt, up := math.Max(0, h.Point[i]), math.Max(0, h.Upper[i])
			st.path = append(st.path, scaler.Point{At: at, Point: pt, Upper: math.Max(pt, up)})
			st.expect[at.Unix()] = math.Max(pt, up)
		}
	}
}

// events are the announced events whose effect reaches [now, until], with
// their expected load on the service.
func (p *Predictive) events(st *svcState, now, from, until time.Time) []scaler.Event {
	var out []scaler.Event
	for _, e := range p.s.Events {
		u := st.uplifts[e.Category]
		effectEnd := e.End
		if u != nil {
			effectEnd = e.End.Add(time.Duration(len(u.After)) * u.Step)
		}
		if effectEnd.Before(from) || e.Start.After(until) {
			continue
		}
		se := scaler.Event{Category: e.Category, Start: e.Start, End: e.End, Uplift: u.String()}
		if u != nil && st.base != nil {
			at, mid, up := forecast.EventLoad(st.base, u, e.Start, e.End, st.origin, st.base.LevelFor(st.origin, e))
			// Once the event is under way its own minutes say how large it
			// is: rescale the rest of it by what was seen against the
			// median expectation (the upper estimate was for an event as
			// large as the largest past ones; this one may be typical, or
			// larger still).
			r, seen := p.nowcast(st, at, mid, e.End, now)
			for i := range at {
				pt := scaler.Point{At: at[i], Point: mid[i], Upper: up[i]}
				if seen && !at[i].Before(now) && at[i].Before(e.End) {
					pt.Point, pt.Upper = mid[i]*r, mid[i]*r*nowcastMargin
				}
				se.Load = append(se.Load, pt)
			}
			if seen {
				se.UnderWay = true
				se.Uplift += fmt.Sprintf("; under way: %.2f× the median expectation so far", r)
			}
		}
		out = append(out, se)
	}
	return out
}

// nowcastMinutes is how many minutes of an event must have been seen
// before its own load rescales its expectation; nowcastMargin is the
// upper estimate's margin over the rescaled median (none: the scaler
// plans an event under way at the autoscaler's tolerance, which is the
// margin).
const (
	nowcastMinutes = 3
	nowcastMargin  = 1.0
	nowcastLate    = 2
)

// nowcast compares the last nowcastMinutes observed minutes of an event
// (while it lasts, before end) with its median expectation; the ratio
// (clamped to [0.2, 5]) and whether there were enough minutes.
func (p *Predictive) nowcast(st *svcState, at []time.Time, mid []float64, end, now time.Time) (float64, bool) {
	if len(at) == 0 || now.Sub(at[0]) < nowcastMinutes*p.s.Step {
		return 1, false
	}
	var obs, exp float64
	n := 0
	for i, t := range at {
		if t.Before(now.Add(-nowcastMinutes*p.s.Step)) || !t.Before(now) || !t.Before(end) {
			continue
		}
		k := int(t.Sub(st.series.Start) / st.series.Step)
		if k < 0 || k >= st.series.Len() || math.IsNaN(st.series.Values[k]) || !(mid[i] > 0) {
			continue
		}
		// The event may run a little behind its past ones (sessions
		// reach the cart and the checkout minutes after the catalog;
		// telemetry lands late): the expectation a minute is held to is
		// the lowest of the profile over the nowcastLate steps before,
		// so a rise seen late is not read as a small event.
		e := mid[i]
		for j := max(0, i-nowcastLate); j < i; j++ {
			e = math.Min(e, mid[j])
		}
		obs += st.series.Values[k]
		exp += e
		n++
	}
	if n < nowcastMinutes || !(exp > 0) {
		return 1, false
	}
	return math.Max(0.2, math.Min(5, obs/exp)), true
}

// Decide implements Controller.
func (p *Predictive) Decide(now time.Time) Plan {
	p.retrain(now)
	if p.lastFc.IsZero() || now.Sub(p.lastFc) >= p.s.ForecastEvery {
		p.refresh(now)
	}
	decisions := make([]scaler.Decision, len(p.svcs))
	paths := map[string][]scaler.Point{}
	for i, st := range p.svcs {
		in := p.input(st, now)
		cfg := p.scalerConfig(st).WithDefaults()
		for _, pt := range st.path {
			if !pt.At.Before(now) {
				in.Forecast = append(in.Forecast, pt)
			}
		}
		in.Events = p.events(st, now, now.Add(-time.Minute), now.Add(in.Startup+cfg.Warmup+cfg.Margin+time.Minute))
		// What was expected for the minute just observed: the forecast's
		// upper band, or an event's expected load, whichever is larger.
		last := now.Add(-p.s.Step)
		exp := st.expect[last.Unix()]
		for _, e := range in.Events {
			for _, l := range e.Load {
				if !l.At.After(last) && l.At.Add(p.s.Step).After(last) {
					exp = math.Max(exp, l.Upper)
				}
			}
		}
		in.ExpectedRPS = exp
		decisions[i] = scaler.Decide(in, cfg)
		paths[st.setup.Name] = mergeEvents(in.Forecast, in.Events)
	}
	model := planner.Model{Name: forecast.Ensemble, RunID: "sim-" + p.trainedAt.UTC().Format("20060102T1504")}
	out := p.plan(now, model, decisions, paths, true)
	out.Notes = append(p.notes, out.Notes...)
	p.notes = nil
	return out
}

// mergeEvents is the forecast path with each step raised to the events'
// expected load (the path the planner sizes admission for).
func mergeEvents(path []scaler.Point, evs []scaler.Event) []scaler.Point {
	byAt := map[int64]scaler.Point{}
	for _, p := range path {
		byAt[p.At.Unix()] = p
	}
	for _, e := range evs {
		for _, l := range e.Load {
			q, ok := byAt[l.At.Unix()]
			if !ok {
				q = l
			} else {
				q.Point, q.Upper = math.Max(q.Point, l.Point), math.Max(q.Upper, l.Upper)
			}
			byAt[l.At.Unix()] = q
		}
	}
	out := make([]scaler.Point, 0, len(byAt))
	for _, p := range byAt {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

var _ Controller = (*Predictive)(nil)

// minOriginShare bounds the origin share a cached service's plan assumes:
// whatever the caches answered, a twentieth of the requests is planned to
// reach the replicas (a purge or a cold cache sends them there at once).
const minOriginShare = 0.05

// originRecent is how many of the last minutes make the recent origin
// share, which the plan takes when the cache is colder now than over the
// hour.
const originRecent = 10

// originMinute is a minute's answered requests (per second) and the part
// of them a replica answered.
type originMinute struct{ answered, served float64 }

// originShare is the share of the answered requests that reached a
// replica: over the hour, or over its last originRecent minutes when that
// is more (a cache that turned colder plans more, at once), each counted
// by requests, so that a quiet minute's few requests weigh as little as
// they tell. The largest single minute would not do: with a few dozen
// requests a minute, one unlucky minute or the warm fetches before a sale
// triple it, and a cold start an hour ago would still count. At least
// minOriginShare, at most 1, and 1 when nothing is known.
func originShare(mins []originMinute) float64 {
	share := func(ms []originMinute) (float64, bool) {
		var ok, served float64
		for _, m := range ms {
			ok += m.answered
			served += m.served
		}
		if ok <= 0 {
			return 0, false
		}
		return served / ok, true
	}
	hour, known := share(mins)
	if !known {
		return 1
	}
	if recent, ok := share(mins[max(0, len(mins)-originRecent):]); ok {
		hour = math.Max(hour, recent)
	}
	return math.Min(1, math.Max(hour, minOriginShare))
}
