package proxy

import (
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/health"
	"github.com/lbsys/lbsys/internal/proxy/upstream"
	"github.com/lbsys/lbsys/internal/retry"
	"github.com/lbsys/lbsys/internal/steer"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// serviceSettings is the immutable, derived form of a service's
// configuration that the request path reads.
type serviceSettings struct {
	priority string
	prio     admission.Priority
	policy   string // the balancing policy's name, for the access log

	retry         retry.Policy // the rule the simulator runs too
	perTryTimeout time.Duration
	maxReplayBody int64

	connectTimeout time.Duration
	requestTimeout time.Duration
	abortOnClose   bool

	cookie     *cookieSigner // cookie affinity, nil if off
	hashHeader string        // hash affinity key header, "" if none
	hashCookie string        // hash affinity key cookie, "" if none
}

func deriveSettings(sc *config.Service, secret []byte) *serviceSettings {
	s := &serviceSettings{
		priority:       sc.Priority,
		prio:           priorityOrNormal(sc.Priority),
		policy:         sc.Policy.Name,
		retry:          retry.FromConfig(sc.Retries),
		perTryTimeout:  sc.Retries.PerTryTimeout,
		maxReplayBody:  int64(sc.Retries.MaxBodyBytes),
		connectTimeout: sc.Timeouts.Connect,
		requestTimeout: sc.Timeouts.Request,
		abortOnClose:   sc.Timeouts.AbortOnClientClose,
	}
	switch sc.Affinity.Type {
	case "cookie":
		c := sc.Affinity.Cookie
		s.cookie = newCookieSigner(sc.Name, c.Name, c.TTL, c.Secure, secret)
	case "hash":
		s.hashHeader = sc.Affinity.Hash.Header
		s.hashCookie = sc.Affinity.Hash.Cookie
	}
	return s
}

// priorityOrNormal maps a priority name to its admission class. The name
// was validated with the configuration; an unknown one (a Config built in
// Go without Validate) falls back to normal rather than panicking, so a bad
// field can never take the data plane down.
func priorityOrNormal(name string) admission.Priority {
	p, err := admission.ParsePriority(name)
	if err != nil {
		return admission.Normal
	}
	return p
}

// endpoint is the proxy's long-lived state for one backend of one service.
type endpoint struct {
	be     *balance.Endpoint
	member *health.Member
	up     *upstream.Pool
	key    uint64 // affinity cookie identity
	tel    *telemetry.Counter

	upstreamLatency prometheus.Observer
	ejections       prometheus.Counter
	codes           codeCounters
}

// snapshot is what a request reads: one atomic load gives a consistent
// picker, its endpoints and the settings.
type snapshot struct {
	picker balance.Picker
	ring   balance.Picker // hash affinity, nil when not configured
	eps    []*endpoint    // by picker slot
	byKey  map[uint64]int // affinity cookie identity -> slot
	panic  bool
	set    *serviceSettings
}

// service is the long-lived runtime of one configured service. It survives
// reloads that keep its name: health state, in-flight counts and pooled
// connections carry over.
type service struct {
	name string
	px   *Proxy

	mu        sync.Mutex // guards everything below but snap and the counters
	cfg       *config.Service
	policyID  string
	bal       balance.Balancer
	ringBal   balance.Balancer
	pool      *health.Pool
	eps       map[string]*endpoint
	order     []string
	prober    *prober
	settings  *serviceSettings
	directive *balance.Directive // last directive applied, nil if none

	snap     atomic.Pointer[snapshot]
	limiter  atomic.Pointer[admission.Limiter] // nil: admission off
	admCfg   *config.Admission
	probe    *probeDriver // prequal's probes, nil for other policies
	ramping  bool         // a directive ramp is moving: rebuild every tick
	active   atomic.Int64 // requests in flight, for the retry budget
	retrying atomic.Int64 // retries in flight
	tel      *telemetry.Counter

	bytesIn, bytesOut prometheus.Counter
}

func newService(px *Proxy, name string) *service {
	s := &service{name: name, px: px, eps: map[string]*endpoint{}}
	s.tel = telemetry.NewCounter(func() int64 { return s.active.Load() })
	s.bytesIn = px.metrics.BytesIn.WithLabelValues(name)
	s.bytesOut = px.metrics.BytesOut.WithLabelValues(name)
	return s
}

// policyIdentity is what must change for the balancer to be replaced on
// reload (its state, such as EWMA costs, is otherwise kept).
func policyIdentity(sc *config.Service) string {
	return fmt.Sprintf("%s|%v", sc.Policy.Name, nodeString(&sc.Policy.Options))
}

// serviceInputs are the parts of a service's configuration that can fail
// to load, loaded before any service changes (Proxy.apply).
type serviceInputs struct {
	factory func() balance.Balancer
	secret  []byte // cookie affinity key; nil without cookie affinity
}

// apply installs a (new or changed) configuration; it cannot fail, so that
// a reload changes every service or none. initial marks the first
// configuration the proxy starts with: its endpoints are treated as warm.
func (s *service) apply(sc *config.Service, initial bool, in serviceInputs) {
	secret, factory := in.secret, in.factory
	now := s.px.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()

	s.cfg = sc
	s.settings = deriveSettings(sc, secret)
	if id := policyIdentity(sc); s.bal == nil || id != s.policyID {
		s.bal = factory()
		s.policyID = id
		// A directive survives a reload (or a policy change) when the
		// policy takes directives.
		if nd, ok := s.bal.(balance.Directed); ok && s.directive != nil {
			nd.SetDirective(s.directive)
		}
	}
	s.applyAdmission(sc.Admission)
	if sc.Affinity.Type == "hash" {
		s.ringBal = balance.NewRingHash(balance.RingHashOptions{Epsilon: sc.Affinity.Hash.Epsilon, VirtualNodes: sc.Affinity.Hash.VirtualNodes})
	} else {
		s.ringBal = nil
	}
	hc := sc.Health.PoolConfig()
	if s.pool == nil {
		s.pool = health.NewPool(hc)
	} else {
		s.pool.SetConfig(hc)
	}

	keep := map[string]bool{}
	s.order = s.order[:0]
	for _, ec := range sc.Endpoints {
		id := ec.Address
		keep[id] = true
		s.order = append(s.order, id)
		ep, ok := s.eps[id]
		if !ok {
			be := balance.NewEndpoint(id)
			ep = &endpoint{
				be:              be,
				up:              upstream.NewPool(s.px.clock, id, sc.Timeouts.Connect, sc.Timeouts.Idle, sc.Timeouts.TunnelIdle, sc.Upstream.MaxIdlePerEndpoint),
				key:             endpointKey(id),
				tel:             telemetry.NewCounter(be.InFlight),
				upstreamLatency: s.px.metrics.UpstreamLatency.WithLabelValues(s.name, id),
				ejections:       s.px.metrics.Ejections.WithLabelValues(s.name, id),
			}
			s.eps[id] = ep
		} else {
			ep.up.SetLimits(sc.Timeouts.Connect, sc.Timeouts.Idle, sc.Timeouts.TunnelIdle, sc.Upstream.MaxIdlePerEndpoint)
		}
		if m := s.pool.Add(ep.be, float64(ec.Weight), now, initial); ep.member == nil {
			ep.member = m // the same Member for the endpoint's whole life
		}
	}
	for id, ep := range s.eps {
		if !keep[id] {
			delete(s.eps, id)
			ep.up.CloseIdle(now, true)
			s.px.metrics.Available.DeleteLabelValues(s.name, id)
			s.px.metrics.Weight.DeleteLabelValues(s.name, id)
		}
	}
	s.pool.Retain(keep)
	s.rebuildLocked(now)
	old := s.prober
	s.prober = nil
	if sc.Health.Active != nil {
		s.prober = newProber(s, sc.Health.Active)
		s.prober.start()
	}
	oldProbe := s.probe
	s.probe = nil
	if pr, ok := s.bal.(balance.Prober); ok {
		s.probe = newProbeDriver(s, pr)
		s.probe.start()
	}
	s.mu.Unlock()
	// The old probers' goroutines may be waiting for s.mu to rebuild, so
	// stop them only after releasing the lock.
	if old != nil {
		old.stop()
	}
	if oldProbe != nil {
		oldProbe.stop()
	}
	s.mu.Lock()
}

// applyAdmission installs, keeps or removes the concurrency limiter. A
// changed configuration gets a new limiter seeded with the old limit, so a
// reload does not forget what was learned.
func (s *service) applyAdmission(ac *config.Admission) {
	cur := s.limiter.Load()
	if ac == nil {
		s.limiter.Store(nil)
		s.admCfg = nil
		return
	}
	if cur != nil && s.admCfg != nil && *s.admCfg == *ac {
		return
	}
	l := admission.New(ac.LimiterConfig())
	if cur != nil {
		l.Seed(cur.Limit())
	}
	c := *ac
	s.admCfg = &c
	s.limiter.Store(l)
}

// caps reads what a directive's change is derived from and checked
// against (steer.Plan): the policy's capabilities, the endpoints and the
// admission limiter.
func (s *service) caps() steer.Caps {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, directed := s.bal.(balance.Directed)
	c := steer.Caps{Policy: s.cfg.Policy.Name, Directed: directed, Limiter: s.limiter.Load(),
		Endpoints: make(map[string]bool, len(s.eps))}
	for id := range s.eps {
		c.Endpoints[id] = true
	}
	return c
}

// applyChange applies a change steer.Plan checked against caps. It refuses
// it whole if the service no longer is what caps described (a reload in
// between), and makes the one step that can fail (the limiter's bounds)
// first: a directive is applied whole or not at all (issue #13 item 5).
func (s *service) applyChange(ch steer.Change, caps steer.Caps) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ch.Service() {
		return nil // nothing for the balancer or the limiter (the cache part is the proxy's)
	}
	dir, directed := s.bal.(balance.Directed)
	if (ch.Weights != nil || ch.ClearWeights) && !directed {
		return fmt.Errorf("service %s changed since the directive was checked: policy %s does not take weights", s.name, s.cfg.Policy.Name)
	}
	if ch.Admission != nil {
		l := s.limiter.Load()
		if l == nil || l != caps.Limiter {
			return fmt.Errorf("service %s changed since the directive was checked: its admission limiter was replaced", s.name)
		}
		if err := ch.Admission.Apply(l); err != nil {
			return err
		}
	}
	switch {
	case ch.ClearWeights:
		dir.SetDirective(nil)
		s.directive = nil
	case ch.Weights != nil:
		dir.SetDirective(ch.Weights) // validated by steer.Plan: cannot fail
		s.directive = ch.Weights
	}
	s.rebuildLocked(s.px.clock.Now())
	return nil
}

