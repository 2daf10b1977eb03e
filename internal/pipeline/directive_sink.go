package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/store"
)

// Telemetry metrics the directive planner reads (docs/ingest.md).
const (
	ThroughputMetric = "requests"
	LatencyMetric    = "p50_ms"
)

// Defaults of DirectiveSink.
const (
	// DefaultObserve is how much telemetry the planner reads, back from
	// the newest point: a day holds a daily cycle, so an endpoint's
	// demonstrated throughput includes the day's busy hours.
	DefaultObserve = 24 * time.Hour
	// DefaultCoordinatorTimeout bounds the sink's calls to the
	// coordinator together (each call has the client's own timeout).
	DefaultCoordinatorTimeout = 30 * time.Second
)

// Load units: how the forecast's values become requests per second.
const (
	// UnitAuto reads the unit from the store series' source: telemetry
	// records are one second each and Prometheus imports are rate()s, so
	// their values are requests per second; any other source (CSV traces)
	// holds counts per sample, divided by the sample interval.
	UnitAuto = "auto"
	// UnitRPS: the values are requests per second.
	UnitRPS = "rps"
	// UnitPerSample: the values count requests per native sample.
	UnitPerSample = "per-sample"
)

// ProposalKeyPrefix starts the idempotency key of every change the sink
// proposes (the key is this and the run ID): a retried delivery of one run
// returns the change it already created.
const ProposalKeyPrefix = "lbsys-pipeline:"

// reasonPrefix starts the reason of every change the sink proposes, so
// that it finds its own earlier proposals.
const reasonPrefix = "lbsys pipeline run "

// Coordinator is the part of the Gaia client (*client.Client) the
// directive sink uses.
type Coordinator interface {
	Directive(ctx context.Context, version uint64, stale bool) (*directive.Directive, error)
	Propose(ctx context.Context, r change.ProposeRequest) (*change.Change, error)
	Changes(ctx context.Context, state string, limit int) ([]change.ChangeSummary, error)
	Decide(ctx context.Context, id uint64, action, reason string) (*change.Change, error)
}

// DirectiveSink closes the loop from forecasts to directives: for every
// pushed service-level forecast it plans the service's directive section
// (internal/planner) from the forecast, the telemetry the store holds of
// the service's endpoints (ThroughputMetric, LatencyMetric) and the
// coordinator's stable directive, and proposes the whole directive to the
// coordinator as a standard change with an idempotency key from the run.
//
// A standard change inside the coordinator's policy is authorized at once;
// one outside it (a weight moving more than the policy allows) is canceled
// by the coordinator, and the sink proposes the same directive as a normal
// change, which waits for an approver. Either way the sink withdraws its
// own earlier normal changes still awaiting approval (they are stale).
//
// Deliver fails when the coordinator cannot be reached or refuses the
// proposal; the Pusher then records nothing as pushed and the next run
// proposes again. With DryRun the sink plans and keeps the directive for
// Result but proposes nothing (without a Coordinator it plans against an
// empty directive).
type DirectiveSink struct {
	Store  *store.Store
	Source *StoreSource
	// Coordinator receives the proposal; nil only with DryRun.
	Coordinator Coordinator
	DryRun      bool
	// Observe is the telemetry window (default DefaultObserve).
	Observe time.Duration
	// LoadUnit is UnitAuto (default), UnitRPS or UnitPerSample.
	LoadUnit string
	// Planner tunes the arithmetic.
	Planner planner.Options
	// Timeout bounds the coordinator calls of one delivery (default
	// DefaultCoordinatorTimeout).
	Timeout time.Duration

	mu     sync.Mutex
	result *DirectiveResult
}

