package main

import (
	"testing"
	"time"
)

// FuzzFlagValues: the CLI's own value parsers (ingest's --since/--past/
// --future/--max-horizon spans and --from/--to/--start/--until instants,
// change IDs, pipeline --horizons) never panic, and what they accept is
// usable: no negative span, no zero ID or horizon. (A secret file's first
// line: internal/ingest's FuzzSecret.)
func FuzzFlagValues(f *testing.F) {
	for _, s := range []string{"36h", "400d", "1.5d", "-1d", "d", "now", "2026-11-27", "2026-11-27T10:00:00Z", "#42", "0", "15m,1h", "1h,,", " secret \r\nrest"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseSpan(s); err == nil && d < 0 {
			t.Fatalf("span %q = %v", s, d)
		}
		parseInstant(s, now)
		if id, err := parseID(s); err == nil && id == 0 {
			t.Fatalf("change ID %q = 0", s)
		}
		if hs, err := parseHorizons(s); err == nil {
			for _, h := range hs {
				if h <= 0 {
					t.Fatalf("horizons %q: %v", s, hs)
				}
			}
		}
	})
}
