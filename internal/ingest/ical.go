package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"

	"github.com/lbsys/lbsys/internal/store"
)

// iCalendar (RFC 5545) events: campaigns, holidays, releases, sports
// fixtures. go-ical decodes the file; times, recurrences (RRULE, RDATE,
// EXDATE, RECURRENCE-ID overrides) and time zones are handled here, because
// go-ical's RecurrenceSet reads RDATE from EXDATE, takes one EXDATE value
// per line and loads only IANA TZIDs.

// ICalOptions configure an import.
type ICalOptions struct {
	Calendar string
	// From and To bound the expansion: occurrences that start in
	// [From, To) are stored, and the calendar's stored occurrences in that
	// window are replaced by them.
	From, To time.Time
	// Loc reads floating times and all-day dates. nil: the calendar's
	// X-WR-TIMEZONE, else UTC (with a note).
	Loc *time.Location
	// DefaultCategories apply to events without CATEGORIES.
	DefaultCategories []string
	// MaxOccurrences bounds one event's expansion (default 10,000); beyond
	// it the expansion stops with a note.
	MaxOccurrences int
	// Name is the file name used in quarantine locations.
	Name string
}

// ICalResult is what ParseICS found.
type ICalResult struct {
	Events   []store.Event
	Problems []Problem
	// Skipped counts cancelled events and occurrences.
	Skipped int
	Notes   []string
}

// windowsZones maps the Windows zone names Outlook and Exchange write as
// TZID to IANA zones (the common ones; CLDR windowsZones.xml has all).
var windowsZones = map[string]string{
	"UTC": "UTC", "GMT Standard Time": "Europe/London", "W. Europe Standard Time": "Europe/Berlin",
	"Romance Standard Time": "Europe/Paris", "Central Europe Standard Time": "Europe/Budapest",
	"Central European Standard Time": "Europe/Warsaw", "E. Europe Standard Time": "Europe/Chisinau",
	"FLE Standard Time": "Europe/Kiev", "GTB Standard Time": "Europe/Bucharest", "Russian Standard Time": "Europe/Moscow",
	"Eastern Standard Time": "America/New_York", "Central Standard Time": "America/Chicago",
	"Mountain Standard Time": "America/Denver", "Pacific Standard Time": "America/Los_Angeles",
	"US Mountain Standard Time": "America/Phoenix", "Alaskan Standard Time": "America/Anchorage",
	"Hawaiian Standard Time": "Pacific/Honolulu", "E. South America Standard Time": "America/Sao_Paulo",
	"Tokyo Standard Time": "Asia/Tokyo", "China Standard Time": "Asia/Shanghai", "India Standard Time": "Asia/Kolkata",
	"Singapore Standard Time": "Asia/Singapore", "AUS Eastern Standard Time": "Australia/Sydney",
	"New Zealand Standard Time": "Pacific/Auckland", "Arabian Standard Time": "Asia/Dubai",
}

type icsParser struct {
	o       ICalOptions
	loc     *time.Location
	vtz     map[string]*time.Location // TZID → zone from VTIMEZONE X-LIC-LOCATION
	res     *ICalResult
	noteSet map[string]bool
}

func (p *icsParser) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !p.noteSet[s] {
		p.noteSet[s] = true
		p.res.Notes = append(p.res.Notes, s)
	}
}

