package sim

import (
	"math/rand/v2"
	"time"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/health"
)

// The proxy model runs the production decision code exactly as
// internal/proxy drives it (forward.go, service.go, prequal.go):
//
//   - admission: Limiter.Acquire with the route's priority before any
//     attempt; Release with the time to the final answer and dropped =
//     503/504, or dropped = true for a timeout or connect failure, Cancel
//     otherwise;
//   - balancing: Picker.Pick with PickInfo{Now, Rand, Hash, Exclude}, one
//     Done per pick with the attempt's latency, status, transport failure
//     and the replica's load report; a new picker from Balancer.Update
//     whenever health.Pool.Eligible changes (ejection, return, slow start,
//     membership), weights passed through balance.Directed.Apply;
//   - health: ObserveResult(Classify(status, transport failure)) after every
//     attempt, Tick every proxies.tick, ObserveActive for active checks;
//   - retries: on connect failure, reset or 502/503/504, idempotent routes
//     only (connect failures always), within attempts, a retry budget
//     (budget_percent of active requests, at least min_concurrency) and
//     the deadline, after a full-jitter backoff, excluding tried replicas;
//   - prequal probes (balance.Prober): every probe_tick the driver asks
//     ProbesOwed, picks ProbeTargets, and each probe reads the replica's
//     requests in flight half a network round trip later and reports it
//     with ObserveProbe half a round trip after that (latency 0: the
//     policy uses its own estimate, as the proxy does), at most 64 probes
//     in flight.
//
// Affinity: a session's requests carry its key's hash (HasHash), as a
// cookie or header key would give the hash policies (ring_hash, maglev);
// independent requests and downstream calls carry none. A service with
// affinity: cookie pins a session's first attempt to the replica its
// cookie names when that replica is eligible (Picker.Take), and every
// answer from a replica (re)sets the cookie, as the proxy's signed cookie
// does. Not modelled: per-try timeouts, request bodies, connection pools.

const maxExclude = 4

// request is one proxy-level request: from Acquire to the final answer,
// across attempts.
type request struct {
	s     *Sim
	gen   uint32
	route *route
	ps    *proxySvc
	sess  *session
	// aff is the session whose affinity (cookie, hash key) the request
	// carries: its own, or, for a downstream call, the calling request's
	// (the shop's checkout forwards the session cookie); affGen guards
	// against the session having ended meanwhile.
	aff    *session
	affGen uint32
	parent *attempt // the backend attempt waiting on this downstream call
	pgen   uint32   // parent's generation when the call was made

	clientStart int64
	proxyStart  int64
	deadline    int64
	attemptN    int
	att         *attempt
	pick        balance.Pick
	snap        *snapshot
	rep         *replica
	attStart    int64
	admitted    bool
	retryHeld   bool
	done        bool
	exclude     [maxExclude]*balance.Endpoint
	nexcl       int
	hash        uint64

	work float64 // cost-1 service time at speed 1 (ns), drawn at creation
	u    float64 // uniform draw for the cache

	status int
	fail   uint8
	shed   bool
}

// Request event kinds.
const (
	reqRetry = iota
)

// Failure kinds of an attempt (0: an HTTP answer).
const (
	failNone uint8 = iota
	failConnect
	failReset
	failTimeout
	failNoEndpoint
)

// attempt is one try at one replica.
type attempt struct {
	s      *Sim
	gen    uint32
	req    *request // nil once the proxy gave up on it
	rt     *route
	rep    *replica
	phase  uint8
	slot   int
	enq    int64
	callIx int
	child  *request
	status int
	fail   uint8
	load   balance.LoadReport
}

// Attempt phases.
const (
	phWire uint8 = iota
	phQueued
	phService
	phCalls
	phReply
	phCancelled
)

// Attempt event kinds.
const (
	attArrive = iota
	attServiceDone
	attReply
)

