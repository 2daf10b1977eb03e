package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// CSVOptions describe a trace file: one time column and one value column of
// a headed CSV, stored as the series (Service, Endpoint, Metric).
type CSVOptions struct {
	Service, Endpoint, Metric string
	// TimeCol names the time column. Default "timestamp".
	TimeCol string
	// ValueCol names the value column; default: the only other column.
	ValueCol string
	Time     TimeFormat
	// Name is the file name used in quarantine locations.
	Name string
	// Retention of the series: "" makes a new series an archive (a trace
	// is history: kept whole, whatever its age) and leaves an existing
	// one's mode alone; set, it applies to the series either way.
	Retention store.RetentionMode
}

// CSVRow is one valid row.
type CSVRow struct {
	Line  int
	Time  time.Time
	Value float64
	Raw   string
}

// ErrNeedZone is returned when a trace's times have no UTC offset and no
// --tz was given: every row would be ambiguous, so the run stops before
// writing anything.
var ErrNeedZone = errors.New("the times have no UTC offset: pass --tz with the zone they were written in (for example --tz UTC or --tz America/New_York)")

// ParseCSV reads a trace. Valid rows go to emit; rows that fail validation
// go to problem (an empty value is missing_field: a gap stays a gap, never
// a zero). A missing header or column is an error: nothing can be read.
//
// The file is read line by line, each line a row (see csvLines): a broken
// quote costs its own line only, never the lines after it, so the number
// of quarantined rows is the number of rows lost.
func ParseCSV(r io.Reader, opts CSVOptions, emit func(CSVRow) error, problem func(Problem)) error {
	name := opts.Name
	if name == "" {
		name = "csv"
	}
	lines := newCSVLines(r)
	var header []string
	for header == nil {
		rec, line, raw, perr, err := lines.next()
		if err == io.EOF {
			return fmt.Errorf("%s: empty file: want a header row such as timestamp,requests", name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if perr != "" {
			return fmt.Errorf("%s:%d: header: %s: %q", name, line, perr, truncate(raw, 200))
		}
		header = slices.Clone(rec)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	timeCol := opts.TimeCol
	if timeCol == "" {
		timeCol = "timestamp"
	}
	ti := slices.Index(header, timeCol)
	if ti < 0 {
		return fmt.Errorf("%s: no time column %q in header %v: pass --time-col", name, timeCol, header)
	}
	vi := -1
	switch {
	case opts.ValueCol != "":
		vi = slices.Index(header, opts.ValueCol)
		if vi < 0 {
			return fmt.Errorf("%s: no value column %q in header %v: pass --value-col", name, opts.ValueCol, header)
		}
	case len(header) == 2:
		vi = 1 - ti
	default:
		return fmt.Errorf("%s: header %v has %d columns: pass --value-col to choose one", name, header, len(header))
	}
	first := true
	for {
		rec, line, raw, perr, err := lines.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		loc := fmt.Sprintf("%s:%d", name, line)
		if perr != "" {
			problem(Problem{loc, store.ReasonMalformed, perr, raw})
			continue
		}
		if len(rec) <= max(ti, vi) {
			problem(Problem{loc, store.ReasonMissingField, fmt.Sprintf("%d fields, the header has %d", len(rec), len(header)), raw})
			continue
		}
		t, p := opts.Time.parse(rec[ti])
		if p != nil {
			if first && opts.Time.Loc == nil && p.Reason == store.ReasonAmbiguousTime {
				return fmt.Errorf("%s: %w", loc, ErrNeedZone)
			}
			p.Location, p.Raw = loc, raw
			p.Detail = header[ti] + ": " + p.Detail
			problem(*p)
			continue
		}
		first = false
		vs := strings.TrimSpace(rec[vi])
		if vs == "" {
			problem(Problem{loc, store.ReasonMissingField, header[vi] + " is empty (no data: stored as a gap, never a zero)", raw})
			continue
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				problem(Problem{loc, store.ReasonNotFinite, fmt.Sprintf("%s %q is out of range", header[vi], vs), raw})
			} else {
				problem(Problem{loc, store.ReasonNotANumber, fmt.Sprintf("%s %q is not a number", header[vi], vs), raw})
			}
			continue
		}
		if err := emit(CSVRow{Line: line, Time: t, Value: v, Raw: raw}); err != nil {
			return err
		}
	}
}

// maxCSVLine bounds one line of a trace; a longer one is quarantined (and
// skipped without being held in memory).
const maxCSVLine = 64 << 10

// csvLines splits a CSV file into rows, one per line, with RFC 4180 quoting
// inside a line: a field may be quoted ("a,b"), a quote inside it doubled
// (""), spaces around it are ignored. A quoted field cannot continue on the
// next line: in a trace that is a stray quote, and reading on until some
// later quote would swallow every valid row in between (encoding/csv does,
// and then reports one bad record). Empty lines are skipped.
type csvLines struct {
	r    *bufio.Reader
	line int
	rec  []string
	buf  strings.Builder
}

func newCSVLines(r io.Reader) *csvLines { return &csvLines{r: bufio.NewReaderSize(r, maxCSVLine)} }

// next returns the next row, its line number and text; problem is set (and
// rec nil) when the line is not a valid row. err is io.EOF at the end.
func (c *csvLines) next() (rec []string, line int, raw, problem string, err error) {
	for {
		text, tooLong, err := c.readLine()
		if err != nil && (err != io.EOF || (text == "" && !tooLong)) {
			return nil, c.line, "", "", err
		}
		if tooLong {
			return nil, c.line, text, fmt.Sprintf("a line longer than %d KiB: not a trace row", maxCSVLine>>10), nil
		}
		if c.line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		if text == "" {
			continue
		}
		rec, problem := c.split(text)
		return rec, c.line, text, problem, nil
	}
}

// readLine reads one physical line without its end (\n or \r\n). A line
// over maxCSVLine is read to its end but only its beginning is kept.
func (c *csvLines) readLine() (string, bool, error) {
	c.line++
	chunk, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		head := string(chunk[:min(len(chunk), 256)])
		for err == bufio.ErrBufferFull {
			_, err = c.r.ReadSlice('\n')
		}
		if err == io.EOF {
			err = nil
		}
		return head, true, err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(chunk), "\n"), "\r")
	if err == io.EOF && s != "" {
		err = nil
	}
	return s, false, err
}

