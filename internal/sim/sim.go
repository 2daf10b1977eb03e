package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/retry"
)

// maxRate bounds the offered load: beyond it a run would take hours of
// wall time per simulated second.
const maxRate = 1e7

// Options tune one run of one policy.
type Options struct {
	// Policy is the balancing policy every proxy runs (a name registered
	// in internal/balance). Required.
	Policy string
	// Seed overrides the scenario's seed when not 0.
	Seed uint64
	// Progress, when set, is called about every ProgressEvery simulated
	// requests (and once at the end) from the simulating goroutine.
	Progress func(Progress)
	// ProgressEvery is the number of requests between Progress calls.
	// Default 1<<20.
	ProgressEvery uint64
	// Stop, when set, is polled every few thousand events; returning true
	// ends the run early (the result covers the minutes simulated so far).
	Stop func() bool
	// Recommender, when set, is asked at every autoscaler sync for a
	// replica floor (a programmatic hook for tests; controllers reach the
	// autoscaler through directives).
	Recommender ScaleRecommender
	// Controller, when set, closes the loop (control.go): it observes
	// every window's telemetry and its directives are applied to the
	// proxies and autoscalers. Nil: reactive (the autoscaler alone).
	Controller control.Controller
	// Control names the control in reports (default "reactive", or the
	// controller's name); NewController, when set, builds the run's
	// controller once the simulation exists (it may read ControlSetup).
	Control       string
	NewController func(*Sim) (control.Controller, error)
	// PlanEvery is the controller's planning interval (default 1m);
	// ApplyDelay the time from a plan to its directive reaching the
	// proxies and autoscalers (default 2s: commit and stream).
	PlanEvery, ApplyDelay time.Duration
}

// ScaleRecommender supplies scale recommendations, as a forecast
// directive will: the minimum replicas a service should have at now.
type ScaleRecommender interface {
	// MinReplicas returns a floor for service at now and whether it has
	// one; the autoscaler uses max(its own minimum, the floor).
	MinReplicas(service string, now time.Time, current int) (int, bool)
}

// Progress is a run's state for a progress line.
type Progress struct {
	// Policy and Control are the run's.
	Policy, Control string
	// SimTime is how far the run is, of Duration.
	SimTime  time.Duration
	Duration time.Duration
	// Requests and Events are simulated so far.
	Requests uint64
	Events   uint64
	// Done is set on the final call.
	Done bool
}

// Sim is one run of one scenario under one policy. It is single-threaded:
// all of its state is touched by the event loop only.
type Sim struct {
	sc     *Scenario
	eng    engine
	policy string
	seed   uint64
	opts   Options

	newBal       func() balance.Balancer
	services     []*service
	byName       map[string]*service
	proxies      []*proxy
	rc           *rateCurve
	arr          *arrivals
	mix          []mixRT
	mixTotal     float64
	funnel       []stepRT
	clientRng    *rand.Rand // session and mix choices, proxy choice
	workRng      *rand.Rand // intrinsic request sizes and cache draws
	warmRng      *rand.Rand // warm fetches' sizes (apart, so warming leaves the clients' draws alone)
	end          int64
	rtt          int64
	abandonNs    int64
	thinkMean    float64
	thinkMu      float64 // log-normal think time's μ = ln(mean) − σ²/2, σ = 1
	thinkLogNrm  bool
	cluster      cluster
	events       []CalendarEvent    // announced, with this seed's factors
	shares       map[string]float64 // requests per unit of offered load
	completeStep int                // the funnel step whose success is a checkout (-1: none)

	// Free lists: the steady state allocates nothing.
	freeReqs  []*request
	freeAtts  []*attempt
	freeSess  []*session
	freeProbe []*probe

	met         *collector
	loop        *loop
	retryPolicy retry.Policy
	requests    uint64
	pinned      uint64 // first attempts pinned by an affinity cookie (Take)
	nextProg    uint64
	lastSched   int64 // next arrival time, for progress
	stopped     bool
}

// Global event kinds of Sim.handle (the index of the item sits above).
const (
	evArrival = iota
	evMinute
	evCrash
	evRecover
	evScalePlan
	evKinds
)

type mixRT struct {
	route  *route
	weight float64
}

type stepRT struct {
	calls     []callRT
	reach     float64
	retries   int
	backoff   int64
	completes bool
}

type callRT struct {
	route *route
	p     float64
}

// route is one (service, class) with what the proxy and the backend need.
type route struct {
	svc        *service
	class      string
	cost       float64
	idempotent bool
	prio       admission.Priority
	calls      []callRT
	cached     bool // the proxies cache its answers (proxy_cache.classes)
}

