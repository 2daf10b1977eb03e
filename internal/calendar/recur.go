package calendar

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// Recurrence: the expansion of every event of a calendar into occurrences
// within the window (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides), the
// bounds on it, and local times in a zone.

func (p *icsParser) inWindow(t time.Time) bool { return !t.Before(p.o.From) && t.Before(p.o.To) }

func (p *icsParser) expandAll(cal *ical.Calendar) error {
	masters := map[string]*icsEvent{}
	var order []string
	overrides := map[string][]*icsEvent{}
	events := 0
	for _, c := range cal.Children {
		if c.Name == ical.CompEvent {
			events++
		}
	}
	if events != len(p.lines) {
		// The scan and the decoder disagree: no line rather than a wrong one.
		p.lines = nil
	}
	k := -1
	for _, c := range cal.Children {
		if c.Name != ical.CompEvent {
			continue
		}
		k++
		line := 0
		if k < len(p.lines) {
			line = p.lines[k]
		}
		e, prob := p.readEvent(c)
		if prob != nil {
			uid := "?"
			raw := componentText(c)
			if e != nil {
				uid, raw = e.uid, e.rawText()
			}
			prob.Location, prob.Raw, prob.Line = p.loc2(uid), raw, line
			p.res.Problems = append(p.res.Problems, *prob)
			continue
		}
		e.line = line
		if !e.recurID.IsZero() {
			overrides[e.uid] = append(overrides[e.uid], e)
			continue
		}
		if _, dup := masters[e.uid]; dup {
			p.res.Problems = append(p.res.Problems, Problem{p.loc2(e.uid), e.line, ReasonDuplicateID, "a second VEVENT with this UID and no RECURRENCE-ID", e.rawText()})
			continue
		}
		masters[e.uid] = e
		order = append(order, e.uid)
	}
	for uid, ovs := range overrides {
		if _, ok := masters[uid]; !ok {
			for _, o := range ovs {
				p.res.Problems = append(p.res.Problems, Problem{p.loc2(uid), o.line, ReasonUnknownReference,
					"RECURRENCE-ID override of an event that is not in the file", o.rawText()})
			}
		}
	}
	for _, uid := range order {
		m := masters[uid]
		if m.cancelled {
			p.res.Skipped++
			continue
		}
		if p.o.Interrupt != nil {
			if err := p.o.Interrupt(); err != nil {
				return fmt.Errorf("%s: stopped before expanding event %s (line %d): %w", p.o.Name, uid, m.line, err)
			}
		}
		starts, prob := p.expand(m)
		if prob != nil {
			prob.Location, prob.Raw, prob.Line = p.loc2(uid), m.rawText(), m.line
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
					if err := p.add(o.occurrence(p, o.start)); err != nil {
						return err
					}
				}
				continue
			}
			if p.inWindow(s) {
				if err := p.add(m.occurrence(p, s)); err != nil {
					return err
				}
			}
		}
		// An override of an instance outside the expanded range may still
		// move it into the window.
		for _, o := range byStart {
			if !o.cancelled && p.inWindow(o.start) {
				if err := p.add(o.occurrence(p, o.start)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// add appends an occurrence within the file's bound.
func (p *icsParser) add(e Event) error {
	if len(p.res.Events) >= p.o.MaxTotal {
		return fmt.Errorf("%s: %w: more than %d in [%s, %s); narrow the window or the RRULEs (event %s)", p.o.Name, ErrTooMany,
			p.o.MaxTotal, p.o.From.Format(time.RFC3339), p.o.To.Format(time.RFC3339), e.UID)
	}
	if n := len(p.res.Events); n == cap(p.res.Events) {
		// Double (append grows large slices by a quarter, which allocates
		// five times the final size on the way), never past the bound.
		p.res.Events = slices.Grow(p.res.Events, min(max(2*n, 64), p.o.MaxTotal)-n)
	}
	p.res.Events = append(p.res.Events, e)
	return nil
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
	// Every RDATE is an instance, and rrule-go keeps and sorts both lists:
	// bound them like the instances.
	if n := len(rdates) + len(exdates); n > p.o.MaxOccurrences {
		return nil, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("%d RDATE and EXDATE values: more than the %d instances an event may have", n, p.o.MaxOccurrences)}
	}
	if rprop == nil && len(rdates) == 0 {
		return []time.Time{e.start}, nil
	}
	set := &rrule.Set{}
	if rprop != nil {
		loc := e.start.Location()
		if zeroInterval(rprop.Value) {
			return nil, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("RRULE %q: INTERVAL must be a positive integer (RFC 5545 §3.3.10)", rprop.Value)}
		}
		opt, err := rrule.StrToROptionInLocation(rprop.Value, loc)
		if err != nil {
			return nil, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("RRULE %q: %v", rprop.Value, err)}
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
			return nil, &Problem{Reason: ReasonInvalidValue, Detail: fmt.Sprintf("RRULE %q: %v", rprop.Value, err)}
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

// zeroInterval reports an explicit INTERVAL=0 (rrule-go reads it as 1,
// which would expand a rule its author did not write).
func zeroInterval(rule string) bool {
	for _, part := range strings.Split(rule, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "INTERVAL") {
			v = strings.TrimLeft(strings.TrimSpace(v), "+0")
			return v == ""
		}
	}
	return false
}

// checkRule refuses rules that rrule-go would iterate forever: a sub-daily
// frequency whose INTERVAL can step over every BYHOUR/BYMINUTE/BYSECOND
// value (FREQ=MINUTELY;INTERVAL=60;BYMINUTE=30 never matches, and the
// iterator loops without yielding).
func checkRule(o *rrule.ROption) *Problem {
	if o.Interval < 0 || o.Interval > 10000 {
		return &Problem{Reason: ReasonInvalidValue, Detail: "INTERVAL must be between 1 and 10000"}
	}
	if o.Count < 0 {
		return &Problem{Reason: ReasonInvalidValue, Detail: "COUNT must be positive"}
	}
	sub := o.Freq == rrule.HOURLY || o.Freq == rrule.MINUTELY || o.Freq == rrule.SECONDLY
	if sub && o.Interval > 1 && (len(o.Byhour) > 0 || len(o.Byminute) > 0 || len(o.Bysecond) > 0) {
		return &Problem{Reason: ReasonInvalidValue, Detail: "a sub-daily FREQ with INTERVAL > 1 and BYHOUR/BYMINUTE/BYSECOND is not supported"}
	}
	// A sub-daily period holds one instant, so BYSETPOS=2 (or -2, …) never
	// matches, and rrule-go walks hour by hour (minute, second) to the year
	// 9999 looking for it: 20 s for HOURLY, hours for SECONDLY.
	if sub && len(o.Bysetpos) > 0 {
		return &Problem{Reason: ReasonInvalidValue, Detail: "BYSETPOS with a sub-daily FREQ is not supported (a period of one instant has no second position)"}
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

// localize reads the wall time of naive (its fields, location ignored) in
// loc. A local time repeated by a daylight-saving change is read as its
// first instant and a skipped one with the offset in force before the gap
// (RFC 5545 §3.3.5).
func localize(naive time.Time, loc *time.Location) (time.Time, bool) {
	y, mo, d := naive.Date()
	h, mi, s := naive.Clock()
	asUTC := time.Date(y, mo, d, h, mi, s, naive.Nanosecond(), time.UTC)
	// Transitions are months apart, so the offsets in force two days either
	// side cover every candidate.
	var first time.Time
	found := false
	for _, dd := range []time.Duration{-48 * time.Hour, 0, 48 * time.Hour} {
		_, off := asUTC.Add(dd).In(loc).Zone()
		u := asUTC.Add(-time.Duration(off) * time.Second).In(loc)
		uy, umo, ud := u.Date()
		uh, umi, us := u.Clock()
		if uy == y && umo == mo && ud == d && uh == h && umi == mi && us == s && (!found || u.Before(first)) {
			first, found = u, true
		}
	}
	if found {
		return first, true
	}
	_, off := asUTC.Add(-48 * time.Hour).In(loc).Zone()
	return asUTC.Add(-time.Duration(off) * time.Second).In(loc), false
}
