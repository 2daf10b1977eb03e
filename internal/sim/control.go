package sim

import (
	"math"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/steer"
)

// The closed loop. With Options.Controller set, at the end of every
// window the simulator hands the controller the minute's telemetry, as
// the proxies' telemetry and the cluster's API would show it (load per
// service, replicas ready, starting and pending, utilisation from the load
// reports, pod startup times); on the planning interval it asks for a
// plan, and the directive the plan carries reaches every proxy and every
// autoscaler ApplyDelay later (the coordinator's commit and stream),
// through internal/steer — the code the proxy's agent applies directives
// with — and the autoscaler's floor (steer.Floor). A proxy that cannot
// take a service's section (steer.Plan refuses it) keeps the old one and
// counts a NACK, as a real proxy would.

// Simulation event kinds of the loop (global events of Sim.handle).
const (
	evApply = evKinds + iota
)

// DefaultPlanEvery and DefaultApplyDelay are the loop's defaults.
const (
	DefaultPlanEvery  = time.Minute
	DefaultApplyDelay = 2 * time.Second
)

// loop is the controller's side of a run.
type loop struct {
	ctrl      control.Controller
	every     int64
	delay     int64
	nextPlan  int64
	pending   []*directive.Directive
	applied   *directive.Directive
	versions  int
	nacks     int
	notes     []string
	expected  map[string]float64
	upper     map[string]float64
	lastFloor map[string]int
}

func (s *Sim) initLoop() {
	if s.opts.Controller == nil {
		return
	}
	l := &loop{ctrl: s.opts.Controller, every: int64(s.opts.PlanEvery), delay: int64(s.opts.ApplyDelay)}
	if l.every <= 0 {
		l.every = int64(DefaultPlanEvery)
	}
	if l.delay < 0 {
		l.delay = 0
	} else if l.delay == 0 {
		l.delay = int64(DefaultApplyDelay)
	}
	s.loop = l
}

// controlMinute runs after the collector closed the minute ending at now.
func (s *Sim) controlMinute(now int64, row *Minute) {
	l := s.loop
	if l == nil {
		return
	}
	wall := s.eng.wall(now)
	m := control.Minute{At: wall}
	span := float64(now-s.met.prevAt) / 1e9
	for i, svc := range s.services {
		sm := row.Services[i]
		cm := control.ServiceMinute{Service: svc.name, P50Ms: sm.P50Ms, P99Ms: sm.P99Ms, ErrorRate: sm.ErrorRate, Util: math.NaN()}
		if span > 0 {
			cm.RPS = float64(sm.Requests) / span
			cm.ServedRPS = float64(s.met.svcs[i].served) / span
		}
		if sm.UtilMean > 0 || sm.Replicas > 0 {
			cm.Util = sm.UtilMean
		}
		for _, r := range svc.reps {
			switch r.state {
			case repReady:
				cm.Ready++
			case repStarting:
				cm.Starting++
			case repPending:
				cm.Pending++
			}
		}
		for _, d := range s.met.svcs[i].startups {
			cm.Startups = append(cm.Startups, time.Duration(d))
		}
		cm.Endpoints = s.met.svcs[i].endpoints
		if svc.ks != nil {
			cm.HotKeys = s.hotKeys(svc)
		}
		m.Services = append(m.Services, cm)
	}
	l.ctrl.Observe(m)
	if now < l.nextPlan {
		return
	}
	l.nextPlan = now + l.every
	p := l.ctrl.Decide(wall)
	l.expected, l.upper = p.Expected, p.ExpectedUpper
	for _, n := range p.Notes {
		if len(l.notes) < 200 {
			l.notes = append(l.notes, wall.UTC().Format("15:04")+" "+n)
		}
	}
	if p.Directive != nil {
		l.pending = append(l.pending, p.Directive)
		s.eng.after(l.delay, s, evApply)
	}
}

// applyNext applies the oldest pending directive to every proxy and
// autoscaler.
func (s *Sim) applyNext() {
	l := s.loop
	if len(l.pending) == 0 {
		return
	}
	d := l.pending[0]
	l.pending = l.pending[1:]
	now := s.now()
	wall := s.eng.wall(now)
	l.versions++
	for _, svc := range s.services {
		next := d.Services[svc.name]
		for _, px := range s.proxies {
			ps := px.svcs[svc.idx]
			caps := steer.Caps{Policy: s.policy, Directed: ps.directd != nil, Limiter: ps.lim, Endpoints: ps.endpointIDs()}
			ch, err := steer.Plan(ps.section, next, caps, d.Version, wall, false)
			if err != nil {
				l.nacks++
				if len(l.notes) < 200 {
					l.notes = append(l.notes, wall.UTC().Format("15:04")+" proxy "+px.name()+" NACKed "+svc.name+": "+err.Error())
				}
				continue
			}
			switch {
			case ch.Weights != nil:
				if err := ps.directd.SetDirective(ch.Weights); err != nil {
					l.nacks++
					continue
				}
			case ch.ClearWeights:
				_ = ps.directd.SetDirective(nil)
			}
			if ch.Admission != nil {
				_ = ch.Admission.Apply(ps.lim) // checked by steer.Plan
			}
			if pc := px.caches[svc.idx]; pc != nil {
				// As the proxy's agent: TTL hints first, then the warm
				// list, only when the section's cache part changed.
				switch {
				case ch.Cache != nil:
					pc.setHints(hintsOf(ch.Cache.TTLHints))
					s.warm(px, pc, ch.Cache.Warm)
				case ch.ClearCache:
					pc.setHints(nil)
				}
			}
			ps.section = next
			ps.rebuild()
		}
		svc.section = next
		if h := svc.hpa; h != nil {
			// A raised minimum takes effect at once (the HPA reconciles
			// on a spec change: below minReplicas the target is the
			// minimum, without rate limits).
			live := len(svc.liveReplicas())
			if f := h.minReplicas(live); f > live {
				h.raise(live, f)
			}
		}
	}
	l.applied = d
}

// floorNow is the directive floor in force for svc.
func (svc *service) floorNow() int {
	if svc.section == nil {
		return 0
	}
	s := svc.s
	return steer.Floor(svc.section, s.eng.wall(s.now()))
}

// endpointIDs are the replicas this proxy knows for the service.
func (ps *proxySvc) endpointIDs() map[string]bool {
	out := map[string]bool{}
	for i, m := range ps.members {
		if m != nil && ps.eps[i] != nil {
			out[ps.eps[i].ID] = true
		}
	}
	return out
}

func (px *proxy) name() string { return "proxy-" + itoa(px.idx) }

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
