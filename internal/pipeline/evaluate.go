package pipeline

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/lbsys/lbsys/internal/forecast"
)

// Incumbents are the pushed models serving the series of this run (from
// the metadata), the bar a new model must clear.
type Incumbents struct {
	Series map[string]Pushed `json:"series"`
}

// ArtifactType implements Payload.
func (*Incumbents) ArtifactType() string { return "Incumbents" }

// PushedResolver outputs the currently pushed model of each series
// (TFX's latest-blessed-model resolver); no output when none is.
type PushedResolver struct {
	Metadata Metadata
}

// Name implements Component.
func (*PushedResolver) Name() string { return "PushedResolver" }

// Inputs implements Component.
func (*PushedResolver) Inputs() []Port { return []Port{{Name: "transformed"}} }

// Uncached implements Uncached.
func (*PushedResolver) Uncached() {}

// Run implements Component.
func (r *PushedResolver) Run(ctx context.Context, in Inputs) (Outputs, error) {
	tx, err := As[*Transformed](in["transformed"])
	if err != nil {
		return Outputs{}, err
	}
	inc := &Incumbents{Series: map[string]Pushed{}}
	for _, x := range tx.Inputs {
		p, err := r.Metadata.LatestPushed(ctx, x.Series.Name)
		if err != nil {
			return Outputs{}, err
		}
		if p != nil {
			inc.Series[x.Series.Name] = *p
		}
	}
	if len(inc.Series) == 0 {
		return Outputs{}, nil
	}
	return Outputs{Values: map[string]Payload{"baseline": inc}}, nil
}

// Evaluation is the rolling-origin evaluation of the candidate on each
// series' held-out test windows, and of the incumbent on the same
// windows.
type Evaluation struct {
	HorizonLabels []string                       `json:"horizon_labels"`
	Series        []forecast.SeriesEval          `json:"series"`
	Incumbent     map[string]forecast.SeriesEval `json:"incumbent,omitempty"`
}

// ArtifactType implements Payload.
func (*Evaluation) ArtifactType() string { return "ModelEvaluation" }

// SeriesBlessing is the verdict for one series.
type SeriesBlessing struct {
	Blessed bool     `json:"blessed"`
	Reasons []string `json:"reasons"`
	// MAE and MASE of the candidate's ensemble per horizon (steps).
	MAE  map[int]float64 `json:"mae"`
	MASE map[int]float64 `json:"mase"`
}

// Blessing says which series the candidate may serve (TFX's
// ModelBlessing, per series).
type Blessing struct {
	Series  map[string]SeriesBlessing `json:"series"`
	Blessed int                       `json:"blessed"`
}

// ArtifactType implements Payload.
func (*Blessing) ArtifactType() string { return "ModelBlessing" }

// Evaluator scores the candidate on the test windows and blesses it for
// a series only if its ensemble beats the seasonal-naive forecast at
// every horizon (by MinGain at least) and beats the model serving the
// series now on the same windows (lower mean MAE over the horizons both
// forecast). DESIGN.md principle 6: a model that is not better is not
// pushed.
type Evaluator struct {
	// MinGain is the relative MASE improvement over seasonal naive a
	// blessing requires (0: any improvement).
	MinGain  float64
	Metadata Metadata
	Store    *Store
}

// Name implements Component.
func (*Evaluator) Name() string { return "Evaluator" }

// Version implements Versioned.
func (*Evaluator) Version() string { return "1" }

// Params implements Parameterized.
func (e *Evaluator) Params() any { return map[string]any{"min_gain": e.MinGain} }

// Inputs implements Component.
func (*Evaluator) Inputs() []Port {
	return []Port{{Name: "model"}, {Name: "transform"}, {Name: "transformed"}, {Name: "baseline", Optional: true}}
}

