package liveloop

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/fleet"
	"github.com/lbsys/lbsys/internal/telemetry"
)

type recs []telemetry.Record

func (r recs) Telemetry(since time.Time, _ string) []telemetry.Record {
	var out []telemetry.Record
	for _, x := range r {
		if !x.Time.Before(since) {
			out = append(out, x)
		}
	}
	return out
}

type fakeFleet struct{}

func (fakeFleet) Snapshot() []fleet.ServiceState {
	return []fleet.ServiceState{{Service: "catalog", Ready: 3, Starting: 1, Util: 0.4}}
}
func (fakeFleet) Startups() map[string][]time.Duration {
	return map[string][]time.Duration{"catalog": {90 * time.Second}}
}

// recorder is a controller that keeps what it observed and plans a fixed
// directive.
type recorder struct {
	seen []control.Minute
	plan control.Plan
}

func (r *recorder) Name() string                  { return "recorder" }
func (r *recorder) Observe(m control.Minute)      { r.seen = append(r.seen, m) }
func (r *recorder) Decide(time.Time) control.Plan { return r.plan }

type fakeCoord struct{ got []change.ProposeRequest }

func (f *fakeCoord) Directive(context.Context, uint64, bool) (*directive.Directive, error) {
	return &directive.Directive{Version: 7}, nil
}
func (f *fakeCoord) Propose(_ context.Context, r change.ProposeRequest) (*change.Change, error) {
	f.got = append(f.got, r)
	return &change.Change{ID: uint64(len(f.got)), State: change.Implement, Version: uint64(10 + len(f.got))}, nil
}

