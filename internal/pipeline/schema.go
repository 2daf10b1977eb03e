package pipeline

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Anomaly kinds the validator reports.
const (
	AnomalyMissingSeries  = "missing_series"       // a series of the schema is absent
	AnomalyMissingValues  = "missing_values"       // rows without a value
	AnomalyMissingField   = "missing_field"        // an exogenous input of the schema is absent
	AnomalyDuplicateTime  = "duplicate_timestamps" // two rows at one time
	AnomalyUnorderedTime  = "unordered_timestamps" // a row earlier than the one before
	AnomalyOffGrid        = "off_grid_timestamps"  // a row between grid steps
	AnomalyStepMismatch   = "step_mismatch"        // the step differs from the schema's
	AnomalyGaps           = "gaps"                 // grid steps without a row
	AnomalyOutOfRange     = "out_of_range"         // values outside the schema's range
	AnomalyDrift          = "drift"                // recent values' distribution moved
	AnomalyNoData         = "no_data"              // not one known value
	AnomalyUnknownSeries  = "unknown_series"       // a series the schema does not know
	AnomalyValueType      = "value_type"           // values not of the schema's type
	defaultDriftThreshold = 0.1
	defaultMaxGapFraction = 0.2
)

// DefaultFatal are the anomaly kinds that stop a pipeline unless a schema
// says otherwise: without data or with another step, nothing downstream is
// meaningful. Everything else is reported and repaired or tolerated.
var DefaultFatal = []string{AnomalyNoData, AnomalyStepMismatch}

// SeriesSchema is what a series is expected to look like.
type SeriesSchema struct {
	Name string        `json:"name"`
	Step time.Duration `json:"step"`
	// Required series must be present in every run.
	Required bool `json:"required"`
	// Type is the values' type: TypeCount (whole numbers: requests per
	// step) or TypeReal (rates, means). Empty in schemas from before
	// types: not checked.
	Type string `json:"type,omitempty"`
	// Min and Max bound plausible values.
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Deciles of the values the schema was inferred from: the reference
	// distribution for drift.
	Deciles []float64 `json:"deciles"`
	// Exo lists the exogenous inputs the series is expected to have.
	Exo []string `json:"exo,omitempty"`
}

// Schema is the expected shape of the examples (TFX's Schema): per
// series types, ranges and frequency, and which anomalies are fatal.
type Schema struct {
	Series []SeriesSchema `json:"series"`
	// Fatal lists the anomaly kinds that stop the pipeline.
	Fatal []string `json:"fatal"`
	// DriftThreshold is the Jensen–Shannon divergence (base 2, 0..1)
	// between the recent values and the schema's deciles above which
	// drift is reported.
	DriftThreshold float64 `json:"drift_threshold"`
	// MaxGapFraction is the share of missing steps above which gaps are
	// reported as an error rather than a warning.
	MaxGapFraction float64 `json:"max_gap_fraction"`
}

// ArtifactType implements Payload.
func (*Schema) ArtifactType() string { return "Schema" }

func (s *Schema) series(name string) *SeriesSchema {
	for i := range s.Series {
		if s.Series[i].Name == name {
			return &s.Series[i]
		}
	}
	return nil
}

func (s *Schema) fatal(kind string) bool {
	for _, k := range s.Fatal {
		if k == kind {
			return true
		}
	}
	return false
}

// Value types of SeriesSchema.Type.
const (
	TypeCount = "count"
	TypeReal  = "real"
)

// inferSeries derives a series' schema from its statistics, with room:
// values up to three times the maximum seen are plausible.
func inferSeries(st SeriesStats) SeriesSchema {
	ss := SeriesSchema{Name: st.Name, Step: st.Step, Required: true, Min: 0, Max: 3 * st.Max,
		Deciles: st.Deciles, Exo: st.HasExo, Type: TypeCount}
	if st.Fractional > 0 {
		ss.Type = TypeReal
	}
	if st.Min < 0 {
		ss.Min = 3 * st.Min
	}
	if ss.Max == 0 {
		ss.Max = 1
	}
	return ss
}

// SchemaGen infers the schema from statistics. A schema already in use
// (the prior_schema input: the latest one, or a curated one) is kept as
// it is, and only new series are added, so drift is measured against
// what the models were built for, not against today's data.
type SchemaGen struct {
	// Fatal overrides DefaultFatal for a newly inferred schema.
	Fatal []string
	// Curated, when set, is the starting schema instead of the prior.
	Curated *Schema
}

// Name implements Component.
func (*SchemaGen) Name() string { return "SchemaGen" }

// Version implements Versioned.
func (*SchemaGen) Version() string { return "2" }

// Inputs implements Component.
func (*SchemaGen) Inputs() []Port {
	return []Port{{Name: "statistics"}, {Name: "prior_schema", Optional: true}}
}

