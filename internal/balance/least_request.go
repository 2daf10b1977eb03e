package balance

import (
	"fmt"
	"math"
)

// LeastRequestOptions are the options of least_request.
type LeastRequestOptions struct {
	// ChoiceCount is how many random candidates are compared (power of d
	// choices). Default 2.
	ChoiceCount int `yaml:"choice_count"`
	// ActiveRequestBias is the exponent on active requests in the score
	// active^bias / weight. 0 ignores load (plain weighted random); 1 is
	// Envoy's default.
	ActiveRequestBias *float64 `yaml:"active_request_bias"`
}

func init() {
	Register(Policy{
		Name: "least_request",
		Doc:  "power-of-two-choices on active requests, Envoy style (choice_count, active_request_bias)",
		New: func(decode func(any) error) (func() Balancer, error) {
			var o LeastRequestOptions
			if err := decodeInto(decode, &o); err != nil {
				return nil, err
			}
			if o.ChoiceCount == 0 {
				o.ChoiceCount = 2
			}
			if o.ChoiceCount < 2 || o.ChoiceCount > 16 {
				return nil, fmt.Errorf("choice_count: must be between 2 and 16, got %d", o.ChoiceCount)
			}
			bias := 1.0
			if o.ActiveRequestBias != nil {
				bias = *o.ActiveRequestBias
			}
			if bias < 0 || math.IsNaN(bias) || math.IsInf(bias, 0) {
				return nil, fmt.Errorf("active_request_bias: must be a finite number >= 0, got %v", bias)
			}
			return func() Balancer { return &leastRequest{choices: o.ChoiceCount, bias: bias} }, nil
		},
	})
}

// leastRequest follows Envoy's least_request load balancer: with equal
// weights it samples choice_count endpoints at random and takes the one with
// the fewest active requests (Mitzenmacher's power of two choices); with
// unequal weights Envoy scores weight / (active+1)^bias and schedules with
// EDF under a lock. We keep the pick lock-free instead: candidates are
// sampled in proportion to weight (Vose's alias table) and the one with the
// lowest active^bias / weight wins, ties to the first sample. An idle pool
// is thus split exactly by weight (all scores 0: the weighted sample
// decides), and under load active requests settle in proportion to weight
// (bias 0: plain weighted random).
type leastRequest struct {
	choices int
	bias    float64
}

func (b *leastRequest) Update(eps []Weighted) Picker {
	p := &lrPicker{eps: eps, choices: b.choices, bias: b.bias, invW: make([]float64, len(eps))}
	equal := true
	for i, w := range eps {
		if w.Weight > 0 {
			p.invW[i] = 1 / w.Weight
		} else {
			p.invW[i] = math.Inf(1) // never preferred
		}
		if w.Weight != eps[0].Weight {
			equal = false
		}
	}
	if !equal {
		p.alias = newAlias(eps)
	}
	return p
}

func (b *leastRequest) Describe() any {
	return map[string]any{"policy": "least_request", "choice_count": b.choices, "active_request_bias": b.bias}
}

type lrPicker struct {
	eps     []Weighted
	invW    []float64
	alias   *aliasTable // nil when all weights are equal
	choices int
	bias    float64
}

func (p *lrPicker) score(i int) float64 {
	a := float64(p.eps[i].Endpoint.inflight.Load())
	switch p.bias {
	case 0:
		return 0
	case 1:
	default:
		a = math.Pow(a, p.bias)
	}
	if math.IsInf(p.invW[i], 1) {
		return math.Inf(1) // weight 0
	}
	if p.alias != nil {
		a *= p.invW[i]
	}
	return a
}

func (p *lrPicker) Pick(info *PickInfo) (Pick, error) {
	n := len(p.eps)
	if n == 0 {
		return Pick{}, ErrNoEndpoint
	}
	var buf [16]int
	best := -1
	bestScore := 0.0
	for _, i := range sampleCandidates(info.Rand, n, p.alias, buf[:0:p.choices]) {
		if len(info.Exclude) > 0 && info.Excluded(p.eps[i].Endpoint) {
			continue
		}
		if s := p.score(i); best < 0 || s < bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		// Every sample was excluded: fall back to a scan for the best
		// endpoint not yet tried.
		for i := range p.eps {
			if info.Excluded(p.eps[i].Endpoint) {
				continue
			}
			if s := p.score(i); best < 0 || s < bestScore {
				best, bestScore = i, s
			}
		}
		if best < 0 {
			return Pick{}, ErrNoEndpoint
		}
	}
	e := p.eps[best].Endpoint
	begin(e)
	return Pick{Endpoint: e, Slot: best}, nil
}

func (p *lrPicker) Take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *lrPicker) Done(pk Pick, info *DoneInfo) {
	pk.Endpoint.storeLoad(info.Load)
	end(pk.Endpoint)
}

// aliasTable samples index i with probability w_i / Σw in O(1) (Vose 1991).
type aliasTable struct {
	prob  []uint32 // threshold scaled to 2^32
	alias []int32
}

func newAlias(eps []Weighted) *aliasTable {
	n := len(eps)
	t := &aliasTable{prob: make([]uint32, n), alias: make([]int32, n)}
	var sum float64
	for _, w := range eps {
		if w.Weight > 0 {
			sum += w.Weight
		}
	}
	scaled := make([]float64, n)
	small := make([]int, 0, n)
	large := make([]int, 0, n)
	for i, w := range eps {
		x := 0.0
		if w.Weight > 0 && sum > 0 {
			x = w.Weight / sum * float64(n)
		} else if sum == 0 {
			x = 1
		}
		scaled[i] = x
		if x < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s := small[len(small)-1]
		small = small[:len(small)-1]
		l := large[len(large)-1]
		t.prob[s] = toThreshold(scaled[s])
		t.alias[s] = int32(l)
		scaled[l] = scaled[l] + scaled[s] - 1
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		t.prob[i] = math.MaxUint32
		t.alias[i] = int32(i)
	}
	return t
}

func toThreshold(x float64) uint32 {
	if x >= 1 {
		return math.MaxUint32
	}
	return uint32(x * (1 << 32))
}

// sample uses the high 32 bits to choose a column and the low 32 bits to
// choose between the column's own index and its alias.
func (t *aliasTable) sample(r uint64) int {
	i := uniform(uint32(r>>32), len(t.prob))
	if uint32(r) < t.prob[i] {
		return i
	}
	return int(t.alias[i])
}

var _ Balancer = (*leastRequest)(nil)
var _ Picker = (*lrPicker)(nil)
