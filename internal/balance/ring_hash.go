package balance

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync/atomic"
)

// RingHashOptions are the options of ring_hash.
type RingHashOptions struct {
	// Epsilon bounds the load: an endpoint takes at most
	// ceil((1+ε) · share · in-flight) requests. Default 0.25.
	Epsilon float64 `yaml:"epsilon"`
	// VirtualNodes per unit of weight on the ring. Default 100.
	VirtualNodes int `yaml:"virtual_nodes"`
}

// Validate fills defaults and checks ranges.
func (o *RingHashOptions) Validate() error {
	if o.Epsilon == 0 {
		o.Epsilon = 0.25
	}
	if o.VirtualNodes == 0 {
		o.VirtualNodes = 100
	}
	if !(o.Epsilon > 0) || math.IsInf(o.Epsilon, 0) {
		return fmt.Errorf("epsilon: must be a finite number > 0 (e.g. 0.25), got %v", o.Epsilon)
	}
	if o.VirtualNodes < 1 || o.VirtualNodes > 10000 {
		return fmt.Errorf("virtual_nodes: must be between 1 and 10000, got %d", o.VirtualNodes)
	}
	return nil
}

func init() {
	Register(Policy{
		Name: "ring_hash",
		Doc:  "consistent hashing with bounded loads (epsilon, virtual_nodes); keyless requests are spread at random",
		New: func(decode func(any) error) (func() Balancer, error) {
			var o RingHashOptions
			if err := decodeInto(decode, &o); err != nil {
				return nil, err
			}
			if err := o.Validate(); err != nil {
				return nil, err
			}
			return func() Balancer { return NewRingHash(o) }, nil
		},
	})
}

// NewRingHash returns a bounded-load consistent-hash balancer. The proxy
// uses it directly for hash affinity.
func NewRingHash(o RingHashOptions) Balancer {
	return &ringHash{opts: o, total: new(atomic.Int64)}
}

// ringHash implements "Consistent Hashing with Bounded Loads" (Mirrokni,
// Thorup, Zadimoghaddam, SODA 2018): a key goes to the first endpoint
// clockwise from its hash on the ring whose load is below
// ceil((1+ε)·m·w_i/Σw), where m counts in-flight requests including the new
// one. With no overload every replica of the proxy maps a key to the same
// endpoint (the ring depends only on endpoint IDs and weights); under
// overload keys spill to the next endpoints on the ring, in the same order
// everywhere.
type ringHash struct {
	opts RingHashOptions
	// total is the in-flight count over the whole service, shared by every
	// snapshot so that picks made on an old ring still count.
	total *atomic.Int64
	last  *ringPicker
}

type ringPoint struct {
	hash uint64
	slot int32
}

func (b *ringHash) Update(eps []Weighted) Picker {
	p := &ringPicker{eps: eps, eps1: 1 + b.opts.Epsilon, total: b.total, share: make([]float64, len(eps))}
	var sum, minW float64
	for _, w := range eps {
		if w.Weight > 0 {
			sum += w.Weight
			if minW == 0 || w.Weight < minW {
				minW = w.Weight
			}
		}
	}
	for i, w := range eps {
		if sum > 0 && w.Weight > 0 {
			p.share[i] = w.Weight / sum
		}
	}
	// Cap the ring at ~1M points; heavier endpoints get proportionally more.
	perUnit := float64(b.opts.VirtualNodes)
	if sum > 0 {
		if pts := perUnit * sum / minW; pts > 1<<20 {
			perUnit *= (1 << 20) / pts
		}
	}
	for i, w := range eps {
		if w.Weight <= 0 {
			continue
		}
		n := int(math.Round(perUnit * w.Weight / minW))
		if n < 1 {
			n = 1
		}
		id := w.Endpoint.ID
		buf := make([]byte, 0, len(id)+8)
		for k := 0; k < n; k++ {
			buf = append(buf[:0], id...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(k), 10)
			p.ring = append(p.ring, ringPoint{hash: HashBytes(buf), slot: int32(i)})
		}
	}
	sort.Slice(p.ring, func(a, c int) bool {
		if p.ring[a].hash != p.ring[c].hash {
			return p.ring[a].hash < p.ring[c].hash
		}
		return eps[p.ring[a].slot].Endpoint.ID < eps[p.ring[c].slot].Endpoint.ID
	})
	// Index the ring by the top 16 bits of the hash, so a lookup is a short
	// scan instead of a binary search over up to a million points.
	p.index = make([]uint32, ringBuckets+1)
	j := 0
	for bk := 0; bk <= ringBuckets; bk++ {
		for j < len(p.ring) && int(p.ring[j].hash>>48) < bk {
			j++
		}
		p.index[bk] = uint32(j)
	}
	b.last = p
	return p
}

