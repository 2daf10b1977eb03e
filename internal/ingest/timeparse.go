package ingest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones even on hosts without /usr/share/zoneinfo

	"github.com/lbsys/lbsys/internal/store"
)

// wallClock says how a local (zone-less) time maps to instants.
type wallClock int

const (
	wallUnique      wallClock = iota
	wallAmbiguous             // the repeated hour when daylight saving ends
	wallNonexistent           // the skipped hour when it starts
)

// localize reads the wall time of naive (its fields, location ignored) in
// loc. Go's time.Date silently picks one instant for a repeated or skipped
// local time; the pipeline must not learn from a guessed hour, so the
// caller is told. first is the earlier candidate for an ambiguous time and,
// for a nonexistent one, the reading with the offset in force before the
// gap (RFC 5545 §3.3.5).
func localize(naive time.Time, loc *time.Location) (first time.Time, kind wallClock) {
	y, mo, d := naive.Date()
	h, mi, s := naive.Clock()
	ns := naive.Nanosecond()
	asUTC := time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	// Transitions are months apart, so the offsets in force two days either
	// side cover every candidate.
	offsets := map[int]bool{}
	for _, dd := range []time.Duration{-48 * time.Hour, 0, 48 * time.Hour} {
		_, off := asUTC.Add(dd).In(loc).Zone()
		offsets[off] = true
	}
	var cands []time.Time
	for off := range offsets {
		u := asUTC.Add(-time.Duration(off) * time.Second).In(loc)
		uy, umo, ud := u.Date()
		uh, umi, us := u.Clock()
		if uy == y && umo == mo && ud == d && uh == h && umi == mi && us == s {
			cands = append(cands, u)
		}
	}
	switch len(cands) {
	case 1:
		return cands[0], wallUnique
	case 0:
		// Use the offset before the gap: the earliest offset of those two
		// days before.
		_, off := asUTC.Add(-48 * time.Hour).In(loc).Zone()
		return asUTC.Add(-time.Duration(off) * time.Second).In(loc), wallNonexistent
	}
	if cands[1].Before(cands[0]) {
		cands[0] = cands[1]
	}
	return cands[0], wallAmbiguous
}

// naiveLayouts are zone-less layouts tried in order by parseTimestamp.
var naiveLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
	"2006/01/02 15:04:05",
	"02/Jan/2006:15:04:05",
}

// zonedLayouts carry their own offset.
var zonedLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999 -0700",
	"02/Jan/2006:15:04:05 -0700", // common log format
	time.RFC1123Z,
	time.RFC1123,
}

// TimeFormat says how a time column is written.
type TimeFormat struct {
	// Layout is a Go reference layout, or "unix", "unix_ms", or "" to
	// detect (RFC 3339, "2006-01-02 15:04:05[.frac]", dates, epoch seconds
	// or milliseconds).
	Layout string
	// Loc reads zone-less times; nil means such times are ambiguous.
	Loc *time.Location
}

// parseTimestamp reads s. A zone-less time is read in tf.Loc; a local time
// that is repeated or skipped by a daylight-saving change is refused as
// ambiguous rather than guessed.
func (tf TimeFormat) parse(s string) (time.Time, *Problem) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, &Problem{Reason: store.ReasonMissingField, Detail: "empty time"}
	}
	switch tf.Layout {
	case "unix", "unix_ms":
		return parseEpoch(s, tf.Layout == "unix_ms")
	case "":
	default:
		t, err := time.Parse(tf.Layout, s)
		if err != nil {
			return time.Time{}, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("%q does not match --time-format %q", s, tf.Layout)}
		}
		if hasZone(tf.Layout) {
			return t, nil
		}
		return tf.local(s, t)
	}
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	for _, l := range naiveLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return tf.local(s, t)
		}
	}
	if isDigits(strings.Replace(s, ".", "", 1)) {
		intPart, _, _ := strings.Cut(s, ".")
		switch {
		case len(intPart) >= 9 && len(intPart) <= 11:
			return parseEpoch(s, false)
		case len(intPart) >= 12 && len(intPart) <= 14:
			return parseEpoch(s, true)
		}
	}
	return time.Time{}, &Problem{Reason: store.ReasonUnparseableTime,
		Detail: fmt.Sprintf("%q is not RFC 3339, \"2006-01-02 15:04:05\", a date or Unix seconds; pass --time-format", s)}
}

func (tf TimeFormat) local(s string, naive time.Time) (time.Time, *Problem) {
	if tf.Loc == nil {
		return time.Time{}, &Problem{Reason: store.ReasonAmbiguousTime,
			Detail: fmt.Sprintf("%q has no UTC offset; pass --tz (for example --tz UTC or --tz America/New_York)", s)}
	}
	t, kind := localize(naive, tf.Loc)
	switch kind {
	case wallAmbiguous:
		return time.Time{}, &Problem{Reason: store.ReasonAmbiguousTime,
			Detail: fmt.Sprintf("%q happens twice in %s (daylight saving ends); write times with a UTC offset", s, tf.Loc)}
	case wallNonexistent:
		return time.Time{}, &Problem{Reason: store.ReasonAmbiguousTime,
			Detail: fmt.Sprintf("%q does not exist in %s (daylight saving starts); write times with a UTC offset", s, tf.Loc)}
	}
	return t, nil
}

func hasZone(layout string) bool {
	return strings.Contains(layout, "Z07") || strings.Contains(layout, "-07") || strings.Contains(layout, "MST")
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func parseEpoch(s string, millis bool) (time.Time, *Problem) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1e14) {
		return time.Time{}, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("%q is not a Unix time", s)}
	}
	if millis {
		return time.UnixMilli(int64(f)).UTC(), nil
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC().Truncate(time.Millisecond), nil
}

// loadZone reads an IANA zone name ("" is nil: zone-less times are then
// ambiguous).
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return nil, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("--tz %q is not an IANA time zone (for example UTC, Europe/Paris, America/New_York): %w", name, err)
	}
	return loc, nil
}
