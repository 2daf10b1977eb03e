package rfc9111

import "testing"

// TestParseRange covers RFC 9110 §14.1.2 and §14.2 for serving one byte
// range of a stored complete response (§3.3, §3.4 of RFC 9111 describe
// storing partial content, which lbsys does not do).
func TestParseRange(t *testing.T) {
	tests := []struct {
		in         string
		size       int64
		kind       RangeKind
		start, end int64
	}{
		{"bytes=0-1", 11, RangeSingle, 0, 1},
		{"bytes=1-", 11, RangeSingle, 1, 10},
		{"bytes=-1", 11, RangeSingle, 10, 10},
		{"bytes=-100", 11, RangeSingle, 0, 10},
		{"bytes=5-100", 11, RangeSingle, 5, 10},
		{"BYTES = 2-3", 11, RangeNone, 0, 0},
		{"bytes= 2-3", 11, RangeSingle, 2, 3},
		{"bytes=11-", 11, RangeUnsatisfiable, 0, 0},
		{"bytes=-0", 11, RangeUnsatisfiable, 0, 0},
		{"bytes=0-1,3-4", 11, RangeNone, 0, 0}, // multiple ranges: served whole
		{"bytes=3-1", 11, RangeNone, 0, 0},     // invalid: ignored
		{"items=0-1", 11, RangeNone, 0, 0},
		{"bytes=a-1", 11, RangeNone, 0, 0},
		{"bytes=", 11, RangeNone, 0, 0},
		{"bytes=99999999999999999999-", 11, RangeNone, 0, 0},
	}
	for _, tc := range tests {
		k, s, e := ParseRange(tc.in, tc.size)
		if k != tc.kind || s != tc.start || e != tc.end {
			t.Errorf("ParseRange(%q, %d) = %d %d-%d, want %d %d-%d", tc.in, tc.size, k, s, e, tc.kind, tc.start, tc.end)
		}
	}
}

func TestIfRange(t *testing.T) {
	lm := "Wed, 01 Jan 2020 00:00:00 GMT"
	tests := []struct {
		ifRange, etag, lm string
		want              bool
	}{
		{"", `"a"`, lm, true},
		{`"a"`, `"a"`, lm, true},
		{`"b"`, `"a"`, lm, false},
		{`W/"a"`, `W/"a"`, lm, false}, // weak tags never match If-Range
		{lm, `"a"`, lm, true},
		{"Thu, 02 Jan 2020 00:00:00 GMT", `"a"`, lm, false},
	}
	for _, tc := range tests {
		if got := IfRangeMatches(tc.ifRange, tc.etag, tc.lm); got != tc.want {
			t.Errorf("IfRangeMatches(%q) = %v", tc.ifRange, got)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-1", int64(10))
	f.Add("bytes=-5", int64(3))
	f.Fuzz(func(t *testing.T, v string, size int64) {
		k, s, e := ParseRange(v, size)
		if k == RangeSingle && (s < 0 || e < s || e >= size) {
			t.Fatalf("ParseRange(%q, %d) = %d-%d: outside the content", v, size, s, e)
		}
	})
}
