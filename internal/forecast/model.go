package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Member names, in the order of the ensemble's weights.
const (
	SeasonalNaive = "seasonal_naive"
	Smoothing     = "ets"
	Boosted       = "gbdt"
	Recurrent     = "lstm"
	Ensemble      = "ensemble"
)

// Members are the base models of the stacking ensemble.
var Members = []string{SeasonalNaive, Smoothing, Boosted, Recurrent}

// Options are every knob of the forecaster. The zero value of a field
// means its default; the defaults are the same for every series.
type Options struct {
	// Horizons are the forecast horizons in steps (each is evaluated over
	// leads 1..H).
	Horizons []int `json:"horizons"`
	// Seed makes every random choice reproducible.
	Seed uint64 `json:"seed"`
	// Holidays names the holiday calendar (see HolidaysByName).
	Holidays string `json:"holidays"`
	// ValidFrac and TestFrac are the shares of each series used for
	// tuning/stacking and for the held-out test (defaults 0.15, 0.2).
	ValidFrac float64 `json:"valid_frac"`
	TestFrac  float64 `json:"test_frac"`
	// MaxOrigins bounds the forecast origins per series and segment in a
	// rolling-origin evaluation (evenly spaced; default 300).
	MaxOrigins int `json:"max_origins"`
	// MaxEvalRows bounds the (origin, lead) forecasts per segment over
	// all series (default 150,000): with many series each gets fewer
	// origins (never fewer than 12), so evaluation time stays flat.
	MaxEvalRows int `json:"max_eval_rows"`
	// MaxTrainRows bounds the (origin, lead) rows the trees learn from,
	// over all series (default 60,000).
	MaxTrainRows int `json:"max_train_rows"`
	// UpperAlpha is the level of the upper band (default 0.9).
	UpperAlpha float64 `json:"upper_alpha"`
	// GBDT and LSTM are the models' hyperparameters (a Tuner fills them).
	GBDT GBDTParams `json:"gbdt"`
	LSTM LSTMParams `json:"lstm"`
	// NoLSTM drops the recurrent member (faster; the ensemble keeps the
	// others).
	NoLSTM bool `json:"no_lstm,omitempty"`
	// NoRefit keeps the members trained on the training window only
	// (by default they are refitted on training + validation data once
	// the ensemble is fitted).
	NoRefit bool `json:"no_refit,omitempty"`
	// Threads is the parallelism of training (default 2).
	Threads int `json:"threads"`
}

func (o Options) withDefaults() Options {
	if o.ValidFrac <= 0 {
		o.ValidFrac = 0.15
	}
	if o.TestFrac <= 0 {
		o.TestFrac = 0.2
	}
	if o.MaxOrigins <= 0 {
		o.MaxOrigins = 300
	}
	if o.MaxEvalRows <= 0 {
		o.MaxEvalRows = 150_000
	}
	if o.MaxTrainRows <= 0 {
		o.MaxTrainRows = 60000
	}
	if o.UpperAlpha <= 0 || o.UpperAlpha >= 1 {
		o.UpperAlpha = 0.9
	}
	if o.Threads <= 0 {
		o.Threads = 2
	}
	if o.Holidays == "" {
		o.Holidays = "us"
	}
	return o
}

func (o Options) hmax() int {
	h := 0
	for _, v := range o.Horizons {
		h = max(h, v)
	}
	return h
}

// Transform is the learned preprocessing of a set of series (TFX's
// transform graph): one spec per series and the shared feature layout.
type Transform struct {
	Options Options       `json:"options"`
	Layout  Layout        `json:"layout"`
	Specs   []*SeriesSpec `json:"specs"`
	Hmax    int           `json:"hmax"`
}

// minOrigins is the fewest forecast origins a segment must offer.
const minOrigins = 10

