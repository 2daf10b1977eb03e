// Package health decides which endpoints of a service receive traffic and
// with what weight: active check thresholds, passive outlier ejection, the
// panic threshold and slow start. It is pure decision code (DESIGN.md
// principle 2): the caller passes the time and the observations; the HTTP
// prober lives in the proxy.
//
// A Pool is owned by one service. Observations may arrive from any goroutine;
// the common case (a success, a failure below threshold) is a couple of atomic
// operations, and only a state change takes the pool's lock. Whenever a method
// reports changed == true, the owner rebuilds its picker from Eligible.
package health

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

// Config is the health configuration of one service. Zero values disable the
// corresponding mechanism.
type Config struct {
	// Active check thresholds; zero when active checks are off.
	HealthyThreshold   int
	UnhealthyThreshold int

	// Outlier ejection (Envoy's consecutive failure detectors).
	OutlierEnabled            bool
	Consecutive5xx            int
	ConsecutiveGatewayFailure int
	BaseEjectionTime          time.Duration
	MaxEjectionTime           time.Duration
	MaxEjectionPercent        float64
	// EjectionDecay is how long an endpoint must stay un-ejected for its
	// ejection multiplier to drop by one. Default BaseEjectionTime.
	EjectionDecay time.Duration

	// PanicThreshold in percent: below it, balance over every endpoint.
	PanicThreshold float64

	// Slow start (Envoy's formula); SlowStartWindow 0 disables.
	SlowStartWindow     time.Duration
	SlowStartAggression float64
	SlowStartMinPercent float64
}

// Outcome classifies one attempt for outlier detection.
type Outcome uint8

const (
	// Success is any response below 500.
	Success Outcome = iota
	// ServerError is a 500-599 response other than a gateway failure.
	ServerError
	// GatewayFailure is 502, 503, 504, or a connect failure, reset or
	// timeout: the endpoint (or the path to it) is likely down.
	GatewayFailure
)

// Classify maps a status (0 for a transport failure) to an Outcome.
func Classify(status int, transportFailure bool) Outcome {
	switch {
	case transportFailure || status == 502 || status == 503 || status == 504:
		return GatewayFailure
	case status >= 500:
		return ServerError
	default:
		return Success
	}
}

// Member is one endpoint's health state.
type Member struct {
	Endpoint *balance.Endpoint
	// Weight is the configured weight.
	Weight float64

	cons5xx atomic.Int32
	consGw  atomic.Int32

	// Guarded by Pool.mu.
	activeUp       bool
	activeSeen     bool
	succ, fail     int
	ejected        bool
	ejectedUntil   time.Time
	ejections      int
	lastEjectEnd   time.Time
	availableSince time.Time // start of the current slow-start ramp
	rampDone       bool
	lastReason     string
}

// Pool is the health state of one service.
type Pool struct {
	mu      sync.Mutex
	cfgp    atomic.Pointer[Config] // read without the lock by ObserveResult
	members []*Member
	byID    map[string]*Member
}

// NewPool returns an empty pool.
func NewPool(cfg Config) *Pool {
	p := &Pool{byID: map[string]*Member{}}
	c := withDefaults(cfg)
	p.cfgp.Store(&c)
	return p
}

func (p *Pool) cfg() *Config { return p.cfgp.Load() }

func withDefaults(c Config) Config {
	if c.EjectionDecay <= 0 {
		c.EjectionDecay = c.BaseEjectionTime
	}
	if c.SlowStartAggression <= 0 {
		c.SlowStartAggression = 1
	}
	return c
}

// SetConfig replaces the configuration (on reload), keeping member state.
func (p *Pool) SetConfig(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := withDefaults(cfg)
	p.cfgp.Store(&c)
	if cfg.HealthyThreshold == 0 {
		for _, m := range p.members {
			m.activeUp, m.activeSeen = true, false
		}
	}
}

// Add puts an endpoint in the pool. Endpoints present when the service is
// first built (initial) are assumed warm; later additions ramp up with slow
// start. Adding an existing ID updates its weight only.
func (p *Pool) Add(e *balance.Endpoint, weight float64, now time.Time, initial bool) *Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.byID[e.ID]; ok {
		m.Weight = weight
		return m
	}
	m := &Member{Endpoint: e, Weight: weight, activeUp: true, availableSince: now, rampDone: initial}
	p.members = append(p.members, m)
	p.byID[e.ID] = m
	return m
}