func (a *attempt) handle(arg int64) {
	if uint32(arg>>8) != a.gen {
		return // stale: meant for an earlier life of this attempt
	}
	switch arg & 0xff {
	case attArrive:
		a.rep.arrive(a)
	case attServiceDone:
		a.serviceDone()
	case attReply:
		a.s.attemptReturn(a)
	}
}

// snapshot is a published picker with the replicas of its slots.
type snapshot struct {
	picker balance.Picker
	reps   []*replica
	// slotOf maps a replica id to its slot (-1: not eligible), for
	// cookie affinity (the proxy's byKey).
	slotOf []int32
}

// proxy is one proxy replica.
type proxy struct {
	s    *Sim
	idx  int
	rng  *rand.Rand
	svcs []*proxySvc
}

// proxySvc is one proxy's state for one service, as internal/proxy's
// service type: a balancer, a health pool, a limiter.
type proxySvc struct {
	px      *proxy
	svc     *service
	bal     balance.Balancer
	prober  balance.Prober
	directd balance.Directed
	pool    *health.Pool
	members []*health.Member    // by replica id
	eps     []*balance.Endpoint // by replica id
	byEp    map[*balance.Endpoint]*replica
	lim     *admission.Limiter
	snap    *snapshot
	ramping bool

	info balance.PickInfo
	done balance.DoneInfo

	active   int64
	retrying int64

	timeouts  reqFIFO
	toArmed   bool
	probeArm  bool
	probeBuf  []*balance.Endpoint
	probesOut int
}

// proxySvc event kinds.
const (
	psTimeout = iota
	psProbeTick
	psActive
)

func newProxy(s *Sim, idx int) *proxy {
	px := &proxy{s: s, idx: idx, rng: newStream(s.seed, "proxy", idx)}
	sc := s.sc
	hc := healthConfig(&sc.Proxies.Health)
	for _, svc := range s.services {
		ps := &proxySvc{px: px, svc: svc, bal: s.newBal(), pool: health.NewPool(hc),
			byEp: map[*balance.Endpoint]*replica{}}
		ps.prober, _ = ps.bal.(balance.Prober)
		ps.directd, _ = ps.bal.(balance.Directed)
		if a := sc.Proxies.Admission; a != nil {
			ps.lim = admission.New(a.limiterConfig())
		}
		ps.info.Rand = px.rng
		ps.rebuild()
		px.svcs = append(px.svcs, ps)
		if sc.Proxies.Health.Active != nil {
			s.eng.at(int64(sc.Proxies.Health.Active.Interval), ps, psActive)
		}
	}
	s.eng.at(int64(sc.Proxies.Tick), px, 0)
	return px
}

// healthConfig mirrors internal/proxy's healthConfig.
func healthConfig(h *Health) health.Config {
	var c health.Config
	if h.Active != nil {
		c.HealthyThreshold = h.Active.HealthyThreshold
		c.UnhealthyThreshold = h.Active.UnhealthyThreshold
	}
	if o := h.Outlier; !o.Disabled {
		c.OutlierEnabled = true
		c.Consecutive5xx = *o.Consecutive5xx
		c.ConsecutiveGatewayFailure = *o.ConsecutiveGatewayFailure
		c.BaseEjectionTime = o.BaseEjectionTime
		c.MaxEjectionTime = o.MaxEjectionTime
		c.MaxEjectionPercent = *o.MaxEjectionPercent
	}
	c.PanicThreshold = *h.PanicThreshold
	if ss := h.SlowStart; ss != nil {
		c.SlowStartWindow = ss.Window
		c.SlowStartAggression = ss.Aggression
		c.SlowStartMinPercent = ss.MinWeightPercent
	}
	return c
}

// handle is the proxy's health tick.
func (px *proxy) handle(int64) {
	s := px.s
	now := s.eng.wall(s.now())
	for _, ps := range px.svcs {
		if ps.pool.Tick(now) || ps.ramping {
			ps.rebuild()
		}
	}
	s.eng.after(int64(s.sc.Proxies.Tick), px, 0)
}

