// Package ingest brings what an e-commerce operations team already has into
// the store: the proxy's per-second telemetry, CSV traces, Prometheus
// query_range results, the ServiceNow CMDB and ITSM tables, Backstage
// catalogs and iCalendar files. One source per file.
//
// Every source validates at the door: a row that is missing a field, is not
// a number, is negative where a count is expected, is NaN, repeats or goes
// back in time, has an unreadable or ambiguous time, or points at something
// unknown is quarantined with its reason (store.Reason) — never silently
// dropped, never a crash of the run. Every run reports what it inserted,
// updated, left unchanged (an idempotent re-read) and quarantined.
//
// Parsers are pure functions of their input (and fuzzed); the Import
// functions add the I/O: HTTP with retries, the store, sync watermarks.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// Problem is a row refused at the door.
type Problem struct {
	// Location says where: "file.csv:12", "incident/<sys_id>", …
	Location string
	Reason   store.Reason
	Detail   string
	// Raw is the row as read, for the quarantine table.
	Raw string
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s: %s: %s", p.Location, p.Reason, p.Detail)
}

// Report is what one run of a source did.
type Report struct {
	Source string
	store.Counts
	// Deleted rows the source no longer produces (calendar occurrences,
	// catalog relations).
	Deleted int64
	// Skipped records the source deliberately ignores (Backstage Group and
	// User entities, cancelled events), counted so nothing vanishes
	// unexplained.
	Skipped int64
	// Reasons counts this run's quarantined rows by reason.
	Reasons map[store.Reason]int64
	// Notes are warnings worth a line of output (a telemetry gap, a
	// truncated recurrence).
	Notes []string
	// First is the first quarantined row of each reason, so that a summary
	// can name where every kind of problem starts (the first row with a
	// future time may come after thousands of other problems).
	First map[store.Reason]Problem
}

// String is the one-line summary the CLI prints.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d inserted, %d updated, %d unchanged, %d quarantined", r.Source, r.Inserted, r.Updated, r.Unchanged, r.Quarantined)
	if r.Deleted > 0 {
		fmt.Fprintf(&b, ", %d deleted", r.Deleted)
	}
	if r.Skipped > 0 {
		fmt.Fprintf(&b, ", %d skipped", r.Skipped)
	}
	if len(r.Reasons) > 0 {
		reasons := make([]string, 0, len(r.Reasons))
		for k := range r.Reasons {
			reasons = append(reasons, string(k))
		}
		sort.Strings(reasons)
		b.WriteString(" (")
		for i, k := range reasons {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", k, r.Reasons[store.Reason(k)])
		}
		b.WriteString(")")
	}
	return b.String()
}

// Run ties one execution of a source to the store: it records the run,
// buffers quarantined rows and keeps the counts. It is safe for concurrent
// use (the CLI's progress line reads it while the source writes).
type Run struct {
	st     *store.Store
	id     int64
	source string
	ctx    context.Context

	// flushMu serializes flushes; flushErr keeps the first failure of a
	// flush that Quarantine started, for Finish to report.
	flushMu  sync.Mutex
	flushErr error

	mu      sync.Mutex
	rep     Report
	pending []store.Quarantined
	// firstProblems keeps the first few problems for error messages.
	firstProblems []Problem
	// maxFuture is how far ahead of the run's clock a time may be.
	maxFuture time.Duration
}

// DefaultMaxFuture is how far ahead of an ingest run's clock a time may be
// by default: a day covers clocks that are off by hours and data stamped in
// another zone by mistake, and refuses typo years.
const DefaultMaxFuture = 24 * time.Hour

// Begin records the start of a run of source (args is the command line, for
// status output).
func Begin(ctx context.Context, st *store.Store, source, args string) (*Run, error) {
	id, err := st.BeginIngestRun(ctx, source, args)
	if err != nil {
		return nil, err
	}
	return &Run{st: st, id: id, source: source, ctx: ctx, maxFuture: DefaultMaxFuture,
		rep: Report{Source: source, Reasons: map[store.Reason]int64{}, First: map[store.Reason]Problem{}}}, nil
}