// ParseICS reads every VCALENDAR of r and expands its events over the
// window. An error means the file could not be decoded at all (nothing of
// it should replace what is stored); per-event problems are in the result.
func ParseICS(r io.Reader, o ICalOptions) (*ICalResult, error) {
	if o.MaxOccurrences <= 0 {
		o.MaxOccurrences = 10_000
	}
	if o.Name == "" {
		o.Name = "ics"
	}
	if !o.To.After(o.From) {
		return nil, fmt.Errorf("ical: empty window %s .. %s", o.From, o.To)
	}
	res := &ICalResult{}
	data, err := io.ReadAll(io.LimitReader(r, maxICSBytes+1))
	if err != nil {
		return res, fmt.Errorf("%s: %w", o.Name, err)
	}
	if len(data) > maxICSBytes {
		return res, fmt.Errorf("%s: larger than %d MiB: not a calendar lbsys reads", o.Name, maxICSBytes>>20)
	}
	if err := checkNesting(data); err != nil {
		return res, fmt.Errorf("%s: not a valid iCalendar file: %w", o.Name, err)
	}
	cals, err := decodeCalendars(data)
	if err != nil {
		return res, fmt.Errorf("%s: not a valid iCalendar file: %w", o.Name, err)
	}
	if len(cals) == 0 {
		return res, fmt.Errorf("%s: no VCALENDAR in the file", o.Name)
	}
	for _, cal := range cals {
		p := &icsParser{o: o, loc: o.Loc, vtz: map[string]*time.Location{}, res: res, noteSet: map[string]bool{}}
		if p.loc == nil {
			if name, err := cal.Props.Text("X-WR-TIMEZONE"); err == nil && name != "" {
				if l, err := time.LoadLocation(name); err == nil {
					p.loc = l
				}
			}
		}
		if p.loc == nil {
			p.loc = time.UTC
		}
		for _, c := range cal.Children {
			if c.Name != ical.CompTimezone {
				continue
			}
			id, _ := c.Props.Text(ical.PropTimezoneID)
			if lic, _ := c.Props.Text("X-LIC-LOCATION"); id != "" && lic != "" {
				if l, err := time.LoadLocation(lic); err == nil {
					p.vtz[id] = l
				}
			}
		}
		p.expandAll(cal)
	}
	sort.SliceStable(res.Events, func(i, j int) bool {
		if !res.Events[i].Start.Equal(res.Events[j].Start) {
			return res.Events[i].Start.Before(res.Events[j].Start)
		}
		return res.Events[i].UID < res.Events[j].UID
	})
	return res, nil
}

const maxICSBytes = 64 << 20

// checkNesting refuses components nested deeper than any calendar needs
// before go-ical, which recurses per level, sees them.
func checkNesting(data []byte) error {
	depth := 0
	for _, line := range strings.Split(string(data), "\n") {
		name, _, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch strings.ToUpper(name) {
		case "BEGIN":
			if depth++; depth > 16 {
				return errors.New("components nested deeper than 16 levels")
			}
		case "END":
			depth--
		}
	}
	return nil
}

// decodeCalendars runs go-ical's decoder, turning a panic on malformed
// input (it indexes past the end of some bad content lines) into an error:
// bad input must not crash an import.
func decodeCalendars(data []byte) (cals []*ical.Calendar, err error) {
	defer func() {
		if p := recover(); p != nil {
			cals, err = nil, fmt.Errorf("malformed content line (decoder: %v)", p)
		}
	}()
	dec := ical.NewDecoder(bytes.NewReader(data))
	for {
		cal, err := dec.Decode()
		if errors.Is(err, io.EOF) {
			return cals, nil
		}
		if err != nil {
			return nil, err
		}
		cals = append(cals, cal)
	}
}

// zone resolves a TZID parameter.
func (p *icsParser) zone(tzid string) (*time.Location, *Problem) {
	tzid = strings.Trim(tzid, `"`)
	if l, ok := p.vtz[tzid]; ok {
		return l, nil
	}
	if l, err := time.LoadLocation(strings.TrimPrefix(tzid, "/")); err == nil {
		return l, nil
	}
	if name, ok := windowsZones[tzid]; ok {
		l, _ := time.LoadLocation(name)
		return l, nil
	}
	return nil, &Problem{Reason: store.ReasonUnknownTimeZone,
		Detail: fmt.Sprintf("TZID %q is neither an IANA zone nor described by an X-LIC-LOCATION in the file", tzid)}
}