// DirectiveResult is what the sink did in its last delivery.
type DirectiveResult struct {
	Run    string `json:"run"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Base is the stable version planned against (0: none).
	Base uint64 `json:"base_version"`
	// Outcome summarises: "auto-approved", "awaiting approval",
	// "refused", "unchanged", "nothing to plan" or "dry run".
	Outcome string `json:"outcome"`
	// Directive is the whole directive planned (proposed unless DryRun or
	// unchanged).
	Directive *directive.Directive `json:"directive,omitempty"`
	Plans     []planner.Plan       `json:"plans"`
	// Standard is the standard change; Normal the normal change proposed
	// when the standard one was outside the policy.
	Standard *ProposedChange `json:"standard,omitempty"`
	Normal   *ProposedChange `json:"normal,omitempty"`
	// Withdrawn lists earlier pipeline changes canceled as stale.
	Withdrawn []uint64 `json:"withdrawn,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}

// ProposedChange is the coordinator's answer to a proposal.
type ProposedChange struct {
	ID      uint64         `json:"id"`
	Type    change.Type    `json:"type"`
	State   change.State   `json:"state"`
	Outcome change.Outcome `json:"outcome,omitempty"`
	Detail  string         `json:"detail,omitempty"`
	Key     string         `json:"key"`
	// Policy lists why the assessment found it outside the standard
	// policy, if it did.
	Policy []string `json:"policy,omitempty"`
}

// Result returns what the last delivery did (nil before any).
func (k *DirectiveSink) Result() *DirectiveResult {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.result
}

func (k *DirectiveSink) setResult(r *DirectiveResult) {
	k.mu.Lock()
	k.result = r
	k.mu.Unlock()
}

// Deliver implements Sink.
func (k *DirectiveSink) Deliver(ctx context.Context, d Delivery) error {
	if k.Store == nil || k.Source == nil {
		return errors.New("directive sink: needs a store and its source")
	}
	if k.Coordinator == nil && !k.DryRun {
		return errors.New("directive sink: no coordinator configured (pass --coordinator, or --dry-run to only print the plan)")
	}
	switch k.LoadUnit {
	case "", UnitAuto, UnitRPS, UnitPerSample:
	default:
		return fmt.Errorf("directive sink: load unit %q: use %s, %s or %s", k.LoadUnit, UnitAuto, UnitRPS, UnitPerSample)
	}
	res := &DirectiveResult{Run: d.RunID, DryRun: k.DryRun}
	defer k.setResult(res)
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = DefaultCoordinatorTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var current *directive.Directive
	if k.Coordinator != nil {
		cur, err := k.Coordinator.Directive(cctx, 0, false)
		var ce *client.Error
		switch {
		case errors.As(err, &ce) && ce.Status == http.StatusNotFound:
			// Version 0 asks for the stable version; 404 means none was
			// committed yet.
		case err != nil:
			return fmt.Errorf("directive sink: reading the coordinator's current directive: %w", err)
		default:
			current = cur
			res.Base = cur.Version
		}
	}

	model := planner.Model{Name: forecast.Ensemble, RunID: d.RunID, ModelID: d.ModelID}
	for _, fc := range d.Forecasts.Forecasts {
		o, ok := k.Source.Origin(fc.Series)
		if !ok {
			return fmt.Errorf("directive sink: series %q was not read from the store", fc.Series)
		}
		if o.Endpoint != "" {
			continue // directives are per service; endpoint forecasts stay in the store
		}
		in, err := k.input(ctx, o, fc, d.Forecasts.HorizonLabels, current)
		if err != nil {
			return err
		}
		res.Plans = append(res.Plans, planner.PlanService(in, model, k.Planner))
	}
	planned := 0
	for _, p := range res.Plans {
		if p.Section != nil {
			planned++
		}
	}
	if planned == 0 {
		res.Outcome = "nothing to plan"
		res.Notes = append(res.Notes, "no service had telemetry to plan from; nothing proposed")
		return nil
	}
	dir, err := planner.Directive(current, res.Plans)
	if err != nil {
		return fmt.Errorf("directive sink: %w", err)
	}
	res.Directive = dir
	if k.DryRun {
		res.Outcome = "dry run"
		return nil
	}
	if current != nil && directive.Equal(current.WithoutReasons(), dir.WithoutReasons()) {
		// Only the evidence differs: a new version would change nothing
		// on any proxy. The forecast itself is in the store.
		res.Outcome = "unchanged"
		res.Notes = append(res.Notes, fmt.Sprintf("the plan asks for what version %d already does (only why differs); nothing proposed", current.Version))
		return nil
	}

	var names []string
	for _, p := range res.Plans {
		if p.Section != nil {
			names = append(names, p.Service)
		}
	}
	reason := fmt.Sprintf("%s%s: forecast-driven plan for %s (model %s, blessed)", reasonPrefix, d.RunID, strings.Join(names, ", "), model)
	key := ProposalKeyPrefix + d.RunID
	// The plan is conditional on the version it was made on: if another
	// change becomes stable first, the coordinator refuses or cancels this
	// one (outcome stale) instead of letting it undo the other's
	// differences, and the next run plans on top of it.
	ch, err := k.Coordinator.Propose(cctx, change.ProposeRequest{Type: change.Standard, Reason: reason, Directive: dir, IdempotencyKey: key, IfStable: res.Base})
	if err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Status == http.StatusConflict {
			return fmt.Errorf("directive sink: the stable version moved on from %d while the plan was made; nothing proposed, run again to plan on the new version: %w", res.Base, err)
		}
		return fmt.Errorf("directive sink: proposing the directive as a standard change: %w", err)
	}
	res.Standard = proposed(ch, key)
	mine := ch.ID
	switch {
	case ch.State == change.Canceled && ch.Outcome == change.Rejected:
		// Outside the standard policy: an approver decides.
		nkey := key + ":normal"
		reason := reason + "; outside the standard-change policy (" + ch.Detail + ")"
		// The policy notes can be long; an approver reads the reason in
		// `lbsys change list` and the audit log, and the notes stay whole
		// in the standard change's assessment.
		n, err := k.Coordinator.Propose(cctx, change.ProposeRequest{Type: change.Normal, Reason: truncate(reason, 2000), Directive: dir, IdempotencyKey: nkey, IfStable: res.Base})
		if err != nil {
			return fmt.Errorf("directive sink: the standard change %d was outside the policy, and proposing it as a normal change failed: %w", ch.ID, err)
		}
		res.Normal = proposed(n, nkey)
		mine = n.ID
		res.Outcome = "awaiting approval"
		if n.State != change.Authorize {
			res.Outcome = string(n.State) // a replayed key: the change moved on since
		}
	case ch.State == change.Canceled:
		res.Outcome = "refused"
	default:
		res.Outcome = "auto-approved"
	}
	res.Withdrawn, res.Notes = k.withdraw(cctx, mine, res.Base, ch.Requester, d.RunID, res.Notes)
	return nil
}

