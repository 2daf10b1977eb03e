package ui

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// Where an event the UI shows comes from.
const (
	// SourceCalendar is an event announced ahead of time (Announce's
	// default source): a marketing calendar's sale is on the charts and in
	// the events table before any directive is sized for it.
	SourceCalendar = "calendar"
	// SourceDirective is an event the UI learnt only from a directive's
	// reason naming it.
	SourceDirective = "directive"
)

// Event is an announced event, shown as a marker on the charts of the
// services it concerns and as a row of the events table. It is known
// either ahead of time (Announce: a calendar's entry) or from a
// directive's reason that names it; a directive naming an announced event
// adds itself to the entry's NamedBy rather than adding a second entry.
type Event struct {
	// Name identifies the event: "<category> <RFC 3339 start>", the form
	// internal/planner writes in a reason's event field (see EventName).
	Name string `json:"name"`
	// Title is what the calendar calls it ("Summer flash sale"), when it
	// said.
	Title string `json:"title,omitempty"`
	// At is when it starts; End when it ends (zero: not known).
	At  time.Time `json:"at"`
	End time.Time `json:"end,omitzero"`
	// Services are the services it concerns; empty means every service.
	Services []string `json:"services,omitempty"`
	// Source is where the UI first learnt of it: SourceCalendar (or the
	// announcer's own word) or SourceDirective.
	Source string `json:"source"`
	// NamedBy are the directive fields whose reasons name it, the latest
	// version per service and field (none for an event no directive has
	// named yet).
	NamedBy []EventRef `json:"named_by,omitempty"`
}

// EventRef is one directive field whose reason names an event.
type EventRef struct {
	Service string `json:"service"`
	Field   string `json:"field"`
	Version uint64 `json:"version"`
	Driver  string `json:"driver,omitempty"`
}

// Announcement is an event known before any directive names it, for
// Collector.Announce.
type Announcement struct {
	// Name must be the name the planner gives the event in its reasons
	// (EventName of its category and start, in the time the directives
	// are written in), so that a directive sized for it updates this
	// entry instead of adding another.
	Name string
	// Title is a human name (the calendar's SUMMARY); optional.
	Title string
	// Start is required; End is optional (zero), else not before Start.
	Start, End time.Time
	// Services the event concerns; empty: every service.
	Services []string
	// Source says where it was announced; empty means SourceCalendar.
	Source string
}

// Bounds on what one announcement may hold: the UI keeps its memory flat
// whatever a caller passes.
const (
	maxEventText     = 256 // name, title, service name, in bytes
	maxEventSource   = 32
	maxEventServices = 64
	maxEventRefs     = 64
)

// EventName is the name internal/planner gives an event in a reason's
// event field: its category and its start in RFC 3339 (UTC, whole
// seconds). A caller announcing a calendar's event passes the start in
// the directives' time (the wall clock, also under the demo's compressed
// time: see internal/liveloop).
func EventName(category string, start time.Time) string {
	if category = strings.TrimSpace(category); category == "" {
		category = "event"
	}
	return category + " " + start.UTC().Format(time.RFC3339)
}