// Splits returns the train, valid and test boundaries for a series of n
// steps, and an error when a horizon of h steps does not fit.
func Splits(n, h int, o Options) (trainEnd, validEnd int, err error) {
	o = o.withDefaults()
	test := int(math.Round(o.TestFrac * float64(n)))
	valid := int(math.Round(o.ValidFrac * float64(n)))
	trainEnd, validEnd = n-test-valid, n-test
	switch {
	case test < h+minOrigins || valid < h+minOrigins:
		return 0, 0, fmt.Errorf("a %d-step horizon needs a test and a validation window of at least %d steps each; the series has %d steps (test %d, validation %d)",
			h, h+minOrigins, n, test, valid)
	case trainEnd < max(3*h, 50):
		return 0, 0, fmt.Errorf("a %d-step horizon needs at least %d training steps; the series leaves %d", h, max(3*h, 50), trainEnd)
	}
	return trainEnd, validEnd, nil
}

// Prepare learns the Transform of inputs: splits, seasonal periods,
// scales, profiles and exogenous parameters, on each series' training
// window only.
func Prepare(inputs []Input, o Options) (*Transform, error) {
	o = o.withDefaults()
	if len(inputs) == 0 {
		return nil, errors.New("forecast: no series")
	}
	if len(o.Horizons) == 0 {
		return nil, errors.New("forecast: no horizons")
	}
	for _, h := range o.Horizons {
		if h <= 0 {
			return nil, fmt.Errorf("forecast: horizon %d steps: must be > 0", h)
		}
	}
	if _, err := HolidaysByName(o.Holidays); err != nil {
		return nil, err
	}
	tr := &Transform{Options: o, Hmax: o.hmax()}
	step := inputs[0].Series.Step
	cats := map[string]bool{}
	for _, in := range inputs {
		if in.Series == nil {
			return nil, errors.New("forecast: an input without a series")
		}
		if err := in.Series.Validate(); err != nil {
			return nil, err
		}
		if in.Series.Step != step {
			return nil, fmt.Errorf("forecast: series %q has step %v, %q has %v; one model needs one step (resample first)",
				in.Series.Name, in.Series.Step, inputs[0].Series.Name, step)
		}
		for _, c := range newEventIndexCats(in.Events) {
			cats[c] = true
		}
		if x := in.Exo; x != nil {
			tr.Layout.Upstream = tr.Layout.Upstream || len(x.Upstream) > 0
			tr.Layout.Tx = tr.Layout.Tx || x.Transactions != nil
			if len(x.Funnel) >= 2 {
				tr.Layout.Funnel = max(tr.Layout.Funnel, min(2, len(x.Funnel)-1))
			}
			tr.Layout.Incidents = tr.Layout.Incidents || x.Incidents != nil
			tr.Layout.Changes = tr.Layout.Changes || len(x.Changes) > 0
		}
	}
	for c := range cats {
		tr.Layout.EventCats = append(tr.Layout.EventCats, c)
	}
	sort.Strings(tr.Layout.EventCats)
	if len(tr.Layout.EventCats) > maxEventCategories {
		tr.Layout.EventCats = tr.Layout.EventCats[:maxEventCategories]
	}
	for _, in := range inputs {
		te, ve, err := Splits(in.Series.Len(), tr.Hmax, o)
		if err != nil {
			return nil, fmt.Errorf("series %q: %w", in.Series.Name, err)
		}
		sp, err := newSpec(in, te, ve, &tr.Layout)
		if err != nil {
			return nil, err
		}
		tr.Specs = append(tr.Specs, sp)
	}
	return tr, nil
}

// newEventIndexCats returns the categories an event list contributes
// (folded like the index does).
func newEventIndexCats(ev []Event) []string {
	if ix := newEventIndex(ev); ix != nil {
		return ix.cats
	}
	return nil
}

// Model is a trained forecaster for a set of series: the transform, the
// base models and the ensemble. It is plain data (JSON) so a pushed model
// can be loaded and scored again.
type Model struct {
	Options  Options       `json:"options"`
	Layout   Layout        `json:"layout"`
	Features []string      `json:"features"`
	Specs    []*SeriesSpec `json:"specs"`
	Hmax     int           `json:"hmax"`
	ETS      []ETS         `json:"ets"`
	GBDT     *GBDT         `json:"gbdt"`
	Upper    *GBDT         `json:"upper"`
	LSTM     *LSTM         `json:"lstm,omitempty"`
	Members  []string      `json:"members"`
	// Weights are the stacking weights per horizon (same order as
	// Options.Horizons), over Members.
	Weights [][]float64 `json:"weights"`
	// Band is the conformal correction of the upper band per horizon, in
	// units of the series scale (Romano et al. 2019, conformalized
	// quantile regression, one-sided).
	Band []float64 `json:"band"`
}

