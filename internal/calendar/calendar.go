// Package calendar reads iCalendar (RFC 5545) files into event occurrences:
// campaigns, sales, holidays, releases. It is the one calendar reader of
// lbsys: the ingester stores what it returns, the forecaster's CLI and the
// simulator read announced events through it. It is pure (no I/O, no
// clock): the caller passes the file's bytes and the expansion window.
//
// go-ical decodes the file; times, recurrences (RRULE, RDATE, EXDATE,
// RECURRENCE-ID overrides) and time zones are handled here, because
// go-ical's RecurrenceSet reads RDATE from EXDATE, takes one EXDATE value
// per line and loads only IANA TZIDs.
package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones even on hosts without /usr/share/zoneinfo
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

// Event is one occurrence of a calendar event: [Start, End) in UTC.
type Event struct {
	// Calendar is Options.Calendar (the name the ingester stores it under).
	Calendar string
	// UID is the VEVENT's UID; the occurrences of a recurring event share it.
	UID string
	// Start and End bound the occurrence; End is after Start for timed
	// events, a day boundary for all-day ones.
	Start, End time.Time
	AllDay     bool
	Summary    string
	Location   string
	// Categories are the CATEGORIES values, lower-cased (or
	// Options.DefaultCategories when the event has none).
	Categories []string
	// Services are the X-LBSYS-SERVICES values: the services an event is
	// known to affect (empty: all).
	Services []string
	// Warm are the X-LBSYS-WARM values: the request paths (with query)
	// the event features — a sale's product pages — which become hot when
	// it starts, so a cache should hold them fresh by then (issue #15).
	// Case and order are kept (paths are case-sensitive; the first is the
	// headline), duplicates dropped, at most MaxWarmPaths; a value that is
	// not an absolute path is left out with a note.
	Warm []string
}

// MaxWarmPaths bounds one event's X-LBSYS-WARM paths: a directive's warm
// list holds at most 1000 (api/directive.MaxWarmPaths), and a campaign
// features tens to hundreds of pages.
const MaxWarmPaths = 1000

// maxWarmPathBytes bounds one warm path, as a directive does.
const maxWarmPathBytes = 2048

// Category is the event's first category, or "event" when it has none:
// the name the forecaster's event features and the simulator's effects
// use.
func (e Event) Category() string {
	if len(e.Categories) > 0 && e.Categories[0] != "" {
		return e.Categories[0]
	}
	return "event"
}

// Reason classifies a problem with one event. The values are the
// ingester's quarantine reasons (internal/store), so a problem found here
// is stored under the same name.
type Reason string

// Reasons a VEVENT is refused.
const (
	ReasonMissingField     Reason = "missing_field"
	ReasonUnparseableTime  Reason = "unparseable_time"
	ReasonUnknownTimeZone  Reason = "unknown_time_zone"
	ReasonUnknownReference Reason = "unknown_reference"
	ReasonDuplicateID      Reason = "duplicate_id"
	ReasonInvalidValue     Reason = "invalid_value"
)

// Problem is one VEVENT that could not be read; the rest of the file is.
type Problem struct {
	// Location is "<file name>#<UID>".
	Location string
	// Line is the line of the VEVENT's BEGIN in the file (0 when unknown),
	// so that a refused rule can be found in a file of thousands.
	Line   int
	Reason Reason
	Detail string
	// Raw is the component as read (properties sorted).
	Raw string
}

// Options bound and tune a read.
type Options struct {
	// Calendar names the calendar in the events returned.
	Calendar string
	// From and To bound the expansion: occurrences that start in
	// [From, To) are returned. Required, To after From.
	From, To time.Time
	// Loc reads floating times and all-day dates. nil: the calendar's
	// X-WR-TIMEZONE, else UTC (with a note).
	Loc *time.Location
	// DefaultCategories apply to events without CATEGORIES.
	DefaultCategories []string
	// MaxOccurrences bounds one event's expansion (default 10,000); beyond
	// it the expansion stops with a note.
	MaxOccurrences int
	// MaxTotal bounds the occurrences of the whole file (default 100,000):
	// a small file of many recurring events cannot exhaust memory. Past it
	// Parse fails.
	MaxTotal int
	// Name is the file name used in problem locations and errors.
	Name string
	// Interrupt, when set, is called before each event is expanded; an
	// error stops Parse with it. The caller's clock and cancellation live
	// here (Parse has neither): a file of rules that rrule-go can only
	// refute by iterating to the year 9999 (0.1–0.4 s each) is bounded in
	// time by the caller's budget.
	Interrupt func() error
}

// Result is what Parse found.
type Result struct {
	// Events are the occurrences in the window, by start (then UID).
	Events []Event
	// Problems are the events refused, each with why.
	Problems []Problem
	// Skipped counts cancelled events and occurrences.
	Skipped int
	// Notes are remarks worth showing (floating times read in UTC, a
	// recurrence cut at MaxOccurrences).
	Notes []string
}

