package loadgen

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/textutil"
)

// Rate is a target arrival rate as a function of the time since the start
// of the run. Rates are pure functions of the offset: the same Rate gives
// the same schedule every run (with the same seed).
type Rate interface {
	// At returns the target rate, in arrivals per second, at offset t.
	// It is never negative.
	At(t time.Duration) float64
	// Max returns an upper bound of At over [from, to]. Thinning draws
	// candidate arrivals at this rate, so a tight bound costs fewer rejected
	// candidates; a loose one is still correct.
	Max(from, to time.Duration) float64
}

// Constant is a fixed rate in arrivals per second.
type Constant float64

// At returns the constant rate.
func (c Constant) At(time.Duration) float64 { return math.Max(float64(c), 0) }

// Max returns the constant rate.
func (c Constant) Max(time.Duration, time.Duration) float64 { return c.At(0) }

// Ramp goes linearly from From to To (arrivals per second) over Over, and
// stays at To afterwards.
type Ramp struct {
	From, To float64
	Over     time.Duration
}

// At interpolates between From and To.
func (r Ramp) At(t time.Duration) float64 {
	if r.Over <= 0 || t >= r.Over {
		return math.Max(r.To, 0)
	}
	if t <= 0 {
		return math.Max(r.From, 0)
	}
	f := float64(t) / float64(r.Over)
	return math.Max(r.From+(r.To-r.From)*f, 0)
}

// Max is the larger end of the interval: a ramp is monotonic.
func (r Ramp) Max(from, to time.Duration) float64 { return math.Max(r.At(from), r.At(to)) }

// FlashSale multiplies a base rate by X during [Start, Start+For): the
// multiplier rises linearly from 1 to X over the first Rise of the window
// (shoppers arriving as the news spreads) and drops back to 1 over Fall at
// its end (zero Fall: at once, as when the sale closes).
type FlashSale struct {
	Base Rate
	// Start is the start of the window (at= in the flag), For its length
	// (Rise and Fall included).
	Start, For time.Duration
	// X is the multiplier at the plateau; values below 1 model an outage
	// of demand rather than a sale, and are allowed.
	X          float64
	Rise, Fall time.Duration
}

// Multiplier returns the factor applied to the base rate at t.
func (f FlashSale) Multiplier(t time.Duration) float64 {
	end := f.Start + f.For
	if t < f.Start || t >= end {
		return 1
	}
	m := f.X
	if f.Rise > 0 && t < f.Start+f.Rise {
		m = 1 + (f.X-1)*float64(t-f.Start)/float64(f.Rise)
	}
	if f.Fall > 0 && t > end-f.Fall {
		down := 1 + (f.X-1)*float64(end-t)/float64(f.Fall)
		if (f.X >= 1 && down < m) || (f.X < 1 && down > m) {
			m = down
		}
	}
	return m
}

// At returns the base rate times the multiplier.
func (f FlashSale) At(t time.Duration) float64 { return f.Base.At(t) * f.Multiplier(t) }

// Max bounds the product by the base's bound times the largest multiplier
// in the interval (the multiplier is piecewise linear, so its maximum is at
// an end of the interval or at one of its corners).
func (f FlashSale) Max(from, to time.Duration) float64 {
	m := math.Max(f.Multiplier(from), f.Multiplier(to))
	for _, c := range []time.Duration{f.Start, f.Start + f.Rise, f.Start + f.For - f.Fall, f.Start + f.For - 1} {
		if c >= from && c <= to {
			m = math.Max(m, f.Multiplier(c))
		}
	}
	return f.Base.Max(from, to) * m
}

// TraceGaps forwards the gap counts of a trace-replay base rate.
func (f FlashSale) TraceGaps() (interpolated, held int) { return traceGaps(f.Base) }

// scaled multiplies a rate by a constant: sessions mode turns a request rate
// into a session-start rate this way.
type scaled struct {
	base   Rate
	factor float64
}

func (s scaled) At(t time.Duration) float64         { return s.base.At(t) * s.factor }
func (s scaled) Max(from, to time.Duration) float64 { return s.base.Max(from, to) * s.factor }

// gapCounter is implemented by rates that replay a trace with gaps.
type gapCounter interface {
	TraceGaps() (interpolated, held int)
}

func traceGaps(r Rate) (int, int) {
	if g, ok := r.(gapCounter); ok {
		return g.TraceGaps()
	}
	return 0, 0
}

// MeanRate returns the average of r over [0, d], sampled every 10 ms (or
// finer for short runs); used for the target column of reports.
func MeanRate(r Rate, from, to time.Duration) float64 {
	if to <= from {
		return r.At(from)
	}
	n := int((to - from) / (10 * time.Millisecond))
	n = min(max(n, 16), 100000)
	step := float64(to-from) / float64(n)
	sum := 0.0
	for i := 0; i < n; i++ {
		sum += r.At(from + time.Duration((float64(i)+0.5)*step))
	}
	return sum / float64(n)
}

// ParseRamp parses "FROM:TO" (arrivals per second) for --ramp.
func ParseRamp(s string, over time.Duration) (Ramp, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return Ramp{}, fmt.Errorf("ramp %q: want FROM:TO in requests per second, e.g. 100:2000", s)
	}
	from, err := parseRateNumber(a)
	if err != nil {
		return Ramp{}, fmt.Errorf("ramp %q: FROM: %w", s, err)
	}
	to, err := parseRateNumber(b)
	if err != nil {
		return Ramp{}, fmt.Errorf("ramp %q: TO: %w", s, err)
	}
	return Ramp{From: from, To: to, Over: over}, nil
}

func parseRateNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative; rates are >= 0", s)
	}
	return v, nil
}

// ParseFlashSale parses the --flash-sale value
// "at=60s,for=120s,x=8[,rise=10s][,fall=0s]" around base.
func ParseFlashSale(s string, base Rate) (FlashSale, error) {
	f := FlashSale{Base: base}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return f, fmt.Errorf("flash sale %q: %q is not key=value (keys: at, for, x, rise, fall)", s, kv)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if seen[k] {
			return f, fmt.Errorf("flash sale %q: %s given twice", s, k)
		}
		seen[k] = true
		var err error
		switch k {
		case "at":
			f.Start, err = parseNonNegDuration(v)
		case "for":
			f.For, err = parseNonNegDuration(v)
		case "rise":
			f.Rise, err = parseNonNegDuration(v)
		case "fall":
			f.Fall, err = parseNonNegDuration(v)
		case "x":
			f.X, err = strconv.ParseFloat(v, 64)
			if err == nil && (f.X < 0 || math.IsNaN(f.X) || math.IsInf(f.X, 0)) {
				err = fmt.Errorf("%q must be a number >= 0", v)
			}
		default:
			return f, fmt.Errorf("flash sale %q: unknown key %q (keys: at, for, x, rise, fall)", s, k)
		}
		if err != nil {
			return f, fmt.Errorf("flash sale %q: %s: %w", s, k, err)
		}
	}
	for _, k := range []string{"at", "for", "x"} {
		if !seen[k] {
			return f, fmt.Errorf("flash sale %q: %s= is required (e.g. at=60s,for=120s,x=8,rise=10s)", s, k)
		}
	}
	if f.For <= 0 {
		return f, fmt.Errorf("flash sale %q: for must be > 0", s)
	}
	if f.Rise+f.Fall > f.For {
		return f, fmt.Errorf("flash sale %q: rise + fall (%v) exceed the window (for=%v)", s, f.Rise+f.Fall, f.For)
	}
	return f, nil
}

func parseNonNegDuration(s string) (time.Duration, error) {
	d, err := textutil.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}
