package loadgen

import (
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/lbsys/lbsys/internal/textutil"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// TraceOptions names the columns of a trace CSV.
type TraceOptions struct {
	// TimeCol is the timestamp column (default "timestamp").
	TimeCol string
	// ValueCol is the column with the demand per step (default
	// "requests").
	ValueCol string
}

func (o TraceOptions) withDefaults() TraceOptions {
	if o.TimeCol == "" {
		o.TimeCol = "timestamp"
	}
	if o.ValueCol == "" {
		o.ValueCol = "requests"
	}
	return o
}

// TracePoint is one row of a trace. Missing is set for a row whose value is
// empty: "no data", which is not the same as zero demand.
type TracePoint struct {
	T       time.Time
	V       float64
	Missing bool
}

// Trace is a demand time series loaded from CSV: rows in strictly
// increasing time, values >= 0, with gaps (missing timestamps or empty
// values) kept as gaps.
type Trace struct {
	// Name is the file name, used in messages.
	Name string
	// Points are the rows in file order, missing values included.
	Points []TracePoint
	// Step is the most common interval between consecutive rows: the
	// trace's resolution. Longer intervals are gaps.
	Step time.Duration

	known []TracePoint // rows with a value
	// interp[i] tells whether the interval known[i]..known[i+1] is
	// interpolated (contiguous, or a gap of at most maxInterpolatedGap
	// steps) or held at known[i].V (a longer gap).
	interp []bool
	// missing[i] is the number of missing steps inside that interval.
	missing []int
}

// maxInterpolatedGap is the longest gap, in missing steps, bridged by
// linear interpolation. Longer gaps hold the last value: inventing a trend
// across minutes of missing data would be a guess, while holding the level
// is the least surprising replay.
const maxInterpolatedGap = 2

// maxTraceRows bounds memory for a hostile or mistaken input (a month of
// per-second data is 2.7 M rows).
const maxTraceRows = 10_000_000

// TraceError is a rejected row: which file, line and column, and what was
// expected there.
type TraceError struct {
	File   string
	Line   int    // 1-based line in the file; 0 when not about one line
	Column string // column name; "" when about the whole row
	Msg    string
}

// Error formats the error as "file:line: column \"name\": what".
func (e *TraceError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Column != "" {
		b.WriteString("column ")
		b.WriteString(strconv.Quote(e.Column))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ParseTraceTime parses a timestamp in one of the forms trace files use
// ("2006-01-02 15:04:05", RFC 3339, with or without seconds, a date);
// naive times are read as UTC (only differences matter for replay).
func ParseTraceTime(s string) (time.Time, error) { return textutil.ParseTimestamp(s) }

// LoadTrace reads a trace CSV file.
func LoadTrace(path string, opts TraceOptions) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	return ParseTrace(f, path, opts)
}

// ParseTrace reads a trace CSV with a header row from r; name is used in
// errors. Every bad row is an error naming the line and column: wrong column
// count, unparsable timestamp or number, negative or non-finite value,
// timestamps that do not strictly increase.
func ParseTrace(r io.Reader, name string, opts TraceOptions) (*Trace, error) {
	opts = opts.withDefaults()
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // checked here, to say which line and what was expected
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &TraceError{File: name, Msg: "empty file: expected a header row such as \"timestamp,requests\""}
	}
	if err != nil {
		return nil, csvError(name, err)
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	tcol, vcol := -1, -1
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		header[i] = h
		if seen[h] {
			return nil, &TraceError{File: name, Line: 1, Column: h, Msg: "appears twice in the header"}
		}
		seen[h] = true
		switch h {
		case opts.TimeCol:
			tcol = i
		case opts.ValueCol:
			vcol = i
		}
	}
	if tcol < 0 || vcol < 0 {
		missing := opts.TimeCol
		flag := "--time-col"
		if tcol >= 0 {
			missing, flag = opts.ValueCol, "--value-col"
		}
		return nil, &TraceError{File: name, Line: 1, Column: missing,
			Msg: fmt.Sprintf("not in the header (columns: %s); choose one with %s", strings.Join(header, ", "), flag)}
	}

	t := &Trace{Name: name}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, &TraceError{File: name, Line: line,
				Msg: fmt.Sprintf("%d columns, expected %d as in the header (%s)", len(rec), len(header), strings.Join(header, ","))}
		}
		if len(t.Points) >= maxTraceRows {
			return nil, &TraceError{File: name, Line: line, Msg: fmt.Sprintf("more than %d rows; split the trace", maxTraceRows)}
		}
		ts, err := ParseTraceTime(rec[tcol])
		if err != nil {
			return nil, &TraceError{File: name, Line: line, Column: opts.TimeCol, Msg: err.Error()}
		}
		if n := len(t.Points); n > 0 && !ts.After(t.Points[n-1].T) {
			return nil, &TraceError{File: name, Line: line, Column: opts.TimeCol,
				Msg: fmt.Sprintf("expected a timestamp after the previous row's %s, got %s (timestamps must strictly increase)",
					t.Points[n-1].T.Format(time.DateTime), ts.Format(time.DateTime))}
		}
		p := TracePoint{T: ts}
		if v := strings.TrimSpace(rec[vcol]); v == "" {
			p.Missing = true
		} else {
			f, err := strconv.ParseFloat(v, 64)
			switch {
			case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
				return nil, &TraceError{File: name, Line: line, Column: opts.ValueCol,
					Msg: fmt.Sprintf("expected a finite number >= 0 (or empty for no data), got %q", v)}
			case f < 0:
				return nil, &TraceError{File: name, Line: line, Column: opts.ValueCol,
					Msg: fmt.Sprintf("expected a number >= 0, got negative %q", v)}
			}
			p.V = f
		}
		t.Points = append(t.Points, p)
	}
	if err := t.index(); err != nil {
		return nil, &TraceError{File: name, Msg: err.Error()}
	}
	return t, nil
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &TraceError{File: name, Line: pe.Line, Msg: fmt.Sprintf("malformed CSV at column %d: %v", pe.Column, pe.Err)}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// index computes the step and the interpolation plan.
func (t *Trace) index() error {
	if len(t.Points) < 2 {
		return fmt.Errorf("%d data rows: a trace needs at least 2", len(t.Points))
	}
	// The step is the most common interval (ties: the shortest), so a few
	// gaps do not change the resolution.
	counts := map[time.Duration]int{}
	for i := 1; i < len(t.Points); i++ {
		counts[t.Points[i].T.Sub(t.Points[i-1].T)]++
	}
	best, bestN := time.Duration(0), 0
	for d, n := range counts {
		if n > bestN || (n == bestN && d < best) {
			best, bestN = d, n
		}
	}
	t.Step = best
	for _, p := range t.Points {
		if !p.Missing {
			t.known = append(t.known, p)
		}
	}
	if len(t.known) == 0 {
		return errors.New("every value is empty: no data to replay")
	}
	n := len(t.known)
	t.interp = make([]bool, max(n-1, 0))
	t.missing = make([]int, max(n-1, 0))
	for i := 0; i+1 < n; i++ {
		gap := t.known[i+1].T.Sub(t.known[i].T)
		steps := int(math.Round(float64(gap)/float64(t.Step))) - 1
		steps = max(steps, 0)
		t.missing[i] = steps
		t.interp[i] = steps <= maxInterpolatedGap
	}
	return nil
}