// SetMaxFuture sets how far ahead of the run's clock a time may be
// (default DefaultMaxFuture; 0 allows nothing after now). A later time is
// quarantined as future_time: stored, it would become its series' newest
// point, an importer's watermark or an incident that never ends.
func (r *Run) SetMaxFuture(d time.Duration) {
	r.mu.Lock()
	r.maxFuture = max(d, 0)
	r.mu.Unlock()
}

func (r *Run) maxFutureValue() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxFuture
}

// Now is the run's clock (the store's).
func (r *Run) Now() time.Time { return r.st.Now() }

// Latest is the latest time the run accepts now: its clock plus the
// allowed lead (SetMaxFuture).
func (r *Run) Latest() time.Time { return r.Now().Add(r.maxFutureValue()) }

// futureProblem refuses t when it is after Latest; what names the field
// for the message.
func (r *Run) futureProblem(t time.Time, what string) *Problem {
	now, d := r.Now(), r.maxFutureValue()
	if !t.After(now.Add(d)) {
		return nil
	}
	return &Problem{Reason: store.ReasonFutureTime, Detail: fmt.Sprintf("%s %s is %s ahead of this run's clock (%s), more than the %s allowed (--max-future): a typo in the year, or a source whose clock is wrong",
		what, t.UTC().Format(time.RFC3339), roughly(t.Sub(now)), now.UTC().Format(time.RFC3339), d)}
}

// roughly renders a lead for people: days when it is more than two.
func roughly(d time.Duration) string {
	if d > 48*time.Hour {
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
	return d.Round(time.Second).String()
}

// Store is the run's store.
func (r *Run) Store() *store.Store { return r.st }

// ID is the run's id in ingest_runs.
func (r *Run) ID() int64 { return r.id }

// Quarantine refuses a row; it is written at the next Flush.
func (r *Run) Quarantine(p Problem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, store.Quarantined{RunID: r.id, Source: r.source, Location: p.Location,
		Reason: p.Reason, Detail: p.Detail, Raw: p.Raw})
	r.rep.Quarantined++
	r.rep.Reasons[p.Reason]++
	if _, ok := r.rep.First[p.Reason]; !ok {
		r.rep.First[p.Reason] = p
	}
	if len(r.firstProblems) < 5 {
		r.firstProblems = append(r.firstProblems, p)
	}
	if len(r.pending) < maxPending {
		return
	}
	// A file of nothing but bad rows never reaches a point sink's batch
	// flush; bound the memory here.
	r.mu.Unlock()
	defer r.mu.Lock()
	if err := r.Flush(r.ctx); err != nil {
		r.flushMu.Lock()
		if r.flushErr == nil {
			r.flushErr = err
		}
		r.flushMu.Unlock()
	}
}

// maxPending quarantined rows are buffered before they are written.
const maxPending = 5000

// Count adds to the run's counts.
func (r *Run) Count(inserted, updated, unchanged int) {
	r.mu.Lock()
	r.rep.Inserted += int64(inserted)
	r.rep.Updated += int64(updated)
	r.rep.Unchanged += int64(unchanged)
	r.mu.Unlock()
}

// CountUpsert adds an upsert's result.
func (r *Run) CountUpsert(u store.UpsertResult) { r.Count(u.Inserted, u.Updated, u.Unchanged) }

// Skip counts deliberately ignored records.
func (r *Run) Skip(n int) {
	r.mu.Lock()
	r.rep.Skipped += int64(n)
	r.mu.Unlock()
}

// Deleted counts rows removed because the source no longer has them.
func (r *Run) Deleted(n int) {
	r.mu.Lock()
	r.rep.Deleted += int64(n)
	r.mu.Unlock()
}

