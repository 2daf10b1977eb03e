package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/calendar"
	"github.com/lbsys/lbsys/internal/store"
)

func icsFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ingest", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	icsFrom = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	icsTo   = time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestICalExpansion(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	o := ICalOptions{Calendar: "marketing", From: icsFrom, To: icsTo, Name: "campaigns.ics"}
	rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(icsFixture(t, "campaigns.ics")), o)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Inserted != 19 || rep.Skipped != 2 || rep.Quarantined != 0 {
		t.Fatalf("report: %s", rep)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "floating times") {
		t.Errorf("notes: %v", rep.Notes)
	}
	evs, err := st.Events(ctx, store.EventQuery{From: icsFrom, To: icsTo, Calendars: []string{"marketing"}})
	if err != nil {
		t.Fatal(err)
	}
	byUID := map[string][]store.Event{}
	for _, e := range evs {
		byUID[e.UID] = append(byUID[e.UID], e)
	}
	starts := func(uid string) []string {
		var out []string
		for _, e := range byUID[uid] {
			out = append(out, e.Start.Format(time.RFC3339))
		}
		return out
	}
	for _, tc := range []struct {
		uid  string
		want []string
	}{
		// An all-day date starts at local midnight (CET, +01:00).
		{"black-friday-2026@shop.example", []string{"2026-11-26T23:00:00Z"}},
		// Weekly on Tuesdays 09:00 Paris: 24 Nov excluded, 8 Dec moved to
		// Wed 9 Dec 11:00, 22 Dec cancelled.
		{"newsletter@shop.example", []string{"2026-11-03T08:00:00Z", "2026-11-10T08:00:00Z", "2026-11-17T08:00:00Z",
			"2026-12-01T08:00:00Z", "2026-12-09T10:00:00Z", "2026-12-15T08:00:00Z", "2026-12-29T08:00:00Z"}},
		// Yearly since 2020, only the window's instances.
		{"christmas@holidays.example", []string{"2026-12-24T23:00:00Z", "2027-12-24T23:00:00Z"}},
		// Windows zone name → America/Los_Angeles (PST, -08:00).
		{"release-42@eng.example", []string{"2026-12-02T00:00:00Z"}},
		{"super-bowl-lxi@sports.example", []string{"2027-02-07T23:30:00Z"}},
		// Floating time, read in the calendar's X-WR-TIMEZONE.
		{"flash-sale@shop.example", []string{"2026-12-05T19:00:00Z"}},
		// COUNT=3 plus two RDATEs.
		{"advent@shop.example", []string{"2026-12-01T07:00:00Z", "2026-12-02T07:00:00Z", "2026-12-03T07:00:00Z",
			"2026-12-24T07:00:00Z", "2026-12-25T07:00:00Z"}},
		// 02:30 does not exist on 28 March 2027 in Paris: RFC 5545 reads it
		// with the offset before the gap.
		{"dst-gap@shop.example", []string{"2027-03-28T01:30:00Z"}},
	} {
		if got := starts(tc.uid); !slices.Equal(got, tc.want) {
			t.Errorf("%s starts %v, want %v", tc.uid, got, tc.want)
		}
	}
	if len(byUID["cancelled-promo@shop.example"]) != 0 {
		t.Error("a cancelled event was stored")
	}
	bf := byUID["black-friday-2026@shop.example"][0]
	if !bf.AllDay || !bf.End.Equal(utc("2026-11-27T23:00:00Z")) || !slices.Equal(bf.Categories, []string{"campaign", "sale"}) {
		t.Errorf("black friday = %+v", bf)
	}
	moved := byUID["newsletter@shop.example"][4]
	if moved.Summary != "Weekly newsletter (moved)" || moved.End.Sub(moved.Start) != time.Hour {
		t.Errorf("moved instance = %+v", moved)
	}
	rel := byUID["release-42@eng.example"][0]
	if rel.End.Sub(rel.Start) != 2*time.Hour || !slices.Equal(rel.Services, []string{"checkout", "payment"}) || !slices.Equal(rel.Categories, []string{"release"}) {
		t.Errorf("release = %+v", rel)
	}
	if gap := byUID["dst-gap@shop.example"][0]; !gap.End.Equal(utc("2027-03-28T02:00:00Z")) {
		t.Errorf("dst-gap end = %v", gap.End)
	}
	// By category across calendars.
	sports, _ := st.Events(ctx, store.EventQuery{From: icsFrom, To: icsTo, Categories: []string{"sports", "holiday"}})
	if len(sports) != 3 {
		t.Errorf("sports+holiday events: %d", len(sports))
	}
	// Re-import: unchanged. A file without the flash sale deletes it.
	rep, _ = runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(icsFixture(t, "campaigns.ics")), o)
	})
	if rep.Unchanged != 19 || rep.Inserted+rep.Updated+rep.Deleted != 0 {
		t.Errorf("re-import: %s", rep)
	}
	edited := strings.Replace(icsFixture(t, "campaigns.ics"), "UID:flash-sale@shop.example", "UID:flash-sale-2@shop.example", 1)
	rep, _ = runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(edited), o)
	})
	if rep.Inserted != 1 || rep.Deleted != 1 {
		t.Errorf("edited import: %s", rep)
	}
}

