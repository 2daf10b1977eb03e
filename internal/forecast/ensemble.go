package forecast

import (
	"math"
)

// The stacking ensemble: every member's predictions at a set of origins,
// and the weights fitted on the validation segment.

// memberPreds are the members' forecasts for a list of origins: p[member]
// [origin*Hmax + lead-1], in the series' unit; NaN where a member cannot
// forecast.
type memberPreds struct {
	counts  bool // the series holds counts (see SeriesSpec.Counts)
	origins []int
	p       [][]float64
	upperQ  []float64 // GBDT quantile minus GBDT point, ≥ 0
}

// predict computes every member's forecast from each origin.
func (m *Model) predict(b *builder, ets ETS, origins []int) *memberPreds {
	return m.predictLeads(b, ets, origins, 1, m.Hmax)
}

// predictLeads computes the forecasts for leads [h0, h1] only (others
// stay zero).
func (m *Model) predictLeads(b *builder, ets ETS, origins []int, h0, h1 int) *memberPreds {
	H := m.Hmax
	mp := &memberPreds{counts: b.sp.Counts, origins: origins, p: make([][]float64, len(m.Members)), upperQ: make([]float64, len(origins)*H)}
	for k := range mp.p {
		mp.p[k] = make([]float64, len(origins)*H)
	}
	_, st := ets.filter(b.y, 0, true)
	row := make([]float64, b.nf)
	var win []float64
	if m.LSTM != nil {
		win = make([]float64, m.Options.LSTM.withDefaults().Window*lstmInputs)
	}
	var cache *lstmCache
	for oi, t := range origins {
		anom := b.anomaly(t)
		var lout []float64
		if m.LSTM != nil {
			w := len(win) / lstmInputs
			if cache == nil {
				cache = m.LSTM.newCache(w)
			}
			b.seq(t, w, win)
			lout = m.LSTM.forward(win, w, cache)
		}
		for h := h0; h <= h1; h++ {
			i := oi*H + h - 1
			ref := b.row(t, h, row)
			g := m.GBDT.Predict(row)
			for k, name := range m.Members {
				var v float64
				switch name {
				case SeasonalNaive:
					v = seasonalNaive(b.y, t, h, b.sp.Period)
				case Smoothing:
					v = st.forecast(t, h)
				case Boosted:
					v = ref + b.sp.Scale*g
				case Recurrent:
					v = b.prof[t+h] + anom + b.sp.Scale*lout[h-1]
				}
				v = math.Max(0, v)
				if mp.counts && v < math.Ln2 {
					v = 0 // see ensemble: the count median
				}
				mp.p[k][i] = v
			}
			if m.Upper != nil {
				mp.upperQ[i] = b.sp.Scale * math.Max(0, m.Upper.Predict(row)-g)
			}
		}
	}
	return mp
}

// ensemble combines member forecasts with horizon hi's weights; NaN
// members are replaced by the seasonal-naive forecast.
func (m *Model) ensemble(mp *memberPreds, hi, i int) float64 {
	w := m.Weights[hi]
	var s float64
	for k := range m.Members {
		v := mp.p[k][i]
		if math.IsNaN(v) {
			v = mp.p[0][i]
		}
		s += w[k] * v
	}
	// Count data: below ln 2 the median of a Poisson count with this
	// mean is 0, and the median is what minimises absolute error; it
	// also keeps sMAPE from scoring 200% for every tiny non-zero forecast
	// of an empty step.
	if mp.counts && s < math.Ln2 {
		return 0
	}
	return s
}

// fitEnsemble fits the stacking weights and the band per horizon on the
// validation windows of every series (errors scaled by each series'
// scale, so large series do not dominate).
func (m *Model) fitEnsemble(bs []*builder) {
	o := m.Options
	type cached struct {
		b  *builder
		mp *memberPreds
	}
	var cs []cached
	for _, b := range bs {
		_, mi := m.spec(b.sp.Name)
		origins := b.sp.origins(Valid, m.Hmax, m.originsPerSeries())
		cs = append(cs, cached{b, m.predict(b, m.ETS[mi], origins)})
	}
	m.Weights = make([][]float64, len(o.Horizons))
	m.Band = make([]float64, len(o.Horizons))
	for hi, H := range o.Horizons {
		var P [][]float64
		var y []float64
		for _, c := range cs {
			for oi, t := range c.mp.origins {
				for h := 1; h <= H; h++ {
					i := oi*m.Hmax + h - 1
					r := make([]float64, len(m.Members))
					for k := range m.Members {
						r[k] = c.mp.p[k][i] / c.b.sp.Scale
					}
					P = append(P, r)
					y = append(y, c.b.y[t+h]/c.b.sp.Scale)
				}
			}
		}
		m.Weights[hi] = StackWeights(P, y)
		var scores []float64
		for _, c := range cs {
			for oi, t := range c.mp.origins {
				for h := 1; h <= H; h++ {
					i := oi*m.Hmax + h - 1
					yv := c.b.y[t+h]
					if math.IsNaN(yv) {
						continue
					}
					up := m.ensemble(c.mp, hi, i) + c.mp.upperQ[i]
					scores = append(scores, (yv-up)/c.b.sp.Scale)
				}
			}
		}
		if len(scores) > 0 {
			// The finite-sample quantile ⌈(n+1)α⌉/n of split conformal
			// prediction (Lei et al. 2018).
			n := float64(len(scores))
			q := math.Min(1, math.Ceil((n+1)*o.UpperAlpha)/n)
			m.Band[hi] = quantile(scores, q)
		}
	}
}