// Note records a warning for the report.
func (r *Run) Note(format string, args ...any) {
	r.mu.Lock()
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// Report returns a copy of the counts so far.
func (r *Run) Report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.rep
	rep.Reasons = make(map[store.Reason]int64, len(r.rep.Reasons))
	for k, v := range r.rep.Reasons {
		rep.Reasons[k] = v
	}
	rep.Notes = append([]string(nil), r.rep.Notes...)
	rep.First = make(map[store.Reason]Problem, len(r.rep.First))
	for k, v := range r.rep.First {
		rep.First[k] = v
	}
	return rep
}

// FirstProblems returns up to five of the run's first quarantined rows.
func (r *Run) FirstProblems() []Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Problem(nil), r.firstProblems...)
}

// Flush writes pending quarantined rows and the run's counts so far.
func (r *Run) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if r.flushErr != nil {
		return r.flushErr
	}
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	counts := r.rep.Counts
	r.mu.Unlock()
	if err := r.st.Quarantine(ctx, pending); err != nil {
		return err
	}
	return r.st.UpdateIngestRun(ctx, r.id, counts, "running", "")
}

// Finish flushes and closes the run: status ok, interrupted (the context
// was cancelled) or failed (runErr). It returns the report and runErr (or
// the flush's error).
func (r *Run) Finish(ctx context.Context, runErr error) (Report, error) {
	status, msg := "ok", ""
	switch {
	case runErr != nil && (errors.Is(runErr, context.Canceled) || errors.Is(ctx.Err(), context.Canceled)):
		status, msg = "interrupted", runErr.Error()
	case runErr != nil:
		status, msg = "failed", runErr.Error()
	}
	// The run's context may be the cancelled one: record the outcome
	// regardless, within a bound.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	err := r.flushErr
	if e := r.st.Quarantine(wctx, pending); err == nil {
		err = e
	}
	rep := r.Report()
	if e := r.st.UpdateIngestRun(wctx, r.id, rep.Counts, status, msg); err == nil {
		err = e
	}
	if runErr != nil {
		return rep, runErr
	}
	return rep, err
}

// PointSink validates points at the door and writes them to the store in
// batches. A time further ahead of the run's clock than the run allows is
// quarantined as future_time before anything else looks at it, so it
// neither reaches the store nor becomes the series' "latest" time against
// which the following points are judged. Per series of one input it
// refuses a repeated timestamp (duplicate_timestamp, the first value is
// kept) and a step back in time (out_of_order); values must be finite and,
// unless AllowNegative, not negative. A point the store refuses as older
// than its series' raw retention is quarantined as too_old.
type PointSink struct {
	run    *Run
	source string
	// AllowNegative accepts negative values (a derivative, a temperature).
	AllowNegative bool
	// BatchSize is how many points are written per transaction. Default
	// 10,000.
	BatchSize int
	// NewSeries is the retention mode of the series this sink creates (""
	// keeps the store's default, window).
	NewSeries store.RetentionMode
	// Retention, when set, is applied to every series the sink writes,
	// new or not (an explicit --retention).
	Retention store.RetentionMode

	ids  map[store.SeriesKey]int64
	last map[int64]int64
	buf  []store.Sample
	locs []string
}

// NewPointSink writes points for run; source is recorded on new series.
func NewPointSink(run *Run, source string) *PointSink {
	return &PointSink{run: run, source: source, ids: map[store.SeriesKey]int64{}, last: map[int64]int64{}}
}

