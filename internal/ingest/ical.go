package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/calendar"
	"github.com/lbsys/lbsys/internal/store"
)

// iCalendar (RFC 5545) events: campaigns, holidays, releases, sports
// fixtures. internal/calendar reads and expands the file (the one reader the
// simulator and the forecaster share); this file bounds what an import may
// cost and stores the occurrences.
//
// An .ics file is untrusted input whose size says little about its cost:
// 300 recurring events in a few kilobytes expanded to 1.6 GiB before
// these bounds. An import is bounded in
//   - bytes: the file (MaxBytes, 8 MiB by default: decoding takes about 15
//     bytes of memory per byte of calendar);
//   - occurrences: per event (MaxOccurrences, the rest noted) and per file
//     (MaxTotal: past it the import fails and nothing stored changes, since
//     a partial expansion would delete the occurrences it did not reach);
//   - horizon: the window may end at most MaxHorizon after the run's clock;
//   - time: the expansion stops after MaxExpandTime (rrule-go refutes some
//     impossible rules, FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30, only by
//     iterating to the year 9999);
// and rules that cannot be expanded safely (INTERVAL=0, a sub-daily FREQ
// with BYSETPOS, …) are refused with the event's UID and line.

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
	// MaxTotal bounds the occurrences of the whole file in the window
	// (default DefaultICalMaxTotal); past it the import fails and the
	// stored calendar is left as it was.
	MaxTotal int
	// MaxHorizon bounds how far after the run's clock To may be (default
	// DefaultICalHorizon). ImportICal checks it; ParseICS has no clock.
	MaxHorizon time.Duration
	// MaxExpandTime bounds the time spent expanding recurrences (default
	// DefaultICalExpandTime); ImportICal enforces it.
	MaxExpandTime time.Duration
	// Interrupt, when set, is called before each event is expanded; an
	// error stops ParseICS with it (ImportICal uses it for its context and
	// MaxExpandTime).
	Interrupt func() error
	// MaxBytes bounds the file (default DefaultICalMaxBytes, at most
	// MaxICSBytes).
	MaxBytes int64
	// Name is the file name used in quarantine locations.
	Name string
}

// Defaults of ICalOptions' bounds.
const (
	// DefaultICalMaxTotal occurrences per file: a year of hourly events
	// for eleven services, far more than a marketing or holiday calendar.
	DefaultICalMaxTotal = 100_000
	// DefaultICalHorizon: recurrences are expanded at most five years past
	// the ingest time (the forecast horizons are hours to weeks).
	DefaultICalHorizon = 5 * 366 * 24 * time.Hour
	// DefaultICalExpandTime bounds the expansion of one file.
	DefaultICalExpandTime = 20 * time.Second
	// DefaultICalMaxBytes: a year of a busy marketing calendar is well
	// under a megabyte; go-ical holds about 15 bytes per byte of file.
	DefaultICalMaxBytes = 8 << 20
	// MaxICSBytes is the most MaxBytes may be (internal/calendar's bound).
	MaxICSBytes = calendar.MaxBytes
)

// ErrICalBudget is wrapped by the error of an import whose expansion took
// longer than ICalOptions.MaxExpandTime.
var ErrICalBudget = errors.New("the expansion took too long")

// ICalResult is what ParseICS found.
type ICalResult struct {
	Events   []store.Event
	Problems []Problem
	// Skipped counts cancelled events and occurrences.
	Skipped int
	Notes   []string
}

// ParseICS reads every VCALENDAR of r and expands its events over the
// window. An error means the file could not be read as a whole (nothing of
// it should replace what is stored): it does not decode, or it expands to
// more than MaxTotal occurrences, or Interrupt stopped it. Per-event
// problems are in the result, located as "file:line#UID".
func ParseICS(r io.Reader, o ICalOptions) (*ICalResult, error) {
	if o.Name == "" {
		o.Name = "ics"
	}
	if o.MaxTotal <= 0 {
		o.MaxTotal = DefaultICalMaxTotal
	}
	limit := o.MaxBytes
	if limit <= 0 {
		limit = DefaultICalMaxBytes
	}
	limit = min(limit, MaxICSBytes)
	res := &ICalResult{}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return res, fmt.Errorf("%s: %w", o.Name, err)
	}
	if int64(len(data)) > limit {
		return res, fmt.Errorf("%s: larger than %s: not a calendar lbsys reads by default (--max-bytes raises the bound, up to %s)", o.Name, sizeText(limit), sizeText(MaxICSBytes))
	}
	cr, err := calendar.Parse(data, calendar.Options{Calendar: o.Calendar, From: o.From, To: o.To, Loc: o.Loc,
		DefaultCategories: o.DefaultCategories, MaxOccurrences: o.MaxOccurrences, MaxTotal: o.MaxTotal,
		Name: o.Name, Interrupt: o.Interrupt})
	if err != nil {
		return res, err
	}
	res.Events = make([]store.Event, 0, len(cr.Events))
	for _, e := range cr.Events {
		res.Events = append(res.Events, store.Event{Calendar: e.Calendar, UID: e.UID, Start: e.Start, End: e.End, AllDay: e.AllDay,
			Summary: e.Summary, Categories: e.Categories, Location: e.Location, Services: e.Services})
	}
	for _, p := range cr.Problems {
		loc := p.Location
		if uid, ok := strings.CutPrefix(loc, o.Name+"#"); ok && p.Line > 0 {
			loc = fmt.Sprintf("%s:%d#%s", o.Name, p.Line, uid)
		}
		res.Problems = append(res.Problems, Problem{Location: loc, Reason: store.Reason(p.Reason), Detail: p.Detail, Raw: p.Raw})
	}
	res.Skipped, res.Notes = cr.Skipped, cr.Notes
	return res, nil
}

// ImportICal parses an .ics file and replaces the calendar's occurrences
// in the window with what it says. A file that cannot be read whole (see
// ParseICS) changes nothing stored.
func ImportICal(ctx context.Context, run *Run, r io.Reader, o ICalOptions) error {
	if o.Calendar == "" {
		return errors.New("ical: --calendar is required (for example marketing)")
	}
	if !o.To.After(o.From) {
		return fmt.Errorf("ical: the window %s .. %s is empty", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	horizon := o.MaxHorizon
	if horizon <= 0 {
		horizon = DefaultICalHorizon
	}
	if limit := run.Now().Add(horizon); o.To.After(limit) {
		return fmt.Errorf("ical: the window ends %s, more than %.0f days after now (%s): recurrences are expanded at most that far; choose an earlier --to or raise --max-horizon",
			o.To.Format(time.RFC3339), horizon.Hours()/24, run.Now().UTC().Format(time.RFC3339))
	}
	budget := o.MaxExpandTime
	if budget <= 0 {
		budget = DefaultICalExpandTime
	}
	start := time.Now()
	o.Interrupt = func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if took := time.Since(start); took > budget {
			return fmt.Errorf("%w: %v, more than the %v allowed (--max-expand-time): some RRULEs may never match; see the quarantine of an earlier run or narrow the window",
				ErrICalBudget, took.Round(time.Millisecond), budget)
		}
		return nil
	}
	res, err := ParseICS(r, o)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		reason := store.ReasonMalformed
		if errors.Is(err, calendar.ErrTooMany) || errors.Is(err, ErrICalBudget) {
			reason = store.ReasonInvalidValue
		}
		run.Quarantine(Problem{Location: o.Name, Reason: reason, Detail: err.Error()})
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

// sizeText writes a byte count for people.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
