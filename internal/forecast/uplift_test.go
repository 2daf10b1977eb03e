package forecast

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// upliftSeries is 14 days of per-minute load with a daily cycle and events
// of category "sale" multiplying it by the given factors (rising over 2
// minutes), at varied times of day.
func upliftSeries(factors []float64, seed uint64) (*Series, []Event) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	n := 14 * 1440
	rng := rand.New(rand.NewPCG(seed, 7))
	var evs []Event
	for i, x := range factors {
		s := start.Add(time.Duration(1+2*i)*24*time.Hour + time.Duration(7+3*i%12)*time.Hour)
		evs = append(evs, Event{Start: s, End: s.Add(30 * time.Minute), Category: "sale"})
		_ = x
	}
	v := make([]float64, n)
	for i := range v {
		t := start.Add(time.Duration(i) * time.Minute)
		h := float64(t.Hour()) + float64(t.Minute())/60
		rate := 3000 * (1 + 0.5*math.Cos(2*math.Pi*(h-20)/24))
		for k, e := range evs {
			if !t.Before(e.Start) && t.Before(e.End) {
				rise := math.Min(1, float64(t.Sub(e.Start))/float64(2*time.Minute))
				rate *= 1 + (factors[k]-1)*rise
			}
		}
		v[i] = rate + math.Sqrt(rate)*rng.NormFloat64()
	}
	return &Series{Name: "catalog", Start: start, Step: time.Minute, Values: v}, evs
}

func TestLearnUpliftRecoversTheFactor(t *testing.T) {
	factors := []float64{6, 9, 7, 10, 8}
	s, evs := upliftSeries(factors, 1)
	ups := LearnUplift(s, evs, UpliftOptions{})
	u := ups["sale"]
	if u == nil {
		t.Fatalf("no uplift learned for sale: %v", ups)
	}
	if u.Occurrences != len(factors) {
		t.Errorf("occurrences %d, want %d", u.Occurrences, len(factors))
	}
	for i, p := range u.Peaks {
		if math.Abs(p-factors[i])/factors[i] > 0.08 {
			t.Errorf("peak %d: ×%.2f, want ×%.0f ±8%%", i, p, factors[i])
		}
	}
	// The upper profile is the largest past factor stretched by the 95%
	// prediction bound of five uniform sizes (10 + 0.35 × (10 − 6) ≈
	// 11.4), the median near their middle; both after the rise.
	if up := u.PeakUpper(); up < 10.8 || up > 12 {
		t.Errorf("upper peak ×%.2f, want ≈ ×11.4 (max + 0.35 × range)", up)
	}
	if mid := u.During[10]; mid < 7 || mid > 9 {
		t.Errorf("median ratio 10 minutes in ×%.2f, want about ×8", mid)
	}
	// After the events the load is back to the baseline.
	if a := u.AfterUpper[len(u.AfterUpper)-1]; a > 1.2 {
		t.Errorf("upper ratio at the end of the effect ×%.2f, want about 1", a)
	}
}

func TestEventLoadForAFutureEvent(t *testing.T) {
	s, evs := upliftSeries([]float64{8, 8, 8, 8}, 2)
	ups := LearnUplift(s, evs, UpliftOptions{})
	b := NewBaseline(s, evs, UpliftOptions{})
	origin := s.Len() - 1
	level := b.Level(origin)
	// An event tomorrow at 15:00, a time of day no past event had.
	start := s.End().Truncate(24 * time.Hour).Add(15 * time.Hour)
	at, mid, upper := EventLoad(b, ups["sale"], start, start.Add(time.Hour), origin, level)
	if len(at) == 0 {
		t.Fatal("no event load")
	}
	h := 15.5
	truth := 8 * 3000 * (1 + 0.5*math.Cos(2*math.Pi*(h-20)/24))
	k := 30 // 15:30
	if math.Abs(mid[k]-truth)/truth > 0.1 {
		t.Errorf("median load at 15:30 %.0f rps, want %.0f ±10%%", mid[k], truth)
	}
	if upper[k] < mid[k] {
		t.Errorf("upper %.0f below median %.0f", upper[k], mid[k])
	}
	// A longer event than any past one holds its last ratio.
	if r := mid[len(mid)-len(ups["sale"].After)-1] / b.At(at[len(mid)-len(ups["sale"].After)-1], origin, level); r < 7 {
		t.Errorf("ratio at the end of a longer event ×%.2f, want ≈ ×8", r)
	}
}

func TestBaselineLeavesEventsOut(t *testing.T) {
	s, evs := upliftSeries([]float64{10, 10, 10, 10, 10, 10}, 3)
	b := NewBaseline(s, evs, UpliftOptions{})
	origin := s.Len() - 1
	// The time of day of the first event, a day after the series.
	at := evs[0].Start.Add(10 * time.Minute)
	for at.Before(s.End()) {
		at = at.Add(24 * time.Hour)
	}
	h := float64(at.Hour()) + float64(at.Minute())/60
	want := 3000 * (1 + 0.5*math.Cos(2*math.Pi*(h-20)/24))
	if got := b.At(at, origin, 1); math.Abs(got-want)/want > 0.1 {
		t.Errorf("baseline %.0f, want %.0f (the events must not inflate it)", got, want)
	}
	// Without the events masked, the same day's event leaks in only via
	// the median, which resists it.
	if lv := b.Level(origin); math.Abs(lv-1) > 0.1 {
		t.Errorf("level %.3f, want ≈ 1", lv)
	}
}