// New prepares a run. The scenario must have its trace loaded (LoadTrace)
// when it replays one.
func New(sc *Scenario, opts Options) (*Sim, error) {
	f, err := policyFactory(sc, opts.Policy)
	if err != nil {
		return nil, err
	}
	seed := sc.Seed
	if opts.Seed != 0 {
		seed = opts.Seed
	}
	if opts.ProgressEvery == 0 {
		opts.ProgressEvery = 1 << 20
	}
	s := &Sim{sc: sc, policy: opts.Policy, seed: seed, opts: opts, newBal: f, completeStep: -1,
		byName:    map[string]*service{},
		end:       int64(sc.Duration),
		rtt:       int64(sc.Proxies.NetworkRTT),
		abandonNs: int64(sc.Clients.AbandonAfter),
		thinkMean: float64(sc.Clients.Think),
		clientRng: newStream(seed, "clients", 0),
		workRng:   newStream(seed, "work", 0),
		warmRng:   newStream(seed, "warm", 0),
	}
	s.thinkLogNrm = sc.Clients.ThinkDist == "lognormal"
	if s.thinkMean > 0 {
		s.thinkMu = math.Log(s.thinkMean) - 0.5
	}
	s.eng.epoch = sc.Start
	s.nextProg = opts.ProgressEvery
	s.events = sc.Events(seed)
	s.shares = sc.Shares()
	if s.rc, err = buildRate(sc, s.events); err != nil {
		return nil, err
	}
	for _, k := range s.rc.knots {
		if k > maxRate {
			return nil, fmt.Errorf("the load reaches %.3g requests/s, above the simulator's %.0g: scale the scenario down", k, float64(maxRate))
		}
	}
	s.cluster.init(s)
	for i := range sc.Services {
		s.services = append(s.services, newService(s, i, &sc.Services[i]))
	}
	for _, svc := range s.services {
		svc.linkCalls()
	}
	s.retryPolicy = retry.FromConfig(sc.Proxies.Retries)
	s.met = newCollector(s)
	s.initCaches()
	if opts.NewController != nil && opts.Controller == nil {
		c, err := opts.NewController(s)
		if err != nil {
			return nil, fmt.Errorf("control %s: %w", opts.Control, err)
		}
		s.opts.Controller = c
	}
	s.initLoop()
	for i := 0; i < sc.Proxies.Count; i++ {
		s.proxies = append(s.proxies, newProxy(s, i))
	}
	for _, svc := range s.services {
		for i := 0; i < svc.spec.Replicas; i++ {
			rep := svc.addReplica()
			s.cluster.place(rep, true)
		}
	}
	for _, svc := range s.services {
		if svc.hpa != nil {
			svc.hpa.start()
		}
	}
	// The client model.
	scale := 1.0
	switch sc.Clients.Mode {
	case "requests":
		for _, m := range sc.Clients.Mix {
			s.mix = append(s.mix, mixRT{route: s.route(m.Service, m.Class), weight: m.Weight})
			s.mixTotal += m.Weight
		}
	case "sessions":
		exp := 0.0
		s.completeStep = -1
		for i, st := range sc.Clients.Funnel {
			if st.Completes && s.completeStep < 0 {
				s.completeStep = i
			}
		}
		for _, st := range sc.Clients.Funnel {
			rt := stepRT{reach: st.Reach, retries: st.Retries, backoff: int64(st.RetryBackoff), completes: st.Completes}
			for _, c := range st.Requests {
				rt.calls = append(rt.calls, callRT{route: s.route(c.Service, c.Class), p: c.P})
				exp += st.Reach * c.P
			}
			s.funnel = append(s.funnel, rt)
		}
		if exp > 0 {
			scale = 1 / exp // rate is requests/s: sessions start at rate / requests per session
		}
	}
	s.arr = newArrivals(s.rc, scale, s.end, newStream(seed, "arrivals", 0))
	if t, ok := s.arr.next(); ok {
		s.lastSched = t
		s.eng.atLane(laneArrival, t, s, evArrival)
	}
	s.eng.at(int64(sc.Window), s, evMinute)
	for i, f := range sc.Failures {
		s.eng.at(int64(f.At), s, int64(i)<<8|evCrash)
	}
	for i, st := range sc.ScalePlan {
		s.eng.at(int64(st.At), s, int64(i)<<8|evScalePlan)
	}
	return s, nil
}

// policyFactory builds the balancer factory with the scenario's options.
func policyFactory(sc *Scenario, name string) (func() balance.Balancer, error) {
	if name == "" {
		return nil, errors.New("no policy given")
	}
	var decode func(any) error
	if n, ok := sc.Proxies.PolicyOptions[name]; ok {
		decode = func(into any) error { return strictNodeDecode(&n, into) }
	}
	f, err := balance.New(name, decode)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", name, err)
	}
	return f, nil
}

func (s *Sim) route(service, class string) *route {
	svc := s.byName[service]
	for _, r := range svc.routes {
		if r.class == class {
			return r
		}
	}
	panic("sim: unknown route " + service + "." + class) // validated before
}

