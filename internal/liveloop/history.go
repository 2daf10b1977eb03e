package liveloop

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/pipeline"
	"github.com/lbsys/lbsys/internal/store"
)

// History is what a controller is trained on: each service's request rate
// per step, in requests per second (what the proxies measure and the
// loop observes live), and the announced events the history knows.
type History struct {
	Series map[string]*forecast.Series
	Events []forecast.Event
	// Notes say how the history was read (units, gaps, left-outs).
	Notes []string
}

// End is where the history ends: the latest end of its series.
func (h *History) End() time.Time {
	var end time.Time
	for _, s := range h.Series {
		if e := s.End(); e.After(end) {
			end = e
		}
	}
	return end
}

// Load units of a history (as `lbsys pipeline run --load-unit`).
const (
	UnitAuto      = pipeline.UnitAuto
	UnitRPS       = pipeline.UnitRPS
	UnitPerSample = pipeline.UnitPerSample
)

// StoreHistory reads a controller's history from the embedded store the
// way `lbsys pipeline run` reads its examples (internal/pipeline's
// StoreSource: each service's series of Metric, or the sum of its
// endpoints', at the store's 1-minute resolution over Window), with the
// calendar events the store holds for every service.
type StoreHistory struct {
	Store    *store.Store
	Services []string
	// Metric is the load metric (default "requests").
	Metric string
	// Window is how much history is read, back from Until or the newest
	// point (default 14 days).
	Window time.Duration
	Until  time.Time
	// Step is the controller's step (whole minutes; default 1m).
	Step time.Duration
	// Unit is UnitAuto (default: telemetry and Prometheus series are
	// requests per second, any other source counts per native sample),
	// UnitRPS or UnitPerSample.
	Unit string
	// Lookahead is how far past the history calendar events are read
	// (default 400 days: the controller runs on).
	Lookahead time.Duration
}

// Read reads the history.
func (h StoreHistory) Read(ctx context.Context) (*History, error) {
	if h.Store == nil {
		return nil, errors.New("store history: no store")
	}
	step, err := controllerStep(h.Step)
	if err != nil {
		return nil, err
	}
	switch h.Unit {
	case "", UnitAuto, UnitRPS, UnitPerSample:
	default:
		return nil, fmt.Errorf("load unit %q: use %s, %s or %s", h.Unit, UnitAuto, UnitRPS, UnitPerSample)
	}
	metric := h.Metric
	if metric == "" {
		metric = pipeline.DefaultMetric
	}
	look := h.Lookahead
	if look <= 0 {
		look = 400 * 24 * time.Hour
	}
	src := &pipeline.StoreSource{Store: h.Store, Services: h.Services, Metric: metric, Window: h.Window, Until: h.Until, Lookahead: look}
	ex, err := src.Examples(ctx)
	if err != nil {
		return nil, err
	}
	out := &History{Series: map[string]*forecast.Series{}, Events: ex.Events}
	scoped := 0
	for _, r := range ex.Series {
		o, ok := src.Origin(r.Name)
		if !ok || o.Endpoint != "" {
			continue
		}
		scoped += len(r.Events)
		factor, unit, err := h.unit(ctx, metric, o)
		if err != nil {
			return nil, err
		}
		out.Notes = append(out.Notes, fmt.Sprintf("%s: %d points of %v from %s to %s, %s", o.Service, o.Points, o.Step,
			o.From.Format(time.RFC3339), o.To.Format(time.RFC3339), unit))
		s, err := Resample(o.Service, r.T, r.V, o.Step, factor, step)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", o.Service, err)
		}
		out.Series[o.Service] = s
	}
	if scoped > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("%d calendar occurrences scoped to a single service were left out: the controller learns every service's uplift from the same events", scoped))
	}
	return out, nil
}

// unit is the factor that turns a service's grid values into requests per
// second, and what it says of them.
func (h StoreHistory) unit(ctx context.Context, metric string, o pipeline.SeriesOrigin) (float64, string, error) {
	if h.Unit == UnitRPS {
		return 1, "requests per second (--load-unit rps)", nil
	}
	if len(o.Series) == 0 {
		return 1, "requests per second", nil
	}
	ss, err := h.Store.ListSeries(ctx, store.SeriesFilter{Service: o.Service, Metric: metric})
	if err != nil {
		return 0, "", err
	}
	var s store.Series
	for _, x := range ss {
		if x.ID == o.Series[0] {
			s = x
		}
	}
	if h.Unit != UnitPerSample && (s.Source == "telemetry" || s.Source == "prometheus") {
		return 1, s.Source + " series: requests per second", nil
	}
	// Counts per native sample: the sample spacing is the most common gap
	// of its 1-minute points (the grid step may be coarser, set by
	// another service).
	pts, err := h.Store.Range(ctx, s.ID, o.From, o.To, store.Minute)
	if err != nil {
		return 0, "", err
	}
	iv := time.Minute
	if len(pts) >= 2 {
		gaps := map[int64]int{}
		for i := 1; i < len(pts); i++ {
			gaps[pts[i].T-pts[i-1].T]++
		}
		best, n := int64(0), 0
		for g, c := range gaps {
			if c > n || (c == n && g < best) {
				best, n = g, c
			}
		}
		if best >= time.Minute.Milliseconds() {
			iv = time.Duration(best) * time.Millisecond
		}
	}
	return 1 / iv.Seconds(), fmt.Sprintf("%s series: requests per %v sample ÷ %g", s.Source, iv, iv.Seconds()), nil
}

