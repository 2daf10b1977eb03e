package evalreport

import (
	"strings"
	"testing"
	"time"
)

// TestMarkdown: every model of every horizon in order, its ratio to
// seasonal naive, the band's coverage and the ensemble weights, then the
// skipped horizons and notes (the golden test in cmd/lbsys pins a whole
// evaluation).
func TestMarkdown(t *testing.T) {
	out := &Output{Series: "s.csv", Column: "v", Step: "1h0m0s", Steps: 720, Gaps: 2, Seconds: 3.25,
		Load: "per-request arrivals aggregated: count per 1m",
		Horizons: map[string]HorizonResult{"1h": {"steps": 1,
			"seasonal_naive": map[string]any{"mase": 0.8, "smape": 30.0},
			"ensemble":       map[string]any{"mase": 0.4, "smape": 20.0, "upper_coverage": 0.9},
			"weights":        map[string]float64{"seasonal_naive": 0.25}}},
		Skipped: map[string]string{"2w": "336h0m0s = 336 steps of 1h0m0s: too long"},
		Notes:   []string{"a note"},
		Tuning:  map[string]any{"trials": 3, "budget": "30s", "stopped_by_budget": true},
		order:   []string{"1h"}}
	got := Markdown(out)
	for _, want := range []string{
		"## s.csv (v)\n\n720 steps of 1h0m0s, 2 gaps. per-request arrivals aggregated: count per 1m.\n",
		"| 1h (1 steps) | seasonal_naive | 0.800 | 30.0 | 1.00 | 0.25 |\n",
		"| 1h (1 steps) | ensemble (upper band covers 90%) | 0.400 | 20.0 | 0.50 |  |\n",
		"\nSkipped 2w: 336h0m0s = 336 steps of 1h0m0s: too long\n",
		"\n- a note\n- tuning: 3 trials, budget 30s, stopped by budget: true\n- 3.2 s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, got)
		}
	}
}

func TestLabel(t *testing.T) {
	for d, want := range map[time.Duration]string{30 * time.Minute: "30m", 2 * time.Hour: "2h", 90 * time.Minute: "1h30m", 24 * time.Hour: "24h", 10 * time.Second: "10s", 20 * time.Minute: "20m", time.Hour + 10*time.Second: "1h0m10s"} {
		if got := label(d); got != want {
			t.Errorf("label(%v) = %q, want %q", d, got, want)
		}
	}
}
