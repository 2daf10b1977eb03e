package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestStackWeightsAreAConvexCombination(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	n := 2000
	P := make([][]float64, n)
	y := make([]float64, n)
	for i := range P {
		truth := 10 + 5*math.Sin(float64(i)/20)
		a := truth + rng.NormFloat64()      // good
		b := truth + 3*rng.NormFloat64()    // noisy
		d := -truth + 0.1*rng.NormFloat64() // anti-correlated: must get 0
		P[i] = []float64{a, b, d}
		y[i] = truth
	}
	w := StackWeights(P, y)
	var s float64
	for _, v := range w {
		if v < 0 {
			t.Errorf("negative weight %v", w)
		}
		s += v
	}
	if math.Abs(s-1) > 1e-9 {
		t.Errorf("weights sum to %v", s)
	}
	if w[0] < 0.7 || w[2] > 0.01 {
		t.Errorf("weights %v: the good member should dominate, the anti-correlated one get (almost) nothing", w)
	}
	// An exact mixture is recovered.
	for i := range P {
		P[i] = []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
		y[i] = 0.3*P[i][0] + 0.7*P[i][2]
	}
	w = StackWeights(P, y)
	if math.Abs(w[0]-0.3) > 1e-6 || w[1] > 1e-6 || math.Abs(w[2]-0.7) > 1e-6 {
		t.Errorf("mixture weights %v, want [0.3 0 0.7]", w)
	}
	// No usable rows: equal weights.
	e := StackWeights([][]float64{{math.NaN(), 1}}, []float64{1})
	if e[0] != 0.5 || e[1] != 0.5 {
		t.Errorf("fallback %v", e)
	}
}
