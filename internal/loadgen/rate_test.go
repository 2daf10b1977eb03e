package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestConstantAndRamp(t *testing.T) {
	c := Constant(500)
	for _, at := range []time.Duration{0, time.Second, time.Hour} {
		if c.At(at) != 500 || c.Max(0, at) != 500 {
			t.Fatalf("constant at %v: %v", at, c.At(at))
		}
	}
	if Constant(-3).At(0) != 0 {
		t.Fatal("negative constant must read as 0")
	}
	r, err := ParseRamp("100:2000", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{{0, 100}, {5 * time.Second, 1050}, {10 * time.Second, 2000}, {20 * time.Second, 2000}, {-time.Second, 100}} {
		if got := r.At(tc.at); !near(got, tc.want, 1e-9) {
			t.Errorf("ramp at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	if got := r.Max(2*time.Second, 4*time.Second); !near(got, r.At(4*time.Second), 1e-9) {
		t.Errorf("ramp max %v", got)
	}
	down := Ramp{From: 2000, To: 100, Over: 10 * time.Second}
	if got := down.Max(2*time.Second, 4*time.Second); !near(got, down.At(2*time.Second), 1e-9) {
		t.Errorf("descending ramp max %v", got)
	}
	if got := MeanRate(r, 0, 10*time.Second); !near(got, 1050, 1) {
		t.Errorf("mean of ramp = %v, want 1050", got)
	}
	for _, bad := range []string{"100", "a:2", "1:-2", "1:NaN"} {
		if _, err := ParseRamp(bad, time.Second); err == nil {
			t.Errorf("ParseRamp(%q) accepted", bad)
		}
	}
}

func TestFlashSale(t *testing.T) {
	f, err := ParseFlashSale("at=60s,for=120s,x=8,rise=10s", Constant(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 100},                 // before
		{59 * time.Second, 100},  // just before
		{60 * time.Second, 100},  // the rise starts at 1×
		{65 * time.Second, 450},  // half-way up: 1 + 7/2 = 4.5×
		{70 * time.Second, 800},  // plateau
		{179 * time.Second, 800}, // still inside
		{180 * time.Second, 100}, // the window is [at, at+for)
		{300 * time.Second, 100}, // after
	} {
		if got := f.At(tc.at); !near(got, tc.want, 1e-6) {
			t.Errorf("flash sale at %v = %v, want %v", tc.at, got, tc.want)
		}
	}
	// Max is an upper bound everywhere, and tight at the plateau.
	for from := time.Duration(0); from < 200*time.Second; from += 7 * time.Second {
		to := from + 9*time.Second
		m := f.Max(from, to)
		for x := from; x <= to; x += 100 * time.Millisecond {
			if f.At(x) > m+1e-9 {
				t.Fatalf("Max(%v,%v)=%v < At(%v)=%v", from, to, m, x, f.At(x))
			}
		}
	}
	if got := f.Max(0, 300*time.Second); got != 800 {
		t.Errorf("max over all = %v, want 800", got)
	}

	// fall: a linear decline at the end of the window
	g, err := ParseFlashSale("at=10s,for=20s,x=3,rise=0s,fall=10s", Constant(10))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.At(25 * time.Second); !near(got, 20, 1e-6) {
		t.Errorf("half-way down: %v, want 20", got)
	}

	// Days and weeks, as every duration of the CLI takes them (issue #16).
	d, err := ParseFlashSale("at=1d,for=1w,x=2,rise=0.5d", Constant(10))
	if err != nil {
		t.Fatal(err)
	}
	if d.Start != 24*time.Hour || d.For != 7*24*time.Hour || d.Rise != 12*time.Hour {
		t.Errorf("at=1d,for=1w,rise=0.5d read as %v, %v, %v", d.Start, d.For, d.Rise)
	}

	for _, tc := range []struct{ in, want string }{
		{"at=60s,for=120s", "x= is required"},
		{"at=60s,for=0s,x=2", "for must be > 0"},
		{"at=60s,for=10s,x=2,rise=8s,fall=8s", "exceed the window"},
		{"at=60s,for=10s,x=2,size=3", `unknown key "size"`},
		{"at=sixty,for=10s,x=2", "not a duration"},
		{"at=1s,at=2s,for=10s,x=2", "given twice"},
		{"at=1s,for=10s,x=-2", "number >= 0"},
		{"at 1s", "not key=value"},
	} {
		_, err := ParseFlashSale(tc.in, Constant(1))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlashSale(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

func TestTraceReplayScalingAndCompression(t *testing.T) {
	tr := mustParseTrace(t, `timestamp,requests
2024-01-01 00:00:00,10
2024-01-01 00:01:00,20
2024-01-01 00:02:00,40
2024-01-01 00:03:00,30
2024-01-01 00:04:00,10
`)
	// Speed 600: one trace minute per 0.1 s; the max (40) maps to 2000/s.
	r, err := NewTraceRate(tr, TraceReplay{Speed: 600, PeakRPS: 2000, Span: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{
		{0, 500},                       // 10 × 50
		{100 * time.Millisecond, 1000}, // trace 00:01
		{150 * time.Millisecond, 1500}, // half-way 20 → 40
		{200 * time.Millisecond, 2000}, // the peak
		{400 * time.Millisecond, 500},  // trace 00:04
	} {
		if got := r.At(tc.at); !near(got, tc.want, 1e-6) {
			t.Errorf("At(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if got := r.Max(0, 400*time.Millisecond); got != 2000 {
		t.Errorf("max = %v, want the peak 2000", got)
	}
	// The peak is taken over the replayed span only.
	r2, err := NewTraceRate(tr, TraceReplay{Speed: 60, PeakRPS: 100, Span: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := r2.At(time.Second); !near(got, 100, 1e-9) { // trace 00:01 = 20 is the max of [00:00, 00:01]
		t.Errorf("span peak: %v, want 100", got)
	}
	// No peak: the trace's own counts, compressed: 10/min = 1/6 per s, × 600.
	r3, err := NewTraceRate(tr, TraceReplay{Speed: 600})
	if err != nil {
		t.Fatal(err)
	}
	if got := r3.At(0); !near(got, 100, 1e-9) {
		t.Errorf("natural scale: %v, want 100", got)
	}
	// Start in the middle.
	r4, err := NewTraceRate(tr, TraceReplay{Speed: 60, Start: tr.Points[2].T, PeakRPS: 40})
	if err != nil {
		t.Fatal(err)
	}
	if got := r4.At(0); got != 40 {
		t.Errorf("start at 00:02: %v, want 40", got)
	}

	for _, tc := range []struct {
		o    TraceReplay
		want string
	}{
		{TraceReplay{Speed: 600, Span: time.Second}, "past its end"},
		{TraceReplay{Speed: -1}, "must be > 0"},
		{TraceReplay{Start: tr.Points[0].T.Add(-time.Hour)}, "outside"},
		{TraceReplay{Start: tr.Points[4].T}, "outside"},
	} {
		if _, err := NewTraceRate(tr, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTraceRate(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
	zero := mustParseTrace(t, "timestamp,requests\n2024-01-01 00:00:00,0\n2024-01-01 00:01:00,0\n")
	if _, err := NewTraceRate(zero, TraceReplay{PeakRPS: 10}); err == nil || !strings.Contains(err.Error(), "zero over the replayed span") {
		t.Errorf("all-zero trace with a peak: %v", err)
	}
}

func TestFlashSaleOverTrace(t *testing.T) {
	tr := mustParseTrace(t, "timestamp,requests\n2024-01-01 00:00:00,10\n2024-01-01 00:00:10,10\n2024-01-01 00:00:20,10\n2024-01-01 00:00:30,10\n2024-01-01 00:01:30,10\n")
	base, err := NewTraceRate(tr, TraceReplay{Speed: 1, PeakRPS: 100})
	if err != nil {
		t.Fatal(err)
	}
	f := FlashSale{Base: base, Start: 5 * time.Second, For: 5 * time.Second, X: 2}
	if f.At(6*time.Second) != 200 || f.At(0) != 100 {
		t.Fatalf("flash over trace: %v %v", f.At(6*time.Second), f.At(0))
	}
	if i, h := traceGaps(f); i != 0 || h != 1 {
		t.Fatalf("gaps through the flash sale: %d interpolated, %d held; want 0, 1", i, h)
	}
}