// Announce adds events to the UI ahead of time, or updates those of the
// same name (a calendar read again). Either every announcement is taken or,
// when one is invalid, none is and the error says which and why. At most
// Options.Events events are kept: the oldest go first.
func (c *Collector) Announce(evs []Announcement) error {
	if len(evs) > c.opts.Events {
		return fmt.Errorf("%d events announced at once: the UI keeps at most %d (Options.Events); announce the ones of the coming hours", len(evs), c.opts.Events)
	}
	out := make([]Event, 0, len(evs))
	for i, a := range evs {
		e, err := a.event()
		if err != nil {
			return fmt.Errorf("announced event %d (%q): %w", i, clip(a.Name, 64), err)
		}
		out = append(out, e)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range out {
		if k := c.eventIndex(e.Name); k >= 0 {
			old := &c.events[k]
			old.Title, old.At, old.End, old.Services, old.Source = e.Title, e.At, e.End, e.Services, e.Source
			continue
		}
		c.events = pushBounded(c.events, e, c.opts.Events)
	}
	return nil
}

// event validates an announcement and turns it into an Event.
func (a Announcement) event() (Event, error) {
	name := strings.TrimSpace(a.Name)
	switch {
	case name == "":
		return Event{}, fmt.Errorf("name: empty; name it as the planner does, EventName(category, start)")
	case len(name) > maxEventText:
		return Event{}, fmt.Errorf("name: %d bytes, at most %d", len(name), maxEventText)
	case len(a.Title) > maxEventText:
		return Event{}, fmt.Errorf("title: %d bytes, at most %d", len(a.Title), maxEventText)
	case a.Start.IsZero() || a.Start.Year() < 1900 || a.Start.Year() > 9999:
		return Event{}, fmt.Errorf("start %v: want a plausible time (years 1900 to 9999)", a.Start)
	case !a.End.IsZero() && a.End.Before(a.Start):
		return Event{}, fmt.Errorf("end %s is before start %s: give an end at or after the start, or none", a.End.UTC().Format(time.RFC3339), a.Start.UTC().Format(time.RFC3339))
	case len(a.Services) > maxEventServices:
		return Event{}, fmt.Errorf("services: %d, at most %d (none means every service)", len(a.Services), maxEventServices)
	case len(a.Source) > maxEventSource:
		return Event{}, fmt.Errorf("source: %d bytes, at most %d", len(a.Source), maxEventSource)
	}
	e := Event{Name: name, Title: strings.TrimSpace(a.Title), At: a.Start.UTC(), Source: strings.TrimSpace(a.Source)}
	if e.Source == "" {
		e.Source = SourceCalendar
	}
	if !a.End.IsZero() {
		e.End = a.End.UTC()
	}
	for _, s := range a.Services {
		s = strings.TrimSpace(s)
		if s == "" || len(s) > maxEventText {
			return Event{}, fmt.Errorf("services: %q is not a service name (1 to %d bytes)", clip(s, 64), maxEventText)
		}
		if !slices.Contains(e.Services, s) {
			e.Services = append(e.Services, s)
		}
	}
	return e, nil
}

// eventIndex is the index of the event named name, -1 when none.
func (c *Collector) eventIndex(name string) int {
	for k := range c.events {
		if c.events[k].Name == name {
			return k
		}
	}
	return -1
}

// noteEvents records the events a section's reasons name. An event named
// again (by a later version, another field or another service) or
// announced before is updated in place, so the list holds each event once.
func (c *Collector) noteEvents(seen time.Time, version uint64, service string, s *directive.Service) {
	type fr struct {
		field string
		r     *directive.Reason
	}
	var rs []fr
	if s.Scale != nil {
		rs = append(rs, fr{"scale", s.Scale.Why})
	}
	if s.Admission != nil {
		rs = append(rs, fr{"admission", s.Admission.Why})
	}
	rs = append(rs, fr{"weights", s.WeightsWhy})
	if s.Cache != nil {
		rs = append(rs, fr{"cache", s.Cache.Why})
	}
	for _, x := range rs {
		if x.r == nil || strings.TrimSpace(x.r.Event) == "" {
			continue
		}
		name := clip(strings.TrimSpace(x.r.Event), maxEventText)
		ref := EventRef{Service: clip(service, maxEventText), Field: x.field, Version: version, Driver: clip(x.r.Driver, maxEventText)}
		at := eventTime(x.r, s, x.field, seen)
		k := c.eventIndex(name)
		if k < 0 {
			c.events = pushBounded(c.events, Event{Name: name, At: at, Source: SourceDirective,
				Services: []string{ref.Service}, NamedBy: []EventRef{ref}}, c.opts.Events)
			continue
		}
		e := &c.events[k]
		if e.Source == SourceDirective {
			e.At = at // the latest reason's word; an announcement's time stands
		}
		if len(e.Services) > 0 && !slices.Contains(e.Services, ref.Service) {
			// A copy, never an append in place: Timeline's answers share
			// the old slice.
			e.Services = append(slices.Clip(e.Services), ref.Service)
			if len(e.Services) > maxEventServices {
				e.Services = e.Services[len(e.Services)-maxEventServices:]
			}
		}
		refs := slices.Clone(e.NamedBy)
		if i := slices.IndexFunc(refs, func(r EventRef) bool { return r.Service == ref.Service && r.Field == ref.Field }); i >= 0 {
			refs = slices.Delete(refs, i, i+1)
		}
		e.NamedBy = pushBounded(refs, ref, maxEventRefs)
	}
}

// eventTime is when an event happens: the time written in its name
// ("flash-sale 2026-11-27T10:00:00Z", the form the planner writes), else
// the time the reason's load is expected, else the scale deadline, else
// when the directive was first seen.
func eventTime(r *directive.Reason, s *directive.Service, field string, seen time.Time) time.Time {
	name := strings.TrimSpace(r.Event)
	if t, err := time.Parse(time.RFC3339, name[strings.LastIndexByte(name, ' ')+1:]); err == nil {
		return t.UTC()
	}
	if r.At != nil {
		return r.At.UTC()
	}
	if field == "scale" && s.Scale.By != nil {
		return s.Scale.By.UTC()
	}
	return seen.UTC()
}