// MaxBytes bounds a calendar file.
const MaxBytes = 64 << 20

// ErrTooMany is wrapped by the error Parse returns when the file expands to
// more than Options.MaxTotal occurrences.
var ErrTooMany = errors.New("too many occurrences")

// Parse reads every VCALENDAR of data and expands its events over the
// window. An error means the file could not be read as a whole (nothing of
// it should replace what a caller has); per-event problems are in the
// result.
func Parse(data []byte, o Options) (*Result, error) {
	if o.MaxOccurrences <= 0 {
		o.MaxOccurrences = 10_000
	}
	if o.MaxTotal <= 0 {
		o.MaxTotal = 100_000
	}
	if o.Name == "" {
		o.Name = "ics"
	}
	if !o.To.After(o.From) {
		return nil, fmt.Errorf("calendar: empty window %s .. %s", o.From, o.To)
	}
	res := &Result{}
	if len(data) > MaxBytes {
		return res, fmt.Errorf("%s: larger than %d MiB: not a calendar lbsys reads", o.Name, MaxBytes>>20)
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
	lines := eventLines(data)
	for ci, cal := range cals {
		p := &icsParser{o: o, loc: o.Loc, vtz: map[string]*time.Location{}, res: res, noteSet: map[string]bool{}}
		if ci < len(lines) {
			p.lines = lines[ci]
		}
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
		if err := p.expandAll(cal); err != nil {
			return &Result{}, err
		}
	}
	sort.SliceStable(res.Events, func(i, j int) bool {
		if !res.Events[i].Start.Equal(res.Events[j].Start) {
			return res.Events[i].Start.Before(res.Events[j].Start)
		}
		return res.Events[i].UID < res.Events[j].UID
	})
	return res, nil
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
	o       Options
	loc     *time.Location
	vtz     map[string]*time.Location // TZID → zone from VTIMEZONE X-LIC-LOCATION
	res     *Result
	noteSet map[string]bool
	// lines are the lines of the calendar's VEVENTs, in file order.
	lines []int
}

// eventLines finds, per VCALENDAR of data, the line of each of its
// VEVENTs' BEGIN, in order (go-ical keeps no positions). Folded lines
// (RFC 5545 §3.1) start with a space or a tab and are not content lines.
func eventLines(data []byte) [][]int {
	var out [][]int
	depth := 0
	eachLine(data, func(n int, line []byte) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return
		}
		name, value, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		if !ok {
			return
		}
		switch {
		case bytes.EqualFold(name, []byte("BEGIN")):
			depth++
			v := bytes.TrimSpace(value)
			switch {
			case depth == 1 && bytes.EqualFold(v, []byte("VCALENDAR")):
				out = append(out, nil)
			case depth == 2 && bytes.EqualFold(v, []byte("VEVENT")) && len(out) > 0:
				out[len(out)-1] = append(out[len(out)-1], n)
			}
		case bytes.EqualFold(name, []byte("END")):
			depth--
		}
	})
	return out
}

// eachLine calls fn with every line of data and its number (from 1),
// without copying the file or making a slice of its lines (a 64 MiB file
// of empty lines would be a gigabyte of string headers).
func eachLine(data []byte, fn func(n int, line []byte)) {
	for n := 1; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			fn(n, data)
			return
		}
		fn(n, data[:i])
		data = data[i+1:]
	}
}

func (p *icsParser) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !p.noteSet[s] {
		p.noteSet[s] = true
		p.res.Notes = append(p.res.Notes, s)
	}
}

