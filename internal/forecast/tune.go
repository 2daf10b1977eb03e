package forecast

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"sync"

	"github.com/c-bata/goptuna"
)

// TuneOptions bound the hyperparameter search. The wall-clock budget is
// the caller's context deadline; the trial counts make a run reproducible
// when the budget is not what stops it.
type TuneOptions struct {
	// GBDTTrials and LSTMTrials are the trials per model (defaults 16
	// and 6); the first trial of each is the default configuration, so
	// tuning never returns something worse than the defaults on the
	// validation windows.
	GBDTTrials int `json:"gbdt_trials"`
	LSTMTrials int `json:"lstm_trials"`
	// StartupTrials are random before TPE models the results (default 5).
	StartupTrials int `json:"startup_trials"`
	// OnTrial, when set, is called after each trial. The two searches run
	// concurrently, but Tune calls OnTrial from one search at a time, so
	// it needs no locking of its own.
	OnTrial func(Trial) `json:"-"`
}

func (t TuneOptions) withDefaults() TuneOptions {
	if t.GBDTTrials <= 0 {
		t.GBDTTrials = 16
	}
	if t.LSTMTrials <= 0 {
		t.LSTMTrials = 6
	}
	if t.StartupTrials <= 0 {
		t.StartupTrials = 5
	}
	return t
}

// Trial is one evaluated configuration.
type Trial struct {
	Model  string             `json:"model"`
	Number int                `json:"number"`
	Params map[string]float64 `json:"params"`
	// Value is the validation MASE over every lead of the longest
	// horizon (lower is better); NaN for a failed trial.
	Value   float64 `json:"value"`
	State   string  `json:"state"`
	Seconds float64 `json:"seconds"`
}

// Tuning is the result of a search: the chosen hyperparameters and every
// trial.
type Tuning struct {
	GBDT   GBDTParams `json:"gbdt"`
	LSTM   LSTMParams `json:"lstm"`
	Trials []Trial    `json:"trials"`
	// StoppedByBudget is set when the deadline ended the search before
	// the trial counts; such a run is not reproducible bit for bit.
	StoppedByBudget bool `json:"stopped_by_budget"`
}

type trialJSON struct {
	Model   string             `json:"model"`
	Number  int                `json:"number"`
	Params  map[string]float64 `json:"params"`
	Value   *float64           `json:"value"`
	State   string             `json:"state"`
	Seconds float64            `json:"seconds"`
}

// MarshalJSON writes a failed trial's value as null.
func (t Trial) MarshalJSON() ([]byte, error) {
	return json.Marshal(trialJSON{t.Model, t.Number, t.Params, nullable(t.Value), t.State, t.Seconds})
}

// UnmarshalJSON reads a null value as NaN.
func (t *Trial) UnmarshalJSON(b []byte) error {
	var j trialJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*t = Trial{j.Model, j.Number, j.Params, fromNullable(j.Value), j.State, j.Seconds}
	return nil
}

// reporting wraps an objective to call OnTrial after each trial.
func reporting(to TuneOptions, model string, f goptuna.FuncObjective) goptuna.FuncObjective {
	if to.OnTrial == nil {
		return f
	}
	return func(t goptuna.Trial) (float64, error) {
		v, err := f(t)
		n, _ := t.Number()
		tr := Trial{Model: model, Number: n, Value: v, State: goptuna.TrialStateComplete.String()}
		if err != nil {
			tr.Value, tr.State = math.NaN(), goptuna.TrialStateFail.String()
		}
		to.OnTrial(tr)
		return v, err
	}
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...interface{}) {}
func (nopLogger) Info(string, ...interface{})  {}
func (nopLogger) Warn(string, ...interface{})  {}
func (nopLogger) Error(string, ...interface{}) {}

