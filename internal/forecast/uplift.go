package forecast

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Event uplift: how much a calendar event of a category multiplies a
// series, learned from the past events of that category. The stacking
// ensemble learns events too (its event features), but additively and
// from few rows; a campaign planner needs a multiplicative, explainable
// answer — "a flash sale has brought ×6.2 to ×8.4 over the last five" —
// that carries to an event at another time of day, and an upper estimate
// to provision for. The model is deliberately simple:
//
//   - the baseline of a step is what the series does without events: the
//     median of the same time of day over the previous BaselineDays days
//     (a window of ±BaselineHalfWidth steps), leaving out steps under any
//     event's effect, times the recent level (the last LevelWindow steps
//     before the origin against their own baseline, clamped to [½, 2]);
//   - each past occurrence gives a ratio path, actual over its baseline
//     (the level taken just before the event), from its start to
//     EffectAfter past its end;
//   - a category's profile is, per step since the start (and since the
//     end), the median of the ratios across occurrences, smoothed by a
//     running median then a running mean over ±Slack steps (a rise
//     within a minute or two stays one; a noisy minute, or a few, do
//     not make a peak); its upper profile scales that
//     median's excess over 1 by how far the upper estimate of the
//     occurrences' sizes (each one's median ratio while it lasted) lies
//     beyond their median; both are widened by a running maximum over
//     ±Slack steps so that a rise a little earlier than before is still
//     covered.

// UpliftOptions tune LearnUplift and Baseline; zero fields take defaults.
type UpliftOptions struct {
	// BaselineDays is how many past days the baseline's median spans.
	// Default 7.
	BaselineDays int `json:"baseline_days"`
	// BaselineHalfWidth steps either side of the same time of day join
	// the median. Default 2.
	BaselineHalfWidth int `json:"baseline_half_width"`
	// LevelWindow is the number of steps whose level scales the baseline.
	// Default 60.
	LevelWindow int `json:"level_window"`
	// EffectAfter is how long after its end an event still moves the
	// load (stragglers, abandoned carts coming back). Default 30m.
	EffectAfter time.Duration `json:"effect_after"`
	// Upper is the probability that the next event is no larger than the
	// upper profile plans for. With n past events the next one exceeds
	// all of them with probability 1/(n+1) (20% with four), so the upper
	// size lies past the largest seen: max + t × (max − min), with t the
	// prediction bound of a uniform spread of sizes at this level,
	// ((n+1)(1−Upper))^(−1/(n−1)) − 1 (at most 1: with two or three past
	// events no bound is worth a plan), and at least the Upper quantile.
	// Default 0.95.
	Upper float64 `json:"upper"`
	// Slack widens the profiles by a running maximum over ±Slack steps.
	// Default 2.
	Slack int `json:"slack"`
	// SingleMargin multiplies the upper profile of a category seen once
	// (no spread to learn from). Default 1.2.
	SingleMargin float64 `json:"single_margin"`
}

// DefaultEventConfidence is UpliftOptions.Upper when none is given.
const DefaultEventConfidence = 0.95

// CheckEventConfidence validates an operator's choice of
// UpliftOptions.Upper: the probability that an announced event is no
// larger than the floors plan for. Below 0.5 a plan would expect most
// events to outgrow it; at 1 no finite plan is enough.
func CheckEventConfidence(p float64) error {
	if !(p >= 0.5 && p <= 0.999) {
		return fmt.Errorf("event confidence %v: want a probability in [0.5, 0.999], e.g. 0.95 (lower plans smaller, cheaper floors that the largest events outgrow)", p)
	}
	return nil
}