func (ps *proxySvc) handle(arg int64) {
	s := ps.px.s
	switch arg {
	case psTimeout:
		ps.toArmed = false
		ps.expire()
	case psProbeTick:
		ps.probeArm = false
		ps.sendProbes()
	case psActive:
		now := s.eng.wall(s.now())
		changed := false
		for _, r := range ps.svc.reps {
			if m := ps.member(r); m != nil {
				if ps.pool.ObserveActive(m, r.up(), now) {
					changed = true
				}
			}
		}
		if changed {
			ps.rebuild()
		}
		s.eng.after(int64(s.sc.Proxies.Health.Active.Interval), ps, psActive)
	}
}

func (ps *proxySvc) member(r *replica) *health.Member {
	if r.id < len(ps.members) {
		return ps.members[r.id]
	}
	return nil
}

// addReplica makes a replica known to this proxy (service discovery).
func (ps *proxySvc) addReplica(r *replica, initial bool) {
	s := ps.px.s
	for len(ps.members) <= r.id {
		ps.members = append(ps.members, nil)
		ps.eps = append(ps.eps, nil)
	}
	ep := balance.NewEndpoint(r.name)
	ps.eps[r.id] = ep
	ps.byEp[ep] = r
	ps.members[r.id] = ps.pool.Add(ep, 1, s.eng.wall(s.now()), initial)
	ps.rebuild()
}

// removeReplica forgets a replica (scaled down).
func (ps *proxySvc) removeReplica(r *replica) {
	if r.id >= len(ps.eps) || ps.eps[r.id] == nil {
		return
	}
	keep := map[string]bool{}
	for _, m := range ps.pool.Members() {
		if m.Endpoint != ps.eps[r.id] {
			keep[m.Endpoint.ID] = true
		}
	}
	ps.pool.Retain(keep)
	ps.members[r.id] = nil
	ps.rebuild()
}

// rebuild publishes a new picker, as the proxy's rebuildLocked.
func (ps *proxySvc) rebuild() {
	s := ps.px.s
	now := s.eng.wall(s.now())
	eligible, _ := ps.pool.Eligible(now)
	ps.ramping = false
	if ps.directd != nil {
		eligible, ps.ramping = ps.directd.Apply(eligible, now)
	}
	snap := &snapshot{picker: ps.bal.Update(eligible), reps: make([]*replica, len(eligible))}
	for i, w := range eligible {
		snap.reps[i] = ps.byEp[w.Endpoint]
	}
	if ps.svc.cookie {
		snap.slotOf = make([]int32, len(ps.svc.reps))
		for i := range snap.slotOf {
			snap.slotOf[i] = -1
		}
		for i, r := range snap.reps {
			snap.slotOf[r.id] = int32(i)
		}
	}
	ps.snap = snap
}

// send issues a request to rt's service through proxy px on behalf of a
// session or of a backend attempt (a downstream call).
func (s *Sim) send(rt *route, px *proxy, sess *session, parent *attempt, hash uint64) {
	r := s.allocRequest()
	r.route = rt
	r.ps = px.svcs[rt.svc.idx]
	r.sess = sess
	r.parent = parent
	if parent != nil {
		// Set before anything can answer: a shed or an empty pool
		// answers within this call.
		r.pgen = parent.gen
		parent.child = r
	}
	switch {
	case sess != nil:
		r.aff, r.affGen = sess, sess.gen
	case parent != nil && parent.req != nil && parent.req.aff != nil:
		r.aff, r.affGen = parent.req.aff, parent.req.affGen
		hash = parent.req.hash
	}
	r.hash = hash
	r.work = rt.svc.drawService(s.workRng)
	r.u = s.workRng.Float64()
	now := s.now()
	r.clientStart = now
	r.proxyStart = now
	s.countRequest()
	ps := r.ps
	ps.active++
	if ps.lim != nil {
		if !ps.lim.Acquire(rt.prio) {
			r.shed = true
			s.final(r, 503, failNone, false)
			return
		}
		r.admitted = true
	}
	if t := rt.svc.timeout; t > 0 {
		r.deadline = now + t
		ps.timeouts.push(r)
		if !ps.toArmed {
			ps.toArmed = true
			s.eng.at(r.deadline, ps, psTimeout)
		}
	}
	s.tryAttempt(r)
}

