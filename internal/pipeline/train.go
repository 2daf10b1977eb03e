package pipeline

import (
	"context"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// HyperParameters are the Tuner's choice and every trial it ran.
type HyperParameters struct {
	forecast.Tuning
	Budget string `json:"budget"`
}

// ArtifactType implements Payload.
func (*HyperParameters) ArtifactType() string { return "HyperParameters" }

// Tuner searches hyperparameters with TPE (forecast.Tune) within Budget.
type Tuner struct {
	Budget  time.Duration
	Options forecast.TuneOptions
	// OnTrial, when set, is called after every trial (progress).
	OnTrial func(forecast.Trial)
}

// Name implements Component.
func (*Tuner) Name() string { return "Tuner" }

// Version implements Versioned.
func (*Tuner) Version() string { return "1" }

// Inputs implements Component.
func (*Tuner) Inputs() []Port { return []Port{{Name: "transform"}, {Name: "transformed"}} }

// Params implements Parameterized.
func (t *Tuner) Params() any {
	return map[string]any{"budget": t.Budget.String(), "options": t.Options}
}

// Run implements Component.
func (t *Tuner) Run(ctx context.Context, in Inputs) (Outputs, error) {
	g, err := As[*TransformGraph](in["transform"])
	if err != nil {
		return Outputs{}, err
	}
	tx, err := As[*Transformed](in["transformed"])
	if err != nil {
		return Outputs{}, err
	}
	tctx := ctx
	if t.Budget > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, t.Budget)
		defer cancel()
	}
	opts := t.Options
	opts.OnTrial = t.OnTrial
	tr := g.Transform
	res, err := forecast.Tune(tctx, &tr, tx.Inputs, opts)
	if err != nil {
		return Outputs{}, err
	}
	if ctx.Err() != nil {
		return Outputs{}, ctx.Err()
	}
	hp := &HyperParameters{Tuning: *res, Budget: t.Budget.String()}
	best := map[string]float64{"trials": float64(len(res.Trials))}
	for _, tr := range res.Trials {
		k := "best_valid_mase_" + tr.Model
		if v, ok := best[k]; tr.State == "Complete" && (!ok || tr.Value < v) {
			best[k] = tr.Value
		}
	}
	if res.StoppedByBudget {
		best["stopped_by_budget"] = 1
	}
	return Outputs{Values: map[string]Payload{"hyperparameters": hp}, Metrics: best}, nil
}

// ModelArtifact is a trained forecaster.
type ModelArtifact struct {
	forecast.Model
}

// ArtifactType implements Payload.
func (*ModelArtifact) ArtifactType() string { return "Model" }

// Trainer fits the members and the stacking ensemble (forecast.Train)
// with the Tuner's hyperparameters, or the defaults without them.
type Trainer struct{}

// Name implements Component.
func (*Trainer) Name() string { return "Trainer" }

// Version implements Versioned.
func (*Trainer) Version() string { return "1" }

// Inputs implements Component.
func (*Trainer) Inputs() []Port {
	return []Port{{Name: "transform"}, {Name: "transformed"}, {Name: "hyperparameters", Optional: true}}
}

// Run implements Component.
func (*Trainer) Run(ctx context.Context, in Inputs) (Outputs, error) {
	g, err := As[*TransformGraph](in["transform"])
	if err != nil {
		return Outputs{}, err
	}
	tx, err := As[*Transformed](in["transformed"])
	if err != nil {
		return Outputs{}, err
	}
	tr := g.Transform
	if a := in["hyperparameters"]; a != nil {
		hp, err := As[*HyperParameters](a)
		if err != nil {
			return Outputs{}, err
		}
		tr.Options.GBDT, tr.Options.LSTM = hp.GBDT, hp.LSTM
	}
	m, err := forecast.Train(ctx, &tr, tx.Inputs)
	if err != nil {
		return Outputs{}, err
	}
	met := map[string]float64{"gbdt_trees": float64(len(m.GBDT.Trees)), "features": float64(len(m.Features))}
	return Outputs{Values: map[string]Payload{"model": &ModelArtifact{Model: *m}}, Metrics: met}, nil
}

func init() {
	RegisterType(&HyperParameters{})
	RegisterType(&ModelArtifact{})
}
