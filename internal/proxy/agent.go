package proxy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/agent"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/steer"
)

// The proxy's side of Gaia: an agent (internal/agent) watches the
// coordinator and hands each directive to directiveApplier, which checks it
// against the running services and applies it through service.setDirective
// (the path of POST /directive), whole or not at all. Nothing here runs on
// the request path.

// CoordinatorStatus is the "coordinator" object of GET /status.
type CoordinatorStatus struct {
	agent.Status
	// Services shows, per local service, what the directive asks of it:
	// the version that last changed the service's part, the cache warm
	// list and TTL hints (applied to the service's cached routes), the
	// scale recommendation (carried for autoscalers) and why.
	Services map[string]ServiceDirective `json:"services,omitempty"`
	// Ignored lists services of the directive this proxy does not have.
	Ignored []string `json:"ignored_services,omitempty"`
}

// ServiceDirective is one service's part of the running directive.
type ServiceDirective struct {
	Version   uint64               `json:"version"`
	Weights   map[string]float64   `json:"weights,omitempty"`
	SlowStart int                  `json:"slow_start_ramps,omitempty"`
	Admission *directive.Admission `json:"admission,omitempty"`
	Cache     *directive.Cache     `json:"cache,omitempty"`
	Scale     *directive.Scale     `json:"scale,omitempty"`
	Why       *directive.Why       `json:"why,omitempty"`
}

type dirAgent struct {
	agent   *agent.Agent
	applier *directiveApplier
}

// StartAgent connects the proxy to the coordinator when one is configured
// (coordinator.urls, or urls when given, which override it). It applies
// the persisted last good directive before returning, then watches on its
// own goroutine until the proxy closes. Without a coordinator it does
// nothing.
func (px *Proxy) StartAgent(urls []string) error {
	g := px.gen.Load()
	cc := g.cfg.Coordinator
	if len(urls) > 0 {
		for _, u := range urls {
			if err := config.CheckCoordinatorURL(u); err != nil {
				return fmt.Errorf("--coordinator: %w", err)
			}
		}
		cc.URLs = urls
	}
	if len(cc.URLs) == 0 {
		return nil
	}
	if px.agent.Load() != nil {
		return errors.New("the coordinator agent is already running")
	}
	token, err := cc.Token()
	if err != nil {
		return err
	}
	if token == "" {
		return fmt.Errorf("coordinator: no agent token; set coordinator.token_file or the variable %s to a token with the agent role", cc.TokenEnv)
	}
	id := cc.ProxyID
	if id == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "proxy"
		}
		port := px.AdminAddr()
		if port == "" {
			port = g.cfg.Admin.Listen
		}
		id = sanitizeID(host + "-" + port[strings.LastIndex(port, ":")+1:])
	}
	state := cc.StateFile
	if state == "" {
		dir := "."
		if px.opts.ConfigPath != "" {
			dir = filepath.Dir(px.opts.ConfigPath)
		}
		state = filepath.Join(dir, "lbsys-directive-"+id+".json")
	}
	ap := &directiveApplier{px: px, applied: map[string]appliedSection{}}
	a, err := agent.New(agent.Options{
		Coordinators: cc.URLs, Token: token, ProxyID: id, StateFile: state, Applier: ap,
		Stats: px.canaryStats, Wait: cc.Wait, Logger: px.log, Registerer: px.reg,
	})
	if err != nil {
		return err
	}
	ap.metrics = newDirectiveMetrics(px.clock) // before Restore: it publishes
	if err := px.reg.Register(ap.metrics); err != nil {
		return fmt.Errorf("directive metrics: %w", err)
	}
	if err := a.Restore(); err != nil {
		px.log.Error("the persisted directive was not applied; waiting for the coordinator", "err", err)
	}
	da := &dirAgent{agent: a, applier: ap}
	if !px.agent.CompareAndSwap(nil, da) {
		return errors.New("the coordinator agent is already running")
	}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		defer px.agent.CompareAndSwap(da, nil)
		done := make(chan struct{})
		go func() { defer close(done); ap.reconcileLoop(px) }()
		a.Run(px.ctx)
		<-done
	}()
	px.log.Info("coordinator agent started", "proxy_id", id, "coordinators", strings.Join(cc.URLs, ","), "state_file", state)
	return nil
}

func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// coordinatorStatus is nil when no agent runs.
func (px *Proxy) coordinatorStatus() *CoordinatorStatus {
	da := px.agent.Load()
	if da == nil {
		return nil
	}
	st := &CoordinatorStatus{Status: da.agent.Status()}
	st.Services, st.Ignored = da.applier.view()
	return st
}

// canaryStats sums the per-second service records since a time: requests,
// errors and the request-weighted mean of the per-second p99s.
func (px *Proxy) canaryStats(since time.Time) map[string]directive.ServiceStats {
	out := map[string]directive.ServiceStats{}
	p99w := map[string]float64{}
	for _, r := range px.ring.Since(since, "") {
		if r.Endpoint != "" {
			continue
		}
		s := out[r.Service]
		s.Requests += r.Requests
		s.Errors += r.Errors
		out[r.Service] = s
		p99w[r.Service] += r.P99ms * float64(r.Requests)
	}
	for name, s := range out {
		if s.Requests > 0 {
			s.P99Ms = p99w[name] / float64(s.Requests)
		}
		if s.Errors > s.Requests {
			s.Errors = s.Requests
		}
		out[name] = s
	}
	return out
}