// tryAttempt picks a replica and sends the attempt.
func (s *Sim) tryAttempt(r *request) {
	ps := r.ps
	now := s.now()
	ps.info.Now = s.eng.wall(now)
	ps.info.Hash, ps.info.HasHash = r.hash, r.aff != nil
	ps.info.Exclude = r.exclude[:r.nexcl]
	snap := ps.snap
	var pk balance.Pick
	var err error
	if slot := s.stickySlot(r, snap); slot >= 0 {
		// A valid affinity cookie naming an eligible replica pins the
		// first attempt (Take keeps the policy's accounting).
		pk = snap.picker.Take(slot)
		s.pinned++
	} else {
		pk, err = snap.picker.Pick(&ps.info)
	}
	if err != nil {
		if r.attemptN > 0 {
			// The proxy answers with the last attempt's error.
			s.final(r, r.status, r.fail, r.status != 0)
		} else {
			s.final(r, 503, failNoEndpoint, false)
		}
		return
	}
	if ps.prober != nil && !ps.probeArm {
		ps.probeArm = true
		s.eng.afterLane(laneProbe, int64(s.sc.Proxies.ProbeTick), ps, psProbeTick)
	}
	r.pick, r.snap = pk, snap
	r.rep = snap.reps[pk.Slot]
	r.attStart = now
	r.attemptN++
	a := s.allocAttempt()
	a.req = r
	a.rt = r.route
	a.rep = r.rep
	a.phase = phWire
	r.att = a
	if s.rtt > 0 {
		s.eng.afterLane(laneRTT, s.rtt/2, a, int64(a.gen)<<8|attArrive)
	} else {
		a.rep.arrive(a)
	}
}

// stickySlot is the slot of the replica r's session is pinned to by an
// affinity cookie, or -1.
func (s *Sim) stickySlot(r *request, snap *snapshot) int {
	if r.attemptN > 0 || r.aff == nil || r.aff.gen != r.affGen || snap.slotOf == nil {
		return -1
	}
	id := r.aff.sticky(r.route.svc.idx)
	if id < 0 || id >= len(snap.slotOf) {
		return -1
	}
	return int(snap.slotOf[id])
}

// reply sends an attempt's answer (or failure) back to its proxy.
func (s *Sim) reply(a *attempt) {
	a.phase = phReply
	if s.rtt > 0 {
		s.eng.afterLane(laneRTT, s.rtt/2, a, int64(a.gen)<<8|attReply)
	} else {
		s.eng.soon(a, int64(a.gen)<<8|attReply)
	}
}

// serviceDone ends an attempt's own work: answer, or make the class's
// downstream calls first.
func (a *attempt) serviceDone() {
	r := a.rep
	s := a.s
	r.cpuDelta(s.now(), -1)
	r.served++
	if len(a.rt.calls) > 0 {
		a.phase = phCalls
		a.callIx = 0
		s.nextCall(a)
		return
	}
	s.finishAttempt(a, 200)
}

// nextCall makes the attempt's next downstream call, or answers.
func (s *Sim) nextCall(a *attempt) {
	calls := a.callRoutes()
	for a.callIx < len(calls) {
		c := calls[a.callIx]
		a.callIx++
		if c.p < 1 && s.clientRng.Float64() >= c.p {
			continue
		}
		px := s.proxies[0]
		if len(s.proxies) > 1 {
			px = s.proxies[s.clientRng.IntN(len(s.proxies))]
		}
		s.send(c.route, px, nil, a, 0)
		return
	}
	s.finishAttempt(a, 200)
}

// callRoutes are the downstream calls of the attempt's class (an orphaned
// attempt, whose request timed out, still knows its route).
func (a *attempt) callRoutes() []callRT { return a.rt.calls }

