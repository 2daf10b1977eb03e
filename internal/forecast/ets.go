package forecast

import (
	"math"
	"sort"
)

// ETS is additive Holt-Winters exponential smoothing with a damped trend
// (Holt 1957, Winters 1960; damping after Gardner & McKenzie 1985), the
// smoothing baseline: ETS(A,Ad,A) in the taxonomy of Hyndman et al. 2008,
// "Forecasting with Exponential Smoothing", ch. 2. A gap step is skipped
// by carrying the state forward without a correction.
type ETS struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	Gamma float64 `json:"gamma"`
	Phi   float64 `json:"phi"`
	// Period is the seasonal period in steps; 1 means no season.
	Period int `json:"period"`
}

// etsState holds the filtered states for every step so a forecast can
// start at any origin.
type etsState struct {
	l, b []float64 // level and trend after observing step t
	s    []float64 // s[t+m] is the seasonal state for step t; s[0:m] the initial ones
	m    int
	phi  float64
}

// etsInit derives the initial level, trend and seasonal states from the
// first two seasons (the classical decomposition start, Hyndman et al.
// 2008 §2.6.1), skipping gaps.
func etsInit(y []float64, m int) (l0, b0 float64, s0 []float64) {
	s0 = make([]float64, max(m, 1))
	if m < 2 {
		l0 = firstKnownMean(y, 0, min(len(y), 8))
		return l0, 0, s0
	}
	m1 := firstKnownMean(y, 0, m)
	m2 := firstKnownMean(y, m, 2*m)
	if math.IsNaN(m2) {
		m2 = m1
	}
	l0 = m1
	b0 = (m2 - m1) / float64(m)
	for j := 0; j < m; j++ {
		var sum float64
		n := 0
		for k, mean := range []float64{m1, m2} {
			i := j + k*m
			if i < len(y) && !math.IsNaN(y[i]) {
				sum += y[i] - mean
				n++
			}
		}
		if n > 0 {
			s0[j] = sum / float64(n)
		}
	}
	return l0, b0, s0
}