// spec returns the spec of the named series.
func (m *Model) spec(name string) (*SeriesSpec, int) {
	for i, s := range m.Specs {
		if s.Name == name {
			return s, i
		}
	}
	return nil, -1
}

func (m *Model) holidays() Holidays {
	h, err := HolidaysByName(m.Options.Holidays)
	if err != nil {
		return noHolidays{}
	}
	return h
}

// sampler draws (series, origin, lead) rows.
type rowRef struct {
	s, t, h int32
}

// trainRows samples rows with origin in [lo, hi] and target < limit,
// quota per series.
func trainRows(bs []*builder, quota int, lo, hi func(*SeriesSpec) int, limit func(*SeriesSpec) int, hmax int, seed, stream uint64) []rowRef {
	var out []rowRef
	for si, b := range bs {
		rng := newRand(seed, stream+uint64(si))
		a, z, lim := lo(b.sp), hi(b.sp), limit(b.sp)
		if z < a {
			continue
		}
		if (z-a+1)*hmax <= quota {
			// A short series: every pair once, rather than a sample
			// full of repeats.
			for t := a; t <= z; t++ {
				for h := 1; h <= hmax; h++ {
					if t+h < lim && !math.IsNaN(b.y[t+h]) {
						out = append(out, rowRef{int32(si), int32(t), int32(h)})
					}
				}
			}
			continue
		}
		for k := 0; k < quota; k++ {
			t := a + rng.IntN(z-a+1)
			h := 1 + rng.IntN(hmax)
			if t+h >= lim || math.IsNaN(b.y[t+h]) {
				continue
			}
			out = append(out, rowRef{int32(si), int32(t), int32(h)})
		}
	}
	return out
}

// matrix builds the feature matrix, targets and references of rows.
func matrix(bs []*builder, rows []rowRef, nf int) (*Matrix, []float64, []float64) {
	x := &Matrix{Rows: len(rows), Cols: nf, X: make([]float64, len(rows)*nf)}
	y := make([]float64, len(rows))
	ref := make([]float64, len(rows))
	for i, r := range rows {
		b := bs[r.s]
		ref[i] = b.row(int(r.t), int(r.h), x.Row(i))
		y[i] = (b.y[r.t+r.h] - ref[i]) / b.sp.Scale
	}
	return x, y, ref
}

// lstmSet serves LSTM windows for (series, origin) pairs; targets at or
// past limit are masked.
type lstmSet struct {
	bs    []*builder
	refs  []rowRef
	win   int
	out   int
	limit []int
}

func (d *lstmSet) Len() int { return len(d.refs) }

func (d *lstmSet) Sample(i int, xs, y []float64) {
	r := d.refs[i]
	b := d.bs[r.s]
	t := int(r.t)
	b.seq(t, d.win, xs)
	anom := b.anomaly(t)
	for h := 1; h <= d.out; h++ {
		j := t + h
		if j >= d.limit[r.s] || math.IsNaN(b.y[j]) {
			y[h-1] = math.NaN()
			continue
		}
		y[h-1] = clamp((b.y[j]-b.prof[j]-anom)/b.sp.Scale, -20, 20)
	}
}

// originRange returns evenly spaced origins t in [lo, hi], at most k.
func originRange(lo, hi, k int) []int {
	if hi < lo {
		return nil
	}
	n := hi - lo + 1
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = lo + i
		}
		return out
	}
	out := make([]int, k)
	for i := range out {
		out[i] = lo + int(int64(i)*int64(n-1)/int64(k-1))
	}
	return out
}

// Segment selects the origins of a rolling-origin evaluation.
type Segment int

// Segments of a series.
const (
	Valid Segment = iota
	Test
)

// originsPerSeries is the origin budget of one series in a segment.
func (m *Model) originsPerSeries() int {
	o := m.Options
	n := max(1, len(m.Specs))
	return max(12, min(o.MaxOrigins, o.MaxEvalRows/(n*max(m.Hmax, 1))))
}

