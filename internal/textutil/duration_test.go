package textutil

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"1d", day},
		{"2w", 2 * week},
		{"90m", 90 * time.Minute},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{".5w", week / 2},
		{"1w2d3h4m5s6ms", week + 2*day + 3*time.Hour + 4*time.Minute + 5*time.Second + 6*time.Millisecond},
		{"-1d", -day},
		{"+2d", 2 * day},
		{"0", 0},
		{"0d", 0},
		{"250ms", 250 * time.Millisecond},
		{"1h30m", 90 * time.Minute},
		{"15250w", 15250 * week},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "d", "1", "1x", "1dd", "1d-2h", "1..5d", "-", "1 d", "99999999999w", "15251w", "106751d23h48m"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		} else if !strings.Contains(err.Error(), "is not a duration") && !strings.Contains(err.Error(), "empty duration") {
			t.Errorf("ParseDuration(%q): unhelpful error %q", in, err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{14 * 24 * time.Hour, "2w"}, {24 * time.Hour, "1d"}, {36 * time.Hour, "36h"}, {90 * time.Minute, "90m"},
		{30 * time.Second, "30s"}, {1500 * time.Millisecond, "1.5s"}, {0, "0s"}, {-24 * time.Hour, "-1d"},
	} {
		if got := FormatDuration(tc.in); got != tc.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := ParseDuration(FormatDuration(tc.in)); err != nil || back != tc.in {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", tc.in, back, err)
		}
	}
}

// FuzzParseDuration: never panics; without d or w it agrees with
// time.ParseDuration (same value, same acceptance); with them, a value it
// accepts is written back by FormatDuration into the same value.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1d", "2w", "90m", "1.5d", "-1d12h", "1h30m", "0", "", ".", "1e3d", "9223372036854775807ns", "-9223372036854775808ns", "106751d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		if !strings.ContainsAny(s, "dw") {
			want, werr := time.ParseDuration(s)
			if (err == nil) != (werr == nil) || (err == nil && got != want) {
				t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration: %v, %v", s, got, err, want, werr)
			}
			return
		}
		if err != nil {
			return
		}
		if back, err := ParseDuration(FormatDuration(got)); err != nil || back != got {
			t.Fatalf("ParseDuration(%q) = %v; FormatDuration gives %q, read back as %v, %v", s, got, FormatDuration(got), back, err)
		}
	})
}
