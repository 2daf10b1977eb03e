package liveloop

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/store"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }

func TestResample(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name   string
		ts     []int64
		vs     []float64
		src    time.Duration
		factor float64
		step   time.Duration
		start  time.Time
		want   []float64
	}{
		// Counts per 5 minutes become the rate of every minute they cover.
		{"5m counts to 1m rates", []int64{ms(0), ms(5 * time.Minute)}, []float64{600, 300}, 5 * time.Minute, 1.0 / 300, time.Minute, t0,
			[]float64{2, 2, 2, 2, 2, 1, 1, 1, 1, 1}},
		// Minute rates average over a 5-minute step; a gap is left out of
		// the mean, a step with nothing is a gap.
		{"1m rates to 5m", []int64{ms(0), ms(time.Minute), ms(3 * time.Minute), ms(10 * time.Minute)}, []float64{1, 3, 5, 7}, time.Minute, 1, 5 * time.Minute, t0,
			[]float64{3, nan, 7}},
		// Points are sorted; the grid starts at the first point's step; a
		// step partly covered takes the mean over what is covered.
		{"unsorted, offset start", []int64{ms(3 * time.Minute), ms(90 * time.Second)}, []float64{4, 2}, time.Minute, 1, time.Minute, t0.Add(time.Minute),
			[]float64{2, 2, 4}},
		// NaN and ±Inf values are gaps.
		{"non-finite", []int64{ms(0), ms(time.Minute), ms(2 * time.Minute)}, []float64{1, math.Inf(1), 3}, time.Minute, 1, time.Minute, t0,
			[]float64{1, nan, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Resample("x", tc.ts, tc.vs, tc.src, tc.factor, tc.step)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Start.Equal(tc.start) || s.Step != tc.step || s.Len() != len(tc.want) {
				t.Fatalf("start %v step %v values %v, want %v %v %v", s.Start, s.Step, s.Values, tc.start, tc.step, tc.want)
			}
			for i, w := range tc.want {
				if g := s.Values[i]; !(math.IsNaN(w) && math.IsNaN(g)) && math.Abs(g-w) > 1e-9 {
					t.Errorf("values %v, want %v", s.Values, tc.want)
					break
				}
			}
		})
	}
	if _, err := Resample("x", nil, nil, time.Minute, 1, time.Minute); err == nil {
		t.Error("an empty history was accepted")
	}
	if _, err := Resample("x", []int64{ms(0), ms(100 * 365 * 24 * time.Hour)}, []float64{1, 1}, time.Minute, 1, time.Minute); err == nil ||
		!strings.Contains(err.Error(), "check its times") {
		t.Errorf("a century of minutes: %v", err)
	}
}

