package balance

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// PrequalOptions are the options of prequal.
type PrequalOptions struct {
	// PoolSize is the number of probes kept (the paper's default 16).
	PoolSize int `yaml:"pool_size"`
	// ProbeRate is the number of probes sent per query (r_probe). Load
	// reports piggybacked on responses also refresh the pool, so a rate
	// below 1 is usually enough. Default 1.
	ProbeRate float64 `yaml:"probe_rate"`
	// QRIF is the quantile of requests-in-flight above which a replica is
	// hot. Default 0.84.
	QRIF float64 `yaml:"q_rif"`
	// MaxAge drops probes older than this. Default 1s.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxReuse is how many queries one probe may steer (b_reuse). Default 4.
	MaxReuse int `yaml:"max_reuse"`
	// ProbePath is the light endpoint the proxy probes; its response must
	// carry X-Lbsys-Load. Default /healthz.
	ProbePath string `yaml:"probe_path"`
	// ErrorThreshold: a replica whose recent error share (EWMA over its
	// last ~10 responses) is above this is treated as hottest, so one that
	// fails fast does not attract traffic. Default 0.5.
	ErrorThreshold float64 `yaml:"error_threshold"`
}

// Validate fills defaults and checks ranges.
func (o *PrequalOptions) Validate() error {
	if o.PoolSize == 0 {
		o.PoolSize = 16
	}
	if o.ProbeRate == 0 {
		o.ProbeRate = 1
	}
	if o.QRIF == 0 {
		o.QRIF = 0.84
	}
	if o.MaxAge == 0 {
		o.MaxAge = time.Second
	}
	if o.MaxReuse == 0 {
		o.MaxReuse = 4
	}
	if o.ProbePath == "" {
		o.ProbePath = "/healthz"
	}
	if o.ErrorThreshold == 0 {
		o.ErrorThreshold = 0.5
	}
	switch {
	case o.PoolSize < 2 || o.PoolSize > maxProbePool:
		return fmt.Errorf("pool_size: must be between 2 and %d, got %d", maxProbePool, o.PoolSize)
	case !(o.ProbeRate >= 0 && o.ProbeRate <= 16):
		return fmt.Errorf("probe_rate: must be between 0 and 16 probes per query, got %v", o.ProbeRate)
	case !(o.QRIF > 0 && o.QRIF < 1):
		return fmt.Errorf("q_rif: must be a quantile strictly between 0 and 1 (e.g. 0.84), got %v", o.QRIF)
	case o.MaxAge < time.Millisecond:
		return fmt.Errorf("max_age: must be at least 1ms, got %v", o.MaxAge)
	case o.MaxReuse < 1:
		return fmt.Errorf("max_reuse: must be at least 1, got %d", o.MaxReuse)
	case o.ProbePath[0] != '/':
		return fmt.Errorf("probe_path: must start with /, got %q", o.ProbePath)
	case !(o.ErrorThreshold > 0 && o.ErrorThreshold <= 1):
		return fmt.Errorf("error_threshold: must be in (0, 1], got %v", o.ErrorThreshold)
	}
	return nil
}

const maxProbePool = 32

func init() {
	Register(Policy{
		Name: "prequal",
		Doc:  "Prequal (NSDI'24): probe requests-in-flight and latency, hot-cold lexicographic choice",
		New: func(decode func(any) error) (func() Balancer, error) {
			var o PrequalOptions
			if err := decodeInto(decode, &o); err != nil {
				return nil, err
			}
			if err := o.Validate(); err != nil {
				return nil, err
			}
			return func() Balancer { return NewPrequal(o) }, nil
		},
	})
}

// Prober is implemented by balancers that want asynchronous probes of
// their endpoints (prequal). The owner (the proxy, the simulator) runs the
// I/O: it asks for targets, probes them, and reports what it saw.
type Prober interface {
	// ProbesOwed returns, and resets, the number of probes queries have
	// asked for since the last call.
	ProbesOwed() int
	// ProbeTargets appends n endpoints to probe, chosen at random from the
	// current eligible set.
	ProbeTargets(r Rand, n int, buf []*Endpoint) []*Endpoint
	// ObserveProbe records a probe answer: requests in flight at the
	// endpoint and, if known (>0), its latency estimate.
	ObserveProbe(e *Endpoint, rif int64, latency time.Duration, now time.Time)
	// ProbePath is the path to probe.
	ProbePath() string
}

// NewPrequal returns a Prequal balancer.
func NewPrequal(o PrequalOptions) Balancer {
	b := &prequal{opts: o, rate: uint64(o.ProbeRate * probeDebtUnit)}
	m := map[*Endpoint]*pqState{}
	b.states.Store(&m)
	return b
}

