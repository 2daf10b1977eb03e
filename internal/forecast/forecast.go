package forecast

import (
	"math"
	"sort"
	"time"
)

// Forecasting: the next horizons from the end of each series, with the
// bands and the drivers behind them.

// Forecast is a pushed forecast of one series from its last step: per
// horizon the point forecast, the upper band and the features that drove
// it.
type Forecast struct {
	Series   string            `json:"series"`
	Origin   time.Time         `json:"origin"`
	Step     time.Duration     `json:"step"`
	Horizons []HorizonForecast `json:"horizons"`
}

// HorizonForecast is the forecast path over one horizon.
type HorizonForecast struct {
	Steps int       `json:"steps"`
	Times []string  `json:"times"`
	Point []float64 `json:"point"`
	Upper []float64 `json:"upper"`
	// Drivers are the features with the largest attributed effect on the
	// trees' forecast over the path (Saabas contributions), in the
	// series' unit.
	Drivers []Driver `json:"drivers"`
}

// Driver is one feature's attributed effect.
type Driver struct {
	Feature string  `json:"feature"`
	Effect  float64 `json:"effect"`
}

// Forecast forecasts every input from its last step (the origin is the
// last index whose value is known).
func (m *Model) Forecast(inputs []Input) ([]Forecast, error) {
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	var out []Forecast
	for si, b := range bs {
		_, mi := m.spec(b.sp.Name)
		t := len(b.y) - 1
		for t > 0 && math.IsNaN(b.y[t]) {
			t--
		}
		mp := m.predict(b, m.ETS[mi], []int{t})
		f := Forecast{Series: b.sp.Name, Origin: inputs[si].Series.Time(t), Step: b.sp.Step}
		row := make([]float64, b.nf)
		contrib := make([]float64, b.nf)
		for hi, H := range m.Options.Horizons {
			hf := HorizonForecast{Steps: H}
			clear(contrib)
			for h := 1; h <= H; h++ {
				i := h - 1
				e := m.ensemble(mp, hi, i)
				hf.Times = append(hf.Times, inputs[si].Series.Time(t+h).Format(time.RFC3339))
				hf.Point = append(hf.Point, e)
				hf.Upper = append(hf.Upper, math.Max(e, e+mp.upperQ[i]+m.Band[hi]*b.sp.Scale))
				b.row(t, h, row)
				m.GBDT.Contributions(row, contrib)
			}
			idx := make([]int, b.nf)
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, c int) bool { return math.Abs(contrib[idx[a]]) > math.Abs(contrib[idx[c]]) })
			for _, i := range idx[:min(5, len(idx))] {
				hf.Drivers = append(hf.Drivers, Driver{Feature: m.Features[i], Effect: contrib[i] / float64(H) * b.sp.Scale})
			}
			f.Horizons = append(f.Horizons, hf)
		}
		out = append(out, f)
	}
	return out, nil
}

// PathAtLead returns, for each step in [from, to), the forecast made lead
// steps earlier by each model (members, then ensemble) using horizon hi's
// weights: the "actual vs forecast" line of a report.
func (m *Model) PathAtLead(in Input, hi, lead, from, to int) (actual []float64, preds map[string][]float64, err error) {
	bs, err := m.builders([]Input{in})
	if err != nil {
		return nil, nil, err
	}
	b := bs[0]
	_, mi := m.spec(b.sp.Name)
	var origins []int
	for j := from; j < to; j++ {
		if j-lead >= 0 {
			origins = append(origins, j-lead)
		}
	}
	mp := m.predictLeads(b, m.ETS[mi], origins, lead, lead)
	preds = map[string][]float64{}
	for _, t := range origins {
		actual = append(actual, b.y[t+lead])
	}
	for k, name := range m.Members {
		for oi := range origins {
			preds[name] = append(preds[name], mp.p[k][oi*m.Hmax+lead-1])
		}
	}
	for oi := range origins {
		i := oi*m.Hmax + lead - 1
		e := m.ensemble(mp, hi, i)
		preds[Ensemble] = append(preds[Ensemble], e)
		preds["upper"] = append(preds["upper"], e+mp.upperQ[i]+m.Band[hi]*b.sp.Scale)
	}
	return actual, preds, nil
}