// Params implements Parameterized.
func (g *SchemaGen) Params() any { return map[string]any{"fatal": g.Fatal, "curated": g.Curated} }

// Run implements Component.
func (g *SchemaGen) Run(_ context.Context, in Inputs) (Outputs, error) {
	st, err := As[*Statistics](in["statistics"])
	if err != nil {
		return Outputs{}, err
	}
	out := &Schema{Fatal: DefaultFatal, DriftThreshold: defaultDriftThreshold, MaxGapFraction: defaultMaxGapFraction}
	if g.Fatal != nil {
		out.Fatal = g.Fatal
	}
	switch {
	case g.Curated != nil:
		c := *g.Curated
		c.Series = append([]SeriesSchema(nil), g.Curated.Series...)
		out = &c
	case in["prior_schema"] != nil:
		p, err := As[*Schema](in["prior_schema"])
		if err != nil {
			return Outputs{}, err
		}
		c := *p
		c.Series = append([]SeriesSchema(nil), p.Series...)
		out = &c
	}
	added := 0
	for _, s := range st.Series {
		if out.series(s.Name) == nil && s.Rows > s.Missing {
			out.Series = append(out.Series, inferSeries(s))
			added++
		}
	}
	sort.Slice(out.Series, func(i, j int) bool { return out.Series[i].Name < out.Series[j].Name })
	return Outputs{Values: map[string]Payload{"schema": out}, Metrics: map[string]float64{"series_added": float64(added)}}, nil
}

// SchemaResolver outputs the schema SchemaGen produced last (TFX's
// resolver node), so the next SchemaGen keeps it.
type SchemaResolver struct {
	Metadata Metadata
	Store    *Store
}

// Name implements Component.
func (*SchemaResolver) Name() string { return "SchemaResolver" }

// Inputs implements Component.
func (*SchemaResolver) Inputs() []Port { return nil }

// Uncached implements Uncached.
func (*SchemaResolver) Uncached() {}

// Run implements Component.
func (r *SchemaResolver) Run(ctx context.Context, _ Inputs) (Outputs, error) {
	a, err := r.Metadata.LatestArtifact(ctx, "SchemaGen", "Schema")
	if err != nil || a == nil {
		return Outputs{}, err
	}
	if err := r.Store.Load(a); err != nil {
		return Outputs{}, err
	}
	s, err := As[*Schema](a)
	if err != nil {
		return Outputs{}, err
	}
	return Outputs{Values: map[string]Payload{"prior_schema": s}}, nil
}

// Anomaly is one finding of the validator.
type Anomaly struct {
	Series string `json:"series"`
	Kind   string `json:"kind"`
	// Severity is "warning", "error" or "fatal" (stops the pipeline).
	Severity string `json:"severity"`
	Detail   string `json:"detail"`
	Count    int    `json:"count,omitempty"`
}

// Anomalies are the validator's findings.
type Anomalies struct {
	Items []Anomaly `json:"items"`
	Fatal bool      `json:"fatal"`
}

// ArtifactType implements Payload.
func (*Anomalies) ArtifactType() string { return "Anomalies" }

// Has reports whether a series has an anomaly of a kind.
func (a *Anomalies) Has(series, kind string) bool {
	for _, x := range a.Items {
		if x.Series == series && x.Kind == kind {
			return true
		}
	}
	return false
}

// jsDivergence is the Jensen–Shannon divergence (base 2) between the
// distribution of xs over the bins cut at deciles and the reference's
// ten equal shares (Lin 1991), as TFX uses for numeric drift.
func jsDivergence(deciles, xs []float64) float64 {
	if len(deciles) == 0 || len(xs) == 0 {
		return 0
	}
	k := len(deciles) + 1
	p := make([]float64, k)
	for _, x := range xs {
		p[sort.SearchFloat64s(deciles, x)]++
	}
	q := make([]float64, k)
	for i := range q {
		q[i] = 1 / float64(k)
	}
	var d float64
	for i := range p {
		p[i] /= float64(len(xs))
		m := (p[i] + q[i]) / 2
		if p[i] > 0 {
			d += 0.5 * p[i] * math.Log2(p[i]/m)
		}
		if q[i] > 0 {
			d += 0.5 * q[i] * math.Log2(q[i]/m)
		}
	}
	return d
}