// Run implements Component.
func (e *Evaluator) Run(ctx context.Context, in Inputs) (Outputs, error) {
	ma, err := As[*ModelArtifact](in["model"])
	if err != nil {
		return Outputs{}, err
	}
	g, err := As[*TransformGraph](in["transform"])
	if err != nil {
		return Outputs{}, err
	}
	tx, err := As[*Transformed](in["transformed"])
	if err != nil {
		return Outputs{}, err
	}
	m := &ma.Model
	windows := map[string]forecast.Window{}
	for _, x := range tx.Inputs {
		if w, ok := m.TestWindow(x.Series.Name); ok {
			windows[x.Series.Name] = w
		}
	}
	cand, err := m.EvaluateWindows(tx.Inputs, windows)
	if err != nil {
		return Outputs{}, err
	}
	ev := &Evaluation{HorizonLabels: g.HorizonLabels, Series: cand, Incumbent: map[string]forecast.SeriesEval{}}
	var inc *Incumbents
	if a := in["baseline"]; a != nil {
		if inc, err = As[*Incumbents](a); err != nil {
			return Outputs{}, err
		}
	}
	bl := &Blessing{Series: map[string]SeriesBlessing{}}
	var sumRatio float64
	nRatio := 0
	for si, se := range cand {
		sb := SeriesBlessing{Blessed: true, MAE: map[int]float64{}, MASE: map[int]float64{}}
		for _, he := range se.Horizons {
			ens, sn := he.Models[forecast.Ensemble], he.Models[forecast.SeasonalNaive]
			if !math.IsNaN(ens.MASE) {
				sb.MAE[he.Steps], sb.MASE[he.Steps] = ens.MAE, ens.MASE
			}
			switch {
			case ens.N == 0 || math.IsNaN(ens.MASE):
				sb.Blessed = false
				sb.Reasons = append(sb.Reasons, fmt.Sprintf("%d steps: no test forecast to score", he.Steps))
			case !(ens.MASE < (1-e.MinGain)*sn.MASE):
				sb.Blessed = false
				sb.Reasons = append(sb.Reasons, fmt.Sprintf("%d steps: ensemble MASE %.3f does not beat seasonal naive %.3f", he.Steps, ens.MASE, sn.MASE))
			default:
				sb.Reasons = append(sb.Reasons, fmt.Sprintf("%d steps: ensemble MASE %.3f beats seasonal naive %.3f", he.Steps, ens.MASE, sn.MASE))
				sumRatio += ens.MASE / sn.MASE
				nRatio++
			}
		}
		if inc != nil {
			if p, ok := inc.Series[se.Series]; ok {
				ok, why, incEval := e.beatsIncumbent(ctx, in["model"], p, tx.Inputs[si], windows, sb.MAE)
				if incEval != nil {
					ev.Incumbent[se.Series] = *incEval
				}
				sb.Reasons = append(sb.Reasons, why)
				sb.Blessed = sb.Blessed && ok
			}
		}
		if sb.Blessed {
			bl.Blessed++
		}
		bl.Series[se.Series] = sb
	}
	met := map[string]float64{"blessed": float64(bl.Blessed), "series": float64(len(cand))}
	if nRatio > 0 {
		met["mean_mase_ratio_vs_seasonal_naive"] = sumRatio / float64(nRatio)
	}
	return Outputs{Values: map[string]Payload{"evaluation": ev, "blessing": bl}, Metrics: met}, nil
}

// beatsIncumbent compares the candidate's mean MAE over the horizons both
// models forecast with the incumbent's on the same windows (re-scored from
// its stored model; from its recorded MAE when it cannot be loaded).
func (e *Evaluator) beatsIncumbent(ctx context.Context, cand *Artifact, p Pushed, in forecast.Input, windows map[string]forecast.Window, candMAE map[int]float64) (bool, string, *forecast.SeriesEval) {
	if p.ModelHash == cand.Hash {
		return false, "the pushed model is this model already", nil
	}
	incMAE := p.MAE
	var incEval *forecast.SeriesEval
	source := "its recorded test MAE"
	if e.Metadata != nil && e.Store != nil {
		if a, err := e.Metadata.Artifact(ctx, p.ModelID); err == nil && e.Store.Load(a) == nil {
			if im, err := As[*ModelArtifact](a); err == nil {
				if evs, err := im.Model.EvaluateWindows([]forecast.Input{in}, windows); err == nil && len(evs) == 1 {
					incEval = &evs[0]
					incMAE = map[int]float64{}
					for _, he := range evs[0].Horizons {
						incMAE[he.Steps] = he.Models[forecast.Ensemble].MAE
					}
					source = "the same test windows"
				}
			}
		}
	}
	var steps []int
	for h := range candMAE {
		if v, ok := incMAE[h]; ok && !math.IsNaN(v) && !math.IsNaN(candMAE[h]) {
			steps = append(steps, h)
		}
	}
	sort.Ints(steps)
	if len(steps) == 0 {
		return true, fmt.Sprintf("the pushed model (run %s) shares no scored horizon with this one; judged against seasonal naive only", p.RunID), incEval
	}
	var c, i float64
	for _, h := range steps {
		c += candMAE[h]
		i += incMAE[h]
	}
	c /= float64(len(steps))
	i /= float64(len(steps))
	if c < i {
		return true, fmt.Sprintf("mean MAE %.4g beats the pushed model's %.4g (run %s) on %s", c, i, p.RunID, source), incEval
	}
	return false, fmt.Sprintf("mean MAE %.4g does not beat the pushed model's %.4g (run %s) on %s", c, i, p.RunID, source), incEval
}

func init() {
	RegisterType(&Incumbents{})
	RegisterType(&Evaluation{})
	RegisterType(&Blessing{})
}
