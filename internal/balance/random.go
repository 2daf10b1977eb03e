package balance

func init() {
	Register(Policy{
		Name: "random",
		Doc:  "weighted random (uniform when weights are equal); the baseline that ignores load",
		New: func(decode func(any) error) (func() Balancer, error) {
			var opts struct{}
			if err := decodeInto(decode, &opts); err != nil {
				return nil, err
			}
			return func() Balancer { return randomBalancer{} }, nil
		},
	})
}

// randomBalancer picks in proportion to weight, independently of load.
type randomBalancer struct{}

func (randomBalancer) Update(eps []Weighted) Picker {
	p := &randomPicker{eps: eps}
	if len(eps) > 0 && !equalWeights(eps) {
		p.alias = newAlias(eps)
	}
	return p
}

func (randomBalancer) Describe() any { return map[string]any{"policy": "random"} }

type randomPicker struct {
	eps   []Weighted
	alias *aliasTable
}

func (p *randomPicker) sample(r uint64) int {
	if p.alias != nil {
		return p.alias.sample(r)
	}
	return uniform(uint32(r>>32), len(p.eps))
}

func (p *randomPicker) Pick(info *PickInfo) (Pick, error) {
	if len(p.eps) == 0 {
		return Pick{}, ErrNoEndpoint
	}
	// A few tries to avoid excluded endpoints, then a scan.
	for try := 0; try < 4; try++ {
		i := p.sample(info.Rand.Uint64())
		if len(info.Exclude) == 0 || !info.Excluded(p.eps[i].Endpoint) {
			return p.Take(i), nil
		}
	}
	start := uniform(uint32(info.Rand.Uint64()>>32), len(p.eps))
	for k := range p.eps {
		i := (start + k) % len(p.eps)
		if !info.Excluded(p.eps[i].Endpoint) {
			return p.Take(i), nil
		}
	}
	return Pick{}, ErrNoEndpoint
}

func (p *randomPicker) Take(slot int) Pick {
	e := p.eps[slot].Endpoint
	begin(e)
	return Pick{Endpoint: e, Slot: slot}
}

func (p *randomPicker) Done(pk Pick, info *DoneInfo) {
	pk.Endpoint.storeLoad(info.Load)
	end(pk.Endpoint)
}

// equalWeights reports whether every endpoint has the same weight.
func equalWeights(eps []Weighted) bool {
	for _, w := range eps[1:] {
		if w.Weight != eps[0].Weight {
			return false
		}
	}
	return true
}

var _ Balancer = randomBalancer{}
var _ Picker = (*randomPicker)(nil)
