// Package liveloop runs internal/control's controllers live: on a clock
// (the demo's compressed time, or the wall clock) it turns a proxy's
// per-second telemetry and a fleet's state into the controller's minutes,
// asks for a plan every minute, and proposes the directive it carries to
// the coordinator as a standard change. It is the I/O around the pure
// controller — the simulator runs the same controller with its own
// telemetry and its own apply path.
//
// Times: the controller lives on the loop's clock (it forecasts minutes
// of that clock); everything it sends out — the directive's floors, their
// lapse and ready-by times, its reasons and forecast points — is written
// in wall-clock time, which is what the proxies, the fleet's floor checks
// and the dashboards read.
//
// Rates: requests per wall-clock second, whatever the loop's clock. The
// proxies measure them so, the admission limit is Little's law on them
// and the proxies' own latency (a concurrency is the same on both
// clocks only when rate and latency are on the same one), and the
// directive's forecast is compared with the proxies' measured rate on
// the dashboards. So under compressed time a minute of the loop is a
// short wall span, its rate its answers over that span, and a history a
// controller is trained on must be in the same unit (the demo's is).
// Each minute also carries its answer count, which is what says whether
// it is enough to judge a replica's capacity on.
package liveloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/fleet"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// Telemetry is where per-second records come from (a proxy in process, or
// its admin /telemetry).
type Telemetry interface {
	Telemetry(since time.Time, service string) []telemetry.Record
}

// Fleet is the state of the instances (the local scaler).
type Fleet interface {
	Snapshot() []fleet.ServiceState
	Startups() map[string][]time.Duration
}

// UtilizationSource is a Fleet that integrates its instances' utilisation
// over a wall-clock span (the local scaler does). The loop then judges a
// minute's rate against the utilisation of the same span — what the
// simulator's minutes carry — instead of the fleet's last measurement.
type UtilizationSource interface {
	Utilization(service string, from, to time.Time) float64
}

// Coordinator is where directives go.
type Coordinator interface {
	Directive(ctx context.Context, version uint64, stale bool) (*directive.Directive, error)
	Propose(ctx context.Context, r change.ProposeRequest) (*change.Change, error)
}

// Loop is one live controller.
type Loop struct {
	// Clock is the controller's time; Scaled converts it to and from the
	// wall clock (nil: the loop runs on the wall clock).
	Clock  clock.Clock
	Scaled *clock.Scaled
	// Step is the controller's minute. Default 1m.
	Step time.Duration
	// Lag is how long (wall clock) after a minute ends its telemetry is
	// read: a proxy writes a second's record just after the second.
	// Default 1.2s.
	Lag time.Duration

	Controller  control.Controller
	Telemetry   Telemetry
	Fleet       Fleet
	Coordinator Coordinator
	Services    []string
	// Requester labels the proposals' reasons.
	Requester string
	Log       *slog.Logger
	// OnPlan is told every plan (for tables and the UI).
	OnPlan func(at time.Time, p control.Plan, proposed *change.Change, err error)

	mu     sync.Mutex
	stable uint64
	last   []Event
}

// Event is one plan the loop made, for the timeline.
type Event struct {
	At       time.Time // the loop's time
	Version  uint64    // the change's directive version, 0 when none
	Change   uint64
	State    string
	Err      string
	Decision []string // one line per service: the scaler's why
}

func (l *Loop) defaults() {
	if l.Clock == nil {
		l.Clock = clock.Real{}
	}
	if l.Step <= 0 {
		l.Step = time.Minute
	}
	if l.Lag <= 0 {
		l.Lag = 1200 * time.Millisecond
	}
	if l.Log == nil {
		l.Log = slog.Default()
	}
	if l.Requester == "" {
		l.Requester = "liveloop"
	}
}

// toWall converts a loop time to wall-clock time.
func (l *Loop) toWall(t time.Time) time.Time {
	if l.Scaled == nil || t.IsZero() {
		return t
	}
	return l.Scaled.Real(t)
}

