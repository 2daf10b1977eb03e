package textutil

import (
	"fmt"
	"strings"
	"time"
)

// timestampLayouts are the timestamp forms trace files use; naive times are
// read as UTC. Fractional seconds are accepted after any layout with
// seconds.
var timestampLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	time.RFC3339Nano,
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

// ParseTimestamp parses a timestamp in one of the forms trace files use
// ("2006-01-02 15:04:05", RFC 3339, with or without seconds, a date).
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("expected a timestamp like \"1995-07-01 00:00:00\" or RFC 3339, got %q", s)
}
