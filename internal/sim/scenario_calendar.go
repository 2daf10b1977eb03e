package sim

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/calendar"
)

// Calendar announces events in an iCalendar file (what the company's
// marketing calendar says: a category and a time) and says, per category,
// what such an event does to the load (the simulated world's truth, which
// no controller is shown: a predictive controller must learn it from the
// past events of the category in the history).
type Calendar struct {
	// File is the iCalendar file, relative to the scenario file's
	// directory. Its events before the start fall in the history, the
	// others in the run.
	File string `yaml:"file"`
	// Effects are the categories' effects, by category (lower case, as
	// CATEGORIES values are read). An event of a category without an
	// effect changes nothing (a calendar also lists events that do not
	// move the load).
	Effects map[string]Effect `yaml:"effects"`

	events []CalendarEvent // loaded by LoadCalendar, with factors drawn
}

// Effect multiplies the load while an event lasts: the factor rises
// linearly from 1 to X over Rise, then holds — or, with Decay, falls back
// toward 1 exponentially with that time constant (a newsletter: a burst
// of clicks that fades) — and returns to 1 over Fall at the event's end.
type Effect struct {
	// X is the factor at the plateau; or XRange draws one per event,
	// uniformly, from the run's seed and the event (so every control and
	// policy sees the same draw).
	X      float64 `yaml:"x"`
	XRange *Range  `yaml:"x_range"`
	// Rise is how long the factor takes to reach X. Default 60s.
	Rise time.Duration `yaml:"rise"`
	// Decay is the time constant of the fade after the rise; 0 holds.
	Decay time.Duration `yaml:"decay"`
	// Fall is how long the factor takes to return to 1 after the event's
	// end. Default 0. (An effect multiplies the arrivals; every service
	// sees its share of them through the funnel.)
	Fall time.Duration `yaml:"fall"`
}

// History is the load before the start that controllers learn from,
// drawn from the same arrival process as the run.
type History struct {
	// Days of history before the start. Default 14; 0 in YAML: none.
	Days int `yaml:"days"`
}

// CalendarEvent is one announced occurrence with the factor the
// simulated world gives it.
type CalendarEvent struct {
	UID        string
	Category   string
	Start, End time.Time
	// X is the drawn plateau factor (1 when the category has no effect).
	X float64
	// Name is the event's SUMMARY; Services its X-LBSYS-SERVICES (empty:
	// every service); Warm its X-LBSYS-WARM paths: the pages it features,
	// which its crowd asks for (see ProxyCache.FeaturedShare) and the
	// controller may warm.
	Name     string
	Services []string
	Warm     []string
	// Announced events are in the calendar file; the run's unannounced
	// flash sales are not calendar events.
	effect *Effect
}

// HasCalendar reports whether the scenario announces events.
func (sc *Scenario) HasCalendar() bool { return sc.Calendar != nil && sc.Calendar.File != "" }

// NeedsCalendar returns the calendar file the scenario reads ("" when
// none), as written (relative to the scenario file's directory).
func (sc *Scenario) NeedsCalendar() string {
	if !sc.HasCalendar() {
		return ""
	}
	return sc.Calendar.File
}

// LoadCalendar reads the scenario's calendar with read (the caller does
// the I/O). Events are expanded from the history's start to the run's
// end. It does nothing when the scenario has no calendar.
func (sc *Scenario) LoadCalendar(read func(path string) ([]byte, error)) error {
	if !sc.HasCalendar() {
		return nil
	}
	c := sc.Calendar
	data, err := read(c.File)
	if err != nil {
		return fmt.Errorf("%s: calendar.file: %w", sc.file, err)
	}
	from := sc.Start.Add(-time.Duration(sc.History.Days)*24*time.Hour - 24*time.Hour)
	res, err := calendar.Parse(data, calendar.Options{Name: c.File, From: from, To: sc.Start.Add(sc.Duration + 24*time.Hour), MaxTotal: 10000})
	if err != nil {
		return fmt.Errorf("%s: calendar.file: %w", sc.file, err)
	}
	if len(res.Problems) > 0 {
		var msgs []string
		for _, p := range res.Problems {
			msgs = append(msgs, p.Location+": "+p.Detail)
		}
		return fmt.Errorf("%s: calendar.file %s: %d events could not be read: %s", sc.file, c.File, len(res.Problems), strings.Join(msgs, "; "))
	}
	c.events = nil
	for _, e := range res.Events {
		ce := CalendarEvent{UID: e.UID, Category: e.Category(), Start: e.Start, End: e.End, X: 1, Name: e.Summary, Services: e.Services, Warm: e.Warm}
		if eff, ok := c.Effects[ce.Category]; ok {
			ef := eff
			ce.effect = &ef
		}
		c.events = append(c.events, ce)
	}
	sort.SliceStable(c.events, func(i, j int) bool { return c.events[i].Start.Before(c.events[j].Start) })
	return nil
}

