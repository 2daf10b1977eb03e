package pipeline

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// raw builds a raw series at 1-minute steps from offsets (minutes) and
// values.
func raw(name string, mins []int, vals []float64) RawSeries {
	r := RawSeries{Name: name, Step: time.Minute}
	for i, m := range mins {
		r.T = append(r.T, t0.Add(time.Duration(m)*time.Minute).UnixMilli())
		r.V = append(r.V, vals[i])
	}
	return r
}

func run(t *testing.T, c Component, in Inputs) Outputs {
	t.Helper()
	out, err := c.Run(context.Background(), in)
	if err != nil {
		t.Fatalf("%s: %v", c.Name(), err)
	}
	return out
}

func art(p Payload) *Artifact { return &Artifact{Type: p.ArtifactType(), Value: p} }

func TestStatisticsGenCountsTimestampProblems(t *testing.T) {
	nan := math.NaN()
	r := raw("bad", []int{0, 1, 1, 3, 2, 7, 8, 9}, []float64{5, 6, 7, nan, 4, 5, 6, 7})
	r.T = append(r.T, t0.Add(9*time.Minute+30*time.Second).UnixMilli()) // off grid
	r.V = append(r.V, 3)
	out := run(t, &StatisticsGen{}, Inputs{"examples": art(&Examples{Series: []RawSeries{r}})})
	s := out.Values["statistics"].(*Statistics).Series[0]
	if s.Rows != 9 || s.Missing != 1 || s.Duplicates != 1 || s.Unordered != 1 || s.OffGrid != 1 {
		t.Errorf("rows %d missing %d dup %d unordered %d offgrid %d", s.Rows, s.Missing, s.Duplicates, s.Unordered, s.OffGrid)
	}
	// Grid steps 0..9: present 0,1,2,3,7,8,9 → 4,5,6 missing.
	if s.GapSteps != 3 || s.LongestGap != 3 || s.Step != time.Minute {
		t.Errorf("gaps %d longest %d step %v", s.GapSteps, s.LongestGap, s.Step)
	}
	if s.Min != 3 || s.Max != 7 {
		t.Errorf("range %v..%v", s.Min, s.Max)
	}
}

func healthy(name string, n int, level float64) RawSeries {
	mins := make([]int, n)
	vals := make([]float64, n)
	for i := range mins {
		mins[i] = i
		vals[i] = level + float64(i%10)
	}
	r := raw(name, mins, vals)
	r.Exo = &forecast.Exogenous{Transactions: &forecast.Series{Name: "tx", Start: t0, Step: time.Minute, Values: make(forecast.Values, n)}}
	return r
}

func schemaFor(t *testing.T, ex *Examples, gen *SchemaGen) *Schema {
	t.Helper()
	st := run(t, &StatisticsGen{}, Inputs{"examples": art(ex)}).Values["statistics"].(*Statistics)
	return run(t, gen, Inputs{"statistics": art(st)}).Values["schema"].(*Schema)
}

func validate(t *testing.T, ex *Examples, sc *Schema) (*Anomalies, error) {
	t.Helper()
	st := run(t, &StatisticsGen{}, Inputs{"examples": art(ex)}).Values["statistics"].(*Statistics)
	out, err := (&ExampleValidator{}).Run(context.Background(), Inputs{"statistics": art(st), "schema": art(sc)})
	return out.Values["anomalies"].(*Anomalies), err
}