// Retain drops every member whose ID is not in keep, preserving order.
func (p *Pool) Retain(keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.members[:0]
	for _, m := range p.members {
		if keep[m.Endpoint.ID] {
			out = append(out, m)
		} else {
			delete(p.byID, m.Endpoint.ID)
		}
	}
	for i := len(out); i < len(p.members); i++ {
		p.members[i] = nil
	}
	p.members = out
}

// Members returns the members in order. The slice must not be modified.
func (p *Pool) Members() []*Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Member(nil), p.members...)
}

// Get returns the member with the given ID.
func (p *Pool) Get(id string) *Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id]
}

// available must be called with p.mu held.
func (p *Pool) available(m *Member) bool {
	return (p.cfg().HealthyThreshold == 0 || m.activeUp) && !m.ejected
}

// ObserveActive records one active check result. The first result after an
// endpoint joins decides at once, so a dead endpoint is taken out (and a live
// one confirmed) after one probe rather than after the thresholds.
func (p *Pool) ObserveActive(m *Member, ok bool, now time.Time) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg().HealthyThreshold == 0 {
		return false
	}
	before := p.available(m)
	first := !m.activeSeen
	m.activeSeen = true
	if ok {
		m.succ++
		m.fail = 0
		if !m.activeUp && (first || m.succ >= p.cfg().HealthyThreshold) {
			m.activeUp = true
			m.lastReason = "active check passed"
		}
	} else {
		m.fail++
		m.succ = 0
		if m.activeUp && (first || m.fail >= p.cfg().UnhealthyThreshold) {
			m.activeUp = false
			m.lastReason = "active check failed"
		}
	}
	return p.noteTransition(m, before, now)
}

// noteTransition starts a slow-start ramp when m becomes available again.
func (p *Pool) noteTransition(m *Member, before bool, now time.Time) bool {
	after := p.available(m)
	if !before && after {
		m.availableSince = now
		m.rampDone = p.cfg().SlowStartWindow == 0
	}
	return before != after
}

// ObserveResult records the outcome of live traffic for outlier detection.
// It returns true when the endpoint was ejected by this observation.
func (p *Pool) ObserveResult(m *Member, o Outcome, now time.Time) (changed bool) {
	if !p.cfg().OutlierEnabled {
		return false
	}
	if o == Success {
		// Only write when needed: a store on every success would bounce
		// the cache line between cores for nothing.
		if m.cons5xx.Load() != 0 {
			m.cons5xx.Store(0)
		}
		if m.consGw.Load() != 0 {
			m.consGw.Store(0)
		}
		return false
	}
	n5 := m.cons5xx.Add(1)
	var ngw int32
	if o == GatewayFailure {
		ngw = m.consGw.Add(1)
	} else if m.consGw.Load() != 0 {
		m.consGw.Store(0)
	}
	hit5 := p.cfg().Consecutive5xx > 0 && int(n5) >= p.cfg().Consecutive5xx
	hitGw := p.cfg().ConsecutiveGatewayFailure > 0 && int(ngw) >= p.cfg().ConsecutiveGatewayFailure
	if !hit5 && !hitGw {
		return false
	}
	reason := "consecutive 5xx"
	if hitGw {
		reason = "consecutive gateway failures"
	}
	return p.eject(m, now, reason)
}

func (p *Pool) eject(m *Member, now time.Time, reason string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.ejected {
		return false
	}
	if _, ok := p.byID[m.Endpoint.ID]; !ok {
		return false // removed by a reload meanwhile
	}
	ejected := 0
	for _, x := range p.members {
		if x.ejected {
			ejected++
		}
	}
	// At least one endpoint may always be ejected; beyond that the
	// percentage cap protects the pool from ejecting itself empty.
	if ejected > 0 && float64(ejected+1)*100 > p.cfg().MaxEjectionPercent*float64(len(p.members)) {
		return false
	}
	before := p.available(m)
	m.ejections++
	d := time.Duration(m.ejections) * p.cfg().BaseEjectionTime
	if p.cfg().MaxEjectionTime > 0 && d > p.cfg().MaxEjectionTime {
		d = p.cfg().MaxEjectionTime
	}
	m.ejected = true
	m.ejectedUntil = now.Add(d)
	m.lastReason = "ejected: " + reason
	m.cons5xx.Store(0)
	m.consGw.Store(0)
	return p.noteTransition(m, before, now)
}