// AdmissionDirective bounds or seeds a service's concurrency limit.
type AdmissionDirective struct {
	Min  int `json:"min,omitempty"`
	Max  int `json:"max,omitempty"`
	Seed int `json:"seed,omitempty"`
}

// affinitySecret loads the cookie HMAC key, or makes a per-process one.
func affinitySecret(sc *config.Service, px *Proxy) ([]byte, error) {
	if sc.Affinity.Type != "cookie" {
		return nil, nil
	}
	secret, err := sc.Affinity.Cookie.Secret()
	if err != nil {
		return nil, fmt.Errorf("services[%s].affinity.cookie: %w", sc.Name, err)
	}
	if len(secret) > 0 {
		return secret, nil
	}
	return px.processSecret(sc.Name), nil
}

// rebuild publishes a new snapshot from the current health state.
func (s *service) rebuild() {
	now := s.px.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rebuildLocked(now)
}

func (s *service) rebuildLocked(now time.Time) {
	eligible, panicking := s.pool.Eligible(now)
	s.ramping = false
	if d, ok := s.bal.(balance.Directed); ok {
		eligible, s.ramping = d.ScaleWeights(eligible, now)
	}
	snap := &snapshot{
		picker: s.bal.Update(eligible),
		eps:    make([]*endpoint, len(eligible)),
		panic:  panicking,
		set:    s.settings,
	}
	if s.ringBal != nil {
		snap.ring = s.ringBal.Update(eligible)
	}
	if s.settings.cookie != nil {
		snap.byKey = make(map[uint64]int, len(eligible))
	}
	for i, w := range eligible {
		ep := s.eps[w.Endpoint.ID]
		snap.eps[i] = ep
		if snap.byKey != nil {
			snap.byKey[ep.key] = i
		}
	}
	s.snap.Store(snap)

	m := s.px.metrics
	members, _ := s.pool.Status(now)
	for _, st := range members {
		avail := 0.0
		if st.Available {
			avail = 1
		}
		m.Available.WithLabelValues(s.name, st.ID).Set(avail)
		m.Weight.WithLabelValues(s.name, st.ID).Set(st.EffectiveWeight)
	}
	p := 0.0
	if panicking {
		p = 1
	}
	m.Panic.WithLabelValues(s.name).Set(p)
}

