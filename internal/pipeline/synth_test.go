package pipeline

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// synthSeries makes n seeded series of days days at step: a diurnal
// profile (two bumps whose hours vary by series), a weekend dip, a slowly
// wandering level (AR(1)), occasional bursts, Poisson counts. Shapes, not
// any real trace, so the benchmark measures the pipeline, not one file.
func synthSeries(n, days int, step time.Duration, seed uint64) []forecast.Input {
	rng := rand.New(rand.NewPCG(seed, 99))
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	per := int(24 * time.Hour / step)
	var out []forecast.Input
	for i := 0; i < n; i++ {
		level := math.Exp(math.Log(5) + rng.Float64()*math.Log(100))
		p1, p2 := 9+3*rng.Float64(), 17+4*rng.Float64()
		w1, w2 := 1.5+rng.Float64()*2, 1.5+rng.Float64()*2
		a2 := 0.3 + rng.Float64()
		weekend := 0.5 + 0.5*rng.Float64()
		drift := 0.0
		burst := 0.0
		s := &forecast.Series{Name: "svc-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Start: start, Step: step,
			Values: make(forecast.Values, days*per)}
		for k := range s.Values {
			t := s.Time(k)
			h := float64(t.Hour()) + float64(t.Minute())/60
			shape := 0.15 + math.Exp(-0.5*sq((h-p1)/w1)) + a2*math.Exp(-0.5*sq((h-p2)/w2))
			if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
				shape *= weekend
			}
			drift = 0.999*drift + 0.01*rng.NormFloat64()
			if burst > 0.01 {
				burst *= 0.97
			} else if rng.Float64() < 0.0005 {
				burst = 1 + 2*rng.Float64()
			}
			lam := level * shape * math.Exp(drift) * (1 + burst)
			s.Values[k] = poisson(rng, lam)
		}
		out = append(out, forecast.Input{Series: s})
	}
	return out
}

func sq(x float64) float64 { return x * x }

func poisson(rng *rand.Rand, lam float64) float64 {
	if lam > 30 {
		return math.Max(0, math.Round(lam+math.Sqrt(lam)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-lam), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
