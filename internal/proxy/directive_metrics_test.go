package proxy

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/telemetry"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func at(min float64) time.Time { return t0.Add(time.Duration(min * float64(time.Minute))) }

func TestForecastAt(t *testing.T) {
	band := []directive.Point{
		{At: at(0), RPS: 100, Lo: 80, Hi: 120},
		{At: at(10), RPS: 200, Lo: 150, Hi: 300},
		{At: at(20), RPS: 50, Lo: 40, Hi: 60},
	}
	noBandAtEnd := []directive.Point{
		{At: at(0), RPS: 100, Hi: 120},
		{At: at(10), RPS: 200}, // no interval
		{At: at(20), RPS: 300, Hi: 330},
	}
	for _, tc := range []struct {
		name             string
		points           []directive.Point
		t                time.Time
		rps, upper       float64
		hasRPS, hasUpper bool
	}{
		{"no forecast", nil, at(0), 0, 0, false, false},
		{"before the first point", band, at(-0.01), 0, 0, false, false},
		{"after the last point", band, at(20.01), 0, 0, false, false},
		{"on the first point", band, at(0), 100, 120, true, true},
		{"on a middle point", band, at(10), 200, 300, true, true},
		{"on the last point", band, at(20), 50, 60, true, true},
		{"a quarter of the way", band, at(2.5), 125, 165, true, true},
		{"half way down", band, at(15), 125, 180, true, true},
		{"next to a point without band", noBandAtEnd, at(5), 150, 0, true, false},
		{"on a point without band", noBandAtEnd, at(10), 200, 0, true, false},
		{"between two points without band on one side", noBandAtEnd, at(15), 250, 0, true, false},
		{"single point, at it", band[:1], at(0), 100, 120, true, true},
		{"single point, after it", band[:1], at(1), 0, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rps, up, ok, okUp := forecastAt(tc.points, tc.t)
			if ok != tc.hasRPS || okUp != tc.hasUpper || math.Abs(rps-tc.rps) > 1e-9 || math.Abs(up-tc.upper) > 1e-9 {
				t.Fatalf("forecastAt = %v, %v, %v, %v; want %v, %v, %v, %v", rps, up, ok, okUp, tc.rps, tc.upper, tc.hasRPS, tc.hasUpper)
			}
		})
	}
}