// Run plans every Step until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	l.defaults()
	next := l.Clock.Now().Truncate(l.Step).Add(l.Step)
	for {
		wait := next.Sub(l.Clock.Now())
		if l.Scaled != nil {
			wait = l.Scaled.RealDuration(wait)
		}
		t := time.NewTimer(max(wait+l.Lag, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		l.Tick(ctx, next)
		next = next.Add(l.Step)
	}
}

// Tick observes the minute ending at end and plans (at the loop's time
// now, which is end plus the lag).
func (l *Loop) Tick(ctx context.Context, end time.Time) {
	l.defaults()
	m, complete := l.minute(end)
	// A busy machine may write the minute's last second late: wait for it
	// a little (a minute read without it would count a share of its
	// requests as none, and a controller would see a dip).
	for i := 0; !complete && i < 4; i++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
		m, complete = l.minute(end)
	}
	t0 := time.Now()
	l.Controller.Observe(m)
	p := l.Controller.Decide(end)
	if took := time.Since(t0); l.Scaled != nil && took > l.Scaled.RealDuration(l.Step)/2 {
		l.Log.Warn("controller: planning took more than half a minute of the loop's time; the machine may be overloaded", "took", took)
	}
	for _, n := range p.Notes {
		l.Log.Info("controller", "note", n)
	}
	var ch *change.Change
	var err error
	if p.Directive != nil {
		ch, err = l.propose(ctx, p.Directive, end)
		if err != nil {
			l.Log.Warn("controller: proposal failed; the proxies keep the running directive", "err", err)
		}
	}
	ev := Event{At: end}
	for _, d := range p.Decisions {
		ev.Decision = append(ev.Decision, d.Service+": "+d.Why)
		l.Log.Debug("controller decision", "at", end.Format(time.RFC3339), "service", d.Service, "floor", d.Floor, "why", d.Why)
	}
	if ch != nil {
		l.Log.Info("controller proposed a directive", "at", end.Format(time.RFC3339), "change", ch.ID, "state", ch.State, "version", ch.Version)
	}
	if ch != nil {
		ev.Change, ev.State, ev.Version = ch.ID, string(ch.State), ch.Version
	}
	if err != nil {
		ev.Err = err.Error()
	}
	l.mu.Lock()
	l.last = append(l.last, ev)
	if len(l.last) > 200 {
		l.last = l.last[len(l.last)-200:]
	}
	l.mu.Unlock()
	if l.OnPlan != nil {
		l.OnPlan(end, p, ch, err)
	}
}

// Events returns the recent plans, oldest first.
func (l *Loop) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.last...)
}

// minute builds the controller's minute ending at end from the records
// of its wall-clock span and the fleet's state; complete reports whether
// the span's last second (or a later one) has been written.
func (l *Loop) minute(end time.Time) (m control.Minute, complete bool) {
	start := end.Add(-l.Step)
	ws, we := l.toWall(start), l.toWall(end)
	recs := l.Telemetry.Telemetry(ws.Add(-time.Second), "")
	type acc struct {
		req, errs, served int64
		p50w              float64
		p99               float64
	}
	by := map[string]*acc{}
	for _, r := range recs {
		if !r.Time.Add(time.Second).Before(we) {
			complete = true
		}
		if r.Time.Before(ws) || !r.Time.Before(we) {
			continue
		}
		a := by[r.Service]
		if a == nil {
			a = &acc{}
			by[r.Service] = a
		}
		if r.Endpoint != "" {
			a.served += r.Requests // forwarded to an instance and answered
			continue
		}
		a.req += r.Requests
		a.errs += r.Errors
		a.p50w += r.P50ms * float64(r.Requests)
		a.p99 = math.Max(a.p99, r.P99ms)
	}
	span := we.Sub(ws).Seconds() // wall seconds: see the package's note on rates
	m = control.Minute{At: end}
	var states map[string]fleet.ServiceState
	var startups map[string][]time.Duration
	if l.Fleet != nil {
		states = map[string]fleet.ServiceState{}
		for _, s := range l.Fleet.Snapshot() {
			states[s.Service] = s
		}
		startups = l.Fleet.Startups()
	}
	for _, svc := range l.Services {
		a := by[svc]
		if a == nil {
			a = &acc{}
		}
		sm := control.ServiceMinute{Service: svc, RPS: float64(a.req) / span, ServedRPS: float64(a.served) / span, Answered: float64(a.served), P99Ms: a.p99, Util: math.NaN()}
		if a.req > 0 {
			sm.P50Ms = a.p50w / float64(a.req)
			sm.ErrorRate = float64(a.errs) / float64(a.req)
		}
		if st, ok := states[svc]; ok {
			sm.Ready, sm.Starting, sm.Pending, sm.Util = st.Ready, st.Starting, st.Pending, st.Util
			if us, ok := l.Fleet.(UtilizationSource); ok {
				if u := us.Utilization(svc, ws, we); !math.IsNaN(u) {
					sm.Util = u
				}
			}
		}
		sm.Startups = startups[svc]
		m.Services = append(m.Services, sm)
	}
	return m, complete
}