// First and Last are the first and last timestamps of the trace.
func (t *Trace) First() time.Time { return t.Points[0].T }

// Last is the last timestamp of the trace.
func (t *Trace) Last() time.Time { return t.Points[len(t.Points)-1].T }

// Value returns the demand at time x: linear interpolation between known
// points, across short gaps too; the last known value through a long gap;
// before the first and after the last known point, the nearest known value.
func (t *Trace) Value(x time.Time) float64 {
	k := t.known
	// i: the last known point at or before x.
	i := sort.Search(len(k), func(j int) bool { return k[j].T.After(x) }) - 1
	if i < 0 {
		return k[0].V
	}
	if i >= len(k)-1 {
		return k[len(k)-1].V
	}
	if !t.interp[i] {
		return k[i].V
	}
	a, b := k[i], k[i+1]
	f := float64(x.Sub(a.T)) / float64(b.T.Sub(a.T))
	return a.V + (b.V-a.V)*f
}

// maxOver returns the largest value over [from, to]: values between known
// points lie between their ends, so the ends of the range and the known
// points inside it are enough.
func (t *Trace) maxOver(from, to time.Time) float64 {
	m := math.Max(t.Value(from), t.Value(to))
	k := t.known
	i := sort.Search(len(k), func(j int) bool { return !k[j].T.Before(from) })
	for ; i < len(k) && !k[i].T.After(to); i++ {
		m = math.Max(m, k[i].V)
	}
	return m
}

