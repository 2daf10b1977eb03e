package forecast

import (
	"encoding/json"
	"math"
)

// Metrics are the accuracy of one model on one series and horizon over a
// rolling-origin evaluation: every origin in the segment forecasts leads
// 1..H, and errors are averaged over all (origin, lead) pairs with a known
// actual, as in the M4 competition (Makridakis et al. 2020).
type Metrics struct {
	// MASE is the mean absolute error divided by the in-sample MAE of the
	// seasonal-naive forecast (Hyndman & Koehler 2006): below 1 beats
	// the seasonal-naive method's in-sample one-period error.
	MASE float64 `json:"mase"`
	// SMAPE is the symmetric mean absolute percentage error, 0–200 %
	// (200·|y−ŷ|/(|y|+|ŷ|), a 0/0 pair counts as 0).
	SMAPE float64 `json:"smape"`
	// MAE is in the series' own unit.
	MAE float64 `json:"mae"`
	// Coverage is the share of actuals at or below the upper band, when
	// the model has one.
	Coverage *float64 `json:"coverage,omitempty"`
	// N is the number of (origin, lead) pairs scored.
	N int `json:"n"`
}

// acc accumulates errors for Metrics.
type acc struct {
	ae, sm     float64
	n          int
	cov, ncov  int
	scaleMASE  float64
	hasCovered bool
}

func (a *acc) add(y, f float64) {
	if math.IsNaN(y) || math.IsNaN(f) {
		return
	}
	d := math.Abs(y - f)
	a.ae += d
	if den := math.Abs(y) + math.Abs(f); den > 0 {
		a.sm += 200 * d / den
	}
	a.n++
}

func (a *acc) addUpper(y, u float64) {
	if math.IsNaN(y) || math.IsNaN(u) {
		return
	}
	a.hasCovered = true
	a.ncov++
	if y <= u {
		a.cov++
	}
}

func (a *acc) metrics() Metrics {
	m := Metrics{N: a.n, MASE: math.NaN(), SMAPE: math.NaN(), MAE: math.NaN()}
	if a.n > 0 {
		m.MAE = a.ae / float64(a.n)
		m.MASE = m.MAE / a.scaleMASE
		m.SMAPE = a.sm / float64(a.n)
	}
	if a.hasCovered && a.ncov > 0 {
		c := float64(a.cov) / float64(a.ncov)
		m.Coverage = &c
	}
	return m
}

// nullable turns NaN and ±Inf into a JSON null.
func nullable(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func fromNullable(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

type metricsJSON struct {
	MASE     *float64 `json:"mase"`
	SMAPE    *float64 `json:"smape"`
	MAE      *float64 `json:"mae"`
	Coverage *float64 `json:"coverage,omitempty"`
	N        int      `json:"n"`
}

// MarshalJSON writes an undefined metric (no scored pair) as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(metricsJSON{nullable(m.MASE), nullable(m.SMAPE), nullable(m.MAE), m.Coverage, m.N})
}

// UnmarshalJSON reads null as NaN.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var j metricsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Metrics{MASE: fromNullable(j.MASE), SMAPE: fromNullable(j.SMAPE), MAE: fromNullable(j.MAE), Coverage: j.Coverage, N: j.N}
	return nil
}