// TestExampleValidatorFindsCraftedAnomalies feeds deliberately broken
// data against a schema inferred from healthy data.
func TestExampleValidatorFindsCraftedAnomalies(t *testing.T) {
	good := &Examples{Series: []RawSeries{healthy("api", 500, 100), healthy("db", 500, 50)}}
	sc := schemaFor(t, good, &SchemaGen{})
	if len(sc.Series) != 2 || sc.Series[0].Step != time.Minute || !sc.Series[0].Required || sc.Series[0].Exo[0] != "transactions" ||
		sc.Series[0].Type != TypeCount {
		t.Fatalf("schema %+v", sc.Series)
	}
	if an, err := validate(t, good, sc); err != nil || len(an.Items) != 0 {
		t.Fatalf("healthy data: %v %+v", err, an.Items)
	}

	bad := healthy("api", 500, 100)
	nan := math.NaN()
	bad.V[10] = nan                                                                         // missing value
	bad.T[20] = bad.T[19]                                                                   // duplicate
	bad.T[30], bad.T[31] = bad.T[31], bad.T[30]                                             // unordered
	bad.T[40] += 20_000                                                                     // off grid (20 s)
	bad.T, bad.V = append(bad.T[:100], bad.T[150:]...), append(bad.V[:100], bad.V[150:]...) // a 50-step gap
	bad.V[200] = 1e6                                                                        // out of range
	bad.V[210] = 104.5                                                                      // not a count
	for i := len(bad.V) * 4 / 5; i < len(bad.V); i++ {                                      // drift in the recent part
		bad.V[i] = 5000 + float64(i%7)
	}
	bad.Exo = nil // missing field
	an, err := validate(t, &Examples{Series: []RawSeries{bad}}, sc)
	if err != nil {
		t.Fatalf("no kind is fatal by default for these, got %v", err)
	}
	for _, k := range []string{AnomalyMissingValues, AnomalyDuplicateTime, AnomalyUnorderedTime, AnomalyOffGrid, AnomalyGaps,
		AnomalyOutOfRange, AnomalyDrift, AnomalyMissingField, AnomalyValueType} {
		if !an.Has("api", k) {
			t.Errorf("missed %s", k)
		}
	}
	if !an.Has("db", AnomalyMissingSeries) {
		t.Error("missed the missing series")
	}
	// A series of rates is typed real: fractions are no anomaly there.
	rates := healthy("rate", 500, 100)
	for i := range rates.V {
		rates.V[i] += 0.25
	}
	rsc := schemaFor(t, &Examples{Series: []RawSeries{rates}}, &SchemaGen{})
	if rsc.Series[0].Type != TypeReal {
		t.Errorf("rates typed %q", rsc.Series[0].Type)
	}
	if ran, _ := validate(t, &Examples{Series: []RawSeries{rates}}, rsc); ran.Has("rate", AnomalyValueType) {
		t.Error("fractional rates reported against a real-typed schema")
	}
	for _, a := range an.Items {
		if a.Severity == "fatal" {
			t.Errorf("%s fatal without the schema saying so", a.Kind)
		}
	}

	// Another step is fatal by default; so is a kind the schema lists.
	coarse := healthy("db", 500, 50)
	for i := range coarse.T {
		coarse.T[i] = t0.Add(time.Duration(i) * 5 * time.Minute).UnixMilli()
	}
	coarse.Step = 0
	an, err = validate(t, &Examples{Series: []RawSeries{healthy("api", 500, 100), coarse}}, sc)
	if err == nil || !an.Fatal || !strings.Contains(err.Error(), "step_mismatch") {
		t.Errorf("step mismatch: %v", err)
	}
	strict := *sc
	strict.Fatal = append([]string{AnomalyGaps}, sc.Fatal...)
	if _, err := validate(t, &Examples{Series: []RawSeries{bad, healthy("db", 500, 50)}}, &strict); err == nil || !strings.Contains(err.Error(), "gaps") {
		t.Errorf("gaps listed as fatal: %v", err)
	}
	empty := raw("api", []int{0, 1, 2}, []float64{nan, nan, nan})
	if an, err := validate(t, &Examples{Series: []RawSeries{empty, healthy("db", 500, 50)}}, sc); err == nil || !an.Has("api", AnomalyNoData) {
		t.Errorf("no data: %v", err)
	}
}

func TestSchemaGenKeepsTheSchemaInUse(t *testing.T) {
	ex := &Examples{Series: []RawSeries{healthy("api", 300, 100)}}
	first := schemaFor(t, ex, &SchemaGen{})
	// Later data is bigger: with the prior schema, api keeps its range and
	// the new series is added.
	later := &Examples{Series: []RawSeries{healthy("api", 300, 900), healthy("new", 300, 5)}}
	st := run(t, &StatisticsGen{}, Inputs{"examples": art(later)}).Values["statistics"].(*Statistics)
	sc := run(t, &SchemaGen{}, Inputs{"statistics": art(st), "prior_schema": art(first)}).Values["schema"].(*Schema)
	if len(sc.Series) != 2 || sc.series("api").Max != first.series("api").Max || sc.series("new") == nil {
		t.Errorf("schema %+v", sc.Series)
	}
	curated := &Schema{Series: []SeriesSchema{{Name: "api", Step: time.Minute, Max: 1}}, Fatal: []string{AnomalyOutOfRange}}
	sc = run(t, &SchemaGen{Curated: curated}, Inputs{"statistics": art(st)}).Values["schema"].(*Schema)
	if _, err := validate(t, later, sc); err == nil || !strings.Contains(err.Error(), "out_of_range") {
		t.Errorf("curated schema not applied: %v", err)
	}
}

