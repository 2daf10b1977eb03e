package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // TZID in calendars

	ical "github.com/emersion/go-ical"
	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/pipeline"
)

func newForecastCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forecast",
		Short: "Evaluate the load forecasters on a trace",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newForecastEvalCmd())
	return cmd
}

// evalFlags are the flags of `lbsys forecast eval`.
type evalFlags struct {
	trace, timeCol, valueCol, mode, horizons, events, format, report, holidays, tz string
	step, budget                                                                   time.Duration
	seed                                                                           uint64
	gbdtTrials, lstmTrials                                                         int
	noLSTM, quiet                                                                  bool
}

func newForecastEvalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval --trace FILE.csv [flags]",
		Short: "Run the forecasting pipeline on one CSV and print MASE and sMAPE per horizon and model",
		Long: `Run the whole forecasting pipeline (ExampleGen → StatisticsGen → SchemaGen →
ExampleValidator → Transform → Tuner → Trainer → Evaluator → Pusher) on one
trace CSV, and print for every horizon and every model (seasonal naive, ETS,
GBDT, LSTM, the stacking ensemble) the MASE and sMAPE of a rolling-origin
evaluation on the last 20% of the series (never seen by training, tuning or
the ensemble weights), with the upper band's coverage.

The CSV needs a header row. --time-col defaults to the first column holding
timestamps; --value-col to the first other column. A missing row or an empty
value is a gap, never zero; timestamps must lie on the series' own step.
Per-request arrival logs (no interval between rows covers half of them) are
aggregated first: the count of arrivals (or the sum of --value-col) per
--step, 1 min by default or finer for logs shorter than 5 h; the partial
first and last steps are dropped.

A horizon is rounded up to whole steps (30m of an hourly series is its next
hour); a horizon that does not fit the series is skipped with the reason.
--events FILE.ics adds calendar features (in-event flags, time to and since
events per category; RRULEs are expanded over the series' window).

Tuning (goptuna TPE) runs until --gbdt-trials/--lstm-trials or --budget,
whichever comes first. With the same seed, trial counts and data the output
is identical; if the budget cut tuning short, "stopped_by_budget" says so.

Examples:
  lbsys forecast eval --trace nasa_http_1995_07_5min.csv
  lbsys forecast eval --trace pedestrians_hourly.csv --value-col location_41 --format md
  lbsys forecast eval --trace azure_llm_conv_arrivals.csv --horizons 1m,5m --step 10s
  lbsys forecast eval --trace nyc_taxi_30min.csv --events holidays.ics --report out/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runForecastEval(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.trace, "trace", "", "trace CSV file (required)")
	fl.StringVar(&f.timeCol, "time-col", "", "timestamp column (default: the first column holding timestamps)")
	fl.StringVar(&f.valueCol, "value-col", "", "value column (default: the first other column; for arrivals: count rows)")
	fl.StringVar(&f.mode, "mode", "auto", "auto, series or arrivals (per-request log to aggregate)")
	fl.DurationVar(&f.step, "step", 0, "aggregation step for arrivals (default: 1m, finer for logs shorter than 5h)")
	fl.StringVar(&f.horizons, "horizons", "30m,2h", "comma-separated forecast horizons")
	fl.StringVar(&f.events, "events", "", "iCalendar file of events (sales, premieres, holidays)")
	fl.StringVar(&f.tz, "tz", "UTC", "time zone of the trace's naive timestamps (to place calendar events)")
	fl.StringVar(&f.holidays, "holidays", "us", "public holiday calendar: us, au or none")
	fl.StringVar(&f.format, "format", "json", "output format: json or md")
	fl.DurationVar(&f.budget, "budget", 30*time.Second, "wall-clock budget of hyperparameter tuning (0: no tuning)")
	fl.IntVar(&f.gbdtTrials, "gbdt-trials", 16, "GBDT tuning trials")
	fl.IntVar(&f.lstmTrials, "lstm-trials", 6, "LSTM tuning trials")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed (same seed, same forecast)")
	fl.BoolVar(&f.noLSTM, "no-lstm", false, "leave the LSTM out (faster)")
	fl.StringVar(&f.report, "report", "", "write report.md, eval.json, PNG plots and the pipeline's artifacts to this directory")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	return cmd
}

// horizonResult is one horizon of the JSON output: each model's metrics,
// plus how the horizon was evaluated.
type horizonResult map[string]any

// evalOutput is the JSON document `forecast eval` prints.
type evalOutput struct {
	Series   string                   `json:"series"`
	Column   string                   `json:"column,omitempty"`
	Step     string                   `json:"step"`
	Steps    int                      `json:"steps"`
	Gaps     int                      `json:"gaps"`
	Load     string                   `json:"load,omitempty"`
	Horizons map[string]horizonResult `json:"horizons"`
	Skipped  map[string]string        `json:"skipped,omitempty"`
	Notes    []string                 `json:"notes,omitempty"`
	Tuning   map[string]any           `json:"tuning,omitempty"`
	Seconds  float64                  `json:"seconds"`
	order    []string
}

func runForecastEval(cmd *cobra.Command, f evalFlags) error {
	if f.trace == "" {
		return usageError{errors.New("--trace is required (a CSV file with a header row)")}
	}
	if f.format != "json" && f.format != "md" {
		return usageError{fmt.Errorf("--format %q: expected json or md", f.format)}
	}
	if _, err := forecast.HolidaysByName(f.holidays); err != nil {
		return usageError{fmt.Errorf("--holidays: %w", err)}
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return usageError{fmt.Errorf("--tz: %w", err)}
	}
	var horizons []time.Duration
	for _, h := range strings.Split(f.horizons, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(h))
		if err != nil || d <= 0 {
			return usageError{fmt.Errorf("--horizons: %q is not a positive duration such as 30m or 2h", h)}
		}
		horizons = append(horizons, d)
	}
	file, err := os.Open(f.trace)
	if err != nil {
		return usageError{fmt.Errorf("--trace: %w", err)}
	}
	s, info, err := forecast.ReadCSV(file, filepath.Base(f.trace), forecast.CSVOptions{TimeCol: f.timeCol, ValueCol: f.valueCol, Mode: f.mode, Step: f.step})
	file.Close()
	if err != nil {
		return usageError{fmt.Errorf("--trace: %w", err)}
	}
	out := &evalOutput{Series: s.Name, Column: info.ValueCol, Step: s.Step.String(), Steps: s.Len(), Gaps: s.Gaps(),
		Horizons: map[string]horizonResult{}, Skipped: map[string]string{}}
	if info.Arrivals {
		out.Load = "per-request arrivals aggregated: " + info.Aggregation
	}
	opts := forecast.Options{Seed: f.seed, Holidays: f.holidays, NoLSTM: f.noLSTM}
	// Keep the horizons that fit the series; say why the others do not.
	var keep []time.Duration
	for _, d := range horizons {
		n, _ := pipeline.HorizonSteps(d, s.Step)
		if _, _, err := forecast.Splits(s.Len(), n, opts); err != nil {
			out.Skipped[label(d)] = fmt.Sprintf("%v = %d steps of %v: %v", d, n, s.Step, err)
			continue
		}
		keep = append(keep, d)
	}
	if len(keep) == 0 {
		writeEval(cmd.OutOrStdout(), out, f.format)
		return fmt.Errorf("no horizon fits %s (%d steps of %v, %v): %s", s.Name, s.Len(), s.Step,
			time.Duration(s.Len())*s.Step, strings.Join(sortedValues(out.Skipped), "; "))
	}
	var events []forecast.Event
	if f.events != "" {
		hmax := keep[0]
		for _, d := range keep {
			hmax = max(hmax, d)
		}
		events, err = readICS(f.events, loc, s.Start.Add(-8*24*time.Hour), s.End().Add(hmax+8*24*time.Hour))
		if err != nil {
			return usageError{fmt.Errorf("--events: %w", err)}
		}
		out.Notes = append(out.Notes, fmt.Sprintf("%d calendar event occurrences from %s", len(events), filepath.Base(f.events)))
	}

	dataDir := f.report
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "lbsys-forecast-"); err != nil {
			return err
		}
		defer os.RemoveAll(dataDir)
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return usageError{fmt.Errorf("--report: %w", err)}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	store := &pipeline.Store{Dir: dataDir}
	md := pipeline.NewMemoryMetadata()
	prog := newProgress(cmd.ErrOrStderr(), f.quiet, f.gbdtTrials+f.lstmTrials)
	cfg := pipeline.Config{
		Source:   &pipeline.SeriesSource{Name: f.trace, Inputs: []forecast.Input{{Series: s, Events: events}}},
		Horizons: keep, Options: opts, Budget: f.budget,
		Tune:    forecast.TuneOptions{GBDTTrials: f.gbdtTrials, LSTMTrials: f.lstmTrials},
		OnTrial: prog.trial,
	}
	runner := &pipeline.Runner{Pipeline: "forecast-eval", Store: store, Metadata: md, Progress: prog.event}
	start := time.Now()
	res, err := runner.Run(ctx, "eval-1", pipeline.Standard(cfg, store, md))
	prog.done()
	if err != nil {
		return err
	}
	out.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	g, _ := pipeline.As[*pipeline.TransformGraph](res.Artifacts["transform"])
	ev, err := pipeline.As[*pipeline.Evaluation](res.Artifacts["evaluation"])
	if err != nil {
		return err
	}
	ma, _ := pipeline.As[*pipeline.ModelArtifact](res.Artifacts["model"])
	out.Notes = append(out.Notes, g.Notes...)
	out.Notes = append(out.Notes, "rolling-origin test on the last 20% of the series; MASE scaled by the in-sample "+
		periodName(g.Specs[0])+" seasonal-naive MAE of the training window; errors averaged over leads 1..H")
	for hi, he := range ev.Series[0].Horizons {
		l := g.HorizonLabels[hi]
		out.order = append(out.order, l)
		hr := horizonResult{"steps": he.Steps, "origins": he.Origins}
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
	if f.report != "" {
		if err := writeReport(f.report, out, s, events, ma, res, md, ctx); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	return writeEval(cmd.OutOrStdout(), out, f.format)
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

func label(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
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

var modelOrder = []string{forecast.SeasonalNaive, forecast.Smoothing, forecast.Boosted, forecast.Recurrent, forecast.Ensemble}

func writeEval(w io.Writer, out *evalOutput, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	_, err := io.WriteString(w, evalMarkdown(out))
	return err
}

func evalMarkdown(out *evalOutput) string {
	var b strings.Builder
	col := ""
	if out.Column != "" {
		col = " (" + out.Column + ")"
	}
	fmt.Fprintf(&b, "## %s%s\n\n%d steps of %s, %d gaps.", out.Series, col, out.Steps, out.Step, out.Gaps)
	if out.Load != "" {
		fmt.Fprintf(&b, " %s.", out.Load)
	}
	b.WriteString("\n\n| horizon | model | MASE | sMAPE % | vs seasonal naive | weight |\n|---|---|---|---|---|---|\n")
	for _, h := range out.order {
		hr := out.Horizons[h]
		w, _ := hr["weights"].(map[string]float64)
		sn := fnum(hr[forecast.SeasonalNaive].(map[string]any)["mase"])
		for _, m := range modelOrder {
			mm, ok := hr[m].(map[string]any)
			if !ok {
				continue
			}
			wt := ""
			if v, ok := w[m]; ok {
				wt = fmt.Sprintf("%.2f", v)
			}
			mase := fnum(mm["mase"])
			extra := ""
			if c, ok := mm["upper_coverage"]; ok {
				extra = fmt.Sprintf(" (upper band covers %.0f%%)", 100*fnum(c))
			}
			fmt.Fprintf(&b, "| %s (%d steps) | %s%s | %.3f | %.1f | %.2f | %s |\n", h, hr["steps"], m, extra, mase, fnum(mm["smape"]), mase/sn, wt)
		}
	}
	for h, why := range out.Skipped {
		fmt.Fprintf(&b, "\nSkipped %s: %s\n", h, why)
	}
	for _, n := range out.Notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	if out.Tuning != nil {
		fmt.Fprintf(&b, "\n- tuning: %v trials, budget %v, stopped by budget: %v", out.Tuning["trials"], out.Tuning["budget"], out.Tuning["stopped_by_budget"])
	}
	fmt.Fprintf(&b, "\n- %.1f s\n", out.Seconds)
	return b.String()
}

// progress prints one line per component and a trial counter while the
// Tuner runs (rewritten in place on a terminal).
type progress struct {
	mu     sync.Mutex // the two tuning searches report trials concurrently
	w      io.Writer
	quiet  bool
	tty    bool
	trials int
	n      int
	cur    string
	total  int
}

func newProgress(w io.Writer, quiet bool, trials int) *progress {
	p := &progress{w: w, quiet: quiet, trials: trials}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func bar(frac float64, width int) string {
	k := int(math.Round(frac * float64(width)))
	k = max(0, min(width, k))
	return "[" + strings.Repeat("#", k) + strings.Repeat(".", width-k) + "]"
}

func (p *progress) event(e pipeline.Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = e.Total
	switch e.State {
	case "start":
		p.cur = e.Component
		fmt.Fprintf(p.w, "%s %2d/%d %-17s running\n", bar(float64(e.Index-1)/float64(e.Total), 20), e.Index, e.Total, e.Component)
	case "done", "cached":
		if p.tty && p.n > 0 {
			fmt.Fprintln(p.w)
		}
		fmt.Fprintf(p.w, "%s %2d/%d %-17s %s %.1fs\n", bar(float64(e.Index)/float64(e.Total), 20), e.Index, e.Total, e.Component, e.State, e.Seconds)
	case "failed":
		fmt.Fprintf(p.w, "%s %2d/%d %-17s failed: %v\n", bar(float64(e.Index-1)/float64(e.Total), 20), e.Index, e.Total, e.Component, e.Err)
	}
}

func (p *progress) trial(t forecast.Trial) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	n := p.n
	line := fmt.Sprintf("        %s trial %d/%d (%s #%d: validation MASE %.3f)", bar(float64(n)/float64(max(p.trials, 1)), 20), n, p.trials, t.Model, t.Number, t.Value)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet && p.tty && p.n > 0 {
		fmt.Fprintln(p.w)
	}
}

// readICS reads VEVENTs from an iCalendar file and expands their RRULEs
// over [from, to). Times are converted to loc and made naive (the trace's
// own clock); floating and all-day times are read in loc. The category is
// the first CATEGORIES value, else the SUMMARY.
func readICS(path string, loc *time.Location, from, to time.Time) ([]forecast.Event, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	cal, err := ical.NewDecoder(fh).Decode()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	naive := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	// The window in loc's wall clock, as absolute times for the RRULE.
	inLoc := func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc)
	}
	var out []forecast.Event
	for i, e := range cal.Events() {
		start, err := e.DateTimeStart(loc)
		if err != nil {
			return nil, fmt.Errorf("%s: event %d: DTSTART: %w", path, i+1, err)
		}
		end, err := e.DateTimeEnd(loc)
		if err != nil {
			return nil, fmt.Errorf("%s: event %d: DTEND: %w", path, i+1, err)
		}
		if !end.After(start) {
			end = start.Add(time.Hour)
		}
		cat := "event"
		if pc := e.Props.Get(ical.PropCategories); pc != nil {
			if c, err := pc.TextList(); err == nil && len(c) > 0 && c[0] != "" {
				cat = c[0]
			}
		}
		if cat == "event" {
			if s, err := e.Props.Text(ical.PropSummary); err == nil && s != "" {
				cat = s
			}
		}
		cat = strings.Map(func(r rune) rune {
			if r == ' ' || r == '/' || r == ',' {
				return '_'
			}
			return r
		}, strings.ToLower(cat))
		dur := end.Sub(start)
		starts := []time.Time{start}
		set, err := e.RecurrenceSet(loc)
		if err != nil {
			return nil, fmt.Errorf("%s: event %d: RRULE: %w", path, i+1, err)
		}
		if set != nil {
			starts = set.Between(inLoc(from).Add(-dur), inLoc(to), true)
			if len(starts) > 100_000 {
				return nil, fmt.Errorf("%s: event %d expands to %d occurrences; narrow its RRULE", path, i+1, len(starts))
			}
		}
		for _, s := range starts {
			out = append(out, forecast.Event{Start: naive(s), End: naive(s.Add(dur)), Category: cat})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// writeReport writes report.md, eval.json, lineage.json and one PNG per
// horizon (actual vs forecast at that lead over the end of the test).
func writeReport(dir string, out *evalOutput, s *forecast.Series, events []forecast.Event, ma *pipeline.ModelArtifact,
	res *pipeline.Result, md pipeline.Metadata, ctx context.Context) error {
	var b strings.Builder
	b.WriteString("# Forecast evaluation\n\n")
	b.WriteString(evalMarkdown(out))
	b.WriteString("\n## Plots\n\nActual load and the forecast made one horizon earlier, over the end of the held-out test window.\n")
	m := &ma.Model
	in := forecast.Input{Series: s, Events: events}
	for hi, l := range out.order {
		H := m.Options.Horizons[hi]
		sp := m.Specs[0]
		span := min(sp.N-sp.ValidEnd, max(3*max(sp.Day, 1), 200))
		if sp.Day == 0 {
			span = sp.N - sp.ValidEnd
		}
		from := sp.N - span
		actual, preds, err := m.PathAtLead(in, hi, H, from, sp.N)
		if err != nil {
			return err
		}
		name := "forecast_" + l + ".png"
		if err := plotPath(filepath.Join(dir, name), fmt.Sprintf("%s: forecast %s ahead (%d steps)", s.Name, l, H),
			s.Time(from), s.Step, actual, preds); err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n### %s\n\n![%s](%s)\n", l, l, name)
	}
	if hp, ok := res.Artifacts["hyperparameters"]; ok {
		h, _ := pipeline.As[*pipeline.HyperParameters](hp)
		b.WriteString("\n## Tuning trials (TPE)\n\n| model | # | validation MASE | seconds | parameters |\n|---|---|---|---|---|\n")
		for _, t := range h.Trials {
			keys := make([]string, 0, len(t.Params))
			for k := range t.Params {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var ps []string
			for _, k := range keys {
				ps = append(ps, fmt.Sprintf("%s=%.4g", k, t.Params[k]))
			}
			fmt.Fprintf(&b, "| %s | %d | %.4f | %.1f | %s |\n", t.Model, t.Number, t.Value, t.Seconds, strings.Join(ps, " "))
		}
	}
	b.WriteString("\n## Lineage\n\n| component | status | seconds | outputs |\n|---|---|---|---|\n")
	for _, e := range res.Executions {
		var outs []string
		for k, id := range e.Outputs {
			a, err := md.Artifact(ctx, id)
			if err == nil {
				outs = append(outs, fmt.Sprintf("%s → %s", k, a.URI))
			}
		}
		sort.Strings(outs)
		st := e.Status
		if e.Cached {
			st = "cached"
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %s |\n", e.Component, st, e.Seconds, strings.Join(outs, "<br>"))
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(dir, "eval.json"), out); err != nil {
		return err
	}
	return writeJSONFile(filepath.Join(dir, "lineage.json"), res.Executions)
}

// plotPath draws the actual series, the ensemble, seasonal naive and the
// upper band against time (hours from the plot's start).
func plotPath(path, title string, start time.Time, step time.Duration, actual []float64, preds map[string][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "hours after " + start.Format("2006-01-02 15:04")
	p.Y.Label.Text = "load per step"
	line := func(ys []float64, c color.Color, width vg.Length, dashed bool, name string) error {
		var pts plotter.XYs
		for i, y := range ys {
			if math.IsNaN(y) {
				continue
			}
			pts = append(pts, plotter.XY{X: float64(i) * step.Hours(), Y: y})
		}
		if len(pts) == 0 {
			return nil
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, width
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	if err := line(actual, color.RGBA{60, 60, 60, 255}, vg.Points(1), false, "actual"); err != nil {
		return err
	}
	if err := line(preds[forecast.SeasonalNaive], color.RGBA{230, 150, 30, 255}, vg.Points(0.8), false, "seasonal naive"); err != nil {
		return err
	}
	if err := line(preds[forecast.Ensemble], color.RGBA{20, 100, 220, 255}, vg.Points(1.2), false, "ensemble"); err != nil {
		return err
	}
	if err := line(preds["upper"], color.NRGBA{20, 100, 220, 150}, vg.Points(0.8), true, "upper band"); err != nil {
		return err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p.Save(12*vg.Inch, 4*vg.Inch, path)
}

// writeJSONFile writes v as indented JSON to path (the reports' data files).
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
