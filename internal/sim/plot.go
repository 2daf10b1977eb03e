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
	out := []Plot{
		{File: "p99.png", Render: func(w io.Writer) error {
			return plotSeries(w, res, "p99 latency (ms)", true, func(m *ServiceMinute) float64 { return m.P99Ms })
		}},
		{File: "violations.png", Render: func(w io.Writer) error { return plotViolations(w, res) }},
		{File: "utilisation.png", Render: func(w io.Writer) error {
			return plotSeries(w, res, "utilisation spread (max - min)", false, func(m *ServiceMinute) float64 { return m.UtilSpread })
		}},
	}
	if controlled(res) {
		out = append(out, Plot{File: "control.png", Render: func(w io.Writer) error { return plotControl(w, res) }})
	}
	return out
}

// runLabel names a run in legends: the policy, and the control when it is
// not reactive.
func runLabel(pr *PolicyResult) string {
	if pr.Control == "" || pr.Control == "reactive" {
		return pr.Policy
	}
	return pr.Policy + "/" + pr.Control
}

func controlled(res *Results) bool {
	for _, pr := range res.Policies {
		if pr.Control != "" && pr.Control != "reactive" {
			return true
		}
	}
	return false
}

// plotControl draws, per service, the demand (the true offered load
// through the service's share) with the predictive controller's forecast
// and upper band, then the ready replicas of every control (for the first
// policy that ran under a controller) with the predictive floor.
func plotControl(w io.Writer, res *Results) error {
	policy := ""
	for _, pr := range res.Policies {
		if pr.Control != "" && pr.Control != "reactive" {
			policy = pr.Policy
			break
		}
	}
	var runs []*PolicyResult
	var pred *PolicyResult
	for _, pr := range res.Policies {
		if pr.Policy == policy {
			runs = append(runs, pr)
			if pr.Control == "predictive" {
				pred = pr
			}
		}
	}
	ns := nServices(res)
	var grid [][]*plot.Plot
	line := func(p *plot.Plot, pts plotter.XYs, c color.Color, dashes []vg.Length, width float64, name string) error {
		if len(pts) == 0 {
			return nil
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Dashes, l.Width = c, dashes, vg.Points(width)
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	for si := 0; si < ns; si++ {
		svc := res.Services[si]
		lp := plot.New()
		lp.Title.Text = svc.Name + ": demand and forecast (" + policy + ")"
		lp.Y.Label.Text = "requests/s"
		lp.Add(plotter.NewGrid())
		if len(runs) > 0 {
			var dem plotter.XYs
			for _, m := range runs[0].Minutes {
				dem = append(dem, plotter.XY{X: float64(m.Minute), Y: m.Services[si].OfferedRPS})
			}
			if err := line(lp, dem, color.Gray{Y: 60}, nil, 1.4, "demand"); err != nil {
				return err
			}
		}
		if pred != nil {
			var fc, up plotter.XYs
			for _, m := range pred.Minutes {
				sm := m.Services[si]
				if sm.ExpectedRPS > 0 || sm.ExpectedUpper > 0 {
					fc = append(fc, plotter.XY{X: float64(m.Minute), Y: sm.ExpectedRPS})
					up = append(up, plotter.XY{X: float64(m.Minute), Y: sm.ExpectedUpper})
				}
			}
			if err := line(lp, fc, color.RGBA{B: 200, A: 255}, nil, 1, "forecast"); err != nil {
				return err
			}
			if err := line(lp, up, color.RGBA{B: 200, A: 255}, []vg.Length{vg.Points(3), vg.Points(2)}, 1, "upper band"); err != nil {
				return err
			}
		}
		lp.Y.Min = 0
		lp.Y.Max = 1.3*lp.Y.Max + 1e-9
		lp.Legend.Top = true
		rp := plot.New()
		rp.Title.Text = svc.Name + ": ready replicas per control"
		rp.Y.Label.Text = "replicas"
		rp.Add(plotter.NewGrid())
		for ci, pr := range runs {
			var pts plotter.XYs
			for _, m := range pr.Minutes {
				pts = append(pts, plotter.XY{X: float64(m.Minute), Y: float64(m.Services[si].Replicas)})
			}
			name := pr.Control
			if name == "" {
				name = "reactive"
			}
			if err := line(rp, pts, plotutil.Color(ci), plotutil.Dashes(ci), 1.2, name); err != nil {
				return err
			}
		}
		if si == ns-1 {
			rp.X.Label.Text = "minute"
		}
		rp.Y.Min = 0
		rp.Y.Max = 1.3*rp.Y.Max + 1e-9
		rp.Legend.Top = true
		grid = append(grid, []*plot.Plot{lp}, []*plot.Plot{rp})
	}
	return renderGrid(w, grid, len(grid))
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
			p.Legend.Add(runLabel(pr), l)
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
		names[i] = runLabel(pr)
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