func TestTransformRepairsAndDrops(t *testing.T) {
	n := 600 // ten hours of minutes: too short to hold out 2-hour forecasts
	long := healthy("long", 16*24*60, 100)
	long.Exo = nil
	// Rows out of order, a duplicate and an off-grid row.
	long.T[5], long.T[6] = long.T[6], long.T[5]
	long.V[5], long.V[6] = long.V[6], long.V[5]
	long.T = append(long.T, long.T[100])
	long.V = append(long.V, long.V[100]+10)
	long.T = append(long.T, long.T[200]+30_000)
	long.V = append(long.V, 1)
	// A gap of 3 steps.
	long.T = append(long.T[:300], long.T[303:]...)
	long.V = append(long.V[:300], long.V[303:]...)
	short := healthy("short", n, 10)
	ex := &Examples{Series: []RawSeries{long, short}}
	sc := schemaFor(t, ex, &SchemaGen{})
	an, _ := validate(t, ex, sc)
	tr := &Transform{Horizons: []time.Duration{30 * time.Minute, 2 * time.Hour}}
	out := run(t, tr, Inputs{"examples": art(ex), "schema": art(sc), "anomalies": art(an)})
	g := out.Values["transform"].(*TransformGraph)
	x := out.Values["transformed"].(*Transformed)
	if len(x.Inputs) != 1 || x.Inputs[0].Series.Name != "long" || !strings.Contains(g.Dropped["short"], "horizon") {
		t.Fatalf("kept %d, dropped %v", len(x.Inputs), g.Dropped)
	}
	s := x.Inputs[0].Series
	if s.Step != time.Minute || s.Len() != 16*24*60 || s.Gaps() != 3 {
		t.Errorf("step %v len %d gaps %d", s.Step, s.Len(), s.Gaps())
	}
	if s.Values[5] != 105 || s.Values[6] != 106 || s.Values[100] != 105 {
		t.Errorf("sorted/averaged values: %v %v %v", s.Values[5], s.Values[6], s.Values[100])
	}
	if g.Options.Horizons[0] != 30 || g.Options.Horizons[1] != 120 || g.HorizonLabels[1] != "2h" {
		t.Errorf("horizons %v labels %v", g.Options.Horizons, g.HorizonLabels)
	}
	// A 30-minute horizon on an hourly series is its next step, with a note.
	if n, note := HorizonSteps(30*time.Minute, time.Hour); n != 1 || !strings.Contains(note, "1 step(s)") {
		t.Errorf("%d %q", n, note)
	}
}

func TestExampleGenAndTunerContracts(t *testing.T) {
	out := run(t, &ExampleGen{Source: &SeriesSource{Name: "x", Inputs: synthSeries(2, 2, time.Hour, 1)}}, nil)
	if ex := out.Values["examples"].(*Examples); len(ex.Series) != 2 || out.Metrics["rows"] != 96 {
		t.Errorf("examples %d rows %v", len(ex.Series), out.Metrics["rows"])
	}
	broken := &ExampleGen{Source: &SeriesSource{}}
	broken.Source = sourceFunc(func(context.Context) (*Examples, error) {
		return &Examples{Series: []RawSeries{{Name: "x", T: []int64{1, 2}, V: forecast.Values{1}}}}, nil
	})
	if _, err := broken.Run(context.Background(), nil); err == nil {
		t.Error("mismatched timestamps and values accepted")
	}
	// The Tuner records every trial and stays within its trial counts.
	inputs := synthSeries(1, 12, 15*time.Minute, 2)
	tr, err := forecast.Prepare(inputs, smallConfig(nil).Options.WithHorizons(2, 8))
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	tu := &Tuner{Budget: time.Minute, Options: forecast.TuneOptions{GBDTTrials: 2, LSTMTrials: 1, StartupTrials: 1},
		OnTrial: func(forecast.Trial) { seen++ }}
	o := run(t, tu, Inputs{"transform": art(&TransformGraph{Transform: *tr}), "transformed": art(&Transformed{Inputs: inputs})})
	hp := o.Values["hyperparameters"].(*HyperParameters)
	if len(hp.Trials) != 3 || seen != 3 || o.Metrics["trials"] != 3 || hp.Budget != "1m0s" {
		t.Errorf("trials %d seen %d metrics %v", len(hp.Trials), seen, o.Metrics)
	}
}

type sourceFunc func(context.Context) (*Examples, error)

func (f sourceFunc) Examples(ctx context.Context) (*Examples, error) { return f(ctx) }

func TestCSVSourceReadsATrace(t *testing.T) {
	src := &CSVSource{Path: "testdata/pedestrians_hourly.csv", Options: forecast.CSVOptions{ValueCol: "location_41"}}
	ex, err := src.Examples(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Series) != 1 || len(ex.Series[0].T) != 720 || src.Info.ValueCol != "location_41" {
		t.Errorf("series %d rows %d info %+v", len(ex.Series), len(ex.Series[0].T), src.Info)
	}
}