// prequal implements "Load is not what you should balance: Introducing
// Prequal" (Wydrowski, Kleinberg, Rumble, Archer; NSDI 2024).
//
//   - Probing: each query asks for probe_rate probes of random replicas;
//     a probe returns the replica's requests in flight (RIF) and a latency
//     estimate. Responses to real queries piggyback the same report
//     (X-Lbsys-Load), which keeps the pool fresh at no cost.
//   - Pool: at most pool_size probes, one per replica (a newer probe
//     replaces the replica's older one); probes older than max_age are
//     dropped, a probe is used by at most max_reuse queries, and when the
//     pool is full the oldest probe gives way. After each pick the worst
//     probe is removed when it is hot (as the paper removes the worst
//     probe, so stale pessimism does not linger), never below two probes.
//   - Choice, the hot-cold lexicographic rule: a replica is hot when its
//     RIF is above the q_rif quantile of the RIFs in the pool; among cold
//     replicas pick the lowest latency; if all are hot, the lowest RIF.
//     With fewer than two usable probes, pick at random.
//   - Guard (ours): a replica whose recent error share exceeds
//     error_threshold counts as hotter than any other, so a replica that
//     fails fast (low latency, low RIF) cannot attract the traffic.
//
// The pool is a fixed array of atomic pointers to immutable-identity probe
// records whose counters are atomic: picks neither lock nor allocate.
type prequal struct {
	opts PrequalOptions
	rate uint64 // probe debt per pick, fixed point

	debt   atomic.Uint64
	pool   [maxProbePool]atomic.Pointer[probe]
	states atomic.Pointer[map[*Endpoint]*pqState] // copy-on-write
	last   atomic.Pointer[pqPicker]
	mu     sync.Mutex // serializes pool insertions
}

const probeDebtUnit = 1024

// pqState is what prequal knows about one endpoint across snapshots.
type pqState struct {
	ep      *Endpoint
	probe   probe                   // this endpoint's one probe record
	curSlot atomic.Int32            // where probe was last placed in the pool
	where   atomic.Pointer[pqWhere] // slot in the newest picker
	errEWMA atomic.Uint64           // float64 bits
	latEWMA atomic.Uint64           // float64 bits, ns
}

type pqWhere struct {
	picker *pqPicker
	slot   int
}

// probe is one pool entry.
type probe struct {
	st   *pqState
	rif  atomic.Int64
	lat  atomic.Uint64 // float64 bits, ns
	at   atomic.Int64  // unix ns
	uses atomic.Int32
}

func (b *prequal) Update(eps []Weighted) Picker {
	p := &pqPicker{b: b, eps: eps, states: make([]*pqState, len(eps))}
	old := *b.states.Load()
	next := make(map[*Endpoint]*pqState, len(eps))
	for i, w := range eps {
		st := old[w.Endpoint]
		if st == nil {
			st = &pqState{ep: w.Endpoint}
			st.probe.st = st
		}
		next[w.Endpoint] = st
		p.states[i] = st
		st.where.Store(&pqWhere{picker: p, slot: i})
	}
	for e, st := range old {
		if _, ok := next[e]; !ok {
			st.where.Store(nil)
		}
	}
	b.states.Store(&next)
	if len(eps) > 0 && !equalWeights(eps) {
		p.alias = newAlias(eps)
	}
	b.last.Store(p)
	return p
}

// ProbeSnapshot is one probe in Describe.
type ProbeSnapshot struct {
	Endpoint  string  `json:"endpoint"`
	RIF       int64   `json:"rif"`
	LatencyMS float64 `json:"latency_ms"`
	AgeMS     float64 `json:"age_ms"`
	Uses      int32   `json:"uses"`
}

func (b *prequal) Describe() any {
	var probes []ProbeSnapshot
	var newest int64
	for i := 0; i < b.opts.PoolSize; i++ {
		if pr := b.pool[i].Load(); pr != nil && pr.at.Load() > newest {
			newest = pr.at.Load()
		}
	}
	for i := 0; i < b.opts.PoolSize; i++ {
		pr := b.pool[i].Load()
		if pr == nil {
			continue
		}
		probes = append(probes, ProbeSnapshot{Endpoint: pr.st.ep.ID, RIF: pr.rif.Load(),
			LatencyMS: math.Float64frombits(pr.lat.Load()) / 1e6,
			AgeMS:     float64(newest-pr.at.Load()) / 1e6, Uses: pr.uses.Load()})
	}
	errs := map[string]float64{}
	for e, st := range *b.states.Load() {
		if v := math.Float64frombits(st.errEWMA.Load()); v > 0 {
			errs[e.ID] = v
		}
	}
	return map[string]any{"policy": "prequal", "pool_size": b.opts.PoolSize, "q_rif": b.opts.QRIF,
		"probe_rate": b.opts.ProbeRate, "probes": probes, "error_share": errs}
}

