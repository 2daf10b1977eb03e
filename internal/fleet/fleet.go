// Package fleet is the local scaler of `lbsys demo`: it runs the demo
// shop's services as instances it starts and stops — real `lbsys shop`
// processes with their real start, readiness and warm-up — and scales them
// with the Kubernetes HPA algorithm (internal/scaler.HPA, the same code the
// simulator's autoscaler runs) on their measured utilisation, holding the
// replica floors a directive asks for (internal/steer.Floor). Ready
// instances are registered in the proxy, leaving ones deregistered first
// and stopped after a drain. It also plays the cluster: a warm pool of free
// slots, beyond which an instance waits for a node to be provisioned.
//
// It lives on the clock it is given — the demo's compressed time — so a
// 15-second sync, a 300-second stabilisation window and minutes of node
// provisioning keep their meaning at any speed.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/scaler"
)

// Instance is one running instance of a service.
type Instance interface {
	// Addr is where it listens (host:port).
	Addr() string
	// Usage is its busy time so far (worker·seconds of real time) and its
	// workers: two reads give the mean utilisation in between.
	Usage(ctx context.Context) (busySeconds float64, workers int, err error)
	// Ready reports whether its readiness probe passes.
	Ready(ctx context.Context) bool
	// Stop ends it (draining what it serves, within ctx).
	Stop(ctx context.Context) error
}

// Launcher starts instances.
type Launcher interface {
	// Launch starts instance seq of service and returns once it listens
	// (it may not be ready yet).
	Launch(ctx context.Context, service string, seq int) (Instance, error)
}

// ServiceSpec is one scaled service.
type ServiceSpec struct {
	Name string
	// HPA is its autoscaler (min, max, target, behaviours).
	HPA scaler.HPASpec
	// PricePerHour is the cost of an instance-hour (for the summary).
	PricePerHour float64
}

// Options configure a fleet.
type Options struct {
	// Clock is the fleet's time (the demo's compressed clock).
	Clock clock.Clock
	// Scaled, when set, converts between the fleet's time and the wall
	// clock (utilisation is measured on the wall clock).
	Scaled *clock.Scaled
	// SyncPeriod is the autoscaler's period. Default 15s.
	SyncPeriod time.Duration
	// WarmSlots are free instance slots at the start; beyond them an
	// instance waits NodeProvisioning for a node of NodeSize slots.
	// NodeSize 0: unlimited room.
	WarmSlots        int
	NodeSize         int
	NodeProvisioning time.Duration
	// Drain is how long a deregistered instance keeps serving what it
	// has before it is stopped. Default 30s.
	Drain time.Duration
	// Floors is the replica minimum a directive holds for a service at a
	// time of the fleet's clock (0: none); nil: no directive. A directive
	// written in wall-clock time is read against the wall clock.
	Floors func(service string, now time.Time) int
	// OnEndpoints registers a service's ready instances in the proxy.
	OnEndpoints func(service string, addrs []string) error
	// Launcher starts instances.
	Launcher Launcher
	Log      *slog.Logger
}

// Instance states.
const (
	statePending  = "pending" // waiting for a node
	stateStarting = "starting"
	stateReady    = "ready"
	stateDraining = "draining"
	stateStopping = "stopping"
)

type inst struct {
	seq       int
	state     string
	inst      Instance
	asked     time.Time // when the autoscaler asked for it (fleet time)
	launched  time.Time
	readyAt   time.Time
	stopAt    time.Time
	lastBusy  float64
	lastReal  time.Time
	haveUsage bool
	launching bool
}

type service struct {
	spec      ServiceSpec
	hpa       scaler.HPA
	insts     []*inst
	seq       int
	startups  []time.Duration
	instTime  time.Duration // instance·time billed (fleet time), closed instances
	util      float64
	lastFloor int
	maxReady  int
	// usage is the measured instances' busy time, cumulative, at each
	// autoscaler sync (wall clock): what Utilization integrates.
	usage []usagePoint
}

// usagePoint is a service's cumulative busy and measured replica-seconds
// (wall clock) at a sync.
type usagePoint struct {
	at             time.Time
	busy, measured float64
}

// usageLogLen bounds a service's usage log: two minutes at the demo's
// quarter-second syncs, two hours at Kubernetes' 15 s.
const usageLogLen = 512

