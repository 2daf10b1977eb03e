package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "lbsys.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// writeLoad stores f(i) at start + i·step for i in [0, n) as the series
// key (skipping NaN: a gap), and returns its id.
func writeLoad(t *testing.T, st *store.Store, key store.SeriesKey, start time.Time, step time.Duration, n int, f func(i int) float64) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := st.EnsureSeries(ctx, key, "test")
	if err != nil {
		t.Fatal(err)
	}
	var ss []store.Sample
	for i := 0; i < n; i++ {
		if v := f(i); !math.IsNaN(v) {
			ss = append(ss, store.Sample{Series: id, T: start.Add(time.Duration(i) * step).UnixMilli(), V: v})
		}
	}
	if _, err := st.WritePoints(ctx, ss); err != nil {
		t.Fatal(err)
	}
	return id
}

var shopStart = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// shop fills a store with a small shop: frontend calls catalog and
// checkout, checkout calls payment; cart has only endpoint series; an
// incident in payment, a change in catalog, a global sale and a release
// of checkout.
func shop(t *testing.T) (*store.Store, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	n := 6 * 60 // six hours of minutes
	ids := map[string]int64{}
	for k, svc := range []string{"frontend", "catalog", "checkout", "payment"} {
		scale := float64(k + 1)
		ids[svc] = writeLoad(t, st, store.SeriesKey{Service: svc, Metric: "requests"}, shopStart, time.Minute, n,
			func(i int) float64 { return scale * float64(10+i%7) })
	}
	ids["cart/a"] = writeLoad(t, st, store.SeriesKey{Service: "cart", Endpoint: "10.0.0.1:80", Metric: "requests"}, shopStart, time.Minute, n,
		func(i int) float64 { return 1 })
	ids["cart/b"] = writeLoad(t, st, store.SeriesKey{Service: "cart", Endpoint: "10.0.0.2:80", Metric: "requests"}, shopStart, time.Minute, n-60,
		func(i int) float64 { return 2 })
	// Another metric is not a load.
	writeLoad(t, st, store.SeriesKey{Service: "catalog", Metric: "p99_ms"}, shopStart, time.Minute, n, func(int) float64 { return 5 })
	cis := []store.CI{
		{ID: "sn:fe", Name: "Frontend", Service: "frontend", Source: "test"},
		{ID: "sn:cat", Name: "Catalog", Service: "catalog", Source: "test"},
		{ID: "sn:co", Name: "Checkout", Service: "checkout", Source: "test"},
		{ID: "sn:pay", Name: "Payment", Service: "payment", Source: "test"},
		{ID: "sn:db", Name: "orders-db", Source: "test"},
	}
	if _, err := st.UpsertCIs(ctx, cis); err != nil {
		t.Fatal(err)
	}
	rels := []store.Relation{
		{ID: "r1", Parent: "sn:fe", Child: "sn:cat", Kind: store.KindDependsOn, Source: "test"},
		{ID: "r2", Parent: "sn:fe", Child: "sn:co", Kind: store.KindDependsOn, Source: "test"},
		{ID: "r3", Parent: "sn:co", Child: "sn:pay", Kind: store.KindDependsOn, Source: "test"},
		{ID: "r4", Parent: "sn:co", Child: "sn:db", Kind: store.KindDependsOn, Source: "test"},
	}
	if _, err := st.UpsertRelations(ctx, rels); err != nil {
		t.Fatal(err)
	}
	h := func(m int) time.Time { return shopStart.Add(time.Duration(m) * time.Minute) }
	if _, err := st.UpsertTickets(ctx, []store.Ticket{
		{ID: "i1", Kind: store.Incident, Number: "INC1", Source: "test", Service: "payment", Start: h(120), End: h(150)},
		{ID: "i2", Kind: store.Incident, Number: "INC2", Source: "test", CI: "sn:db", Start: h(200)}, // open, on checkout's database
		{ID: "c1", Kind: store.Change, Number: "CHG1", Source: "test", Service: "catalog", Start: h(300), End: h(330)},
		{ID: "c2", Kind: store.Change, Number: "CHG2", Source: "test", Service: "catalog", Start: h(400), End: h(420)}, // planned, past the window
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReplaceEvents(ctx, "marketing", h(-1000), h(2000), []store.Event{
		{Calendar: "marketing", UID: "sale", Start: h(180), End: h(240), Categories: []string{"campaign"}},
		{Calendar: "marketing", UID: "premiere", Start: h(390), End: h(390)}, // an instant in the horizon, no category
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReplaceEvents(ctx, "releases", h(-1000), h(2000), []store.Event{
		{Calendar: "releases", UID: "co-v2", Start: h(60), End: h(70), Categories: []string{"release"}, Services: []string{"checkout"}},
	}); err != nil {
		t.Fatal(err)
	}
	return st, ids
}

// at is an exogenous series' value m minutes into the shop's day.
func at(x *forecast.Series, m int) float64 {
	i := int(shopStart.Add(time.Duration(m)*time.Minute).Sub(x.Start) / x.Step)
	if i < 0 || i >= len(x.Values) {
		return math.NaN()
	}
	return x.Values[i]
}

func seriesByName(ex *Examples, name string) *RawSeries {
	for i := range ex.Series {
		if ex.Series[i].Name == name {
			return &ex.Series[i]
		}
	}
	return nil
}

func TestStoreSourceReadsLoadsAndExogenousInputs(t *testing.T) {
	ctx := context.Background()
	st, ids := shop(t)
	src := &StoreSource{Store: st, Lookahead: 2 * time.Hour}
	ex, err := src.Examples(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range ex.Series {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "cart catalog checkout frontend payment" {
		t.Fatalf("series %v", names)
	}
	if ex.Source != "store:lbsys.db" {
		t.Errorf("source %q", ex.Source)
	}
	cat := seriesByName(ex, "catalog")
	if cat.Step != time.Minute || len(cat.T) != 360 || cat.V[0] != 20 || cat.V[1] != 22 {
		t.Fatalf("catalog: step %v, %d points, %v", cat.Step, len(cat.T), cat.V[:2])
	}
	if last := time.UnixMilli(cat.T[len(cat.T)-1]).UTC(); !last.Equal(shopStart.Add(359 * time.Minute)) {
		t.Errorf("window ends at %v", last)
	}
	// cart has only endpoint series: their sum (3, then 1 once b stops).
	cart := seriesByName(ex, "cart")
	if len(cart.T) != 360 || cart.V[0] != 3 || cart.V[359] != 1 ||
		!slices.Contains(cart.Refs, store.SeriesRef(ids["cart/a"])) || !slices.Contains(cart.Refs, store.SeriesRef(ids["cart/b"])) {
		t.Errorf("cart: %d points, %v … %v, refs %v", len(cart.T), cart.V[0], cart.V[len(cart.V)-1], cart.Refs)
	}
	// Coupling: frontend calls catalog and checkout; nobody calls frontend.
	if cat.Exo == nil || len(cat.Exo.Upstream) != 1 || cat.Exo.Upstream[0].Name != "upstream:frontend" || at(cat.Exo.Upstream[0], 0) != 10 {
		t.Fatalf("catalog upstream: %+v", cat.Exo)
	}
	co := seriesByName(ex, "checkout")
	if len(co.Exo.Upstream) != 1 || co.Exo.Upstream[0].Name != "upstream:frontend" {
		t.Errorf("checkout upstream: %+v", co.Exo.Upstream)
	}
	fe := seriesByName(ex, "frontend")
	if fe.Exo == nil || len(fe.Exo.Upstream) != 0 {
		t.Errorf("frontend exo %+v", fe.Exo)
	}
	// Transactions: checkout + payment for others, payment alone for checkout.
	if cat.Exo.Transactions == nil || cat.Exo.Transactions.Name != "transactions:checkout+payment" || at(cat.Exo.Transactions, 0) != 30+40 {
		t.Errorf("catalog transactions %+v", cat.Exo.Transactions)
	}
	if co.Exo.Transactions == nil || co.Exo.Transactions.Name != "transactions:payment" {
		t.Errorf("checkout transactions %+v", co.Exo.Transactions)
	}
	// Incidents: payment's own and, through the graph, checkout's (its
	// dependencies payment and orders-db); none for catalog, which still
	// gets a zero series (the store has incidents).
	open := func(s *RawSeries, m int) float64 { return at(s.Exo.Incidents, m) }
	if v := open(co, 130); v != 1 {
		t.Errorf("checkout incidents at 130: %v", v)
	}
	if v := open(co, 250); v != 1 {
		t.Errorf("checkout incidents at 250 (open database incident): %v", v)
	}
	if v := open(co, 160); v != 0 {
		t.Errorf("checkout incidents at 160: %v", v)
	}
	if v := open(seriesByName(ex, "payment"), 130); v != 1 {
		t.Errorf("payment incidents at 130: %v", v)
	}
	if cat.Exo.Incidents == nil || open(cat, 130) != 0 || open(cat, 250) != 0 {
		t.Errorf("catalog incidents %+v", cat.Exo.Incidents)
	}
	// Changes: catalog's, including the planned one inside the lookahead.
	if len(cat.Exo.Changes) != 2 || len(co.Exo.Changes) != 0 {
		t.Errorf("changes: catalog %+v checkout %+v", cat.Exo.Changes, co.Exo.Changes)
	}
	// Events: the sale and the premiere (an instant: one hour) for all, the
	// release for checkout only.
	if len(ex.Events) != 2 || ex.Events[0].Category != "campaign" || ex.Events[1].Category != "event" ||
		ex.Events[1].End.Sub(ex.Events[1].Start) != time.Hour {
		t.Errorf("events %+v", ex.Events)
	}
	if len(co.Events) != 1 || co.Events[0].Category != "release" || len(cat.Events) != 0 {
		t.Errorf("series events: checkout %+v catalog %+v", co.Events, cat.Events)
	}
	// Lineage ends.
	for _, want := range []string{store.SeriesRef(ids["catalog"]), store.SeriesRef(ids["frontend"]), store.SeriesRef(ids["checkout"]),
		"cmdb:graph", "tickets:incident", "tickets:change", "events:marketing"} {
		if !slices.Contains(cat.Refs, want) {
			t.Errorf("catalog refs %v lack %s", cat.Refs, want)
		}
	}
	if slices.Contains(cat.Refs, "events:releases") || !slices.Contains(co.Refs, "events:releases") {
		t.Errorf("release refs: catalog %v checkout %v", cat.Refs, co.Refs)
	}
	if o, ok := src.Origin("checkout"); !ok || o.Incidents != 2 || o.Changes != 0 || o.Events != 3 || o.Points != 360 ||
		!slices.Equal(o.Upstream, []string{"frontend"}) || !slices.Equal(o.Transactions, []string{"payment"}) ||
		!slices.Equal(o.Funnel, DefaultFunnelServices) {
		t.Errorf("checkout origin %+v", o)
	}
	// Session funnel: the four stages in funnel order, for every series.
	var stages []string
	for _, f := range cat.Exo.Funnel {
		stages = append(stages, fmt.Sprintf("%s=%v", f.Name, at(f, 0)))
	}
	if got := strings.Join(stages, " "); got != "funnel:catalog=20 funnel:cart=3 funnel:checkout=30 funnel:payment=40" {
		t.Errorf("catalog funnel inputs: %s", got)
	}
	if fe.Exo == nil || len(fe.Exo.Funnel) != 4 || !slices.Contains(fe.Refs, store.SeriesRef(ids["cart/a"])) {
		t.Errorf("frontend funnel inputs %+v refs %v", fe.Exo, fe.Refs)
	}
	// Turned off, or fewer than two stages with data: no funnel input.
	for _, stages := range [][]string{{}, {"cart", "nonexistent"}} {
		off := &StoreSource{Store: st, Lookahead: 2 * time.Hour, FunnelServices: stages}
		exOff, err := off.Examples(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := seriesByName(exOff, "catalog"); c.Exo != nil && len(c.Exo.Funnel) != 0 {
			t.Errorf("funnel %v: catalog still has funnel inputs %d", stages, len(c.Exo.Funnel))
		}
	}

	// Unchanged data, byte-identical examples (the cache depends on it),
	// also after writing forecast series of another metric.
	_, h1, err := encode(ex)
	if err != nil {
		t.Fatal(err)
	}
	writeLoad(t, st, store.SeriesKey{Service: "catalog", Metric: ForecastMetric("requests", "15m", false)}, shopStart.Add(6*time.Hour),
		time.Minute, 15, func(int) float64 { return 1 })
	ex2, err := src.Examples(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, h2, _ := encode(ex2); h1 != h2 {
		t.Error("the same store read twice gave different examples")
	}
}

func TestStoreSourceSelectsAndAligns(t *testing.T) {
	ctx := context.Background()
	st, _ := shop(t)
	// Endpoints on request; unknown services and an empty store refused.
	src := &StoreSource{Store: st, Services: []string{"cart"}, Endpoints: true}
	ex, err := src.Examples(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Series) != 3 || ex.Series[1].Name != "cart/10.0.0.1:80" || ex.Series[2].Name != "cart/10.0.0.2:80" {
		t.Fatalf("endpoints: %+v", src.Origins())
	}
	if o, _ := src.Origin("cart/10.0.0.2:80"); o.Endpoint != "10.0.0.2:80" || o.Service != "cart" || o.Points != 300 {
		t.Errorf("endpoint origin %+v", o)
	}
	if _, err := (&StoreSource{Store: st, Services: []string{"nope"}}).Examples(ctx); !errors.Is(err, ErrNoSeries) ||
		!strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), "catalog") {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := (&StoreSource{Store: openStore(t)}).Examples(ctx); !errors.Is(err, ErrNoSeries) {
		t.Errorf("empty store: %v", err)
	}

	// A 5-minute series next to 1-minute ones: all go on the 5-minute
	// grid, each step the mean of its minutes; the window ends at Until.
	writeLoad(t, st, store.SeriesKey{Service: "legacy", Metric: "requests"}, shopStart, 5*time.Minute, 72, func(i int) float64 { return float64(i) })
	src = &StoreSource{Store: st, Services: []string{"legacy", "frontend"}, Window: 2 * time.Hour, Until: shopStart.Add(4 * time.Hour)}
	ex, err = src.Examples(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fe, lg := seriesByName(ex, "frontend"), seriesByName(ex, "legacy")
	if fe.Step != 5*time.Minute || lg.Step != 5*time.Minute || len(lg.T) != 24 || len(fe.T) != 24 {
		t.Fatalf("steps %v %v, points %d %d", fe.Step, lg.Step, len(fe.T), len(lg.T))
	}
	if first := time.UnixMilli(lg.T[0]).UTC(); !first.Equal(shopStart.Add(2*time.Hour)) || lg.V[0] != 24 {
		t.Errorf("legacy starts %v with %v", first, lg.V[0])
	}
	// frontend minutes 120..124 are 10+(i%7): 11, 12, 13, 14, 15.
	if math.Abs(fe.V[0]-13) > 1e-9 {
		t.Errorf("frontend 5-minute mean %v", fe.V[0])
	}
	// Step override.
	src.Step = 10 * time.Minute
	if ex, err = src.Examples(ctx); err != nil || seriesByName(ex, "frontend").Step != 10*time.Minute {
		t.Errorf("step override: %v", err)
	}
}

// TestStoreMetadataImplementsTheContract runs the runner's contract on
// the store: caching by content, parameters in the key, failures not
// reused; and checks the type mapping of every method.
func TestStoreMetadataImplementsTheContract(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	dir := t.TempDir()
	md := &StoreMetadata{Store: st, Payloads: &Store{Dir: dir}, RunParams: []byte(`{"seed":1}`)}
	r := newRunner(t, md, dir)
	var na, nb int
	a := &countingComp{name: "A", calls: &na, param: "1"}
	b := &countingComp{name: "B", calls: &nb, inputs: []Port{{Name: "A_out"}}}
	res, err := r.Run(ctx, "1", []Component{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, "2", []Component{a, b}); err != nil || na != 1 || nb != 1 {
		t.Fatalf("second run: %v, calls %d %d (want cached)", err, na, nb)
	}
	a.param = "2"
	if _, err := r.Run(ctx, "3", []Component{a, b}); err != nil || na != 2 || nb != 2 {
		t.Fatalf("parameter change: %v, calls %d %d", err, na, nb)
	}
	var nc int
	c := &countingComp{name: "C", calls: &nc, fail: errors.New("bad"), param: "x"}
	if _, err := r.Run(ctx, "4", []Component{c}); err == nil {
		t.Fatal("failure not reported")
	}
	if _, err := r.Run(ctx, "5", []Component{c}); err == nil || nc != 2 {
		t.Fatalf("a failed execution was reused: calls %d", nc)
	}
	run, err := st.PipelineRunByID(ctx, "4")
	if err != nil || run.Status != "failed" || !strings.Contains(run.Error, "bad") || string(run.Params) != `{"seed":1}` {
		t.Errorf("run record %+v %v", run, err)
	}
	execs, err := md.Executions(ctx, "2")
	if err != nil || len(execs) != 2 || !execs[0].Cached || execs[1].Inputs["A_out"] != res.Artifacts["A_out"].ID {
		t.Fatalf("executions %+v %v", execs, err)
	}
	p, err := md.Producer(ctx, res.Artifacts["B_out"].ID)
	if err != nil || p.Component != "B" || p.RunID != "1" || string(p.Params) != `""` {
		t.Errorf("producer %+v %v", p, err)
	}
	if _, err := md.Producer(ctx, 999); err == nil {
		t.Error("producer of a missing artifact")
	}
	la, err := md.LatestArtifact(ctx, "A", "Note")
	if err != nil || la == nil || la.Hash == res.Artifacts["A_out"].Hash {
		t.Errorf("latest A output %+v %v (want the one of run 3)", la, err)
	}
	if la, err := md.LatestArtifact(ctx, "Z", "Note"); err != nil || la != nil {
		t.Errorf("latest of nothing: %+v %v", la, err)
	}
	// Small payloads are copied into the store.
	if pl, err := st.ArtifactPayload(ctx, res.Artifacts["B_out"].ID); err != nil || !strings.Contains(string(pl), "B:<A:1") {
		t.Errorf("payload %q %v", pl, err)
	}
	a2, err := md.Artifact(ctx, res.Artifacts["B_out"].ID)
	if err != nil || a2.Type != "Note" || a2.Hash != res.Artifacts["B_out"].Hash || a2.Producer != "B" {
		t.Errorf("artifact %+v %v", a2, err)
	}
	// Same type and hash: the same artifact.
	dup := &Artifact{Type: "Note", Hash: a2.Hash, URI: a2.URI}
	if err := md.PutArtifact(ctx, dup); err != nil || dup.ID != a2.ID {
		t.Errorf("dedupe: %d vs %d (%v)", dup.ID, a2.ID, err)
	}
	// Pushed records, NaN scores dropped rather than failing.
	if err := md.SetPushed(ctx, &Pushed{Series: "s", RunID: "1", ModelID: 1, MAE: map[int]float64{1: 2, 2: math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	if got, err := md.LatestPushed(ctx, "s"); err != nil || got.ModelID != 1 || got.MAE[1] != 2 || len(got.MAE) != 1 {
		t.Errorf("pushed %+v %v", got, err)
	}
	if got, err := md.LatestPushed(ctx, "none"); err != nil || got != nil {
		t.Errorf("never pushed: %+v %v", got, err)
	}
	if err := md.PutExecution(ctx, &Execution{RunID: "6", Component: "M", Status: "succeeded", Metrics: map[string]float64{"x": math.Inf(1), "y": 1}}); err != nil {
		t.Errorf("non-finite metric: %v", err)
	}
}

// TestStorePipelineEndToEnd runs the standard pipeline from the store
// into the store: forecasts as series and artifacts, each linked back to
// the series it was made from; a second run reuses the model and pushes
// nothing.
func TestStorePipelineEndToEnd(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	ids := map[string]int64{}
	for _, in := range synthSeries(2, 12, 15*time.Minute, 11) {
		s := in.Series
		ids[s.Name] = writeLoad(t, st, store.SeriesKey{Service: s.Name, Metric: "requests"}, s.Start, s.Step, s.Len(),
			func(i int) float64 { return s.Values[i] })
	}
	dir := t.TempDir()
	md := &StoreMetadata{Store: st, Payloads: &Store{Dir: dir}}
	src := &StoreSource{Store: st, Lookahead: 2 * time.Hour}
	sink := &StoreSink{Store: st, Source: src}
	cfg := smallConfig(src)
	cfg.Options.NoLSTM = true
	cfg.Sink = sink
	r := newRunner(t, md, dir)
	res, err := r.Run(ctx, "one", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	fc, _ := As[*Forecasts](res.Artifacts["forecasts"])
	if len(fc.Forecasts) != 2 || len(sink.Delivered()) != 2 {
		t.Fatalf("pushed %d, delivered %d (not pushed: %v)", len(fc.Forecasts), len(sink.Delivered()), fc.NotPushed)
	}
	for _, f := range fc.Forecasts {
		p, err := md.LatestPushed(ctx, f.Series)
		if err != nil || p == nil || p.RunID != "one" {
			t.Fatalf("%s: pushed %+v %v", f.Series, p, err)
		}
		// The run's forecasts lead back to every input series.
		srcs, err := md.Sources(ctx, p.ForecastID)
		if err != nil || !slices.Contains(srcs, store.SeriesRef(ids[f.Series])) {
			t.Errorf("%s: sources %v %v", f.Series, srcs, err)
		}
		// The series' own forecast artifact: its input, and its points.
		arts, err := st.Artifacts(ctx, store.ArtifactQuery{Kind: ForecastKind, Name: f.Series})
		if err != nil || len(arts) != 1 || arts[0].Props["drivers_2h"] == "" || arts[0].Props["run"] != "one" {
			t.Fatalf("%s: forecast artifacts %+v %v", f.Series, arts, err)
		}
		in, _ := st.Lineage(ctx, store.ArtifactRef(arts[0].ID), store.Inputs, 1)
		var from []string
		for _, e := range in {
			from = append(from, e.From+" "+e.Kind)
		}
		for _, want := range []string{store.SeriesRef(ids[f.Series]) + " input", store.ArtifactRef(p.ForecastID) + " contains",
			store.ArtifactRef(p.ModelID) + " model"} {
			if !slices.Contains(from, want) {
				t.Errorf("%s: forecast artifact inputs %v lack %q", f.Series, from, want)
			}
		}
		for _, h := range []string{"30m", "2h"} {
			for _, upper := range []bool{false, true} {
				key := store.SeriesKey{Service: f.Series, Metric: ForecastMetric("requests", h, upper)}
				pts, err := st.RangeByKey(ctx, key, f.Origin, f.Origin.Add(3*time.Hour), store.Raw)
				want := 2
				if h == "2h" {
					want = 8
				}
				if err != nil || len(pts) != want {
					t.Errorf("%s: %d points, want %d (%v)", key, len(pts), want, err)
				}
			}
		}
	}
	res2, err := r.Run(ctx, "two", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res2.Executions {
		if (e.Component == "Transform" || e.Component == "Trainer") && !e.Cached {
			t.Errorf("%s re-ran on unchanged data", e.Component)
		}
	}
	if f2, _ := As[*Forecasts](res2.Artifacts["forecasts"]); len(f2.Forecasts) != 0 || len(sink.Delivered()) != 2 {
		t.Errorf("second run pushed %d", len(f2.Forecasts))
	}

	// The data directory lost: the copies in the store serve what they
	// hold (the schema in use, small artifacts), the rest runs again.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r.Store.Fallback = md.Payload
	res3, err := r.Run(ctx, "three", Standard(cfg, r.Store, md))
	if err != nil {
		t.Fatalf("after losing the data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, res.Artifacts["schema"].URI)); err != nil {
		t.Errorf("the schema was not restored from the store: %v", err)
	}
	if res3.Artifacts["model"].Hash != res.Artifacts["model"].Hash {
		t.Error("same data and seed, another model")
	}
}

// BenchmarkStoreSource50x14d reads the examples of 50 services × 14 days
// at 1-minute resolution from the store, each called by two others
// (coupling) with checkout/payment transaction rates and incidents, and
// encodes them as the runner does: ExampleGen's share of the pipeline.
func BenchmarkStoreSource50x14d(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	inputs := synthSeries(50, 14, time.Minute, 7)
	var cis []store.CI
	var rels []store.Relation
	for i, in := range inputs {
		name := in.Series.Name
		switch i {
		case 0:
			name = "checkout"
		case 1:
			name = "payment"
		}
		id, err := st.EnsureSeries(ctx, store.SeriesKey{Service: name, Metric: "requests"}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		var ss []store.Sample
		for k, v := range in.Series.Values {
			ss = append(ss, store.Sample{Series: id, T: in.Series.Time(k).UnixMilli(), V: v})
		}
		if _, err := st.WritePoints(ctx, ss); err != nil {
			b.Fatal(err)
		}
		cis = append(cis, store.CI{ID: "ci:" + name, Name: name, Service: name, Source: "bench"})
		inputs[i].Series.Name = name
	}
	for i := range inputs {
		for _, j := range []int{(i + 1) % len(inputs), (i + 7) % len(inputs)} {
			rels = append(rels, store.Relation{ID: fmt.Sprint("r", i, "-", j), Parent: "ci:" + inputs[j].Series.Name,
				Child: "ci:" + inputs[i].Series.Name, Kind: store.KindDependsOn, Source: "bench"})
		}
	}
	if _, err := st.UpsertCIs(ctx, cis); err != nil {
		b.Fatal(err)
	}
	if _, err := st.UpsertRelations(ctx, rels); err != nil {
		b.Fatal(err)
	}
	start := inputs[0].Series.Start
	if _, err := st.UpsertTickets(ctx, []store.Ticket{{ID: "i", Kind: store.Incident, Number: "INC1", Source: "bench",
		Service: "payment", Start: start.Add(50 * time.Hour), End: start.Add(52 * time.Hour)}}); err != nil {
		b.Fatal(err)
	}
	src := &StoreSource{Store: st, Lookahead: time.Hour}
	b.ResetTimer()
	for b.Loop() {
		ex, err := src.Examples(ctx)
		if err != nil {
			b.Fatal(err)
		}
		blob, _, err := encode(ex)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(blob))/1e6, "MB/examples")
	}
}

// TestTransformAppliesSeriesEvents: events of one series reach its input
// only; events of the examples reach every input.
func TestTransformAppliesSeriesEvents(t *testing.T) {
	a, b := healthy("a", 3*24*60, 100), healthy("b", 3*24*60, 50)
	sale := forecast.Event{Start: t0.Add(30 * time.Hour), End: t0.Add(32 * time.Hour), Category: "campaign"}
	release := forecast.Event{Start: t0.Add(40 * time.Hour), End: t0.Add(41 * time.Hour), Category: "release"}
	b.Events = []forecast.Event{release}
	ex := &Examples{Series: []RawSeries{a, b}, Events: []forecast.Event{sale}}
	sc := schemaFor(t, ex, &SchemaGen{})
	an, _ := validate(t, ex, sc)
	out := run(t, &Transform{Horizons: []time.Duration{15 * time.Minute}}, Inputs{"examples": art(ex), "schema": art(sc), "anomalies": art(an)})
	x := out.Values["transformed"].(*Transformed)
	g := out.Values["transform"].(*TransformGraph)
	if len(x.Inputs) != 2 || len(x.Inputs[0].Events) != 1 || len(x.Inputs[1].Events) != 2 || x.Inputs[1].Events[1] != release {
		t.Fatalf("events %+v / %+v", x.Inputs[0].Events, x.Inputs[1].Events)
	}
	if !slices.Equal(g.Layout.EventCats, []string{"campaign", "release"}) || len(ex.Events) != 1 {
		t.Errorf("layout %v, examples' events %v", g.Layout.EventCats, ex.Events)
	}
}

// TestStorePipelineUsesTheFunnel: with the funnel services in the store,
// the model trained by `lbsys pipeline run` has the funnel's SVD features
// and their SVD basis, and without them it has none.
func TestStorePipelineUsesTheFunnel(t *testing.T) {
	for _, tc := range []struct {
		names      []string
		wantFunnel bool
	}{
		{[]string{"catalog", "cart", "checkout", "payment"}, true},
		{[]string{"alpha", "beta", "gamma", "delta"}, false},
	} {
		ctx := context.Background()
		st := openStore(t)
		for i, in := range synthSeries(4, 12, 15*time.Minute, 13) {
			s := in.Series
			writeLoad(t, st, store.SeriesKey{Service: tc.names[i], Metric: "requests"}, s.Start, s.Step, s.Len(),
				func(j int) float64 { return s.Values[j] })
		}
		dir := t.TempDir()
		md := &StoreMetadata{Store: st, Payloads: &Store{Dir: dir}}
		src := &StoreSource{Store: st, Lookahead: 2 * time.Hour}
		cfg := smallConfig(src)
		cfg.Options.NoLSTM = true
		cfg.Sink = &StoreSink{Store: st, Source: src}
		r := newRunner(t, md, dir)
		res, err := r.Run(ctx, "funnel", Standard(cfg, r.Store, md))
		if err != nil {
			t.Fatal(err)
		}
		m, err := As[*ModelArtifact](res.Artifacts["model"])
		if err != nil {
			t.Fatal(err)
		}
		var feats []string
		for _, f := range m.Model.Features {
			if strings.HasPrefix(f, "funnel_") {
				feats = append(feats, f)
			}
		}
		basis := 0
		for _, sp := range m.Model.Specs {
			basis += len(sp.FunnelBasis)
		}
		if got := m.Model.Layout.Funnel > 0 && len(feats) > 0 && basis > 0; got != tc.wantFunnel {
			t.Errorf("services %v: funnel layout %d, features %v, basis vectors %d; want funnel %v",
				tc.names, m.Model.Layout.Funnel, feats, basis, tc.wantFunnel)
		}
		if o, _ := src.Origin(tc.names[0]); (len(o.Funnel) == 4) != tc.wantFunnel {
			t.Errorf("services %v: origin funnel %v", tc.names, o.Funnel)
		}
	}
}