// withoutWhy returns a copy of d without the why blocks.
func proposed(ch *change.Change, key string) *ProposedChange {
	p := &ProposedChange{ID: ch.ID, Type: ch.Type, State: ch.State, Outcome: ch.Outcome, Detail: ch.Detail, Key: key}
	if a := ch.Assessment; a != nil && !a.WithinPolicy {
		p.Policy = a.Notes
	}
	return p
}

// withdraw cancels the earlier normal changes this requester's pipeline
// proposed that still await approval: the new proposal supersedes them,
// and approving a stale one would apply an old forecast. Failures are
// notes: the new change stands either way.
func (k *DirectiveSink) withdraw(ctx context.Context, keep, base uint64, requester, run string, notes []string) ([]uint64, []string) {
	open, err := k.Coordinator.Changes(ctx, "open", 0)
	if err != nil {
		return nil, append(notes, "could not list open changes to withdraw stale pipeline proposals: "+err.Error())
	}
	var done []uint64
	for _, c := range open {
		ours := c.Requester == requester && strings.HasPrefix(c.Reason, reasonPrefix)
		if c.ID != keep && !ours {
			// A directive is the whole desired state. This plan is
			// conditional on its base version; the other change may not be.
			notes = append(notes, fmt.Sprintf("change %d (%s, %s, by %s) is open too; if it becomes stable first, this plan (made on version %d) is canceled as stale and the next run plans on top of it; if this one does, the other replaces it unless it was proposed with if_stable",
				c.ID, c.Type, c.State, c.Requester, base))
		}
		if c.ID >= keep || c.Type != change.Normal || c.State != change.Authorize || !ours {
			continue
		}
		if _, err := k.Coordinator.Decide(ctx, c.ID, "cancel", fmt.Sprintf("superseded by change %d of pipeline run %s", keep, run)); err != nil {
			notes = append(notes, fmt.Sprintf("could not withdraw the stale change %d: %v", c.ID, err))
			continue
		}
		done = append(done, c.ID)
	}
	sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
	return done, notes
}

// input gathers the planner's input for one service.
func (k *DirectiveSink) input(ctx context.Context, o SeriesOrigin, fc forecast.Forecast, labels []string, current *directive.Directive) (planner.Input, error) {
	in := planner.Input{Service: o.Service, Forecast: fc, HorizonLabels: labels}
	if current != nil {
		in.Current, in.CurrentCommittedAt, in.CurrentVersion = current.Services[o.Service], current.CommittedAt, current.Version
	}
	var err error
	if in.RPSPerUnit, in.Unit, err = k.forecastUnit(ctx, o); err != nil {
		return in, err
	}
	if in.Observed, err = k.observed(ctx, o.Service); err != nil {
		return in, err
	}
	return in, nil
}

// forecastUnit decides how the forecast's values become requests per
// second (see UnitAuto).
func (k *DirectiveSink) forecastUnit(ctx context.Context, o SeriesOrigin) (float64, string, error) {
	if k.LoadUnit == UnitRPS {
		return 1, "requests per second (--load-unit rps)", nil
	}
	if len(o.Series) == 0 {
		return 1, "requests per second (no store series to tell)", nil
	}
	ss, err := k.Store.ListSeries(ctx, store.SeriesFilter{Service: o.Service, Metric: k.Source.metric()})
	if err != nil {
		return 0, "", err
	}
	var s store.Series
	for _, x := range ss {
		if x.ID == o.Series[0] {
			s = x
		}
	}
	f, unit, err := k.seriesUnit(ctx, s, k.LoadUnit == UnitPerSample)
	return f, unit, err
}

