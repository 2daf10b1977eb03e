package forecast

import (
	"fmt"
	"sort"
	"time"
)

// Holidays says whether a date is a public holiday. Dates are civil dates
// in the series' own (naive) time.
type Holidays interface {
	IsHoliday(y int, m time.Month, d int) bool
}

// HolidaysByName returns a built-in rule-based calendar: "us" (US federal
// holidays), "au" (Australian national holidays plus Victoria's), or
// "none". Rules, not tables, so any year works.
func HolidaysByName(name string) (Holidays, error) {
	switch name {
	case "", "us":
		return usHolidays{}, nil
	case "au":
		return auHolidays{}, nil
	case "none":
		return noHolidays{}, nil
	}
	return nil, fmt.Errorf("holidays %q: expected us, au or none", name)
}

type noHolidays struct{}

func (noHolidays) IsHoliday(int, time.Month, int) bool { return false }

// nthWeekday returns the day of month of the n-th (1-based) weekday wd in
// month m of year y; n = -1 is the last one.
func nthWeekday(y int, m time.Month, wd time.Weekday, n int) int {
	if n > 0 {
		first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC).Weekday()
		return 1 + (int(wd)-int(first)+7)%7 + 7*(n-1)
	}
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC)
	return last.Day() - (int(last.Weekday())-int(wd)+7)%7
}

// observed moves a fixed-date holiday falling on a weekend to the nearest
// weekday (US federal rule: Saturday → Friday, Sunday → Monday).
func observed(y int, m time.Month, d int) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	switch t.Weekday() {
	case time.Saturday:
		return t.AddDate(0, 0, -1)
	case time.Sunday:
		return t.AddDate(0, 0, 1)
	}
	return t
}

type usHolidays struct{}

// IsHoliday implements the US federal holidays (5 U.S.C. 6103).
func (usHolidays) IsHoliday(y int, m time.Month, d int) bool {
	date := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	for _, fixed := range [][2]int{{1, 1}, {6, 19}, {7, 4}, {11, 11}, {12, 25}} {
		if fixed == [2]int{6, 19} && y < 2021 {
			continue
		}
		if observed(y, time.Month(fixed[0]), fixed[1]).Equal(date) {
			return true
		}
	}
	// New Year's Day of next year observed on Dec 31.
	if m == time.December && d == 31 && observed(y+1, time.January, 1).Equal(date) {
		return true
	}
	switch m {
	case time.January:
		return d == nthWeekday(y, m, time.Monday, 3) // Martin Luther King Jr. Day
	case time.February:
		return d == nthWeekday(y, m, time.Monday, 3) // Washington's Birthday
	case time.May:
		return d == nthWeekday(y, m, time.Monday, -1) // Memorial Day
	case time.September:
		return d == nthWeekday(y, m, time.Monday, 1) // Labor Day
	case time.October:
		return d == nthWeekday(y, m, time.Monday, 2) // Columbus Day
	case time.November:
		return d == nthWeekday(y, m, time.Thursday, 4) // Thanksgiving
	}
	return false
}

type auHolidays struct{}

// IsHoliday implements Australia's national holidays and Victoria's
// (Labour Day, King's Birthday, Melbourne Cup), weekend substitution aside.
func (auHolidays) IsHoliday(y int, m time.Month, d int) bool {
	date := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	e := easter(y)
	for _, off := range []int{-2, -1, 1} { // Good Friday, Easter Saturday, Easter Monday
		if e.AddDate(0, 0, off).Equal(date) {
			return true
		}
	}
	switch {
	case m == time.January && (d == 1 || d == 26),
		m == time.April && d == 25,
		m == time.December && (d == 25 || d == 26):
		return true
	case m == time.March:
		return d == nthWeekday(y, m, time.Monday, 2) // Labour Day (Vic)
	case m == time.June:
		return d == nthWeekday(y, m, time.Monday, 2) // King's Birthday
	case m == time.November:
		return d == nthWeekday(y, m, time.Tuesday, 1) // Melbourne Cup (Vic)
	}
	return false
}

// easter returns Western Easter Sunday (the anonymous Gregorian algorithm,
// Meeus/Jones/Butcher).
func easter(y int) time.Time {
	a, b, c := y%19, y/100, y%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(y, time.Month(month), day, 0, 0, 0, 0, time.UTC)
}

// Event is one occurrence of a calendar event (a TV premiere, a sale, a
// change window): [Start, End) in the series' time, with a category that
// becomes a feature family. Recurring events arrive expanded.
type Event struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Category string    `json:"category"`
}

// maxEventCategories bounds the feature count: categories beyond this many
// (by number of occurrences) are folded into "other".
const maxEventCategories = 6

// eventHorizonCap caps time-to and time-since features (in hours): beyond
// a week an event is as good as absent.
const eventHorizonCap = 168.0

// eventIndex answers per-category questions about a time quickly.
type eventIndex struct {
	cats   []string
	starts [][]time.Time // per category, sorted
	ends   [][]time.Time // per category, sorted
	evs    [][]Event     // per category, sorted by start
}

func newEventIndex(events []Event) *eventIndex {
	if len(events) == 0 {
		return nil
	}
	count := map[string]int{}
	for _, e := range events {
		count[e.Category]++
	}
	cats := make([]string, 0, len(count))
	for c := range count {
		cats = append(cats, c)
	}
	sort.Slice(cats, func(i, j int) bool {
		if count[cats[i]] != count[cats[j]] {
			return count[cats[i]] > count[cats[j]]
		}
		return cats[i] < cats[j]
	})
	folded := false
	if len(cats) > maxEventCategories {
		cats = append(cats[:maxEventCategories-1], "other")
		folded = true
	}
	sort.Strings(cats)
	pos := map[string]int{}
	for i, c := range cats {
		pos[c] = i
	}
	ix := &eventIndex{cats: cats, starts: make([][]time.Time, len(cats)), ends: make([][]time.Time, len(cats)), evs: make([][]Event, len(cats))}
	for _, e := range events {
		i, ok := pos[e.Category]
		if !ok && folded {
			i = pos["other"]
		}
		ix.evs[i] = append(ix.evs[i], e)
	}
	for i := range cats {
		ev := ix.evs[i]
		sort.Slice(ev, func(a, b int) bool { return ev[a].Start.Before(ev[b].Start) })
		for _, e := range ev {
			ix.starts[i] = append(ix.starts[i], e.Start)
			ix.ends[i] = append(ix.ends[i], e.End)
		}
		sort.Slice(ix.ends[i], func(a, b int) bool { return ix.ends[i][a].Before(ix.ends[i][b]) })
	}
	return ix
}

// features returns, for category c at time t: in an event (0/1), hours
// until the next start, hours since the last end (both capped).
func (ix *eventIndex) features(c int, t time.Time) (in, until, since float64) {
	ev := ix.evs[c]
	// Events starting at or before t: is any still running?
	k := sort.Search(len(ev), func(i int) bool { return ev[i].Start.After(t) })
	for i := k - 1; i >= 0 && i >= k-16; i-- {
		if t.Before(ev[i].End) {
			in = 1
			break
		}
	}
	until = eventHorizonCap
	if k < len(ev) {
		until = min(ev[k].Start.Sub(t).Hours(), eventHorizonCap)
	}
	since = eventHorizonCap
	ends := ix.ends[c]
	j := sort.Search(len(ends), func(i int) bool { return ends[i].After(t) })
	if j > 0 {
		since = min(t.Sub(ends[j-1]).Hours(), eventHorizonCap)
	}
	return in, until, since
}
