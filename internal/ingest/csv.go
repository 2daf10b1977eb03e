package ingest

import (
	"context"
	"encoding/csv"
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
func ParseCSV(r io.Reader, opts CSVOptions, emit func(CSVRow) error, problem func(Problem)) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	name := opts.Name
	if name == "" {
		name = "csv"
	}
	header, err := cr.Read()
	if err == io.EOF {
		return fmt.Errorf("%s: empty file: want a header row such as timestamp,requests", name)
	}
	if err != nil {
		return fmt.Errorf("%s: header: %w", name, err)
	}
	header = slices.Clone(header)
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
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			problem(Problem{Location: fmt.Sprintf("%s:%d", name, pe.StartLine), Reason: store.ReasonMalformed, Detail: pe.Err.Error()})
			if errors.Is(pe.Err, csv.ErrQuote) {
				// An unterminated quote swallows the rest of the file.
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		loc := fmt.Sprintf("%s:%d", name, line)
		raw := strings.Join(rec, ",")
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

// ImportCSV reads a trace into the store through run.
func ImportCSV(ctx context.Context, run *Run, r io.Reader, opts CSVOptions, allowNegative bool) error {
	if opts.Service == "" || opts.Metric == "" {
		return errors.New("csv: --service and --metric are required")
	}
	sink := NewPointSink(run, "csv")
	sink.AllowNegative = allowNegative
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