// Run runs the simulation to the scenario's end and returns its result.
func (s *Sim) Run() *PolicyResult {
	stop := func() bool {
		if s.opts.Stop != nil && s.opts.Stop() {
			s.stopped = true
			return true
		}
		return false
	}
	// Run window by window so a stop ends on a window boundary.
	for t := int64(0); t < s.end && !s.stopped; {
		next := min(t+int64(s.sc.Window), s.end)
		s.eng.run(next, stop)
		t = next
	}
	s.met.finish(s.eng.now)
	if s.opts.Progress != nil {
		s.opts.Progress(Progress{Policy: s.policy, Control: s.ControlName(), SimTime: time.Duration(s.eng.now), Duration: s.sc.Duration,
			Requests: s.requests, Events: s.eng.events, Done: true})
	}
	res := s.met.result()
	res.Control = s.ControlName()
	if l := s.loop; l != nil {
		res.Directives, res.NACKs, res.ControlNotes = l.versions, l.nacks, l.notes
	}
	res.Events = s.readiness(res.Minutes)
	return res
}

// Run simulates sc under one policy.
func Run(sc *Scenario, opts Options) (*PolicyResult, error) {
	s, err := New(sc, opts)
	if err != nil {
		return nil, err
	}
	return s.Run(), nil
}

func (s *Sim) now() int64 { return s.eng.now }

// ControlName is the run's control: Options.Control, else the
// controller's name, else reactive.
func (s *Sim) ControlName() string {
	switch {
	case s.opts.Control != "":
		return s.opts.Control
	case s.opts.Controller != nil:
		return s.opts.Controller.Name()
	}
	return "reactive"
}

// Seed is the run's seed.
func (s *Sim) Seed() uint64 { return s.seed }

// Policy is the run's balancing policy.
func (s *Sim) Policy() string { return s.policy }

// Scenario is the run's scenario.
func (s *Sim) Scenario() *Scenario { return s.sc }

// handle runs the global events.
func (s *Sim) handle(arg int64) {
	idx := int(arg >> 8)
	switch arg & 0xff {
	case evArrival:
		s.arrive()
		if t, ok := s.arr.next(); ok {
			s.lastSched = t
			s.eng.atLane(laneArrival, t, s, evArrival)
		}
	case evMinute:
		if row := s.met.minute(s.eng.now); row != nil {
			s.controlMinute(s.eng.now, row)
		}
		if w := int64(s.sc.Window); s.eng.now+w <= s.end {
			s.eng.after(w, s, evMinute)
		}
	case evCrash:
		f := &s.sc.Failures[idx]
		svc := s.byName[f.Service]
		var victims []*replica
		if len(f.Replicas) > 0 {
			for _, i := range f.Replicas {
				victims = append(victims, svc.reps[i])
			}
		} else {
			live := svc.liveReplicas()
			n := int(math.Round(f.Share * float64(len(live))))
			victims = live[:n]
		}
		for _, r := range victims {
			r.crash()
			if f.For > 0 {
				s.eng.after(int64(f.For), r, repRecover)
			}
		}
	case evApply:
		s.applyNext()
	case evScalePlan:
		st := &s.sc.ScalePlan[idx]
		if h := s.byName[st.Service].hpa; h != nil {
			h.planMin = st.MinReplicas
			h.sync() // apply the new floor at once, as an HPA spec update does
		}
	}
}

// arrive handles one arrival: a session start or an independent request.
func (s *Sim) arrive() {
	px := s.proxies[0]
	if len(s.proxies) > 1 {
		px = s.proxies[s.clientRng.IntN(len(s.proxies))]
	}
	if s.funnel != nil {
		s.startSession(px)
		return
	}
	rt := s.mix[0].route
	if len(s.mix) > 1 {
		x := s.clientRng.Float64() * s.mixTotal
		for _, m := range s.mix {
			if x < m.weight {
				rt = m.route
				break
			}
			x -= m.weight
		}
	}
	s.send(rt, px, nil, nil, 0)
}

// countRequest accounts one proxy-level request for progress.
func (s *Sim) countRequest() {
	s.requests++
	if s.requests >= s.nextProg && s.opts.Progress != nil {
		s.nextProg += s.opts.ProgressEvery
		s.opts.Progress(Progress{Policy: s.policy, Control: s.ControlName(), SimTime: time.Duration(s.eng.now), Duration: s.sc.Duration,
			Requests: s.requests, Events: s.eng.events})
	}
}

// drawService draws a cost-1 service time in ns from a service's
// distribution. Log-normal parameters follow the shop's derivation
// (internal/shop/capacity.go): σ² = ln(1 + cv²), μ = ln(mean) − σ²/2.
func (svc *service) drawService(r *rand.Rand) float64 {
	switch svc.distKind {
	case distExponential:
		return svc.mean * r.ExpFloat64()
	case distConstant:
		return svc.mean
	}
	if svc.sigma == 0 {
		return svc.mean
	}
	return math.Exp(svc.mu + svc.sigma*r.NormFloat64())
}

// think draws a think time (log-normal σ = 1, or exponential, with the
// configured mean, capped at 20 means as `lbsys load` does).
func (s *Sim) think() int64 {
	if s.thinkMean <= 0 {
		return 0
	}
	var d float64
	if s.thinkLogNrm {
		d = math.Exp(s.thinkMu + s.clientRng.NormFloat64())
	} else {
		d = s.thinkMean * s.clientRng.ExpFloat64()
	}
	return int64(min(d, 20*s.thinkMean))
}
