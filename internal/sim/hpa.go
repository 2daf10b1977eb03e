package sim

import (
	"math"
	"time"
)

// hpa is a reactive autoscaler faithful to the Kubernetes
// HorizontalPodAutoscaler, autoscaling/v2, on average CPU utilisation
// (kubernetes/kubernetes pkg/controller/podautoscaler: horizontal.go and
// replica_calculator.go; https://kubernetes.io/docs/tasks/run-application/
// horizontal-pod-autoscale/#algorithm-details):
//
//  1. Every sync period (15s), usageRatio = mean utilisation of the ready
//     pods ÷ target. Pods still starting (or ready for less than one metric
//     window: their CPU is not yet representative, the controller's
//     cpu-initialization rule) are ignored; crashed pods are "missing".
//  2. Within the tolerance (|1 − ratio| ≤ 0.1) nothing changes. Otherwise
//     desired = ⌈ratio × ready pods⌉; when scaling up with ignored pods,
//     they count as 0% and the ratio is recomputed; missing pods count as
//     100% on a scale-down and 0% on a scale-up; if that flips the
//     direction or lands within the tolerance, nothing changes.
//  3. Below minReplicas or above maxReplicas the target is the bound,
//     without behaviors (reconcileAutoscaler).
//  4. Stabilisation (stabilizeRecommendationWithBehaviors): the
//     recommendation is clamped between the minimum of the recommendations
//     within the scale-up window (default 0s) and the maximum within the
//     scale-down window (default 300s).
//  5. Rate limits (convertDesiredReplicasWithBehaviorRate): per policy,
//     from the replica count at the start of its period (current − added +
//     removed in the period), pods: start ± value, percent: ⌈start × (1 +
//     value%)⌉ up, ⌊start × (1 − value%)⌋ down; selectPolicy max takes the
//     largest change. Defaults: up max(+4 pods, +100%) per 15s, down −100%
//     per 15s. Then clamped to [min, max].
//
// The floor can be raised by scale_plan entries and Options.Recommender:
// the way forecast-driven scale recommendations will reach it.
type hpa struct {
	svc     *service
	spec    *Autoscale
	planMin int
	recs    []tsCount // unstabilised recommendations
	ups     []tsCount // scale events
	downs   []tsCount
}

type tsCount struct {
	t int64
	n int
}

func newHPA(svc *service) *hpa { return &hpa{svc: svc, spec: svc.spec.Autoscale} }

func (h *hpa) start() {
	h.svc.s.eng.after(int64(h.spec.SyncPeriod), h, 0)
}

func (h *hpa) handle(int64) {
	h.sync()
	h.svc.s.eng.after(int64(h.spec.SyncPeriod), h, 0)
}

// minReplicas is the floor now: the spec's, the plan's, the recommender's.
func (h *hpa) minReplicas(current int) int {
	m := max(h.spec.Min, h.planMin)
	s := h.svc.s
	if rec := s.opts.Recommender; rec != nil {
		if n, ok := rec.MinReplicas(h.svc.name, s.eng.wall(s.now()), current); ok && n > m {
			m = n
		}
	}
	return min(m, h.spec.Max)
}

func (h *hpa) sync() {
	s := h.svc.s
	now := s.now()
	live := h.svc.liveReplicas()
	current := len(live)
	minR := h.minReplicas(current)
	window := int64(h.spec.SyncPeriod)

	// Metrics of the last window, per pod.
	var sum float64
	ready, ignored, missing := 0, 0, 0
	for _, r := range live {
		switch {
		case r.state == repReady && now-r.startedAt >= window && now > r.hpaAt:
			busy := r.busyUntil(now)
			span := now - max(r.hpaAt, r.startedAt)
			if span > 0 {
				sum += float64(busy-r.hpaBusy) / float64(int64(r.workers)*span)
			}
			ready++
		case r.state == repDown:
			missing++
		default:
			ignored++
		}
	}
	for _, r := range h.svc.reps {
		if r.state != repGone {
			r.hpaBusy, r.hpaAt = r.busyUntil(now), now
		}
	}

	var desired int
	switch {
	case current > h.spec.Max:
		desired = h.spec.Max
	case current < minR:
		desired = minR
	case ready == 0:
		return // "did not receive metrics for any ready pods"
	default:
		desired = h.replicaCalc(current, sum, ready, ignored, missing)
		desired = h.stabilize(now, current, desired)
		desired = h.rateLimit(now, current, desired, minR)
	}
	h.apply(now, current, desired)
}

