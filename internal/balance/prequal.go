package balance

import (
	"fmt"
	"math"
	"math/bits"
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
	// MaxReuse is how many queries one probe may steer (b_reuse). Default
	// 4. Values above 524288 (2^19, far beyond what a probe steers within
	// max_age) act as 524288.
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
	b := &prequal{
		opts:     o,
		rate:     uint64(o.ProbeRate * probeDebtUnit),
		maxAge:   int64(o.MaxAge),
		maxReuse: uint64(min(max(o.MaxReuse, 1), maxCountedUses)),
	}
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
// The pool is a fixed array of atomic pointers to the endpoints' states,
// each holding its endpoint's one probe in atomic fields: picks neither
// lock nor allocate. A pick reads the pool and nothing that grows with the
// number of endpoints, so it costs the same at 3 endpoints as at 1,000
// (issue #16).
type prequal struct {
	opts     PrequalOptions
	rate     uint64 // probe debt per pick, fixed point
	maxAge   int64  // opts.MaxAge in ns, as picks compare it
	maxReuse uint64 // opts.MaxReuse within [1, maxCountedUses]

	debt   atomic.Uint64
	pool   [maxProbePool]atomic.Pointer[pqState]
	states atomic.Pointer[map[*Endpoint]*pqState] // copy-on-write
	last   atomic.Pointer[pqPicker]
	mu     sync.Mutex // serializes pool insertions

	// Touched by Update only, which runs on one goroutine at a time.
	gen     uint64  // generation of the newest picker; the first is 1
	nextID  int32   // ids handed out so far
	freeIDs []int32 // ids of endpoints that left, to reuse
}

const probeDebtUnit = 1024

// A probe's RIF and the number of queries it has steered share one word,
// RIF in the high bits, so that a pick counts both with one atomic add (it
// adds a request in flight and a use) and a report resets both with one
// store: one locked instruction less per pick, and a reader never sees a
// fresh RIF with a stale count.
const (
	usesBits = 20
	usesMask = 1<<usesBits - 1
	// maxCountedUses caps max_reuse so that the count, with the picks in
	// flight past the limit, never spills into the RIF. A probe lives at
	// most max_age anyway: half a million queries on one probe is beyond
	// any real rate.
	maxCountedUses = 1 << (usesBits - 1)
	// maxProbeRIF bounds the RIF a report may set, leaving room above it
	// for the picks that add to it: RIF is a count of requests, and no
	// replica holds 2^42 of them.
	maxProbeRIF = 1 << 42
)

// probeWord packs a reported RIF with a zero use count.
func probeWord(rif int64) uint64 {
	return uint64(min(max(rif, -maxProbeRIF), maxProbeRIF)) << usesBits
}

// probeRIF unpacks the RIF of a probe word.
func probeRIF(w uint64) int64 { return int64(w) >> usesBits }

// pqState is what prequal knows about one endpoint across snapshots, and
// the endpoint's one probe record: the pool points at states, so recording
// a probe never allocates.
//
// Its first 64 bytes are everything a pick reads of a pooled probe, and
// the padding makes the struct 128 bytes, a size class whose objects the Go
// allocator places at multiples of 128: a pick touches exactly one cache
// line per probe (TestPrequalStateLayout keeps it so).
type pqState struct {
	probe   atomic.Uint64 // probeWord: RIF << usesBits | uses
	lat     atomic.Uint64 // float64 bits, ns: the probe's latency
	at      atomic.Int64  // unix ns of the probe
	errEWMA atomic.Uint64 // float64 bits
	// The pickers that hold this endpoint are those of the generations
	// born to born+span-1: from the Update that added it up to, not
	// including, the one that removed it (until then span reaches the
	// last generation, MaxUint64-born, so that an older picker's g-born,
	// which wraps around, is never below it). An endpoint that comes
	// back gets a new state, so there is no hole. A picker of generation
	// g holds it iff g-born < span, unsigned: one comparison per probe.
	born    uint64
	span    atomic.Uint64
	ep      *Endpoint
	id      int32        // index in pqPicker.slots; reused after the endpoint leaves
	curSlot atomic.Int32 // the pool slot the probe was last placed in

	latEWMA atomic.Uint64 // float64 bits, ns; Done and reports only
	_       [56]byte
}

func (b *prequal) Update(eps []Weighted) Picker {
	b.gen++
	g := b.gen
	p := &pqPicker{b: b, gen: g, eps: eps, states: make([]*pqState, len(eps))}
	old := *b.states.Load()
	next := make(map[*Endpoint]*pqState, len(eps))
	for i, w := range eps {
		if st := old[w.Endpoint]; st != nil {
			next[w.Endpoint] = st
			p.states[i] = st
		}
	}
	for e, st := range old {
		if _, ok := next[e]; !ok {
			// Pickers from before this one still hold it, and its
			// probe may linger in the pool: picks on this picker and
			// later ones skip it. Its id may go to a new endpoint.
			st.span.Store(g - st.born)
			b.freeIDs = append(b.freeIDs, st.id)
		}
	}
	for i, w := range eps {
		if p.states[i] != nil {
			continue
		}
		st := next[w.Endpoint] // listed twice
		if st == nil {
			st = &pqState{ep: w.Endpoint, id: b.newID(), born: g}
			st.span.Store(math.MaxUint64 - g)
			next[w.Endpoint] = st
		}
		p.states[i] = st
	}
	p.slots = make([]int32, b.nextID)
	for i := range p.slots {
		p.slots[i] = -1
	}
	for i, st := range p.states {
		p.slots[st.id] = int32(i)
	}
	b.states.Store(&next)
	if len(eps) > 0 && !equalWeights(eps) {
		p.alias = newAlias(eps)
	}
	b.last.Store(p)
	return p
}

// newID numbers a new endpoint state, reusing the id of one that left.
func (b *prequal) newID() int32 {
	if k := len(b.freeIDs); k > 0 {
		id := b.freeIDs[k-1]
		b.freeIDs = b.freeIDs[:k-1]
		return id
	}
	b.nextID++
	return b.nextID - 1
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
		if st := b.pool[i].Load(); st != nil && st.at.Load() > newest {
			newest = st.at.Load()
		}
	}
	for i := 0; i < b.opts.PoolSize; i++ {
		st := b.pool[i].Load()
		if st == nil {
			continue
		}
		w := st.probe.Load()
		probes = append(probes, ProbeSnapshot{Endpoint: st.ep.ID, RIF: probeRIF(w),
			LatencyMS: math.Float64frombits(st.lat.Load()) / 1e6,
			AgeMS:     float64(newest-st.at.Load()) / 1e6, Uses: int32(w & usesMask)})
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
// its whole life (its pqState), so inserting never allocates: the record
// is refreshed, and placed in the pool if it is not there (in an empty or
// expired slot, else in place of the oldest probe). A RIF beyond ±2^42 is
// recorded as ±2^42 (see probeWord).
func (b *prequal) insert(st *pqState, rif int64, lat float64, now int64) {
	if lat <= 0 {
		lat = math.Float64frombits(st.latEWMA.Load())
	}
	st.probe.Store(probeWord(rif))
	st.lat.Store(math.Float64bits(lat))
	st.at.Store(now)
	// Common case (piggybacked reports): the record is still in its slot.
	if b.pool[st.curSlot.Load()].Load() == st {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// One pass: the record may already sit in another slot (then it stays
	// there); else it takes the first empty or expired slot, else the
	// oldest probe's (the first of equals).
	free, oldest, oldestAt := -1, 0, int64(math.MaxInt64)
	for i := range b.opts.PoolSize {
		cur := b.pool[i].Load()
		switch {
		case cur == st:
			st.curSlot.Store(int32(i))
			return
		case free >= 0:
		case cur == nil:
			free = i
		default:
			at := cur.at.Load()
			if now-at > b.maxAge {
				free = i
			} else if at < oldestAt {
				oldest, oldestAt = i, at
			}
		}
	}
	if free < 0 {
		free = oldest
	}
	b.pool[free].Store(st)
	st.curSlot.Store(int32(free))
}

type pqPicker struct {
	b      *prequal
	gen    uint64 // this picker holds the states with gen-born < span
	eps    []Weighted
	states []*pqState
	// slots maps a state's id to its index in eps, -1 when absent: the
	// chosen probe finds its endpoint's slot with one index, in the newest
	// picker as in one a pick in flight still holds.
	slots []int32
	alias *aliasTable
}

// slotOf returns st's index in this picker, or -1 when st's endpoint is
// not in it (it left, or joined after this picker was built).
func (p *pqPicker) slotOf(st *pqState) int {
	if id := int(st.id); id < len(p.slots) {
		if s := int(p.slots[id]); s >= 0 && p.states[s] == st {
			return s
		}
	}
	return -1
}

// pqCands is the probes one pick considers, in pool order: the states and
// their pool slots, and which replicas are failing. It lives on the stack;
// a pick reads the probes' RIF and latency from the states themselves, one
// cache line each, so this stays small to clear.
type pqCands struct {
	st   [maxProbePool]*pqState
	pool [maxProbePool]uint8
	bad  uint32 // bit i: st[i]'s replica is failing
	n    int
}

// Pick applies the hot-cold rule to the probe pool. It reads at most
// pool_size probes (one cache line each) and never the endpoint list,
// keeps its per-pick state on the stack and makes no interface call, so it
// costs the same at 3 endpoints as at 1,000 and allocates nothing. It
// passes over the probes twice: once to gather them and keep the four
// highest RIFs (enough for the quantile), once to find the best cold probe
// and, when a drop is due, the worst.
func (p *pqPicker) Pick(info *PickInfo) (Pick, error) {
	if len(p.eps) == 0 {
		return Pick{}, ErrNoEndpoint
	}
	b := p.b
	b.debt.Add(b.rate)
	now := info.Now.UnixNano()
	maxAge := b.maxAge
	thr := b.opts.ErrorThreshold
	g := p.gen

	// Gather. The loop makes no call, so its state stays in registers:
	// expired probes are dropped and excluded endpoints filtered after it,
	// both rare.
	var c pqCands
	n := 0
	var expired uint32
	// The four highest RIFs, t0 <= t1 <= t2 <= t3, kept with min and max
	// (conditional moves: a branch on probe values would be mispredicted
	// about half the time).
	t0, t1, t2, t3 := int64(math.MinInt64), int64(math.MinInt64), int64(math.MinInt64), int64(math.MinInt64)
	for i := range b.opts.PoolSize {
		st := b.pool[i].Load()
		if st == nil {
			continue
		}
		if now-st.at.Load() > maxAge {
			expired |= 1 << i
			continue
		}
		if g-st.born >= st.span.Load() {
			continue // its endpoint is not in this picker
		}
		if math.Float64frombits(st.errEWMA.Load()) > thr {
			c.bad |= 1 << n
		}
		c.st[n], c.pool[n] = st, uint8(i)
		v := probeRIF(st.probe.Load())
		t3, v = max(t3, v), min(t3, v)
		t2, v = max(t2, v), min(t2, v)
		t1, v = max(t1, v), min(t1, v)
		t0 = max(t0, v)
		n++
	}
	if expired != 0 {
		b.dropExpired(expired, now)
	}
	c.n = n
	if len(info.Exclude) > 0 {
		t0, t1, t2, t3 = c.exclude(info)
		n = c.n
	}
	if n < 2 {
		return p.random(info)
	}
	// The q_rif quantile, linearly interpolated between the order
	// statistics lo and lo+1: with a small pool, the nearest-rank quantile
	// would be the maximum and nothing could ever be hot. With the default
	// pool of 16 and q_rif 0.84 both are among the four highest RIFs.
	h := b.opts.QRIF * float64(n-1)
	lo := int(h) // <= n-2 since q_rif < 1
	var lo0, lo1 int64
	if k := n - lo; k <= 4 {
		top := [4]int64{t0, t1, t2, t3}
		lo0, lo1 = top[4-k], top[5-k]
	} else {
		lo0, lo1 = c.orderStats(lo)
	}
	hotAbove := float64(lo0) + (h-float64(lo))*float64(lo1-lo0)
	// A probe is hot when float64(rif) > hotAbove; RIFs are integers below
	// 2^53 (maxProbeRIF), so that is rif > floor(hotAbove).
	coldMax := int64(math.Floor(hotAbove))

	// Cold before hot; among cold, the lowest latency, then the lowest
	// RIF; the first of equals. On the way, the worst probe when no
	// replica is failing: the highest RIF (t3), then the highest latency,
	// the first of equals; it is dropped only if hot, so only hot probes
	// need looking at.
	best, worst := -1, -1
	var bestLat, worstLat float64
	var bestRIF int64
	for i := 0; i < n; i++ {
		st := c.st[i]
		rif := probeRIF(st.probe.Load())
		lat := math.Float64frombits(st.lat.Load())
		if c.bad>>i&1 == 0 && rif <= coldMax {
			if best < 0 || lat < bestLat || (lat == bestLat && rif < bestRIF) {
				best, bestLat, bestRIF = i, lat, rif
			}
		} else if rif == t3 && (worst < 0 || lat > worstLat) {
			worst, worstLat = i, lat
		}
	}
	if best < 0 {
		best = c.bestHot()
	}
	// The worst probe (failing first, then the highest RIF, then the
	// highest latency) is dropped below when it is hot or failing. Find it
	// before this query counts in the chosen probe.
	// Without failing replicas the loop above found it among the hot
	// probes, if any is hot.
	if c.bad != 0 {
		worst = c.worstFailing()
	}
	chosen := c.st[best]
	slot := p.slotOf(chosen)
	if slot < 0 {
		return p.random(info) // unreachable: born and span said it is here
	}
	// The query adds one request in flight at the chosen replica; count it
	// in the probe so the next picks see it (until a fresh report), with
	// one use of the probe.
	if w := chosen.probe.Add(1<<usesBits | 1); w&usesMask >= b.maxReuse {
		b.pool[c.pool[best]].CompareAndSwap(chosen, nil)
	}
	// Drop the worst probe: its pessimistic view is the one most likely to
	// be stale, and a fresh probe will tell. Keep at least two probes so
	// the pool does not fall back to random.
	if worst >= 0 && worst != best && n > 2 {
		b.pool[c.pool[worst]].CompareAndSwap(c.st[worst], nil)
	}
	return p.Take(slot), nil
}

// dropExpired empties the pool slots in mask whose probe is older than
// max_age at now (a fresh probe may have taken a slot since: it stays).
func (b *prequal) dropExpired(mask uint32, now int64) {
	for ; mask != 0; mask &= mask - 1 {
		i := bits.TrailingZeros32(mask)
		if st := b.pool[i].Load(); st != nil && now-st.at.Load() > b.maxAge {
			b.pool[i].CompareAndSwap(st, nil)
		}
	}
}

// exclude removes the probes of endpoints info excludes (a retry avoids
// the endpoints it tried), keeping the order, and returns the four highest
// RIFs of those left, ascending.
func (c *pqCands) exclude(info *PickInfo) (t0, t1, t2, t3 int64) {
	t0, t1, t2, t3 = math.MinInt64, math.MinInt64, math.MinInt64, math.MinInt64
	var bad uint32
	n := 0
	for i := 0; i < c.n; i++ {
		st := c.st[i]
		if info.Excluded(st.ep) {
			continue
		}
		bad |= (c.bad >> i & 1) << n
		c.st[n], c.pool[n] = st, c.pool[i]
		v := probeRIF(st.probe.Load())
		t3, v = max(t3, v), min(t3, v)
		t2, v = max(t2, v), min(t2, v)
		t1, v = max(t1, v), min(t1, v)
		t0 = max(t0, v)
		n++
	}
	c.n, c.bad = n, bad
	return t0, t1, t2, t3
}

// orderStats returns the order statistics lo and lo+1 of the candidates'
// RIFs when they are not among the four highest (a pool larger than 16, or
// a low q_rif): a buffer keeps the k highest or the k lowest, whichever k
// is smaller, each value passing through it with min and max.
func (c *pqCands) orderStats(lo int) (int64, int64) {
	var buf [maxProbePool]int64
	n := c.n
	if k := n - lo; k <= lo+2 {
		// buf[:k] holds the k highest, ascending: buf[0] is order
		// statistic n-k = lo. A value enters at the top and the lowest
		// falls out at the bottom.
		for j := range k {
			buf[j] = math.MinInt64
		}
		for i := 0; i < n; i++ {
			v := probeRIF(c.st[i].probe.Load())
			for j := k - 1; j >= 0; j-- {
				buf[j], v = max(buf[j], v), min(buf[j], v)
			}
		}
		return buf[0], buf[1]
	}
	// buf[:k] holds the k = lo+2 lowest, ascending.
	k := lo + 2
	for j := range k {
		buf[j] = math.MaxInt64
	}
	for i := 0; i < n; i++ {
		v := probeRIF(c.st[i].probe.Load())
		for j := 0; j < k; j++ {
			buf[j], v = min(buf[j], v), max(buf[j], v)
		}
	}
	return buf[k-2], buf[k-1]
}

// bestHot is the hot-cold rule's second branch, for a pool where every
// probe is hot (this needs failing replicas: the interpolated quantile is
// never below the lowest RIF): healthy before failing, then the lowest
// RIF, then the lowest latency; the first of equals.
func (c *pqCands) bestHot() int {
	best, bestBad := 0, c.bad&1 != 0
	bestRIF := probeRIF(c.st[0].probe.Load())
	bestLat := math.Float64frombits(c.st[0].lat.Load())
	for i := 1; i < c.n; i++ {
		bad := c.bad>>i&1 != 0
		rif := probeRIF(c.st[i].probe.Load())
		lat := math.Float64frombits(c.st[i].lat.Load())
		if bad != bestBad {
			if bad {
				continue
			}
		} else if rif != bestRIF {
			if rif > bestRIF {
				continue
			}
		} else if lat >= bestLat {
			continue
		}
		best, bestBad, bestRIF, bestLat = i, bad, rif, lat
	}
	return best
}

// worstFailing returns the worst probe of a pool with a failing replica:
// the failing one with the highest RIF, then the highest latency; the
// first of equals.
func (c *pqCands) worstFailing() int {
	worst := -1
	var worstRIF int64
	var worstLat float64
	for i := 0; i < c.n; i++ {
		if c.bad>>i&1 == 0 {
			continue
		}
		rif := probeRIF(c.st[i].probe.Load())
		lat := math.Float64frombits(c.st[i].lat.Load())
		if worst < 0 || rif > worstRIF || (rif == worstRIF && lat > worstLat) {
			worst, worstRIF, worstLat = i, rif, lat
		}
	}
	return worst
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
		// Most responses succeed and leave a zero error share at zero:
		// skip the locked write (and the cache line it would take from
		// the picks reading it) when nothing changes.
		if math.Float64bits(nv) == old {
			return
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