// TestMinuteUnderCompressedTime: at 60 virtual seconds per real one, a
// loop minute is one wall second. Its rates are per wall second (what
// the proxy measures; Little's law with the proxy's latency), its answer
// count is the count, and the directive's times go out on the wall clock.
func TestMinuteUnderCompressedTime(t *testing.T) {
	base := clock.NewManual(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	origin := time.Date(1995, 7, 12, 7, 0, 0, 0, time.UTC)
	vc := clock.NewScaled(base, origin, 60)
	wall := vc.Real(origin) // 10:00:00 wall
	r := recs{
		// The minute 07:00–07:01 virtual is wall 10:00:00–10:00:01.
		{Time: wall, Service: "catalog", Requests: 120, Errors: 6, P50ms: 20, P99ms: 90},
		{Time: wall, Service: "catalog", Endpoint: "a", Requests: 110},
		// Outside it: the second before and the one after.
		{Time: wall.Add(-time.Second), Service: "catalog", Requests: 999},
		{Time: wall.Add(time.Second), Service: "catalog", Requests: 999},
	}
	at := origin.Add(time.Minute).Add(5 * time.Second) // the scale's deadline, virtual
	until := origin.Add(30 * time.Minute)
	ctrl := &recorder{plan: control.Plan{Directive: &directive.Directive{Services: map[string]*directive.Service{
		"catalog": {Scale: &directive.Scale{Replicas: 6, By: &at, Until: &until,
			Why: &directive.Reason{Text: "floor", Event: "flash-sale " + origin.Add(15*time.Minute).Format(time.RFC3339)}},
			Why: &directive.Why{Forecast: []directive.Point{{At: at, RPS: 200}}}},
	}}}}
	co := &fakeCoord{}
	l := &Loop{Clock: vc, Scaled: vc, Controller: ctrl, Telemetry: r, Fleet: fakeFleet{}, Coordinator: co, Services: []string{"catalog", "cart"}, Log: slog.New(slog.DiscardHandler)}
	l.Tick(context.Background(), origin.Add(time.Minute))

	if len(ctrl.seen) != 1 || len(ctrl.seen[0].Services) != 2 {
		t.Fatalf("observed %+v, want one minute of two services", ctrl.seen)
	}
	c := ctrl.seen[0].Services[0]
	if c.Service != "catalog" || math.Abs(c.RPS-120) > 1e-9 || math.Abs(c.ServedRPS-110) > 1e-9 || c.Answered != 110 {
		t.Errorf("catalog rps %v served %v answered %v, want 120 / 110 per wall second, 110 answers", c.RPS, c.ServedRPS, c.Answered)
	}
	if math.Abs(c.ErrorRate-0.05) > 1e-9 || c.P50Ms != 20 || c.P99Ms != 90 {
		t.Errorf("catalog error rate %v p50 %v p99 %v", c.ErrorRate, c.P50Ms, c.P99Ms)
	}
	if c.Ready != 3 || c.Starting != 1 || c.Util != 0.4 || len(c.Startups) != 1 {
		t.Errorf("fleet state not carried: %+v", c)
	}
	if cart := ctrl.seen[0].Services[1]; cart.RPS != 0 || !math.IsNaN(cart.Util) {
		t.Errorf("a service without records: rps %v util %v, want 0 and unknown", cart.RPS, cart.Util)
	}
	if len(co.got) != 1 {
		t.Fatalf("%d proposals, want 1", len(co.got))
	}
	p := co.got[0]
	if p.Type != change.Standard || !p.NoCanary || p.IdempotencyKey == "" {
		t.Errorf("proposal %+v: want a standard change without canary, with a key", p)
	}
	s := p.Directive.Services["catalog"]
	if got, want := *s.Scale.By, vc.Real(at).UTC(); !got.Equal(want) {
		t.Errorf("scale.by %v, want the wall time %v", got, want)
	}
	if got, want := *s.Scale.Until, wall.Add(30*time.Second).UTC(); !got.Equal(want) {
		t.Errorf("scale.until %v, want %v", got, want)
	}
	if got, want := s.Scale.Why.Event, "flash-sale "+wall.Add(15*time.Second).UTC().Format(time.RFC3339); got != want {
		t.Errorf("scale.why.event %q, want %q (the event's start on the wall clock)", got, want)
	}
	if got := s.Why.Forecast[0].At; !got.Equal(vc.Real(at)) {
		t.Errorf("forecast point at %v, want the wall time", got)
	}
	// The controller's own directive is left on its clock.
	if got := *ctrl.plan.Directive.Services["catalog"].Scale.By; !got.Equal(at) {
		t.Errorf("the controller's directive was rewritten: %v", got)
	}
	// The next proposal is planned on the version this one implemented.
	l.Tick(context.Background(), origin.Add(2*time.Minute))
	if len(co.got) != 2 || co.got[1].IfStable != 11 {
		t.Errorf("second proposal if_stable %d, want 11", co.got[len(co.got)-1].IfStable)
	}
}

// lateRecs hands out its records only after ready is closed: a proxy
// that writes the minute's last second late.
type lateRecs struct {
	ready chan struct{}
	recs  recs
}

func (l *lateRecs) Telemetry(since time.Time, svc string) []telemetry.Record {
	select {
	case <-l.ready:
		return l.recs.Telemetry(since, svc)
	default:
		return nil
	}
}

// TestTickWaitsForALateSecond: a minute whose last second is not written
// yet is read again a little later instead of counting as no traffic.
func TestTickWaitsForALateSecond(t *testing.T) {
	base := clock.NewManual(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	origin := time.Date(1995, 7, 12, 7, 0, 0, 0, time.UTC)
	vc := clock.NewScaled(base, origin, 60)
	wall := vc.Real(origin)
	src := &lateRecs{ready: make(chan struct{}), recs: recs{{Time: wall, Service: "catalog", Requests: 90}}}
	time.AfterFunc(300*time.Millisecond, func() { close(src.ready) })
	ctrl := &recorder{}
	l := &Loop{Clock: vc, Scaled: vc, Controller: ctrl, Telemetry: src, Services: []string{"catalog"}, Log: slog.New(slog.DiscardHandler)}
	l.Tick(context.Background(), origin.Add(time.Minute))
	if len(ctrl.seen) != 1 || ctrl.seen[0].Services[0].RPS != 90 {
		t.Fatalf("observed %+v, want the late second's 90 requests", ctrl.seen)
	}
}

// spanFleet integrates utilisation: it answers 0.25 for exactly the wall
// span it expects and records what it was asked.
type spanFleet struct {
	fakeFleet
	from, to time.Time
	asked    []string
}

func (f *spanFleet) Utilization(svc string, from, to time.Time) float64 {
	f.asked = append(f.asked, svc)
	if svc == "catalog" && from.Equal(f.from) && to.Equal(f.to) {
		return 0.25
	}
	return math.NaN()
}

// TestMinuteUtilizationOverItsSpan: a fleet that integrates utilisation is
// asked for the minute's own wall span (the span its rate is measured
// over), and its answer replaces the last sync's; where it has none, the
// last sync's stays.
func TestMinuteUtilizationOverItsSpan(t *testing.T) {
	base := clock.NewManual(time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC))
	origin := time.Date(1995, 7, 12, 7, 0, 0, 0, time.UTC)
	vc := clock.NewScaled(base, origin, 60)
	wall := vc.Real(origin)
	fl := &spanFleet{from: wall, to: wall.Add(time.Second)}
	r := recs{{Time: wall, Service: "catalog", Requests: 10}, {Time: wall, Service: "catalog", Endpoint: "a", Requests: 10}}
	ctrl := &recorder{}
	l := &Loop{Clock: vc, Scaled: vc, Controller: ctrl, Telemetry: r, Fleet: fl, Services: []string{"catalog"}, Log: slog.New(slog.DiscardHandler)}
	l.Tick(context.Background(), origin.Add(time.Minute))
	if got := ctrl.seen[0].Services[0].Util; got != 0.25 {
		t.Errorf("catalog util %v, want 0.25 (integrated over wall %v–%v)", got, fl.from, fl.to)
	}
	// The next minute is not the span the fleet knows: the last sync's
	// 0.4 stays.
	r = append(r, telemetry.Record{Time: wall.Add(time.Second), Service: "catalog", Requests: 10})
	l.Telemetry = r
	l.Tick(context.Background(), origin.Add(2*time.Minute))
	if got := ctrl.seen[1].Services[0].Util; got != 0.4 {
		t.Errorf("catalog util %v, want the last sync's 0.4 when the fleet has no integral", got)
	}
}
