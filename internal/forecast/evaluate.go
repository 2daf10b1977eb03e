package forecast

import (
	"math"
	"time"
)

// Rolling-origin evaluation: MASE and sMAPE per series and horizon, on the
// test segment or on given windows.

// SeriesEval is the rolling-origin evaluation of one series.
type SeriesEval struct {
	Series string `json:"series"`
	// Horizons holds per horizon (same order as Options.Horizons) the
	// metrics of every member and the ensemble.
	Horizons []HorizonEval `json:"horizons"`
}

// HorizonEval holds the metrics of each model at one horizon.
type HorizonEval struct {
	Steps   int                `json:"steps"`
	Origins int                `json:"origins"`
	Models  map[string]Metrics `json:"models"`
	Weights map[string]float64 `json:"weights"`
}

// Evaluate scores the model on a segment of each input by rolling-origin
// evaluation: from every origin (at most MaxOrigins, evenly spaced) every
// model forecasts leads 1..Hmax, scored per horizon over leads 1..H.
func (m *Model) Evaluate(inputs []Input, seg Segment) ([]SeriesEval, error) {
	return m.evaluate(inputs, func(b *builder) []int { return b.sp.origins(seg, m.Hmax, m.originsPerSeries()) })
}

// Window is a time range [From, To) whose steps are forecast targets.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// TestWindow is the held-out test range of a series of the model.
func (m *Model) TestWindow(series string) (Window, bool) {
	sp, _ := m.spec(series)
	if sp == nil {
		return Window{}, false
	}
	return Window{From: sp.Start.Add(time.Duration(sp.ValidEnd) * sp.Step), To: sp.Start.Add(time.Duration(sp.N) * sp.Step)}, true
}

// EvaluateWindows scores the model like Evaluate, on the targets inside
// each series' window, so two models (a candidate and the pushed one)
// are compared on exactly the same forecasts.
func (m *Model) EvaluateWindows(inputs []Input, windows map[string]Window) ([]SeriesEval, error) {
	return m.evaluate(inputs, func(b *builder) []int {
		w, ok := windows[b.sp.Name]
		if !ok {
			return nil
		}
		a := int(math.Ceil(float64(w.From.Sub(b.sp.Start)) / float64(b.sp.Step)))
		z := int(w.To.Sub(b.sp.Start) / b.sp.Step)
		z = min(z, len(b.y))
		return originRange(max(a-1, 0), z-1-m.Hmax, m.originsPerSeries())
	})
}

func (m *Model) evaluate(inputs []Input, originsOf func(*builder) []int) ([]SeriesEval, error) {
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	out := make([]SeriesEval, len(bs))
	for si, b := range bs {
		_, mi := m.spec(b.sp.Name)
		origins := originsOf(b)
		mp := m.predict(b, m.ETS[mi], origins)
		se := SeriesEval{Series: b.sp.Name}
		for hi, H := range m.Options.Horizons {
			accs := make([]acc, len(m.Members)+1)
			for k := range accs {
				accs[k].scaleMASE = b.sp.MASEScale
			}
			for oi, t := range origins {
				for h := 1; h <= H; h++ {
					i := oi*m.Hmax + h - 1
					yv := b.y[t+h]
					for k := range m.Members {
						accs[k].add(yv, mp.p[k][i])
					}
					e := m.ensemble(mp, hi, i)
					accs[len(m.Members)].add(yv, e)
					accs[len(m.Members)].addUpper(yv, e+mp.upperQ[i]+m.Band[hi]*b.sp.Scale)
				}
			}
			he := HorizonEval{Steps: H, Origins: len(origins), Models: map[string]Metrics{}, Weights: map[string]float64{}}
			for k, name := range m.Members {
				he.Models[name] = accs[k].metrics()
				he.Weights[name] = m.Weights[hi][k]
			}
			he.Models[Ensemble] = accs[len(m.Members)].metrics()
			se.Horizons = append(se.Horizons, he)
		}
		out[si] = se
	}
	return out, nil
}