// Tick advances time: it returns ejected endpoints whose time is up, decays
// ejection multipliers and reports whether effective weights changed (an
// endpoint returned, or a slow-start ramp is in progress or just ended).
func (p *Pool) Tick(now time.Time) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.members {
		if m.ejected {
			if !now.Before(m.ejectedUntil) {
				before := p.available(m)
				m.ejected = false
				m.lastEjectEnd = now
				m.lastReason = "ejection time over"
				if p.noteTransition(m, before, now) {
					changed = true
				}
			}
			continue
		}
		if m.ejections > 0 && !m.lastEjectEnd.IsZero() && now.Sub(m.lastEjectEnd) >= p.cfg().EjectionDecay {
			m.ejections--
			m.lastEjectEnd = now
		}
		if !m.rampDone && p.available(m) {
			changed = true // weight moves along the ramp
			if p.cfg().SlowStartWindow == 0 || now.Sub(m.availableSince) >= p.cfg().SlowStartWindow {
				m.rampDone = true
			}
		}
	}
	return changed
}

// SlowStartFactor is Envoy's slow-start multiplier for an endpoint that
// became available elapsed ago: max(minPercent/100, (t/window)^(1/aggression))
// with t clamped to at least 1 ms and the result to at most 1.
func SlowStartFactor(elapsed, window time.Duration, aggression, minPercent float64) float64 {
	if window <= 0 || elapsed >= window {
		return 1
	}
	if elapsed < time.Millisecond {
		elapsed = time.Millisecond
	}
	if aggression <= 0 {
		aggression = 1
	}
	f := math.Pow(float64(elapsed)/float64(window), 1/aggression)
	if floor := minPercent / 100; f < floor {
		f = floor
	}
	if f > 1 {
		f = 1
	}
	return f
}

// Eligible returns the endpoints to balance over with their effective
// weights, and whether the pool is in panic mode. In panic mode (available
// share below the threshold) every endpoint is returned at full weight:
// spreading load over possibly-unhealthy endpoints beats crushing the
// healthy few.
func (p *Pool) Eligible(now time.Time) (eps []balance.Weighted, panicking bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	avail := 0
	for _, m := range p.members {
		if p.available(m) {
			avail++
		}
	}
	n := len(p.members)
	if n > 0 && p.cfg().PanicThreshold > 0 && float64(avail)*100 < p.cfg().PanicThreshold*float64(n) {
		eps = make([]balance.Weighted, 0, n)
		for _, m := range p.members {
			eps = append(eps, balance.Weighted{Endpoint: m.Endpoint, Weight: m.Weight})
		}
		return eps, true
	}
	eps = make([]balance.Weighted, 0, avail)
	for _, m := range p.members {
		if !p.available(m) {
			continue
		}
		w := m.Weight
		if !m.rampDone {
			w *= SlowStartFactor(now.Sub(m.availableSince), p.cfg().SlowStartWindow, p.cfg().SlowStartAggression, p.cfg().SlowStartMinPercent)
		}
		eps = append(eps, balance.Weighted{Endpoint: m.Endpoint, Weight: w})
	}
	return eps, false
}

// MemberStatus is a member's state for /status.
type MemberStatus struct {
	ID              string    `json:"id"`
	Weight          float64   `json:"weight"`
	EffectiveWeight float64   `json:"effective_weight"`
	Available       bool      `json:"available"`
	ActiveHealthy   bool      `json:"active_healthy"`
	Ejected         bool      `json:"ejected"`
	EjectedUntil    time.Time `json:"ejected_until,omitzero"`
	Ejections       int       `json:"ejections"`
	SlowStart       bool      `json:"slow_start"`
	LastChange      string    `json:"last_change,omitempty"`
}

// Status describes every member at now.
func (p *Pool) Status(now time.Time) (out []MemberStatus, panicking bool) {
	eps, panicking := p.Eligible(now)
	eff := map[*balance.Endpoint]float64{}
	for _, w := range eps {
		eff[w.Endpoint] = w.Weight
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.members {
		st := MemberStatus{
			ID: m.Endpoint.ID, Weight: m.Weight, EffectiveWeight: eff[m.Endpoint],
			Available: p.available(m), ActiveHealthy: p.cfg().HealthyThreshold == 0 || m.activeUp,
			Ejected: m.ejected, Ejections: m.ejections, SlowStart: !m.rampDone && p.available(m),
			LastChange: m.lastReason,
		}
		if m.ejected {
			st.EjectedUntil = m.ejectedUntil
		}
		out = append(out, st)
	}
	return out, panicking
}