const ringBuckets = 1 << 16

// search returns the first ring position with hash >= h (len(ring) if none).
func (p *ringPicker) search(h uint64) int {
	bk := h >> 48
	lo, hi := int(p.index[bk]), int(p.index[bk+1])
	for lo < hi && p.ring[lo].hash < h {
		lo++
	}
	return lo
}

func (b *ringHash) Describe() any {
	d := map[string]any{"policy": "ring_hash", "epsilon": b.opts.Epsilon, "virtual_nodes": b.opts.VirtualNodes, "in_flight": b.total.Load()}
	if b.last != nil {
		d["ring_points"] = len(b.last.ring)
	}
	return d
}

type ringPicker struct {
	eps   []Weighted
	share []float64
	ring  []ringPoint
	index []uint32 // ring position of the first point of each hash bucket
	eps1  float64
	total *atomic.Int64
}

// Capacity returns the bounded-load capacity of slot i when m requests are in
// flight (the new one included).
func (p *ringPicker) capacity(i int, m int64) int64 {
	return int64(math.Ceil(p.eps1 * float64(m) * p.share[i]))
}

func (p *ringPicker) Pick(info *PickInfo) (Pick, error) {
	if len(p.ring) == 0 {
		return Pick{}, ErrNoEndpoint
	}
	h := info.Hash
	if !info.HasHash {
		h = info.Rand.Uint64()
	}
	start := p.search(h)
	m := p.total.Load() + 1
	n := len(p.ring)
	fallback := -1
	for k := 0; k < n; k++ {
		pt := p.ring[(start+k)%n]
		slot := int(pt.slot)
		e := p.eps[slot].Endpoint
		if len(info.Exclude) > 0 && info.Excluded(e) {
			continue
		}
		if fallback < 0 {
			fallback = slot
		}
		if e.inflight.Load() < p.capacity(slot, m) {
			return p.take(slot), nil
		}
	}
	// Only reachable with exclusions (the capacities sum to more than m):
	// take the first non-excluded endpoint on the ring.
	if fallback < 0 {
		return Pick{}, ErrNoEndpoint
	}
	return p.take(fallback), nil
}

// Take implements Picker.
func (p *ringPicker) Take(slot int) Pick { return p.take(slot) }

func (p *ringPicker) take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	p.total.Add(1)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *ringPicker) Done(pk Pick, info *DoneInfo) {
	pk.Endpoint.storeLoad(info.Load)
	end(pk.Endpoint)
	p.total.Add(-1)
}

// Home returns the endpoint a key maps to when nothing is loaded (the
// first endpoint clockwise), for tests and /status explanations.
func (p *ringPicker) Home(h uint64) *Endpoint {
	if len(p.ring) == 0 {
		return nil
	}
	i := p.search(h) % len(p.ring)
	return p.eps[p.ring[i].slot].Endpoint
}

// HashString hashes an affinity key. It is stable across processes and
// versions (FNV-1a 64 followed by the murmur3 finaliser for avalanche), so
// every proxy replica maps a key to the same ring position.
func HashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return fmix64(h)
}

// HashBytes is HashString for a byte slice.
func HashBytes(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return fmix64(h)
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

var _ Balancer = (*ringHash)(nil)
var _ Picker = (*ringPicker)(nil)