// when reads a DATE or DATE-TIME property value (one of a list for RDATE
// and EXDATE). A local time repeated or skipped by a daylight-saving change
// is read as RFC 5545 §3.3.5 says (the first occurrence; the offset before
// a gap), not refused: the standard makes it unambiguous.
func (p *icsParser) when(prop *ical.Prop, value string) (time.Time, bool, *Problem) {
	v := strings.TrimSpace(value)
	isDate := strings.EqualFold(prop.Params.Get("VALUE"), "DATE") || len(v) == 8
	if isDate {
		d, err := time.Parse("20060102", v)
		if err != nil {
			return time.Time{}, true, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not a DATE (YYYYMMDD)", prop.Name, v)}
		}
		t, _ := localize(d, p.loc)
		return t, true, nil
	}
	if strings.HasSuffix(v, "Z") {
		t, err := time.Parse("20060102T150405Z", v)
		if err != nil {
			return time.Time{}, false, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not a UTC DATE-TIME (YYYYMMDDTHHMMSSZ)", prop.Name, v)}
		}
		return t, false, nil
	}
	naive, err := time.Parse("20060102T150405", v)
	if err != nil {
		return time.Time{}, false, &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not a DATE-TIME (YYYYMMDDTHHMMSS)", prop.Name, v)}
	}
	loc := p.loc
	if tzid := prop.Params.Get(ical.PropTimezoneID); tzid != "" {
		l, prob := p.zone(tzid)
		if prob != nil {
			prob.Detail = prop.Name + ": " + prob.Detail
			return time.Time{}, false, prob
		}
		loc = l
	} else if p.o.Loc == nil {
		p.note("floating times (no TZID, no Z) are read in %s: pass --tz to choose", p.loc)
	}
	t, _ := localize(naive, loc)
	return t, false, nil
}

func (p *icsParser) prop1(c *ical.Component, name string) (time.Time, bool, bool, *Problem) {
	prop := c.Props.Get(name)
	if prop == nil {
		return time.Time{}, false, false, nil
	}
	t, allDay, prob := p.when(prop, prop.Value)
	return t, allDay, true, prob
}

// list reads every value of a multi-valued date property (RDATE, EXDATE).
func (p *icsParser) list(c *ical.Component, name string) ([]time.Time, *Problem) {
	var out []time.Time
	for i := range c.Props[name] {
		prop := &c.Props[name][i]
		if strings.EqualFold(prop.Params.Get("VALUE"), "PERIOD") {
			return nil, &Problem{Reason: store.ReasonInvalidValue, Detail: name + ";VALUE=PERIOD is not supported"}
		}
		for _, v := range strings.Split(prop.Value, ",") {
			if strings.TrimSpace(v) == "" {
				continue
			}
			t, _, prob := p.when(prop, v)
			if prob != nil {
				return nil, prob
			}
			out = append(out, t)
		}
	}
	return out, nil
}

type icsEvent struct {
	uid        string
	start      time.Time
	allDay     bool
	dur        time.Duration // timed events
	days       int           // all-day events: nominal days
	summary    string
	location   string
	categories []string
	services   []string
	cancelled  bool
	recurID    time.Time
	comp       *ical.Component
	raw        string
}

func (p *icsParser) loc2(uid string) string { return p.o.Name + "#" + uid }

func componentText(c *ical.Component) string {
	var b strings.Builder
	b.WriteString("BEGIN:" + c.Name + "\n")
	names := make([]string, 0, len(c.Props))
	for n := range c.Props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, pr := range c.Props[n] {
			b.WriteString(n)
			pnames := make([]string, 0, len(pr.Params))
			for k := range pr.Params {
				pnames = append(pnames, k)
			}
			sort.Strings(pnames)
			for _, k := range pnames {
				fmt.Fprintf(&b, ";%s=%s", k, strings.Join(pr.Params[k], ","))
			}
			fmt.Fprintf(&b, ":%s\n", pr.Value)
		}
	}
	b.WriteString("END:" + c.Name)
	return b.String()
}