// seriesUnit is the factor turning a series' values into requests per
// second: 1 for per-second sources, 1/interval for counts per sample.
func (k *DirectiveSink) seriesUnit(ctx context.Context, s store.Series, perSample bool) (float64, string, error) {
	if !perSample && (s.Source == "telemetry" || s.Source == "prometheus") {
		return 1, s.Source + " series: requests per second", nil
	}
	iv, err := k.sampleInterval(ctx, s)
	if err != nil {
		return 0, "", err
	}
	return 1 / iv.Seconds(), fmt.Sprintf("%s series: requests per %s sample ÷ %g", s.Source, iv, iv.Seconds()), nil
}

// sampleInterval is a series' native sample spacing: the modal gap of its
// raw points over the 6 hours before its newest (raw points are kept 48 h
// back from the newest, so they are there), else of its 1-minute buckets
// over a week, else a minute.
func (k *DirectiveSink) sampleInterval(ctx context.Context, s store.Series) (time.Duration, error) {
	if s.ID == 0 || s.Last.IsZero() {
		return time.Minute, nil
	}
	to := s.Last.Add(time.Millisecond)
	for _, r := range []struct {
		res  store.Resolution
		back time.Duration
	}{{store.Raw, 6 * time.Hour}, {store.Minute, 7 * 24 * time.Hour}} {
		pts, err := k.Store.Range(ctx, s.ID, to.Add(-r.back), to, r.res)
		if err != nil {
			return 0, err
		}
		if len(pts) < 2 {
			continue
		}
		ts := make([]int64, len(pts))
		for i, p := range pts {
			ts[i] = p.T
		}
		if iv := modalStep(ts); iv > 0 {
			return iv, nil
		}
	}
	return time.Minute, nil
}

// observed reads the service's telemetry over the observation window,
// ending at its newest point: per endpoint the request rate and median
// latency per minute, and the service-level latency.
func (k *DirectiveSink) observed(ctx context.Context, service string) (planner.Observed, error) {
	var ob planner.Observed
	all, err := k.Store.ListSeries(ctx, store.SeriesFilter{Service: service})
	if err != nil {
		return ob, err
	}
	var rel []store.Series
	for _, s := range all {
		if (s.Metric == ThroughputMetric && s.Endpoint != "") || s.Metric == LatencyMetric {
			rel = append(rel, s)
			if s.Last.After(ob.To) {
				ob.To = s.Last
			}
		}
	}
	if len(rel) == 0 {
		return ob, nil
	}
	window := k.Observe
	if window <= 0 {
		window = DefaultObserve
	}
	ob.To = ob.To.Truncate(time.Minute).Add(time.Minute)
	ob.From = ob.To.Add(-window)
	ids := make([]int64, len(rel))
	for i, s := range rel {
		ids[i] = s.ID
	}
	pts, err := k.Store.RangeMany(ctx, ids, ob.From, ob.To, store.Minute)
	if err != nil {
		return ob, err
	}
	type cell struct{ rps, p50 float64 }
	eps := map[string]map[int64]*cell{}
	svc := map[int64]*cell{}
	at := func(m map[int64]*cell, t int64) *cell {
		c := m[t]
		if c == nil {
			c = &cell{rps: math.NaN(), p50: math.NaN()}
			m[t] = c
		}
		return c
	}
	for _, s := range rel {
		m := svc
		if s.Endpoint != "" {
			if eps[s.Endpoint] == nil {
				eps[s.Endpoint] = map[int64]*cell{}
			}
			m = eps[s.Endpoint]
		}
		f := 1.0
		if s.Metric == ThroughputMetric {
			if f, _, err = k.seriesUnit(ctx, s, false); err != nil {
				return ob, err
			}
		}
		for _, p := range pts[s.ID] {
			c := at(m, p.T)
			if s.Metric == ThroughputMetric {
				c.rps = p.V * f
			} else {
				c.p50 = p.V
			}
		}
	}
	minutes := func(m map[int64]*cell) []planner.Minute {
		out := make([]planner.Minute, 0, len(m))
		for t, c := range m {
			out = append(out, planner.Minute{T: time.UnixMilli(t).UTC(), RPS: c.rps, P50ms: c.p50})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].T.Before(out[j].T) })
		return out
	}
	ob.Service = minutes(svc)
	names := make([]string, 0, len(eps))
	for n := range eps {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ob.Endpoints = append(ob.Endpoints, planner.Endpoint{Address: n, Minutes: minutes(eps[n])})
	}
	return ob, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// FanOut delivers to every sink in order and stops at the first error
// (the Pusher then records nothing as pushed). Put the store first: it is
// local, and a forecast written there but not proposed is overwritten by
// the next run, while a proposal is not taken back.
type FanOut []Sink

// Deliver implements Sink.
func (f FanOut) Deliver(ctx context.Context, d Delivery) error {
	for _, s := range f {
		if err := s.Deliver(ctx, d); err != nil {
			return err
		}
	}
	return nil
}
