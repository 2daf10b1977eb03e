package forecast

import (
	"encoding/csv"
	"errors"
	"fmt"
	"github.com/lbsys/lbsys/internal/textutil"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CSVOptions says how to read a trace CSV.
type CSVOptions struct {
	// TimeCol is the timestamp column; empty: the first column whose first
	// value parses as a timestamp.
	TimeCol string
	// ValueCol is the value column; empty: the first other column for a
	// regular series, and "count the rows" for arrivals.
	ValueCol string
	// Mode is "auto" (default), "series" or "arrivals". Auto treats the
	// file as per-request arrivals when no interval between rows accounts
	// for half of the intervals.
	Mode string
	// Step is the aggregation step for arrivals; zero picks one (see
	// AutoArrivalStep). For a regular series it must be zero or the
	// series' own step.
	Step time.Duration
}

// LoadInfo tells how a CSV became a Series, for the report.
type LoadInfo struct {
	File     string `json:"file"`
	TimeCol  string `json:"time_col"`
	ValueCol string `json:"value_col"` // "" when arrivals were counted
	Rows     int    `json:"rows"`
	// Arrivals is set when rows were per-request arrivals aggregated to
	// Step; Aggregation says how.
	Arrivals    bool          `json:"arrivals"`
	Aggregation string        `json:"aggregation,omitempty"`
	Step        time.Duration `json:"step"`
	RegularizeReport
}

// maxCSVRows bounds memory for a hostile or mistaken input.
const maxCSVRows = 20_000_000

// ParseTime parses a timestamp as trace files write them.
func ParseTime(s string) (time.Time, error) { return textutil.ParseTimestamp(s) }

// ReadCSV reads a trace CSV with a header row into a regular Series.
//
// A regular series keeps its own step (the most common interval between
// rows); a missing row or an empty value is a gap (NaN), never zero; a
// timestamp off the step grid, a duplicated or decreasing timestamp, or a
// value that is not a finite number >= 0 is an error naming the line.
//
// Per-request arrivals (Mode "arrivals", or detected) are aggregated: the
// grid starts at the first arrival's time truncated to Step, each step's
// value is the number of arrivals in [t, t+Step) (or the sum of ValueCol
// when one is named), and the first and last steps, which the log covers
// only in part, are dropped. Inside the log's span an empty step is zero
// arrivals, not a gap: the log lists every request.
func ReadCSV(r io.Reader, name string, o CSVOptions) (*Series, LoadInfo, error) {
	info := LoadInfo{File: name}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, info, fmt.Errorf("%s: empty file: expected a header row such as \"timestamp,requests\"", name)
	}
	if err != nil {
		return nil, info, csvErr(name, err)
	}
	header = append([]string(nil), header...)
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	col := func(want string) int {
		for i, h := range header {
			if h == want {
				return i
			}
		}
		return -1
	}
	// lines[i] is the line of rows[i]: empty lines are skipped, so the
	// index is not the line.
	var rows [][]string
	var lines []int
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, info, csvErr(name, err)
		}
		if len(rows) >= maxCSVRows {
			return nil, info, fmt.Errorf("%s: more than %d rows; split the file", name, maxCSVRows)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			return nil, info, fmt.Errorf("%s:%d: %d columns, expected %d as in the header (%s)", name, line, len(rec), len(header), strings.Join(header, ","))
		}
		// A quoted field may hold a newline in CSV, but in a trace it is a
		// stray quote that swallowed the lines up to the next quote.
		if end, _ := cr.FieldPos(len(rec) - 1); end != line || strings.ContainsAny(rec[len(rec)-1], "\r\n") {
			return nil, info, fmt.Errorf("%s:%d: a quoted field runs over to line %d (a stray quote?); a trace has one row per line", name, line, max(end, line+1))
		}
		rows = append(rows, append([]string(nil), rec...))
		lines = append(lines, line)
	}
	info.Rows = len(rows)
	if len(rows) < 2 {
		return nil, info, fmt.Errorf("%s: %d data rows: a series needs at least 2", name, len(rows))
	}
	tcol := -1
	if o.TimeCol != "" {
		if tcol = col(o.TimeCol); tcol < 0 {
			return nil, info, fmt.Errorf("%s:1: time column %q is not in the header (columns: %s); choose one with --time-col", name, o.TimeCol, strings.Join(header, ", "))
		}
	} else {
		for i := range header {
			if _, err := ParseTime(rows[0][i]); err == nil {
				tcol = i
				break
			}
		}
		if tcol < 0 {
			return nil, info, fmt.Errorf("%s:2: no column holds a timestamp (columns: %s); name one with --time-col", name, strings.Join(header, ", "))
		}
	}
	info.TimeCol = header[tcol]
	ts := make([]time.Time, len(rows))
	for i, rec := range rows {
		t, err := ParseTime(rec[tcol])
		if err != nil {
			return nil, info, fmt.Errorf("%s:%d: column %q: %v", name, lines[i], header[tcol], err)
		}
		ts[i] = t
	}
	mode := o.Mode
	if mode == "" || mode == "auto" {
		mode = "series"
		if irregular(ts) {
			mode = "arrivals"
		}
	}
	vcol := -1
	if o.ValueCol != "" {
		if vcol = col(o.ValueCol); vcol < 0 {
			return nil, info, fmt.Errorf("%s:1: value column %q is not in the header (columns: %s); choose one with --value-col", name, o.ValueCol, strings.Join(header, ", "))
		}
	} else if mode == "series" {
		for i := range header {
			if i != tcol {
				vcol = i
				break
			}
		}
		if vcol < 0 {
			return nil, info, fmt.Errorf("%s:1: only a time column; a series needs a value column (or use arrivals mode to count rows)", name)
		}
	}
	if vcol >= 0 {
		info.ValueCol = header[vcol]
	}
	value := func(i int) (float64, error) {
		s := strings.TrimSpace(rows[i][vcol])
		if s == "" {
			return math.NaN(), nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, fmt.Errorf("%s:%d: column %q: expected a finite number >= 0 (or empty for no data), got %q", name, lines[i], header[vcol], s)
		}
		return f, nil
	}
	switch mode {
	case "series":
		for i := 1; i < len(ts); i++ {
			if !ts[i].After(ts[i-1]) {
				what := "duplicated"
				if ts[i].Before(ts[i-1]) {
					what = "decreasing"
				}
				return nil, info, fmt.Errorf("%s:%d: column %q: %s timestamp %s after %s; timestamps must strictly increase",
					name, lines[i], header[tcol], what, ts[i].Format(time.RFC3339Nano), ts[i-1].Format(time.RFC3339Nano))
			}
		}
		step := modalInterval(ts)
		if err := implausibleJump(name, header[tcol], ts, lines, step); err != nil {
			return nil, info, err
		}
		if o.Step != 0 && o.Step != step {
			return nil, info, fmt.Errorf("%s: the series' step is %v, not %v; --step is for aggregating arrivals", name, step, o.Step)
		}
		pts := make([]Point, len(rows))
		for i := range rows {
			v, err := value(i)
			if err != nil {
				return nil, info, err
			}
			if off := ts[i].Sub(ts[0]); off%step != 0 {
				return nil, info, fmt.Errorf("%s:%d: column %q: timestamp %s is off the %v grid that starts at %s; timestamps must be regular",
					name, lines[i], header[tcol], ts[i].Format(time.RFC3339Nano), step, ts[0].Format(time.DateTime))
			}
			pts[i] = Point{T: ts[i], V: v}
		}
		s, rep, err := Regularize(name, pts, step)
		if err != nil {
			return nil, info, err
		}
		info.Step, info.RegularizeReport = step, rep
		return s, info, nil
	case "arrivals":
		for i := 1; i < len(ts); i++ {
			if ts[i].Before(ts[i-1]) {
				return nil, info, fmt.Errorf("%s:%d: column %q: arrival %s before the previous row's %s; arrivals must be in time order",
					name, lines[i], header[tcol], ts[i].Format(time.RFC3339Nano), ts[i-1].Format(time.RFC3339Nano))
			}
		}
		step := o.Step
		if step == 0 {
			step = AutoArrivalStep(ts[len(ts)-1].Sub(ts[0]))
		}
		if step <= 0 {
			return nil, info, fmt.Errorf("%s: step %v: must be > 0", name, step)
		}
		if err := implausibleJump(name, header[tcol], ts, lines, step); err != nil {
			return nil, info, err
		}
		origin := ts[0].Truncate(step)
		n := int(ts[len(ts)-1].Sub(origin)/step) + 1
		if n > maxSteps {
			return nil, info, fmt.Errorf("%s: %d steps of %v: too many; use a coarser --step", name, n, step)
		}
		sum := make([]float64, n)
		for i := range rows {
			w := 1.0
			if vcol >= 0 {
				v, err := value(i)
				if err != nil {
					return nil, info, err
				}
				if math.IsNaN(v) {
					v = 0 // a request without a cost value still arrived; its cost is unknown
				}
				w = v
			}
			sum[int(ts[i].Sub(origin)/step)] += w
		}
		if n < 4 {
			return nil, info, fmt.Errorf("%s: the arrivals span %v, fewer than 4 steps of %v; use a finer --step", name, ts[len(ts)-1].Sub(ts[0]), step)
		}
		s := &Series{Name: name, Start: origin.Add(step), Step: step, Values: Values(sum[1 : n-1])}
		info.Arrivals, info.Step = true, step
		what := "count of arrivals"
		if vcol >= 0 {
			what = "sum of " + strconv.Quote(header[vcol])
		}
		info.Aggregation = fmt.Sprintf("%s per %v step on a grid aligned to %v; the first and last (partial) steps dropped; an empty step inside the log is 0",
			what, step, step)
		return s, info, nil
	default:
		return nil, info, fmt.Errorf("mode %q: expected auto, series or arrivals", o.Mode)
	}
}

