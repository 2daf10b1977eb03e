package sim

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// trace is a demand series read from CSV. We read it here rather than
// through internal/loadgen (whose LoadTrace does the same) because loadgen
// is a network client and the simulator must stay free of net (it is a
// pure package, internal/deptest). The semantics match loadgen's where it
// matters: rows strictly increasing in time, values >= 0, an empty value is
// "no data", not zero; gaps of at most two steps are interpolated. Longer
// gaps differ on purpose: loadgen holds the last value to keep a live
// replay going, while the simulator keeps a gap a gap (no arrivals) and
// reports the gap minutes, so no demand is invented where the trace has
// none.
type trace struct {
	name string
	t    []int64 // unix ns of rows with a value
	v    []float64
	step int64 // most common row interval
	// bridge[i] tells whether t[i]..t[i+1] is interpolated; otherwise it
	// is a gap.
	bridge []bool
}

const maxTraceRows = 10_000_000

// The times a trace may hold: time.UnixNano is only defined from 1678 to
// 2262, and a trace spanning more than 292 years would overflow the
// differences between its rows; 1900 to 2100 holds every real trace.
var (
	traceMinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	traceMaxTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// parseTrace reads a CSV with a header naming timeCol and valueCol.
//
// On success the trace satisfies (FuzzParseTrace checks it): at least two
// rows with a value; t strictly increasing, within [1900, 2100); v finite
// and >= 0 (never -0), as long as t; step > 0; bridge[i] is t[i+1]−t[i]
// <= 3·step.
// Errors start with name (and name:line for a row's error).
func parseTrace(data []byte, name, timeCol, valueCol string) (*trace, error) {
	// A spreadsheet's UTF-8 byte order mark would hide the first column's
	// name.
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	head, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty trace: want a header with %q and %q", name, timeCol, valueCol)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ti, vi := -1, -1
	for i, h := range head {
		switch strings.TrimSpace(h) {
		case timeCol:
			ti = i
		case valueCol:
			vi = i
		}
	}
	if ti < 0 || vi < 0 {
		return nil, fmt.Errorf("%s:1: header %q lacks column %q or %q (set load.trace.time_col / value_col)", name, strings.Join(head, ","), timeCol, valueCol)
	}
	tr := &trace{name: name}
	var allT []int64
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := r.FieldPos(0) // a quoted field may span lines
		if len(allT) >= maxTraceRows {
			return nil, fmt.Errorf("%s: more than %d rows", name, maxTraceRows)
		}
		if ti >= len(rec) || vi >= len(rec) {
			return nil, fmt.Errorf("%s:%d: row has %d fields, want columns %d and %d", name, line, len(rec), ti+1, vi+1)
		}
		t, err := parseCalendarTime(rec[ti])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: column %q: %v", name, line, timeCol, err)
		}
		if t.Before(traceMinTime) || !t.Before(traceMaxTime) {
			return nil, fmt.Errorf("%s:%d: column %q: %s is outside the years 1900 to 2099 a trace may cover", name, line, timeCol, strings.TrimSpace(rec[ti]))
		}
		ns := t.UnixNano()
		if n := len(allT); n > 0 && ns <= allT[n-1] {
			return nil, fmt.Errorf("%s:%d: column %q: %s is not after the previous row: rows must be in increasing time", name, line, timeCol, strings.TrimSpace(rec[ti]))
		}
		allT = append(allT, ns)
		s := strings.TrimSpace(rec[vi])
		if s == "" {
			continue // no data: a gap
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("%s:%d: column %q: %q is not a count >= 0", name, line, valueCol, s)
		}
		if v == 0 {
			v = 0 // "-0" is 0, not a negative zero in the rates and reports
		}
		tr.t = append(tr.t, ns)
		tr.v = append(tr.v, v)
	}
	if len(tr.t) < 2 {
		return nil, fmt.Errorf("%s: fewer than two rows with a value", name)
	}
	// The resolution is the most common interval between rows.
	counts := map[int64]int{}
	best, bestN := int64(0), 0
	for i := 1; i < len(allT); i++ {
		d := allT[i] - allT[i-1]
		counts[d]++
		if counts[d] > bestN || (counts[d] == bestN && d < best) {
			best, bestN = d, counts[d]
		}
	}
	tr.step = best
	tr.bridge = make([]bool, len(tr.t)-1)
	for i := range tr.bridge {
		// At most two missing steps between known rows: interpolate.
		// (d-1)/3 < step is d <= 3·step without the product, which
		// overflows for a step over 97 years.
		d := tr.t[i+1] - tr.t[i]
		tr.bridge[i] = (d-1)/3 < tr.step
	}
	return tr, nil
}

// value is the demand per step at unix ns x, and whether x is inside a gap
// (or outside the trace).
func (tr *trace) value(x int64) (float64, bool) {
	n := len(tr.t)
	if x < tr.t[0] || x > tr.t[n-1] {
		return 0, true
	}
	// Binary search for the last row at or before x.
	lo, hi := 0, n-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if tr.t[mid] <= x {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == n-1 || tr.t[lo] == x {
		return tr.v[lo], false
	}
	if !tr.bridge[lo] {
		// Inside a long gap, except for the known row's own step.
		if x-tr.t[lo] < tr.step {
			return tr.v[lo], false
		}
		return 0, true
	}
	f := float64(x-tr.t[lo]) / float64(tr.t[lo+1]-tr.t[lo])
	return tr.v[lo] + f*(tr.v[lo+1]-tr.v[lo]), false
}

// first is the first row's time.
func (tr *trace) first() time.Time { return time.Unix(0, tr.t[0]).UTC() }
