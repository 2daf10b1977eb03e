package forecast

import (
	"errors"
	"fmt"
	"math"
	"sort"
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

// WithHorizons returns o with the horizons set (in steps).
func (o Options) WithHorizons(h ...int) Options {
	o.Horizons = h
	return o
}
