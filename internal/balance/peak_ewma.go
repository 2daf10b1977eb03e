package balance

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// PeakEWMAOptions are the options of peak_ewma.
type PeakEWMAOptions struct {
	// Decay is τ, the time constant of the moving average. Default 10s
	// (Finagle's default).
	Decay time.Duration `yaml:"decay"`
	// ChoiceCount is how many random candidates are compared. Default 2.
	ChoiceCount int `yaml:"choice_count"`
	// ErrorPenalty multiplies an endpoint's cost on a failed attempt or a
	// 5xx, so that an endpoint failing fast does not look fast. Default 4.
	ErrorPenalty float64 `yaml:"error_penalty"`
}

// Validate fills defaults and checks ranges.
func (o *PeakEWMAOptions) Validate() error {
	if o.Decay == 0 {
		o.Decay = 10 * time.Second
	}
	if o.ChoiceCount == 0 {
		o.ChoiceCount = 2
	}
	if o.ErrorPenalty == 0 {
		o.ErrorPenalty = 4
	}
	if o.Decay < time.Millisecond {
		return fmt.Errorf("decay: must be at least 1ms (e.g. 10s), got %v", o.Decay)
	}
	if o.ChoiceCount < 2 || o.ChoiceCount > 16 {
		return fmt.Errorf("choice_count: must be between 2 and 16, got %d", o.ChoiceCount)
	}
	if !(o.ErrorPenalty >= 1) || math.IsInf(o.ErrorPenalty, 0) {
		return fmt.Errorf("error_penalty: must be a finite number >= 1, got %v", o.ErrorPenalty)
	}
	return nil
}

func init() {
	Register(Policy{
		Name: "peak_ewma",
		Doc:  "power of two choices on Finagle's peak-EWMA latency × (pending+1) (decay, choice_count, error_penalty)",
		New: func(decode func(any) error) (func() Balancer, error) {
			o, err := peakEWMAOptions(decode)
			if err != nil {
				return nil, err
			}
			return func() Balancer { return NewPeakEWMA(o) }, nil
		},
	})
}

// peakEWMAOptions decodes and validates options shared by peak_ewma and
// weighted.
func peakEWMAOptions(decode func(any) error) (PeakEWMAOptions, error) {
	var o PeakEWMAOptions
	if err := decodeInto(decode, &o); err != nil {
		return o, err
	}
	return o, o.Validate()
}

// NewPeakEWMA returns a peak-EWMA balancer (also the fallback of weighted).
func NewPeakEWMA(o PeakEWMAOptions) Balancer {
	return &peakEWMA{opts: o, states: map[*Endpoint]*ewmaState{}}
}

// peakEWMA is Finagle's "peak exponentially weighted moving average" load
// metric (com.twitter.finagle.loadbalancer.PeakEwma, after the Linkerd
// design): on each response with round-trip time rtt observed Δt after the
// previous one, w = exp(-Δt/τ); the cost jumps to rtt when rtt is above it
// ("peak": react to a slowdown at once) and otherwise moves to
// cost·w + rtt·(1-w) (recover slowly). An endpoint's load is
// cost × (pending+1), and a pick compares two random endpoints (P2C).
//
// Two details follow Finagle: an endpoint with no RTT yet and requests
// pending gets a huge penalty (so a new endpoint gets one probe request, not
// a flood), and the cost decays toward zero while an endpoint receives no
// responses (so a once-slow endpoint is tried again). Finagle applies that
// decay by recording a zero RTT on every read; we compute it at read time
// without writing, which keeps picks lock-free. Errors multiply the cost by
// error_penalty (Finagle leaves failing endpoints to failure accrual).
type peakEWMA struct {
	opts   PeakEWMAOptions
	states map[*Endpoint]*ewmaState // owned by Update's caller (one at a time)
	last   *ewmaPicker
}

// ewmaState is one endpoint's cost. Done serializes writers with mu; picks
// read the atomics without locking.
type ewmaState struct {
	mu    sync.Mutex
	cost  atomic.Uint64 // float64 bits, nanoseconds
	stamp atomic.Int64  // unix nanoseconds of the last update; 0: never
}

// penalty is Finagle's cost for an endpoint with no RTT yet and pending
// requests (Long.MaxValue >> 16 ns).
const penalty = float64(math.MaxInt64 >> 16)

func (s *ewmaState) decayed(now int64, tau float64) float64 {
	c := math.Float64frombits(s.cost.Load())
	if c == 0 {
		return 0
	}
	if dt := now - s.stamp.Load(); dt > 0 {
		c *= math.Exp(-float64(dt) / tau)
	}
	return c
}

func (s *ewmaState) observe(now int64, rtt float64, tau float64, failed bool, errPenalty float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := math.Float64frombits(s.cost.Load())
	stamp := s.stamp.Load()
	if failed {
		if p := c * errPenalty; p > rtt {
			rtt = p
		}
		if rtt > 10e9 {
			rtt = 10e9
		}
	}
	switch {
	case stamp == 0 || rtt > c:
		c = rtt
	default:
		dt := now - stamp
		if dt < 0 {
			dt = 0
		}
		w := math.Exp(-float64(dt) / tau)
		c = c*w + rtt*(1-w)
	}
	s.cost.Store(math.Float64bits(c))
	s.stamp.Store(now)
}

