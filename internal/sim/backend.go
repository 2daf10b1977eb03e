package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
)

// The backend model, one replica of one service, follows `lbsys shop`
// (internal/shop/capacity.go) so that the simulator and the loopback test
// bed agree: c workers, a bounded FIFO queue with a wait limit (503 beyond
// either), a log-normal service time of a given mean and cv scaled by the
// request class's cost, the cold-start factor (falling linearly over the
// warm-up) and the replica's speed, and a load report (requests in flight,
// queued included; utilisation) on every answer. On top, what a loopback
// test cannot do: noisy neighbours and GC pauses (a speed profile over
// time), a cache warming with traffic, crashes, and replicas that come and
// go with the autoscaler.

type distKind uint8

const (
	distLogNormal distKind = iota
	distExponential
	distConstant
)

// service is one backend pool at run time.
type service struct {
	s        *Sim
	idx      int
	name     string
	spec     *Service
	routes   []*route
	reps     []*replica // every replica ever created; index = id
	timeout  int64
	queueCap int // -1 unbounded
	queueTO  int64

	distKind  distKind
	mean      float64 // ns
	mu, sigma float64

	speedRng *rand.Rand
	hpa      *hpa
	cookie   bool               // affinity: cookie
	section  *directive.Service // the directive section in force (autoscaler floor)

	// ks is the key space of the proxies' cache of the service (nil: not
	// cached); cachedRoute the route warm fetches ask (its first cached
	// class).
	ks          *keyspace
	cachedRoute *route
}

func newService(s *Sim, idx int, spec *Service) *service {
	svc := &service{s: s, idx: idx, name: spec.Name, spec: spec, queueCap: spec.Queue,
		queueTO: int64(spec.QueueTimeout), mean: float64(spec.ServiceTime.Mean),
		speedRng: newStream(s.seed, "speed/"+spec.Name, 0)}
	svc.cookie = spec.Affinity == "cookie"
	svc.timeout = int64(s.sc.Proxies.Timeout)
	if spec.Timeout != nil {
		svc.timeout = int64(*spec.Timeout)
	}
	switch spec.ServiceTime.Dist {
	case "exponential":
		svc.distKind = distExponential
	case "constant":
		svc.distKind = distConstant
	default:
		cv := *spec.ServiceTime.CV
		if cv > 0 {
			s2 := math.Log1p(cv * cv)
			svc.sigma = math.Sqrt(s2)
			svc.mu = math.Log(svc.mean) - s2/2
		}
	}
	prio, _ := admission.ParsePriority(spec.Priority)
	for _, c := range spec.Classes {
		p := prio
		if c.Priority != "" {
			p, _ = admission.ParsePriority(c.Priority)
		}
		svc.routes = append(svc.routes, &route{svc: svc, class: c.Name, cost: c.Cost, idempotent: *c.Idempotent, prio: p})
	}
	s.byName[spec.Name] = svc
	if spec.Autoscale != nil {
		svc.hpa = newHPA(svc)
	}
	return svc
}

// linkCalls resolves downstream calls once every service exists.
func (svc *service) linkCalls() {
	for i, c := range svc.spec.Classes {
		for _, call := range c.Calls {
			svc.routes[i].calls = append(svc.routes[i].calls, callRT{route: svc.s.route(call.Service, call.Class), p: call.P})
		}
	}
}

// liveReplicas are the replicas the deployment counts (not leaving).
func (svc *service) liveReplicas() []*replica {
	var out []*replica
	for _, r := range svc.reps {
		if r.state != repDraining && r.state != repGone {
			out = append(out, r)
		}
	}
	return out
}

// Replica states.
const (
	repPending  = iota // waiting for a node
	repStarting        // scheduled, container starting
	repReady           // serving
	repDown            // crashed
	repDraining        // removed from the proxies, finishing what it holds
	repGone
)

// Replica event kinds.
const (
	repQueueTimer = iota
	repReadyEv
	repRecover
)