func TestICalTimeZoneOption(t *testing.T) {
	// --tz overrides X-WR-TIMEZONE for floating times and dates.
	ny, _ := time.LoadLocation("America/New_York")
	res, err := ParseICS(strings.NewReader(icsFixture(t, "campaigns.ics")), ICalOptions{Calendar: "m", From: icsFrom, To: icsTo, Loc: ny})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Events {
		switch e.UID {
		case "flash-sale@shop.example":
			if !e.Start.Equal(utc("2026-12-06T01:00:00Z")) {
				t.Errorf("floating 20:00 in New York = %v", e.Start)
			}
		case "black-friday-2026@shop.example":
			if !e.Start.Equal(utc("2026-11-27T05:00:00Z")) {
				t.Errorf("all-day in New York = %v", e.Start)
			}
		case "newsletter@shop.example":
			// A TZID keeps its own zone.
			if e.Start.Hour() != 8 && e.Start.Hour() != 10 {
				t.Errorf("TZID event moved by --tz: %v", e.Start)
			}
		}
	}
	if len(res.Notes) != 0 {
		t.Errorf("notes with --tz: %v", res.Notes)
	}
}

func TestICalValidation(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	o := ICalOptions{Calendar: "bad", From: icsFrom, To: icsTo, Name: "campaigns-bad.ics"}
	rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(icsFixture(t, "campaigns-bad.ics")), o)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.Reason]int64{store.ReasonMissingField: 2, store.ReasonUnparseableTime: 1, store.ReasonUnknownTimeZone: 1,
		store.ReasonInvalidValue: 3, store.ReasonDuplicateID: 1, store.ReasonUnknownReference: 1}
	for r, n := range want {
		if rep.Reasons[r] != n {
			t.Errorf("%s: %d, want %d (%s)", r, rep.Reasons[r], n, rep)
		}
	}
	if rep.Inserted != 2 || rep.Quarantined != 9 {
		t.Errorf("report: %s", rep)
	}
	// Every refused event is located by its line and UID.
	q := quarantined(t, st)
	if r := q["campaigns-bad.ics:16#mars"]; r.Reason != store.ReasonUnknownTimeZone || !strings.Contains(r.Raw, "Mars") {
		t.Errorf("mars: %+v", r)
	}
	if r := q["campaigns-bad.ics:43#never-matches"]; !strings.Contains(r.Detail, "not supported") {
		t.Errorf("never-matches: %+v", r)
	}
	for _, loc := range []string{"campaigns-bad.ics:4#?", "campaigns-bad.ics:8#no-start", "campaigns-bad.ics:12#bad-start",
		"campaigns-bad.ics:20#bad-rrule", "campaigns-bad.ics:25#backwards", "campaigns-bad.ics:34#twice", "campaigns-bad.ics:38#orphan-override"} {
		if _, ok := q[loc]; !ok {
			t.Errorf("no quarantined row at %s", loc)
		}
	}

	// A file that is not iCalendar at all changes nothing and says so.
	before, _ := st.Events(ctx, store.EventQuery{From: icsFrom, To: icsTo})
	for _, body := range []string{"this is not a calendar", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\n", ""} {
		rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
			return ImportICal(ctx, run, strings.NewReader(body), o)
		})
		if err == nil || rep.Reasons[store.ReasonMalformed] != 1 {
			t.Errorf("%q: err %v, report %s", body, err, rep)
		}
	}
	after, _ := st.Events(ctx, store.EventQuery{From: icsFrom, To: icsTo})
	if len(after) != len(before) {
		t.Errorf("a malformed file changed the stored events: %d → %d", len(before), len(after))
	}
}