func (b *peakEWMA) Update(eps []Weighted) Picker {
	p := &ewmaPicker{eps: eps, states: make([]*ewmaState, len(eps)), invRel: make([]float64, len(eps)),
		choices: b.opts.ChoiceCount, tau: float64(b.opts.Decay), errPenalty: b.opts.ErrorPenalty}
	keep := make(map[*Endpoint]*ewmaState, len(eps))
	for i, w := range eps {
		st := b.states[w.Endpoint]
		if st == nil {
			st = &ewmaState{}
		}
		keep[w.Endpoint] = st
		p.states[i] = st
	}
	// Endpoints that left the eligible set lose their history: one that
	// comes back starts fresh (a pick in flight still holds its old state
	// through the old picker).
	b.states = keep
	equal := len(eps) == 0 || equalWeights(eps)
	if !equal {
		p.alias = newAlias(eps)
	}
	var sum float64
	var pos int
	for _, w := range eps {
		if w.Weight > 0 {
			sum += w.Weight
			pos++
		}
	}
	for i, w := range eps {
		switch {
		case !(w.Weight > 0):
			p.invRel[i] = 0 // marks weight 0
		case equal:
			p.invRel[i] = 1
		default:
			p.invRel[i] = sum / float64(pos) / w.Weight
		}
	}
	b.last = p
	return p
}

// EndpointCost is one endpoint's state in Describe.
type EndpointCost struct {
	Endpoint string  `json:"endpoint"`
	CostMS   float64 `json:"cost_ms"`
	Pending  int64   `json:"pending"`
}

func (b *peakEWMA) Describe() any {
	d := map[string]any{"policy": "peak_ewma", "decay": b.opts.Decay.String(), "choice_count": b.opts.ChoiceCount}
	if b.last != nil {
		var costs []EndpointCost
		for i, w := range b.last.eps {
			st := b.last.states[i]
			costs = append(costs, EndpointCost{Endpoint: w.Endpoint.ID,
				CostMS: math.Float64frombits(st.cost.Load()) / 1e6, Pending: w.Endpoint.InFlight()})
		}
		d["endpoints"] = costs
	}
	return d
}

type ewmaPicker struct {
	eps        []Weighted
	states     []*ewmaState
	invRel     []float64 // mean weight / weight; 0 marks weight 0
	alias      *aliasTable
	choices    int
	tau        float64
	errPenalty float64
}

// DivertRatio: when weights differ, a candidate drawn in proportion to
// its weight keeps the request unless its load is more than DivertRatio
// times another candidate's. One request in flight against an idle peer of
// equal speed is a ratio of exactly 2 — no reason to override the weights;
// an endpoint slowed or queued beyond that is.
const DivertRatio = 2.0

// load is the time a new request would take at endpoint i relative to its
// capacity: Finagle's cost × (pending+1) with equal weights; with unequal
// weights the pending requests drain at the endpoint's relative capacity,
// cost × (1 + pending / (weight / mean weight)), so that a heavier endpoint
// carrying its share of pending requests does not look busier than a
// lighter one carrying its share.
func (p *ewmaPicker) load(i int, now int64) float64 {
	pending := p.eps[i].Endpoint.inflight.Load()
	c := p.states[i].decayed(now, p.tau)
	q := float64(pending) * p.invRel[i]
	if c == 0 && pending != 0 {
		return penalty + q
	}
	return c * (1 + q)
}

// Pick is Finagle's power of two choices on load when the weights are
// equal. When they differ (slow start, configured or directive weights),
// the candidates are drawn in proportion to weight and the first keeps the
// request unless it is more than DivertRatio times as loaded as the best
// other: the shares follow the weights while the endpoints serve alike,
// and the latency signal still protects a slow or overloaded endpoint.
// (Comparing loads divided by weight instead would send every comparison
// between idle endpoints to the heavier one, and a light endpoint — a
// slow-start ramp, a directive's 1 among 4s — would get almost nothing;
// comparing plain loads would let tiny latency differences, not weights,
// decide at low load.)
func (p *ewmaPicker) Pick(info *PickInfo) (Pick, error) {
	if len(p.eps) == 0 {
		return Pick{}, ErrNoEndpoint
	}
	now := info.Now.UnixNano()
	var buf [16]int
	first, best := -1, -1
	var firstLoad, bestLoad float64
	for _, i := range sampleCandidates(info.Rand, len(p.eps), p.alias, buf[:0:p.choices]) {
		if p.invRel[i] == 0 || (len(info.Exclude) > 0 && info.Excluded(p.eps[i].Endpoint)) {
			continue
		}
		l := p.load(i, now)
		if first < 0 {
			first, firstLoad = i, l
		}
		if best < 0 || l < bestLoad {
			best, bestLoad = i, l
		}
	}
	if best >= 0 {
		if p.alias != nil && firstLoad <= DivertRatio*bestLoad {
			return p.Take(first), nil
		}
		return p.Take(best), nil
	}
	// Every candidate was excluded (a retry): the least loaded endpoint
	// not yet tried, weight 0 last.
	for i := range p.eps {
		if info.Excluded(p.eps[i].Endpoint) {
			continue
		}
		l := p.load(i, now)
		if p.invRel[i] == 0 {
			l = math.Inf(1)
		}
		if best < 0 || l < bestLoad {
			best, bestLoad = i, l
		}
	}
	if best < 0 {
		return Pick{}, ErrNoEndpoint
	}
	return p.Take(best), nil
}

func (p *ewmaPicker) Take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *ewmaPicker) Done(pk Pick, info *DoneInfo) {
	pk.Endpoint.storeLoad(info.Load)
	failed := info.Failed || info.Status >= 500
	p.states[pk.Slot].observe(info.Now.UnixNano(), float64(info.Latency), p.tau, failed, p.errPenalty)
	end(pk.Endpoint)
}

var _ Balancer = (*peakEWMA)(nil)
var _ Picker = (*ewmaPicker)(nil)
