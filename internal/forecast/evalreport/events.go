package evalreport

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // TZID in calendars

	"github.com/lbsys/lbsys/internal/calendar"
	"github.com/lbsys/lbsys/internal/forecast"
)

// ReadEvents reads an iCalendar file with internal/calendar, the reader
// `lbsys ingest ical` and the simulator use, so that a calendar means the
// same events here as when ingested and read back by `lbsys pipeline run`
// (issue #16: this command had a reader of its own).
//
// Occurrences starting in [from, to) are kept, from and to being on the
// trace's naive clock. The trace's timestamps are naive times in tz
// (--tz; UTC when not given), so every occurrence is moved to tz's wall
// clock and made naive the same way. Floating times and all-day dates are
// read in tz when --tz is given, else, as the ingester does, in the
// calendar's X-WR-TIMEZONE, else UTC.
//
// The forecaster's category rule, the same as `lbsys pipeline run`
// applies to ingested calendars: an occurrence counts once under each of
// its CATEGORIES, lower-cased, with spaces, '/' and ',' as '_'
// ("Black Friday" → black_friday); an event without CATEGORIES counts as
// --event-category (like lbsys ingest ical --category), else "event"
// (give it one to learn it apart: its SUMMARY is not a category).
// An occurrence without a length lasts an hour, as a launch or premiere
// does.
//
// An event the reader refuses (a bad date, an unknown zone, a rule it
// cannot expand) is left out and named in the notes with its line, like
// the ingester's quarantine; a file it cannot read at all is an error.
func ReadEvents(path string, tz *time.Location, tzGiven bool, defaultCats []string, from, to time.Time) ([]forecast.Event, []string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, calendar.MaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	// The window in tz's wall clock, as absolute times.
	inTZ := func(t time.Time) time.Time {
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), tz)
	}
	var cats []string
	for _, c := range defaultCats {
		if c = strings.ToLower(strings.TrimSpace(c)); c != "" {
			cats = append(cats, c)
		}
	}
	o := calendar.Options{Name: filepath.Base(path), From: inTZ(from), To: inTZ(to), DefaultCategories: cats}
	if tzGiven {
		o.Loc = tz
	}
	res, err := calendar.Parse(data, o)
	if err != nil {
		return nil, nil, err
	}
	naive := func(t time.Time) time.Time {
		t = t.In(tz)
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	var out []forecast.Event
	for _, e := range res.Events {
		for _, ev := range forecastEvents(e) {
			ev.Start, ev.End = naive(ev.Start), naive(ev.End)
			out = append(out, ev)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	notes := slices.Clone(res.Notes)
	for _, p := range res.Problems {
		where := p.Location
		if uid, ok := strings.CutPrefix(where, o.Name+"#"); ok && p.Line > 0 {
			where = fmt.Sprintf("%s:%d#%s", o.Name, p.Line, uid)
		}
		notes = append(notes, fmt.Sprintf("event left out: %s: %s (%s)", where, p.Detail, p.Reason))
	}
	return out, notes, nil
}

// forecastEvents turns a calendar occurrence into the forecaster's events:
// one per category, by the rule ReadEvents describes.
func forecastEvents(e calendar.Event) []forecast.Event {
	end := e.End
	if !end.After(e.Start) {
		end = e.Start.Add(time.Hour)
	}
	cats := e.Categories
	if len(cats) == 0 {
		cats = []string{"event"}
	}
	out := make([]forecast.Event, 0, len(cats))
	for _, c := range cats {
		c = strings.Map(func(r rune) rune {
			if r == ' ' || r == '/' || r == ',' {
				return '_'
			}
			return r
		}, strings.ToLower(strings.TrimSpace(c)))
		if c == "" {
			c = "event"
		}
		out = append(out, forecast.Event{Start: e.Start, End: end, Category: c})
	}
	return out
}