func TestICalFastForwardAndBounds(t *testing.T) {
	// A minutely rule started decades ago is not walked from its start, and
	// an event's expansion is bounded.
	ics := "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:tick\nDTSTART:19910101T000000Z\nRRULE:FREQ=MINUTELY;INTERVAL=7\nEND:VEVENT\n" +
		"BEGIN:VEVENT\nUID:weekly\nDTSTART;TZID=Europe/Paris:19950103T090000\nRRULE:FREQ=WEEKLY;BYDAY=TU,TH\nEND:VEVENT\nEND:VCALENDAR\n"
	from := utc("2026-11-02T00:00:00Z")
	res, err := ParseICS(strings.NewReader(ics), ICalOptions{Calendar: "c", From: from, To: from.Add(24 * time.Hour), MaxOccurrences: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ticks, weekly []time.Time
	for _, e := range res.Events {
		if e.UID == "tick" {
			ticks = append(ticks, e.Start)
		} else {
			weekly = append(weekly, e.Start)
		}
	}
	// Every 7 minutes since 1991-01-01T00:00Z: phase kept.
	if len(ticks) == 0 || ticks[0].Sub(utc("1991-01-01T00:00:00Z"))%(7*time.Minute) != 0 {
		t.Fatalf("ticks: %d, first %v", len(ticks), ticks)
	}
	if len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "stopped after 100") {
		t.Errorf("notes: %v", res.Notes)
	}
	// 2026-11-03 is a Tuesday: 09:00 Paris = 08:00Z.
	if len(weekly) != 0 {
		t.Errorf("weekly in a Monday window: %v", weekly)
	}
	res, _ = ParseICS(strings.NewReader(ics), ICalOptions{Calendar: "c", From: from, To: from.Add(7 * 24 * time.Hour), MaxOccurrences: 100000})
	weekly = nil
	for _, e := range res.Events {
		if e.UID == "weekly" {
			weekly = append(weekly, e.Start)
		}
	}
	if len(weekly) != 2 || !weekly[0].Equal(utc("2026-11-03T08:00:00Z")) || !weekly[1].Equal(utc("2026-11-05T08:00:00Z")) {
		t.Errorf("weekly since 1995: %v", weekly)
	}
}

func TestLocalize(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	naive := func(s string) time.Time {
		t, _ := time.Parse("2006-01-02 15:04", s)
		return t
	}
	for _, tc := range []struct {
		in   string
		kind wallClock
		want string
	}{
		{"2026-07-01 12:00", wallUnique, "2026-07-01T10:00:00Z"},
		{"2026-10-25 02:30", wallAmbiguous, "2026-10-25T00:30:00Z"}, // first of the two
		{"2026-03-29 02:30", wallNonexistent, "2026-03-29T01:30:00Z"},
		{"2026-03-29 03:30", wallUnique, "2026-03-29T01:30:00Z"},
	} {
		got, kind := localize(naive(tc.in), paris)
		if kind != tc.kind || !got.Equal(utc(tc.want)) {
			t.Errorf("localize(%s) = %v, %v; want %s, %v", tc.in, got.UTC(), kind, tc.want, tc.kind)
		}
	}
}

// icsOf wraps VEVENT bodies (lines without BEGIN/END) in a calendar.
func icsOf(events ...string) string {
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//lbsys//test//EN\r\n")
	for _, e := range events {
		b.WriteString("BEGIN:VEVENT\r\n" + strings.ReplaceAll(strings.TrimSpace(e), "\n", "\r\n") + "\r\nEND:VEVENT\r\n")
	}
	b.WriteString("END:VCALENDAR\r\n")
	return b.String()
}

// clockStore is a store whose clock is now.
func clockStore(t *testing.T, now time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), store.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestICalHostileFileIsBounded is issue #13 item 13: 300 events of a few
// lines each, every one FREQ=SECONDLY, in the default window (today ± 400
// days) reached 1.6 GiB (10,000 instances per event, all kept). The file
// now fails at 100,000 occurrences, within a small memory bound, with an
// error naming the file, and the calendar's stored events are untouched.
func TestICalHostileFileIsBounded(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	st := clockStore(t, now)
	o := ICalOptions{Calendar: "marketing", From: now.Add(-400 * 24 * time.Hour), To: now.Add(400 * 24 * time.Hour), Name: "hostile.ics"}
	good := icsOf("UID:sale\nDTSTART:20261210T100000Z\nDTEND:20261210T120000Z")
	if rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(good), o)
	}); err != nil || rep.Inserted != 1 {
		t.Fatalf("%s %v", rep, err)
	}
	var evs []string
	for i := range 300 {
		evs = append(evs, fmt.Sprintf("UID:tick-%d\nDTSTART:20251101T000000Z\nDURATION:PT1S\nRRULE:FREQ=SECONDLY", i))
	}
	body := icsOf(evs...)
	if len(body) > 32<<10 {
		t.Fatalf("the hostile file is %d bytes, meant to be small", len(body))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(body), o)
	})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, calendar.ErrTooMany) || !strings.Contains(err.Error(), "hostile.ics") || !strings.Contains(err.Error(), "left as they were") {
		t.Fatalf("err = %v", err)
	}
	if rep.Reasons[store.ReasonInvalidValue] != 1 || rep.Inserted+rep.Deleted != 0 {
		t.Errorf("report %s", rep)
	}
	// 100,000 occurrences of 168 bytes and the instants of one event at a
	// time: tens of MiB allocated in all, not gigabytes (66 MiB were
	// measured under the race detector: 128 MiB leaves room for it and
	// still fails an unbounded expansion by an order of magnitude).
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128<<20 {
		t.Errorf("the import allocated %d MiB", alloc>>20)
	}
	stored, _ := st.Events(ctx, store.EventQuery{From: o.From, To: o.To})
	if len(stored) != 1 || stored[0].UID != "sale" {
		t.Errorf("stored events after the refused file: %+v", stored)
	}
	// The bounds are the caller's to set: 10 instances per event (the
	// expansion starts two periods before the window, so 8 in it) and
	// 3,000 in all.
	o.MaxTotal, o.MaxOccurrences, o.From, o.To = 3000, 10, now, now.Add(time.Hour)
	if rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(body), o)
	}); err != nil || rep.Inserted != 300*8 {
		t.Errorf("with MaxTotal 3000 and 10 per event: %s %v", rep, err)
	}
}

