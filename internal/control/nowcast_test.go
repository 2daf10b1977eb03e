package control

import (
	"math"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// TestNowcast: an event under way is rescaled by what its own minutes
// showed against the median expectation; a rise that comes a minute or
// two behind the profile (sessions reach the cart after the catalog;
// telemetry lands late) is not read as a small event.
func TestNowcast(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := &Predictive{common: &common{s: Setup{Step: time.Minute}}}
	// The profile: 100 rps before, ×5 from the start (one step of rise).
	mid := []float64{300, 500, 500, 500, 500, 500, 500, 500}
	var at []time.Time
	for i := range mid {
		at = append(at, start.Add(time.Duration(i)*time.Minute))
	}
	for _, tc := range []struct {
		name     string
		observed []float64 // from the start, one per minute
		now      int       // minutes after the start
		wantR    float64
		wantSeen bool
	}{
		{"too early", []float64{300, 500}, 2, 1, false},
		{"as expected", []float64{300, 500, 500, 500, 500, 500}, 6, 1, true},
		{"twice as large", []float64{600, 1000, 1000, 1000, 1000, 1000}, 6, 2, true},
		// Read during the rise, an on-time event errs large (1500 seen
		// against 300 + 300 + 500): capacity, not a dip.
		{"on time, read during the rise", []float64{300, 500, 500, 500}, 4, 1500.0 / 1100, true},
		{"half as large", []float64{150, 250, 250, 250, 250, 250}, 6, 0.5, true},
		// Two minutes late: 100, 100, 300, 500, 500 against 300, 500,
		// ... is the same event, late — held to the profile's lowest
		// over the two steps before, it reads as expected.
		{"late by two minutes", []float64{100, 100, 300, 500, 500}, 5, 1, true},
	} {
		st := &svcState{series: &forecast.Series{Start: start, Step: time.Minute, Values: tc.observed}}
		r, seen := p.nowcast(st, at, mid, start.Add(time.Hour), start.Add(time.Duration(tc.now)*time.Minute))
		if seen != tc.wantSeen || math.Abs(r-tc.wantR) > 0.01 {
			t.Errorf("%s: ratio %.3f seen %v, want %.3f %v", tc.name, r, seen, tc.wantR, tc.wantSeen)
		}
	}
}