// TestStoreHistory: the store read as the pipeline reads it, in requests
// per second whatever the source: telemetry series are rates, a CSV
// import counts per sample (here 5 minutes); a service made of endpoint
// series sums them; calendar events of every service come along.
func TestStoreHistory(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "lbsys.db"), store.Options{Now: func() time.Time { return t0.Add(48 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	write := func(key store.SeriesKey, source string, step time.Duration, n int, v func(i int) float64) {
		id, err := st.EnsureSeries(ctx, key, source)
		if err != nil {
			t.Fatal(err)
		}
		var ss []store.Sample
		for i := range n {
			ss = append(ss, store.Sample{Series: id, T: t0.Add(time.Duration(i) * step).UnixMilli(), V: v(i)})
		}
		if _, err := st.WritePoints(ctx, ss); err != nil {
			t.Fatal(err)
		}
	}
	// catalog: per-second telemetry records, 12 rps, for 2 hours.
	write(store.SeriesKey{Service: "catalog", Metric: "requests"}, "telemetry", time.Second, 7200, func(int) float64 { return 12 })
	// cart: a CSV trace of 5-minute counts (600 per 5 min = 2 rps).
	write(store.SeriesKey{Service: "cart", Metric: "requests"}, "csv", 5*time.Minute, 24, func(int) float64 { return 600 })
	// checkout: two endpoints' telemetry, summed.
	write(store.SeriesKey{Service: "checkout", Endpoint: "a", Metric: "requests"}, "telemetry", time.Minute, 120, func(int) float64 { return 1 })
	write(store.SeriesKey{Service: "checkout", Endpoint: "b", Metric: "requests"}, "telemetry", time.Minute, 120, func(int) float64 { return 2 })
	if _, _, err := st.ReplaceEvents(ctx, "marketing", t0.Add(-24*time.Hour), t0.Add(30*24*time.Hour), []store.Event{
		{Calendar: "marketing", UID: "s1", Start: t0.Add(time.Hour), End: t0.Add(90 * time.Minute), Categories: []string{"flash_sale"}},
		{Calendar: "marketing", UID: "s2", Start: t0.Add(10 * 24 * time.Hour), End: t0.Add(10*24*time.Hour + time.Hour), Categories: []string{"flash_sale"}},
	}); err != nil {
		t.Fatal(err)
	}

	h, err := StoreHistory{Store: st, Services: []string{"catalog", "cart", "checkout"}, Window: 14 * 24 * time.Hour}.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for svc, want := range map[string]float64{"catalog": 12, "cart": 2, "checkout": 3} {
		s := h.Series[svc]
		if s == nil || s.Step != time.Minute {
			t.Fatalf("%s: %+v", svc, s)
		}
		known := 0
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			known++
			if math.Abs(v-want) > 1e-9 {
				t.Errorf("%s at %v: %v rps, want %v", svc, s.Time(i), v, want)
				break
			}
		}
		if known < 100 {
			t.Errorf("%s: %d known minutes of %d", svc, known, s.Len())
		}
	}
	if len(h.Events) != 2 || h.Events[0].Category != "flash_sale" || !h.Events[1].Start.Equal(t0.Add(10*24*time.Hour)) {
		t.Errorf("events %+v: want the past and the upcoming sale", h.Events)
	}
	notes := strings.Join(h.Notes, "\n")
	if !strings.Contains(notes, "cart: ") || !strings.Contains(notes, "per 5m0s sample") || !strings.Contains(notes, "telemetry series: requests per second") {
		t.Errorf("notes do not say the units:\n%s", notes)
	}
	// --load-unit rps takes the CSV's values as rates.
	h, err = StoreHistory{Store: st, Services: []string{"cart"}, Unit: UnitRPS}.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range h.Series["cart"].Values {
		if !math.IsNaN(v) && v != 600 {
			t.Fatalf("cart as rps: %v", v)
		}
	}
	// A service the store does not have is an error naming what it has.
	if _, err := (StoreHistory{Store: st, Services: []string{"payment"}}).Read(ctx); err == nil || !strings.Contains(err.Error(), "payment") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := (StoreHistory{Store: st, Services: []string{"cart"}, Step: 90 * time.Second}).Read(ctx); err == nil || !strings.Contains(err.Error(), "whole minutes") {
		t.Errorf("a 90s step: %v", err)
	}
}

func TestCSVHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.csv")
	var b strings.Builder
	b.WriteString("timestamp,catalog,cart\n")
	for i := range 30 {
		b.WriteString(t0.Add(time.Duration(i)*time.Minute).Format(time.RFC3339) + ",120,60\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Counts per row (the default for a trace): ÷ 60.
	h, err := CSVHistory{Path: path, Services: []string{"catalog", "cart"}}.Read()
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Series["catalog"]; c.Len() != 30 || c.Values[0] != 2 || h.Series["cart"].Values[29] != 1 || !h.End().Equal(t0.Add(30*time.Minute)) {
		t.Errorf("catalog %v cart %v end %v", c.Values, h.Series["cart"].Values, h.End())
	}
	// Rates as they are, on a 5-minute step.
	h, err = CSVHistory{Path: path, Services: []string{"catalog"}, Unit: UnitRPS, Step: 5 * time.Minute}.Read()
	if err != nil {
		t.Fatal(err)
	}
	if c := h.Series["catalog"]; c.Len() != 6 || c.Values[5] != 120 {
		t.Errorf("catalog on 5m: %v", c.Values)
	}
	// A service without a column is named.
	if _, err := (CSVHistory{Path: path, Services: []string{"payment"}}).Read(); err == nil || !strings.Contains(err.Error(), "service payment") ||
		!strings.Contains(err.Error(), "column named after each service") {
		t.Errorf("missing column: %v", err)
	}
}

func TestMergeEvents(t *testing.T) {
	a := forecast.Event{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Category: "sale"}
	b := forecast.Event{Start: t0, End: t0.Add(time.Hour), Category: "launch"}
	got := MergeEvents([]forecast.Event{a}, []forecast.Event{b, a})
	if len(got) != 2 || got[0] != b || got[1] != a {
		t.Errorf("%+v", got)
	}
}
