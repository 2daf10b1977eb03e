package forecast

import (
	"math"
	"math/rand/v2"
	"time"
)

// synth makes a seeded series with a diurnal profile, a weekend dip, a
// wandering level and Poisson counts.
func synth(name string, days int, step time.Duration, level float64, seed uint64) *Series {
	rng := rand.New(rand.NewPCG(seed, 5))
	per := int(24 * time.Hour / step)
	s := &Series{Name: name, Start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), Step: step, Values: make(Values, days*per)}
	drift := 0.0
	for k := range s.Values {
		t := s.Time(k)
		h := float64(t.Hour()) + float64(t.Minute())/60
		shape := 0.2 + math.Exp(-0.5*math.Pow((h-10)/2.5, 2)) + 0.6*math.Exp(-0.5*math.Pow((h-18)/2, 2))
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			shape *= 0.6
		}
		drift = 0.995*drift + 0.03*rng.NormFloat64()
		lam := level * shape * math.Exp(drift)
		s.Values[k] = math.Max(0, math.Round(lam+math.Sqrt(lam)*rng.NormFloat64()))
	}
	return s
}

// smallOptions keep tests fast under -race.
func smallOptions(h ...int) Options {
	return Options{Horizons: h, Seed: 3, MaxTrainRows: 6000, MaxOrigins: 60,
		GBDT: GBDTParams{Rounds: 60, LearningRate: 0.15},
		LSTM: LSTMParams{Hidden: 6, Window: 12, Epochs: 3, SamplesPerEpoch: 192, Batch: 16}}
}
