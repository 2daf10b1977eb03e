package sim

import (
	"math/rand/v2"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/health"
	"github.com/lbsys/lbsys/internal/retry"
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
//     membership), weights passed through balance.Directed.ScaleWeights;
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

	// cache is the proxy's response cache the request went through (nil:
	// not a cached class), ckey its key and cstate its part (proxycache.go).
	cache  *pcache
	ckey   int32
	cstate uint8

	status int
	fail   uint8
	shed   bool
}

// Request event kinds.
const (
	reqRetry = iota
	reqHit   // a cache hit's answer, after the hit latency
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
	// caches are its response caches by service index (nil: the service
	// is not cached), warmer its warm queue.
	caches []*pcache
	warmer *warmer
}

// proxySvc is one proxy's state for one service, as internal/proxy's
// service type: a balancer, a health pool, a limiter.
type proxySvc struct {
	px      *proxy
	svc     *service
	bal     balance.Balancer
	prober  balance.Prober
	directd balance.Directed
	section *directive.Service // the directive section applied (steer.Plan's prev)
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
	px.warmer = &warmer{px: px}
	px.caches = make([]*pcache, len(s.services))
	for _, svc := range s.services {
		if svc.ks == nil {
			continue
		}
		pc := &pcache{ks: svc.ks, svc: svc, px: px, st: newStore(svc.spec.ProxyCache.MaxEntries, svc.spec.ProxyCache.Eviction), inflight: map[int32]*pfetch{}}
		pc.st.warmBoost = *svc.spec.ProxyCache.WarmBoost
		if s.loop != nil && svc.spec.ProxyCache.HotKeys > 0 {
			pc.counts = map[int32]int32{}
		}
		px.caches[svc.idx] = pc
	}
	sc := s.sc
	hc := sc.Proxies.Health.PoolConfig()
	for _, svc := range s.services {
		ps := &proxySvc{px: px, svc: svc, bal: s.newBal(), pool: health.NewPool(hc),
			byEp: map[*balance.Endpoint]*replica{}}
		ps.prober, _ = ps.bal.(balance.Prober)
		ps.directd, _ = ps.bal.(balance.Directed)
		if a := sc.Proxies.Admission; a != nil {
			ps.lim = admission.New(a.LimiterConfig())
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
		eligible, ps.ramping = ps.directd.ScaleWeights(eligible, now)
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
	if rt.cached {
		if pc := px.caches[rt.svc.idx]; pc != nil && s.cacheLookup(r, pc) {
			return // a hit, or waiting for another request's fetch
		}
	}
	s.admitAndTry(r)
}

// admitAndTry is the proxy's forwarding of a request: admission, the
// deadline, then the first attempt.
func (s *Sim) admitAndTry(r *request) {
	ps, rt, now := r.ps, r.route, s.now()
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
	r.mServed++
	s.met.svcs[r.svc.idx].curServed++
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
	// The retry rule is the proxy's (internal/retry): the outcome's
	// condition, the attempts left, safe to replay (a failed connect sent
	// nothing).
	var cond retry.Condition
	switch fail {
	case failConnect:
		cond = retry.ConnectFailure
	case failReset:
		cond = retry.Reset
	case failNone:
		cond = retry.StatusCondition(status)
	}
	r.status, r.fail = status, fail
	if s.retryPolicy.Wants(cond, r.attemptN, r.route.idempotent) && s.mayRetry(r) {
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
	if !r.retryHeld {
		if ps.retrying+1 > s.retryPolicy.Budget(ps.active) {
			s.met.budgetExhausted(ps.svc)
			return false
		}
		ps.retrying++
		r.retryHeld = true
	}
	backoff := int64(s.retryPolicy.Backoff(r.attemptN, ps.px.rng.Int64N))
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
	if arg&0xff == reqHit {
		r.s.final(r, 200, failNone, true)
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
	if r.cstate != csWarm {
		s.met.request(r, now) // a warm fetch is no client's request
	}
	if r.cache != nil && (r.cstate == csLeader || r.cstate == csOwn || r.cstate == csWarm) {
		s.cacheDone(r, hadResponse && status >= 200 && status < 400)
	}
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