// replicaCalc is GetResourceReplicas.
func (h *hpa) replicaCalc(current int, sum float64, ready, ignored, missing int) int {
	target := h.spec.TargetUtilization
	tol := *h.spec.Tolerance
	ratio := sum / float64(ready) / target
	rebalanceIgnored := ignored > 0 && ratio > 1
	if !rebalanceIgnored && missing == 0 {
		if math.Abs(1-ratio) <= tol {
			return current
		}
		return int(math.Ceil(ratio * float64(ready)))
	}
	n := ready
	if missing > 0 {
		if ratio < 1 {
			sum += float64(missing) // 100% of the request
		}
		n += missing
	}
	if rebalanceIgnored {
		n += ignored // 0%
	}
	newRatio := sum / float64(n) / target
	if math.Abs(1-newRatio) <= tol || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return current
	}
	next := int(math.Ceil(newRatio * float64(n)))
	if (newRatio < 1 && next > current) || (newRatio > 1 && next < current) {
		return current
	}
	return next
}

// stabilize is stabilizeRecommendationWithBehaviors.
func (h *hpa) stabilize(now int64, current, desired int) int {
	upCut := now - int64(*h.spec.ScaleUp.Stabilization)
	downCut := now - int64(*h.spec.ScaleDown.Stabilization)
	up, down := desired, desired
	for _, r := range h.recs {
		if r.t > upCut {
			up = min(up, r.n)
		}
		if r.t > downCut {
			down = max(down, r.n)
		}
	}
	rec := current
	if rec < up {
		rec = up
	}
	if rec > down {
		rec = down
	}
	// Keep the recommendations either window may still need.
	keep := min(upCut, downCut)
	out := h.recs[:0]
	for _, r := range h.recs {
		if r.t > keep {
			out = append(out, r)
		}
	}
	h.recs = append(out, tsCount{now, desired})
	return rec
}

func changeInPeriod(events []tsCount, now int64, period time.Duration) int {
	n := 0
	for _, e := range events {
		if e.t > now-int64(period) {
			n += e.n
		}
	}
	return n
}

// rateLimit is convertDesiredReplicasWithBehaviorRate.
func (h *hpa) rateLimit(now int64, current, desired, minR int) int {
	maxR := h.spec.Max
	switch {
	case desired > current:
		r := h.spec.ScaleUp
		if r.Select == "disabled" {
			return current
		}
		limit := math.MinInt
		if r.Select == "min" {
			limit = math.MaxInt
		}
		for _, p := range r.Policies {
			start := current - changeInPeriod(h.ups, now, p.Period) + changeInPeriod(h.downs, now, p.Period)
			var prop int
			if p.Type == "pods" {
				prop = start + p.Value
			} else {
				prop = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
			}
			if r.Select == "min" {
				limit = min(limit, prop)
			} else {
				limit = max(limit, prop)
			}
		}
		limit = max(limit, current)
		return min(desired, limit, maxR)
	case desired < current:
		r := h.spec.ScaleDown
		if r.Select == "disabled" {
			return current
		}
		limit := math.MaxInt
		if r.Select == "min" {
			limit = math.MinInt
		}
		for _, p := range r.Policies {
			start := current - changeInPeriod(h.ups, now, p.Period) + changeInPeriod(h.downs, now, p.Period)
			var prop int
			if p.Type == "pods" {
				prop = start - p.Value
			} else {
				prop = int(float64(start) * (1 - float64(p.Value)/100))
			}
			if r.Select == "min" {
				limit = max(limit, prop)
			} else {
				limit = min(limit, prop)
			}
		}
		limit = min(limit, current)
		return max(desired, limit, minR)
	}
	return desired
}

// apply changes the replica count and records the scale event.
func (h *hpa) apply(now int64, current, desired int) {
	s := h.svc.s
	switch {
	case desired > current:
		for i := current; i < desired; i++ {
			s.cluster.place(h.svc.addReplica(), false)
		}
		h.ups = append(pruneEvents(h.ups, now), tsCount{now, desired - current})
	case desired < current:
		h.scaleDown(current - desired)
		h.downs = append(pruneEvents(h.downs, now), tsCount{now, current - desired})
	}
}

