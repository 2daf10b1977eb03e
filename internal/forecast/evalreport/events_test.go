package evalreport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadEventsExpandsRecurrences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cal.ics")
	os.WriteFile(path, []byte(strings.ReplaceAll(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//lbsys//test//EN
BEGIN:VEVENT
UID:a@test
DTSTAMP:20240101T000000Z
DTSTART;TZID=America/New_York:20240105T200000
DTEND;TZID=America/New_York:20240105T220000
SUMMARY:TV Premiere
RRULE:FREQ=WEEKLY;BYDAY=FR
END:VEVENT
BEGIN:VEVENT
UID:b@test
DTSTAMP:20240101T000000Z
DTSTART;VALUE=DATE:20240126
SUMMARY:Sale
CATEGORIES:Black Friday,sale
END:VEVENT
BEGIN:VEVENT
UID:c@test
DTSTAMP:20240101T000000Z
DTSTART:20231201T100000Z
DTEND:20231201T110000Z
SUMMARY:Outside
END:VEVENT
BEGIN:VEVENT
UID:d@test
DTSTAMP:20240101T000000Z
DTSTART;TZID=Mars/Olympus:20240110T100000
SUMMARY:Unknown zone
END:VEVENT
END:VCALENDAR
`, "\n", "\r\n")), 0o644)
	ny, _ := time.LoadLocation("America/New_York")
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ev, notes, err := ReadEvents(path, ny, true, nil, from, from.Add(28*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range ev {
		count[e.Category]++
		switch e.Category {
		case "event":
			// Wall-clock New York time, made naive.
			if e.Start.Hour() != 20 || e.End.Sub(e.Start) != 2*time.Hour || e.Start.Weekday() != time.Friday || e.Start.Location() != time.UTC {
				t.Errorf("premiere at %v", e.Start)
			}
		case "black_friday", "sale":
			if e.End.Sub(e.Start) != 24*time.Hour || e.Start.Hour() != 0 {
				t.Errorf("all-day sale %v .. %v", e.Start, e.End)
			}
		}
	}
	// Premieres have no CATEGORIES: "event" (the SUMMARY is not a
	// category); the sale counts under both of its categories; the event
	// before the window is not read.
	if count["event"] != 4 || count["black_friday"] != 1 || count["sale"] != 1 || len(ev) != 6 {
		t.Errorf("categories %v: %+v", count, ev)
	}
	if j := strings.Join(notes, "\n"); !strings.Contains(j, "cal.ics:26#d@test") || !strings.Contains(j, "Mars/Olympus") {
		t.Errorf("the refused event is not named with its line: %q", notes)
	}
	ev, _, err = ReadEvents(path, ny, true, []string{"Premiere"}, from, from.Add(28*24*time.Hour))
	if err != nil || len(ev) != 6 || ev[0].Category != "premiere" {
		t.Errorf("--event-category: %v %+v", err, ev)
	}
	if _, _, err := ReadEvents(filepath.Join(t.TempDir(), "missing.ics"), ny, true, nil, from, from.Add(time.Hour)); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.ics")
	os.WriteFile(bad, []byte("not a calendar"), 0o644)
	if _, _, err := ReadEvents(bad, ny, true, nil, from, from.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "bad.ics") {
		t.Errorf("a file that is no calendar: %v", err)
	}
}
