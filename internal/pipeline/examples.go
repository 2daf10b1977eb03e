package pipeline

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// RawSeries is one series as the source delivered it, before it is put
// on a grid: timestamps (Unix milliseconds) and values in source order,
// with whatever duplicates, disorder and gaps the source had. The
// validator reports those; Transform repairs what it can.
type RawSeries struct {
	Name string `json:"name"`
	// Step is the step the source declares (0: infer the most common
	// interval).
	Step time.Duration   `json:"step"`
	T    []int64         `json:"t"`
	V    forecast.Values `json:"v"` // NaN: the row had no value
	// Exo are the series' exogenous inputs, already on a grid.
	Exo *forecast.Exogenous `json:"exo,omitempty"`
	// Events are calendar events that concern this series only (a
	// calendar entry scoped to its service); Examples.Events concern
	// every series.
	Events []forecast.Event `json:"events,omitempty"`
	// Refs name the stored data the series and its inputs were read from
	// (the store's lineage ends: "series:42", "tickets:incident",
	// "events:marketing"); empty for files and memory.
	Refs []string `json:"refs,omitempty"`
}

// Examples are the raw windows of every series (TFX's Examples
// artifact), with the calendar events that apply to all of them.
type Examples struct {
	Source string           `json:"source"`
	Series []RawSeries      `json:"series"`
	Events []forecast.Event `json:"events,omitempty"`
}

// ArtifactType implements Payload.
func (*Examples) ArtifactType() string { return "Examples" }

// Properties implements the artifact's queryable facts.
func (e *Examples) Properties() map[string]string {
	return map[string]string{"source": e.Source, "series": strconv.Itoa(len(e.Series))}
}

// DataRefs implements DataSourced: the stored data of every series.
func (e *Examples) DataRefs() []string {
	var out []string
	for _, s := range e.Series {
		out = append(out, s.Refs...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Source supplies examples: CSVSource and SeriesSource serve files and
// memory, StoreSource windows of the embedded store's time series with
// their CMDB, ITIL and calendar inputs.
type Source interface {
	Examples(ctx context.Context) (*Examples, error)
}

// FromSeries converts a regular series to raw form (a gap is a missing
// row, as a collector would deliver it).
func FromSeries(s *forecast.Series) RawSeries {
	r := RawSeries{Name: s.Name, Step: s.Step}
	for i, v := range s.Values {
		if math.IsNaN(v) {
			continue
		}
		r.T = append(r.T, s.Time(i).UnixMilli())
		r.V = append(r.V, v)
	}
	return r
}

// SeriesSource serves series held in memory (tests, benchmarks, the
// CLI after it read a CSV).
type SeriesSource struct {
	Name   string
	Inputs []forecast.Input
}

// Examples implements Source.
func (s *SeriesSource) Examples(context.Context) (*Examples, error) {
	ex := &Examples{Source: s.Name}
	for _, in := range s.Inputs {
		r := FromSeries(in.Series)
		r.Exo = in.Exo
		ex.Series = append(ex.Series, r)
		ex.Events = append(ex.Events, in.Events...)
	}
	return ex, nil
}

// CSVSource reads one trace CSV with forecast.ReadCSV (strict: a bad
// row is an error naming its line; per-request arrivals are aggregated).
type CSVSource struct {
	Path    string
	Options forecast.CSVOptions
	Events  []forecast.Event
	// Info is filled after Examples ran.
	Info forecast.LoadInfo
}

// Examples implements Source.
func (s *CSVSource) Examples(context.Context) (*Examples, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ser, info, err := forecast.ReadCSV(f, s.Path, s.Options)
	if err != nil {
		return nil, err
	}
	s.Info = info
	return &Examples{Source: s.Path, Series: []RawSeries{FromSeries(ser)}, Events: s.Events}, nil
}

// ExampleGen reads the source. It always runs (the world may have
// changed); an unchanged window hashes to the same artifact, so nothing
// downstream runs again.
type ExampleGen struct {
	Source Source
}

// Name implements Component.
func (*ExampleGen) Name() string { return "ExampleGen" }

// Inputs implements Component.
func (*ExampleGen) Inputs() []Port { return nil }

// Uncached implements Uncached.
func (*ExampleGen) Uncached() {}

// Run implements Component.
func (g *ExampleGen) Run(ctx context.Context, _ Inputs) (Outputs, error) {
	ex, err := g.Source.Examples(ctx)
	if err != nil {
		return Outputs{}, fmt.Errorf("reading examples: %w", err)
	}
	rows := 0
	for _, s := range ex.Series {
		if len(s.T) != len(s.V) {
			return Outputs{}, fmt.Errorf("series %q: %d timestamps and %d values", s.Name, len(s.T), len(s.V))
		}
		rows += len(s.T)
	}
	return Outputs{Values: map[string]Payload{"examples": ex},
		Metrics: map[string]float64{"series": float64(len(ex.Series)), "rows": float64(rows)}}, nil
}

func init() {
	RegisterType(&Examples{})
}