// childDone continues an attempt after a downstream call's answer.
func (s *Sim) childDone(a *attempt, child *request) {
	a.child = nil
	if child.fail != failNone || child.status >= 500 || child.shed {
		// The shop answers 503 (upstream_unavailable) when a step cannot
		// be completed now.
		s.finishAttempt(a, 503)
		return
	}
	s.nextCall(a)
}

// finishAttempt answers: the worker is freed and the next queued attempt
// starts; the answer goes back to the proxy.
func (s *Sim) finishAttempt(a *attempt, status int) {
	r := a.rep
	if status == 200 && r.svc.spec.ErrorRate > 0 && s.workRng.Float64() < r.svc.spec.ErrorRate {
		status = 500
	}
	a.status = status
	a.load = r.loadReport() // includes this request, as the shop's header does
	r.release(a)
	if a.req == nil {
		s.freeAttempt(a) // orphaned: nobody waits for the answer
		return
	}
	s.reply(a)
}

// attemptReturn is the proxy receiving an attempt's outcome.
func (s *Sim) attemptReturn(a *attempt) {
	r := a.req
	status, fail, load := a.status, a.fail, a.load
	s.freeAttempt(a)
	if r == nil {
		return
	}
	r.att = nil
	s.observe(r, status, fail, load)
	if r.done {
		return
	}
	// Retry conditions (internal/proxy forward.go): connect failure (safe
	// for any method: nothing was sent), reset and 502/503/504 (idempotent
	// requests only).
	retry := false
	switch {
	case fail == failConnect:
		retry = true
	case fail == failReset, status == 502, status == 503, status == 504:
		retry = r.route.idempotent
	}
	r.status, r.fail = status, fail
	if retry && s.mayRetry(r) {
		return
	}
	s.final(r, status, fail, fail == failNone)
}

// observe feeds one attempt's outcome to the policy and to health.
func (s *Sim) observe(r *request, status int, fail uint8, load balance.LoadReport) {
	ps := r.ps
	now := s.now()
	wall := s.eng.wall(now)
	// Field by field into the zeroed struct: a composite literal is built
	// on the stack and copied over with wide loads that stall on the
	// narrow stores just made (store-to-load forwarding).
	d := &ps.done
	*d = balance.DoneInfo{}
	d.Now = wall
	d.Latency = time.Duration(now - r.attStart)
	d.Status = status
	d.Failed = fail != failNone
	d.Load = load
	r.snap.picker.Done(r.pick, d)
	r.snap = nil
	if m := ps.member(r.rep); m != nil {
		if ps.pool.ObserveResult(m, health.Classify(status, fail != failNone), wall) {
			ps.rebuild()
		}
	}
}

// mayRetry schedules a retry if the policy allows one (forward.go's
// mayRetry): attempts left, within the budget, the backoff ending before
// the deadline.
func (s *Sim) mayRetry(r *request) bool {
	ps := r.ps
	rc := &s.sc.Proxies.Retries
	if r.attemptN > *rc.Attempts {
		return false
	}
	if !r.retryHeld {
		limit := int64(rc.BudgetPercent / 100 * float64(ps.active))
		if limit < int64(rc.MinConcurrency) {
			limit = int64(rc.MinConcurrency)
		}
		if ps.retrying+1 > limit {
			s.met.budgetExhausted(ps.svc)
			return false
		}
		ps.retrying++
		r.retryHeld = true
	}
	backoff := int64(rc.BackoffBase) << (r.attemptN - 1)
	if backoff > int64(rc.BackoffMax) || backoff <= 0 {
		backoff = int64(rc.BackoffMax)
	}
	if backoff > 0 {
		backoff = ps.px.rng.Int64N(backoff) + 1 // full jitter
	}
	now := s.now()
	if r.deadline > 0 && now+backoff > r.deadline {
		return false
	}
	if r.nexcl < maxExclude {
		r.exclude[r.nexcl] = r.pick.Endpoint
		r.nexcl++
	} else {
		copy(r.exclude[:], r.exclude[1:])
		r.exclude[maxExclude-1] = r.pick.Endpoint
	}
	s.met.retry(ps.svc)
	if backoff > 0 {
		s.eng.after(backoff, r, int64(r.gen)<<8|reqRetry)
	} else {
		s.eng.soon(r, int64(r.gen)<<8|reqRetry)
	}
	return true
}

