package sim

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestCurveWeekly: the weekly cycle peaks at noon of peak_day and bottoms
// out three and a half days from it, multiplies the daily one, and makes
// peak_day the busiest day of the week with its neighbours equally busy.
func TestCurveWeekly(t *testing.T) {
	// 2026-11-27 is a Friday.
	fri := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		curve Curve
		at    time.Time
		want  float64
	}{
		{"peak at noon of the peak day", Curve{Base: 100, Weekly: 0.5, PeakDay: "friday"}, fri.Add(12 * time.Hour), 150},
		{"trough half a week away", Curve{Base: 100, Weekly: 0.5, PeakDay: "friday"}, fri.Add(-72 * time.Hour), 50},
		{"a day before the peak", Curve{Base: 100, Weekly: 0.5, PeakDay: "friday"}, fri.Add(-12 * time.Hour), 100 * (1 + 0.5*math.Cos(2*math.Pi/7))},
		{"a day after the peak", Curve{Base: 100, Weekly: 0.5, PeakDay: "friday"}, fri.Add(36 * time.Hour), 100 * (1 + 0.5*math.Cos(2*math.Pi/7))},
		{"the day name is case-insensitive", Curve{Base: 100, Weekly: 0.5, PeakDay: "Sunday"}, fri.Add(60 * time.Hour), 150},
		{"a week wraps around", Curve{Base: 100, Weekly: 0.5, PeakDay: "saturday"}, fri.Add(36*time.Hour + 7*24*time.Hour), 150},
		{"daily times weekly", Curve{Base: 100, Diurnal: 0.4, PeakHour: 12, Weekly: 0.5, PeakDay: "friday"}, fri.Add(12 * time.Hour), 100 * 1.4 * 1.5},
		{"daily trough on the weekly peak day", Curve{Base: 100, Diurnal: 0.4, PeakHour: 12, Weekly: 0.5, PeakDay: "friday"}, fri, 100 * 0.6 * (1 + 0.5*math.Cos(math.Pi/7))},
		{"no weekly amplitude", Curve{Base: 100, PeakDay: "monday"}, fri, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := curveAt(&tc.curve, tc.at); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("%s %v: %.6f, want %.6f", tc.at.Weekday(), tc.at.Format("15:04"), got, tc.want)
			}
		})
	}

	// Volume per day of the week, with and without a daily cycle.
	volumes := func(c Curve) [7]float64 {
		var vol [7]float64
		sunday := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
		for m := 0; m < 7*24*60; m++ {
			at := sunday.Add(time.Duration(m)*time.Minute + 30*time.Second) // mid-minute: symmetric sums
			vol[at.Weekday()] += curveAt(&c, at)
		}
		return vol
	}
	vol := volumes(Curve{Base: 100, Diurnal: 0.6, PeakHour: 20, Weekly: 0.15, PeakDay: "sunday"})
	for d := time.Monday; d <= time.Saturday; d++ {
		if vol[time.Sunday] < 1.01*vol[d] {
			t.Errorf("peak_day sunday: %v has %.0f, %v %.0f: the peak day is not clearly the busiest", time.Sunday, vol[time.Sunday], d, vol[d])
		}
	}
	vol = volumes(Curve{Base: 100, Weekly: 0.15, PeakDay: "sunday"})
	if math.Abs(vol[time.Saturday]-vol[time.Monday]) > 1e-9*vol[time.Monday] {
		t.Errorf("the days either side of the peak differ: saturday %.3f, monday %.3f", vol[time.Saturday], vol[time.Monday])
	}
}