// replica is one instance of a service.
type replica struct {
	svc   *service
	id    int
	name  string
	state int

	workers int
	held    int        // workers held (service or waiting on calls)
	slots   []*attempt // attempts holding a worker
	free    []int      // free slot indices
	queue   attQueue
	qlen    int // live queued attempts
	qArmed  bool

	cpu     int   // workers doing own work (for utilisation)
	busyAcc int64 // ∫ cpu dt, worker·ns
	busyAt  int64
	served  int64 // answers since (re)start: cache warmth

	speed     float64
	startedAt int64 // for the cold start
	prof      *profile

	billStart, billEnd int64
	snaps              []busySnap // busy integral at the autoscaler's recent syncs
	createdAt          int64      // when the autoscaler asked for it
	upSince            int64      // last time it became ready
	mBusy, mAt         int64      // busyAcc at the last minute boundary
	mServed            int64      // answers in the current minute
}

func (svc *service) addReplica() *replica {
	id := len(svc.reps)
	r := &replica{svc: svc, id: id, name: fmt.Sprintf("%s-%d", svc.name, id), state: repPending,
		workers: svc.spec.Workers, billStart: -1, billEnd: -1, createdAt: svc.s.now()}
	r.slots = make([]*attempt, r.workers)
	r.free = make([]int, r.workers)
	for i := range r.free {
		r.free[i] = r.workers - 1 - i
	}
	spec := svc.spec
	switch {
	case spec.SpeedRange != nil:
		rg := spec.SpeedRange
		r.speed = rg.Min + (rg.Max-rg.Min)*svc.speedRng.Float64()
	case len(spec.Speeds) > 0:
		r.speed = spec.Speeds[id%len(spec.Speeds)]
	default:
		r.speed = 1
	}
	r.prof = newProfile(svc, id)
	svc.reps = append(svc.reps, r)
	return r
}

// becomeReady puts a started replica into service: every proxy learns it.
// initial replicas are warm and skip slow start.
func (r *replica) becomeReady(initial bool) {
	s := r.svc.s
	r.state = repReady
	if initial {
		r.startedAt = math.MinInt64 / 2 // long warm
		r.served = math.MaxInt32
	} else {
		r.startedAt = s.now()
		s.met.startup(r.svc, s.now()-r.createdAt)
	}
	r.busyAt = s.now()
	r.upSince = s.now()
	for _, px := range s.proxies {
		px.svcs[r.svc.idx].addReplica(r, initial)
	}
}

func (r *replica) handle(arg int64) {
	switch arg {
	case repQueueTimer:
		r.qArmed = false
		r.expireQueue()
	case repReadyEv:
		if r.state == repStarting {
			r.becomeReady(false)
		}
	case repRecover:
		if r.state == repDown {
			s := r.svc.s
			r.state = repReady
			r.startedAt = s.now()
			r.served = 0
			r.busyAt = s.now()
			r.upSince = s.now()
		}
	}
}

// up reports whether the replica accepts connections.
func (r *replica) up() bool { return r.state == repReady || r.state == repDraining }

// rif is requests in flight at the replica, queued included (the shop's
// X-Lbsys-Load rif).
func (r *replica) rif() int64 { return int64(r.held + r.qlen) }

func (r *replica) loadReport() balance.LoadReport {
	return balance.LoadReport{Valid: true, RIF: r.rif(), Util: float64(r.held) / float64(r.workers)}
}

// cpuDelta moves the busy integral.
func (r *replica) cpuDelta(now int64, d int) {
	r.busyAcc += int64(r.cpu) * (now - r.busyAt)
	r.busyAt = now
	r.cpu += d
}

// busyUntil is busyAcc brought up to now.
func (r *replica) busyUntil(now int64) int64 {
	return r.busyAcc + int64(r.cpu)*(now-r.busyAt)
}

// arrive takes an attempt that reached the replica.
func (r *replica) arrive(a *attempt) {
	s := r.svc.s
	if a.req == nil { // the proxy gave up while the request was on the wire
		s.freeAttempt(a)
		return
	}
	if !r.up() {
		a.fail = failConnect
		s.reply(a)
		return
	}
	if r.held < r.workers {
		r.start(a, s.now())
		return
	}
	if r.svc.queueCap >= 0 && r.qlen >= r.svc.queueCap {
		a.status = 503 // queue full: the shop answers at once
		a.load = r.loadReport()
		s.reply(a)
		return
	}
	a.phase = phQueued
	a.enq = s.now()
	r.queue.push(a)
	r.qlen++
	if r.svc.queueTO > 0 && !r.qArmed {
		r.qArmed = true
		s.eng.at(a.enq+r.svc.queueTO, r, repQueueTimer)
	}
}

