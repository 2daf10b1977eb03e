package forecast

import (
	"testing"
	"time"
)

func TestHolidays(t *testing.T) {
	us, _ := HolidaysByName("us")
	au, _ := HolidaysByName("au")
	cases := []struct {
		h    Holidays
		date string
		want bool
	}{
		{us, "1995-07-04", true},
		{us, "2014-11-27", true},  // Thanksgiving
		{us, "2015-01-19", true},  // MLK day
		{us, "2021-12-31", true},  // New Year 2022 (Saturday) observed on Friday
		{us, "2015-05-25", true},  // Memorial Day
		{us, "2015-05-18", false}, // a Monday in May
		{au, "2023-04-07", true},  // Good Friday
		{au, "2023-04-10", true},  // Easter Monday
		{au, "2023-04-25", true},  // Anzac Day
		{au, "2023-04-26", false},
	}
	for _, c := range cases {
		d, _ := time.Parse(time.DateOnly, c.date)
		if got := c.h.IsHoliday(d.Year(), d.Month(), d.Day()); got != c.want {
			t.Errorf("%T %s: %v, want %v", c.h, c.date, got, c.want)
		}
	}
	if _, err := HolidaysByName("mars"); err == nil {
		t.Error("unknown calendar accepted")
	}
}

func TestEventFeatures(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.DateTime, s); return v }
	ix := newEventIndex([]Event{
		{Start: at("2024-01-10 20:00:00"), End: at("2024-01-10 22:00:00"), Category: "premiere"},
		{Start: at("2024-01-12 00:00:00"), End: at("2024-01-13 00:00:00"), Category: "sale"},
	})
	c := indexOf(ix.cats, "premiere")
	in, until, since := ix.features(c, at("2024-01-10 21:00:00"))
	if in != 1 || until != eventHorizonCap || since != eventHorizonCap {
		t.Errorf("during: %v %v %v", in, until, since)
	}
	in, until, since = ix.features(c, at("2024-01-10 18:30:00"))
	if in != 0 || until != 1.5 {
		t.Errorf("before: %v %v %v", in, until, since)
	}
	in, _, since = ix.features(c, at("2024-01-11 01:00:00"))
	if in != 0 || since != 3 {
		t.Errorf("after: %v %v", in, since)
	}
}
