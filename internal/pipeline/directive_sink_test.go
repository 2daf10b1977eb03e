package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/store"
)

// fakeCoordinator keeps changes in memory the way Gaia answers proposals:
// a known idempotency key returns its change; a standard change is
// scheduled, or canceled as rejected when reject is set; a normal one
// waits in authorize.
type fakeCoordinator struct {
	mu        sync.Mutex
	stable    *directive.Directive
	changes   []*change.Change
	keys      map[string]uint64
	reject    bool
	err       error
	proposals int
	canceled  []uint64
	ifStable  []uint64 // the if_stable of every proposal
	// moveAfterRead: another change becomes stable right after the sink
	// read the stable directive.
	moveAfterRead bool
}

func (f *fakeCoordinator) Directive(context.Context, uint64, bool) (*directive.Directive, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if f.stable == nil {
		return nil, &client.Error{Status: http.StatusNotFound, Body: directive.ErrorBody{Error: "no directive has been committed yet"}}
	}
	d := f.stable.Clone()
	if f.moveAfterRead {
		f.stable.Version++
	}
	return d, nil
}

func (f *fakeCoordinator) Propose(_ context.Context, r change.ProposeRequest) (*change.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposals++
	if err := r.Directive.Validate(); err != nil {
		return nil, &client.Error{Status: 422, Body: directive.ErrorBody{Error: err.Error()}}
	}
	f.ifStable = append(f.ifStable, r.IfStable)
	if id, ok := f.keys[r.IdempotencyKey]; ok && r.IdempotencyKey != "" {
		c := *f.changes[id-1]
		return &c, nil
	}
	if r.IfStable != 0 && (f.stable == nil || f.stable.Version != r.IfStable) {
		return nil, &client.Error{Status: http.StatusConflict, Body: directive.ErrorBody{Error: "if_stable: the stable version is not " + fmt.Sprint(r.IfStable)}}
	}
	c := &change.Change{ID: uint64(len(f.changes) + 1), Type: r.Type, Requester: "pipeline", Reason: r.Reason, Directive: r.Directive, Key: r.IdempotencyKey,
		Assessment: &change.Assessment{WithinPolicy: true}}
	switch {
	case r.Type == change.Standard && f.reject:
		c.State, c.Outcome, c.Detail = change.Canceled, change.Rejected, "outside the standard-change policy: services[catalog].weights[x] moves 1 -> 1.5 (50.0% > 20%)"
		c.Assessment = &change.Assessment{Notes: []string{"services[catalog].weights[x] moves 1 -> 1.5 (50.0% > 20%)"}}
	case r.Type == change.Standard:
		c.State = change.Scheduled
	default:
		c.State = change.Authorize
	}
	f.changes = append(f.changes, c)
	if f.keys == nil {
		f.keys = map[string]uint64{}
	}
	f.keys[r.IdempotencyKey] = c.ID
	cp := *c
	return &cp, nil
}

func (f *fakeCoordinator) Changes(context.Context, string, int) ([]change.ChangeSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []change.ChangeSummary
	for i := len(f.changes) - 1; i >= 0; i-- {
		c := f.changes[i]
		if c.State != change.Closed && c.State != change.Canceled {
			out = append(out, change.ChangeSummary{ID: c.ID, Type: c.Type, State: c.State, Requester: c.Requester, Reason: c.Reason})
		}
	}
	return out, nil
}

func (f *fakeCoordinator) Decide(_ context.Context, id uint64, action, _ string) (*change.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if action != "cancel" {
		return nil, errors.New("fake: only cancel")
	}
	f.changes[id-1].State = change.Canceled
	f.canceled = append(f.canceled, id)
	c := *f.changes[id-1]
	return &c, nil
}

var dsNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func writeSeries(t *testing.T, st *store.Store, key store.SeriesKey, source string, start time.Time, step time.Duration, n int, f func(i int) float64) {
	t.Helper()
	ctx := context.Background()
	id, err := st.EnsureSeries(ctx, key, source)
	if err != nil {
		t.Fatal(err)
	}
	var ss []store.Sample
	for i := 0; i < n; i++ {
		ss = append(ss, store.Sample{Series: id, T: start.Add(time.Duration(i) * step).UnixMilli(), V: f(i)})
	}
	if _, err := st.WritePoints(ctx, ss); err != nil {
		t.Fatal(err)
	}
}

