package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/textutil"
)

// FuzzLoadAndForecastFlagValues: the value parsers of the flags this file's
// commands added (duration flags with d and w, --max-error-rate, the
// suggestion of a mistyped flag) never panic, and what they accept is
// usable: a duration as textutil.ParseDuration reads it, a percentage from
// 0 to 100, a suggestion that is one of the flags.
func FuzzLoadAndForecastFlagValues(f *testing.F) {
	for _, s := range []string{"1d", "2w", "90m", "1.5d", "-1d", "5", "5%", "0.5%", "101", "NaN", "-0", "1e2", "%", "rat", "polic", "max-err", ""} {
		f.Add(s)
	}
	names := []string{"duration", "max-error-rate", "max-inflight", "max-sessions", "policies", "rate", "seed"}
	f.Fuzz(func(t *testing.T, s string) {
		var d time.Duration
		if err := (*durationValue)(&d).Set(s); err == nil {
			if want, err := textutil.ParseDuration(s); err != nil || want != d {
				t.Fatalf("duration flag %q = %v; ParseDuration: %v, %v", s, d, want, err)
			}
		}
		var p percentValue
		if err := p.Set(s); err == nil && (math.IsNaN(float64(p)) || p < 0 || p > 100) {
			t.Fatalf("--max-error-rate %q read as %v", s, float64(p))
		} else if err != nil && !strings.Contains(err.Error(), "percentage from 0 to 100") {
			t.Fatalf("--max-error-rate %q: unhelpful error %v", s, err)
		}
		if got := closestFlag(s, names); got != "" {
			found := false
			for _, n := range names {
				found = found || n == got
			}
			if !found {
				t.Fatalf("closestFlag(%q) = %q, not a flag", s, got)
			}
		}
	})
}