// appliedSection is what was last applied to one service.
type appliedSection struct {
	svc     *service
	limiter *admission.Limiter
	version uint64
	section *directive.Service
}

// directiveApplier applies whole directives to the proxy's services.
type directiveApplier struct {
	px *Proxy

	mu      sync.Mutex // serializes Apply and guards the fields below
	current *directive.Directive
	applied map[string]appliedSection
	ignored []string
	metrics *directiveMetrics // nil: none exported
}

// plan is one service's change.
type plan struct {
	name   string
	svc    *service
	caps   steer.Caps
	change steer.Change
	next   appliedSection
}

// Apply implements agent.Applier: every service's part is derived and
// checked against the running configuration first (steer.Plan, the code
// the simulator runs too); only if all fit is anything changed, so a
// NACKed directive changes nothing.
func (ap *directiveApplier) Apply(d *directive.Directive) error {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	return ap.applyLocked(d, false)
}

func (ap *directiveApplier) applyLocked(d *directive.Directive, reconcile bool) error {
	px := ap.px
	px.reloadMu.Lock() // no reload may swap services in the middle
	defer px.reloadMu.Unlock()
	g := px.gen.Load()
	now := px.clock.Now()

	var plans []plan
	var errs []string
	names := make([]string, 0, len(g.services))
	for n := range g.services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := g.services[name]
		sec := d.Services[name]
		prev, had := ap.applied[name]
		caps := s.caps()
		if had && prev.svc == s && prev.limiter == caps.Limiter && directive.SectionEqual(prev.section, sec) {
			continue
		}
		p := plan{name: name, svc: s, caps: caps, next: appliedSection{svc: s, limiter: caps.Limiter, version: d.Version, section: sec}}
		if had && directive.SectionEqual(prev.section, sec) {
			p.next.version = prev.version // re-applied after a reload: same part
		}
		var prevSec *directive.Service
		if prev.svc == s {
			prevSec = prev.section
		}
		ch, err := steer.Plan(prevSec, sec, caps, d.Version, now, reconcile)
		if err != nil {
			errs = append(errs, fmt.Sprintf("services[%s]: %v", name, err))
		}
		p.change = ch
		plans = append(plans, p)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	var done []plan
	for _, p := range plans {
		if err := p.svc.applyChange(p.change, p.caps); err != nil {
			// Every change was checked and reloads are held off, so this
			// is not expected; put back what changed.
			for _, q := range done {
				prev := ap.applied[q.name]
				var prevSec *directive.Service
				if prev.svc == q.svc {
					prevSec = prev.section
				}
				caps := q.svc.caps()
				if back, err := steer.Plan(q.next.section, prevSec, caps, prev.version, now, true); err == nil {
					q.svc.applyChange(back, caps)
				}
			}
			return fmt.Errorf("services[%s]: %w", p.name, err)
		}
		done = append(done, p)
	}
	// The cache part last, once every service took its change: it cannot
	// fail, and warming is not undone.
	for _, p := range plans {
		px.applyCacheChange(g, p.name, p.change)
	}
	for _, p := range plans {
		if p.next.section == nil {
			delete(ap.applied, p.name)
		} else {
			ap.applied[p.name] = p.next
		}
	}
	for name := range ap.applied {
		if g.services[name] == nil {
			delete(ap.applied, name) // removed by a reload
		}
	}
	ap.current = d
	ap.metrics.publish(ap.applied)
	ap.ignored = ap.ignored[:0]
	for _, name := range d.ServiceNames() {
		if g.services[name] == nil {
			ap.ignored = append(ap.ignored, name)
		}
	}
	return nil
}

// reconcileLoop re-applies the running directive to services a reload
// created or gave a new limiter, so a directive survives reloads.
func (ap *directiveApplier) reconcileLoop(px *Proxy) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-px.ctx.Done():
			return
		case <-t.C:
		}
		ap.mu.Lock()
		if ap.current != nil {
			if err := ap.applyLocked(ap.current, true); err != nil {
				px.log.Warn("the running directive no longer fits the configuration after a reload", "version", ap.current.Version, "err", err)
			}
		}
		ap.mu.Unlock()
	}
}

// view is the per-service part of /status.
func (ap *directiveApplier) view() (map[string]ServiceDirective, []string) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	out := map[string]ServiceDirective{}
	for name, a := range ap.applied {
		sec := a.section
		out[name] = ServiceDirective{Version: a.version, Weights: sec.Weights, SlowStart: len(sec.SlowStart),
			Admission: sec.Admission, Cache: sec.Cache, Scale: sec.Scale, Why: sec.Why}
	}
	return out, append([]string(nil), ap.ignored...)
}

var _ agent.Applier = (*directiveApplier)(nil)