func pruneEvents(ev []tsCount, now int64) []tsCount {
	out := ev[:0]
	for _, e := range ev {
		if now-e.t < int64(30*time.Minute) {
			out = append(out, e)
		}
	}
	return out
}

// scaleDown removes n replicas in the ReplicaSet controller's order:
// unscheduled first, then starting, then not ready (crashed), then the
// most recently created.
func (h *hpa) scaleDown(n int) {
	live := h.svc.liveReplicas()
	rank := func(r *replica) int {
		switch r.state {
		case repPending:
			return 0
		case repStarting:
			return 1
		case repDown:
			return 2
		}
		return 3
	}
	for ; n > 0; n-- {
		best := -1
		for i, r := range live {
			if r == nil {
				continue
			}
			if best < 0 || rank(r) < rank(live[best]) || (rank(r) == rank(live[best]) && r.id > live[best].id) {
				best = i
			}
		}
		if best < 0 {
			return
		}
		h.svc.s.cluster.remove(live[best])
		live[best] = nil
	}
}

// cluster is the node pool. With pods_per_node 0 a pod always has room.
type cluster struct {
	s            *Sim
	limited      bool
	free         int
	provisioning int
	pending      []*replica
}

func (c *cluster) init(s *Sim) {
	c.s = s
	cl := s.sc.Cluster
	if cl.PodsPerNode == 0 {
		return
	}
	c.limited = true
	total := 0
	for _, svc := range s.sc.Services {
		total += svc.Replicas
	}
	nodes := (total+cl.PodsPerNode-1)/cl.PodsPerNode + cl.SpareNodes
	c.free = nodes * cl.PodsPerNode
}

// place schedules a new replica: initial ones are ready at once.
func (c *cluster) place(r *replica, initial bool) {
	if initial {
		if c.limited {
			c.free--
		}
		r.state = repStarting
		r.billStart = 0
		r.becomeReady(true)
		return
	}
	if !c.limited || c.free > 0 {
		if c.limited {
			c.free--
		}
		c.startPod(r)
		return
	}
	r.state = repPending
	c.pending = append(c.pending, r)
	c.provision()
}

func (c *cluster) startPod(r *replica) {
	s := c.s
	r.state = repStarting
	r.billStart = s.now()
	start := int64(0)
	if a := r.svc.spec.Autoscale; a != nil {
		start = int64(a.PodStart)
	}
	s.eng.after(start, r, repReadyEv)
}

// provision asks for enough nodes for the pods waiting (the cluster
// autoscaler), taking node_provisioning to arrive.
func (c *cluster) provision() {
	waiting := 0
	for _, r := range c.pending {
		if r.state == repPending {
			waiting++
		}
	}
	need := waiting - c.provisioning
	if need <= 0 {
		return
	}
	ppn := c.s.sc.Cluster.PodsPerNode
	slots := (need + ppn - 1) / ppn * ppn
	c.provisioning += slots
	c.s.eng.after(int64(c.s.sc.Cluster.NodeProvisioning), c, int64(slots))
}

// handle is nodes arriving.
func (c *cluster) handle(slots int64) {
	c.provisioning -= int(slots)
	c.free += int(slots)
	c.drain()
}

func (c *cluster) drain() {
	out := c.pending[:0]
	for _, r := range c.pending {
		if r.state != repPending {
			continue
		}
		if c.free > 0 {
			c.free--
			c.startPod(r)
			continue
		}
		out = append(out, r)
	}
	c.pending = out
}

// freeSlot returns a pod's slot (the pod is gone).
func (c *cluster) freeSlot() {
	if c.limited {
		c.free++
		c.drain()
	}
}

// remove takes a replica out of the deployment.
func (c *cluster) remove(r *replica) {
	s := c.s
	switch r.state {
	case repPending:
		r.state = repGone // never had a slot, never billed
		r.billEnd = s.now()
	case repStarting:
		r.gone()
	case repDown:
		for _, px := range s.proxies {
			px.svcs[r.svc.idx].removeReplica(r)
		}
		r.gone()
	case repReady:
		r.state = repDraining
		for _, px := range s.proxies {
			px.svcs[r.svc.idx].removeReplica(r)
		}
		if r.held == 0 && r.qlen == 0 {
			r.gone()
		}
	}
}