// origins returns the evaluation origins of a segment: every target of
// every origin lies in the segment.
func (sp *SeriesSpec) origins(seg Segment, h, k int) []int {
	switch seg {
	case Valid:
		return originRange(sp.TrainEnd-1, sp.ValidEnd-1-h, k)
	default:
		return originRange(sp.ValidEnd-1, sp.N-1-h, k)
	}
}

// Train fits every member on the training windows, then the ensemble
// weights and the band on the validation windows. GBDT, its upper-band
// twin and the LSTM train concurrently; each is deterministic, so the
// result does not depend on scheduling.
func Train(ctx context.Context, tr *Transform, inputs []Input) (*Model, error) {
	o := tr.Options
	m := &Model{Options: o, Layout: tr.Layout, Features: tr.Layout.Names(), Specs: tr.Specs, Hmax: tr.Hmax}
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	if err := m.fitMembers(ctx, bs, trainEnd, true); err != nil {
		return nil, err
	}
	m.Members = append([]string(nil), Members...)
	if m.LSTM == nil {
		m.Members = m.Members[:3]
	}
	m.fitEnsemble(bs)
	if !o.NoRefit {
		// Stacking with refit: the weights and band come from members
		// trained before the validation window; the members are then
		// refitted on training + validation data with the same
		// hyperparameters, so the test and any pushed forecast use the
		// most recent history (as Wolpert's scheme refits the level-0
		// models on all data). The upper-band GBDT stays the one the
		// band was calibrated with.
		if err := m.fitMembers(ctx, bs, validEnd, false); err != nil {
			return nil, err
		}
	}
	return m, ctx.Err()
}

func trainEnd(sp *SeriesSpec) int { return sp.TrainEnd }
func validEnd(sp *SeriesSpec) int { return sp.ValidEnd }

// fitMembers trains ETS, the GBDT (and, when upper is set, its
// quantile twin for the band) and the LSTM on the steps before end(spec)
// of each series, concurrently.
func (m *Model) fitMembers(ctx context.Context, bs []*builder, end func(*SeriesSpec) int, upper bool) error {
	o := m.Options
	x, y, vx, vy := gbdtData(bs, o, m.Hmax, end)
	if x.Rows < 50 {
		return fmt.Errorf("forecast: only %d training rows; the series are too short or mostly gaps", x.Rows)
	}
	ets := make([]ETS, len(m.Specs))
	var wg sync.WaitGroup
	var gerr, uerr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, b := range bs {
			per := b.sp.Period
			if per > b.sp.Day && b.sp.Day > 0 {
				per = b.sp.Day // a weekly season is too long to initialise well
			}
			_, mi := m.spec(b.sp.Name)
			ets[mi] = fitETS(b.y, end(b.sp), per)
		}
	}()
	go func() {
		defer wg.Done()
		p := o.GBDT
		p.Threads = 1
		m.GBDT, gerr = TrainGBDT(ctx, x, y, vx, vy, p, o.Seed)
	}()
	if upper {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := o.GBDT
			p.Threads = 1
			p.Loss, p.Alpha = "quantile", o.UpperAlpha
			m.Upper, uerr = TrainGBDT(ctx, x, y, vx, vy, p, o.Seed+1)
		}()
	}
	if !o.NoLSTM {
		wg.Add(1)
		go func() {
			defer wg.Done()
			net := trainLSTMFor(ctx, bs, o, m.Hmax, end)
			for _, w := range net.W {
				if math.IsNaN(w) || math.IsInf(w, 0) {
					return // diverged: keep the previous network, if any
				}
			}
			m.LSTM = net
		}()
	}
	wg.Wait()
	m.ETS = ets
	if gerr != nil {
		return gerr
	}
	return uerr
}