// Add validates one point and queues it; loc and raw describe it for the
// quarantine.
func (p *PointSink) Add(ctx context.Context, key store.SeriesKey, t time.Time, v float64, loc, raw string) error {
	switch {
	case strings.TrimSpace(key.Service) == "":
		p.run.Quarantine(Problem{loc, store.ReasonMissingField, "no service", raw})
		return nil
	case strings.TrimSpace(key.Metric) == "":
		p.run.Quarantine(Problem{loc, store.ReasonMissingField, "no metric", raw})
		return nil
	case t.IsZero():
		p.run.Quarantine(Problem{loc, store.ReasonMissingField, "no time", raw})
		return nil
	case math.IsNaN(v) || math.IsInf(v, 0):
		p.run.Quarantine(Problem{loc, store.ReasonNotFinite, fmt.Sprintf("%s is %v", key.Metric, v), raw})
		return nil
	case v < 0 && !p.AllowNegative:
		p.run.Quarantine(Problem{loc, store.ReasonNegative, fmt.Sprintf("%s is %v; counts cannot be negative (pass --allow-negative for a signed metric)", key.Metric, v), raw})
		return nil
	}
	if fp := p.run.futureProblem(t, key.String()+" at"); fp != nil {
		fp.Location, fp.Raw = loc, raw
		p.run.Quarantine(*fp)
		return nil
	}
	id, ok := p.ids[key]
	if !ok {
		var err error
		if id, err = p.series(ctx, key); err != nil {
			return err
		}
		p.ids[key] = id
	}
	ts := t.UnixMilli()
	if prev, ok := p.last[id]; ok {
		switch {
		case ts == prev:
			p.run.Quarantine(Problem{loc, store.ReasonDuplicateTimestamp,
				fmt.Sprintf("%s already has a value at %s in this input; the first is kept", key, t.UTC().Format(time.RFC3339Nano)), raw})
			return nil
		case ts < prev:
			p.run.Quarantine(Problem{loc, store.ReasonOutOfOrder,
				fmt.Sprintf("%s at %s comes after %s", key, t.UTC().Format(time.RFC3339Nano), time.UnixMilli(prev).UTC().Format(time.RFC3339Nano)), raw})
			return nil
		}
	}
	p.last[id] = ts
	p.buf = append(p.buf, store.Sample{Series: id, T: ts, V: v})
	p.locs = append(p.locs, loc)
	size := p.BatchSize
	if size <= 0 {
		size = 10_000
	}
	if len(p.buf) >= size {
		return p.Flush(ctx)
	}
	return nil
}

// series resolves key, creating the series with the sink's retention
// mode when it is new.
func (p *PointSink) series(ctx context.Context, key store.SeriesKey) (int64, error) {
	st := p.run.st
	mode := p.Retention
	if mode == "" && p.NewSeries != "" {
		if _, err := st.SeriesID(ctx, key); errors.Is(err, store.ErrNotFound) {
			mode = p.NewSeries
		} else if err != nil {
			return 0, err
		}
	}
	id, err := st.EnsureSeries(ctx, key, p.source)
	if err != nil || mode == "" {
		return id, err
	}
	return id, st.SetRetentionMode(ctx, id, mode)
}

// Forget drops the per-series ordering memory, for a source whose next
// read legitimately restarts (a rotated file).
func (p *PointSink) Forget() { clear(p.last) }

// Flush writes the queued points and the run's pending quarantine rows.
func (p *PointSink) Flush(ctx context.Context) error {
	if len(p.buf) > 0 {
		res, err := p.run.st.WritePoints(ctx, p.buf)
		if err != nil {
			return err
		}
		p.run.Count(res.Inserted, res.Updated, res.Unchanged)
		if len(res.TooOld) > 0 {
			where := map[store.Sample]string{}
			for i, s := range p.buf {
				where[s] = p.locs[i]
			}
			for _, s := range res.TooOld {
				p.run.Quarantine(Problem{where[s], store.ReasonTooOld,
					fmt.Sprintf("%s is older than the raw retention of its series (already compacted into rollups); import it into a fresh store or raise the retention",
						time.UnixMilli(s.T).UTC().Format(time.RFC3339)), fmt.Sprint(s.V)})
			}
		}
		p.buf, p.locs = p.buf[:0], p.locs[:0]
	}
	return p.run.Flush(ctx)
}