func textList(c *ical.Component, name string) []string {
	var out []string
	for _, pr := range c.Props[name] {
		for _, v := range strings.Split(pr.Value, ",") {
			v = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(v, `\`, "")))
			if v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// readEvent validates one VEVENT.
func (p *icsParser) readEvent(c *ical.Component) (*icsEvent, *Problem) {
	e := &icsEvent{comp: c, raw: componentText(c)}
	e.uid, _ = c.Props.Text(ical.PropUID)
	e.uid = strings.TrimSpace(e.uid)
	if e.uid == "" {
		return nil, &Problem{Reason: store.ReasonMissingField, Detail: "UID is missing"}
	}
	start, allDay, ok, prob := p.prop1(c, ical.PropDateTimeStart)
	if prob != nil {
		return e, prob
	}
	if !ok {
		return e, &Problem{Reason: store.ReasonMissingField, Detail: "DTSTART is missing"}
	}
	if start.Year() < 1900 || start.Year() > 2200 {
		return e, &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("DTSTART %s is outside 1900–2200", start.Format(time.RFC3339))}
	}
	e.start, e.allDay = start, allDay
	end, _, hasEnd, prob := p.prop1(c, ical.PropDateTimeEnd)
	if prob != nil {
		return e, prob
	}
	switch {
	case hasEnd:
		if end.Before(start) {
			return e, &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("DTEND %s is before DTSTART %s", end.Format(time.RFC3339), start.Format(time.RFC3339))}
		}
		if allDay {
			e.days = int((end.Sub(start) + 12*time.Hour) / (24 * time.Hour))
		} else {
			e.dur = end.Sub(start)
		}
	case c.Props.Get(ical.PropDuration) != nil:
		d, err := c.Props.Get(ical.PropDuration).Duration()
		if err != nil || d < 0 {
			return e, &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("DURATION %q is not a positive duration", c.Props.Get(ical.PropDuration).Value)}
		}
		if allDay {
			e.days = int(d / (24 * time.Hour))
		} else {
			e.dur = d
		}
	case allDay:
		e.days = 1 // RFC 5545 §3.6.1: a DATE start without end lasts one day
	}
	if e.allDay && e.days < 1 {
		e.days = 1
	}
	e.summary, _ = c.Props.Text(ical.PropSummary)
	e.location, _ = c.Props.Text(ical.PropLocation)
	e.categories = textList(c, ical.PropCategories)
	if len(e.categories) == 0 {
		e.categories = p.o.DefaultCategories
	}
	e.services = textList(c, "X-LBSYS-SERVICES")
	if st, _ := c.Props.Text(ical.PropStatus); strings.EqualFold(st, "CANCELLED") {
		e.cancelled = true
	}
	if rid, _, ok, prob := p.prop1(c, ical.PropRecurrenceID); prob != nil {
		return e, prob
	} else if ok {
		e.recurID = rid
	}
	return e, nil
}

func (e *icsEvent) occurrence(p *icsParser, start time.Time) store.Event {
	ev := store.Event{Calendar: p.o.Calendar, UID: e.uid, Start: start.UTC(), AllDay: e.allDay, Summary: e.summary,
		Categories: e.categories, Location: e.location, Services: e.services}
	if e.allDay {
		local := start.In(p.loc)
		y, m, d := local.Date()
		end, _ := localize(time.Date(y, m, d+e.days, 0, 0, 0, 0, time.UTC), p.loc)
		ev.End = end.UTC()
	} else {
		ev.End = start.Add(e.dur).UTC()
	}
	return ev
}

func (p *icsParser) inWindow(t time.Time) bool { return !t.Before(p.o.From) && t.Before(p.o.To) }

func (p *icsParser) expandAll(cal *ical.Calendar) {
	masters := map[string]*icsEvent{}
	var order []string
	overrides := map[string][]*icsEvent{}
	for _, c := range cal.Children {
		if c.Name != ical.CompEvent {
			continue
		}
		e, prob := p.readEvent(c)
		if prob != nil {
			uid := "?"
			raw := componentText(c)
			if e != nil {
				uid, raw = e.uid, e.raw
			}
			prob.Location, prob.Raw = p.loc2(uid), raw
			p.res.Problems = append(p.res.Problems, *prob)
			continue
		}
		if !e.recurID.IsZero() {
			overrides[e.uid] = append(overrides[e.uid], e)
			continue
		}
		if _, dup := masters[e.uid]; dup {
			p.res.Problems = append(p.res.Problems, Problem{p.loc2(e.uid), store.ReasonDuplicateID, "a second VEVENT with this UID and no RECURRENCE-ID", e.raw})
			continue
		}
		masters[e.uid] = e
		order = append(order, e.uid)
	}
	for uid, ovs := range overrides {
		if _, ok := masters[uid]; !ok {
			for _, o := range ovs {
				p.res.Problems = append(p.res.Problems, Problem{p.loc2(uid), store.ReasonUnknownReference,
					"RECURRENCE-ID override of an event that is not in the file", o.raw})
			}
		}
	}
	for _, uid := range order {
		m := masters[uid]
		if m.cancelled {
			p.res.Skipped++
			continue
		}
		starts, prob := p.expand(m)
		if prob != nil {
			prob.Location, prob.Raw = p.loc2(uid), m.raw
			p.res.Problems = append(p.res.Problems, *prob)
			continue
		}
		byStart := map[int64]*icsEvent{}
		for _, o := range overrides[uid] {
			byStart[o.recurID.UnixMilli()] = o
		}
		for _, s := range starts {
			if o, ok := byStart[s.UnixMilli()]; ok {
				delete(byStart, s.UnixMilli())
				if o.cancelled {
					p.res.Skipped++
					continue
				}
				if p.inWindow(o.start) {
					p.res.Events = append(p.res.Events, o.occurrence(p, o.start))
				}
				continue
			}
			if p.inWindow(s) {
				p.res.Events = append(p.res.Events, m.occurrence(p, s))
			}
		}
		// An override of an instance outside the expanded range may still
		// move it into the window.
		for _, o := range byStart {
			if !o.cancelled && p.inWindow(o.start) {
				p.res.Events = append(p.res.Events, o.occurrence(p, o.start))
			}
		}
	}
}

// expand returns the event's instance starts from DTSTART up to the window
// end (overrides are matched against them, so instances before the window
// are kept until then).
func (p *icsParser) expand(e *icsEvent) ([]time.Time, *Problem) {
	rprop := e.comp.Props.Get(ical.PropRecurrenceRule)
	rdates, prob := p.list(e.comp, ical.PropRecurrenceDates)
	if prob != nil {
		return nil, prob
	}
	exdates, prob := p.list(e.comp, ical.PropExceptionDates)
	if prob != nil {
		return nil, prob
	}
	if rprop == nil && len(rdates) == 0 {
		return []time.Time{e.start}, nil
	}
	set := &rrule.Set{}
	if rprop != nil {
		loc := e.start.Location()
		opt, err := rrule.StrToROptionInLocation(rprop.Value, loc)
		if err != nil {
			return nil, &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("RRULE %q: %v", rprop.Value, err)}
		}
		if prob := checkRule(opt); prob != nil {
			prob.Detail = fmt.Sprintf("RRULE %q: %s", rprop.Value, prob.Detail)
			return nil, prob
		}
		opt.Dtstart = fastForward(e.start, opt, p.o.From)
		// Nothing after the window is needed; bounding UNTIL bounds the
		// iteration.
		if opt.Until.IsZero() || opt.Until.After(p.o.To) {
			opt.Until = p.o.To
		}
		rule, err := rrule.NewRRule(*opt)
		if err != nil {
			return nil, &Problem{Reason: store.ReasonInvalidValue, Detail: fmt.Sprintf("RRULE %q: %v", rprop.Value, err)}
		}
		set.RRule(rule)
		if !opt.Dtstart.Equal(e.start) {
			// The original first instance, for RECURRENCE-ID matching.
			set.RDate(e.start)
		}
	} else {
		set.RDate(e.start)
	}
	for _, t := range rdates {
		set.RDate(t)
	}
	for _, t := range exdates {
		set.ExDate(t)
	}
	next := set.Iterator()
	var out []time.Time
	for n := 0; ; n++ {
		t, ok := next()
		if !ok || !t.Before(p.o.To) {
			break
		}
		if n >= p.o.MaxOccurrences {
			p.note("%s: recurrence of %s stopped after %d instances (raise the limit or narrow the window)", p.o.Name, e.uid, p.o.MaxOccurrences)
			break
		}
		out = append(out, t)
	}
	return out, nil
}

// checkRule refuses rules that rrule-go would iterate forever: a sub-daily
// frequency whose INTERVAL can step over every BYHOUR/BYMINUTE/BYSECOND
// value (FREQ=MINUTELY;INTERVAL=60;BYMINUTE=30 never matches, and the
// iterator loops without yielding).
func checkRule(o *rrule.ROption) *Problem {
	if o.Interval < 0 || o.Interval > 10000 {
		return &Problem{Reason: store.ReasonInvalidValue, Detail: "INTERVAL must be between 1 and 10000"}
	}
	if o.Count < 0 {
		return &Problem{Reason: store.ReasonInvalidValue, Detail: "COUNT must be positive"}
	}
	sub := o.Freq == rrule.HOURLY || o.Freq == rrule.MINUTELY || o.Freq == rrule.SECONDLY
	if sub && o.Interval > 1 && (len(o.Byhour) > 0 || len(o.Byminute) > 0 || len(o.Bysecond) > 0) {
		return &Problem{Reason: store.ReasonInvalidValue, Detail: "a sub-daily FREQ with INTERVAL > 1 and BYHOUR/BYMINUTE/BYSECOND is not supported"}
	}
	return nil
}

// fastForward moves a rule's DTSTART to the last whole period before from,
// so that a rule started years ago (FREQ=MINUTELY since 2001) is not walked
// instance by instance up to the window. Only rules whose instances do not
// depend on how many came before (no COUNT) and whose period is a fixed
// number of wall-clock units are moved; the wall clock is what rrule-go
// steps, so the arithmetic is done on the local fields.
func fastForward(start time.Time, o *rrule.ROption, from time.Time) time.Time {
	if o.Count > 0 || !start.Before(from) {
		return start
	}
	interval := max(o.Interval, 1)
	var unit time.Duration
	switch o.Freq {
	case rrule.SECONDLY:
		unit = time.Second
	case rrule.MINUTELY:
		unit = time.Minute
	case rrule.HOURLY:
		unit = time.Hour
	case rrule.DAILY:
		unit = 24 * time.Hour
	case rrule.WEEKLY:
		unit = 7 * 24 * time.Hour
	default:
		return start
	}
	loc := start.Location()
	wall := func(t time.Time) time.Time {
		y, m, d := t.Date()
		h, mi, s := t.Clock()
		return time.Date(y, m, d, h, mi, s, t.Nanosecond(), time.UTC)
	}
	ws, wf := wall(start), wall(from.In(loc))
	period := unit * time.Duration(interval)
	k := wf.Sub(ws)/period - 1
	if k <= 0 {
		return start
	}
	nw := ws.Add(k * period)
	t, _ := localize(nw, loc)
	return t
}

// ImportICal parses an .ics file and replaces the calendar's occurrences
// in the window with what it says.
func ImportICal(ctx context.Context, run *Run, r io.Reader, o ICalOptions) error {
	if o.Calendar == "" {
		return errors.New("ical: --calendar is required (for example marketing)")
	}
	res, err := ParseICS(r, o)
	if err != nil {
		run.Quarantine(Problem{Location: o.Name, Reason: store.ReasonMalformed, Detail: err.Error()})
		return fmt.Errorf("%w (the calendar's stored events are left as they were)", err)
	}
	for _, p := range res.Problems {
		run.Quarantine(p)
	}
	for _, n := range res.Notes {
		run.Note("%s", n)
	}
	run.Skip(res.Skipped)
	u, deleted, err := run.st.ReplaceEvents(ctx, o.Calendar, o.From, o.To, res.Events)
	if err != nil {
		return err
	}
	run.CountUpsert(u)
	run.Deleted(deleted)
	return run.Flush(ctx)
}
