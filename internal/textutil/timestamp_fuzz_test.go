package textutil

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseTimestamp: the trace-file timestamp parser (forecast CSV,
// load generator traces) never panics; what it accepts formats back to a
// time it reads again as the same instant.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"1995-07-01 00:00:00", "2023-11-16 18:15:46.6805900", "2026-11-27T10:00:00+01:00", "2026-11-27T10:00",
		"2026-11-27", " 2026-11-27 ", "yesterday", "", "2026-02-30", "9999-12-31T23:59:59.999999999Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTimestamp(s)
		if err != nil {
			if !strings.Contains(err.Error(), "expected a timestamp") {
				t.Fatalf("%q: error %v does not say what is expected", s, err)
			}
			return
		}
		back, err := ParseTimestamp(got.Format(time.RFC3339Nano))
		if err != nil || !back.Equal(got) {
			t.Fatalf("%q → %v → %v, %v", s, got, back, err)
		}
	})
}