func (r *request) handle(arg int64) {
	if uint32(arg>>8) != r.gen || r.done {
		return
	}
	r.s.tryAttempt(r)
}

// expire answers 504 to requests past their deadline, oldest first (one
// deadline per service, so deadlines are in arrival order).
func (ps *proxySvc) expire() {
	s := ps.px.s
	now := s.now()
	for {
		r, gen, ok := ps.timeouts.peek()
		if !ok {
			return
		}
		if r.gen != gen || r.done {
			ps.timeouts.pop()
			continue
		}
		if r.deadline > now {
			ps.toArmed = true
			s.eng.at(r.deadline, ps, psTimeout)
			return
		}
		ps.timeouts.pop()
		if a := r.att; a != nil {
			r.att = nil
			s.cancelAttempt(a)
			s.observe(r, 0, failTimeout, balance.LoadReport{})
		}
		s.final(r, 504, failTimeout, false)
	}
}

// cancelAttempt is the proxy closing the connection of an attempt it gave
// up on. The shop stops a queued or running request whose client left
// (its worker is freed); a request making downstream calls (a checkout
// saga) runs to its end, as the shop's checkout is not tied to the client.
func (s *Sim) cancelAttempt(a *attempt) {
	switch a.phase {
	case phQueued:
		// It stays in the replica's ring, which frees it when popped.
		a.phase = phCancelled
		a.rep.qlen--
		a.req = nil
	case phService:
		if len(a.rt.calls) > 0 {
			a.req = nil
			return
		}
		r := a.rep
		r.cpuDelta(s.now(), -1)
		a.gen++ // void the completion event
		a.req = nil
		r.release(a)
		s.freeAttempt(a)
	default: // on the wire, making calls, or answering: orphan it
		a.req = nil
	}
}

// final is the proxy's answer to the client (or to the calling backend).
func (s *Sim) final(r *request, status int, fail uint8, hadResponse bool) {
	if r.done {
		return
	}
	r.done = true
	r.status, r.fail = status, fail
	ps := r.ps
	now := s.now()
	if r.admitted {
		switch {
		case hadResponse:
			ps.lim.Release(s.eng.wall(now), time.Duration(now-r.proxyStart), status == 503 || status == 504)
		case fail == failTimeout || fail == failConnect:
			ps.lim.Release(s.eng.wall(now), time.Duration(now-r.proxyStart), true)
		default:
			ps.lim.Cancel()
		}
	}
	ps.active--
	if r.retryHeld {
		ps.retrying--
	}
	s.met.request(r, now)
	if hadResponse && ps.svc.cookie && r.aff != nil && r.aff.gen == r.affGen && r.rep != nil {
		r.aff.setSticky(ps.svc.idx, r.rep.id) // Set-Cookie naming the replica
	}
	switch {
	case r.parent != nil:
		if p := r.parent; p.gen == r.pgen && p.child == r {
			s.childDone(p, r)
		}
	case r.sess != nil:
		r.sess.onResponse(r)
	}
	s.freeRequest(r)
	ps.timeouts.dropDone()
}

