package rfc9111

import (
	"testing"
	"time"
)

var refNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// TestParseHTTPDate covers RFC 9110 §5.6.7 as used by Expires (§5.3), Date,
// Last-Modified and If-Modified-Since.
func TestParseHTTPDate(t *testing.T) {
	want := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)
	tests := []struct {
		in   string
		ok   bool
		want time.Time
	}{
		{"Thu, 18 Aug 2050 02:01:18 GMT", true, want},
		{"THU, 18 Aug 2050 02:01:18 GMT", true, want},    // wrong case: meaning is plain
		{"Thu, 18 AUG 2050 02:01:18 GMT", true, want},    // month case
		{"Thu, 18 Aug 2050 02:01:18 gMT", true, want},    // zone case
		{"Thursday, 18-Aug-50 02:01:18 GMT", true, want}, // RFC 850, year within 50 years
		{"Sunday, 06-Nov-94 08:49:37 GMT", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
		{"Sun Nov  6 08:49:37 1994", true, time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)}, // asctime
		{"Sun Nov 16 08:49:37 1994", true, time.Date(1994, 11, 16, 8, 49, 37, 0, time.UTC)},
		{"Thu, 18 Aug 2050 02:01:18 UTC", false, time.Time{}},
		{"Thu, 18 Aug 50 02:01:18 GMT", false, time.Time{}},     // two-digit year in IMF-fixdate
		{"Thu 18 Aug 2050 02:01:18 GMT", false, time.Time{}},    // missing comma
		{"Thu, 18  Aug  2050 02:01:18 GMT", false, time.Time{}}, // doubled spaces
		{"Thu, 18-Aug-2050 02:01:18 GMT", false, time.Time{}},   // dashes
		{"Thu, 18 Aug 2050 02.01.18 GMT", false, time.Time{}},   // periods
		{"Thu, 18 Aug 2050 2:01:18 GMT", false, time.Time{}},    // one-digit hour
		{"Thu, 31 Nov 2050 02:01:18 GMT", false, time.Time{}},   // no such day
		{"Thu, 18 Aug 2050 24:01:18 GMT", false, time.Time{}},
		{"Xyz, 18 Aug 2050 02:01:18 GMT", false, time.Time{}},
		{"Thursdax, 18-Aug-50 02:01:18 GMT", false, time.Time{}},
		{"0", false, time.Time{}},
		{"", false, time.Time{}},
	}
	for _, tc := range tests {
		got, ok := ParseHTTPDate(tc.in, refNow)
		if ok != tc.ok || ok && !got.Equal(tc.want) {
			t.Errorf("ParseHTTPDate(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRFC850YearWindow(t *testing.T) {
	// 50 years after 2026 is 2076: "76" is 2076, "77" would be 2077 > 2076, so 1977.
	for in, year := range map[string]int{"Friday, 01-Jan-76 00:00:00 GMT": 2076, "Saturday, 01-Jan-77 00:00:00 GMT": 1977} {
		got, ok := ParseHTTPDate(in, refNow)
		if !ok || got.Year() != year {
			t.Errorf("%q: got %v %v, want year %d", in, got, ok, year)
		}
	}
}

func FuzzParseHTTPDate(f *testing.F) {
	for _, s := range []string{"Thu, 18 Aug 2050 02:01:18 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseHTTPDate(s, refNow)
		if !ok {
			return
		}
		// Whatever parses formats back to a date that parses to the same instant.
		back, ok := ParseHTTPDate(FormatHTTPDate(d), refNow)
		if !ok || !back.Equal(d) {
			t.Fatalf("%q → %v → %q did not round-trip", s, d, FormatHTTPDate(d))
		}
	})
}