// start gives a worker to a and schedules the end of its own work.
func (r *replica) start(a *attempt, now int64) {
	s := r.svc.s
	slot := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	r.slots[slot] = a
	a.slot = slot
	r.held++
	if a.phase == phQueued {
		s.met.wait(r.svc, now-a.enq)
	} else {
		s.met.wait(r.svc, 0)
	}
	a.phase = phService
	req := a.req
	d := req.work * req.route.cost / r.speed
	if c := r.svc.spec.ColdStart; c != nil {
		if age := now - r.startedAt; age < int64(c.Over) {
			d *= 1 + (c.Factor-1)*(1-float64(age)/float64(c.Over))
		}
	}
	if c := r.svc.spec.Cache; c != nil && c.HitRatio > 0 {
		// exp(−x) is exactly 0 for x beyond 745 (the float64 underflow),
		// so a long-warm replica skips the exp: same bits, less work.
		warm := 1.0
		if x := float64(r.served) / c.WarmRequests; x < 800 {
			warm = 1 - math.Exp(-x)
		}
		if req.u < c.HitRatio*warm {
			d *= c.HitCost
		}
	}
	fin := now + int64(d)
	if r.prof != nil {
		fin = r.prof.finish(now, d, s.now())
	}
	r.cpuDelta(now, 1)
	s.eng.at(fin, a, int64(a.gen)<<8|attServiceDone)
}

// release frees a's worker and hands it to the next queued attempt.
func (r *replica) release(a *attempt) {
	r.slots[a.slot] = nil
	r.free = append(r.free, a.slot)
	r.held--
	now := r.svc.s.now()
	for r.held < r.workers && r.up() {
		next := r.queue.pop()
		if next == nil {
			break
		}
		if next.phase != phQueued {
			r.svc.s.freeAttempt(next) // cancelled while queued
			continue
		}
		r.qlen--
		if r.svc.queueTO > 0 && now-next.enq >= r.svc.queueTO {
			// Past its wait limit at this very instant: answer it as the
			// queue timer would, and hand the worker to the next one.
			next.phase = phReply
			next.status = 503
			next.load = r.loadReport()
			r.svc.s.reply(next)
			continue
		}
		r.start(next, now)
	}
	if r.state == repDraining && r.held == 0 && r.qlen == 0 {
		r.gone()
	}
}

// expireQueue answers 503 to queued attempts past their wait limit, in
// FIFO order (deadlines are in queue order), and re-arms for the new head.
func (r *replica) expireQueue() {
	s := r.svc.s
	now := s.now()
	for {
		a := r.queue.peek()
		if a == nil {
			return
		}
		if a.phase != phQueued {
			r.queue.pop()
			s.freeAttempt(a)
			continue
		}
		if now-a.enq < r.svc.queueTO {
			r.qArmed = true
			s.eng.at(a.enq+r.svc.queueTO, r, repQueueTimer)
			return
		}
		r.queue.pop()
		r.qlen--
		a.phase = phReply
		a.status = 503
		a.load = r.loadReport()
		s.reply(a)
	}
}

// crash kills the replica: everything it holds fails with a reset.
func (r *replica) crash() {
	if r.state != repReady && r.state != repDraining {
		return
	}
	s := r.svc.s
	now := s.now()
	r.cpuDelta(now, -r.cpu)
	var victims []*attempt
	for _, a := range r.slots {
		if a != nil {
			victims = append(victims, a)
		}
	}
	for {
		a := r.queue.pop()
		if a == nil {
			break
		}
		if a.phase == phQueued {
			victims = append(victims, a)
		} else {
			s.freeAttempt(a)
		}
	}
	for i := range r.slots {
		r.slots[i] = nil
	}
	r.free = r.free[:0]
	for i := r.workers - 1; i >= 0; i-- {
		r.free = append(r.free, i)
	}
	r.held, r.qlen = 0, 0
	draining := r.state == repDraining
	r.state = repDown
	for _, a := range victims {
		a.gen++ // its completion event is void
		if a.child != nil {
			a.child.parent = nil // the downstream call's answer has nowhere to go
			a.child = nil
		}
		a.fail = failReset
		a.phase = phReply
		s.reply(a)
	}
	if draining {
		r.gone()
	}
}

