package evalreport

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/pipeline"
)

var modelOrder = []string{forecast.SeasonalNaive, forecast.Smoothing, forecast.Boosted, forecast.Recurrent, forecast.Ensemble}

// Write writes out as indented JSON (format "json") or Markdown ("md").
func Write(w io.Writer, out *Output, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	_, err := io.WriteString(w, Markdown(out))
	return err
}

// Markdown renders the evaluation: a table of every horizon and model,
// then the skipped horizons, the notes and the tuning.
func Markdown(out *Output) string {
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

// writeReport writes report.md, eval.json, lineage.json and one PNG per
// horizon (actual vs forecast at that lead over the end of the test).
func writeReport(ctx context.Context, dir string, out *Output, in forecast.Input, ma *pipeline.ModelArtifact,
	res *pipeline.Result, md pipeline.Metadata) error {
	s := in.Series
	var b strings.Builder
	b.WriteString("# Forecast evaluation\n\n")
	b.WriteString(Markdown(out))
	b.WriteString("\n## Plots\n\nActual load and the forecast made one horizon earlier, over the end of the held-out test window.\n")
	m := &ma.Model
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
	if err := pipeline.WriteJSONFile(filepath.Join(dir, "eval.json"), out); err != nil {
		return err
	}
	return pipeline.WriteJSONFile(filepath.Join(dir, "lineage.json"), res.Executions)
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