// gapsOver counts the gaps (intervals between known points with missing
// steps) that overlap [from, to], split into interpolated and held ones.
func (t *Trace) gapsOver(from, to time.Time) (interpolated, held int) {
	k := t.known
	for i := 0; i+1 < len(k); i++ {
		if t.missing[i] == 0 || !k[i+1].T.After(from) || k[i].T.After(to) {
			continue
		}
		if t.interp[i] {
			interpolated++
		} else {
			held++
		}
	}
	// Missing rows before the first or after the last known value are gaps
	// too (held at the nearest known value).
	if t.Points[0].Missing && from.Before(k[0].T) {
		held++
	}
	if t.Points[len(t.Points)-1].Missing && to.After(k[len(k)-1].T) {
		held++
	}
	return interpolated, held
}

// TraceReplay says how to replay a trace as a Rate.
type TraceReplay struct {
	// Start is the trace time replayed at offset 0 (zero: the first row).
	Start time.Time
	// Speed is trace time per wall time: 600 replays one trace minute in
	// 0.1 s. Default 1.
	Speed float64
	// PeakRPS, when > 0, scales the trace so that its maximum over the
	// replayed span is this many arrivals per second. Zero replays the
	// trace's own counts, compressed: value per step / step × Speed.
	PeakRPS float64
	// Span is the wall-clock length of the run. The replayed trace span
	// (Span × Speed from Start) must lie inside the trace; zero: to the end
	// of the trace.
	Span time.Duration
}

// TraceRate is a Rate that replays a trace.
type TraceRate struct {
	trace *Trace
	start time.Time
	speed float64
	scale float64
	end   time.Time // end of the replayed span in trace time

	interpolated, held int
}

// NewTraceRate prepares a replay of t.
func NewTraceRate(t *Trace, o TraceReplay) (*TraceRate, error) {
	if o.Speed == 0 {
		o.Speed = 1
	}
	if o.Speed < 0 || math.IsNaN(o.Speed) || math.IsInf(o.Speed, 0) {
		return nil, fmt.Errorf("trace replay: speed %v: must be > 0", o.Speed)
	}
	if o.PeakRPS < 0 || math.IsNaN(o.PeakRPS) || math.IsInf(o.PeakRPS, 0) {
		return nil, fmt.Errorf("trace replay: peak rate %v: must be >= 0", o.PeakRPS)
	}
	start := o.Start
	if start.IsZero() {
		start = t.First()
	}
	if start.Before(t.First()) || !start.Before(t.Last()) {
		return nil, fmt.Errorf("trace replay: start %s is outside %s (%s .. %s)",
			start.Format(time.DateTime), t.Name, t.First().Format(time.DateTime), t.Last().Format(time.DateTime))
	}
	end := t.Last()
	if o.Span > 0 {
		traceSpan := time.Duration(float64(o.Span) * o.Speed)
		end = start.Add(traceSpan)
		if end.After(t.Last()) {
			return nil, fmt.Errorf("trace replay: %v at speed %g replays %v of %s from %s, past its end %s (%v available); lower the duration or the speed, or start earlier",
				o.Span, o.Speed, traceSpan, t.Name, start.Format(time.DateTime), t.Last().Format(time.DateTime), t.Last().Sub(start))
		}
	}
	r := &TraceRate{trace: t, start: start, speed: o.Speed, end: end}
	if o.PeakRPS > 0 {
		m := t.maxOver(start, end)
		if m <= 0 {
			return nil, fmt.Errorf("trace replay: %s is zero over the replayed span; nothing to scale to a peak of %g/s", t.Name, o.PeakRPS)
		}
		r.scale = o.PeakRPS / m
	} else {
		if t.Step <= 0 {
			return nil, fmt.Errorf("trace replay: %s has no step", t.Name)
		}
		r.scale = o.Speed / t.Step.Seconds()
	}
	r.interpolated, r.held = t.gapsOver(start, end)
	return r, nil
}

func (r *TraceRate) traceTime(t time.Duration) time.Time {
	return r.start.Add(time.Duration(float64(t) * r.speed))
}

// At returns the scaled trace value at the trace time replayed at t.
func (r *TraceRate) At(t time.Duration) float64 {
	return r.scale * r.trace.Value(r.traceTime(t))
}

// Max bounds the rate over [from, to].
func (r *TraceRate) Max(from, to time.Duration) float64 {
	return r.scale * r.trace.maxOver(r.traceTime(from), r.traceTime(to))
}

// Scale returns the factor from trace values to arrivals per second.
func (r *TraceRate) Scale() float64 { return r.scale }

// TraceGaps returns how many gaps the replayed span crosses: bridged by
// interpolation (short) and held at the last value (long).
func (r *TraceRate) TraceGaps() (interpolated, held int) { return r.interpolated, r.held }