// gone ends the replica's life (scaled down, drained).
func (r *replica) gone() {
	r.state = repGone
	r.billEnd = r.svc.s.now()
	r.svc.s.cluster.freeSlot()
}

// attQueue is a growable ring of attempts.
type attQueue struct {
	buf        []*attempt
	head, size int
}

func (q *attQueue) push(a *attempt) {
	if q.size == len(q.buf) {
		n := max(16, 2*len(q.buf))
		nb := make([]*attempt, n)
		for i := 0; i < q.size; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = a
	q.size++
}

func (q *attQueue) peek() *attempt {
	if q.size == 0 {
		return nil
	}
	return q.buf[q.head]
}

func (q *attQueue) pop() *attempt {
	if q.size == 0 {
		return nil
	}
	a := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return a
}

// profile is a replica's speed over time: noisy-neighbour windows (a
// fraction of its speed during part of every period) and GC pauses (no
// progress at all). Work in progress feels both: finish integrates the
// speed from the start of service until the work is done. Pauses are drawn
// ahead of time from the replica's own stream, so a pause that starts
// after a request began still delays it, as a stop-the-world collection
// does.
type profile struct {
	noisy       bool
	period, dur int64
	phase       int64
	factor      float64
	gcEvery     float64
	gcPause     int64
	rng         *rand.Rand
	pauses      []span // future pauses in order, pruned as time passes
	lastGC      int64
}

type span struct{ start, end int64 }

func newProfile(svc *service, id int) *profile {
	spec := svc.spec
	n, g := spec.NoisyNeighbours, spec.GC
	if n == nil && g == nil {
		return nil
	}
	p := &profile{rng: newStream(svc.s.seed, "profile/"+svc.name, id)}
	if n != nil && p.rng.Float64() < n.Share {
		p.noisy = true
		p.period, p.dur, p.factor = int64(n.Period), int64(n.Duration), n.Factor
		p.phase = p.rng.Int64N(p.period)
	}
	if g != nil {
		p.gcEvery, p.gcPause = float64(g.Every), int64(g.Pause)
		p.lastGC = int64(p.rng.ExpFloat64() * p.gcEvery)
		p.pauses = append(p.pauses, span{p.lastGC, p.lastGC + p.gcPause})
	}
	if !p.noisy && g == nil {
		return nil
	}
	return p
}

// rateAt is the speed factor at t and the time it next changes.
func (p *profile) rateAt(t int64) (float64, int64) {
	f, edge := 1.0, int64(math.MaxInt64)
	if p.noisy {
		pos := (t - p.phase) % p.period
		if pos < 0 {
			pos += p.period
		}
		if pos < p.dur {
			f, edge = p.factor, t+(p.dur-pos)
		} else {
			edge = t + (p.period - pos)
		}
	}
	if p.gcPause > 0 {
		for i := 0; ; i++ {
			if i == len(p.pauses) {
				last := p.pauses[len(p.pauses)-1].end
				st := last + int64(p.rng.ExpFloat64()*p.gcEvery)
				p.pauses = append(p.pauses, span{st, st + p.gcPause})
			}
			sp := p.pauses[i]
			if sp.end <= t {
				continue
			}
			if sp.start <= t {
				f, edge = 0, min(edge, sp.end)
			} else {
				edge = min(edge, sp.start)
			}
			break
		}
	}
	return f, edge
}

// finish returns when work of d ns at full speed, started at t, is done.
// now is the engine time: pauses that ended before it are pruned.
func (p *profile) finish(t int64, d float64, now int64) int64 {
	if p.gcPause > 0 {
		k := 0
		for k < len(p.pauses)-1 && p.pauses[k].end <= now {
			k++
		}
		if k > 0 {
			p.pauses = append(p.pauses[:0], p.pauses[k:]...)
		}
	}
	cur := t
	for i := 0; i < 1_000_000; i++ {
		f, edge := p.rateAt(cur)
		if f > 0 {
			need := d / f
			if float64(cur)+need <= float64(edge) {
				return cur + int64(need)
			}
			d -= float64(edge-cur) * f
		}
		cur = edge
	}
	return cur
}