// Fleet is the running local scaler.
type Fleet struct {
	o        Options
	mu       sync.Mutex
	svcs     []*service
	free     int
	nodeWait int // slots requested from nodes on the way
	wg       sync.WaitGroup
	closed   bool
}

// New prepares a fleet; Start launches the initial instances.
func New(o Options, specs []ServiceSpec) (*Fleet, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.SyncPeriod <= 0 {
		o.SyncPeriod = 15 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Launcher == nil {
		return nil, errors.New("fleet: no launcher")
	}
	f := &Fleet{o: o, free: o.WarmSlots}
	for _, sp := range specs {
		if sp.HPA.Max < sp.HPA.Min || sp.HPA.Min < 1 {
			return nil, fmt.Errorf("fleet: service %s: want 1 <= min <= max, got %d..%d", sp.Name, sp.HPA.Min, sp.HPA.Max)
		}
		f.svcs = append(f.svcs, &service{spec: sp, hpa: scaler.HPA{Spec: sp.HPA}})
	}
	return f, nil
}

func (f *Fleet) now() time.Time { return f.o.Clock.Now() }

// SetFloors sets the floor source (before Run).
func (f *Fleet) SetFloors(floors func(service string, now time.Time) int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.o.Floors = floors
}

// realNow is the wall clock (utilisation is measured on it).
func (f *Fleet) realNow() time.Time { return time.Now() }

// Start launches every service's minimum, waits until they are ready
// (within ctx) and registers them.
func (f *Fleet) Start(ctx context.Context) error {
	now := f.now()
	for _, s := range f.svcs {
		for i := 0; i < s.spec.HPA.Min; i++ {
			in, err := f.o.Launcher.Launch(ctx, s.spec.Name, s.seq)
			if err != nil {
				return fmt.Errorf("fleet: starting %s: %w", s.spec.Name, err)
			}
			s.insts = append(s.insts, &inst{seq: s.seq, state: stateStarting, inst: in, asked: now, launched: now})
			s.seq++
		}
	}
	for _, s := range f.svcs {
		for _, in := range s.insts {
			for !in.inst.Ready(ctx) {
				select {
				case <-ctx.Done():
					return fmt.Errorf("fleet: %s did not become ready: %w", s.spec.Name, ctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
			in.state, in.readyAt = stateReady, f.now()
			// A startup like any other: on a slow machine the first ones
			// already lengthen the lead a controller plans with.
			s.startups = append(s.startups, in.readyAt.Sub(in.asked))
		}
		s.maxReady = max(s.maxReady, len(s.insts))
		if err := f.publish(s); err != nil {
			return err
		}
	}
	return nil
}

// Run scales until ctx ends: the autoscaler's sync every SyncPeriod, and
// readiness and pending work in between.
func (f *Fleet) Run(ctx context.Context) {
	nextSync := f.now().Add(f.o.SyncPeriod)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		f.housekeep(ctx)
		if now := f.now(); !now.Before(nextSync) {
			nextSync = now.Add(f.o.SyncPeriod)
			f.sync(ctx)
		}
	}
}

// housekeep promotes ready instances, starts pending ones that got a
// slot, and stops drained ones.
func (f *Fleet) housekeep(ctx context.Context) {
	now := f.now()
	for _, s := range f.svcs {
		changed := false
		var stops []*inst
		f.mu.Lock()
		insts := append([]*inst(nil), s.insts...)
		f.mu.Unlock()
		for _, in := range insts {
			switch in.state {
			case stateStarting:
				if in.inst != nil && in.inst.Ready(ctx) {
					f.mu.Lock()
					in.state, in.readyAt = stateReady, now
					s.startups = append(s.startups, now.Sub(in.asked))
					s.maxReady = max(s.maxReady, s.countLocked(stateReady))
					f.mu.Unlock()
					changed = true
				}
			case stateDraining:
				if !now.Before(in.stopAt) {
					stops = append(stops, in)
				}
			}
		}
		for _, in := range stops {
			f.mu.Lock()
			in.state = stateStopping
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.stop(ctx, s, in)
			}()
		}
		if changed {
			if err := f.publish(s); err != nil {
				f.o.Log.Warn("fleet: registering instances failed", "service", s.spec.Name, "err", err)
			}
		}
	}
}

// sync is one autoscaler sync per service.
func (f *Fleet) sync(ctx context.Context) {
	now := f.now()
	for _, s := range f.svcs {
		u := f.usage(ctx, s)
		floor := 0
		f.mu.Lock()
		floors := f.o.Floors
		f.mu.Unlock()
		if floors != nil {
			floor = floors(s.spec.Name, now)
		}
		f.mu.Lock()
		current := 0
		for _, in := range s.insts {
			if in.state != stateDraining && in.state != stateStopping {
				current++
			}
		}
		s.lastFloor = floor
		if u.Ready > 0 {
			s.util = u.Sum / float64(u.Ready)
		}
		desired, ok := s.hpa.Sync(now, current, u, floor)
		f.mu.Unlock()
		if !ok || desired == current {
			continue
		}
		if desired > current {
			for i := current; i < desired; i++ {
				f.add(ctx, s, now)
			}
		} else {
			f.remove(s, current-desired, now)
		}
	}
}

// usage measures the ready instances' utilisation since the last sync;
// an instance ready for less than a sync period is not yet representative
// (the HPA's cpu-initialization rule).
func (f *Fleet) usage(ctx context.Context, s *service) scaler.PodUsage {
	var u scaler.PodUsage
	var busyFor, measured float64
	defer func() { f.logUsage(s, f.realNow(), busyFor, measured) }()
	now := f.now()
	f.mu.Lock()
	insts := append([]*inst(nil), s.insts...)
	f.mu.Unlock()
	for _, in := range insts {
		switch in.state {
		case stateReady:
			busy, workers, err := in.inst.Usage(ctx)
			rt := f.realNow()
			if err != nil {
				u.Missing++
				continue
			}
			prevBusy, prevReal, had := in.lastBusy, in.lastReal, in.haveUsage
			in.lastBusy, in.lastReal, in.haveUsage = busy, rt, true
			if !had || now.Sub(in.readyAt) < f.o.SyncPeriod || workers <= 0 {
				u.Ignored++
				continue
			}
			dt := rt.Sub(prevReal).Seconds()
			if dt <= 0 {
				u.Ignored++
				continue
			}
			u.Sum += (busy - prevBusy) / (float64(workers) * dt)
			u.Ready++
			measured += dt
			busyFor += (busy - prevBusy) / float64(workers)
		case stateStarting, statePending:
			u.Ignored++
		}
	}
	return u
}

// logUsage adds a sync's busy and measured replica-seconds to the
// service's cumulative usage log.
func (f *Fleet) logUsage(s *service, at time.Time, busy, measured float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := usagePoint{at: at}
	if n := len(s.usage); n > 0 {
		p.busy, p.measured = s.usage[n-1].busy, s.usage[n-1].measured
	}
	if busy < 0 { // a restarted counter: count nothing for this sync
		busy = 0
	}
	p.busy += busy
	p.measured += measured
	if len(s.usage) == usageLogLen {
		s.usage = append(s.usage[:0], s.usage[1:]...)
	}
	s.usage = append(s.usage, p)
}

// Utilization is the mean utilisation of a service's measured instances
// over the wall-clock span [from, to] (busy worker time over worker time,
// integrated from the syncs' measurements, interpolated at the ends); NaN
// when the syncs do not cover at least half the span or measured nothing.
// A controller that judges a minute's rate against it reads both over the
// same span, as the simulator does — not the last sync's utilisation, which
// under compressed time is a fraction of the minute.
func (f *Fleet) Utilization(service string, from, to time.Time) float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var log []usagePoint
	for _, s := range f.svcs {
		if s.spec.Name == service {
			log = s.usage
		}
	}
	if len(log) < 2 || !to.After(from) {
		return math.NaN()
	}
	a, b := from, to
	if first := log[0].at; a.Before(first) {
		a = first
	}
	if last := log[len(log)-1].at; b.After(last) {
		b = last
	}
	if !b.After(a) || b.Sub(a) < to.Sub(from)/2 {
		return math.NaN()
	}
	busy0, meas0 := usageAt(log, a)
	busy1, meas1 := usageAt(log, b)
	if meas1-meas0 <= 0 {
		return math.NaN()
	}
	return (busy1 - busy0) / (meas1 - meas0)
}

// usageAt interpolates the cumulative usage at t (within the log's span).
func usageAt(log []usagePoint, t time.Time) (busy, measured float64) {
	i := sort.Search(len(log), func(i int) bool { return !log[i].at.Before(t) })
	if i == 0 {
		return log[0].busy, log[0].measured
	}
	if i == len(log) {
		return log[i-1].busy, log[i-1].measured
	}
	p, q := log[i-1], log[i]
	w := float64(t.Sub(p.at)) / float64(q.at.Sub(p.at))
	return p.busy + w*(q.busy-p.busy), p.measured + w*(q.measured-p.measured)
}

// add asks for one instance: at once when a slot is free, else once a
// node arrives.
func (f *Fleet) add(ctx context.Context, s *service, now time.Time) {
	f.mu.Lock()
	in := &inst{seq: s.seq, state: statePending, asked: now}
	s.seq++
	s.insts = append(s.insts, in)
	limited := f.o.NodeSize > 0
	if !limited || f.free > 0 {
		if limited {
			f.free--
		}
		f.mu.Unlock()
		f.launch(ctx, s, in)
		return
	}
	// Nodes for every pending instance not covered by nodes on the way.
	pending := 0
	for _, sv := range f.svcs {
		for _, x := range sv.insts {
			if x.state == statePending && !x.launching {
				pending++
			}
		}
	}
	need := pending - f.nodeWait
	slots := 0
	if need > 0 {
		slots = (need + f.o.NodeSize - 1) / f.o.NodeSize * f.o.NodeSize
		f.nodeWait += slots
	}
	f.mu.Unlock()
	if slots > 0 {
		f.o.Log.Info("fleet: waiting for a node", "service", s.spec.Name, "slots", slots, "provisioning", f.o.NodeProvisioning)
		f.o.Clock.AfterFunc(f.o.NodeProvisioning, func() { f.nodeArrived(ctx, slots) })
	}
}

// nodeArrived frees slots and launches the pending instances they fit.
func (f *Fleet) nodeArrived(ctx context.Context, slots int) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.nodeWait -= slots
	f.free += slots
	type job struct {
		s  *service
		in *inst
	}
	var jobs []job
	for _, s := range f.svcs {
		for _, in := range s.insts {
			if in.state == statePending && !in.launching && f.free > 0 {
				f.free--
				in.launching = true
				jobs = append(jobs, job{s, in})
			}
		}
	}
	f.mu.Unlock()
	for _, j := range jobs {
		go f.launch(ctx, j.s, j.in)
	}
}

