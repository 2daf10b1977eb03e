package pipeline

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// smallConfig keeps the pipeline tests fast under -race.
func smallConfig(src Source) Config {
	return Config{
		Source:   src,
		Horizons: []time.Duration{30 * time.Minute, 2 * time.Hour},
		Options: forecast.Options{Seed: 5, MaxTrainRows: 5000, MaxOrigins: 40,
			GBDT: forecast.GBDTParams{Rounds: 40, LearningRate: 0.2},
			LSTM: forecast.LSTMParams{Hidden: 4, Window: 8, Epochs: 2, SamplesPerEpoch: 96, Batch: 16}},
	}
}

func newRunner(t *testing.T, md Metadata, dir string) *Runner {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	tick := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Runner{Pipeline: "test", Store: &Store{Dir: dir}, Metadata: md, Now: func() time.Time {
		tick = tick.Add(time.Second)
		return tick
	}}
}

func TestStandardPipelineRunsCachesAndPushes(t *testing.T) {
	inputs := synthSeries(3, 12, 15*time.Minute, 1)
	md := NewMemoryMetadata()
	r := newRunner(t, md, "")
	cfg := smallConfig(&SeriesSource{Name: "synthetic", Inputs: inputs})
	res, err := r.Run(context.Background(), "run-1", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, e := range res.Executions {
		states = append(states, e.Component)
		if e.Status != "succeeded" || e.Cached {
			t.Errorf("%s: status %s cached %v", e.Component, e.Status, e.Cached)
		}
	}
	want := "ExampleGen StatisticsGen SchemaResolver SchemaGen ExampleValidator Transform Trainer PushedResolver Evaluator Pusher"
	if strings.Join(states, " ") != want {
		t.Fatalf("executions %v", states)
	}
	fc, err := As[*Forecasts](res.Artifacts["forecasts"])
	if err != nil {
		t.Fatal(err)
	}
	if len(fc.Forecasts) != 3 {
		t.Fatalf("%d series pushed, want 3 (not pushed: %v)", len(fc.Forecasts), fc.NotPushed)
	}
	for _, f := range fc.Forecasts {
		if len(f.Horizons) != 2 || len(f.Horizons[1].Point) != 8 || len(f.Horizons[1].Drivers) == 0 {
			t.Fatalf("forecast %+v", f)
		}
		for i, p := range f.Horizons[1].Point {
			if math.IsNaN(p) || p < 0 || f.Horizons[1].Upper[i] < p {
				t.Fatalf("%s: point %v upper %v", f.Series, p, f.Horizons[1].Upper[i])
			}
		}
		p, err := md.LatestPushed(context.Background(), f.Series)
		if err != nil || p == nil || p.ModelID != res.Artifacts["model"].ID || p.ForecastID != res.Artifacts["forecasts"].ID {
			t.Fatalf("pushed record %+v %v", p, err)
		}
	}

	// Same data again: everything up to the Trainer is reused (SchemaGen
	// runs once more because the schema resolver now supplies the first
	// run's schema, and outputs the same schema); the Evaluator runs (there
	// is now an incumbent) and refuses to re-push the model already
	// serving.
	res2, err := r.Run(context.Background(), "run-2", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	cached := map[string]bool{}
	for _, e := range res2.Executions {
		cached[e.Component] = e.Cached
	}
	for _, c := range []string{"StatisticsGen", "ExampleValidator", "Transform", "Trainer"} {
		if !cached[c] {
			t.Errorf("%s re-ran although its inputs did not change", c)
		}
	}
	if cached["Evaluator"] || cached["ExampleGen"] {
		t.Error("Evaluator or ExampleGen was cached")
	}
	if res2.Artifacts["model"].ID != res.Artifacts["model"].ID {
		t.Error("the cached model is a different artifact")
	}
	bl, _ := As[*Blessing](res2.Artifacts["blessing"])
	if bl.Blessed != 0 {
		t.Errorf("the serving model was blessed again: %+v", bl)
	}
	fc2, _ := As[*Forecasts](res2.Artifacts["forecasts"])
	if len(fc2.Forecasts) != 0 {
		t.Errorf("pushed %d forecasts of an unblessed model", len(fc2.Forecasts))
	}

	// New data: the change flows through.
	more := synthSeries(3, 12, 15*time.Minute, 2)
	cfg.Source = &SeriesSource{Name: "synthetic", Inputs: more}
	res3, err := r.Run(context.Background(), "run-3", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res3.Executions {
		if e.Cached && e.Component != "SchemaGen" {
			t.Errorf("%s was cached although the data changed", e.Component)
		}
	}
}

// TestLineageLinksPushedForecastsToTheirInputs walks back from every
// pushed forecast to the examples it was made from.
func TestLineageLinksPushedForecastsToTheirInputs(t *testing.T) {
	md := NewMemoryMetadata()
	r := newRunner(t, md, "")
	cfg := smallConfig(&SeriesSource{Name: "synthetic", Inputs: synthSeries(2, 12, 15*time.Minute, 3)})
	res, err := r.Run(context.Background(), "run-1", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"svc-aa", "svc-ba"} {
		p, err := md.LatestPushed(ctx, name)
		if err != nil || p == nil {
			t.Fatalf("%s: not pushed (%v)", name, err)
		}
		execs, arts, err := Lineage(ctx, md, p.ForecastID)
		if err != nil {
			t.Fatal(err)
		}
		comps := map[string]bool{}
		for _, e := range execs {
			comps[e.Component] = true
			if e.RunID != "run-1" {
				t.Errorf("execution %s from run %s", e.Component, e.RunID)
			}
		}
		for _, c := range []string{"Pusher", "Evaluator", "Trainer", "Transform", "ExampleValidator", "SchemaGen", "StatisticsGen", "ExampleGen"} {
			if !comps[c] {
				t.Errorf("%s: lineage misses %s (has %v)", name, c, comps)
			}
		}
		found := false
		for _, a := range arts {
			if a.Type == "Examples" && a.Hash == res.Artifacts["examples"].Hash {
				found = true
			}
			if a.ID == p.ModelID && a.Type != "Model" {
				t.Errorf("pushed model id points at a %s", a.Type)
			}
		}
		if !found {
			t.Errorf("%s: the pushed forecast does not lead back to the examples", name)
		}
		// Parameters and metrics are recorded with the executions.
		for _, e := range execs {
			if e.Component == "Transform" && !strings.Contains(string(e.Params), "horizons") {
				t.Errorf("Transform parameters not recorded: %s", e.Params)
			}
			if e.Component == "Evaluator" && e.Metrics["blessed"] != 2 {
				t.Errorf("Evaluator metrics %v", e.Metrics)
			}
		}
	}
}

// TestBlessingRefusesAWorseModel: a candidate that beats seasonal naive
// but is worse than the serving model (on the same test windows) is not
// blessed and not pushed; the serving model stays.
func TestBlessingRefusesAWorseModel(t *testing.T) {
	ctx := context.Background()
	md := NewMemoryMetadata()
	r := newRunner(t, md, "")
	inputs := synthSeries(2, 12, 15*time.Minute, 4)
	res, err := r.Run(ctx, "good", Standard(smallConfig(&SeriesSource{Name: "synthetic", Inputs: inputs}), r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	served := res.Artifacts["model"].ID
	// The candidate: the same members with worse stacking weights (half
	// seasonal naive, half GBDT), a different model.
	good, _ := As[*ModelArtifact](res.Artifacts["model"])
	worse := &ModelArtifact{Model: good.Model}
	worse.Weights = nil
	for range good.Weights {
		w := make([]float64, len(good.Members))
		w[0], w[2] = 0.5, 0.5
		worse.Weights = append(worse.Weights, w)
	}
	cand, err := r.Store.Put(worse)
	if err != nil {
		t.Fatal(err)
	}
	if err := md.PutArtifact(ctx, cand); err != nil {
		t.Fatal(err)
	}
	base, err := (&PushedResolver{Metadata: md}).Run(ctx, Inputs{"transformed": res.Artifacts["transformed"]})
	if err != nil || base.Values["baseline"] == nil {
		t.Fatalf("resolver: %v", err)
	}
	ev := &Evaluator{Metadata: md, Store: r.Store}
	in := Inputs{"model": cand, "transform": res.Artifacts["transform"], "transformed": res.Artifacts["transformed"],
		"baseline": &Artifact{Type: "Incumbents", Value: base.Values["baseline"]}}
	out, err := ev.Run(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	bl := out.Values["blessing"].(*Blessing)
	e := out.Values["evaluation"].(*Evaluation)
	for _, s := range e.Series {
		b := bl.Series[s.Series]
		why := strings.Join(b.Reasons, "; ")
		if b.Blessed || !strings.Contains(why, "does not beat the pushed model") || !strings.Contains(why, "same test windows") {
			t.Errorf("%s: blessed %v: %s", s.Series, b.Blessed, why)
		}
		if _, ok := e.Incumbent[s.Series]; !ok {
			t.Errorf("%s: the incumbent was not scored", s.Series)
		}
	}
	pin := Inputs{"model": cand, "blessing": &Artifact{Type: "ModelBlessing", Value: bl}, "transform": res.Artifacts["transform"], "transformed": res.Artifacts["transformed"]}
	pout, err := (&Pusher{}).Run(ctx, pin)
	if err != nil {
		t.Fatal(err)
	}
	if f := pout.Values["forecasts"].(*Forecasts); len(f.Forecasts) != 0 || len(f.NotPushed) != 2 {
		t.Errorf("pushed %d unblessed forecasts", len(f.Forecasts))
	}
	for _, name := range []string{"svc-aa", "svc-ba"} {
		if p, _ := md.LatestPushed(ctx, name); p == nil || p.ModelID != served {
			t.Errorf("%s: serving model changed: %+v", name, p)
		}
	}
	// The Pusher's commit refuses an unblessed series even if asked to.
	fake := &Forecasts{Forecasts: []forecast.Forecast{{Series: "svc-aa"}}}
	err = (&Pusher{}).Commit(ctx, md, "x", pin, map[string]*Artifact{"forecasts": {Value: fake}})
	if err == nil || !strings.Contains(err.Error(), "not blessed") {
		t.Errorf("commit of an unblessed forecast: %v", err)
	}
}

// TestBlessingRefusesAModelNoBetterThanSeasonalNaive: on a series that
// repeats exactly every day the seasonal-naive forecast is perfect, so
// nothing can beat it and nothing is pushed.
func TestBlessingRefusesAModelNoBetterThanSeasonalNaive(t *testing.T) {
	base := synthSeries(1, 1, 15*time.Minute, 6)[0].Series
	s := &forecast.Series{Name: "periodic", Start: base.Start, Step: base.Step}
	for d := 0; d < 12; d++ {
		s.Values = append(s.Values, base.Values...)
	}
	md := NewMemoryMetadata()
	r := newRunner(t, md, "")
	cfg := smallConfig(&SeriesSource{Name: "periodic", Inputs: []forecast.Input{{Series: s}}})
	cfg.Options.NoLSTM = true
	res, err := r.Run(context.Background(), "p", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	bl, _ := As[*Blessing](res.Artifacts["blessing"])
	if b := bl.Series["periodic"]; b.Blessed || !strings.Contains(strings.Join(b.Reasons, ";"), "does not beat seasonal naive") {
		t.Errorf("blessing %+v", b)
	}
	if p, _ := md.LatestPushed(context.Background(), "periodic"); p != nil {
		t.Errorf("pushed %+v", p)
	}
}

// TestPipelineIsReproducible: two runs from scratch with one seed store
// byte-identical models and forecasts.
func TestPipelineIsReproducible(t *testing.T) {
	inputs := synthSeries(2, 12, 15*time.Minute, 8)
	var hashes [2][2]string
	for i := range hashes {
		md := NewMemoryMetadata()
		r := newRunner(t, md, "")
		cfg := smallConfig(&SeriesSource{Name: "s", Inputs: inputs})
		cfg.Budget = time.Hour // tuning on, bounded by the trial counts
		cfg.Tune = forecast.TuneOptions{GBDTTrials: 3, LSTMTrials: 2, StartupTrials: 2}
		res, err := r.Run(context.Background(), "r", Standard(cfg, r.Store, md))
		if err != nil {
			t.Fatal(err)
		}
		hp, _ := As[*HyperParameters](res.Artifacts["hyperparameters"])
		if len(hp.Trials) != 5 || hp.StoppedByBudget {
			t.Fatalf("trials %d stopped %v", len(hp.Trials), hp.StoppedByBudget)
		}
		hashes[i] = [2]string{res.Artifacts["model"].Hash, res.Artifacts["forecasts"].Hash}
	}
	if hashes[0] != hashes[1] {
		t.Errorf("same seed, different artifacts: %v", hashes)
	}
}

// TestFileMetadataPersists: a new process (a reopened file) sees the
// lineage, reuses cached work and knows what is pushed.
func TestFileMetadataPersists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata.json")
	md, err := OpenFileMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := smallConfig(&SeriesSource{Name: "s", Inputs: synthSeries(1, 12, 15*time.Minute, 9)})
	cfg.Options.NoLSTM = true
	r := newRunner(t, md, dir)
	if _, err := r.Run(context.Background(), "one", Standard(cfg, r.Store, md)); err != nil {
		t.Fatal(err)
	}
	md2, err := OpenFileMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := md2.LatestPushed(context.Background(), "svc-aa"); p == nil {
		t.Fatal("pushed record lost")
	}
	r2 := newRunner(t, md2, dir)
	res, err := r2.Run(context.Background(), "two", Standard(cfg, r2.Store, md2))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Executions {
		if e.Component == "Trainer" && !e.Cached {
			t.Error("the Trainer re-ran after a restart with unchanged inputs")
		}
	}
	// A corrupted artifact is detected, not trusted.
	a := res.Artifacts["model"]
	c := *a
	c.Value = nil
	c.Hash = strings.Repeat("0", 64)
	if err := r2.Store.Load(&c); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("hash mismatch not detected: %v", err)
	}
}

type countingComp struct {
	name   string
	inputs []Port
	calls  *int
	param  string
	fail   error
	panics bool
}

type note struct{ Text string }

func (*note) ArtifactType() string { return "Note" }

func (c *countingComp) Name() string   { return c.name }
func (c *countingComp) Inputs() []Port { return c.inputs }
func (c *countingComp) Params() any    { return c.param }
func (c *countingComp) Run(_ context.Context, in Inputs) (Outputs, error) {
	*c.calls++
	if c.panics {
		panic("boom")
	}
	if c.fail != nil {
		return Outputs{}, c.fail
	}
	text := c.name + ":" + c.param
	for _, p := range c.inputs {
		if a := in[p.Name]; a != nil {
			text += "<" + a.Value.(*note).Text
		}
	}
	return Outputs{Values: map[string]Payload{c.name + "_out": &note{text}}}, nil
}

func init() { RegisterType(&note{}) }

// TestRunnerContract: order, caching by content, parameters in the cache
// key, failures recorded and stopping the run, panics contained.
func TestRunnerContract(t *testing.T) {
	md := NewMemoryMetadata()
	r := newRunner(t, md, "")
	var na, nb int
	a := &countingComp{name: "A", calls: &na, param: "1"}
	b := &countingComp{name: "B", calls: &nb, inputs: []Port{{Name: "A_out"}, {Name: "nothing", Optional: true}}}
	ctx := context.Background()
	res, err := r.Run(ctx, "1", []Component{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Artifacts["B_out"].Value.(*note).Text; got != "B:<A:1" {
		t.Fatalf("B saw %q", got)
	}
	if _, err := r.Run(ctx, "2", []Component{a, b}); err != nil || na != 1 || nb != 1 {
		t.Fatalf("second run: err %v, calls %d %d (want cached)", err, na, nb)
	}
	a.param = "2" // a parameter change re-runs A, and B (its input changed)
	if _, err := r.Run(ctx, "3", []Component{a, b}); err != nil || na != 2 || nb != 2 {
		t.Fatalf("after a parameter change: err %v, calls %d %d", err, na, nb)
	}
	a.param = "1" // back to the first parameters: both cached again
	if _, err := r.Run(ctx, "4", []Component{a, b}); err != nil || na != 2 || nb != 2 {
		t.Fatalf("back to old parameters: calls %d %d", na, nb)
	}
	var nc int
	c := &countingComp{name: "C", calls: &nc, fail: errors.New("bad input"), param: "x"}
	res, err = r.Run(ctx, "5", []Component{a, c, b})
	if err == nil || !strings.Contains(err.Error(), "C: bad input") {
		t.Fatalf("failure: %v", err)
	}
	if res.Run.Status != "failed" || res.Executions[len(res.Executions)-1].Status != "failed" {
		t.Errorf("run %+v", res.Run)
	}
	if _, err := r.Run(ctx, "6", []Component{a, c}); err == nil || nc != 2 {
		t.Error("a failed execution was reused as a cache hit")
	}
	p := &countingComp{name: "P", calls: new(int), panics: true}
	if _, err := r.Run(ctx, "7", []Component{p}); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Errorf("panic: %v", err)
	}
	if _, err := r.Run(ctx, "8", []Component{b}); err == nil || !strings.Contains(err.Error(), `needs "A_out"`) {
		t.Errorf("missing input: %v", err)
	}
	execs, _ := md.Executions(ctx, "1")
	if len(execs) != 2 || execs[1].Inputs["A_out"] != execs[0].Outputs["A_out"] {
		t.Errorf("lineage of run 1: %+v", execs)
	}
}

// failingSink refuses every delivery.
type failingSink struct{ calls int }

func (f *failingSink) Deliver(context.Context, Delivery) error {
	f.calls++
	return errors.New("coordinator unreachable")
}

func TestFailedDeliveryPushesNothing(t *testing.T) {
	inputs := synthSeries(2, 12, 15*time.Minute, 1)
	md := NewMemoryMetadata()
	r := newRunner(t, md, "")
	cfg := smallConfig(&SeriesSource{Name: "synthetic", Inputs: inputs})
	sink := &failingSink{}
	cfg.Sink = sink
	if _, err := r.Run(context.Background(), "run-1", Standard(cfg, r.Store, md)); err == nil || !strings.Contains(err.Error(), "coordinator unreachable") {
		t.Fatalf("run err %v, want the sink's error", err)
	}
	if sink.calls != 1 {
		t.Fatalf("sink called %d times", sink.calls)
	}
	for _, in := range inputs {
		if p, _ := md.LatestPushed(context.Background(), in.Series.Name); p != nil {
			t.Fatalf("%s recorded as pushed although its delivery failed", in.Series.Name)
		}
	}
}
