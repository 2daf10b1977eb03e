package sim

import (
	"github.com/lbsys/lbsys/internal/scaler"
)

// hpa is the simulated HorizontalPodAutoscaler: the metrics a sync sees
// (below) and internal/scaler's HPA, the algorithm the demo's local scaler
// runs too (scaler.HPA documents it, step by step, with the Kubernetes
// sources it follows). The floor can be raised by scale_plan entries,
// Options.Recommender and a controller's directive (steer.Floor).
type hpa struct {
	svc     *service
	spec    *Autoscale
	planMin int
	core    scaler.HPA
}

func newHPA(svc *service) *hpa {
	a := svc.spec.Autoscale
	h := &hpa{svc: svc, spec: a}
	rules := func(r *ScaleRules) scaler.HPARules {
		out := scaler.HPARules{Stabilization: *r.Stabilization, Select: r.Select}
		for _, p := range r.Policies {
			out.Policies = append(out.Policies, scaler.HPAPolicy{Type: p.Type, Value: p.Value, Period: p.Period})
		}
		return out
	}
	h.core.Spec = scaler.HPASpec{Min: a.Min, Max: a.Max, TargetUtilization: a.TargetUtilization, Tolerance: *a.Tolerance,
		ScaleUp: rules(a.ScaleUp), ScaleDown: rules(a.ScaleDown)}
	return h
}

func (h *hpa) start() {
	h.svc.s.eng.after(int64(h.spec.SyncPeriod), h, 0)
}

func (h *hpa) handle(int64) {
	h.sync()
	h.svc.s.eng.after(int64(h.spec.SyncPeriod), h, 0)
}

// floor is the minimum raised by the plan, the recommender and the
// directive in force.
func (h *hpa) floor(current int) int {
	m := max(h.planMin, h.svc.floorNow())
	s := h.svc.s
	if rec := s.opts.Recommender; rec != nil {
		if n, ok := rec.MinReplicas(h.svc.name, s.eng.wall(s.now()), current); ok && n > m {
			m = n
		}
	}
	return m
}

// minReplicas is the floor now, within the spec's bounds.
func (h *hpa) minReplicas(current int) int {
	return min(max(h.spec.Min, h.floor(current)), h.spec.Max)
}

func (h *hpa) sync() {
	s := h.svc.s
	now := s.now()
	live := h.svc.liveReplicas()
	current := len(live)
	window := int64(h.spec.SyncPeriod)

	// Metrics of one window per pod, as metrics-server reports them: the
	// CPU used over [now − lag − window, now − lag] (metric_lag: the
	// scrape interval and the pipeline delay). Every sync snapshots each
	// ready pod's busy time; a pod without a snapshot at the window's
	// start (ready for less than lag + window) is not yet representative
	// and is ignored, as the controller's cpu-initialization rule does.
	lag := int64(h.spec.MetricLag)
	wEnd := now - lag
	wStart := wEnd - window
	for _, r := range h.svc.reps {
		if r.state == repReady {
			r.snapBusy(now)
		}
	}
	var u scaler.PodUsage
	for _, r := range live {
		switch {
		case r.state == repReady && r.startedAt <= wStart:
			t0, b0, ok0 := r.busyAtSnap(wStart)
			t1, b1, ok1 := r.busyAtSnap(wEnd)
			if !ok0 || !ok1 || t1 <= t0 {
				u.Ignored++
				continue
			}
			u.Sum += float64(b1-b0) / float64(int64(r.workers)*(t1-t0))
			u.Ready++
		case r.state == repDown:
			u.Missing++
		default:
			u.Ignored++
		}
	}
	desired, ok := h.core.Sync(s.eng.wall(now), current, u, h.floor(current))
	if ok {
		h.apply(current, desired)
	}
}

// raise scales up to n at once (a raised floor).
func (h *hpa) raise(current, n int) {
	h.core.Raise(h.svc.s.eng.wall(h.svc.s.now()), current, n)
	h.apply(current, n)
}

// apply changes the replica count.
func (h *hpa) apply(current, desired int) {
	s := h.svc.s
	switch {
	case desired > current:
		for i := current; i < desired; i++ {
			s.cluster.place(h.svc.addReplica(), false)
		}
	case desired < current:
		h.scaleDown(current - desired)
	}
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

// busySnap is a replica's busy integral at a sync.
type busySnap struct{ t, busy int64 }

// maxSnaps covers the metric window plus the lag at the sync period
// (lag up to 15 sync periods).
const maxSnaps = 16

// snapBusy records the replica's busy integral at now.
func (r *replica) snapBusy(now int64) {
	if n := len(r.snaps); n > 0 && r.snaps[n-1].t == now {
		return
	}
	if len(r.snaps) == maxSnaps {
		copy(r.snaps, r.snaps[1:])
		r.snaps = r.snaps[:maxSnaps-1]
	}
	r.snaps = append(r.snaps, busySnap{now, r.busyUntil(now)})
}

// busyAtSnap is the latest snapshot at or before t.
func (r *replica) busyAtSnap(t int64) (int64, int64, bool) {
	for i := len(r.snaps) - 1; i >= 0; i-- {
		if r.snaps[i].t <= t {
			return r.snaps[i].t, r.snaps[i].busy, true
		}
	}
	return 0, 0, false
}