// Events returns the announced events with the factors seed draws.
func (sc *Scenario) Events(seed uint64) []CalendarEvent {
	if !sc.HasCalendar() {
		return nil
	}
	out := make([]CalendarEvent, len(sc.Calendar.events))
	for i, e := range sc.Calendar.events {
		e.X = 1
		if ef := e.effect; ef != nil {
			e.X = ef.X
			if r := ef.XRange; r != nil {
				h := fnv.New64a()
				fmt.Fprintf(h, "%d|%s|%d", seed, e.UID, e.Start.UnixNano())
				u := float64(h.Sum64()>>11) / (1 << 53)
				e.X = r.Min + (r.Max-r.Min)*u
			}
		}
		out[i] = e
	}
	return out
}

// factor is the event's multiplier at calendar time t.
func (e *CalendarEvent) factor(t time.Time) float64 {
	ef := e.effect
	if ef == nil || t.Before(e.Start) {
		return 1
	}
	end := e.End
	if t.After(end.Add(ef.Fall)) || (ef.Fall == 0 && !t.Before(end)) {
		return 1
	}
	since := t.Sub(e.Start)
	m := e.X
	if ef.Rise > 0 && since < ef.Rise {
		m = 1 + (e.X-1)*float64(since)/float64(ef.Rise)
	} else if ef.Decay > 0 {
		m = 1 + (e.X-1)*math.Exp(-float64(since-ef.Rise)/float64(ef.Decay))
	}
	if !t.Before(end) && ef.Fall > 0 {
		// Down from the level at the end to 1 over Fall.
		atEnd := e.factor(end.Add(-1))
		m = 1 + (atEnd-1)*(1-float64(t.Sub(end))/float64(ef.Fall))
	}
	return m
}

// eventFactor multiplies the factors of every event at t.
func eventFactor(evs []CalendarEvent, t time.Time) float64 {
	m := 1.0
	for i := range evs {
		e := &evs[i]
		if e.effect == nil || t.Before(e.Start) {
			continue
		}
		m *= e.factor(t)
	}
	return m
}

func (sc *Scenario) calendarDefaults() {
	if !sc.set("history.days") && sc.History.Days == 0 {
		sc.History.Days = 14
	}
	if c := sc.Calendar; c != nil {
		for k, e := range c.Effects {
			defDur(&e.Rise, sc.set("calendar.effects."+k+".rise"), time.Minute)
			c.Effects[k] = e
		}
	}
}

func (sc *Scenario) validateCalendar(v *validator) {
	if sc.History.Days < 0 || sc.History.Days > 60 {
		v.errf("history.days", "want 0 to 60 days, got %d", sc.History.Days)
	}
	c := sc.Calendar
	if c == nil {
		return
	}
	if c.File == "" {
		v.errf("calendar.file", "required: an iCalendar file announcing the events (relative to the scenario file)")
	}
	keys := make([]string, 0, len(c.Effects))
	for k := range c.Effects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := c.Effects[k]
		p := "calendar.effects." + k
		if k != strings.ToLower(k) {
			v.errf(p, "categories are read in lower case: write %q", strings.ToLower(k))
		}
		switch {
		case e.XRange != nil && e.X != 0:
			v.errf(p, "give x or x_range, not both")
		case e.XRange != nil:
			if !(e.XRange.Min > 0) || e.XRange.Max < e.XRange.Min || e.XRange.Max > 1000 {
				v.errf(p+".x_range", "want 0 < min <= max <= 1000, got [%v, %v]", e.XRange.Min, e.XRange.Max)
			}
		case !(e.X > 0) || e.X > 1000:
			v.errf(p+".x", "required: the factor at the plateau, in (0, 1000] (or x_range: {min, max})")
		}
		if e.Rise < 0 || e.Decay < 0 || e.Fall < 0 {
			v.errf(p, "rise, decay and fall must not be negative")
		}
	}
}
