package pipeline

import (
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// Config configures the standard pipeline.
type Config struct {
	Source Source
	// Horizons to forecast (default 30m and 2h).
	Horizons []time.Duration
	// Options are the forecaster's (seed, holidays, splits, …).
	Options forecast.Options
	// Budget bounds the Tuner's wall time; zero skips tuning (defaults).
	Budget time.Duration
	Tune   forecast.TuneOptions
	// Fatal overrides the anomaly kinds a newly inferred schema makes
	// fatal; Schema replaces inference with a curated schema.
	Fatal  []string
	Schema *Schema
	// MinGain is the improvement over seasonal naive a blessing needs.
	MinGain float64
	// Sink receives pushed forecasts (nil: they stay in the store).
	Sink Sink
	// OnTrial reports tuning progress.
	OnTrial func(forecast.Trial)
}

// Standard returns the components of the forecasting pipeline, in order:
// ExampleGen → StatisticsGen → SchemaResolver → SchemaGen →
// ExampleValidator → Transform → Tuner → Trainer → PushedResolver →
// Evaluator → Pusher.
func Standard(c Config, store *Store, md Metadata) []Component {
	h := c.Horizons
	if len(h) == 0 {
		h = []time.Duration{30 * time.Minute, 2 * time.Hour}
	}
	comps := []Component{
		&ExampleGen{Source: c.Source},
		&StatisticsGen{},
		&SchemaResolver{Metadata: md, Store: store},
		&SchemaGen{Fatal: c.Fatal, Curated: c.Schema},
		&ExampleValidator{},
		&Transform{Horizons: h, Options: c.Options},
	}
	if c.Budget > 0 {
		comps = append(comps, &Tuner{Budget: c.Budget, Options: c.Tune, OnTrial: c.OnTrial})
	}
	return append(comps,
		&Trainer{},
		&PushedResolver{Metadata: md},
		&Evaluator{MinGain: c.MinGain, Metadata: md, Store: store},
		&Pusher{Sink: c.Sink},
	)
}
