package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/lbsys/lbsys/internal/forecast"
)

// Forecasts is the Pusher's output: the forecast of every blessed series
// (point, upper band and the features that drove it, per horizon) for the
// directive builder, and why the others were not pushed.
type Forecasts struct {
	HorizonLabels []string            `json:"horizon_labels"`
	Forecasts     []forecast.Forecast `json:"forecasts"`
	NotPushed     map[string]string   `json:"not_pushed,omitempty"`
}

// ArtifactType implements Payload.
func (*Forecasts) ArtifactType() string { return "PushedForecasts" }

// Properties implements the artifact's queryable facts.
func (f *Forecasts) Properties() map[string]string {
	return map[string]string{"pushed": strconv.Itoa(len(f.Forecasts))}
}

// Sink receives pushed forecasts: the coordinator (issue #8) when one is
// configured. Without a sink the forecasts stay in the store.
type Sink interface {
	Deliver(ctx context.Context, d Delivery) error
}

// Delivery is what the Pusher hands a sink: the blessed forecasts and
// where they come from (the run, the serving model, the forecasts
// artifact), so the sink can record lineage without reading it back.
type Delivery struct {
	RunID       string
	ModelID     int64
	ForecastsID int64
	Forecasts   *Forecasts
}

// Pusher forecasts every blessed series from its last step and records
// the model as serving it. Nothing unblessed is pushed.
type Pusher struct {
	Sink Sink
}

// Name implements Component.
func (*Pusher) Name() string { return "Pusher" }

// Version implements Versioned.
func (*Pusher) Version() string { return "1" }

// Inputs implements Component.
func (*Pusher) Inputs() []Port {
	return []Port{{Name: "model"}, {Name: "blessing"}, {Name: "transform"}, {Name: "transformed"}}
}

// Run implements Component.
func (p *Pusher) Run(_ context.Context, in Inputs) (Outputs, error) {
	ma, err := As[*ModelArtifact](in["model"])
	if err != nil {
		return Outputs{}, err
	}
	bl, err := As[*Blessing](in["blessing"])
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
	out := &Forecasts{HorizonLabels: g.HorizonLabels, NotPushed: map[string]string{}}
	var blessed []forecast.Input
	for _, x := range tx.Inputs {
		b, ok := bl.Series[x.Series.Name]
		switch {
		case !ok:
			out.NotPushed[x.Series.Name] = "not evaluated"
		case !b.Blessed:
			out.NotPushed[x.Series.Name] = fmt.Sprint("not blessed: ", b.Reasons)
		default:
			blessed = append(blessed, x)
		}
	}
	if len(blessed) > 0 {
		fs, err := ma.Model.Forecast(blessed)
		if err != nil {
			return Outputs{}, err
		}
		out.Forecasts = fs
	}
	sort.Slice(out.Forecasts, func(i, j int) bool { return out.Forecasts[i].Series < out.Forecasts[j].Series })
	return Outputs{Values: map[string]Payload{"forecasts": out}, Metrics: map[string]float64{"pushed": float64(len(out.Forecasts))}}, nil
}

// Commit implements Committer: every pushed series now points at this
// model and forecast, and the sink (if any) receives the forecasts.
func (p *Pusher) Commit(ctx context.Context, md Metadata, runID string, in Inputs, out map[string]*Artifact) error {
	fa := out["forecasts"]
	f, err := As[*Forecasts](fa)
	if err != nil {
		return err
	}
	bl, err := As[*Blessing](in["blessing"])
	if err != nil {
		return err
	}
	model := in["model"]
	for _, fc := range f.Forecasts {
		if !bl.Series[fc.Series].Blessed {
			return fmt.Errorf("refusing to push %q: not blessed", fc.Series)
		}
	}
	// Deliver first, record second: a series is "pushed" (and so the
	// incumbent the next model must beat) only once its forecast really
	// reached the sink. A failed delivery leaves nothing half-done to
	// block the next run.
	if p.Sink != nil && len(f.Forecasts) > 0 {
		if err := p.Sink.Deliver(ctx, Delivery{RunID: runID, ModelID: model.ID, ForecastsID: fa.ID, Forecasts: f}); err != nil {
			return fmt.Errorf("delivering forecasts: %w", err)
		}
	}
	for _, fc := range f.Forecasts {
		b := bl.Series[fc.Series]
		if err := md.SetPushed(ctx, &Pushed{Series: fc.Series, RunID: runID, ModelID: model.ID, ModelHash: model.Hash,
			ForecastID: fa.ID, MAE: b.MAE, MASE: b.MASE}); err != nil {
			return err
		}
	}
	return nil
}

func init() { RegisterType(&Forecasts{}) }