func TestUpliftUnknownCategoryAndEmptyInput(t *testing.T) {
	s, _ := upliftSeries(nil, 4)
	if ups := LearnUplift(s, nil, UpliftOptions{}); len(ups) != 0 {
		t.Errorf("uplifts from no events: %v", ups)
	}
	var u *Uplift
	if _, _, ok := u.Ratio(s.Start, s.End(), s.Start); ok {
		t.Error("a nil uplift gave a ratio")
	}
	if u.String() == "" {
		t.Error("a nil uplift has no description")
	}
}

// TestUpliftUpperOnANoisyQuietSeries: on a quiet series (tens of
// requests a minute, bursty: each minute ±30%) the upper profile comes
// from how large the past events were, not from the noisiest minute of
// each: it covers the largest factor and stays near the bound of the sizes.
func TestUpliftUpperOnANoisyQuietSeries(t *testing.T) {
	factors := []float64{4.2, 5.1, 3.8, 4.6, 5.4, 4.4}
	for seed := uint64(1); seed <= 5; seed++ {
		s, evs := upliftSeries(factors, seed)
		rng := rand.New(rand.NewPCG(seed, 11))
		for i := range s.Values {
			s.Values[i] = s.Values[i] / 100 * math.Max(0.1, 1+0.3*rng.NormFloat64())
		}
		u := LearnUplift(s, evs, UpliftOptions{})["sale"]
		if u == nil {
			t.Fatal("no uplift learned")
		}
		hi := 5.4 + (5.4-3.8)/5
		if up := u.PeakUpper(); up < 5.4 || up > 1.5*hi {
			t.Errorf("seed %d: upper peak ×%.2f, want between the largest factor ×5.4 and ×%.2f (1.5 × max + spacing: the past sizes are themselves uncertain on such a series)", seed, up, 1.5*hi)
		}
		if mid := u.During[15]; mid < 3.8 || mid > 5.4 {
			t.Errorf("seed %d: median ratio mid-event ×%.2f, want within the factors", seed, mid)
		}
	}
}

// TestUpperStretchCoverage: the bound covers the next of n uniform draws
// with the asked probability (Monte Carlo, seeded), where the stretch is
// not clamped; with two or three draws it is clamped to the range.
func TestUpperStretchCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{4, 5, 6, 8, 12} {
		st := upperStretch(n, 0.95)
		miss := 0
		const trials = 40000
		for k := 0; k < trials; k++ {
			lo, hi := math.Inf(1), math.Inf(-1)
			for j := 0; j < n; j++ {
				x := rng.Float64()
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			if rng.Float64() > hi+st*(hi-lo) {
				miss++
			}
		}
		if p := float64(miss) / trials; math.Abs(p-0.05) > 0.006 {
			t.Errorf("n=%d stretch %.3f: the next draw exceeds the bound %.3f of the time, want 0.05", n, st, p)
		}
	}
	if st := upperStretch(2, 0.95); st != 1 {
		t.Errorf("two draws: stretch %v, want clamped to 1", st)
	}
}

func TestCheckEventConfidence(t *testing.T) {
	for _, c := range []struct {
		p  float64
		ok bool
	}{{0.5, true}, {0.8, true}, {0.95, true}, {0.999, true}, {0.49, false}, {0, false}, {1, false}, {-0.9, false}, {math.NaN(), false}, {math.Inf(1), false}} {
		if err := CheckEventConfidence(c.p); (err == nil) != c.ok {
			t.Errorf("CheckEventConfidence(%v) = %v, want ok %v", c.p, err, c.ok)
		}
	}
}

// The operator's event confidence moves the plan: a lower one plans for
// a smaller next event (here down to the largest seen, ×10), a higher one
// for a larger; the median is the same.
func TestUpliftUpperFollowsTheConfidence(t *testing.T) {
	s, evs := upliftSeries([]float64{6, 9, 7, 10, 8}, 1)
	var last float64
	for i, p := range []float64{0.8, 0.95, 0.99} {
		u := LearnUplift(s, evs, UpliftOptions{Upper: p})["sale"]
		up := u.PeakUpper()
		if i == 0 && (up < 9.5 || up > 10.8) {
			t.Errorf("confidence %v: upper ×%.2f, want about the largest past event, ×10", p, up)
		}
		if i > 0 && !(up > last*1.03) {
			t.Errorf("confidence %v: upper ×%.2f, not above ×%.2f at the lower confidence", p, up, last)
		}
		if mid := u.During[10]; mid < 7 || mid > 9 {
			t.Errorf("confidence %v: median ×%.2f, want about ×8 whatever the confidence", p, mid)
		}
		t.Logf("confidence %v: upper ×%.2f", p, up)
		last = up
	}
}