func (o UpliftOptions) withDefaults() UpliftOptions {
	if o.BaselineDays <= 0 {
		o.BaselineDays = 7
	}
	if o.BaselineHalfWidth < 0 {
		o.BaselineHalfWidth = 0
	} else if o.BaselineHalfWidth == 0 {
		o.BaselineHalfWidth = 2
	}
	if o.LevelWindow <= 0 {
		o.LevelWindow = 60
	}
	if o.EffectAfter <= 0 {
		o.EffectAfter = 30 * time.Minute
	}
	if o.Upper <= 0 || o.Upper >= 1 {
		o.Upper = DefaultEventConfidence
	}
	if o.Slack < 0 {
		o.Slack = 0
	} else if o.Slack == 0 {
		o.Slack = 2
	}
	if o.SingleMargin < 1 {
		o.SingleMargin = 1.2
	}
	return o
}

// Uplift is what the past events of one category did to one series.
type Uplift struct {
	Series   string `json:"series"`
	Category string `json:"category"`
	// Occurrences is the number of past events learned from; Peaks how
	// large each was (the median of its ratios while it lasted: its
	// plateau, which a noisy minute does not move), oldest first.
	Occurrences int       `json:"occurrences"`
	Peaks       []float64 `json:"peaks"`
	// During[k] and DuringUpper[k] are the median and upper ratios k steps
	// after an event's start; After and AfterUpper k steps after its end.
	During      []float64     `json:"during"`
	DuringUpper []float64     `json:"during_upper"`
	After       []float64     `json:"after"`
	AfterUpper  []float64     `json:"after_upper"`
	Step        time.Duration `json:"step"`
}

// PeakUpper is the largest upper ratio while an event lasts.
func (u *Uplift) PeakUpper() float64 {
	m := 0.0
	for _, v := range u.DuringUpper {
		m = math.Max(m, v)
	}
	return m
}

