package calendar

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestProblemLines: a refused event says at which line of the file it
// begins, in every VCALENDAR of the file, folded lines notwithstanding.
func TestProblemLines(t *testing.T) {
	data := []byte("BEGIN:VCALENDAR\r\n" + // 1
		"BEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\n" + // 2-4
		"BEGIN:VEVENT\r\nUID:ok\r\nDTSTART:20261102T100000Z\r\nSUMMARY:a long\r\n  summary\r\nEND:VEVENT\r\n" + // 5-10
		"BEGIN:VEVENT\r\nUID:zero\r\nDTSTART:20261102T100000Z\r\nRRULE:FREQ=DAILY;INTERVAL=0\r\nEND:VEVENT\r\n" + // 11-15
		"END:VCALENDAR\r\n" + // 16
		"BEGIN:VCALENDAR\r\n" + // 17
		"BEGIN:VEVENT\r\nUID:nostart\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nEND:VALARM\r\nEND:VEVENT\r\n" + // 18-23
		"BEGIN:VEVENT\r\nUID:pos\r\nDTSTART:20261102T100000Z\r\nRRULE:FREQ=HOURLY;BYSETPOS=2\r\nEND:VEVENT\r\n" + // 24-28
		"END:VCALENDAR\r\n")
	res, err := Parse(data, Options{From: from, To: to, Name: "l.ics"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, p := range res.Problems {
		got[p.Location] = p.Line
	}
	want := map[string]int{"l.ics#zero": 11, "l.ics#nostart": 18, "l.ics#pos": 24}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("problem lines %v, want %v (%+v)", got, want, res.Problems)
	}
}

// TestSubDailyBySetPosIsRefused: rrule-go iterates FREQ=HOURLY;BYSETPOS=2
// (a position a one-instant period never has) hour by hour to the year 9999
// — 20 s; MINUTELY and SECONDLY take hours. Such a rule is refused before
// it is expanded.
func TestSubDailyBySetPosIsRefused(t *testing.T) {
	for _, rule := range []string{"FREQ=HOURLY;BYSETPOS=2", "FREQ=MINUTELY;BYSETPOS=-2", "FREQ=SECONDLY;BYSETPOS=1,3"} {
		done := make(chan *Result, 1)
		go func() {
			res, _ := Parse(ics(vevent("UID:p", "DTSTART:20261102T100000Z", "RRULE:"+rule)), Options{From: from, To: to, Name: "p.ics"})
			done <- res
		}()
		select {
		case res := <-done:
			if res == nil || len(res.Problems) != 1 || res.Problems[0].Reason != ReasonInvalidValue || !strings.Contains(res.Problems[0].Detail, "BYSETPOS") {
				t.Errorf("%s: %+v", rule, res)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still expanding after 10 s", rule)
		}
	}
}

// TestInterruptStopsTheExpansion: the caller's budget (or Ctrl-C) stops a
// file between two events, with an error naming the event and its line.
func TestInterruptStopsTheExpansion(t *testing.T) {
	stop := errors.New("over budget")
	calls := 0
	data := ics(vevent("UID:a", "DTSTART:20261102T100000Z"), vevent("UID:b", "DTSTART:20261103T100000Z"))
	_, err := Parse(data, Options{From: from, To: to, Name: "i.ics", Interrupt: func() error {
		if calls++; calls == 2 {
			return stop
		}
		return nil
	}})
	if !errors.Is(err, stop) || !strings.Contains(err.Error(), "event b (line 9)") {
		t.Fatalf("err = %v", err)
	}
}

// TestRDateListIsBounded: an event's RDATE and EXDATE values count against
// MaxOccurrences (rrule-go keeps and sorts them all).
func TestRDateListIsBounded(t *testing.T) {
	var dates []string
	for i := range 50 {
		dates = append(dates, time.Date(2026, 11, 2, 0, i, 0, 0, time.UTC).Format("20060102T150405Z"))
	}
	data := ics(vevent("UID:r", "DTSTART:20261102T100000Z", "RDATE:"+strings.Join(dates, ",")))
	res, err := Parse(data, Options{From: from, To: to, MaxOccurrences: 40})
	if err != nil || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Detail, "50 RDATE and EXDATE values") {
		t.Fatalf("%+v %v", res, err)
	}
	if res, err := Parse(data, Options{From: from, To: to, MaxOccurrences: 100}); err != nil || len(res.Events) != 51 {
		t.Fatalf("within the bound: %d events, %v", len(res.Events), err)
	}
}
