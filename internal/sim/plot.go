package sim

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot is one PNG figure of a report.
type Plot struct {
	// File is the suggested file name (p99.png, ...).
	File string
	// Render draws the figure as PNG.
	Render func(w io.Writer) error
}

// maxPlotServices bounds the panels of one figure.
const maxPlotServices = 6

// Plots returns the report's figures: p99 over time per service and policy
// under the offered load; SLO-violation minutes per policy and service; the
// utilisation spread (max − min over replicas) over time.
func Plots(res *Results) []Plot {
	return []Plot{
		{File: "p99.png", Render: func(w io.Writer) error {
			return plotSeries(w, res, "p99 latency (ms)", true, func(m *ServiceMinute) float64 { return m.P99Ms })
		}},
		{File: "violations.png", Render: func(w io.Writer) error { return plotViolations(w, res) }},
		{File: "utilisation.png", Render: func(w io.Writer) error {
			return plotSeries(w, res, "utilisation spread (max - min)", false, func(m *ServiceMinute) float64 { return m.UtilSpread })
		}},
	}
}

func nServices(res *Results) int {
	return min(len(res.Services), maxPlotServices)
}

// plotSeries draws one panel per service (and the offered load on top when
// withLoad) with one line per policy.
func plotSeries(w io.Writer, res *Results, ylabel string, withLoad bool, y func(*ServiceMinute) float64) error {
	ns := nServices(res)
	rows := ns
	if withLoad {
		rows++
	}
	var grid [][]*plot.Plot
	if withLoad && len(res.Policies) > 0 {
		p := plot.New()
		p.Title.Text = res.Scenario + ": offered load"
		p.Y.Label.Text = "requests/s"
		pts := make(plotter.XYs, len(res.Policies[0].Minutes))
		for i, m := range res.Policies[0].Minutes {
			pts[i] = plotter.XY{X: float64(m.Minute), Y: m.OfferedRPS}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 90}
		p.Add(l, plotter.NewGrid())
		grid = append(grid, []*plot.Plot{p})
	}
	for si := 0; si < ns; si++ {
		svc := res.Services[si]
		p := plot.New()
		p.Title.Text = svc.Name
		p.Y.Label.Text = ylabel
		if si == ns-1 {
			p.X.Label.Text = "minute"
		}
		p.Add(plotter.NewGrid())
		for pi, pr := range res.Policies {
			pts := make(plotter.XYs, 0, len(pr.Minutes))
			for _, m := range pr.Minutes {
				if si < len(m.Services) {
					pts = append(pts, plotter.XY{X: float64(m.Minute), Y: y(&m.Services[si])})
				}
			}
			if len(pts) == 0 {
				continue
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(pi)
			l.Dashes = plotutil.Dashes(pi)
			l.Width = vg.Points(1.2)
			p.Add(l)
			p.Legend.Add(pr.Policy, l)
		}
		if withLoad && svc.SLOP99Ms > 0 && len(res.Policies) > 0 && len(res.Policies[0].Minutes) > 0 {
			ms := res.Policies[0].Minutes
			slo, err := plotter.NewLine(plotter.XYs{{X: float64(ms[0].Minute), Y: svc.SLOP99Ms}, {X: float64(ms[len(ms)-1].Minute), Y: svc.SLOP99Ms}})
			if err != nil {
				return err
			}
			slo.Color = color.RGBA{R: 200, A: 255}
			slo.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
			p.Add(slo)
			p.Legend.Add("SLO", slo)
		}
		// Head room above the data for the legend.
		p.Y.Min = 0
		p.Y.Max = 1.35*p.Y.Max + 1e-9
		p.Legend.Top = true
		grid = append(grid, []*plot.Plot{p})
	}
	return renderGrid(w, grid, rows)
}

func renderGrid(w io.Writer, grid [][]*plot.Plot, rows int) error {
	if rows == 0 {
		grid = [][]*plot.Plot{{plot.New()}}
		rows = 1
	}
	img := vgimg.New(10*vg.Inch, vg.Length(rows)*2.4*vg.Inch)
	dc := draw.New(img)
	t := draw.Tiles{Rows: rows, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(8)}
	canvases := plot.Align(grid, t, dc)
	for j := range grid {
		grid[j][0].Draw(canvases[j][0])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// plotViolations is a grouped bar chart: per policy, one bar per service.
func plotViolations(w io.Writer, res *Results) error {
	p := plot.New()
	p.Title.Text = res.Scenario + ": SLO-violation minutes"
	p.Y.Label.Text = "minutes"
	ns := nServices(res)
	width := vg.Points(float64(min(60, 240/max(1, ns*len(res.Policies)))))
	names := make([]string, len(res.Policies))
	for i, pr := range res.Policies {
		names[i] = pr.Policy
	}
	for si := 0; si < ns; si++ {
		vals := make(plotter.Values, len(res.Policies))
		for pi, pr := range res.Policies {
			if si < len(pr.Services) {
				vals[pi] = float64(pr.Services[si].ViolationMinutes)
			}
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return fmt.Errorf("violations plot: %w", err)
		}
		b.Color = plotutil.Color(si)
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(si)-float64(ns-1)/2) * width
		p.Add(b)
		p.Legend.Add(res.Services[si].Name, b)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	p.Y.Max = 1.6*p.Y.Max + 1
	p.NominalX(names...)
	return renderGrid(w, [][]*plot.Plot{{p}}, 1)
}
