// Package evalreport is `lbsys forecast eval`: it runs the forecasting
// pipeline on one trace CSV and reports, per horizon and model, the MASE
// and sMAPE of a rolling-origin evaluation, as JSON, Markdown, and a
// report directory with plots and the pipeline's lineage. internal/forecast
// stays pure; the files, the calendar and the pipeline meet here.
package evalreport

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/pipeline"
)

// Options are one evaluation's inputs (the command's flags, parsed).
type Options struct {
	// Trace is the CSV file; CSV how to read it.
	Trace string
	CSV   forecast.CSVOptions
	// Horizons are the forecast horizons; one that does not fit the series
	// is skipped with the reason.
	Horizons []time.Duration
	// Events is an iCalendar file ("" for none), read by ReadEvents with
	// TZ (TZGiven: also for floating times) and EventCategories.
	Events          string
	EventCategories []string
	TZ              *time.Location
	TZGiven         bool
	// Seed, Holidays and NoLSTM are the forecaster's options.
	Seed     uint64
	Holidays string
	NoLSTM   bool
	// Budget bounds tuning on the wall clock; the trials bound it in count.
	Budget                 time.Duration
	GBDTTrials, LSTMTrials int
	// Report is the directory for report.md, eval.json, lineage.json, the
	// plots and the artifacts ("" for none: artifacts go to a temporary
	// directory that is removed).
	Report string
	// Progress receives the progress lines and the notes (nil or Quiet:
	// none).
	Progress io.Writer
	Quiet    bool
}

// InputError is a problem with the command's input (a file a flag names,
// or what is in it): the caller's to fix, exit code 2.
type InputError struct {
	Flag string
	Err  error
}

