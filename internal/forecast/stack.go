package forecast

import (
	"math"

	"gonum.org/v1/gonum/mat"
)

// StackWeights fits the stacking weights of an ensemble (Wolpert 1992,
// "Stacked generalization"; Breiman 1996, "Stacked regressions", who
// showed the weights should be non-negative): minimise ‖P w − y‖² subject
// to w ≥ 0 and Σw = 1, where P holds the members' forecasts on validation
// windows (rows) and y the actuals. With a handful of members the exact
// solution is found by trying every support set: on a support S the
// equality-constrained least squares is one KKT system (gonum's solver),
// and the best feasible (all weights ≥ 0) one wins. Rows with a missing
// actual or forecast are skipped; with too few rows the weights are equal.
func StackWeights(P [][]float64, y []float64) []float64 {
	k := 0
	if len(P) > 0 {
		k = len(P[0])
	}
	eq := make([]float64, k)
	for i := range eq {
		eq[i] = 1 / float64(k)
	}
	if k == 0 || k > 12 {
		return eq
	}
	// Normal equations: Q = PᵀP, c = Pᵀy, on rows where all are known.
	Q := mat.NewSymDense(k, nil)
	c := make([]float64, k)
	n := 0
	var yy float64
	for i, r := range P {
		ok := !math.IsNaN(y[i])
		for _, v := range r {
			ok = ok && !math.IsNaN(v)
		}
		if !ok {
			continue
		}
		n++
		yy += y[i] * y[i]
		for a := 0; a < k; a++ {
			c[a] += r[a] * y[i]
			for b := a; b < k; b++ {
				Q.SetSym(a, b, Q.At(a, b)+r[a]*r[b])
			}
		}
	}
	if n < k {
		return eq
	}
	best, bestObj := eq, math.Inf(1)
	objective := func(w []float64) float64 {
		var o float64
		for a := 0; a < k; a++ {
			o -= 2 * c[a] * w[a]
			for b := 0; b < k; b++ {
				o += w[a] * Q.At(a, b) * w[b]
			}
		}
		return o + yy
	}
	for mask := 1; mask < 1<<k; mask++ {
		var S []int
		for a := 0; a < k; a++ {
			if mask&(1<<a) != 0 {
				S = append(S, a)
			}
		}
		m := len(S)
		K := mat.NewDense(m+1, m+1, nil)
		rhs := mat.NewVecDense(m+1, nil)
		for i, a := range S {
			for j, b := range S {
				K.Set(i, j, Q.At(a, b))
			}
			K.Set(i, m, 1)
			K.Set(m, i, 1)
			rhs.SetVec(i, c[a])
		}
		rhs.SetVec(m, 1)
		var sol mat.VecDense
		if err := sol.SolveVec(K, rhs); err != nil {
			continue
		}
		w := make([]float64, k)
		feasible := true
		for i, a := range S {
			w[a] = sol.AtVec(i)
			if w[a] < -1e-12 || math.IsNaN(w[a]) {
				feasible = false
			}
			w[a] = math.Max(0, w[a])
		}
		if !feasible {
			continue
		}
		// Strictly better by a relative margin, so ties (and rounding)
		// keep the earlier, smaller support: deterministic and sparse.
		if o := objective(w); math.IsInf(bestObj, 1) || o < bestObj-1e-12*math.Abs(bestObj) {
			best, bestObj = w, o
		}
	}
	var s float64
	for _, v := range best {
		s += v
	}
	if !(s > 0) {
		return eq
	}
	for i := range best {
		best[i] /= s
	}
	return best
}
