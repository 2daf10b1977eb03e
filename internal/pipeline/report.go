package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lbsys/lbsys/internal/forecast"
)

// RunSummary is what `pipeline run` prints (--format json).
type RunSummary struct {
	Run        string             `json:"run"`
	Status     string             `json:"status"`
	Store      string             `json:"store"`
	Data       string             `json:"data"`
	From       time.Time          `json:"from"`
	To         time.Time          `json:"to"`
	Step       string             `json:"step"`
	Horizons   []string           `json:"horizons"`
	Series     []SeriesSummary    `json:"series"`
	Executions []ExecutionSummary `json:"executions"`
	Cached     int                `json:"cached"`
	Pushed     int                `json:"pushed"`
	Anomalies  []Anomaly          `json:"anomalies,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
	Seconds    float64            `json:"seconds"`
	// DryRun: nothing was written, pushed or proposed.
	DryRun bool `json:"dry_run,omitempty"`
	// Directive is what the directive planner did (with --coordinator or
	// --dry-run, when forecasts were pushed).
	Directive *DirectiveResult `json:"directive,omitempty"`
}

// SeriesSummary is one series of a run: where it came from, whether it
// was pushed (or why not), its forecast and its scores.
type SeriesSummary struct {
	Name     string `json:"name"`
	Service  string `json:"service"`
	Endpoint string `json:"endpoint,omitempty"`
	// Inputs are the exogenous inputs found in the store.
	Inputs   map[string]any `json:"inputs,omitempty"`
	Pushed   bool           `json:"pushed"`
	Reason   string         `json:"reason,omitempty"`
	Serving  string         `json:"serving_run,omitempty"`
	Artifact int64          `json:"forecast_artifact,omitempty"`
	// Horizons has the forecast (when pushed) and the test scores.
	Horizons []HorizonSummary `json:"horizons,omitempty"`
}

// HorizonSummary is one horizon of a series: the test scores and, when
// pushed, the forecast's first value, peak, upper peak and top drivers.
type HorizonSummary struct {
	Horizon string            `json:"horizon"`
	Steps   int               `json:"steps"`
	MASE    any               `json:"mase"`
	SNMASE  any               `json:"seasonal_naive_mase"`
	Origin  string            `json:"origin,omitempty"`
	Next    any               `json:"next,omitempty"`
	Peak    any               `json:"peak,omitempty"`
	Upper   any               `json:"upper_peak,omitempty"`
	Drivers []forecast.Driver `json:"drivers,omitempty"`
}

// ExecutionSummary is one component's execution in a run.
type ExecutionSummary struct {
	Component string  `json:"component"`
	State     string  `json:"state"` // ran, cached, failed
	Seconds   float64 `json:"seconds"`
}

// Summarize collects, per series, where it came from, whether it
// was pushed (or why not), its forecast and its test scores.
func Summarize(ctx context.Context, res *Result, src *StoreSource, sink *StoreSink,
	md Metadata) (*RunSummary, error) {
	out := &RunSummary{Run: res.Run.ID, Status: res.Run.Status}
	for _, e := range res.Executions {
		state := "ran"
		switch {
		case e.Cached:
			state = "cached"
			out.Cached++
		case e.Status != "succeeded":
			state = "failed"
		}
		out.Executions = append(out.Executions, ExecutionSummary{Component: e.Component, State: state, Seconds: math.Round(e.Seconds*100) / 100})
	}
	g, err := As[*TransformGraph](res.Artifacts["transform"])
	if err != nil {
		return nil, err
	}
	out.Horizons = g.HorizonLabels
	out.Notes = append(out.Notes, g.Notes...)
	if an, err := As[*Anomalies](res.Artifacts["anomalies"]); err == nil {
		out.Anomalies = an.Items
	}
	fc, err := As[*Forecasts](res.Artifacts["forecasts"])
	if err != nil {
		return nil, err
	}
	ev, _ := As[*Evaluation](res.Artifacts["evaluation"])
	evals := map[string]forecast.SeriesEval{}
	if ev != nil {
		for _, s := range ev.Series {
			evals[s.Series] = s
		}
	}
	bl := &Blessing{}
	if a := res.Artifacts["blessing"]; a != nil {
		if bl, err = As[*Blessing](a); err != nil {
			return nil, err
		}
	}
	model := res.Artifacts["model"]
	pushed := map[string]forecast.Forecast{}
	for _, x := range fc.Forecasts {
		pushed[x.Series] = x
	}
	arts := map[string]int64{}
	for _, d := range sink.Delivered() {
		arts[d.Series] = d.Artifact
	}
	for _, o := range src.Origins() {
		if out.From.IsZero() {
			out.From, out.To, out.Step = o.From, o.To, o.Step.String()
		}
		so := SeriesSummary{Name: o.Name, Service: o.Service, Endpoint: o.Endpoint, Inputs: map[string]any{}}
		if len(o.Upstream) > 0 {
			so.Inputs["upstream"] = o.Upstream
		}
		if len(o.Transactions) > 0 {
			so.Inputs["transactions"] = o.Transactions
		}
		if len(o.Funnel) > 0 {
			so.Inputs["funnel"] = o.Funnel
		}
		for k, v := range map[string]int{"incidents": o.Incidents, "changes": o.Changes, "events": o.Events} {
			if v > 0 {
				so.Inputs[k] = v
			}
		}
		f, ok := pushed[o.Name]
		so.Pushed, so.Artifact = ok, arts[o.Name]
		if ok {
			out.Pushed++
		}
		serving, err := md.LatestPushed(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		if serving != nil {
			so.Serving = serving.RunID
		}
		b, blessed := bl.Series[o.Name]
		switch why, dropped := g.Dropped[o.Name]; {
		case dropped:
			so.Reason = "left out: " + why
		case ok:
		case serving != nil && model != nil && serving.ModelID == model.ID:
			so.Reason = "unchanged: this model serves it already"
		case blessed && !b.Blessed:
			so.Reason = "not blessed: " + strings.Join(b.Reasons, "; ")
		default:
			so.Reason = fc.NotPushed[o.Name]
		}
		se := evals[o.Name]
		for hi, l := range g.HorizonLabels {
			ho := HorizonSummary{Horizon: l}
			if hi < len(se.Horizons) {
				he := se.Horizons[hi]
				ho.Steps = he.Steps
				ho.MASE, ho.SNMASE = summaryNum(he.Models[forecast.Ensemble].MASE), summaryNum(he.Models[forecast.SeasonalNaive].MASE)
			}
			if ok && hi < len(f.Horizons) {
				hf := f.Horizons[hi]
				ho.Steps, ho.Origin, ho.Drivers = hf.Steps, f.Origin.UTC().Format(time.RFC3339), hf.Drivers
				if len(hf.Point) > 0 {
					peak, upper := math.Inf(-1), math.Inf(-1)
					for i := range hf.Point {
						peak, upper = math.Max(peak, hf.Point[i]), math.Max(upper, hf.Upper[i])
					}
					ho.Next, ho.Peak, ho.Upper = summaryNum(hf.Point[0]), summaryNum(peak), summaryNum(upper)
				}
			}
			so.Horizons = append(so.Horizons, ho)
		}
		if len(so.Inputs) == 0 {
			so.Inputs = nil
		}
		out.Series = append(out.Series, so)
	}
	return out, nil
}

// fmtNum writes a JSON number of the summary, "-" for none.
func fmtNum(v any) string {
	if x, ok := v.(float64); ok {
		return fmt.Sprintf("%.4g", x)
	}
	return "-"
}

// Text renders the summary for a terminal: the run, the window, a table
// of every series and horizon, why each series was or was not pushed,
// anomalies, notes, and what the directive planner did.
func (out *RunSummary) Text() string {
	var b strings.Builder
	pushed := "pushed"
	if out.DryRun {
		pushed = "would be pushed (dry run)"
	}
	fmt.Fprintf(&b, "run %s %s in %.1fs: %d of %d components cached; %d of %d series %s\n", out.Run, out.Status, out.Seconds,
		out.Cached, len(out.Executions), out.Pushed, len(out.Series), pushed)
	fmt.Fprintf(&b, "window %s .. %s, step %s; store %s, artifacts %s\n", out.From.Format(time.DateTime), out.To.Format(time.DateTime),
		out.Step, out.Store, out.Data)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIES\tHORIZON\tMASE (SEASONAL NAIVE)\tNEXT\tPEAK\tUPPER PEAK\tTOP DRIVERS")
	for _, s := range out.Series {
		for _, h := range s.Horizons {
			var ds []string
			for _, d := range h.Drivers[:min(3, len(h.Drivers))] {
				ds = append(ds, fmt.Sprintf("%s %+.3g", d.Feature, d.Effect))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s\t%s\t%s\t%s\n", s.Name, h.Horizon, fmtNum(h.MASE), fmtNum(h.SNMASE), fmtNum(h.Next),
				fmtNum(h.Peak), fmtNum(h.Upper), strings.Join(ds, ", "))
		}
	}
	tw.Flush()
	for _, s := range out.Series {
		var in []string
		for _, k := range []string{"upstream", "transactions", "funnel", "incidents", "changes", "events"} {
			if v, ok := s.Inputs[k]; ok {
				in = append(in, fmt.Sprintf("%s %v", k, v))
			}
		}
		if len(in) == 0 {
			in = []string{"none"}
		}
		line := fmt.Sprintf("%s: inputs: %s", s.Name, strings.Join(in, "; "))
		switch {
		case s.Pushed && out.DryRun:
			line += "; blessed: would be pushed (dry run)"
		case s.Pushed:
			line += fmt.Sprintf("; pushed (forecast artifact %d)", s.Artifact)
		case s.Reason != "":
			line += "; not pushed: " + s.Reason
		}
		if s.Serving != "" && !s.Pushed {
			line += "; serving: the model of " + s.Serving
		}
		fmt.Fprintln(&b, line)
	}
	for _, a := range out.Anomalies {
		if a.Severity != "warning" {
			fmt.Fprintf(&b, "anomaly (%s): %s %s: %s\n", a.Severity, a.Series, a.Kind, a.Detail)
		}
	}
	for _, n := range out.Notes {
		fmt.Fprintln(&b, "note:", n)
	}
	if out.DryRun {
		fmt.Fprintln(&b, "dry run: no forecast written, nothing recorded as pushed, nothing proposed")
	}
	if out.Directive != nil {
		b.WriteString(directiveText(out.Directive))
	}
	return b.String()
}

// directiveText says what the directive planner planned and what the
// coordinator made of it; a dry run prints the directive.
func directiveText(r *DirectiveResult) string {
	var b strings.Builder
	for _, p := range r.Plans {
		line := fmt.Sprintf("plan %s: upper-band peak %.4g rps at %s (point %.4g)", p.Service, p.UpperPeakRPS,
			p.UpperPeakAt.Format(time.RFC3339), p.PeakRPS)
		if p.P50ms > 0 {
			line += fmt.Sprintf(", p50 %.4g ms", p.P50ms)
		}
		if len(p.Planned) > 0 {
			line += "; planned " + strings.Join(p.Planned, ", ")
		} else {
			line += "; nothing planned"
		}
		fmt.Fprintln(&b, line)
		if p.Section != nil && p.Section.Why != nil {
			fmt.Fprintf(&b, "  why: %s\n", p.Section.Why.ExpectedEffect)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
	}
	switch {
	case r.Standard != nil && r.Normal != nil:
		fmt.Fprintf(&b, "directive: standard change %d was outside the coordinator's policy (%s); proposed as normal change %d, %s: approve with `lbsys change approve %d --reason ...`\n",
			r.Standard.ID, strings.Join(r.Standard.Policy, "; "), r.Normal.ID, r.Normal.State, r.Normal.ID)
	case r.Standard != nil:
		fmt.Fprintf(&b, "directive: standard change %d %s (%s) against version %d\n", r.Standard.ID, r.Outcome, r.Standard.State, r.Base)
		if r.Standard.Detail != "" {
			fmt.Fprintf(&b, "  %s\n", r.Standard.Detail)
		}
	default:
		fmt.Fprintf(&b, "directive: %s (against version %d)\n", r.Outcome, r.Base)
	}
	if len(r.Withdrawn) > 0 {
		fmt.Fprintf(&b, "directive: withdrew stale pipeline changes %v\n", r.Withdrawn)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "directive note: %s\n", n)
	}
	if r.DryRun && r.Directive != nil {
		j, _ := json.MarshalIndent(r.Directive, "", "  ")
		b.Write(j)
		b.WriteString("\n")
	}
	return b.String()
}

// WriteRunReport writes report.md, run.json, lineage.json and, per
// pushed series, a PNG of its recent load with the forecast paths.
func WriteRunReport(dir string, out *RunSummary, res *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Pipeline run " + out.Run + "\n\n```\n" + out.Text() + "```\n\n")
	b.WriteString("## Executions\n\n| component | state | seconds |\n|---|---|---|\n")
	for _, e := range out.Executions {
		fmt.Fprintf(&b, "| %s | %s | %.2f |\n", e.Component, e.State, e.Seconds)
	}
	fc, _ := As[*Forecasts](res.Artifacts["forecasts"])
	tx, _ := As[*Transformed](res.Artifacts["transformed"])
	if fc != nil && tx != nil && len(fc.Forecasts) > 0 {
		b.WriteString("\n## Forecasts\n\nThe last day of load and the pushed forecast paths (dashed: upper band).\n")
		for _, f := range fc.Forecasts {
			var s *forecast.Series
			for _, in := range tx.Inputs {
				if in.Series.Name == f.Series {
					s = in.Series
				}
			}
			if s == nil {
				continue
			}
			name := "forecast_" + strings.NewReplacer("/", "_", ":", "_").Replace(f.Series) + ".png"
			if err := plotForecast(filepath.Join(dir, name), s, f, fc.HorizonLabels); err != nil {
				return err
			}
			fmt.Fprintf(&b, "\n### %s\n\n![%s](%s)\n", f.Series, f.Series, name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := WriteJSONFile(filepath.Join(dir, "run.json"), out); err != nil {
		return err
	}
	return WriteJSONFile(filepath.Join(dir, "lineage.json"), res.Executions)
}

// plotForecast draws the series' last day and each horizon's point
// forecast and upper band against hours from the plot's start.
func plotForecast(path string, s *forecast.Series, f forecast.Forecast, labels []string) error {
	p := plot.New()
	p.Title.Text = f.Series + ": forecast from " + f.Origin.UTC().Format("2006-01-02 15:04") + " UTC"
	n := min(s.Len(), max(1, int(24*time.Hour/s.Step)))
	from := s.Len() - n
	start := s.Time(from)
	p.X.Label.Text = "hours after " + start.Format("2006-01-02 15:04")
	p.Y.Label.Text = "load per step"
	hours := func(t time.Time) float64 { return t.Sub(start).Hours() }
	add := func(pts plotter.XYs, c color.Color, dashed bool, name string) error {
		if len(pts) == 0 {
			return nil
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(1)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	var actual plotter.XYs
	for i := from; i < s.Len(); i++ {
		if v := s.Values[i]; !math.IsNaN(v) {
			actual = append(actual, plotter.XY{X: hours(s.Time(i)), Y: v})
		}
	}
	if err := add(actual, color.RGBA{60, 60, 60, 255}, false, "actual"); err != nil {
		return err
	}
	palette := []color.RGBA{{20, 100, 220, 255}, {220, 60, 40, 255}, {30, 150, 70, 255}, {150, 60, 180, 255}}
	// Longest horizon first, so the shorter paths are drawn over it.
	order := make([]int, len(f.Horizons))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.Horizons[order[a]].Steps > f.Horizons[order[b]].Steps })
	for _, hi := range order {
		hf := f.Horizons[hi]
		var pt, up plotter.XYs
		for i, ts := range hf.Times {
			t, err := time.Parse(time.RFC3339, ts)
			if err != nil {
				return err
			}
			pt = append(pt, plotter.XY{X: hours(t), Y: hf.Point[i]})
			up = append(up, plotter.XY{X: hours(t), Y: hf.Upper[i]})
		}
		l := fmt.Sprint(hf.Steps, " steps")
		if hi < len(labels) {
			l = labels[hi]
		}
		c := palette[hi%len(palette)]
		if err := add(pt, c, false, "forecast "+l); err != nil {
			return err
		}
		if err := add(up, c, true, "upper "+l); err != nil {
			return err
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p.Save(12*vg.Inch, 4*vg.Inch, path)
}

// summaryNum is a JSON number rounded to 3 decimals, or null (nil) for
// NaN and infinities.
func summaryNum(x float64) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return math.Round(x*1000) / 1000
}

// WriteJSONFile writes v as indented JSON to path (the reports' data
// files).
func WriteJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