// directiveStore holds catalog's load as a CSV trace (requests per
// 5-minute sample, about 10 rps) and two hours of telemetry of its two
// endpoints: 10.0.0.1 at 6 rps and 40 ms, 10.0.0.2 at 4 rps and 60 ms.
func directiveStore(t *testing.T) (*store.Store, *StoreSource) {
	t.Helper()
	st := openStore(t)
	day := 288
	writeSeries(t, st, store.SeriesKey{Service: "catalog", Metric: "requests"}, "csv", dsNow.Add(-2*24*time.Hour), 5*time.Minute, 2*day,
		func(i int) float64 { return 3000 + 600*math.Sin(2*math.Pi*float64(i)/float64(day)) })
	for _, e := range []struct {
		addr     string
		rps, p50 float64
	}{{"10.0.0.1:9001", 6, 40}, {"10.0.0.2:9001", 4, 60}} {
		from := dsNow.Add(-2 * time.Hour)
		writeSeries(t, st, store.SeriesKey{Service: "catalog", Endpoint: e.addr, Metric: ThroughputMetric}, "telemetry", from, time.Minute, 120,
			func(int) float64 { return e.rps })
		writeSeries(t, st, store.SeriesKey{Service: "catalog", Endpoint: e.addr, Metric: LatencyMetric}, "telemetry", from, time.Minute, 120,
			func(int) float64 { return e.p50 })
	}
	src := &StoreSource{Store: st, Services: []string{"catalog"}, Endpoints: true}
	if _, err := src.Examples(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st, src
}

// delivery forecasts catalog (and one endpoint, which the planner skips)
// with an upper-band peak of 3600 requests per 5 minutes: 12 rps.
func delivery(run string) Delivery {
	var hf forecast.HorizonForecast
	for i := range 12 {
		hf.Times = append(hf.Times, dsNow.Add(time.Duration(i+1)*5*time.Minute).Format(time.RFC3339))
		hf.Point = append(hf.Point, 3000+float64(i)*10)
		hf.Upper = append(hf.Upper, 3300+float64(i)*25)
	}
	hf.Steps, hf.Drivers = 12, []forecast.Driver{{Feature: "lag_1d", Effect: 300}}
	fc := forecast.Forecast{Series: "catalog", Origin: dsNow, Step: 5 * time.Minute, Horizons: []forecast.HorizonForecast{hf}}
	ep := fc
	ep.Series = "catalog/10.0.0.1:9001"
	return Delivery{RunID: run, ModelID: 7, ForecastsID: 8, Forecasts: &Forecasts{HorizonLabels: []string{"1h"}, Forecasts: []forecast.Forecast{fc, ep}}}
}

func TestDirectiveSinkProposesAStandardChangeOncePerRun(t *testing.T) {
	ctx := context.Background()
	st, src := directiveStore(t)
	co := &fakeCoordinator{}
	k := &DirectiveSink{Store: st, Source: src, Coordinator: co}
	if err := k.Deliver(ctx, delivery("run-1")); err != nil {
		t.Fatal(err)
	}
	r := k.Result()
	if r.Outcome != "auto-approved" || r.Standard == nil || r.Standard.Key != ProposalKeyPrefix+"run-1" || r.Standard.State != change.Scheduled || r.Normal != nil {
		t.Fatalf("result %+v", r)
	}
	if len(r.Plans) != 1 {
		t.Fatalf("plans %+v (the endpoint forecast must be skipped)", r.Plans)
	}
	p := r.Plans[0]
	// The CSV counts requests per 5-minute sample: 3575/300 rps.
	if math.Abs(p.UpperPeakRPS-3575.0/300) > 1e-9 || p.P50ms != 48 || p.Current != 2 || p.PerReplicaRPS != 5 || p.Replicas != 3 {
		t.Errorf("plan %+v", p)
	}
	c := co.changes[0].Directive.Services["catalog"]
	if c == nil || c.Why == nil || c.Why.Model != "ensemble@run-1/model-7" || !c.Why.Blessed || c.Weights["10.0.0.1:9001"] != 1.2 ||
		c.Scale.Replicas != 3 || c.Admission != nil || // a seed of 1: within the limiter's floor, not planned
		!strings.Contains(c.Why.ExpectedEffect, "csv series: requests per 5m0s sample ÷ 300") {
		t.Errorf("proposed %+v why %+v", c, c.Why)
	}
	if !strings.HasPrefix(co.changes[0].Reason, "lbsys pipeline run run-1: ") {
		t.Errorf("reason %q", co.changes[0].Reason)
	}
	// The same run delivered again (a retried commit) proposes with the
	// same key: still one change.
	if err := k.Deliver(ctx, delivery("run-1")); err != nil {
		t.Fatal(err)
	}
	if len(co.changes) != 1 || co.proposals != 2 || k.Result().Standard.ID != 1 {
		t.Errorf("replay: %d changes after %d proposals, result %+v", len(co.changes), co.proposals, k.Result().Standard)
	}
	// Once committed, the same plan is unchanged: nothing proposed. (The
	// stable version carries the coordinator's fields.)
	co.stable = co.changes[0].Directive.Clone()
	co.stable.Version, co.stable.Change = 1, 1
	if err := k.Deliver(ctx, delivery("run-2")); err != nil {
		t.Fatal(err)
	}
	if r := k.Result(); r.Outcome != "unchanged" || r.Base != 1 || co.proposals != 2 {
		t.Errorf("unchanged plan: %+v after %d proposals", r, co.proposals)
	}
	// Nothing was committed when run-1 planned: its proposals were
	// unconditional.
	if fmt.Sprint(co.ifStable) != "[0 0]" {
		t.Errorf("if_stable of the proposals %v", co.ifStable)
	}
}

// TestDirectiveSinkPlansAreConditionalOnTheirBase: the proposal carries
// the stable version it was planned on; when another change became stable
// meanwhile, the run fails with a clear error and nothing is proposed.
func TestDirectiveSinkPlansAreConditionalOnTheirBase(t *testing.T) {
	ctx := context.Background()
	st, src := directiveStore(t)
	co := &fakeCoordinator{stable: &directive.Directive{Schema: 1, Version: 4, Services: map[string]*directive.Service{
		"cart": {Admission: &directive.Admission{Seed: 9}}}}}
	k := &DirectiveSink{Store: st, Source: src, Coordinator: co}
	if err := k.Deliver(ctx, delivery("run-6")); err != nil {
		t.Fatal(err)
	}
	if r := k.Result(); r.Base != 4 || len(co.changes) != 1 || fmt.Sprint(co.ifStable) != "[4]" {
		t.Fatalf("result %+v, if_stable %v", r, co.ifStable)
	}
	co.moveAfterRead = true
	err := k.Deliver(ctx, delivery("run-7"))
	if err == nil || !strings.Contains(err.Error(), "stable version moved on from 4") || !strings.Contains(err.Error(), "run again") {
		t.Fatalf("want a clear conflict error, got %v", err)
	}
	if len(co.changes) != 1 {
		t.Fatalf("a conflicting plan made a change: %d changes", len(co.changes))
	}
}

func TestDirectiveSinkLeavesAChangeOutsideThePolicyToAnApprover(t *testing.T) {
	ctx := context.Background()
	st, src := directiveStore(t)
	co := &fakeCoordinator{reject: true}
	// An earlier pipeline proposal awaits approval, and one of a person.
	co.changes = []*change.Change{
		{ID: 1, Type: change.Normal, State: change.Authorize, Requester: "pipeline", Reason: reasonPrefix + "run-0: ..."},
		{ID: 2, Type: change.Normal, State: change.Authorize, Requester: "alice", Reason: reasonPrefix + "run-0: copied"},
	}
	k := &DirectiveSink{Store: st, Source: src, Coordinator: co}
	if err := k.Deliver(ctx, delivery("run-3")); err != nil {
		t.Fatal(err)
	}
	r := k.Result()
	if r.Outcome != "awaiting approval" || r.Standard.State != change.Canceled || r.Standard.Outcome != change.Rejected || len(r.Standard.Policy) != 1 ||
		r.Normal == nil || r.Normal.Type != change.Normal || r.Normal.State != change.Authorize || r.Normal.Key != ProposalKeyPrefix+"run-3:normal" {
		t.Fatalf("result %+v standard %+v normal %+v", r, r.Standard, r.Normal)
	}
	if !directive.Equal(co.changes[2].Directive, co.changes[3].Directive) || !strings.Contains(co.changes[3].Reason, "outside the standard-change policy") {
		t.Errorf("the normal change differs from the standard one: %q", co.changes[3].Reason)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "change 2 (normal, authorize, by alice) is open too") {
		t.Errorf("notes %q", r.Notes)
	}
	if len(r.Withdrawn) != 1 || r.Withdrawn[0] != 1 || co.changes[1].State != change.Authorize {
		t.Errorf("withdrawn %v; alice's change %s", r.Withdrawn, co.changes[1].State)
	}
}

func TestDirectiveSinkDryRunAndFailures(t *testing.T) {
	ctx := context.Background()
	st, src := directiveStore(t)
	// A dry run without a coordinator plans against nothing.
	k := &DirectiveSink{Store: st, Source: src, DryRun: true}
	if err := k.Deliver(ctx, delivery("run-4")); err != nil {
		t.Fatal(err)
	}
	if r := k.Result(); r.Outcome != "dry run" || r.Directive == nil || r.Directive.Services["catalog"] == nil || r.Standard != nil {
		t.Errorf("dry run %+v", r)
	}
	// With one, it reads the current directive and proposes nothing.
	co := &fakeCoordinator{stable: &directive.Directive{Schema: 1, Version: 5, Services: map[string]*directive.Service{
		"cart": {Admission: &directive.Admission{Seed: 9}}}}}
	k.Coordinator = co
	if err := k.Deliver(ctx, delivery("run-4")); err != nil {
		t.Fatal(err)
	}
	if r := k.Result(); r.Base != 5 || r.Directive.Services["cart"] == nil || co.proposals != 0 {
		t.Errorf("dry run against version 5: %+v, %d proposals", r, co.proposals)
	}
	// --load-unit rps reads the CSV's values as rates: 3575 rps.
	k.LoadUnit = UnitRPS
	if err := k.Deliver(ctx, delivery("run-4")); err != nil || k.Result().Plans[0].UpperPeakRPS != 3575 {
		t.Errorf("rps unit: %v %+v", err, k.Result().Plans)
	}

	// Unreachable: a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	k = &DirectiveSink{Store: st, Source: src, Coordinator: client.New([]string{dead}, "token-0123456789abcdef"), Timeout: 5 * time.Second}
	err = k.Deliver(ctx, delivery("run-5"))
	if err == nil || !strings.Contains(err.Error(), "no coordinator reachable") || !strings.Contains(err.Error(), "current directive") {
		t.Errorf("unreachable coordinator: %v", err)
	}
	// A refused proposal fails too.
	k.Coordinator = &fakeCoordinator{err: &client.Error{Status: 403, Body: directive.ErrorBody{Error: "the token needs the proposer role"}}}
	if err := k.Deliver(ctx, delivery("run-5")); err == nil || !strings.Contains(err.Error(), "proposer role") {
		t.Errorf("refused: %v", err)
	}
	if err := (&DirectiveSink{Store: st, Source: src}).Deliver(ctx, delivery("run-5")); err == nil || !strings.Contains(err.Error(), "--dry-run") {
		t.Errorf("no coordinator: %v", err)
	}

	// The fan-out stops at the first failure.
	var got []string
	ok := sinkFunc(func() error { got = append(got, "ok"); return nil })
	bad := sinkFunc(func() error { got = append(got, "bad"); return errors.New("down") })
	if err := (FanOut{ok, bad, ok}).Deliver(ctx, Delivery{}); err == nil || strings.Join(got, ",") != "ok,bad" {
		t.Errorf("fan-out: %v %v", err, got)
	}
}

// TestDirectiveSinkNothingToPlan: a service without telemetry gets no
// section and nothing is proposed.
func TestDirectiveSinkNothingToPlan(t *testing.T) {
	st := openStore(t)
	writeSeries(t, st, store.SeriesKey{Service: "catalog", Metric: "requests"}, "csv", dsNow.Add(-2*24*time.Hour), 5*time.Minute, 576,
		func(i int) float64 { return 3000 })
	src := &StoreSource{Store: st}
	if _, err := src.Examples(context.Background()); err != nil {
		t.Fatal(err)
	}
	co := &fakeCoordinator{}
	d := delivery("run-6")
	d.Forecasts.Forecasts = d.Forecasts.Forecasts[:1]
	k := &DirectiveSink{Store: st, Source: src, Coordinator: co}
	if err := k.Deliver(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if r := k.Result(); r.Outcome != "nothing to plan" || co.proposals != 0 || !strings.Contains(strings.Join(r.Plans[0].Notes, " "), "lbsys ingest telemetry") {
		t.Errorf("%+v", r)
	}
}

type sinkFunc func() error

func (f sinkFunc) Deliver(context.Context, Delivery) error { return f() }