// gbdtData samples the trees' training rows (targets before the inner
// holdout) and early-stopping rows (the last part of the training window).
func gbdtData(bs []*builder, o Options, hmax int, end func(*SeriesSpec) int) (x *Matrix, y []float64, vx *Matrix, vy []float64) {
	nf := bs[0].nf
	quota := max(200, o.MaxTrainRows/len(bs))
	inner := func(sp *SeriesSpec) int { return innerCut(end(sp), hmax) }
	rows := trainRows(bs, quota, func(*SeriesSpec) int { return 0 }, func(sp *SeriesSpec) int { return inner(sp) - 2 },
		inner, hmax, o.Seed, 100)
	hold := trainRows(bs, max(100, quota/4), inner, func(sp *SeriesSpec) int { return end(sp) - 2 },
		end, hmax, o.Seed, 10_000)
	x, y, _ = matrix(bs, rows, nf)
	vx, vy, _ = matrix(bs, hold, nf)
	return x, y, vx, vy
}

// innerCut is where the early-stopping holdout of a fit on [0, end)
// begins: its last 15 %, and room for a horizon.
func innerCut(end, hmax int) int { return end - max(hmax+minOrigins, int(0.15*float64(end))) }

func trainLSTMFor(ctx context.Context, bs []*builder, o Options, hmax int, end func(*SeriesSpec) int) *LSTM {
	p := o.LSTM.withDefaults()
	p.Threads = 1
	var train, hold []rowRef
	var limTrain, limHold []int
	for si, b := range bs {
		sp := b.sp
		e := end(sp)
		inner := innerCut(e, hmax)
		for t := p.Window; t < inner-1; t++ {
			train = append(train, rowRef{s: int32(si), t: int32(t)})
		}
		for _, t := range originRange(inner, e-2, max(4, 512/len(bs))) {
			hold = append(hold, rowRef{s: int32(si), t: int32(t)})
		}
		limTrain = append(limTrain, inner)
		limHold = append(limHold, e)
	}
	net := NewLSTM(lstmInputs, p.Hidden, hmax, o.Seed+2)
	trainLSTM(ctx, net, p,
		&lstmSet{bs: bs, refs: train, win: p.Window, out: hmax, limit: limTrain},
		&lstmSet{bs: bs, refs: hold, win: p.Window, out: hmax, limit: limHold}, o.Seed+3)
	return net
}

// builders makes one feature builder per input, matched to the model's
// specs by series name.
func (m *Model) builders(inputs []Input) ([]*builder, error) {
	hol := m.holidays()
	bs := make([]*builder, len(inputs))
	for i, in := range inputs {
		sp, _ := m.spec(in.Series.Name)
		if sp == nil {
			return nil, fmt.Errorf("forecast: the model knows no series %q", in.Series.Name)
		}
		if in.Series.Step != sp.Step {
			return nil, fmt.Errorf("forecast: series %q has step %v, the model was trained at %v", in.Series.Name, in.Series.Step, sp.Step)
		}
		// A model scores newer data of the same series: re-anchor the
		// spec's profile slot to this input's start.
		s := *sp
		if !in.Series.Start.Equal(sp.Start) {
			d := in.Series.Start.Sub(sp.Start)
			if d%sp.Step != 0 {
				return nil, fmt.Errorf("forecast: series %q starts off the model's grid", in.Series.Name)
			}
			P := len(sp.Profile)
			s.ProfileSlot = ((sp.ProfileSlot+int(d/sp.Step))%P + P) % P
			s.Start = in.Series.Start
		}
		s.N = in.Series.Len()
		b, err := newBuilder(&s, &m.Layout, in, hol, m.Hmax)
		if err != nil {
			return nil, err
		}
		bs[i] = b
	}
	return bs, nil
}

// memberPreds are the members' forecasts for a list of origins: p[member]
// [origin*Hmax + lead-1], in the series' unit; NaN where a member cannot
// forecast.
type memberPreds struct {
	counts  bool // the series holds counts (see SeriesSpec.Counts)
	origins []int
	p       [][]float64
	upperQ  []float64 // GBDT quantile minus GBDT point, ≥ 0
}

// predict computes every member's forecast from each origin.
func (m *Model) predict(b *builder, ets ETS, origins []int) *memberPreds {
	return m.predictLeads(b, ets, origins, 1, m.Hmax)
}