// TestBuildRateTrace: a trace's counts per row step become a rate (scaled
// by the replay speed), and peak_rps maps the maximum of the replayed span
// — only that span: not the rest of the trace, not what lies just past the
// end — to the given rate; campaigns and flash sales multiply the result.
func TestBuildRateTrace(t *testing.T) {
	// One row a minute from 00:00: 60, 120, 240, 120, then a spike.
	csv := "timestamp,requests\n" +
		"2026-01-01 00:00,60\n2026-01-01 00:01,120\n2026-01-01 00:02,240\n2026-01-01 00:03,120\n" +
		"2026-01-01 00:04,30000\n2026-01-01 00:05,60\n"
	type probe struct {
		at   time.Duration
		want float64
	}
	cases := []struct {
		name, load string
		dur        time.Duration
		probes     []probe
		max        float64 // the curve's maximum over [0, dur]
	}{
		{"counts per minute become a per-second rate", "{trace: {file: t.csv}}", 3 * time.Minute,
			[]probe{{0, 1}, {time.Minute, 2}, {90 * time.Second, 3}, {2 * time.Minute, 4}}, 4},
		{"speed compresses trace time", "{trace: {file: t.csv, speed: 60}}", 3 * time.Second,
			[]probe{{0, 60}, {time.Second, 120}, {2 * time.Second, 240}, {3 * time.Second, 120}}, 240},
		{"peak_rps maps the span's maximum", "{trace: {file: t.csv, peak_rps: 480}}", 150 * time.Second,
			[]probe{{0, 120}, {time.Minute, 240}, {2 * time.Minute, 480}, {150 * time.Second, 360}}, 480},
		{"a spike just past the end does not count", "{trace: {file: t.csv, peak_rps: 480}}", 3 * time.Minute,
			[]probe{{2 * time.Minute, 480}, {3 * time.Minute, 240}}, 480},
		{"a spike ending the span does", "{trace: {file: t.csv, peak_rps: 600}}", 4 * time.Minute,
			[]probe{{4 * time.Minute, 600}, {2 * time.Minute, 600 * 240 / 30000.0}}, 600},
		{"from skips what comes before", "{trace: {file: t.csv, from: 2026-01-01T00:05:00, peak_rps: 6}}", time.Minute / 2,
			[]probe{{0, 6}}, 6},
		{"from with a spike earlier", "{trace: {file: t.csv, from: 2026-01-01T00:02:00, peak_rps: 100}}", time.Minute,
			[]probe{{0, 100}, {time.Minute, 50}}, 100},
		{"a flash sale multiplies the scaled trace", "{trace: {file: t.csv, peak_rps: 480}, flash_sales: [{after: 2m, x: 2, rise: 0s, for: 1m}]}", 3 * time.Minute,
			[]probe{{time.Minute, 240}, {2 * time.Minute, 960}}, 960},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := mustParse(t, fmt.Sprintf("duration: %v\nclients: {mode: requests}\nload: %s\nservices: [{name: a}]\n", tc.dur, tc.load))
			if err := sc.LoadTrace(func(string) ([]byte, error) { return []byte(csv), nil }); err != nil {
				t.Fatal(err)
			}
			rc, err := buildRate(sc, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.probes {
				if got := rc.at(int64(p.at)); math.Abs(got-p.want) > 1e-9*p.want {
					t.Errorf("rate at %v: %.6f, want %.6f", p.at, got, p.want)
				}
			}
			mx := 0.0
			for at := int64(0); at <= int64(tc.dur); at += int64(time.Second) {
				mx = math.Max(mx, rc.at(at))
			}
			if math.Abs(mx-tc.max) > 1e-9*tc.max {
				t.Errorf("maximum over the replayed span %.6f, want %.6f", mx, tc.max)
			}
		})
	}

	sc := mustParse(t, "duration: 1m\nclients: {mode: requests}\nload: {trace: {file: t.csv, from: 2026-01-01T00:10:00, peak_rps: 5}}\nservices: [{name: a}]\n")
	if err := sc.LoadTrace(func(string) ([]byte, error) { return []byte(csv), nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := buildRate(sc, nil); err == nil || !strings.Contains(err.Error(), "no demand") {
		t.Errorf("peak_rps over a span after the trace: %v, want a no-demand error", err)
	}
}