// AutoArrivalStep picks an aggregation step for an arrival log that spans
// span: the coarsest of 1 s … 1 min that still gives at least 300 steps,
// so a day-long log is read per minute and an hour-long one per 10 s.
func AutoArrivalStep(span time.Duration) time.Duration {
	steps := []time.Duration{time.Minute, 30 * time.Second, 15 * time.Second, 10 * time.Second, 5 * time.Second, time.Second}
	for _, s := range steps {
		if span/s >= 300 {
			return s
		}
	}
	return time.Second
}

// irregular reports whether no interval between consecutive timestamps
// accounts for half of all intervals: per-request logs, not a series.
func irregular(ts []time.Time) bool {
	counts := map[time.Duration]int{}
	for i := 1; i < len(ts); i++ {
		counts[ts[i].Sub(ts[i-1])]++
	}
	best := 0
	for _, n := range counts {
		best = max(best, n)
	}
	return 2*best < len(ts)-1
}

// modalInterval is the most common interval between rows (ties: the
// shortest), so a few gaps do not change the step.
func modalInterval(ts []time.Time) time.Duration {
	counts := map[time.Duration]int{}
	for i := 1; i < len(ts); i++ {
		counts[ts[i].Sub(ts[i-1])]++
	}
	keys := make([]time.Duration, 0, len(counts))
	for d := range counts {
		keys = append(keys, d)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	best, bestN := time.Duration(0), 0
	for _, d := range keys {
		if counts[d] > bestN {
			best, bestN = d, counts[d]
		}
	}
	return best
}

// implausibleJump refuses a series whose first or last row is far from all
// the others (one jump longer than ten times the rest of the file, and
// than a thousand steps): a typo in the year. Read as data it is a series
// of a century of gaps, or one that is refused for its length with no line
// to look at. (A typo inside the file is a decreasing timestamp already.)
func implausibleJump(name, col string, ts []time.Time, lines []int, step time.Duration) error {
	if len(ts) < 2 {
		return nil
	}
	at, gap := 0, time.Duration(0)
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d > gap {
			at, gap = i, d
		}
	}
	rest := ts[len(ts)-1].Sub(ts[0]) - gap
	if gap/1000 <= step || gap/10 <= rest {
		return nil
	}
	return fmt.Errorf("%s:%d: column %q: the time jumps from %s to %s, while the rest of the file spans %v: a typo in the year? fix or remove the row",
		name, lines[at], col, ts[at-1].Format(time.DateTime), ts[at].Format(time.DateTime), rest)
}

func csvErr(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrQuote) {
			// The quote was opened where the record starts; where the
			// reader noticed is usually the end of the file.
			return fmt.Errorf("%s:%d: a quoted field opened on this line is not closed (read on to line %d): a stray quote? %w", name, pe.StartLine, pe.Line, pe.Err)
		}
		return fmt.Errorf("%s:%d: malformed CSV at column %d: %w", name, pe.Line, pe.Column, pe.Err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

func appendFloat(b []byte, x float64) []byte { return strconv.AppendFloat(b, x, 'g', -1, 64) }

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
