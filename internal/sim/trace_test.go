package sim

import (
	"math"
	"os"
	"strings"
	"testing"
)

// FuzzParseTrace: no input makes the trace parser panic, an error names
// the file, and whatever it accepts satisfies parseTrace's documented
// invariants, on which value and buildRate rely (ordered rows, finite
// non-negative values, a positive step, bridges where the gap is at most
// three steps), and value answers within them.
func FuzzParseTrace(f *testing.F) {
	f.Add([]byte("timestamp,requests\n2026-01-01 00:00:00,60\n2026-01-01 00:01:00,60\n2026-01-01 00:02:00,\n2026-01-01 00:03:00,120\n2026-01-01 00:10:00,60\n"))
	f.Add([]byte("requests,timestamp\n1,2026-01-01\n2,2026-01-02\n"))
	f.Add([]byte("\uFEFFtimestamp,requests\r\n1995-07-01T00:00:00Z,10\r\n1995-07-01T00:01:00Z,-0\r\n"))
	f.Add([]byte("timestamp,requests\n\"2026-01-01\n00:00\",1\n2026-01-02,0x1p4\n"))
	f.Add([]byte("timestamp,requests\n1900-01-01,1\n2099-12-31T23:59:59.999999999Z,1e308\n"))
	f.Add([]byte("timestamp,requests\n1680-01-01,1\n2260-01-01,1\n"))
	f.Add([]byte("timestamp,requests\n2026-01-01,1\n2026-01-01,2\n"))
	f.Add([]byte("timestamp\n2026-01-01\n"))
	if data, err := os.ReadFile("../../testdata/traces/nasa_http_1995_07_1min.csv"); err == nil {
		f.Add(data[:min(len(data), 2000)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := parseTrace(data, "fuzz.csv", "timestamp", "requests")
		if err != nil {
			if tr != nil {
				t.Fatal("a trace returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		n := len(tr.t)
		switch {
		case n < 2:
			t.Fatalf("accepted a trace of %d rows with a value", n)
		case len(tr.v) != n || len(tr.bridge) != n-1:
			t.Fatalf("lengths: %d times, %d values, %d bridges", n, len(tr.v), len(tr.bridge))
		case tr.step <= 0:
			t.Fatalf("step %d", tr.step)
		case tr.t[0] < traceMinTime.UnixNano() || tr.t[n-1] >= traceMaxTime.UnixNano():
			t.Fatalf("rows from %d to %d outside the accepted years", tr.t[0], tr.t[n-1])
		}
		for i := range tr.t {
			v := tr.v[i]
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || math.Signbit(v) {
				t.Fatalf("row %d: value %v", i, v)
			}
			if i > 0 && tr.t[i] <= tr.t[i-1] {
				t.Fatalf("row %d: time %d not after %d", i, tr.t[i], tr.t[i-1])
			}
			if got, gap := tr.value(tr.t[i]); got != v || gap {
				t.Fatalf("value at row %d's time: %v (gap %v), want %v", i, got, gap, v)
			}
			if i == n-1 {
				break
			}
			d := tr.t[i+1] - tr.t[i]
			if want := float64(d) <= 3*float64(tr.step); tr.bridge[i] != want {
				t.Fatalf("row %d: bridge %v for a gap of %d with step %d", i, tr.bridge[i], d, tr.step)
			}
			mid := tr.t[i] + d/2
			got, gap := tr.value(mid)
			lo, hi := math.Min(v, tr.v[i+1]), math.Max(v, tr.v[i+1])
			switch {
			case tr.bridge[i] && (gap || got < lo || got > hi):
				t.Fatalf("between rows %d and %d (bridged): %v, gap %v; want within [%v, %v]", i, i+1, got, gap, lo, hi)
			case !tr.bridge[i] && d/2 >= tr.step && (!gap || got != 0):
				t.Fatalf("inside the gap after row %d: %v, gap %v; want a gap", i, got, gap)
			}
		}
		if v, gap := tr.value(tr.t[0] - 1); v != 0 || !gap {
			t.Fatalf("before the trace: %v, gap %v", v, gap)
		}
		if v, gap := tr.value(tr.t[n-1] + 1); v != 0 || !gap {
			t.Fatalf("after the trace: %v, gap %v", v, gap)
		}
	})
}
