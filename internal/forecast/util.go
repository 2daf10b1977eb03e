package forecast

import (
	"math"
	"math/rand/v2"
	"sort"
)

// newRand returns a seeded generator; every random choice in this package
// goes through one, so the same seed gives the same model bit for bit.
func newRand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream*0x9e3779b97f4a7c15+1))
}

// quantile returns the q-quantile of xs (sorted in place; linear
// interpolation between order statistics). NaN for an empty slice.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sort.Float64s(xs)
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i]*(1-f) + xs[i+1]*f
}

// prefix holds prefix sums of values and of known-value counts so a
// window mean that skips gaps costs O(1).
type prefix struct {
	sum []float64
	cnt []int32
}

func newPrefix(y []float64) prefix {
	p := prefix{sum: make([]float64, len(y)+1), cnt: make([]int32, len(y)+1)}
	for i, v := range y {
		p.sum[i+1], p.cnt[i+1] = p.sum[i], p.cnt[i]
		if !math.IsNaN(v) {
			p.sum[i+1] += v
			p.cnt[i+1]++
		}
	}
	return p
}

// mean of the known values in [a, b] (clamped to the series); NaN if none.
func (p prefix) mean(a, b int) float64 {
	a = max(a, 0)
	b = min(b, len(p.sum)-2)
	if b < a {
		return math.NaN()
	}
	c := p.cnt[b+1] - p.cnt[a]
	if c == 0 {
		return math.NaN()
	}
	return (p.sum[b+1] - p.sum[a]) / float64(c)
}

func (p prefix) count(a, b int) int {
	a = max(a, 0)
	b = min(b, len(p.sum)-2)
	if b < a {
		return 0
	}
	return int(p.cnt[b+1] - p.cnt[a])
}
