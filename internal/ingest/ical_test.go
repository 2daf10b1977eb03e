package ingest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	q := quarantined(t, st)
	if r := q["campaigns-bad.ics#mars"]; r.Reason != store.ReasonUnknownTimeZone || !strings.Contains(r.Raw, "Mars") {
		t.Errorf("mars: %+v", r)
	}
	if r := q["campaigns-bad.ics#never-matches"]; !strings.Contains(r.Detail, "not supported") {
		t.Errorf("never-matches: %+v", r)
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