// launch starts a pending instance (it becomes ready in housekeep).
func (f *Fleet) launch(ctx context.Context, s *service, in *inst) {
	f.mu.Lock()
	in.launching = true
	f.mu.Unlock()
	inst, err := f.o.Launcher.Launch(ctx, s.spec.Name, in.seq)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.o.Log.Warn("fleet: launch failed", "service", s.spec.Name, "err", err)
		// Give the slot back and forget the instance: the next sync asks
		// again.
		f.removeLocked(s, in)
		if f.o.NodeSize > 0 {
			f.free++
		}
		return
	}
	if in.state == stateDraining || f.closed {
		// Scaled down while it started.
		go inst.Stop(context.Background())
		return
	}
	in.inst, in.state, in.launched = inst, stateStarting, f.now()
}

// remove scales a service down by n: pending first, then starting, then
// the newest ready (the ReplicaSet controller's order); ready ones are
// deregistered now and stopped after the drain.
func (f *Fleet) remove(s *service, n int, now time.Time) {
	rank := map[string]int{statePending: 0, stateStarting: 1, stateReady: 2}
	f.mu.Lock()
	var cands []*inst
	for _, in := range s.insts {
		if in.state != stateDraining && in.state != stateStopping {
			cands = append(cands, in)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if rank[cands[i].state] != rank[cands[j].state] {
			return rank[cands[i].state] < rank[cands[j].state]
		}
		return cands[i].seq > cands[j].seq
	})
	deregister := false
	for _, in := range cands[:min(n, len(cands))] {
		switch in.state {
		case statePending:
			if !in.launching {
				f.removeLocked(s, in)
				continue
			}
			in.state = stateDraining // its launch stops it
			in.stopAt = now
		case stateStarting:
			in.state, in.stopAt = stateDraining, now
		case stateReady:
			in.state, in.stopAt = stateDraining, now.Add(f.o.Drain)
			deregister = true
		}
	}
	f.mu.Unlock()
	if deregister {
		if err := f.publish(s); err != nil {
			f.o.Log.Warn("fleet: deregistering instances failed", "service", s.spec.Name, "err", err)
		}
	}
}