// A sale planned inside a campaign of days starts from the campaign's
// level: the whole level window is under the campaign, so Level alone
// knows nothing (1); LevelFor counts the campaign, which is still on when
// the sale starts, and leaves out an earlier spike and its tail.
func TestLevelForCountsAnEventStillOn(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	at := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, time.UTC) }
	campaign := Event{Start: at(12, 0, 0), End: at(14, 0, 0), Category: "campaign"}
	spike := Event{Start: at(13, 9, 0), End: at(13, 9, 20), Category: "flash"}
	inside := Event{Start: at(13, 10, 15), End: at(13, 10, 45), Category: "sale"}
	later := Event{Start: at(14, 2, 0), End: at(14, 2, 30), Category: "sale"}
	events := []Event{campaign, spike, inside, later}
	v := make([]float64, 14*1440)
	for i := range v {
		tm := start.Add(time.Duration(i) * time.Minute)
		h := float64(tm.Hour()) + float64(tm.Minute())/60
		rate := 3000 * (1 + 0.5*math.Cos(2*math.Pi*(h-20)/24))
		if !tm.Before(campaign.Start) && tm.Before(campaign.End) {
			rate *= 1.8
		}
		if !tm.Before(spike.Start) && tm.Before(spike.End.Add(20*time.Minute)) {
			rate *= 5
		}
		v[i] = rate
	}
	s := &Series{Name: "catalog", Start: start, Step: time.Minute, Values: v}
	b := NewBaseline(s, events, UpliftOptions{})
	origin := int(at(13, 10, 0).Sub(start) / time.Minute)
	if l := b.Level(origin); l != 1 {
		t.Errorf("Level inside the campaign: %.2f, want 1 (every step of the window left out)", l)
	}
	if l := b.LevelFor(origin, inside); math.Abs(l-1.8) > 0.05 {
		t.Errorf("LevelFor a sale inside the campaign: %.2f, want the campaign's ×1.8 (the spike's ×5 left out)", l)
	}
	if l := b.LevelFor(origin, later); l != b.Level(origin) {
		t.Errorf("LevelFor a sale after the campaign: %.2f, want Level's %.2f", l, b.Level(origin))
	}
	// Once the sale is under way its own minutes stay out of its level.
	under := int(at(13, 10, 30).Sub(start) / time.Minute)
	for i := int(at(13, 10, 15).Sub(start) / time.Minute); i <= under; i++ {
		v[i] *= 6
	}
	if l := b.LevelFor(under, inside); math.Abs(l-1.8) > 0.05 {
		t.Errorf("LevelFor the sale 15 minutes into it: %.2f, want the campaign's ×1.8 (its own ×6 left out)", l)
	}
	// Before the campaign nothing else is on: LevelFor is Level.
	before := int(at(11, 22, 0).Sub(start) / time.Minute)
	if l, want := b.LevelFor(before, inside), b.Level(before); l != want || math.Abs(l-1) > 0.05 {
		t.Errorf("LevelFor before the campaign: %.2f, want Level's %.2f, about 1", l, want)
	}
}

// Sales inside a campaign of days are learned against the level the
// campaign lifts the load to, so they count as the others do (they were
// left out as overlaps, and a short history then had half its sales).
// A sale overlapping an event that does not enclose it is still left out.
func TestLearnUpliftInsideACampaign(t *testing.T) {
	factors := []float64{6, 9, 7, 10, 8}
	s, evs := upliftSeries(factors, 1)
	campaigns := []Event{
		{Start: evs[1].Start.Add(-22 * time.Hour), End: evs[1].Start.Add(26 * time.Hour), Category: "campaign"},
		{Start: evs[3].Start.Add(-28 * time.Hour), End: evs[3].Start.Add(20 * time.Hour), Category: "campaign"},
	}
	for i := range s.Values {
		tm := s.Time(i)
		for _, c := range campaigns {
			if !tm.Before(c.Start) && tm.Before(c.End) {
				s.Values[i] *= 1.6
			}
		}
	}
	u := LearnUplift(s, append(append([]Event(nil), evs...), campaigns...), UpliftOptions{})["sale"]
	if u == nil || u.Occurrences != len(factors) {
		t.Fatalf("sales learned inside campaigns: %+v, want all %d", u, len(factors))
	}
	for i, p := range u.Peaks {
		if math.Abs(p-factors[i])/factors[i] > 0.08 {
			t.Errorf("peak %d: ×%.2f, want ×%.0f ±8%% (the campaign's ×1.6 not counted in)", i, p, factors[i])
		}
	}
	// A flash event of another category in the middle of the third sale
	// mixes the two: that sale is left out.
	mixed := append(append([]Event(nil), evs...), campaigns...)
	mixed = append(mixed, Event{Start: evs[2].Start.Add(10 * time.Minute), End: evs[2].Start.Add(20 * time.Minute), Category: "flash"})
	if u := LearnUplift(s, mixed, UpliftOptions{})["sale"]; u == nil || u.Occurrences != len(factors)-1 {
		t.Errorf("with an overlapping flash event: %+v, want %d occurrences", u, len(factors)-1)
	}
}