// propose sends a directive as a standard change on the stable version
// the loop last saw, its times converted to the wall clock.
func (l *Loop) propose(ctx context.Context, d *directive.Directive, at time.Time) (*change.Change, error) {
	if l.Coordinator == nil {
		return nil, errors.New("no coordinator")
	}
	out := d.Content()
	l.wallTimes(out)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l.mu.Lock()
	base := l.stable
	l.mu.Unlock()
	key := fmt.Sprintf("%s-%d", l.Requester, at.Unix())
	ch, err := l.Coordinator.Propose(cctx, change.ProposeRequest{Type: change.Standard, Reason: l.Requester + ": forecast-driven plan at " + at.UTC().Format(time.RFC3339),
		Directive: out, IdempotencyKey: key, IfStable: base, NoCanary: true})
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == http.StatusConflict {
		// The stable version moved (another change): read it and plan on
		// it next minute.
		if cur, err2 := l.Coordinator.Directive(cctx, 0, false); err2 == nil {
			l.mu.Lock()
			l.stable = cur.Version
			l.mu.Unlock()
		}
		return nil, fmt.Errorf("the stable version moved from %d; planning on the new one next minute: %w", base, err)
	}
	if err != nil {
		return nil, err
	}
	if ch.Version > 0 {
		l.mu.Lock()
		l.stable = ch.Version
		l.mu.Unlock()
	}
	return ch, nil
}

// wallTimes rewrites every time the directive carries from the loop's
// clock to the wall clock.
func (l *Loop) wallTimes(d *directive.Directive) {
	if l.Scaled == nil {
		return
	}
	conv := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		w := l.toWall(*t).UTC()
		return &w
	}
	reason := func(r *directive.Reason) {
		if r == nil {
			return
		}
		r.At = conv(r.At)
		// The planner names an event "category start" (RFC 3339).
		if i := strings.LastIndexByte(r.Event, ' '); i >= 0 {
			if t, err := time.Parse(time.RFC3339, r.Event[i+1:]); err == nil {
				r.Event = r.Event[:i+1] + l.toWall(t).UTC().Format(time.RFC3339)
			}
		}
	}
	for _, s := range d.Services {
		if s.Scale != nil {
			s.Scale.By, s.Scale.Until = conv(s.Scale.By), conv(s.Scale.Until)
			reason(s.Scale.Why)
		}
		if s.Admission != nil {
			reason(s.Admission.Why)
		}
		if s.Cache != nil {
			reason(s.Cache.Why)
		}
		reason(s.WeightsWhy)
		for i := range s.SlowStart {
			s.SlowStart[i].Start = conv(s.SlowStart[i].Start)
		}
		if s.Why != nil {
			for i := range s.Why.Forecast {
				s.Why.Forecast[i].At = l.toWall(s.Why.Forecast[i].At).UTC()
			}
		}
	}
}
