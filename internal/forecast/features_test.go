package forecast

import (
	"math"
	"testing"
	"time"
)

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// TestFeaturesDoNotLookAhead: changing any value after the origin must not
// change the features or the reference of a forecast from that origin.
func TestFeaturesDoNotLookAhead(t *testing.T) {
	s := synth("leak", 21, 5*time.Minute, 80, 1)
	n := s.Len()
	up := synth("up", 21, 5*time.Minute, 40, 2)
	tx := synth("tx", 21, 5*time.Minute, 5, 3)
	f1, f2, f3 := synth("browse", 21, 5*time.Minute, 50, 4), synth("cart", 21, 5*time.Minute, 10, 5), synth("checkout", 21, 5*time.Minute, 3, 6)
	inc := synth("inc", 21, 5*time.Minute, 1, 7)
	at := func(d int, h int) time.Time {
		return s.Start.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour)
	}
	in := Input{Series: s,
		Events: []Event{{Start: at(17, 20), End: at(17, 22), Category: "premiere"}, {Start: at(19, 0), End: at(20, 0), Category: "sale"}},
		Exo: &Exogenous{Upstream: []*Series{up}, Transactions: tx, Funnel: []*Series{f1, f2, f3}, Incidents: inc,
			Changes: []Event{{Start: at(18, 2), End: at(18, 4), Category: "change"}}}}
	o := Options{Horizons: []int{6, 24}}.withDefaults()
	tr, err := Prepare([]Input{in}, o)
	if err != nil {
		t.Fatal(err)
	}
	lay := tr.Layout
	if !lay.Upstream || !lay.Tx || lay.Funnel != 2 || !lay.Incidents || !lay.Changes || len(lay.EventCats) != 2 {
		t.Fatalf("layout %+v", lay)
	}
	sp := tr.Specs[0]
	if sp.Fanout[0] <= 0 || len(sp.FunnelBasis) != 2 {
		t.Fatalf("exogenous parameters: fanout %v, basis %v", sp.Fanout, sp.FunnelBasis)
	}
	var dot float64
	for j := range sp.FunnelBasis[0] {
		dot += sp.FunnelBasis[0][j] * sp.FunnelBasis[1][j]
	}
	if math.Abs(dot) > 1e-9 {
		t.Errorf("SVD basis not orthogonal: %v", dot)
	}
	hol, _ := HolidaysByName("us")
	b1, err := newBuilder(sp, &lay, in, hol, 24)
	if err != nil {
		t.Fatal(err)
	}
	origin := sp.ValidEnd + 40
	// The future is rewritten: values and every exogenous series.
	mut := func(x *Series) *Series {
		c := *x
		c.Values = append(Values(nil), x.Values...)
		for i := origin + 1; i < n; i++ {
			c.Values[i] = c.Values[i]*3 + 17
		}
		return &c
	}
	in2 := in
	in2.Series = mut(s)
	in2.Exo = &Exogenous{Upstream: []*Series{mut(up)}, Transactions: mut(tx), Funnel: []*Series{mut(f1), mut(f2), mut(f3)},
		Incidents: mut(inc), Changes: in.Exo.Changes}
	b2, err := newBuilder(sp, &lay, in2, hol, 24)
	if err != nil {
		t.Fatal(err)
	}
	r1, r2 := make([]float64, b1.nf), make([]float64, b1.nf)
	names := lay.Names()
	for h := 1; h <= 24; h++ {
		ref1 := b1.row(origin, h, r1)
		ref2 := b2.row(origin, h, r2)
		if !sameFloat(ref1, ref2) {
			t.Fatalf("lead %d: the reference depends on the future", h)
		}
		for k := range r1 {
			if !sameFloat(r1[k], r2[k]) {
				t.Errorf("lead %d: feature %s depends on the future (%v vs %v)", h, names[k], r1[k], r2[k])
			}
		}
	}
	w1, w2 := make([]float64, 12*lstmInputs), make([]float64, 12*lstmInputs)
	b1.seq(origin, 12, w1)
	b2.seq(origin, 12, w2)
	for k := range w1 {
		if w1[k] != w2[k] {
			t.Fatal("the LSTM window depends on the future")
		}
	}
	// The exogenous columns are filled, not missing.
	row := make([]float64, b1.nf)
	b1.row(origin, 6, row)
	for k, name := range names {
		if k >= len(baseFeatures) && math.IsNaN(row[k]) {
			t.Errorf("feature %s is missing although its input is present", name)
		}
	}
	// Absent inputs: the same columns are missing values.
	b3, err := newBuilder(sp, &lay, Input{Series: s}, hol, 24)
	if err != nil {
		t.Fatal(err)
	}
	b3.row(origin, 6, row)
	for k, name := range names {
		if k >= len(baseFeatures)+3*len(lay.EventCats) && !math.IsNaN(row[k]) && name != "change_in" && name != "change_until_h" {
			t.Errorf("feature %s = %v without its input; want missing", name, row[k])
		}
	}
}

func TestSeasonalNaiveAndMASEScale(t *testing.T) {
	// A weekly pattern with a weekday/weekend difference: last week wins.
	s := synth("weekly", 28, time.Hour, 100, 9)
	day, week := periods(time.Hour)
	if day != 24 || week != 168 {
		t.Fatalf("periods %d %d", day, week)
	}
	if p := chooseSeasonalPeriod(s.Values, 21*24, day, week); p != week {
		t.Errorf("period %d, want the week", p)
	}
	if p := chooseSeasonalPeriod(s.Values, 5*24, day, week); p != day {
		t.Errorf("5 days of history: period %d, want the day", p)
	}
	if p := chooseSeasonalPeriod(s.Values, 30, day, week); p != 1 {
		t.Errorf("30 hours: period %d, want naive", p)
	}
	y := []float64{1, 2, 3, 1, 2, 5}
	if v := seasonalNaive(y, 5, 1, 3); v != 1 {
		t.Errorf("seasonal naive %v", v)
	}
	if got := inSampleMAE(y, 6, 3); got != 2.0/3 {
		t.Errorf("in-sample MAE %v", got)
	}
	a := acc{scaleMASE: 2}
	a.add(10, 8)
	a.add(0, 0)
	a.add(math.NaN(), 3)
	m := a.metrics()
	if m.N != 2 || m.MAE != 1 || m.MASE != 0.5 || math.Abs(m.SMAPE-200*2/18.0/2) > 1e-12 {
		t.Errorf("metrics %+v", m)
	}
}