func (e *InputError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// HorizonResult is one horizon of the JSON output: each model's metrics,
// plus how the horizon was evaluated.
type HorizonResult map[string]any

// Output is the JSON document `forecast eval` prints.
type Output struct {
	Series   string                   `json:"series"`
	Column   string                   `json:"column,omitempty"`
	Step     string                   `json:"step"`
	Steps    int                      `json:"steps"`
	Gaps     int                      `json:"gaps"`
	Load     string                   `json:"load,omitempty"`
	Horizons map[string]HorizonResult `json:"horizons"`
	Skipped  map[string]string        `json:"skipped,omitempty"`
	Notes    []string                 `json:"notes,omitempty"`
	Tuning   map[string]any           `json:"tuning,omitempty"`
	Seconds  float64                  `json:"seconds"`
	// order is the horizons' labels, shortest first, for Markdown.
	order []string
}

// Run evaluates the forecasters on the trace. When no horizon fits the
// series, it returns both the Output (its skipped horizons say why) and an
// error; otherwise one or the other.
func Run(ctx context.Context, o Options) (*Output, error) {
	file, err := os.Open(o.Trace)
	if err != nil {
		return nil, &InputError{"--trace", err}
	}
	s, info, err := forecast.ReadCSV(file, filepath.Base(o.Trace), o.CSV)
	file.Close()
	if err != nil {
		return nil, &InputError{"--trace", err}
	}
	out := &Output{Series: s.Name, Column: info.ValueCol, Step: s.Step.String(), Steps: s.Len(), Gaps: s.Gaps(),
		Horizons: map[string]HorizonResult{}, Skipped: map[string]string{}}
	if info.Arrivals {
		out.Load = "per-request arrivals aggregated: " + info.Aggregation
	}
	opts := forecast.Options{Seed: o.Seed, Holidays: o.Holidays, NoLSTM: o.NoLSTM}
	// Keep the horizons that fit the series; say why the others do not.
	var keep []time.Duration
	for _, d := range o.Horizons {
		n, _ := pipeline.HorizonSteps(d, s.Step)
		if _, _, err := forecast.Splits(s.Len(), n, opts); err != nil {
			out.Skipped[label(d)] = fmt.Sprintf("%v = %d steps of %v: %v", d, n, s.Step, err)
			continue
		}
		keep = append(keep, d)
	}
	if len(keep) == 0 {
		return out, fmt.Errorf("no horizon fits %s (%d steps of %v, %v): %s", s.Name, s.Len(), s.Step,
			time.Duration(s.Len())*s.Step, strings.Join(sortedValues(out.Skipped), "; "))
	}
	stderr := o.Progress
	if stderr == nil {
		stderr = io.Discard
	}
	var events []forecast.Event
	if o.Events != "" {
		hmax := keep[0]
		for _, d := range keep {
			hmax = max(hmax, d)
		}
		var notes []string
		events, notes, err = ReadEvents(o.Events, o.TZ, o.TZGiven, o.EventCategories, s.Start.Add(-8*24*time.Hour), s.End().Add(hmax+8*24*time.Hour))
		if err != nil {
			return nil, &InputError{"--events", err}
		}
		out.Notes = append(out.Notes, fmt.Sprintf("%d calendar event occurrences from %s", len(events), filepath.Base(o.Events)))
		for _, n := range notes {
			out.Notes = append(out.Notes, "--events: "+n)
			if !o.Quiet {
				fmt.Fprintln(stderr, "lbsys forecast eval: --events:", n)
			}
		}
	}

	dataDir := o.Report
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "lbsys-forecast-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dataDir)
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, &InputError{"--report", err}
	}
	store := &pipeline.Store{Dir: dataDir}
	md := pipeline.NewMemoryMetadata()
	prog := pipeline.NewPrinter(stderr, o.Quiet, o.GBDTTrials+o.LSTMTrials)
	cfg := pipeline.Config{
		Source:   &pipeline.SeriesSource{Name: o.Trace, Inputs: []forecast.Input{{Series: s, Events: events}}},
		Horizons: keep, Options: opts, Budget: o.Budget,
		Tune:    forecast.TuneOptions{GBDTTrials: o.GBDTTrials, LSTMTrials: o.LSTMTrials},
		OnTrial: prog.Trial,
	}
	runner := &pipeline.Runner{Pipeline: "forecast-eval", Store: store, Metadata: md, Progress: prog.Event}
	start := time.Now()
	res, err := runner.Run(ctx, "eval-1", pipeline.Standard(cfg, store, md))
	prog.Done()
	if err != nil {
		return nil, err
	}
	out.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	g, _ := pipeline.As[*pipeline.TransformGraph](res.Artifacts["transform"])
	ev, err := pipeline.As[*pipeline.Evaluation](res.Artifacts["evaluation"])
	if err != nil {
		return nil, err
	}
	ma, _ := pipeline.As[*pipeline.ModelArtifact](res.Artifacts["model"])
	out.Notes = append(out.Notes, g.Notes...)
	out.Notes = append(out.Notes, "rolling-origin test on the last 20% of the series; MASE scaled by the in-sample "+
		periodName(g.Specs[0])+" seasonal-naive MAE of the training window; errors averaged over leads 1..H")
	for hi, he := range ev.Series[0].Horizons {
		l := g.HorizonLabels[hi]
		out.order = append(out.order, l)
		hr := HorizonResult{"steps": he.Steps, "origins": he.Origins}
		for name, m := range he.Models {
			mm := map[string]any{"mase": num(m.MASE), "smape": num(m.SMAPE)}
			if m.Coverage != nil {
				mm["upper_coverage"] = num(*m.Coverage)
			}
			hr[name] = mm
		}
		sn := he.Models[forecast.SeasonalNaive].MASE
		hr["ensemble_vs_seasonal_naive"] = num(he.Models[forecast.Ensemble].MASE / sn)
		w := map[string]float64{}
		for k, v := range he.Weights {
			w[k] = round3(v)
		}
		hr["weights"] = w
		out.Horizons[l] = hr
	}
	if a, ok := res.Artifacts["hyperparameters"]; ok {
		hp, _ := pipeline.As[*pipeline.HyperParameters](a)
		out.Tuning = map[string]any{"trials": len(hp.Trials), "stopped_by_budget": hp.StoppedByBudget, "budget": hp.Budget,
			"gbdt": hp.GBDT, "lstm": hp.LSTM}
	}
	if len(out.Skipped) == 0 {
		out.Skipped = nil
	}
	if o.Report != "" {
		in := forecast.Input{Series: s, Events: events}
		if err := writeReport(ctx, o.Report, out, in, ma, res, md); err != nil {
			return nil, fmt.Errorf("--report: %w", err)
		}
	}
	return out, nil
}

func periodName(sp *forecast.SeriesSpec) string {
	switch {
	case sp.Period == 1:
		return "naive (no daily season in the window)"
	case sp.Period == sp.Week:
		return "same-time-last-week"
	default:
		return "same-time-yesterday"
	}
}

// round3 rounds to 3 decimals; an undefined figure (nothing scored) is
// NaN, written as null.
func round3(x float64) float64 {
	return math.Round(x*1000) / 1000
}

// num is a JSON number, or null for NaN.
func num(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return round3(x)
}

// fnum reads back a number written by num (NaN for null).
func fnum(v any) float64 {
	if f, ok := v.(float64); ok {
		return f
	}
	return math.NaN()
}

// label names a horizon as people write it: 30m, 2h, 1h30m, 10s. (It
// used to drop any trailing "0s", so a 10s horizon was labelled "1".)
func label(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		s = d.String()
	}
	return s
}

func sortedValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