// predictLeads computes the forecasts for leads [h0, h1] only (others
// stay zero).
func (m *Model) predictLeads(b *builder, ets ETS, origins []int, h0, h1 int) *memberPreds {
	H := m.Hmax
	mp := &memberPreds{counts: b.sp.Counts, origins: origins, p: make([][]float64, len(m.Members)), upperQ: make([]float64, len(origins)*H)}
	for k := range mp.p {
		mp.p[k] = make([]float64, len(origins)*H)
	}
	_, st := ets.filter(b.y, 0, true)
	row := make([]float64, b.nf)
	var win []float64
	if m.LSTM != nil {
		win = make([]float64, m.Options.LSTM.withDefaults().Window*lstmInputs)
	}
	var cache *lstmCache
	for oi, t := range origins {
		anom := b.anomaly(t)
		var lout []float64
		if m.LSTM != nil {
			w := len(win) / lstmInputs
			if cache == nil {
				cache = m.LSTM.newCache(w)
			}
			b.seq(t, w, win)
			lout = m.LSTM.forward(win, w, cache)
		}
		for h := h0; h <= h1; h++ {
			i := oi*H + h - 1
			ref := b.row(t, h, row)
			g := m.GBDT.Predict(row)
			for k, name := range m.Members {
				var v float64
				switch name {
				case SeasonalNaive:
					v = seasonalNaive(b.y, t, h, b.sp.Period)
				case Smoothing:
					v = st.forecast(t, h)
				case Boosted:
					v = ref + b.sp.Scale*g
				case Recurrent:
					v = b.prof[t+h] + anom + b.sp.Scale*lout[h-1]
				}
				v = math.Max(0, v)
				if mp.counts && v < math.Ln2 {
					v = 0 // see ensemble: the count median
				}
				mp.p[k][i] = v
			}
			if m.Upper != nil {
				mp.upperQ[i] = b.sp.Scale * math.Max(0, m.Upper.Predict(row)-g)
			}
		}
	}
	return mp
}

// ensemble combines member forecasts with horizon hi's weights; NaN
// members are replaced by the seasonal-naive forecast.
func (m *Model) ensemble(mp *memberPreds, hi, i int) float64 {
	w := m.Weights[hi]
	var s float64
	for k := range m.Members {
		v := mp.p[k][i]
		if math.IsNaN(v) {
			v = mp.p[0][i]
		}
		s += w[k] * v
	}
	// Count data: below ln 2 the median of a Poisson count with this
	// mean is 0, and the median is what minimises absolute error; it
	// also keeps sMAPE from scoring 200% for every tiny non-zero forecast
	// of an empty step.
	if mp.counts && s < math.Ln2 {
		return 0
	}
	return s
}

// fitEnsemble fits the stacking weights and the band per horizon on the
// validation windows of every series (errors scaled by each series'
// scale, so large series do not dominate).
func (m *Model) fitEnsemble(bs []*builder) {
	o := m.Options
	type cached struct {
		b  *builder
		mp *memberPreds
	}
	var cs []cached
	for _, b := range bs {
		_, mi := m.spec(b.sp.Name)
		origins := b.sp.origins(Valid, m.Hmax, m.originsPerSeries())
		cs = append(cs, cached{b, m.predict(b, m.ETS[mi], origins)})
	}
	m.Weights = make([][]float64, len(o.Horizons))
	m.Band = make([]float64, len(o.Horizons))
	for hi, H := range o.Horizons {
		var P [][]float64
		var y []float64
		for _, c := range cs {
			for oi, t := range c.mp.origins {
				for h := 1; h <= H; h++ {
					i := oi*m.Hmax + h - 1
					r := make([]float64, len(m.Members))
					for k := range m.Members {
						r[k] = c.mp.p[k][i] / c.b.sp.Scale
					}
					P = append(P, r)
					y = append(y, c.b.y[t+h]/c.b.sp.Scale)
				}
			}
		}
		m.Weights[hi] = StackWeights(P, y)
		var scores []float64
		for _, c := range cs {
			for oi, t := range c.mp.origins {
				for h := 1; h <= H; h++ {
					i := oi*m.Hmax + h - 1
					yv := c.b.y[t+h]
					if math.IsNaN(yv) {
						continue
					}
					up := m.ensemble(c.mp, hi, i) + c.mp.upperQ[i]
					scores = append(scores, (yv-up)/c.b.sp.Scale)
				}
			}
		}
		if len(scores) > 0 {
			// The finite-sample quantile ⌈(n+1)α⌉/n of split conformal
			// prediction (Lei et al. 2018).
			n := float64(len(scores))
			q := math.Min(1, math.Ceil((n+1)*o.UpperAlpha)/n)
			m.Band[hi] = quantile(scores, q)
		}
	}
}