// ProbesOwed implements Prober.
func (b *prequal) ProbesOwed() int {
	for {
		d := b.debt.Load()
		n := d / probeDebtUnit
		if n == 0 {
			return 0
		}
		if b.debt.CompareAndSwap(d, d-n*probeDebtUnit) {
			return int(n)
		}
	}
}

// ProbeTargets implements Prober.
func (b *prequal) ProbeTargets(r Rand, n int, buf []*Endpoint) []*Endpoint {
	p := b.last.Load()
	if p == nil || len(p.eps) == 0 {
		return buf
	}
	for i := 0; i < n; i++ {
		buf = append(buf, p.eps[uniform(uint32(r.Uint64()>>32), len(p.eps))].Endpoint)
	}
	return buf
}

// ProbePath implements Prober.
func (b *prequal) ProbePath() string { return b.opts.ProbePath }

// ObserveProbe implements Prober.
func (b *prequal) ObserveProbe(e *Endpoint, rif int64, latency time.Duration, now time.Time) {
	st := (*b.states.Load())[e]
	if st == nil {
		return // no longer eligible
	}
	b.insert(st, rif, float64(latency), now.UnixNano())
}

// insert records a probe for st. Each endpoint owns one probe record for
// its whole life (pqState.probe), so inserting never allocates: the record
// is refreshed, and placed in the pool if it is not there (in an empty or
// expired slot, else in place of the oldest probe).
func (b *prequal) insert(st *pqState, rif int64, lat float64, now int64) {
	if lat <= 0 {
		lat = math.Float64frombits(st.latEWMA.Load())
	}
	pr := &st.probe
	pr.rif.Store(rif)
	pr.lat.Store(math.Float64bits(lat))
	pr.at.Store(now)
	pr.uses.Store(0)
	// Common case (piggybacked reports): the record is still in its slot.
	if b.pool[st.curSlot.Load()].Load() == pr {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.opts.PoolSize
	for i := 0; i < n; i++ {
		if b.pool[i].Load() == pr {
			st.curSlot.Store(int32(i))
			return
		}
	}
	maxAge := int64(b.opts.MaxAge)
	victim, oldest := -1, int64(math.MaxInt64)
	for i := 0; i < n; i++ {
		cur := b.pool[i].Load()
		if cur == nil || now-cur.at.Load() > maxAge {
			victim = i
			break
		}
		if at := cur.at.Load(); at < oldest {
			victim, oldest = i, at
		}
	}
	b.pool[victim].Store(pr)
	st.curSlot.Store(int32(victim))
}

type pqPicker struct {
	b      *prequal
	eps    []Weighted
	states []*pqState
	alias  *aliasTable
}

// candidate is a usable probe during one pick.
type candidate struct {
	pr   *probe
	rif  int64
	lat  float64
	slot int32
	pool int16 // index in the pool
	bad  bool
}

func (p *pqPicker) slotOf(st *pqState) int {
	if w := st.where.Load(); w != nil && w.picker == p {
		return w.slot
	}
	// The probe's endpoint was placed by a newer picker: find it here.
	for i, s := range p.states {
		if s == st {
			return i
		}
	}
	return -1
}

func (p *pqPicker) Pick(info *PickInfo) (Pick, error) {
	if len(p.eps) == 0 {
		return Pick{}, ErrNoEndpoint
	}
	b := p.b
	b.debt.Add(b.rate)
	now := info.Now.UnixNano()
	maxAge := int64(b.opts.MaxAge)
	thr := b.opts.ErrorThreshold

	var cands [maxProbePool]candidate
	var rifs [maxProbePool]int64
	n := 0
	for i := 0; i < b.opts.PoolSize; i++ {
		pr := b.pool[i].Load()
		if pr == nil {
			continue
		}
		if now-pr.at.Load() > maxAge {
			b.pool[i].CompareAndSwap(pr, nil)
			continue
		}
		slot := p.slotOf(pr.st)
		if slot < 0 || (len(info.Exclude) > 0 && info.Excluded(p.eps[slot].Endpoint)) {
			continue
		}
		c := &cands[n]
		c.pr, c.slot, c.pool = pr, int32(slot), int16(i)
		c.rif = pr.rif.Load()
		c.lat = math.Float64frombits(pr.lat.Load())
		c.bad = math.Float64frombits(pr.st.errEWMA.Load()) > thr
		rifs[n] = c.rif
		n++
	}
	if n < 2 {
		return p.random(info)
	}
	// The q_rif quantile of the pool's RIFs (insertion sort: n <= 64).
	sorted := rifs[:n]
	for i := 1; i < n; i++ {
		for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	// Linearly interpolated quantile: with a small pool, the nearest-rank
	// quantile would be the maximum and nothing could ever be hot.
	h := b.opts.QRIF * float64(n-1)
	lo := int(h)
	hotAbove := float64(sorted[lo])
	if lo+1 < n {
		hotAbove += (h - float64(lo)) * float64(sorted[lo+1]-sorted[lo])
	}

	best, worst := -1, -1
	bestCold := false
	for i := 0; i < n; i++ {
		c := &cands[i]
		cold := !c.bad && float64(c.rif) <= hotAbove
		if best < 0 || better(c, cold, &cands[best], bestCold) {
			best, bestCold = i, cold
		}
		if worst < 0 || worse(c, &cands[worst]) {
			worst = i
		}
	}
	chosen := &cands[best]
	// The query adds one request in flight at the chosen replica; count it
	// in the probe so the next picks see it (until a fresh report).
	chosen.pr.rif.Add(1)
	if chosen.pr.uses.Add(1) >= int32(b.opts.MaxReuse) {
		b.pool[chosen.pool].CompareAndSwap(chosen.pr, nil)
	}
	// Drop the worst probe when it is hot: its pessimistic view is the
	// one most likely to be stale, and a fresh probe will tell. Keep at
	// least two probes so the pool does not fall back to random.
	if w := &cands[worst]; worst != best && n > 2 && (w.bad || float64(w.rif) > hotAbove) {
		b.pool[w.pool].CompareAndSwap(w.pr, nil)
	}
	return p.Take(int(chosen.slot)), nil
}

// better orders candidates by the hot-cold lexicographic rule: cold before
// hot; among cold, lower latency (then lower RIF); among hot, healthy
// before failing, then lower RIF (then lower latency).
func better(a *candidate, aCold bool, b *candidate, bCold bool) bool {
	if aCold != bCold {
		return aCold
	}
	if aCold {
		if a.lat != b.lat {
			return a.lat < b.lat
		}
		return a.rif < b.rif
	}
	if a.bad != b.bad {
		return !a.bad
	}
	if a.rif != b.rif {
		return a.rif < b.rif
	}
	return a.lat < b.lat
}

// worse picks the probe to drop after a query: failing first, then the
// highest RIF, then the highest latency.
func worse(a, b *candidate) bool {
	if a.bad != b.bad {
		return a.bad
	}
	if a.rif != b.rif {
		return a.rif > b.rif
	}
	return a.lat > b.lat
}

// random is the fallback with too few probes: weighted random, avoiding
// failing replicas and excluded ones when possible.
func (p *pqPicker) random(info *PickInfo) (Pick, error) {
	thr := p.b.opts.ErrorThreshold
	fallback := -1
	for try := 0; try < 4; try++ {
		var i int
		if p.alias != nil {
			i = p.alias.sample(info.Rand.Uint64())
		} else {
			i = uniform(uint32(info.Rand.Uint64()>>32), len(p.eps))
		}
		if len(info.Exclude) > 0 && info.Excluded(p.eps[i].Endpoint) {
			continue
		}
		if math.Float64frombits(p.states[i].errEWMA.Load()) > thr {
			if fallback < 0 {
				fallback = i
			}
			continue
		}
		return p.Take(i), nil
	}
	for i := range p.eps {
		if !info.Excluded(p.eps[i].Endpoint) && math.Float64frombits(p.states[i].errEWMA.Load()) <= thr {
			return p.Take(i), nil
		}
	}
	if fallback >= 0 {
		return p.Take(fallback), nil
	}
	for i := range p.eps {
		if !info.Excluded(p.eps[i].Endpoint) {
			return p.Take(i), nil
		}
	}
	return Pick{}, ErrNoEndpoint
}

func (p *pqPicker) Take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *pqPicker) Done(pk Pick, info *DoneInfo) {
	st := p.states[pk.Slot]
	e := pk.Endpoint
	e.storeLoad(info.Load)
	failed := info.Failed || info.Status >= 500
	ewmaUpdate(&st.errEWMA, b2f(failed), 0.1, false)
	if !failed && info.Latency > 0 {
		ewmaUpdate(&st.latEWMA, float64(info.Latency), 0.2, true)
	}
	if info.Load.Valid {
		p.b.insert(st, info.Load.RIF, 0, info.Now.UnixNano())
	}
	end(e)
}

// ewmaUpdate moves the float64 in a toward x by alpha, lock-free. With
// seed, the first sample (a still zero) is taken as is rather than diluted.
func ewmaUpdate(a *atomic.Uint64, x, alpha float64, seed bool) {
	for {
		old := a.Load()
		v := math.Float64frombits(old)
		nv := v + alpha*(x-v)
		if seed && old == 0 {
			nv = x
		}
		if a.CompareAndSwap(old, math.Float64bits(nv)) {
			return
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var _ Balancer = (*prequal)(nil)
var _ Picker = (*pqPicker)(nil)
var _ Prober = (*prequal)(nil)