// split cuts one line into fields.
func (c *csvLines) split(text string) ([]string, string) {
	c.rec = c.rec[:0]
	i := 0
	for field := 1; ; field++ {
		// Spaces before an opening quote are allowed.
		j := i
		for j < len(text) && (text[j] == ' ' || text[j] == '\t') {
			j++
		}
		if j < len(text) && text[j] == '"' {
			c.buf.Reset()
			k := j + 1
			closed := false
			for k < len(text) {
				if text[k] == '"' {
					if k+1 < len(text) && text[k+1] == '"' {
						c.buf.WriteByte('"')
						k += 2
						continue
					}
					closed = true
					k++
					break
				}
				c.buf.WriteByte(text[k])
				k++
			}
			if !closed {
				return nil, fmt.Sprintf("field %d: the quote opened at column %d is not closed on this line (a stray quote?); only this line is quarantined", field, j+1)
			}
			for k < len(text) && (text[k] == ' ' || text[k] == '\t') {
				k++
			}
			switch {
			case k == len(text):
				c.rec = append(c.rec, c.buf.String())
				return c.rec, ""
			case text[k] != ',':
				return nil, fmt.Sprintf("field %d: text after the closing quote at column %d", field, k+1)
			}
			c.rec = append(c.rec, c.buf.String())
			i = k + 1
			continue
		}
		end := strings.IndexByte(text[i:], ',')
		var f string
		if end < 0 {
			f = text[i:]
		} else {
			f = text[i : i+end]
		}
		if q := strings.IndexByte(f, '"'); q >= 0 {
			return nil, fmt.Sprintf("field %d: a quote inside an unquoted field at column %d (quote the whole field and double the quote: \"1\"\"2\")", field, i+q+1)
		}
		c.rec = append(c.rec, f)
		if end < 0 {
			return c.rec, ""
		}
		i += end + 1
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ImportCSV reads a trace into the store through run.
func ImportCSV(ctx context.Context, run *Run, r io.Reader, opts CSVOptions, allowNegative bool) error {
	if opts.Service == "" || opts.Metric == "" {
		return errors.New("csv: --service and --metric are required")
	}
	sink := NewPointSink(run, "csv")
	sink.AllowNegative = allowNegative
	sink.NewSeries, sink.Retention = store.RetainArchive, opts.Retention
	key := store.SeriesKey{Service: opts.Service, Endpoint: opts.Endpoint, Metric: opts.Metric}
	name := opts.Name
	if name == "" {
		name = "csv"
	}
	err := ParseCSV(r, opts, func(row CSVRow) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return sink.Add(ctx, key, row.Time, row.Value, fmt.Sprintf("%s:%d", name, row.Line), row.Raw)
	}, run.Quarantine)
	if ferr := sink.Flush(ctx); err == nil {
		err = ferr
	}
	return err
}