// SeriesEval is the rolling-origin evaluation of one series.
type SeriesEval struct {
	Series string `json:"series"`
	// Horizons holds per horizon (same order as Options.Horizons) the
	// metrics of every member and the ensemble.
	Horizons []HorizonEval `json:"horizons"`
}

// HorizonEval holds the metrics of each model at one horizon.
type HorizonEval struct {
	Steps   int                `json:"steps"`
	Origins int                `json:"origins"`
	Models  map[string]Metrics `json:"models"`
	Weights map[string]float64 `json:"weights"`
}

// Evaluate scores the model on a segment of each input by rolling-origin
// evaluation: from every origin (at most MaxOrigins, evenly spaced) every
// model forecasts leads 1..Hmax, scored per horizon over leads 1..H.
func (m *Model) Evaluate(inputs []Input, seg Segment) ([]SeriesEval, error) {
	return m.evaluate(inputs, func(b *builder) []int { return b.sp.origins(seg, m.Hmax, m.originsPerSeries()) })
}

// Window is a time range [From, To) whose steps are forecast targets.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// TestWindow is the held-out test range of a series of the model.
func (m *Model) TestWindow(series string) (Window, bool) {
	sp, _ := m.spec(series)
	if sp == nil {
		return Window{}, false
	}
	return Window{From: sp.Start.Add(time.Duration(sp.ValidEnd) * sp.Step), To: sp.Start.Add(time.Duration(sp.N) * sp.Step)}, true
}

// EvaluateWindows scores the model like Evaluate, on the targets inside
// each series' window, so two models (a candidate and the pushed one)
// are compared on exactly the same forecasts.
func (m *Model) EvaluateWindows(inputs []Input, windows map[string]Window) ([]SeriesEval, error) {
	return m.evaluate(inputs, func(b *builder) []int {
		w, ok := windows[b.sp.Name]
		if !ok {
			return nil
		}
		a := int(math.Ceil(float64(w.From.Sub(b.sp.Start)) / float64(b.sp.Step)))
		z := int(w.To.Sub(b.sp.Start) / b.sp.Step)
		z = min(z, len(b.y))
		return originRange(max(a-1, 0), z-1-m.Hmax, m.originsPerSeries())
	})
}

func (m *Model) evaluate(inputs []Input, originsOf func(*builder) []int) ([]SeriesEval, error) {
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	out := make([]SeriesEval, len(bs))
	for si, b := range bs {
		_, mi := m.spec(b.sp.Name)
		origins := originsOf(b)
		mp := m.predict(b, m.ETS[mi], origins)
		se := SeriesEval{Series: b.sp.Name}
		for hi, H := range m.Options.Horizons {
			accs := make([]acc, len(m.Members)+1)
			for k := range accs {
				accs[k].scaleMASE = b.sp.MASEScale
			}
			for oi, t := range origins {
				for h := 1; h <= H; h++ {
					i := oi*m.Hmax + h - 1
					yv := b.y[t+h]
					for k := range m.Members {
						accs[k].add(yv, mp.p[k][i])
					}
					e := m.ensemble(mp, hi, i)
					accs[len(m.Members)].add(yv, e)
					accs[len(m.Members)].addUpper(yv, e+mp.upperQ[i]+m.Band[hi]*b.sp.Scale)
				}
			}
			he := HorizonEval{Steps: H, Origins: len(origins), Models: map[string]Metrics{}, Weights: map[string]float64{}}
			for k, name := range m.Members {
				he.Models[name] = accs[k].metrics()
				he.Weights[name] = m.Weights[hi][k]
			}
			he.Models[Ensemble] = accs[len(m.Members)].metrics()
			se.Horizons = append(se.Horizons, he)
		}
		out[si] = se
	}
	return out, nil
}