func firstKnownMean(y []float64, from, to int) float64 {
	var s float64
	n := 0
	for i := from; i < to && i < len(y); i++ {
		if !math.IsNaN(y[i]) {
			s += y[i]
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// filter runs the smoother over y. When keep is false only the sum of
// squared one-step errors over [0, upto) is returned (for fitting).
func (e ETS) filter(y []float64, upto int, keep bool) (sse float64, st *etsState) {
	m := max(e.Period, 1)
	l, b, s0 := etsInit(y, e.Period)
	if math.IsNaN(l) {
		l = 0
	}
	s := make([]float64, m+len(y))
	copy(s, s0)
	if keep {
		st = &etsState{l: make([]float64, len(y)), b: make([]float64, len(y)), s: s, m: m, phi: e.Phi}
	}
	seasonal := e.Period >= 2
	for t := 0; t < len(y); t++ {
		var sPrev float64
		if seasonal {
			sPrev = s[t]
		}
		pred := l + e.Phi*b + sPrev
		v := y[t]
		if math.IsNaN(v) {
			l, b = l+e.Phi*b, e.Phi*b
			s[t+m] = sPrev
		} else {
			err := v - pred
			if t < upto {
				sse += err * err
			}
			lPrev := l
			l = e.Alpha*(v-sPrev) + (1-e.Alpha)*(lPrev+e.Phi*b)
			b = e.Beta*(l-lPrev) + (1-e.Beta)*e.Phi*b
			if seasonal {
				s[t+m] = e.Gamma*(v-lPrev-e.Phi*b) + (1-e.Gamma)*sPrev
			}
		}
		if keep {
			st.l[t], st.b[t] = l, b
		}
	}
	return sse, st
}

// forecast returns the h-step forecast from origin t.
func (st *etsState) forecast(t, h int) float64 {
	damp := 0.0
	p := 1.0
	for i := 0; i < h; i++ {
		p *= st.phi
		damp += p
	}
	v := st.l[t] + damp*st.b[t]
	if st.m >= 2 {
		k := (h + st.m - 1) / st.m
		v += st.s[t+h-k*st.m+st.m]
	}
	return v
}

// fitETS chooses the smoothing parameters by minimising the in-sample
// one-step squared error over the training steps with Nelder–Mead, in a
// logistic parameterisation that keeps them admissible (0<α<1, 0<β<α,
// 0<γ<1−α, 0.8≤φ≤0.98).
func fitETS(y []float64, trainEnd, period int) ETS {
	if period >= 2 && trainEnd < 2*period {
		period = 1
	}
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	decode := func(x []float64) ETS {
		a := 0.001 + 0.998*sig(x[0])
		e := ETS{Alpha: a, Beta: a * sig(x[1]), Phi: 0.8 + 0.18*sig(x[3]), Period: period}
		if period >= 2 {
			e.Gamma = (1 - a) * sig(x[2])
		}
		return e
	}
	f := func(x []float64) float64 {
		sse, _ := decode(x).filter(y[:trainEnd], trainEnd, false)
		if math.IsNaN(sse) || math.IsInf(sse, 0) {
			return math.MaxFloat64
		}
		return sse
	}
	x0 := []float64{-1, -2, -2, 2}
	x, _ := nelderMead(f, x0, 0.8, 160)
	return decode(x)
}

// nelderMead minimises f from x0 with the simplex method of Nelder & Mead
// (1965) and the standard coefficients (reflection 1, expansion 2,
// contraction ½, shrink ½), for at most evals evaluations. Deterministic.
// (gonum's optimize would pull in a module this repository does not
// require, for a 40-line method.)
func nelderMead(f func([]float64) float64, x0 []float64, step float64, evals int) ([]float64, float64) {
	d := len(x0)
	type vert struct {
		x []float64
		f float64
	}
	simplex := make([]vert, d+1)
	for i := range simplex {
		x := append([]float64(nil), x0...)
		if i > 0 {
			x[i-1] += step
		}
		simplex[i] = vert{x, f(x)}
	}
	n := d + 1
	point := func(c []float64, a float64, w []float64) []float64 {
		out := make([]float64, d)
		for j := range out {
			out[j] = c[j] + a*(c[j]-w[j])
		}
		return out
	}
	for n < evals {
		sort.SliceStable(simplex, func(i, j int) bool { return simplex[i].f < simplex[j].f })
		if simplex[d].f-simplex[0].f <= 1e-10*(math.Abs(simplex[0].f)+1e-12) {
			break
		}
		c := make([]float64, d)
		for _, v := range simplex[:d] {
			for j := range c {
				c[j] += v.x[j] / float64(d)
			}
		}
		worst := simplex[d]
		xr := point(c, 1, worst.x)
		fr := f(xr)
		n++
		switch {
		case fr < simplex[0].f:
			xe := point(c, 2, worst.x)
			fe := f(xe)
			n++
			if fe < fr {
				simplex[d] = vert{xe, fe}
			} else {
				simplex[d] = vert{xr, fr}
			}
		case fr < simplex[d-1].f:
			simplex[d] = vert{xr, fr}
		default:
			a := 0.5
			if fr >= worst.f {
				a = -0.5
			}
			xc := point(c, a, worst.x)
			fc := f(xc)
			n++
			if fc < math.Min(fr, worst.f) {
				simplex[d] = vert{xc, fc}
				continue
			}
			for i := 1; i <= d; i++ {
				for j := range simplex[i].x {
					simplex[i].x[j] = simplex[0].x[j] + 0.5*(simplex[i].x[j]-simplex[0].x[j])
				}
				simplex[i].f = f(simplex[i].x)
				n++
			}
		}
	}
	sort.SliceStable(simplex, func(i, j int) bool { return simplex[i].f < simplex[j].f })
	return simplex[0].x, simplex[0].f
}
