package balance

import (
	"fmt"
	"math"
	"sync/atomic"
)

// MaglevOptions are the options of maglev.
type MaglevOptions struct {
	// TableSize is the lookup table size, a prime much larger than the
	// number of endpoints (the paper suggests 100×). Default 65537.
	TableSize int `yaml:"table_size"`
	// Epsilon bounds the load as in ring_hash. Default 0.25.
	Epsilon float64 `yaml:"epsilon"`
}

// Validate fills defaults and checks ranges.
func (o *MaglevOptions) Validate() error {
	if o.TableSize == 0 {
		o.TableSize = 65537
	}
	if o.Epsilon == 0 {
		o.Epsilon = 0.25
	}
	if o.TableSize < 7 || o.TableSize > 5_000_011 || !isPrime(o.TableSize) {
		return fmt.Errorf("table_size: must be a prime between 7 and 5000011 (e.g. 65537), got %d", o.TableSize)
	}
	if !(o.Epsilon > 0) || math.IsInf(o.Epsilon, 0) {
		return fmt.Errorf("epsilon: must be a finite number > 0 (e.g. 0.25), got %v", o.Epsilon)
	}
	return nil
}

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func init() {
	Register(Policy{
		Name: "maglev",
		Doc:  "Maglev consistent hashing (Eisenbud et al., NSDI'16) with bounded loads (table_size, epsilon)",
		New: func(decode func(any) error) (func() Balancer, error) {
			var o MaglevOptions
			if err := decodeInto(decode, &o); err != nil {
				return nil, err
			}
			if err := o.Validate(); err != nil {
				return nil, err
			}
			return func() Balancer { return &maglev{opts: o, total: new(atomic.Int64)} }, nil
		},
	})
}

// maglev builds Google Maglev's lookup table: every endpoint has a
// permutation of the table's slots given by (offset + j·skip) mod M, with
// offset and skip from two hashes of its ID, and endpoints take turns
// claiming their next free preferred slot until the table is full. Turns are
// weighted: an endpoint of weight w claims w/max(w) slots per round on
// average (Envoy's weighted Maglev does the same). The table gives O(1)
// lookups and minimal disruption when endpoints come and go.
//
// Bounded load (Mirrokni et al., as in ring_hash): when the table's
// endpoint already has ceil((1+ε)·m·share) requests in flight, the lookup
// moves on to the following table entries, which belong to other endpoints
// in a hash-determined order shared by every proxy replica.
type maglev struct {
	opts  MaglevOptions
	total *atomic.Int64
	last  *maglevPicker
}

func (b *maglev) Update(eps []Weighted) Picker {
	p := &maglevPicker{eps: eps, eps1: 1 + b.opts.Epsilon, total: b.total, share: make([]float64, len(eps))}
	var sum, maxW float64
	live := 0
	for _, w := range eps {
		if w.Weight > 0 {
			sum += w.Weight
			live++
			if w.Weight > maxW {
				maxW = w.Weight
			}
		}
	}
	if live == 0 {
		b.last = p
		return p
	}
	for i, w := range eps {
		if w.Weight > 0 {
			p.share[i] = w.Weight / sum
		}
	}
	m := b.opts.TableSize
	offset := make([]int, len(eps))
	skip := make([]int, len(eps))
	next := make([]int, len(eps))
	credit := make([]float64, len(eps))
	for i, w := range eps {
		offset[i] = int(HashString(w.Endpoint.ID+"#maglev-offset") % uint64(m))
		skip[i] = int(HashString(w.Endpoint.ID+"#maglev-skip")%uint64(m-1)) + 1
	}
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for filled < m {
		for i, w := range eps {
			if w.Weight <= 0 {
				continue
			}
			credit[i] += w.Weight / maxW
			for credit[i] >= 1 && filled < m {
				credit[i]--
				// Claim this endpoint's next free preferred slot.
				for {
					c := (offset[i] + next[i]*skip[i]) % m
					next[i]++
					if table[c] < 0 {
						table[c] = int32(i)
						filled++
						break
					}
				}
			}
		}
	}
	p.table = table
	b.last = p
	return p
}

func (b *maglev) Describe() any {
	d := map[string]any{"policy": "maglev", "table_size": b.opts.TableSize, "epsilon": b.opts.Epsilon, "in_flight": b.total.Load()}
	if b.last != nil && len(b.last.table) > 0 {
		owned := map[string]int{}
		for _, s := range b.last.table {
			owned[b.last.eps[s].Endpoint.ID]++
		}
		d["table_entries"] = owned
	}
	return d
}

type maglevPicker struct {
	eps   []Weighted
	share []float64
	table []int32
	eps1  float64
	total *atomic.Int64
}

func (p *maglevPicker) Pick(info *PickInfo) (Pick, error) {
	m := len(p.table)
	if m == 0 {
		return Pick{}, ErrNoEndpoint
	}
	h := info.Hash
	if !info.HasHash {
		h = info.Rand.Uint64()
	}
	start := int(h % uint64(m))
	load := p.total.Load() + 1
	fallback := -1
	// Distinct endpoints appear within a few entries; bound the walk.
	limit := m
	if limit > 4096 {
		limit = 4096
	}
	for k := 0; k < limit; k++ {
		slot := int(p.table[(start+k)%m])
		e := p.eps[slot].Endpoint
		if len(info.Exclude) > 0 && info.Excluded(e) {
			continue
		}
		if fallback < 0 {
			fallback = slot
		}
		if float64(e.inflight.Load()) < math.Ceil(p.eps1*float64(load)*p.share[slot]) {
			return p.Take(slot), nil
		}
	}
	if fallback < 0 {
		for i := range p.eps {
			if p.share[i] > 0 && !info.Excluded(p.eps[i].Endpoint) {
				return p.Take(i), nil
			}
		}
		return Pick{}, ErrNoEndpoint
	}
	return p.Take(fallback), nil
}

func (p *maglevPicker) Take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	p.total.Add(1)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *maglevPicker) Done(pk Pick, info *DoneInfo) {
	pk.Endpoint.storeLoad(info.Load)
	end(pk.Endpoint)
	p.total.Add(-1)
}

var _ Balancer = (*maglev)(nil)
var _ Picker = (*maglevPicker)(nil)