// String summarises the uplift for a why: "×7.9 upper (5 past events:
// ×6.2–×8.4)".
func (u *Uplift) String() string {
	if u == nil || u.Occurrences == 0 {
		return "no past event of the category to learn from"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range u.Peaks {
		lo, hi = math.Min(lo, p), math.Max(hi, p)
	}
	noun := "events"
	if u.Occurrences == 1 {
		noun = "event"
	}
	return fmt.Sprintf("×%.3g upper (learned from %d past %s of %s: peaks ×%.3g–×%.3g)", u.PeakUpper(), u.Occurrences, noun, u.Category, lo, hi)
}

// Ratio returns the median and upper ratios at t for an event [start,
// end), and false outside its effect.
func (u *Uplift) Ratio(start, end, t time.Time) (mid, upper float64, ok bool) {
	if u == nil || len(u.During) == 0 || t.Before(start) {
		return 1, 1, false
	}
	if t.Before(end) {
		k := min(int(t.Sub(start)/u.Step), len(u.During)-1)
		return u.During[k], u.DuringUpper[k], true
	}
	k := int(t.Sub(end) / u.Step)
	if k >= len(u.After) {
		return 1, 1, false
	}
	return u.After[k], u.AfterUpper[k], true
}

// Baseline is the seasonal expectation of a series without events.
type Baseline struct {
	s      *Series
	o      UpliftOptions
	masked []bool // step under an event's effect
	day    int
	events []Event
}

// NewBaseline prepares the baseline of s; events mark the steps left out.
func NewBaseline(s *Series, events []Event, o UpliftOptions) *Baseline {
	o = o.withDefaults()
	b := &Baseline{s: s, o: o, masked: make([]bool, s.Len()), events: events}
	b.day = int(24 * time.Hour / s.Step)
	after := o.EffectAfter
	for _, e := range events {
		from := int(e.Start.Sub(s.Start) / s.Step)
		to := int((e.End.Add(after).Sub(s.Start) + s.Step - 1) / s.Step)
		for i := max(0, from); i < min(to, len(b.masked)); i++ {
			b.masked[i] = true
		}
	}
	return b
}

// Seasonal is the median of the same time of day over the previous days
// (from the last step before t that is known, at or before origin), or
// NaN when nothing is known.
func (b *Baseline) Seasonal(t time.Time, origin int) float64 {
	s := b.s
	if b.day <= 0 {
		return math.NaN()
	}
	// The step of t, then whole days back, using the most recent
	// BaselineDays days known at origin that have unmasked steps (a day
	// under an event is skipped, up to two weeks further back).
	k := int(math.Floor(float64(t.Sub(s.Start)) / float64(s.Step)))
	hw := b.o.BaselineHalfWidth
	var xs []float64
	days := 0
	for d := 1; d <= b.o.BaselineDays+14 && days < b.o.BaselineDays; d++ {
		c := k - d*b.day
		if c+hw < 0 {
			break
		}
		if c-hw > origin {
			continue // not known yet at origin
		}
		got := false
		for j := c - hw; j <= c+hw; j++ {
			if j < 0 || j > origin || j >= s.Len() || b.masked[j] || math.IsNaN(s.Values[j]) {
				continue
			}
			xs = append(xs, s.Values[j])
			got = true
		}
		if got {
			days++
		}
	}
	return medianOf(xs)
}

// Level is the ratio of the LevelWindow known, unmasked steps ending at
// origin to their seasonal values, clamped to [½, 2] (1 when unknown).
func (b *Baseline) Level(origin int) float64 {
	return b.level(origin, func(int) bool { return false })
}

// LevelFor is the level the planned event starts from. It is Level,
// except that the steps of other events under way at origin and still on
// when the planned one starts count too: a campaign of days lifts the load
// that a flash sale inside it multiplies, and with its steps left out the
// level of a window wholly inside the campaign would be unknown (1) and
// the sale planned as if the campaign were not on. A step also under the
// effect of the planned event or of any other (a spike that ended, its
// tail) stays out.
func (b *Baseline) LevelFor(origin int, planned Event) float64 {
	if origin < 0 || origin >= b.s.Len() {
		return b.Level(origin)
	}
	now := b.s.Time(origin)
	// The planned event's own steps (it may be under way) stay out.
	on, off := []Event(nil), []Event{planned}
	for _, e := range b.events {
		if e == planned {
			continue
		}
		if !e.Start.After(now) && e.End.After(now) && e.End.After(planned.Start) {
			on = append(on, e)
		} else {
			off = append(off, e)
		}
	}
	if len(on) == 0 {
		return b.Level(origin)
	}
	after := b.o.EffectAfter
	return b.level(origin, func(i int) bool {
		t := b.s.Time(i)
		in := false
		for _, e := range on {
			in = in || (!t.Before(e.Start) && t.Before(e.End))
		}
		for _, e := range off {
			if !t.Before(e.Start) && t.Before(e.End.Add(after)) {
				return false
			}
		}
		return in
	})
}

// level is Level with the masked steps for which carry is true counted.
func (b *Baseline) level(origin int, carry func(i int) bool) float64 {
	var num, den float64
	for i := origin; i >= 0 && i > origin-b.o.LevelWindow; i-- {
		if i >= b.s.Len() || (b.masked[i] && !carry(i)) || math.IsNaN(b.s.Values[i]) {
			continue
		}
		base := b.Seasonal(b.s.Time(i), i-1)
		if math.IsNaN(base) {
			continue
		}
		num += b.s.Values[i]
		den += base
	}
	if den <= 0 {
		return 1
	}
	return math.Max(0.5, math.Min(2, num/den))
}

// At is the baseline at t as seen from origin (the last step known):
// the seasonal value times the recent level.
func (b *Baseline) At(t time.Time, origin int, level float64) float64 {
	v := b.Seasonal(t, origin)
	if math.IsNaN(v) {
		return math.NaN()
	}
	return v * level
}

// LearnUplift learns every category's uplift on s from the events that
// ended before the series' last step. Occurrences that overlap an event
// of another category (unless it encloses them), or whose baseline is
// unknown, are left out.
func LearnUplift(s *Series, events []Event, o UpliftOptions) map[string]*Uplift {
	o = o.withDefaults()
	b := NewBaseline(s, events, o)
	after := int(o.EffectAfter / s.Step)
	type occ struct {
		during, after []float64
	}
	byCat := map[string][]occ{}
	sorted := append([]Event(nil), events...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start.Before(sorted[j].Start) })
	for i, e := range sorted {
		from := int(e.Start.Sub(s.Start) / s.Step)
		to := int((e.End.Sub(s.Start) + s.Step - 1) / s.Step)
		if from <= 0 || to+after > s.Len() || to <= from {
			continue
		}
		// An event of another category that overlaps this one mixes the
		// two effects, so the occurrence is left out, unless that event
		// encloses it (on for the whole level window before it and past
		// its effect: a campaign of days around a sale), which the
		// level the sale starts from carries.
		overlap, enclosed := false, false
		for j, f := range sorted {
			if j == i || f.Category == e.Category || !f.Start.Before(e.End.Add(o.EffectAfter)) || !e.Start.Before(f.End.Add(o.EffectAfter)) {
				continue
			}
			if !f.Start.After(e.Start.Add(-time.Duration(o.LevelWindow)*s.Step)) && !f.End.Before(e.End.Add(o.EffectAfter)) {
				enclosed = true
				continue
			}
			overlap = true
			break
		}
		if overlap {
			continue
		}
		origin := from - 1
		level := b.Level(origin)
		if enclosed {
			level = b.LevelFor(origin, e)
		}
		ratio := func(i int) float64 {
			if i >= s.Len() || math.IsNaN(s.Values[i]) {
				return math.NaN()
			}
			base := b.At(s.Time(i), origin, level)
			if !(base > 0) {
				return math.NaN()
			}
			return s.Values[i] / base
		}
		var oc occ
		for i := from; i < to; i++ {
			oc.during = append(oc.during, ratio(i))
		}
		for i := to; i < to+after; i++ {
			oc.after = append(oc.after, ratio(i))
		}
		if knownCount(oc.during) == 0 {
			continue
		}
		byCat[e.Category] = append(byCat[e.Category], oc)
	}
	out := map[string]*Uplift{}
	for cat, occs := range byCat {
		u := &Uplift{Series: s.Name, Category: cat, Occurrences: len(occs), Step: s.Step}
		longest := 0
		for _, oc := range occs {
			longest = max(longest, len(oc.during))
			u.Peaks = append(u.Peaks, round3(medianOf(oc.during)))
		}
		col := func(get func(occ) []float64, k int) []float64 {
			var xs []float64
			for _, oc := range occs {
				v := get(oc)
				if len(v) == 0 {
					continue
				}
				x := v[min(k, len(v)-1)] // a shorter event held its last ratio
				if !math.IsNaN(x) {
					xs = append(xs, x)
				}
			}
			return xs
		}
		// How large each occurrence was: the median of its ratios while it
		// lasted (its plateau; a noisy minute does not move it). The
		// upper profile scales the median profile's excess over 1 by how
		// far the upper estimate of the sizes lies beyond their median:
		// on a quiet, bursty series the largest of a few ratios at each
		// step is mostly noise, and an upper profile taken step by step
		// provisions for that noise.
		mags := append([]float64(nil), u.Peaks...)
		grow := func(m float64) float64 { return m * o.SingleMargin }
		if len(mags) > 1 {
			med := medianOf(mags)
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, x := range mags {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			top := math.Max(quantileOf(mags, o.Upper), hi+(hi-lo)*upperStretch(len(mags), o.Upper))
			grow = func(m float64) float64 {
				if med > 1.05 && m > 1 {
					return 1 + (m-1)*(top-1)/(med-1)
				}
				if med > 0 {
					return m * top / med
				}
				return m
			}
		}
		profile := func(get func(occ) []float64, n int) (mid, up []float64) {
			for k := 0; k < n; k++ {
				xs := col(get, k)
				if len(xs) == 0 {
					mid = append(mid, 1)
					continue
				}
				mid = append(mid, medianOf(xs))
			}
			mid = runningMean(runningMedian(mid, o.Slack), o.Slack)
			for _, m := range mid {
				up = append(up, math.Max(grow(m), m))
			}
			return widen(mid, o.Slack), widen(up, o.Slack)
		}
		u.During, u.DuringUpper = profile(func(oc occ) []float64 { return oc.during }, longest)
		u.After, u.AfterUpper = profile(func(oc occ) []float64 { return oc.after }, after)
		for _, xs := range [][]float64{u.During, u.DuringUpper, u.After, u.AfterUpper} {
			for i := range xs {
				xs[i] = round3(xs[i])
			}
		}
		out[cat] = u
	}
	return out
}

// EventLoad is the expected load path of an event [start, end) on s seen
// from origin (the last known step), step by step from start to the end
// of its effect: baseline × median ratio and baseline × upper ratio. It is
// empty when the baseline is unknown.
func EventLoad(b *Baseline, u *Uplift, start, end time.Time, origin int, level float64) (at []time.Time, mid, upper []float64) {
	if u == nil || len(u.During) == 0 {
		return nil, nil, nil
	}
	stop := end.Add(time.Duration(len(u.After)) * u.Step)
	for t := start; t.Before(stop); t = t.Add(u.Step) {
		base := b.At(t, origin, level)
		r, ru, ok := u.Ratio(start, end, t)
		if !ok || math.IsNaN(base) {
			continue
		}
		at = append(at, t)
		mid = append(mid, base*r)
		upper = append(upper, base*ru)
	}
	return at, mid, upper
}

// upperStretch is t of the Upper option's bound for n ≥ 2 sizes: under
// a uniform spread the next size exceeds max + t·(max − min) with
// probability 1 / ((n+1)(1+t)^(n−1)).
func upperStretch(n int, level float64) float64 {
	if n < 2 {
		return 0
	}
	t := math.Pow(float64(n+1)*(1-level), -1/float64(n-1)) - 1
	return math.Max(0, math.Min(1, t))
}

// runningMedian is the median over ±k steps (NaN-free input): it keeps
// an event's steps (a rise within a minute stays a rise) and drops the
// single noisy minutes.
func runningMedian(xs []float64, k int) []float64 {
	out := make([]float64, len(xs))
	w := make([]float64, 0, 2*k+1)
	for i := range xs {
		w = append(w[:0], xs[max(0, i-k):min(len(xs), i+k+1)]...)
		out[i] = medianOf(w)
	}
	return out
}

// runningMean is the mean over ±k steps.
func runningMean(xs []float64, k int) []float64 {
	out := make([]float64, len(xs))
	for i := range xs {
		var sum float64
		lo, hi := max(0, i-k), min(len(xs), i+k+1)
		for _, x := range xs[lo:hi] {
			sum += x
		}
		out[i] = sum / float64(hi-lo)
	}
	return out
}

// widen is a running maximum over ±k steps.
func widen(xs []float64, k int) []float64 {
	out := make([]float64, len(xs))
	for i := range xs {
		m := xs[i]
		for j := max(0, i-k); j <= min(len(xs)-1, i+k); j++ {
			m = math.Max(m, xs[j])
		}
		out[i] = m
	}
	return out
}

func knownCount(xs []float64) int {
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			n++
		}
	}
	return n
}

func medianOf(xs []float64) float64 { return quantileOf(xs, 0.5) }

// quantileOf is the linearly interpolated q-quantile of the known values
// (NaN when none).
func quantileOf(xs []float64, q float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	pos := q * float64(len(v)-1)
	i := int(pos)
	if i >= len(v)-1 {
		return v[len(v)-1]
	}
	return v[i] + (pos-float64(i))*(v[i+1]-v[i])
}

func round3(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || x == 0 {
		return x
	}
	p := math.Pow(10, 3-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// CategoryNames lists the categories of uplifts, sorted.
func CategoryNames(m map[string]*Uplift) string {
	var names []string
	for c := range m {
		names = append(names, c)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
