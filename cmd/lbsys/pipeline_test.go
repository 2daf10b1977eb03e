package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/pipeline"
	"github.com/lbsys/lbsys/internal/store"
)

// runPipelineRun runs `lbsys pipeline run ARGS…` in process, with opts
// (when set) adjusting the forecaster's options, and decodes its JSON.
func runPipelineRun(t *testing.T, opts func(*forecast.Options), args ...string) (*pipeline.RunSummary, string, error) {
	t.Helper()
	f := &pipelineFlags{options: opts}
	cmd := newPipelineRunCmdWith(f)
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		return nil, errb.String(), err
	}
	var doc pipeline.RunSummary
	if jerr := json.Unmarshal(out.Bytes(), &doc); jerr != nil {
		t.Fatalf("output is not JSON: %v\n%s", jerr, out.String())
	}
	return &doc, errb.String(), nil
}

func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFailure
}

// shopStore ingests the NASA trace as catalog's load (through lbsys
// ingest csv), derives checkout's from it (a tenth, ten minutes later),
// and adds what an operations team would have: checkout calls catalog
// (CMDB), an incident on catalog and a sale in the calendar.
func shopStore(t *testing.T) (string, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "shop.db")
	out, err := runIngest(t, "--store", db, "csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"),
		"--service", "catalog", "--metric", "requests", "--tz", "America/New_York")
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := map[string]int64{}
	cat := store.SeriesKey{Service: "catalog", Metric: "requests"}
	if ids["catalog"], err = st.SeriesID(ctx, cat); err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Date(1995, 7, d, 4, 0, 0, 0, time.UTC) }
	pts, err := st.RangeByKey(ctx, cat, day(1), day(29), store.Minute)
	if err != nil || len(pts) != 7776 {
		t.Fatalf("catalog: %d points, %v", len(pts), err)
	}
	if ids["checkout"], err = st.EnsureSeries(ctx, store.SeriesKey{Service: "checkout", Metric: "requests"}, "test"); err != nil {
		t.Fatal(err)
	}
	var ss []store.Sample
	for i := 2; i < len(pts); i++ {
		ss = append(ss, store.Sample{Series: ids["checkout"], T: pts[i].T, V: math.Round(pts[i-2].V/10) + 3})
	}
	if _, err := st.WritePoints(ctx, ss); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertCIs(ctx, []store.CI{{ID: "bs:component:default/catalog", Name: "catalog", Service: "catalog", Source: "test"},
		{ID: "bs:component:default/checkout", Name: "checkout", Service: "checkout", Source: "test"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertRelations(ctx, []store.Relation{{ID: "r", Parent: "bs:component:default/checkout",
		Child: "bs:component:default/catalog", Kind: store.KindDependsOn, Source: "test"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertTickets(ctx, []store.Ticket{{ID: "i", Kind: store.Incident, Number: "INC1", Source: "test",
		Service: "catalog", Start: day(20).Add(3 * time.Hour), End: day(20).Add(5 * time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReplaceEvents(ctx, "marketing", day(1), day(30), []store.Event{{Calendar: "marketing", UID: "sale",
		Start: day(22), End: day(23), Categories: []string{"campaign"}}}); err != nil {
		t.Fatal(err)
	}
	return db, ids
}

// forecastPoints counts the points of every forecast series in the store.
func forecastPoints(t *testing.T, st *store.Store) map[string]int {
	t.Helper()
	ctx := context.Background()
	all, err := st.ListSeries(ctx, store.SeriesFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range all {
		if !strings.Contains(s.Metric, "_forecast_") {
			continue
		}
		pts, err := st.Range(ctx, s.ID, time.Unix(0, 0), time.Now(), store.Raw)
		if err != nil {
			t.Fatal(err)
		}
		out[s.String()] = len(pts)
	}
	return out
}

// TestPipelineRunFromTheStore ingests a trace, runs the pipeline through
// the CLI and checks, in the store, the forecasts and their lineage back
// to the input series; a second run on unchanged data is served by the
// cache and pushes nothing; a worse model is not pushed over the serving
// one.
func TestPipelineRunFromTheStore(t *testing.T) {
	ctx := context.Background()
	db, ids := shopStore(t)
	report := t.TempDir()
	base := []string{"--store", db, "--horizons", "15m,1h", "--budget", "0", "--no-lstm", "--quiet", "--format", "json"}
	// Fewer origins and rows keep three runs well within a minute under
	// the race detector; the data and the code paths are the real ones.
	cheap := func(o *forecast.Options) { o.MaxTrainRows, o.MaxOrigins = 6000, 60 }
	first, _, err := runPipelineRun(t, cheap, append(base, "--report", report)...)
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != "succeeded" || first.Step != "5m0s" || len(first.Series) != 2 || first.Pushed != 2 || first.Cached != 0 {
		t.Fatalf("first run: %+v", first)
	}
	for _, s := range first.Series {
		if !s.Pushed || s.Artifact == 0 || len(s.Horizons) != 2 || s.Horizons[1].Steps != 12 || len(s.Horizons[1].Drivers) == 0 {
			t.Errorf("%s: %+v", s.Name, s)
		}
	}
	cat := first.Series[0]
	if cat.Name != "catalog" || !slices.Equal(cat.Inputs["upstream"].([]any), []any{"checkout"}) ||
		cat.Inputs["incidents"] != float64(1) || cat.Inputs["events"] != float64(1) || cat.Inputs["transactions"] == nil {
		t.Errorf("catalog's inputs %v", cat.Inputs)
	}
	for _, f := range []string{"report.md", "run.json", "lineage.json", "forecast_catalog.png", "forecast_checkout.png"} {
		if mustRead(t, filepath.Join(report, f)) == "" {
			t.Errorf("report %s is empty", f)
		}
	}

	st, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	md := &pipeline.StoreMetadata{Store: st}
	points := forecastPoints(t, st)
	want := map[string]int{}
	for _, svc := range []string{"catalog", "checkout"} {
		for _, h := range []struct {
			label string
			steps int
		}{{"15m", 3}, {"1h", 12}} {
			want[svc+"/"+pipeline.ForecastMetric("requests", h.label, false)] = h.steps
			want[svc+"/"+pipeline.ForecastMetric("requests", h.label, true)] = h.steps
		}
	}
	if !maps.Equal(points, want) {
		t.Errorf("forecast series %v, want %v", points, want)
	}
	// Every pushed forecast links back to its input series: the series'
	// forecast artifact directly, the run's forecasts through the
	// executions down to the examples read from the store.
	arts, err := st.Artifacts(ctx, store.ArtifactQuery{Kind: pipeline.ForecastKind})
	if err != nil || len(arts) != 2 {
		t.Fatalf("forecast artifacts %+v %v", arts, err)
	}
	for _, a := range arts {
		edges, err := st.Lineage(ctx, store.ArtifactRef(a.ID), store.Inputs, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(edges, func(e store.LineageEdge) bool {
			return e.From == store.SeriesRef(ids[a.Name]) && e.Kind == pipeline.EdgeInput
		}) {
			t.Errorf("forecast of %s: inputs %+v lack its series", a.Name, edges)
		}
		if a.Props["drivers_1h"] == "" || a.Props["upper_peak_15m"] == "" {
			t.Errorf("forecast of %s: properties %v", a.Name, a.Props)
		}
		p, err := md.LatestPushed(ctx, a.Name)
		if err != nil || p == nil || p.RunID != first.Run {
			t.Fatalf("%s pushed %+v %v", a.Name, p, err)
		}
		srcs, err := md.Sources(ctx, p.ForecastID)
		if err != nil || !slices.Contains(srcs, store.SeriesRef(ids[a.Name])) || !slices.Contains(srcs, "tickets:incident") {
			t.Errorf("%s: the pushed forecasts come from %v (%v)", a.Name, srcs, err)
		}
		out, err := st.Lineage(ctx, store.ArtifactRef(a.ID), store.Outputs, 1)
		if err != nil || len(out) != 4 {
			t.Errorf("%s: forecast artifact outputs %+v %v", a.Name, out, err)
		}
	}

	// Unchanged inputs: everything up to the model is reused, nothing new
	// is pushed or written.
	second, _, err := runPipelineRun(t, cheap, base...)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, e := range second.Executions {
		states[e.Component] = e.State
	}
	for _, c := range []string{"StatisticsGen", "ExampleValidator", "Transform", "Trainer"} {
		if states[c] != "cached" {
			t.Errorf("second run: %s %s", c, states[c])
		}
	}
	if second.Pushed != 0 || second.Series[0].Serving != first.Run || !strings.Contains(second.Series[0].Reason, "serves it already") {
		t.Errorf("second run: %+v", second.Series[0])
	}
	if got := forecastPoints(t, st); !maps.Equal(got, points) {
		t.Errorf("second run changed the forecast series: %v", got)
	}

	// A worse model (a handful of weak trees) is evaluated against the
	// serving one on the same test windows and not pushed.
	weak := func(o *forecast.Options) {
		cheap(o)
		o.NoRefit = true
		o.GBDT = forecast.GBDTParams{Rounds: 2, LearningRate: 0.05, MaxLeaves: 4}
	}
	third, _, err := runPipelineRun(t, weak, base...)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, s := range third.Series {
		if s.Pushed {
			t.Errorf("%s: the weak model was pushed: %+v", s.Name, s)
		}
		// Refused for losing to the serving model alone: it does beat
		// seasonal naive.
		if strings.Contains(s.Reason, "does not beat the pushed model") && !strings.Contains(s.Reason, "does not beat seasonal naive") {
			refused++
		}
		if p, _ := md.LatestPushed(ctx, s.Name); p == nil || p.RunID != first.Run {
			t.Errorf("%s: serving %+v, want the first run's model", s.Name, p)
		}
	}
	if refused == 0 {
		t.Errorf("no series refused for losing to the serving model: %+v", third.Series)
	}
	for _, e := range third.Executions {
		if e.Component == "Trainer" && e.State != "ran" {
			t.Errorf("the weak model was not trained: %s", e.State)
		}
	}
	if got := forecastPoints(t, st); !maps.Equal(got, points) {
		t.Errorf("an unblessed run wrote forecasts: %v", got)
	}
}

func TestPipelineRunUsageErrors(t *testing.T) {
	db, _ := shopStore(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--store", db, "--services", "nope"}, `no "requests" series for service nope`},
		{[]string{"--store", db, "--metric", "latency"}, `no "latency" series`},
		{[]string{"--store", filepath.Join(t.TempDir(), "missing.db")}, "lbsys ingest"},
		{[]string{"--store", db, "--horizons", "soon"}, "--horizons"},
		{[]string{"--store", db, "--window", "-1d"}, "--window"},
		{[]string{"--store", db, "--format", "xml"}, "--format"},
		{[]string{"--store", db, "--step", "90s"}, "--step"},
		{[]string{"--store", db, "--until", "yesterday-ish"}, "--until"},
		{[]string{"--store", db, "--until", "1990-01-01"}, "no \"requests\" points"},
		{[]string{"--store", db, "--bogus"}, "unknown flag"},
	} {
		_, _, err := runPipelineRun(t, nil, append(tc.args, "--quiet", "--budget", "0")...)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, %v (want %q)", tc.args, exitCode(err), err, tc.want)
		}
	}
	// A window too short for the horizons: the run fails (exit 1).
	_, _, err := runPipelineRun(t, nil, "--store", db, "--window", "1h", "--quiet", "--budget", "0")
	if exitCode(err) != exitFailure || !strings.Contains(err.Error(), "long enough") {
		t.Errorf("too short a window: exit %d, %v", exitCode(err), err)
	}
	root := newRootCmd()
	root.SetArgs([]string{"pipeline"})
	root.SetOut(&bytes.Buffer{})
	if err := root.Execute(); exitCode(err) != exitUsage {
		t.Errorf("pipeline without a subcommand: %v", err)
	}
}
