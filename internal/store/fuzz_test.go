package store

// Fuzz targets for what the store parses: the rollup chunks it reads back
// from the file (a damaged or foreign file must be an error, never a
// panic), and the names and attribute JSON it accepts. Run one with
//
//	go test ./internal/store -run '^$' -fuzz FuzzChunkDecode -fuzztime 30s

import (
	"math"
	"testing"
)

// FuzzChunkDecode: any blob decodes to a chunk or an error; a decoded
// chunk encodes and decodes to itself.
func FuzzChunkDecode(f *testing.F) {
	var c chunk
	c.set(0, Bucket{N: 1, Sum: 2, Min: 2, Max: 2})
	c.set(59, Bucket{N: 1 << 40, Sum: -1.5, Min: math.Inf(-1), Max: 3})
	f.Add(c.encode())
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var c chunk
		if err := c.decode(data, 3600_000, 60_000); err != nil {
			return
		}
		var d chunk
		if err := d.decode(c.encode(), 3600_000, 60_000); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d.present != c.present {
			t.Fatalf("present %x != %x", d.present, c.present)
		}
		for p := c.present; p != 0; p &= p - 1 {
			i := 0
			for p>>i&1 == 0 {
				i++
			}
			a, b := c.b[i], d.b[i]
			same := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
			if a.T != b.T || a.N != b.N || !same(a.Sum, b.Sum) || !same(a.Min, b.Min) || !same(a.Max, b.Max) {
				t.Fatalf("slot %d: %+v != %+v", i, a, b)
			}
		}
		c.total()
	})
}

// FuzzStoreNames: the names the store parses (resolution, retention
// mode) and the attribute JSON it reads back never panic; what parses
// round-trips.
func FuzzStoreNames(f *testing.F) {
	for _, s := range []string{"raw", "1m", "1h", "auto", "window", "Archive ", `{"a":"b"}`, `{"a":1}`, `[]`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseResolution(s); err == nil {
			if back, err := ParseResolution(r.String()); err != nil || back != r {
				t.Fatalf("%q → %v → %v, %v", s, r, back, err)
			}
		}
		if m, err := ParseRetentionMode(s); err == nil && m != RetainWindow && m != RetainArchive {
			t.Fatalf("%q → mode %q", s, m)
		}
		if a := decodeAttrs(s); a != nil {
			if back := decodeAttrs(encodeAttrs(a)); len(back) != len(a) {
				t.Fatalf("%q → %v → %v", s, a, back)
			}
		}
	})
}
