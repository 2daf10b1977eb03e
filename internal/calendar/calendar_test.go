package calendar

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func ics(events ...string) []byte {
	return []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//lbsys//test//EN\r\n" + strings.Join(events, "") + "END:VCALENDAR\r\n")
}

func vevent(lines ...string) string {
	return "BEGIN:VEVENT\r\nDTSTAMP:20260101T000000Z\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VEVENT\r\n"
}

var (
	from = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	to   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

func TestParse(t *testing.T) {
	type occ struct {
		start, end string
		cat        string
	}
	for _, tc := range []struct {
		name     string
		data     []byte
		want     []occ
		problems []Reason
		skipped  int
	}{
		{
			name: "one timed event with a category",
			data: ics(vevent("UID:a", "DTSTART:20261127T080000Z", "DTEND:20261127T083000Z", "CATEGORIES:Flash-Sale,marketing", "SUMMARY:Doorbusters")),
			want: []occ{{"2026-11-27T08:00:00Z", "2026-11-27T08:30:00Z", "flash-sale"}},
		},
		{
			name: "weekly rule with an exception and a moved instance",
			data: ics(
				vevent("UID:w", "DTSTART:20261102T100000Z", "DURATION:PT20M", "RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE:20261109T100000Z", "CATEGORIES:newsletter"),
				vevent("UID:w", "RECURRENCE-ID:20261116T100000Z", "DTSTART:20261116T120000Z", "DURATION:PT20M", "CATEGORIES:newsletter"),
			),
			want: []occ{
				{"2026-11-02T10:00:00Z", "2026-11-02T10:20:00Z", "newsletter"},
				{"2026-11-16T12:00:00Z", "2026-11-16T12:20:00Z", "newsletter"},
				{"2026-11-23T10:00:00Z", "2026-11-23T10:20:00Z", "newsletter"},
			},
		},
		{
			name: "time zone by TZID",
			data: ics(vevent("UID:z", "DTSTART;TZID=Europe/Paris:20261127T090000", "DTEND;TZID=Europe/Paris:20261127T100000")),
			want: []occ{{"2026-11-27T08:00:00Z", "2026-11-27T09:00:00Z", "event"}},
		},
		{
			name: "all-day event lasts the day",
			data: ics(vevent("UID:d", "DTSTART;VALUE=DATE:20261127", "CATEGORIES:holiday")),
			want: []occ{{"2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z", "holiday"}},
		},
		{
			name:    "cancelled event is skipped",
			data:    ics(vevent("UID:c", "DTSTART:20261127T080000Z", "STATUS:CANCELLED")),
			skipped: 1,
		},
		{
			name:     "INTERVAL=0 is refused, the rest is read",
			data:     ics(vevent("UID:bad", "DTSTART:20261102T100000Z", "RRULE:FREQ=DAILY;INTERVAL=0"), vevent("UID:ok", "DTSTART:20261103T100000Z", "DTEND:20261103T110000Z")),
			want:     []occ{{"2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", "event"}},
			problems: []Reason{ReasonInvalidValue},
		},
		{
			name:     "missing DTSTART and unknown zone",
			data:     ics(vevent("UID:m", "SUMMARY:x"), vevent("UID:tz", "DTSTART;TZID=Mars/Olympus:20261127T090000")),
			problems: []Reason{ReasonMissingField, ReasonUnknownTimeZone},
		},
		{
			name: "outside the window is left out",
			data: ics(vevent("UID:o", "DTSTART:20270101T080000Z", "DTEND:20270101T090000Z")),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Parse(tc.data, Options{From: from, To: to, Name: "t.ics"})
			if err != nil {
				t.Fatal(err)
			}
			var got []occ
			for _, e := range res.Events {
				got = append(got, occ{e.Start.Format(time.RFC3339), e.End.Format(time.RFC3339), e.Category()})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
			var reasons []Reason
			for _, p := range res.Problems {
				reasons = append(reasons, p.Reason)
				if !strings.HasPrefix(p.Location, "t.ics#") {
					t.Errorf("problem location %q", p.Location)
				}
			}
			if fmt.Sprint(reasons) != fmt.Sprint(tc.problems) {
				t.Errorf("problems %v (%+v), want %v", reasons, res.Problems, tc.problems)
			}
			if res.Skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", res.Skipped, tc.skipped)
			}
		})
	}
}

// A small hostile file of many minutely rules must fail with a clear error
// rather than expand without bound.
func TestParseBoundsTotalOccurrences(t *testing.T) {
	var evs []string
	for i := 0; i < 300; i++ {
		evs = append(evs, vevent(fmt.Sprintf("UID:e%d", i), "DTSTART:20261101T000000Z", "DURATION:PT1M", "RRULE:FREQ=MINUTELY"))
	}
	_, err := Parse(ics(evs...), Options{From: from, To: to, Name: "hostile.ics", MaxTotal: 50_000})
	if !errors.Is(err, ErrTooMany) {
		t.Fatalf("got %v, want ErrTooMany", err)
	}
	if !strings.Contains(err.Error(), "hostile.ics") {
		t.Errorf("error does not name the file: %v", err)
	}
}