func (f *Fleet) removeLocked(s *service, in *inst) {
	out := s.insts[:0]
	for _, x := range s.insts {
		if x != in {
			out = append(out, x)
		}
	}
	s.insts = out
}

// stop ends a drained instance and bills it.
func (f *Fleet) stop(ctx context.Context, s *service, in *inst) {
	if in.inst != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := in.inst.Stop(sctx); err != nil {
			f.o.Log.Warn("fleet: stopping an instance", "service", s.spec.Name, "err", err)
		}
		cancel()
	}
	f.mu.Lock()
	if !in.launched.IsZero() {
		s.instTime += f.now().Sub(in.launched)
	}
	f.removeLocked(s, in)
	if f.o.NodeSize > 0 {
		f.free++
	}
	f.mu.Unlock()
}

// publish registers a service's ready instances.
func (f *Fleet) publish(s *service) error {
	if f.o.OnEndpoints == nil {
		return nil
	}
	f.mu.Lock()
	var addrs []string
	for _, in := range s.insts {
		if in.state == stateReady {
			addrs = append(addrs, in.inst.Addr())
		}
	}
	f.mu.Unlock()
	return f.o.OnEndpoints(s.spec.Name, addrs)
}

// ServiceState is one service's state for the controller, the tables and
// the summary.
type ServiceState struct {
	Service                  string
	Ready, Starting, Pending int
	Draining                 int
	Floor                    int
	Util                     float64
	Addrs                    []string
	InstanceMinutes, Cost    float64
}

