package balance

import (
	"math"
	"sort"
	"sync/atomic"
)

func init() {
	Register(Policy{
		Name: "round_robin",
		Doc:  "smooth weighted round-robin (lock-free precomputed schedule)",
		New: func(decode func(any) error) (func() Balancer, error) {
			var opts struct{}
			if err := decodeInto(decode, &opts); err != nil {
				return nil, err
			}
			return func() Balancer { return &roundRobin{} }, nil
		},
	})
}

// roundRobin is smooth weighted round-robin. NGINX's algorithm mutates a
// "current weight" per endpoint on every pick, which needs a lock. Instead we
// compute the whole period of the smooth schedule when the picker is built
// and picks walk it with one atomic increment: the same interleaving
// (no endpoint gets a burst of consecutive picks when others have weight),
// no lock on the pick path.
type roundRobin struct{}

// maxSchedule bounds the precomputed period. Weights whose reduced sum
// exceeds it are scaled down; with at least ~64 slots per endpoint the
// rounding error of a share stays under 1%.
const maxSchedule = 1 << 16

func (b *roundRobin) Update(eps []Weighted) Picker {
	p := &rrPicker{eps: eps}
	if len(eps) == 0 {
		return p
	}
	p.sched = smoothSchedule(eps)
	return p
}

func (b *roundRobin) Describe() any { return map[string]any{"policy": "round_robin"} }

type rrPicker struct {
	eps     []Weighted
	sched   []uint32
	next    atomic.Uint64
	started atomic.Bool
}

func (p *rrPicker) Pick(info *PickInfo) (Pick, error) {
	n := uint64(len(p.sched))
	if n == 0 {
		return Pick{}, ErrNoEndpoint
	}
	// Each picker starts its schedule at a random point (from the caller's
	// randomness): proxies built at the same moment from the same config
	// would otherwise all send their first requests to the same endpoint
	// and stay in lock step (Envoy and grpc-java randomise the start for
	// the same reason).
	if !p.started.Load() && p.started.CompareAndSwap(false, true) {
		p.next.Add(info.Rand.Uint64() % n)
	}
	i := p.next.Add(1) - 1
	// Walk forward past excluded endpoints; a full period without a
	// candidate means everything is excluded.
	limit := n
	if len(info.Exclude) == 0 {
		limit = 1
	}
	for k := uint64(0); k < limit; k++ {
		slot := int(p.sched[(i+k)%n])
		e := p.eps[slot].Endpoint
		if limit == 1 || !info.Excluded(e) {
			begin(e)
			return Pick{Endpoint: e, Slot: slot}, nil
		}
	}
	return Pick{}, ErrNoEndpoint
}

func (p *rrPicker) Take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *rrPicker) Done(pk Pick, info *DoneInfo) {
	pk.Endpoint.storeLoad(info.Load)
	end(pk.Endpoint)
}

// smoothSchedule returns one period of NGINX's smooth weighted round-robin
// over integer quotas derived from the weights. Endpoints with weight <= 0
// get no slot unless every weight is <= 0, in which case all get one.
func smoothSchedule(eps []Weighted) []uint32 {
	quota := integerQuotas(eps)
	total := 0
	for _, q := range quota {
		total += q
	}
	sched := make([]uint32, 0, total)
	if allEqual(quota) {
		for i := range quota {
			sched = append(sched, uint32(i))
		}
		return sched
	}
	// NGINX's smooth WRR: every round add each quota to its current value,
	// pick the largest, subtract the total from it. O(total·n) — bounded by
	// maxSchedule·n, but in practice the gcd reduction keeps total small.
	// For large pools use the heap-free fast path below.
	if len(quota) > 64 {
		return strideSchedule(quota, total)
	}
	cur := make([]int, len(quota))
	for len(sched) < total {
		best := -1
		for i, q := range quota {
			cur[i] += q
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		sched = append(sched, uint32(best))
	}
	return sched
}

// strideSchedule is the large-pool variant: each endpoint i occupies the
// slots nearest to (k+0.5)·total/quota_i for k < quota_i, resolved by a
// counting sort on the ideal positions. It yields the same counts as the
// smooth schedule and the same spreading, in O(total + n).
func strideSchedule(quota []int, total int) []uint32 {
	buckets := make([][]uint32, total)
	for i, q := range quota {
		step := float64(total) / float64(q)
		for k := 0; k < q; k++ {
			pos := int((float64(k) + 0.5) * step)
			if pos >= total {
				pos = total - 1
			}
			buckets[pos] = append(buckets[pos], uint32(i))
		}
	}
	sched := make([]uint32, 0, total)
	for _, b := range buckets {
		sched = append(sched, b...)
	}
	return sched
}

// integerQuotas converts weights to small integers with the same ratios:
// exact for integral weights (reduced by their gcd) and the largest-remainder
// method for fractional ones (slow-start ramps, directives).
func integerQuotas(eps []Weighted) []int {
	quota := make([]int, len(eps))
	positive := 0
	integral := true
	var sum float64
	for _, w := range eps {
		if w.Weight > 0 {
			positive++
			sum += w.Weight
			if w.Weight != math.Trunc(w.Weight) || w.Weight > maxSchedule {
				integral = false
			}
		}
	}
	if positive == 0 {
		for i := range quota {
			quota[i] = 1
		}
		return quota
	}
	if integral {
		g := 0
		for i, w := range eps {
			if w.Weight > 0 {
				quota[i] = int(w.Weight)
				g = gcd(g, quota[i])
			}
		}
		t := 0
		for i := range quota {
			quota[i] /= g
			t += quota[i]
		}
		if t <= maxSchedule {
			return quota
		}
	}
	// Scale to a period of about 128 slots per endpoint, capped.
	target := 128 * positive
	if target > maxSchedule {
		target = maxSchedule
	}
	type rem struct {
		i int
		f float64
	}
	rems := make([]rem, 0, positive)
	assigned := 0
	for i, w := range eps {
		if w.Weight <= 0 {
			quota[i] = 0
			continue
		}
		exact := w.Weight / sum * float64(target)
		q := int(exact)
		if q < 1 {
			q = 1 // a positive weight always gets at least one slot
		}
		quota[i] = q
		assigned += q
		rems = append(rems, rem{i, exact - math.Floor(exact)})
	}
	// Hand out the remaining slots to the largest remainders.
	sort.Slice(rems, func(a, b int) bool { return rems[a].f > rems[b].f })
	for k := 0; k < target-assigned && k < len(rems); k++ {
		quota[rems[k].i]++
	}
	g := 0
	for _, q := range quota {
		if q > 0 {
			g = gcd(g, q)
		}
	}
	for i := range quota {
		quota[i] /= g
	}
	return quota
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func allEqual(q []int) bool {
	for _, x := range q[1:] {
		if x != q[0] {
			return false
		}
	}
	return true
}

var _ Balancer = (*roundRobin)(nil)
var _ Picker = (*rrPicker)(nil)
