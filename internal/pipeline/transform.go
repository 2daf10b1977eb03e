package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// TransformGraph is the learned preprocessing (TFX's transform graph):
// per series splits, scales, profiles and exogenous parameters, the
// horizons in steps, and the series left out with the reason.
type TransformGraph struct {
	forecast.Transform
	// HorizonLabels name Options.Horizons as the user asked for them
	// ("30m", "2h").
	HorizonLabels []string `json:"horizon_labels"`
	// Notes explain horizon rounding and dropped series.
	Notes   []string          `json:"notes,omitempty"`
	Dropped map[string]string `json:"dropped,omitempty"`
}

// ArtifactType implements Payload.
func (*TransformGraph) ArtifactType() string { return "TransformGraph" }

// Transformed are the examples on a regular grid, ready for the models.
type Transformed struct {
	Inputs []forecast.Input `json:"inputs"`
}

// ArtifactType implements Payload.
func (*Transformed) ArtifactType() string { return "TransformedExamples" }

// HorizonSteps converts a horizon to whole steps of a series, rounding up
// (a 30-minute horizon of an hourly series is its next step), with a note
// when it had to round.
func HorizonSteps(d, step time.Duration) (int, string) {
	n := int((d + step - 1) / step)
	n = max(n, 1)
	if time.Duration(n)*step != d {
		return n, fmt.Sprintf("horizon %v is not a whole number of %v steps: evaluated as %d step(s) = %v", d, step, n, time.Duration(n)*step)
	}
	return n, ""
}

// regularize turns a raw series into a regular one on its schema's step:
// rows sorted, rows off the grid dropped, duplicates averaged, missing
// steps kept as gaps.
func regularize(r RawSeries, step time.Duration) (*forecast.Series, error) {
	if step <= 0 {
		step = modalStep(r.T)
	}
	if step <= 0 {
		return nil, fmt.Errorf("series %q: cannot tell its step", r.Name)
	}
	type row struct {
		t int64
		v float64
	}
	rows := make([]row, len(r.T))
	for i := range r.T {
		rows[i] = row{r.T[i], r.V[i]}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].t < rows[j].t })
	if len(rows) == 0 {
		return nil, fmt.Errorf("series %q: no rows", r.Name)
	}
	t0 := rows[0].t
	ms := step.Milliseconds()
	var pts []forecast.Point
	for _, x := range rows {
		if (x.t-t0)%ms != 0 {
			continue
		}
		pts = append(pts, forecast.Point{T: time.UnixMilli(x.t).UTC(), V: x.v})
	}
	s, _, err := forecast.Regularize(r.Name, pts, step)
	return s, err
}

// Transform puts every series on its grid and learns the forecast
// transform on each one's training window. A series too short for the
// horizons is left out with the reason (the others go on).
type Transform struct {
	Horizons []time.Duration
	Options  forecast.Options
}

// Name implements Component.
func (*Transform) Name() string { return "Transform" }

// Version implements Versioned.
func (*Transform) Version() string { return "1" }

// Inputs implements Component.
func (*Transform) Inputs() []Port {
	return []Port{{Name: "examples"}, {Name: "schema"}, {Name: "anomalies"}}
}

// Params implements Parameterized.
func (t *Transform) Params() any {
	return map[string]any{"horizons": durations(t.Horizons), "options": t.Options}
}

func durations(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

// Run implements Component.
func (t *Transform) Run(_ context.Context, in Inputs) (Outputs, error) {
	ex, err := As[*Examples](in["examples"])
	if err != nil {
		return Outputs{}, err
	}
	sc, err := As[*Schema](in["schema"])
	if err != nil {
		return Outputs{}, err
	}
	an, err := As[*Anomalies](in["anomalies"])
	if err != nil {
		return Outputs{}, err
	}
	if len(t.Horizons) == 0 {
		return Outputs{}, errors.New("no horizons")
	}
	g := &TransformGraph{Dropped: map[string]string{}}
	var inputs []forecast.Input
	var step time.Duration
	for _, r := range ex.Series {
		if an.Has(r.Name, AnomalyNoData) {
			g.Dropped[r.Name] = "no data"
			continue
		}
		var st time.Duration
		if ss := sc.series(r.Name); ss != nil {
			st = ss.Step
		}
		s, err := regularize(r, st)
		if err != nil {
			g.Dropped[r.Name] = err.Error()
			continue
		}
		if step == 0 {
			step = s.Step
		}
		if s.Step != step {
			g.Dropped[r.Name] = fmt.Sprintf("step %v differs from the first series' %v; one model needs one step", s.Step, step)
			continue
		}
		events := ex.Events
		if len(r.Events) > 0 {
			events = slices.Concat(ex.Events, r.Events)
		}
		inputs = append(inputs, forecast.Input{Series: s, Events: events, Exo: r.Exo})
	}
	if len(inputs) == 0 {
		return Outputs{}, fmt.Errorf("no usable series: %s", joinMap(g.Dropped))
	}
	o := t.Options
	o.Horizons = nil
	for _, d := range t.Horizons {
		n, note := HorizonSteps(d, step)
		o.Horizons = append(o.Horizons, n)
		g.HorizonLabels = append(g.HorizonLabels, shortDuration(d))
		if note != "" {
			g.Notes = append(g.Notes, note)
		}
	}
	hmax := 0
	for _, h := range o.Horizons {
		hmax = max(hmax, h)
	}
	kept := inputs[:0]
	for _, in := range inputs {
		if _, _, err := forecast.Splits(in.Series.Len(), hmax, o); err != nil {
			g.Dropped[in.Series.Name] = err.Error()
			continue
		}
		kept = append(kept, in)
	}
	if len(kept) == 0 {
		return Outputs{}, fmt.Errorf("no series is long enough: %s", joinMap(g.Dropped))
	}
	for name, why := range g.Dropped {
		g.Notes = append(g.Notes, fmt.Sprintf("series %q left out: %s", name, why))
	}
	sort.Strings(g.Notes)
	tr, err := forecast.Prepare(kept, o)
	if err != nil {
		return Outputs{}, err
	}
	g.Transform = *tr
	gaps := 0
	for _, in := range kept {
		gaps += in.Series.Gaps()
	}
	return Outputs{
		Values:  map[string]Payload{"transform": g, "transformed": &Transformed{Inputs: kept}},
		Metrics: map[string]float64{"series": float64(len(kept)), "dropped": float64(len(g.Dropped)), "gap_steps": float64(gaps)},
	}, nil
}

func joinMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+m[k])
	}
	return strings.Join(parts, "; ")
}

// shortDuration prints 30m0s as "30m" and 2h0m0s as "2h".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func init() {
	RegisterType(&TransformGraph{})
	RegisterType(&Transformed{})
}