// Tune searches the GBDT and LSTM hyperparameters with the Tree-structured
// Parzen Estimator (Bergstra et al. 2011, "Algorithms for Hyper-Parameter
// Optimization", NeurIPS) in goptuna studies, with a seeded TPE sampler
// (see seededTPE for why not goptuna's own). Each trial trains on the
// training windows (early stopping on their tail) and is scored by MASE on
// the validation windows. The two searches run concurrently, each
// sequentially, until their trial counts or ctx's deadline.
func Tune(ctx context.Context, tr *Transform, inputs []Input, to TuneOptions) (*Tuning, error) {
	to = to.withDefaults()
	o := tr.Options
	m := &Model{Options: o, Layout: tr.Layout, Features: tr.Layout.Names(), Specs: tr.Specs, Hmax: tr.Hmax}
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	res := &Tuning{GBDT: o.GBDT.withDefaults(), LSTM: o.LSTM.withDefaults()}
	if report := to.OnTrial; report != nil {
		var reportMu sync.Mutex
		to.OnTrial = func(t Trial) {
			reportMu.Lock()
			defer reportMu.Unlock()
			report(t)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var gerr, lerr error
	var gTrials, lTrials []Trial
	wg.Add(1)
	go func() {
		defer wg.Done()
		var best GBDTParams
		best, gTrials, gerr = tuneGBDT(ctx, bs, o, m.Hmax, to)
		mu.Lock()
		res.GBDT = best
		mu.Unlock()
	}()
	if !o.NoLSTM {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var best LSTMParams
			best, lTrials, lerr = tuneLSTM(ctx, bs, o, m.Hmax, to)
			mu.Lock()
			res.LSTM = best
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Trials = append(gTrials, lTrials...)
	if len(gTrials) < to.GBDTTrials || (!o.NoLSTM && len(lTrials) < to.LSTMTrials) {
		res.StoppedByBudget = ctx.Err() != nil
	}
	for _, e := range []error{gerr, lerr} {
		if e != nil && !errors.Is(e, context.DeadlineExceeded) && !errors.Is(e, context.Canceled) {
			return nil, e
		}
	}
	return res, nil
}

// validRows samples (series, origin, lead) rows from the validation
// windows for scoring trials.
func validRows(bs []*builder, o Options, hmax int) []rowRef {
	quota := max(400, 30000/len(bs))
	return trainRows(bs, quota, func(sp *SeriesSpec) int { return sp.TrainEnd - 1 },
		func(sp *SeriesSpec) int { return sp.ValidEnd - 2 }, func(sp *SeriesSpec) int { return sp.ValidEnd }, hmax, o.Seed, 20_000)
}

// scoreRows is the mean of |error| / MASEScale over rows: MASE pooled
// over series.
func scoreRows(bs []*builder, rows []rowRef, pred func(i int) float64) float64 {
	var s float64
	n := 0
	for i, r := range rows {
		b := bs[r.s]
		v := pred(i)
		y := b.y[r.t+r.h]
		if math.IsNaN(v) || math.IsNaN(y) {
			continue
		}
		s += math.Abs(math.Max(0, v)-y) / b.sp.MASEScale
		n++
	}
	if n == 0 {
		return math.Inf(1)
	}
	return s / float64(n)
}

func newStudy(name string, seed uint64, to TuneOptions) (*goptuna.Study, error) {
	return goptuna.CreateStudy(name,
		goptuna.StudyOptionSampler(newSeededTPE(seed, to.StartupTrials)),
		goptuna.StudyOptionLogger(nopLogger{}),
		goptuna.StudyOptionIgnoreError(true),
	)
}

func collectTrials(st *goptuna.Study, model string) []Trial {
	ts, err := st.GetTrials()
	if err != nil {
		return nil
	}
	var out []Trial
	for _, t := range ts {
		if !t.State.IsFinished() {
			continue
		}
		tr := Trial{Model: model, Number: t.Number, Params: map[string]float64{}, Value: t.Value, State: t.State.String()}
		if t.State != goptuna.TrialStateComplete {
			tr.Value = math.NaN()
		}
		for k, v := range t.Params {
			switch x := v.(type) {
			case float64:
				tr.Params[k] = x
			case int:
				tr.Params[k] = float64(x)
			}
		}
		if !t.DatetimeComplete.IsZero() {
			tr.Seconds = t.DatetimeComplete.Sub(t.DatetimeStart).Seconds()
		}
		out = append(out, tr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

func tuneGBDT(ctx context.Context, bs []*builder, o Options, hmax int, to TuneOptions) (GBDTParams, []Trial, error) {
	def := o.GBDT.withDefaults()
	x, y, vx, vy := gbdtData(bs, o, hmax, trainEnd)
	rows := validRows(bs, o, hmax)
	vm, _, vref := matrix(bs, rows, bs[0].nf)
	st, err := newStudy("gbdt", o.Seed, to)
	if err != nil {
		return def, nil, err
	}
	st.WithContext(ctx)
	_ = st.EnqueueTrial(map[string]float64{
		"learning_rate": def.LearningRate, "max_leaves": float64(def.MaxLeaves), "max_depth": float64(def.MaxDepth),
		"min_leaf": float64(def.MinLeaf), "lambda": def.Lambda, "feature_fraction": def.FeatureFraction, "row_fraction": def.RowFraction,
	})
	params := func(t goptuna.Trial) (GBDTParams, error) {
		p := def
		var err error
		if p.LearningRate, err = t.SuggestLogFloat("learning_rate", 0.02, 0.3); err != nil {
			return p, err
		}
		if p.MaxLeaves, err = t.SuggestInt("max_leaves", 8, 64); err != nil {
			return p, err
		}
		if p.MaxDepth, err = t.SuggestInt("max_depth", 3, 10); err != nil {
			return p, err
		}
		if p.MinLeaf, err = t.SuggestInt("min_leaf", 10, 300); err != nil {
			return p, err
		}
		if p.Lambda, err = t.SuggestLogFloat("lambda", 0.1, 30); err != nil {
			return p, err
		}
		if p.FeatureFraction, err = t.SuggestFloat("feature_fraction", 0.5, 1); err != nil {
			return p, err
		}
		if p.RowFraction, err = t.SuggestFloat("row_fraction", 0.5, 1); err != nil {
			return p, err
		}
		return p, nil
	}
	objective := func(t goptuna.Trial) (float64, error) {
		p, err := params(t)
		if err != nil {
			return 0, err
		}
		// The LSTM search runs beside this one; with Threads histograms
		// use the core it leaves idle when its trials are done.
		p.Threads = o.Threads
		g, err := TrainGBDT(ctx, x, y, vx, vy, p, o.Seed)
		if err != nil {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return scoreRows(bs, rows, func(i int) float64 {
			return vref[i] + bs[rows[i].s].sp.Scale*g.Predict(vm.Row(i))
		}), nil
	}
	err = st.Optimize(reporting(to, Boosted, objective), to.GBDTTrials)
	trials := collectTrials(st, Boosted)
	best := def
	if bp, e := st.GetBestParams(); e == nil && len(trials) > 0 {
		best = gbdtFromParams(def, bp)
	}
	return best, trials, err
}

func gbdtFromParams(p GBDTParams, m map[string]interface{}) GBDTParams {
	f := func(k string) (float64, bool) {
		switch v := m[k].(type) {
		case float64:
			return v, true
		case int:
			return float64(v), true
		}
		return 0, false
	}
	if v, ok := f("learning_rate"); ok {
		p.LearningRate = v
	}
	if v, ok := f("max_leaves"); ok {
		p.MaxLeaves = int(v)
	}
	if v, ok := f("max_depth"); ok {
		p.MaxDepth = int(v)
	}
	if v, ok := f("min_leaf"); ok {
		p.MinLeaf = int(v)
	}
	if v, ok := f("lambda"); ok {
		p.Lambda = v
	}
	if v, ok := f("feature_fraction"); ok {
		p.FeatureFraction = v
	}
	if v, ok := f("row_fraction"); ok {
		p.RowFraction = v
	}
	return p
}

// lstmWindows are the window lengths the search may choose.
var lstmWindows = []int{16, 32, 64}

func tuneLSTM(ctx context.Context, bs []*builder, o Options, hmax int, to TuneOptions) (LSTMParams, []Trial, error) {
	def := o.LSTM.withDefaults()
	st, err := newStudy("lstm", o.Seed+1, to)
	if err != nil {
		return def, nil, err
	}
	st.WithContext(ctx)
	wi := 1
	for i, w := range lstmWindows {
		if w == def.Window {
			wi = i
		}
	}
	_ = st.EnqueueTrial(map[string]float64{"hidden": float64(def.Hidden), "lr": def.LR, "window_index": float64(wi)})
	// Score on the validation windows: origins evenly spaced per series.
	type ref struct{ s, t int }
	var origins []ref
	for si, b := range bs {
		for _, t := range b.sp.origins(Valid, hmax, max(20, 400/len(bs))) {
			origins = append(origins, ref{si, t})
		}
	}
	objective := func(t goptuna.Trial) (float64, error) {
		p := def
		var err error
		if p.Hidden, err = t.SuggestStepInt("hidden", 8, 24, 8); err != nil {
			return 0, err
		}
		if p.LR, err = t.SuggestLogFloat("lr", 1e-3, 1e-2); err != nil {
			return 0, err
		}
		w, err := t.SuggestInt("window_index", 0, len(lstmWindows)-1)
		if err != nil {
			return 0, err
		}
		p.Window = lstmWindows[w]
		oo := o
		oo.LSTM = p
		net := trainLSTMFor(ctx, bs, oo, hmax, trainEnd)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var s float64
		n := 0
		xs := make([]float64, p.Window*lstmInputs)
		cache := net.newCache(p.Window)
		for _, r := range origins {
			b := bs[r.s]
			b.seq(r.t, p.Window, xs)
			out := net.forward(xs, p.Window, cache)
			anom := b.anomaly(r.t)
			for h := 1; h <= hmax; h++ {
				y := b.y[r.t+h]
				if math.IsNaN(y) {
					continue
				}
				v := math.Max(0, b.prof[r.t+h]+anom+b.sp.Scale*out[h-1])
				s += math.Abs(v-y) / b.sp.MASEScale
				n++
			}
		}
		if n == 0 {
			return math.Inf(1), nil
		}
		return s / float64(n), nil
	}
	err = st.Optimize(reporting(to, Recurrent, objective), to.LSTMTrials)
	trials := collectTrials(st, Recurrent)
	best := def
	if bp, e := st.GetBestParams(); e == nil && len(trials) > 0 {
		if v, ok := bp["hidden"].(int); ok {
			best.Hidden = v
		}
		if v, ok := bp["lr"].(float64); ok {
			best.LR = v
		}
		if v, ok := bp["window_index"].(int); ok && v >= 0 && v < len(lstmWindows) {
			best.Window = lstmWindows[v]
		}
	}
	return best, trials, err
}