// MaxReady is the most instances of a service ready at once so far.
func (f *Fleet) MaxReady(service string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.svcs {
		if s.spec.Name == service {
			return max(s.maxReady, s.countLocked(stateReady))
		}
	}
	return 0
}

func (s *service) countLocked(state string) int {
	n := 0
	for _, in := range s.insts {
		if in.state == state {
			n++
		}
	}
	return n
}

// Startups returns, per service, how long the instances that became ready
// since the previous call took from being asked for, and forgets them.
func (f *Fleet) Startups() map[string][]time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]time.Duration{}
	for _, s := range f.svcs {
		if len(s.startups) > 0 {
			out[s.spec.Name] = s.startups
			s.startups = nil
		}
	}
	return out
}

// Snapshot returns every service's state.
func (f *Fleet) Snapshot() []ServiceState {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	var out []ServiceState
	for _, s := range f.svcs {
		st := ServiceState{Service: s.spec.Name, Floor: s.lastFloor, Util: s.util}
		billed := s.instTime
		for _, in := range s.insts {
			switch in.state {
			case stateReady:
				st.Ready++
				st.Addrs = append(st.Addrs, in.inst.Addr())
			case stateStarting:
				st.Starting++
			case statePending:
				st.Pending++
			case stateDraining, stateStopping:
				st.Draining++
			}
			if !in.launched.IsZero() {
				billed += now.Sub(in.launched)
			}
		}
		st.InstanceMinutes = billed.Minutes()
		st.Cost = billed.Hours() * s.spec.PricePerHour
		out = append(out, st)
	}
	return out
}

// Close stops every instance (drained within ctx).
func (f *Fleet) Close(ctx context.Context) {
	f.mu.Lock()
	f.closed = true
	var all []Instance
	for _, s := range f.svcs {
		for _, in := range s.insts {
			if in.inst != nil {
				all = append(all, in.inst)
			}
		}
	}
	f.mu.Unlock()
	f.wg.Wait()
	var wg sync.WaitGroup
	for _, in := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.Stop(ctx)
		}()
	}
	wg.Wait()
}