// checkNesting refuses components nested deeper than any calendar needs
// before go-ical, which recurses per level, sees them.
func checkNesting(data []byte) error {
	depth := 0
	var err error
	eachLine(data, func(_ int, line []byte) {
		name, _, ok := bytes.Cut(bytes.TrimSpace(line), []byte(":"))
		switch {
		case !ok || err != nil:
		case bytes.EqualFold(name, []byte("BEGIN")):
			if depth++; depth > 16 {
				err = errors.New("components nested deeper than 16 levels")
			}
		case bytes.EqualFold(name, []byte("END")):
			depth--
		}
	})
	return err
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
	return nil, &Problem{Reason: ReasonUnknownTimeZone,
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
			return time.Time{}, true, &Problem{Reason: ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not a DATE (YYYYMMDD)", prop.Name, v)}
		}
		t, _ := localize(d, p.loc)
		return t, true, nil
	}
	if strings.HasSuffix(v, "Z") {
		t, err := time.Parse("20060102T150405Z", v)
		if err != nil {
			return time.Time{}, false, &Problem{Reason: ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not a UTC DATE-TIME (YYYYMMDDTHHMMSSZ)", prop.Name, v)}
		}
		return t, false, nil
	}
	naive, err := time.Parse("20060102T150405", v)
	if err != nil {
		return time.Time{}, false, &Problem{Reason: ReasonUnparseableTime, Detail: fmt.Sprintf("%s %q is not a DATE-TIME (YYYYMMDDTHHMMSS)", prop.Name, v)}
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
			return nil, &Problem{Reason: ReasonInvalidValue, Detail: name + ";VALUE=PERIOD is not supported"}
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
	warm       []string
	cancelled  bool
	recurID    time.Time
	comp       *ical.Component
	line       int
}

// rawText is the component as text, for a problem: made only when one is
// reported (made for every event, it was a quarter of the memory a large
// file takes).
func (e *icsEvent) rawText() string { return componentText(e.comp) }

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

// warmPaths reads X-LBSYS-WARM: comma-separated request paths, TEXT
// escapes undone (RFC 5545 §3.3.11: \, \; \\), so that a path
// may hold a comma; unlike textList it keeps case, since paths are
// case-sensitive. A value that a cache could not fetch as a path of the
// event's own site — not starting with one "/", holding a space, a
// control character or a fragment, longer than 2048 bytes — is left out
// with a note naming the event (the event itself, a sale the forecaster
// must know about, is kept).
func (p *icsParser) warmPaths(c *ical.Component, uid string) []string {
	var out []string
	seen := map[string]bool{}
	for _, pr := range c.Props["X-LBSYS-WARM"] {
		for _, v := range splitEscaped(pr.Value) {
			v = strings.TrimSpace(v)
			switch {
			case v == "":
				continue
			case seen[v]:
				continue
			case len(out) >= MaxWarmPaths:
				p.note("%s#%s: X-LBSYS-WARM lists more than %d paths; the rest are left out", p.o.Name, uid, MaxWarmPaths)
				return out
			}
			if why := badWarmPath(v); why != "" {
				p.note("%s#%s: X-LBSYS-WARM value %q left out: %s", p.o.Name, uid, clipText(v, 64), why)
				continue
			}
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// splitEscaped splits a TEXT value on commas that are not escaped and
// undoes the escapes.
func splitEscaped(s string) []string {
	var out []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n', 'N':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
		case ch == ',':
			out = append(out, b.String())
			b.Reset()
		default:
			b.WriteByte(ch)
		}
	}
	return append(out, b.String())
}

// badWarmPath says why v cannot be a warm path ("" when it can).
func badWarmPath(v string) string {
	switch {
	case !strings.HasPrefix(v, "/"):
		return "not an absolute path; write it as /catalog/products/p0042"
	case strings.HasPrefix(v, "//"):
		return "starts with //, which reads as another host; write a path of the event's own site"
	case len(v) > maxWarmPathBytes:
		return fmt.Sprintf("longer than %d bytes", maxWarmPathBytes)
	case strings.ContainsRune(v, '#'):
		return "holds a fragment (#), which is never sent to a server"
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return "holds a space, a control character or invalid UTF-8; percent-encode it"
		}
	}
	return ""
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// readEvent validates one VEVENT.
func (p *icsParser) readEvent(c *ical.Component) (*icsEvent, *Problem) {
	e := &icsEvent{comp: c}
	e.uid, _ = c.Props.Text(ical.PropUID)
	e.uid = strings.TrimSpace(e.uid)
	if e.uid == "" {
		return nil, &Problem{Reason: ReasonMissingField, Detail: "UID is missing"}
	}
	start, allDay, ok, prob := p.prop1(c, ical.PropDateTimeStart)
	if prob != nil {
		return e, prob
	}
	if !ok {
		return e, &Problem{Reason: ReasonMissingField, Detail: "DTSTART is missing"}
	}
	if start.Year() < 1900 || start.Year() > 2200 {
		return e, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("DTSTART %s is outside 1900–2200", start.Format(time.RFC3339))}
	}
	e.start, e.allDay = start, allDay
	end, _, hasEnd, prob := p.prop1(c, ical.PropDateTimeEnd)
	if prob != nil {
		return e, prob
	}
	switch {
	case hasEnd:
		if end.Before(start) {
			return e, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("DTEND %s is before DTSTART %s", end.Format(time.RFC3339), start.Format(time.RFC3339))}
		}
		if allDay {
			e.days = int((end.Sub(start) + 12*time.Hour) / (24 * time.Hour))
		} else {
			e.dur = end.Sub(start)
		}
	case c.Props.Get(ical.PropDuration) != nil:
		d, err := c.Props.Get(ical.PropDuration).Duration()
		if err != nil || d < 0 {
			return e, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("DURATION %q is not a positive duration", c.Props.Get(ical.PropDuration).Value)}
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
	e.warm = p.warmPaths(c, e.uid)
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

func (e *icsEvent) occurrence(p *icsParser, start time.Time) Event {
	ev := Event{Calendar: p.o.Calendar, UID: e.uid, Start: start.UTC(), AllDay: e.allDay, Summary: e.summary,
		Categories: e.categories, Location: e.location, Services: e.services, Warm: e.warm}
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