// Forecast is a pushed forecast of one series from its last step: per
// horizon the point forecast, the upper band and the features that drove
// it.
type Forecast struct {
	Series   string            `json:"series"`
	Origin   time.Time         `json:"origin"`
	Step     time.Duration     `json:"step"`
	Horizons []HorizonForecast `json:"horizons"`
}

// HorizonForecast is the forecast path over one horizon.
type HorizonForecast struct {
	Steps int       `json:"steps"`
	Times []string  `json:"times"`
	Point []float64 `json:"point"`
	Upper []float64 `json:"upper"`
	// Drivers are the features with the largest attributed effect on the
	// trees' forecast over the path (Saabas contributions), in the
	// series' unit.
	Drivers []Driver `json:"drivers"`
}

// Driver is one feature's attributed effect.
type Driver struct {
	Feature string  `json:"feature"`
	Effect  float64 `json:"effect"`
}

// Forecast forecasts every input from its last step (the origin is the
// last index whose value is known).
func (m *Model) Forecast(inputs []Input) ([]Forecast, error) {
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	var out []Forecast
	for si, b := range bs {
		_, mi := m.spec(b.sp.Name)
		t := len(b.y) - 1
		for t > 0 && math.IsNaN(b.y[t]) {
			t--
		}
		mp := m.predict(b, m.ETS[mi], []int{t})
		f := Forecast{Series: b.sp.Name, Origin: inputs[si].Series.Time(t), Step: b.sp.Step}
		row := make([]float64, b.nf)
		contrib := make([]float64, b.nf)
		for hi, H := range m.Options.Horizons {
			hf := HorizonForecast{Steps: H}
			clear(contrib)
			for h := 1; h <= H; h++ {
				i := h - 1
				e := m.ensemble(mp, hi, i)
				hf.Times = append(hf.Times, inputs[si].Series.Time(t+h).Format(time.RFC3339))
				hf.Point = append(hf.Point, e)
				hf.Upper = append(hf.Upper, math.Max(e, e+mp.upperQ[i]+m.Band[hi]*b.sp.Scale))
				b.row(t, h, row)
				m.GBDT.Contributions(row, contrib)
			}
			idx := make([]int, b.nf)
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, c int) bool { return math.Abs(contrib[idx[a]]) > math.Abs(contrib[idx[c]]) })
			for _, i := range idx[:min(5, len(idx))] {
				hf.Drivers = append(hf.Drivers, Driver{Feature: m.Features[i], Effect: contrib[i] / float64(H) * b.sp.Scale})
			}
			f.Horizons = append(f.Horizons, hf)
		}
		out = append(out, f)
	}
	return out, nil
}

// PathAtLead returns, for each step in [from, to), the forecast made lead
// steps earlier by each model (members, then ensemble) using horizon hi's
// weights: the "actual vs forecast" line of a report.
func (m *Model) PathAtLead(in Input, hi, lead, from, to int) (actual []float64, preds map[string][]float64, err error) {
	bs, err := m.builders([]Input{in})
	if err != nil {
		return nil, nil, err
	}
	b := bs[0]
	_, mi := m.spec(b.sp.Name)
	var origins []int
	for j := from; j < to; j++ {
		if j-lead >= 0 {
			origins = append(origins, j-lead)
		}
	}
	mp := m.predictLeads(b, m.ETS[mi], origins, lead, lead)
	preds = map[string][]float64{}
	for _, t := range origins {
		actual = append(actual, b.y[t+lead])
	}
	for k, name := range m.Members {
		for oi := range origins {
			preds[name] = append(preds[name], mp.p[k][oi*m.Hmax+lead-1])
		}
	}
	for oi := range origins {
		i := oi*m.Hmax + lead - 1
		e := m.ensemble(mp, hi, i)
		preds[Ensemble] = append(preds[Ensemble], e)
		preds["upper"] = append(preds["upper"], e+mp.upperQ[i]+m.Band[hi]*b.sp.Scale)
	}
	return actual, preds, nil
}

// WithHorizons returns o with the horizons set (in steps).
func (o Options) WithHorizons(h ...int) Options {
	o.Horizons = h
	return o
}
