package forecast

import (
	"fmt"
	"math"
	"time"
)

// Series is a regular time series: Values[i] is the load in the step that
// starts at Start + i·Step. A gap (no data) is NaN, never zero: a model
// must not learn that an outage of the collector was an outage of demand.
type Series struct {
	// Name identifies the series (a service, a file).
	Name string `json:"name"`
	// Start is the time of Values[0].
	Start time.Time `json:"start"`
	// Step is the resolution; every index is one Step after the previous.
	Step time.Duration `json:"step"`
	// Values are the loads per step; NaN marks a gap.
	Values Values `json:"values"`
}

// Len is the number of steps, gaps included.
func (s *Series) Len() int { return len(s.Values) }

// Time returns the start time of step i.
func (s *Series) Time(i int) time.Time { return s.Start.Add(time.Duration(i) * s.Step) }

// End is the time just after the last step.
func (s *Series) End() time.Time { return s.Time(len(s.Values)) }

// Gaps counts the NaN steps.
func (s *Series) Gaps() int {
	n := 0
	for _, v := range s.Values {
		if math.IsNaN(v) {
			n++
		}
	}
	return n
}

// Validate checks the invariants every model relies on.
func (s *Series) Validate() error {
	switch {
	case s.Step <= 0:
		return fmt.Errorf("series %q: step %v: must be > 0", s.Name, s.Step)
	case len(s.Values) == 0:
		return fmt.Errorf("series %q: no values", s.Name)
	}
	known := 0
	for i, v := range s.Values {
		if math.IsInf(v, 0) {
			return fmt.Errorf("series %q: value %d (%s) is infinite", s.Name, i, s.Time(i).Format(time.DateTime))
		}
		if !math.IsNaN(v) {
			known++
		}
	}
	if known == 0 {
		return fmt.Errorf("series %q: every step is a gap; nothing to learn from", s.Name)
	}
	return nil
}

// Slice returns the steps [from, to) as a new series sharing no memory.
func (s *Series) Slice(from, to int) *Series {
	return &Series{Name: s.Name, Start: s.Time(from), Step: s.Step, Values: append(Values(nil), s.Values[from:to]...)}
}

// Point is one raw observation before it is placed on a regular grid.
type Point struct {
	T time.Time `json:"t"`
	V float64   `json:"v"`
}

// Regularize places raw points on the grid Start + k·step, where Start is
// the first point's time. It is strict about what it cannot repair: a point
// off the grid is an error (the caller aggregates irregular arrivals
// first, see AggregateArrivals). Duplicated timestamps are averaged and
// counted; missing grid steps and NaN values become gaps.
func Regularize(name string, pts []Point, step time.Duration) (*Series, RegularizeReport, error) {
	var rep RegularizeReport
	if step <= 0 {
		return nil, rep, fmt.Errorf("series %q: step %v: must be > 0", name, step)
	}
	if len(pts) == 0 {
		return nil, rep, fmt.Errorf("series %q: no points", name)
	}
	start := pts[0].T
	last := start
	for _, p := range pts {
		if p.T.After(last) {
			last = p.T
		}
		if p.T.Before(start) {
			start = p.T
		}
	}
	n := int(last.Sub(start)/step) + 1
	if n > maxSteps {
		return nil, rep, fmt.Errorf("series %q: %d steps of %v between %s and %s: more than %d; use a coarser step",
			name, n, step, start.Format(time.DateTime), last.Format(time.DateTime), maxSteps)
	}
	sum := make([]float64, n)
	cnt := make([]int, n)
	for _, p := range pts {
		off := p.T.Sub(start)
		if off%step != 0 {
			return nil, rep, fmt.Errorf("series %q: timestamp %s is off the %v grid that starts at %s; aggregate irregular data to a regular step first",
				name, p.T.Format(time.RFC3339Nano), step, start.Format(time.DateTime))
		}
		if math.IsNaN(p.V) {
			rep.EmptyValues++
			continue
		}
		i := int(off / step)
		if cnt[i] > 0 {
			rep.Duplicates++
		}
		sum[i] += p.V
		cnt[i]++
	}
	s := &Series{Name: name, Start: start, Step: step, Values: make(Values, n)}
	for i := range s.Values {
		if cnt[i] == 0 {
			s.Values[i] = math.NaN()
			rep.GapSteps++
			continue
		}
		s.Values[i] = sum[i] / float64(cnt[i])
	}
	return s, rep, nil
}

// RegularizeReport says what Regularize had to do.
type RegularizeReport struct {
	// GapSteps is the number of grid steps without a value.
	GapSteps int `json:"gap_steps"`
	// Duplicates is the number of points that shared a grid step with an
	// earlier one (their values were averaged).
	Duplicates int `json:"duplicates"`
	// EmptyValues is the number of points whose value was missing.
	EmptyValues int `json:"empty_values"`
}

// maxSteps bounds memory for a hostile or mistaken input: a year of
// 1-second steps is 31.5 M.
const maxSteps = 20_000_000

// Values is a slice of float64 whose JSON form writes gaps (NaN) as null,
// which encoding/json cannot do for a plain []float64.
type Values []float64

// MarshalJSON writes NaN and ±Inf as null.
func (v Values) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+len(v)*8)
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b = append(b, "null"...)
			continue
		}
		b = appendFloat(b, x)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads null as NaN.
func (v *Values) UnmarshalJSON(b []byte) error {
	out := (*v)[:0]
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		if i+4 <= len(b) && string(b[i:i+4]) == "null" {
			*v = nil
			return nil
		}
		return fmt.Errorf("values: expected a JSON array")
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) {
			return fmt.Errorf("values: unterminated array")
		}
		if b[i] == ']' {
			break
		}
		j := i
		for j < len(b) && b[j] != ',' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		tok := string(b[i:j])
		if tok == "null" {
			out = append(out, math.NaN())
		} else {
			// strconv reads Inf, NaN and hex floats too; JSON has none of
			// them, and an infinity in a payload would reach the models.
			if !jsonNumber(tok) {
				return fmt.Errorf("values: %q is not a JSON number", tok)
			}
			f, err := parseFloat(tok)
			if err != nil {
				return fmt.Errorf("values: %q: %w", tok, err)
			}
			out = append(out, f)
		}
		i = skipSpace(b, j)
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
	*v = out
	return nil
}

// jsonNumber reports whether s is a JSON number (RFC 8259 §6):
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}
