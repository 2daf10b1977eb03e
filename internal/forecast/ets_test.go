package forecast

import (
	"math"
	"testing"
	"time"
)

func TestNelderMeadFindsRosenbrockMinimum(t *testing.T) {
	f := func(x []float64) float64 { return 100*math.Pow(x[1]-x[0]*x[0], 2) + math.Pow(1-x[0], 2) }
	x, v := nelderMead(f, []float64{-1.2, 1}, 0.5, 2000)
	if v > 1e-6 || math.Abs(x[0]-1) > 1e-2 {
		t.Errorf("minimum %v at %v", v, x)
	}
}

func TestETSForecastsASeasonalSeries(t *testing.T) {
	s := synth("ets", 14, 30*time.Minute, 200, 4)
	y := s.Values
	day := 48
	trainEnd := 10 * day
	e := fitETS(y, trainEnd, day)
	if e.Period != day || e.Alpha <= 0 || e.Alpha >= 1 || e.Gamma < 0 || e.Phi < 0.8 || e.Phi > 0.98 {
		t.Fatalf("parameters %+v", e)
	}
	_, st := e.filter(y, 0, true)
	var ets, naive float64
	for t0 := trainEnd; t0+4 < len(y); t0++ {
		for h := 1; h <= 4; h++ {
			ets += math.Abs(st.forecast(t0, h) - y[t0+h])
			naive += math.Abs(y[t0] - y[t0+h])
		}
	}
	if ets >= naive {
		t.Errorf("ETS MAE sum %.0f not below the last-value forecast's %.0f", ets, naive)
	}
	// A gap is carried over, not read as zero.
	g := append(Values(nil), y...)
	for i := trainEnd; i < trainEnd+6; i++ {
		g[i] = math.NaN()
	}
	_, sg := e.filter(g, 0, true)
	if v := sg.forecast(trainEnd+5, 1); math.IsNaN(v) || v < 10 {
		t.Errorf("forecast after a gap: %v", v)
	}
}