// Validate compares statistics with a schema (TFX's ExampleValidator).
func Validate(st *Statistics, sc *Schema) *Anomalies {
	out := &Anomalies{}
	add := func(series, kind, sev, detail string, n int) {
		if sc.fatal(kind) {
			sev = "fatal"
			out.Fatal = true
		}
		out.Items = append(out.Items, Anomaly{Series: series, Kind: kind, Severity: sev, Detail: detail, Count: n})
	}
	present := map[string]bool{}
	for _, s := range st.Series {
		present[s.Name] = true
		ss := sc.series(s.Name)
		if ss == nil {
			add(s.Name, AnomalyUnknownSeries, "warning", "not in the schema; SchemaGen adds it on its next inference", 0)
			continue
		}
		known := s.Rows - s.Missing
		if known == 0 {
			add(s.Name, AnomalyNoData, "error", "no row has a value", 0)
			continue
		}
		if s.Missing > 0 {
			add(s.Name, AnomalyMissingValues, "warning", fmt.Sprintf("%d of %d rows have no value (kept as gaps)", s.Missing, s.Rows), s.Missing)
		}
		for _, want := range ss.Exo {
			if !contains(s.HasExo, want) {
				add(s.Name, AnomalyMissingField, "warning", fmt.Sprintf("exogenous input %q is absent (its features become missing values)", want), 0)
			}
		}
		if s.Duplicates > 0 {
			add(s.Name, AnomalyDuplicateTime, "warning", fmt.Sprintf("%d rows repeat an earlier timestamp (Transform averages them)", s.Duplicates), s.Duplicates)
		}
		if s.Unordered > 0 {
			add(s.Name, AnomalyUnorderedTime, "warning", fmt.Sprintf("%d rows go back in time (Transform sorts them)", s.Unordered), s.Unordered)
		}
		if s.OffGrid > 0 {
			add(s.Name, AnomalyOffGrid, "warning", fmt.Sprintf("%d rows are off the %v grid (Transform drops them)", s.OffGrid, s.Step), s.OffGrid)
		}
		if ss.Step != 0 && s.Step != ss.Step {
			add(s.Name, AnomalyStepMismatch, "error", fmt.Sprintf("step %v, the schema expects %v", s.Step, ss.Step), 0)
		}
		if s.GapSteps > 0 {
			total := s.GapSteps + s.Rows - s.Duplicates - s.OffGrid
			frac := float64(s.GapSteps) / float64(max(total, 1))
			sev := "warning"
			if frac > sc.MaxGapFraction {
				sev = "error"
			}
			add(s.Name, AnomalyGaps, sev, fmt.Sprintf("%d missing steps (%.1f%%), the longest %d steps; kept as gaps, never zero", s.GapSteps, 100*frac, s.LongestGap), s.GapSteps)
		}
		if ss.Type == TypeCount && s.Fractional > 0 {
			add(s.Name, AnomalyValueType, "warning", fmt.Sprintf("%d values are not whole numbers; the schema expects counts (a rate where counts were, or a unit change?)", s.Fractional), s.Fractional)
		}
		if s.Min < ss.Min || s.Max > ss.Max {
			add(s.Name, AnomalyOutOfRange, "warning", fmt.Sprintf("values span [%g, %g], the schema allows [%g, %g]", s.Min, s.Max, ss.Min, ss.Max), 0)
		}
		if d := jsDivergence(ss.Deciles, s.Recent); d > sc.DriftThreshold {
			add(s.Name, AnomalyDrift, "warning", fmt.Sprintf("recent values diverge from the schema's distribution: Jensen–Shannon %.3f > %.3f", d, sc.DriftThreshold), 0)
		}
	}
	for _, ss := range sc.Series {
		if ss.Required && !present[ss.Name] {
			add(ss.Name, AnomalyMissingSeries, "error", "required by the schema but absent from the examples", 0)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// ExampleValidator checks the statistics against the schema. Anomalies
// are reported in its output; it fails (and stops the pipeline) only on
// kinds the schema lists as fatal.
type ExampleValidator struct{}

// Name implements Component.
func (*ExampleValidator) Name() string { return "ExampleValidator" }

// Version implements Versioned.
func (*ExampleValidator) Version() string { return "2" }

// Inputs implements Component.
func (*ExampleValidator) Inputs() []Port { return []Port{{Name: "statistics"}, {Name: "schema"}} }

// Run implements Component.
func (*ExampleValidator) Run(_ context.Context, in Inputs) (Outputs, error) {
	st, err := As[*Statistics](in["statistics"])
	if err != nil {
		return Outputs{}, err
	}
	sc, err := As[*Schema](in["schema"])
	if err != nil {
		return Outputs{}, err
	}
	an := Validate(st, sc)
	out := Outputs{Values: map[string]Payload{"anomalies": an}, Metrics: map[string]float64{"anomalies": float64(len(an.Items))}}
	if an.Fatal {
		var msgs []string
		for _, a := range an.Items {
			if a.Severity == "fatal" {
				msgs = append(msgs, fmt.Sprintf("%s: %s: %s", a.Series, a.Kind, a.Detail))
			}
		}
		return out, fmt.Errorf("fatal anomalies (the schema lists them as fatal): %s", strings.Join(msgs, "; "))
	}
	return out, nil
}

func init() {
	RegisterType(&Schema{})
	RegisterType(&Anomalies{})
}