func TestParseRefusesBadInput(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("not a calendar"), []byte(strings.Repeat("BEGIN:VCALENDAR\n", 40))} {
		if _, err := Parse(data, Options{From: from, To: to}); err == nil {
			t.Errorf("%q: no error", data)
		}
	}
	if _, err := Parse(ics(), Options{From: to, To: from}); err == nil {
		t.Error("an empty window gave no error")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(ics(vevent("UID:a", "DTSTART:20261127T080000Z", "DTEND:20261127T083000Z", "CATEGORIES:sale")))
	f.Add(ics(vevent("UID:w", "DTSTART;TZID=Europe/Paris:20261102T100000", "DURATION:PT20M", "RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE:20261109T100000Z")))
	f.Add(ics(vevent("UID:r", "DTSTART:20261102T100000Z", "RRULE:FREQ=HOURLY;INTERVAL=5;BYDAY=MO", "RDATE:20261103T100000Z,20261104T100000Z")))
	f.Add(ics(vevent("UID:s", "DTSTART:20261127T080000Z", `X-LBSYS-WARM:/catalog/products/p1,/s?q=a\,b,x,//h/p,/a#b`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Parse(data, Options{From: from, To: to, MaxTotal: 20_000})
		if err != nil {
			return
		}
		for _, e := range res.Events {
			if e.Start.Before(from) || !e.Start.Before(to) || e.End.Before(e.Start) {
				t.Fatalf("occurrence %v..%v outside the window or reversed", e.Start, e.End)
			}
		}
		if len(res.Events) > 20_000 {
			t.Fatalf("%d occurrences past the bound", len(res.Events))
		}
		for _, e := range res.Events {
			if len(e.Warm) > MaxWarmPaths {
				t.Fatalf("%d warm paths past the bound", len(e.Warm))
			}
			for _, w := range e.Warm {
				if badWarmPath(w) != "" {
					t.Fatalf("warm path %q kept: %s", w, badWarmPath(w))
				}
			}
		}
	})
}

// TestWarmPaths: X-LBSYS-WARM names the paths an event features, case and
// order kept, escapes undone, duplicates dropped; values no cache could
// fetch as a path of the site are left out with a note that names the
// event, and the event itself is kept.
func TestWarmPaths(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string
		notes []string // substrings, one note each
	}{
		{name: "none", lines: nil},
		{name: "list, case kept", lines: []string{"X-LBSYS-WARM:/catalog/products/P0042,/catalog/products?page=1&size=20"},
			want: []string{"/catalog/products/P0042", "/catalog/products?page=1&size=20"}},
		{name: "two lines, spaces trimmed, duplicates dropped", lines: []string{"X-LBSYS-WARM:/a, /b", "X-LBSYS-WARM:/b,/c"},
			want: []string{"/a", "/b", "/c"}},
		{name: "escaped comma and semicolon", lines: []string{`X-LBSYS-WARM:/s?q=a\,b\;c,/d`}, want: []string{"/s?q=a,b;c", "/d"}},
		{name: "folded line", lines: []string{"X-LBSYS-WARM:/catalog/products/p0001,/catalog/pro\r\n ducts/p0002"},
			want: []string{"/catalog/products/p0001", "/catalog/products/p0002"}},
		{name: "bad values left out", lines: []string{"X-LBSYS-WARM:catalog/x,//evil.example/x,/ok,/a#frag,/sp ace"},
			want:  []string{"/ok"},
			notes: []string{`"catalog/x" left out: not an absolute path`, `"//evil.example/x" left out: starts with //`, `"/a#frag" left out: holds a fragment`, `"/sp ace" left out: holds a space`}},
		{name: "too long", lines: []string{"X-LBSYS-WARM:/" + strings.Repeat("x", 2048)}, notes: []string{"longer than 2048 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := append([]string{"UID:sale-1", "DTSTART:20261127T080000Z", "DTEND:20261127T083000Z", "CATEGORIES:flash-sale"}, tc.lines...)
			res, err := Parse(ics(vevent(lines...)), Options{From: from, To: to, Name: "t.ics"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Events) != 1 || len(res.Problems) != 0 {
				t.Fatalf("events %d problems %+v: the event must be kept", len(res.Events), res.Problems)
			}
			if got := res.Events[0].Warm; fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("warm %q, want %q", got, tc.want)
			}
			if len(res.Notes) != len(tc.notes) {
				t.Fatalf("notes %q, want %d", res.Notes, len(tc.notes))
			}
			for i, n := range tc.notes {
				if !strings.Contains(res.Notes[i], n) || !strings.Contains(res.Notes[i], "t.ics#sale-1") {
					t.Errorf("note %q does not say %q or name the event", res.Notes[i], n)
				}
			}
		})
	}
}

// TestWarmPathsBounded: an event lists at most MaxWarmPaths paths.
func TestWarmPathsBounded(t *testing.T) {
	var paths []string
	for i := 0; i < MaxWarmPaths+50; i++ {
		paths = append(paths, fmt.Sprintf("/p/%d", i))
	}
	res, err := Parse(ics(vevent("UID:big", "DTSTART:20261127T080000Z", "X-LBSYS-WARM:"+strings.Join(paths, ","))), Options{From: from, To: to, Name: "t.ics"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Events[0].Warm); n != MaxWarmPaths {
		t.Fatalf("%d paths kept, want %d", n, MaxWarmPaths)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "more than 1000 paths") {
		t.Errorf("notes %q", res.Notes)
	}
}