// CSVHistory reads a controller's history from a CSV trace with a
// timestamp column and one column per service (forecast.ReadCSV's rules:
// a bad row is an error naming its line).
type CSVHistory struct {
	Path     string
	Services []string
	// Step is the controller's step (whole minutes; default 1m).
	Step time.Duration
	// Unit is UnitRPS, or UnitPerSample (and UnitAuto, its default for a
	// trace): each value counts the requests of its row's interval.
	Unit string
}

// Read reads the history.
func (h CSVHistory) Read() (*History, error) {
	step, err := controllerStep(h.Step)
	if err != nil {
		return nil, err
	}
	out := &History{Series: map[string]*forecast.Series{}}
	for _, svc := range h.Services {
		f, err := os.Open(h.Path)
		if err != nil {
			return nil, err
		}
		s, info, err := forecast.ReadCSV(f, filepath.Base(h.Path), forecast.CSVOptions{ValueCol: svc, Mode: "series"})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("service %s: %w (the history needs a column named after each service)", svc, err)
		}
		factor, unit := 1.0, "requests per second"
		switch h.Unit {
		case UnitRPS:
		case "", UnitAuto, UnitPerSample:
			factor, unit = 1/s.Step.Seconds(), fmt.Sprintf("requests per %v row ÷ %g", s.Step, s.Step.Seconds())
		default:
			return nil, fmt.Errorf("load unit %q: use %s, %s or %s", h.Unit, UnitAuto, UnitRPS, UnitPerSample)
		}
		var ts []int64
		var vs []float64
		for i, v := range s.Values {
			if !math.IsNaN(v) {
				ts = append(ts, s.Time(i).UnixMilli())
				vs = append(vs, v)
			}
		}
		r, err := Resample(svc, ts, vs, s.Step, factor, step)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", svc, err)
		}
		out.Series[svc] = r
		out.Notes = append(out.Notes, fmt.Sprintf("%s: column %s, %d rows of %v from %s, %s", svc, info.ValueCol, info.Rows, s.Step,
			s.Start.Format(time.RFC3339), unit))
	}
	return out, nil
}

func controllerStep(d time.Duration) (time.Duration, error) {
	if d == 0 {
		return time.Minute, nil
	}
	if d < time.Minute || d%time.Minute != 0 {
		return 0, fmt.Errorf("step %v: want whole minutes such as 1m or 5m", d)
	}
	return d, nil
}

// Resample puts points (times in Unix ms, each value standing for the
// interval of src from its time) on a grid of step from the first step
// that has one, in requests per second (value × factor): an interval
// longer than step fills every step it covers, shorter ones are averaged
// over the step. Steps no point covers are NaN (gaps).
func Resample(name string, ts []int64, vs []float64, src time.Duration, factor float64, step time.Duration) (*forecast.Series, error) {
	if len(ts) != len(vs) {
		return nil, fmt.Errorf("%d times and %d values", len(ts), len(vs))
	}
	if src <= 0 || step <= 0 || !(factor > 0) || math.IsInf(factor, 0) {
		return nil, fmt.Errorf("bad resampling (interval %v, step %v, factor %v)", src, step, factor)
	}
	type pt struct {
		t int64
		v float64
	}
	var pts []pt
	for i := range ts {
		if !math.IsNaN(vs[i]) && !math.IsInf(vs[i], 0) {
			pts = append(pts, pt{ts[i], vs[i] * factor})
		}
	}
	if len(pts) == 0 {
		return nil, errors.New("no values in the history")
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i].t < pts[j].t })
	stepMs, srcMs := step.Milliseconds(), src.Milliseconds()
	floor := func(t int64) int64 {
		q := t / stepMs
		if t%stepMs < 0 {
			q--
		}
		return q * stepMs
	}
	start := floor(pts[0].t)
	last := pts[len(pts)-1].t + srcMs
	n := int((last - start + stepMs - 1) / stepMs)
	const maxSteps = 10 << 20 // 20 years of minutes: past it, a typo year
	if n > maxSteps {
		return nil, fmt.Errorf("the history spans %d steps of %v (from %s): more than %d; check its times", n, step,
			time.UnixMilli(start).UTC().Format(time.RFC3339), maxSteps)
	}
	// Each step's value is the time-weighted mean of the intervals that
	// overlap it.
	sum := make([]float64, n)
	wt := make([]float64, n)
	for _, p := range pts {
		a, b := p.t, p.t+srcMs
		for k := int((floor(a) - start) / stepMs); k < n; k++ {
			s0 := start + int64(k)*stepMs
			lo, hi := max(a, s0), min(b, s0+stepMs)
			if lo >= hi {
				if s0 >= b {
					break
				}
				continue
			}
			w := float64(hi - lo)
			sum[k] += p.v * w
			wt[k] += w
		}
	}
	out := &forecast.Series{Name: name, Start: time.UnixMilli(start).UTC(), Step: step, Values: make(forecast.Values, n)}
	for k := range out.Values {
		if wt[k] > 0 {
			out.Values[k] = sum[k] / wt[k]
		} else {
			out.Values[k] = math.NaN()
		}
	}
	return out, nil
}

// MergeEvents joins event lists, without the same event (category, start
// and end) twice, in start order.
func MergeEvents(lists ...[]forecast.Event) []forecast.Event {
	type key struct {
		c    string
		s, e int64
	}
	seen := map[key]bool{}
	var out []forecast.Event
	for _, l := range lists {
		for _, e := range l {
			k := key{e.Category, e.Start.UnixNano(), e.End.UnixNano()}
			if !seen[k] {
				seen[k] = true
				out = append(out, e)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b forecast.Event) int { return a.Start.Compare(b.Start) })
	return out
}