func TestFloorAt(t *testing.T) {
	until := at(30)
	for _, tc := range []struct {
		name  string
		scale *directive.Scale
		t     time.Time
		want  int
		ok    bool
	}{
		{"no recommendation", nil, at(0), 0, false},
		{"no until: holds while the directive runs", &directive.Scale{Replicas: 6}, at(1e6), 6, true},
		{"before until", &directive.Scale{Replicas: 8, Until: &until}, at(29.99), 8, true},
		{"lapses at until", &directive.Scale{Replicas: 8, Until: &until}, at(30), 0, false},
		{"after until", &directive.Scale{Replicas: 8, Until: &until}, at(31), 0, false},
		{"a floor of zero is a floor", &directive.Scale{Replicas: 0}, at(0), 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, ok := floorAt(tc.scale, tc.t)
			if n != tc.want || ok != tc.ok {
				t.Fatalf("floorAt = %d, %v; want %d, %v", n, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSectionEvents(t *testing.T) {
	r := func(e string) *directive.Reason { return &directive.Reason{Text: "x", Event: e} }
	sec := &directive.Service{
		WeightsWhy: r("newsletter 2026-11-27T09:00:00Z"),
		Admission:  &directive.Admission{Seed: 10, Why: r(" flash-sale 2026-11-27T10:00:00Z ")},
		Cache:      &directive.Cache{Why: r("")},
		Scale:      &directive.Scale{Replicas: 3, Why: r("flash-sale 2026-11-27T10:00:00Z")},
	}
	got := strings.Join(sectionEvents(sec), "|")
	if want := "flash-sale 2026-11-27T10:00:00Z|newsletter 2026-11-27T09:00:00Z"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	bad := &directive.Service{WeightsWhy: r("bad \xff byte")}
	if e := sectionEvents(bad); len(e) != 1 || e[0] != "bad \uFFFD byte" {
		t.Fatalf("invalid UTF-8 kept: %q", e)
	}
}

// scrape renders the collector's series as "name{labels} value" lines.
func scrape(t *testing.T, m *directiveMetrics) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var ls []string
			for _, l := range mt.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := mt.GetGauge().GetValue()
			if mt.Counter != nil {
				v = mt.GetCounter().GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(ls, ","), v))
		}
	}
	return strings.Join(lines, "\n")
}

// TestDirectiveMetricsOverTime: the published snapshot answers for the
// scrape's time: the forecast moves with the clock and disappears past its
// end, the floor disappears when it lapses, a new version counts a change
// and a removed section counts one and takes its series away.
func TestDirectiveMetricsOverTime(t *testing.T) {
	clk := clock.NewManual(at(0))
	m := newDirectiveMetrics(clk)
	until := at(10)
	sec := &directive.Service{
		Admission: &directive.Admission{Seed: 120, Why: &directive.Reason{Text: "seed", Event: "flash-sale"}},
		Scale:     &directive.Scale{Replicas: 9, Until: &until},
		Why: &directive.Why{Model: "m", Forecast: []directive.Point{
			{At: at(20), RPS: 300, Hi: 400}, // out of order on purpose
			{At: at(0), RPS: 100, Hi: 150},
		}},
	}
	m.publish(map[string]appliedSection{"catalog": {version: 4, section: sec}})
	clk.Set(at(5))
	got := scrape(t, m)
	for _, want := range []string{
		`lbsys_directive_version{service="catalog"} 4`,
		`lbsys_directive_floor_replicas{service="catalog"} 9`,
		`lbsys_directive_forecast_rps{service="catalog"} 150`,
		`lbsys_directive_forecast_upper_rps{service="catalog"} 212.5`,
		`lbsys_directive_admission_seed{service="catalog"} 120`,
		`lbsys_directive_event{event="flash-sale",service="catalog"} 1`,
		`lbsys_directive_changes_total{service="catalog"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("at +5m: missing %s in\n%s", want, got)
		}
	}
	clk.Set(at(10)) // the floor lapses
	if got := scrape(t, m); strings.Contains(got, telemetry.DirectiveFloorReplicas) || !strings.Contains(got, `lbsys_directive_forecast_rps{service="catalog"} 200`) {
		t.Errorf("at +10m:\n%s", got)
	}
	clk.Set(at(21)) // past the forecast
	if got := scrape(t, m); strings.Contains(got, "forecast") || !strings.Contains(got, `lbsys_directive_version{service="catalog"} 4`) {
		t.Errorf("at +21m:\n%s", got)
	}
	// The same version again (a reconcile after a reload) is no change.
	m.publish(map[string]appliedSection{"catalog": {version: 4, section: sec}})
	if got := scrape(t, m); !strings.Contains(got, `lbsys_directive_changes_total{service="catalog"} 1`) {
		t.Errorf("re-applied section counted as a change:\n%s", got)
	}
	m.publish(map[string]appliedSection{"catalog": {version: 6, section: &directive.Service{}}})
	if got := scrape(t, m); !strings.Contains(got, `lbsys_directive_changes_total{service="catalog"} 2`) {
		t.Errorf("new version not counted:\n%s", got)
	}
	m.publish(map[string]appliedSection{})
	got = scrape(t, m)
	if strings.Contains(got, telemetry.DirectiveVersion+"{") || !strings.Contains(got, `lbsys_directive_changes_total{service="catalog"} 3`) {
		t.Errorf("after removal:\n%s", got)
	}
	var nilMetrics *directiveMetrics
	nilMetrics.publish(map[string]appliedSection{"x": {version: 1, section: sec}}) // no panic
}

// TestDirectiveMetricsThroughTheAgent: a directive from the coordinator
// shows on the proxy's /metrics; a NACKed one changes nothing there.
func TestDirectiveMetricsThroughTheAgent(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	coord := newStubCoordinator(t)
	now := time.Now()
	d := appDirective(1, a.addr, b.addr, 1, 1)
	until := now.Add(time.Hour)
	d.Services["app"].Scale.Until = &until
	d.Services["app"].Scale.Why = &directive.Reason{Text: "event floor", Event: "flash-sale 2026-11-27T10:00:00Z"}
	d.Services["app"].Why.Forecast = []directive.Point{
		{At: now.Add(-time.Hour), RPS: 250, Lo: 200, Hi: 320},
		{At: now.Add(time.Hour), RPS: 250, Lo: 200, Hi: 320},
	}
	coord.set(d)
	px := startAgentProxy(t, coord.srv.URL, t.TempDir(), a, b)
	eventually(t, 5*time.Second, "version 1", func() bool { return status(t, px).Coordinator.Version == 1 })
	_, metrics, _ := do(t, "GET", px.admin+"/metrics", "", nil)
	for _, want := range []string{
		`lbsys_directive_version{service="app"} 1`,
		`lbsys_directive_floor_replicas{service="app"} 6`,
		`lbsys_directive_forecast_rps{service="app"} 250`,
		`lbsys_directive_forecast_upper_rps{service="app"} 320`,
		`lbsys_directive_admission_seed{service="app"} 100`,
		`lbsys_directive_event{event="flash-sale 2026-11-27T10:00:00Z",service="app"} 1`,
		`lbsys_directive_changes_total{service="app"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("missing %s in\n%s", want, grepLines(metrics, "lbsys_directive"))
		}
	}
	if strings.Contains(metrics, `service="payments"`) {
		t.Errorf("a service this proxy does not have is exported:\n%s", grepLines(metrics, "payments"))
	}
	bad := appDirective(2, a.addr, b.addr, 0, 1)
	bad.Services["web"] = &directive.Service{Weights: map[string]float64{a.addr: 2}}
	coord.set(bad)
	eventually(t, 5*time.Second, "the NACK", func() bool { return coord.lastRequest().Rejected == 2 })
	_, metrics, _ = do(t, "GET", px.admin+"/metrics", "", nil)
	if !strings.Contains(metrics, `lbsys_directive_version{service="app"} 1`) || !strings.Contains(metrics, `lbsys_directive_changes_total{service="app"} 1`) {
		t.Errorf("a NACKed directive moved the metrics:\n%s", grepLines(metrics, "lbsys_directive"))
	}
}

// FuzzForecastAt: for any points and any instant, the forecast never
// panics, is absent outside the points' span, and inside it lies between
// the two points around the instant (interpolation cannot overshoot).
func FuzzForecastAt(f *testing.F) {
	f.Add(int64(0), 100.0, 120.0, int64(600), 200.0, 300.0, int64(1200), 50.0, 0.0, int64(300))
	f.Add(int64(5), 1.0, 0.0, int64(5), 2.0, 3.0, int64(5), 3.0, 4.0, int64(5))
	f.Fuzz(func(t *testing.T, s1 int64, r1, h1 float64, s2 int64, r2, h2 float64, s3 int64, r3, h3 float64, at int64) {
		for _, v := range []float64{r1, h1, r2, h2, r3, h3} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e12 {
				return // validation refuses these directives
			}
		}
		clampSec := func(s int64) time.Time { return t0.Add(time.Duration(s%1e9) * time.Second) }
		pts := []directive.Point{{At: clampSec(s1), RPS: r1, Hi: h1}, {At: clampSec(s2), RPS: r2, Hi: h2}, {At: clampSec(s3), RPS: r3, Hi: h3}}
		sec := seriesOf("x", 1, &directive.Service{Why: &directive.Why{Model: "m", Forecast: pts}})
		pts = sec.forecast
		when := clampSec(at)
		rps, up, ok, okUp := forecastAt(pts, when)
		if when.Before(pts[0].At) || when.After(pts[2].At) {
			if ok || okUp {
				t.Fatalf("forecast %v outside the points' span", rps)
			}
			return
		}
		if !ok {
			t.Fatal("no forecast inside the points' span")
		}
		// The points around when, found independently of forecastAt: the
		// last at or before it and the first at or after it.
		var a, b directive.Point
		for _, p := range pts {
			if !p.At.After(when) {
				a = p
			}
		}
		for i := len(pts) - 1; i >= 0; i-- {
			if !pts[i].At.Before(when) {
				b = pts[i]
			}
		}
		lo, hi := math.Min(a.RPS, b.RPS), math.Max(a.RPS, b.RPS)
		loU, hiU := math.Min(a.Hi, b.Hi), math.Max(a.Hi, b.Hi)
		const eps = 1e-6
		if rps < lo-eps*(1+math.Abs(lo)) || rps > hi+eps*(1+math.Abs(hi)) {
			t.Fatalf("forecast %v outside [%v, %v] at %v for %+v", rps, lo, hi, when, pts)
		}
		if okUp && (up < loU-eps*(1+math.Abs(loU)) || up > hiU+eps*(1+math.Abs(hiU))) {
			t.Fatalf("upper %v outside [%v, %v] at %v for %+v", up, loU, hiU, when, pts)
		}
	})
}