// tick advances health timers and rebuilds when weights or eligibility
// changed.
func (s *service) tick(now time.Time) {
	changed := s.pool.Tick(now)
	s.mu.Lock()
	ramping := s.ramping
	s.mu.Unlock()
	if changed || ramping {
		s.rebuild()
	}
}

// closeIdle drops expired pooled connections.
func (s *service) closeIdle(now time.Time) {
	s.mu.Lock()
	ups := make([]*upstream.Pool, 0, len(s.eps))
	for _, ep := range s.eps {
		ups = append(ups, ep.up)
	}
	s.mu.Unlock()
	for _, u := range ups {
		u.CloseIdle(now, false)
	}
}

// stop ends the service's background work and closes its idle connections
// (in-flight requests finish; their connections close instead of pooling).
func (s *service) stop() {
	s.mu.Lock()
	pr, pd := s.prober, s.probe
	s.prober, s.probe = nil, nil
	s.mu.Unlock()
	if pr != nil {
		pr.stop()
	}
	if pd != nil {
		pd.stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.px.clock.Now()
	for id, ep := range s.eps {
		ep.up.CloseIdle(now, true)
		s.px.metrics.Available.DeleteLabelValues(s.name, id)
		s.px.metrics.Weight.DeleteLabelValues(s.name, id)
	}
	s.px.metrics.Panic.DeleteLabelValues(s.name)
}

// observe feeds one attempt's outcome to outlier detection.
func (s *service) observe(ep *endpoint, o health.Outcome, now time.Time) {
	if ep.member == nil {
		return
	}
	if s.pool.ObserveResult(ep.member, o, now) {
		ep.ejections.Inc()
		s.px.log.Warn("endpoint ejected", "service", s.name, "endpoint", ep.be.ID)
		s.rebuild()
	}
}

// series returns the telemetry series of the service and its endpoints.
func (s *service) series() []telemetry.Series {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []telemetry.Series{{Service: s.name, Counter: s.tel}}
	for _, id := range s.order {
		out = append(out, telemetry.Series{Service: s.name, Endpoint: id, Counter: s.eps[id].tel})
	}
	return out
}

// status is the service's view for GET /status.
func (s *service) status(now time.Time) ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	members, panicking := s.pool.Status(now)
	st := ServiceStatus{
		Name:     s.name,
		Priority: s.settings.priority,
		Policy:   s.cfg.Policy.Name,
		Panic:    panicking,
		InFlight: s.active.Load(),
		Retrying: s.retrying.Load(),
		Affinity: s.cfg.Affinity.Type,
	}
	if st.Affinity == "" {
		st.Affinity = "none"
	}
	st.PolicyState = s.bal.Describe()
	if l := s.limiter.Load(); l != nil {
		snap := l.Snapshot()
		st.Admission = &snap
	}
	for _, m := range members {
		ep := s.eps[m.ID]
		es := EndpointStatus{MemberStatus: m}
		if ep != nil {
			es.InFlight = ep.be.InFlight()
			es.IdleConns = ep.up.IdleCount()
		}
		st.Endpoints = append(st.Endpoints, es)
	}
	return st
}

// ServiceStatus is one service in GET /status.
type ServiceStatus struct {
	Name        string              `json:"name"`
	Priority    string              `json:"priority"`
	Policy      string              `json:"policy"`
	PolicyState any                 `json:"policy_state,omitempty"`
	Admission   *admission.Snapshot `json:"admission,omitempty"`
	Affinity    string              `json:"affinity"`
	Panic       bool                `json:"panic"`
	InFlight    int64               `json:"in_flight"`
	Retrying    int64               `json:"retrying"`
	Endpoints   []EndpointStatus    `json:"endpoints"`
}

// EndpointStatus is one endpoint in GET /status.
type EndpointStatus struct {
	health.MemberStatus
	InFlight  int64 `json:"in_flight"`
	IdleConns int   `json:"idle_conns"`
}

// randomSecret returns 32 random bytes.
func randomSecret() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return b
}