// TestICalRefusesNonsenseRules: rules that cannot be expanded safely are
// quarantined with the event's line and UID, and the rest of the file is
// stored. COUNT and UNTIL are respected.
func TestICalRefusesNonsenseRules(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	st := clockStore(t, now)
	body := icsOf(
		"UID:zero\nDTSTART:20261207T100000Z\nRRULE:FREQ=DAILY;INTERVAL=0", // line 4
		"UID:pos\nDTSTART:20261207T100000Z\nRRULE:FREQ=HOURLY;BYSETPOS=2", // line 9
		"UID:huge\nDTSTART:20261207T100000Z\nRRULE:FREQ=DAILY;INTERVAL=99999",
		"UID:neg\nDTSTART:20261207T100000Z\nRRULE:FREQ=DAILY;COUNT=-1",
		"UID:count\nDTSTART:20261207T100000Z\nRRULE:FREQ=DAILY;COUNT=3",
		"UID:until\nDTSTART:20261207T100000Z\nRRULE:FREQ=DAILY;UNTIL=20261208T100000Z",
	)
	o := ICalOptions{Calendar: "c", From: now, To: now.Add(30 * 24 * time.Hour), Name: "rules.ics"}
	rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(body), o)
	})
	if err != nil {
		t.Fatal(err)
	}
	q := quarantined(t, st)
	for loc, want := range map[string]string{"rules.ics:4#zero": "INTERVAL must be a positive integer", "rules.ics:9#pos": "BYSETPOS",
		"rules.ics:14#huge": "INTERVAL must be between 1 and 10000", "rules.ics:19#neg": "COUNT"} {
		if r := q[loc]; r.Reason != store.ReasonInvalidValue || !strings.Contains(r.Detail, want) {
			t.Errorf("%s: %+v, want invalid_value mentioning %q", loc, r, want)
		}
	}
	if rep.Inserted != 3+2 || rep.Quarantined != 4 {
		t.Errorf("report %s", rep)
	}
}

// TestICalHorizonAndTimeBounds: the window may not end more than
// MaxHorizon after the run's clock, and the expansion stops (changing
// nothing) past MaxExpandTime.
func TestICalHorizonAndTimeBounds(t *testing.T) {
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	st := clockStore(t, now)
	body := icsOf("UID:a\nDTSTART:20261207T100000Z\nRRULE:FREQ=YEARLY")
	for _, tc := range []struct {
		o    ICalOptions
		want string
	}{
		{ICalOptions{From: now, To: now.AddDate(6, 0, 0)}, "more than 1830 days after now"},
		{ICalOptions{From: now, To: now.AddDate(2, 0, 0), MaxHorizon: 365 * 24 * time.Hour}, "raise --max-horizon"},
		{ICalOptions{From: now, To: now.AddDate(1, 0, 0), MaxExpandTime: time.Nanosecond}, "took too long"},
		{ICalOptions{From: now, To: now}, "is empty"},
		{ICalOptions{From: now, To: now.AddDate(1, 0, 0), MaxBytes: 100}, "larger than 100 bytes"},
	} {
		tc.o.Calendar, tc.o.Name = "c", "h.ics"
		_, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
			return ImportICal(ctx, run, strings.NewReader(body), tc.o)
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.o, err, tc.want)
		}
	}
	if n, _ := st.Stats(context.Background()); n.Events != 0 {
		t.Errorf("%d events stored", n.Events)
	}
	if rep, err := runSource(t, st, "ical", func(ctx context.Context, run *Run) error {
		return ImportICal(ctx, run, strings.NewReader(body), ICalOptions{Calendar: "c", From: now, To: now.AddDate(5, 0, 0), Name: "h.ics"})
	}); err != nil || rep.Inserted != 5 {
		t.Errorf("five years: %s %v", rep, err)
	}
}