// sendProbes is the prequal probe driver's tick.
func (ps *proxySvc) sendProbes() {
	s := ps.px.s
	n := ps.prober.ProbesOwed()
	if n <= 0 {
		return
	}
	if n > maxProbesInFlight {
		n = maxProbesInFlight // a backlog is stale anyway
	}
	ps.probeBuf = ps.prober.ProbeTargets(ps.px.rng, n, ps.probeBuf[:0])
	for _, e := range ps.probeBuf {
		r := ps.byEp[e]
		if r == nil {
			continue
		}
		if s.rtt == 0 {
			if r.up() {
				ps.prober.ObserveProbe(e, r.rif(), 0, s.eng.wall(s.now()))
			}
			continue
		}
		if ps.probesOut >= maxProbesInFlight {
			continue // probes already saturate; skip rather than queue
		}
		ps.probesOut++
		p := s.allocProbe()
		p.ps, p.ep, p.rep = ps, e, r
		s.eng.afterLane(laneRTT, s.rtt/2, p, 0)
	}
}

const maxProbesInFlight = 64

// probe is one prequal probe on the wire.
type probe struct {
	s   *Sim
	ps  *proxySvc
	ep  *balance.Endpoint
	rep *replica
	rif int64
}

func (p *probe) handle(arg int64) {
	s := p.s
	if arg == 0 { // at the replica
		if !p.rep.up() {
			p.ps.probesOut-- // refused: the driver drops it
			s.freeProbeObj(p)
			return
		}
		p.rif = p.rep.rif()
		s.eng.afterLane(laneRTT, s.rtt/2, p, 1)
		return
	}
	p.ps.probesOut--
	p.ps.prober.ObserveProbe(p.ep, p.rif, 0, s.eng.wall(s.now()))
	s.freeProbeObj(p)
}

// reqFIFO is a growable ring of (request, generation).
type reqFIFO struct {
	buf        []reqRef
	head, size int
}

type reqRef struct {
	r   *request
	gen uint32
}

func (q *reqFIFO) push(r *request) {
	if q.size == len(q.buf) {
		n := max(16, 2*len(q.buf))
		nb := make([]reqRef, n)
		for i := 0; i < q.size; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = reqRef{r, r.gen}
	q.size++
}

func (q *reqFIFO) peek() (*request, uint32, bool) {
	if q.size == 0 {
		return nil, 0, false
	}
	x := q.buf[q.head]
	return x.r, x.gen, true
}

func (q *reqFIFO) pop() {
	q.buf[q.head] = reqRef{}
	q.head++
	if q.head == len(q.buf) {
		q.head = 0
	}
	q.size--
}

// dropDone pops the answered requests at the head. Deadlines are only
// checked when the oldest one falls due, so without this the ring would
// hold every request of the last timeout span (30s by default: tens of
// thousands of entries for the garbage collector to scan); with it, it
// reaches back only to the oldest request still in flight. The live
// entries, their order and the expiry timer are the same either way.
func (q *reqFIFO) dropDone() {
	for q.size > 0 {
		x := &q.buf[q.head]
		if x.r.gen == x.gen && !x.r.done {
			return
		}
		q.pop()
	}
}

// Free lists.

// popFree takes the last object off a free list, or returns nil.
func popFree[T any](free *[]*T) *T {
	n := len(*free)
	if n == 0 {
		return nil
	}
	x := (*free)[n-1]
	*free = (*free)[:n-1]
	return x
}

func (s *Sim) allocRequest() *request {
	if r := popFree(&s.freeReqs); r != nil {
		return r
	}
	return &request{s: s}
}

func (s *Sim) freeRequest(r *request) {
	gen := r.gen + 1
	*r = request{s: s, gen: gen}
	s.freeReqs = append(s.freeReqs, r)
}

func (s *Sim) allocAttempt() *attempt {
	if a := popFree(&s.freeAtts); a != nil {
		return a
	}
	return &attempt{s: s}
}

func (s *Sim) freeAttempt(a *attempt) {
	gen := a.gen + 1
	*a = attempt{s: s, gen: gen}
	s.freeAtts = append(s.freeAtts, a)
}

func (s *Sim) allocProbe() *probe {
	if p := popFree(&s.freeProbe); p != nil {
		return p
	}
	return &probe{s: s}
}

func (s *Sim) freeProbeObj(p *probe) {
	*p = probe{s: s}
	s.freeProbe = append(s.freeProbe, p)
}
