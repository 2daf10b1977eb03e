package proxy

import (
	"net/http"
	"sort"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/dashboard/ui"
)

// The built-in web UI (internal/dashboard/ui) on the admin listener: the
// page at / and /ui/, its JSON at /api/ui/…. Its collector is one more
// telemetry sink, fed by the aggregator once a second; it reads the proxy
// through uiSource and changes nothing.

// mountUI registers the UI's handlers on the admin mux and starts feeding
// its collector. The collector keeps as many seconds as the telemetry ring
// (telemetry.ring_seconds).
func (px *Proxy) mountUI(mux *http.ServeMux) {
	px.uiCollector().Register(mux)
}

// SetUITime makes the web UI file each telemetry second under f(second)
// (see ui.Collector.SetTimeMap): `lbsys demo` passes its virtual clock's
// mapping (clock.Scaled.Virtual), so that the UI's axis is the replayed
// day's, the one its directives' forecasts, floors and events speak of,
// and request rates are per second of that day. Nil restores the proxy's
// own clock. The proxy's decisions do not change.
func (px *Proxy) SetUITime(f func(time.Time) time.Time) {
	px.uiCollector().SetTimeMap(f)
}

// AnnounceUIEvents shows events on the web UI before any directive names
// them (see ui.Collector.Announce): `lbsys demo` announces its calendar's
// sales of the replayed morning, named as the planner names them, so the
// page draws them ahead of time and a directive sized for one updates its
// entry. All are taken, or none and the error says which is wrong. The
// proxy's decisions do not change.
func (px *Proxy) AnnounceUIEvents(evs []ui.Announcement) error {
	return px.uiCollector().Announce(evs)
}

// SetUIReplay labels the web UI's time axis in a replayed day's time (see
// ui.Collector.SetReplay): `lbsys demo` passes its compressed clock's
// mapping. The data stays on the proxy's clock; nil removes the labels.
func (px *Proxy) SetUIReplay(r *ui.Replay) error {
	return px.uiCollector().SetReplay(r)
}

// uiCollector returns the proxy's collector, creating it on first use.
func (px *Proxy) uiCollector() *ui.Collector {
	if c := px.uiColl.Load(); c != nil {
		return c
	}
	c := ui.NewCollector(uiSource{px}, ui.Options{Window: px.gen.Load().cfg.Telemetry.RingSeconds})
	if !px.uiColl.CompareAndSwap(nil, c) {
		return px.uiColl.Load()
	}
	px.agg.AddSink(c)
	return c
}

// uiSource is the proxy as the UI reads it.
type uiSource struct{ px *Proxy }

// State is the services part of the proxy's /status view, for the UI.
// It runs once a second on the telemetry aggregator's goroutine, so it
// reads only what it needs: each service's status (as /status shows it)
// and the agent's own state, not the directive applier's view, whose lock
// is held while a directive is applied.
func (s uiSource) State() ui.State {
	px := s.px
	g := px.gen.Load()
	now := px.clock.Now()
	names := make([]string, 0, len(g.services))
	for n := range g.services {
		names = append(names, n)
	}
	sort.Strings(names)
	out := ui.State{ConfigVersion: g.version, Services: make([]ui.ServiceState, 0, len(names))}
	if da := px.agent.Load(); da != nil {
		co := da.agent.Status()
		out.Coordinator = &ui.Coordinator{Connected: co.Connected, Degraded: co.Degraded, DegradedSince: co.DegradedSince,
			Version: co.Version, Source: co.Source, AppliedAt: co.AppliedAt, LastError: co.LastError,
			Rejected: co.Rejected, RejectError: co.RejectError}
	}
	for _, n := range names {
		sv := g.services[n].status(now)
		us := ui.ServiceState{Name: sv.Name, Policy: sv.Policy, Priority: sv.Priority, Panic: sv.Panic, InFlight: sv.InFlight,
			Endpoints: make([]ui.Endpoint, 0, len(sv.Endpoints))}
		if a := sv.Admission; a != nil {
			var rejected int64
			for _, n := range a.Rejected {
				rejected += n
			}
			us.Admission = &ui.Admission{Limit: a.Limit, Min: a.Min, Max: a.Max, InFlight: a.InFlight, Rejected: rejected}
		}
		for _, e := range sv.Endpoints {
			us.Endpoints = append(us.Endpoints, ui.Endpoint{ID: e.ID, Available: e.Available, Healthy: e.ActiveHealthy,
				Ejected: e.Ejected, EjectedUntil: e.EjectedUntil, SlowStart: e.SlowStart, Weight: e.Weight,
				EffectiveWeight: e.EffectiveWeight, InFlight: e.InFlight, LastChange: e.LastChange})
		}
		out.Services = append(out.Services, us)
	}
	return out
}

// Directive is the directive the agent applied (nil: none, or no agent).
func (s uiSource) Directive() *directive.Directive { return s.px.appliedDirective() }

// appliedDirective is the directive the coordinator agent runs, nil
// without an agent or before the first one. Never mutate it.
func (px *Proxy) appliedDirective() *directive.Directive {
	da := px.agent.Load()
	if da == nil {
		return nil
	}
	return da.agent.Directive()
}

var _ ui.Source = uiSource{}
