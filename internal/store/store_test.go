package store

import (
	"context"

	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestOpenMigratesAndRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SchemaVersion != SchemaVersion() {
		t.Fatalf("schema version %d, want %d", st.SchemaVersion, SchemaVersion())
	}
	s.Close()
	// Reopening applies nothing and keeps the data.
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	s.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n)
	if n != len(migrations) {
		t.Fatalf("%d migration rows, want %d", n, len(migrations))
	}
	// A file from a newer lbsys is refused with a clear message.
	if _, err := s.db.Exec(`INSERT INTO schema_migrations VALUES (?, 'future', 0)`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path, Options{})
	if err == nil || !strings.Contains(err.Error(), "newer lbsys") {
		t.Fatalf("open of a newer schema: err = %v", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "no", "such", "dir.db"), Options{}); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
	if _, err := Open(ctx, path, Options{Retention: Retention{Raw: time.Hour, Minute: time.Minute}}); err == nil {
		t.Fatal("retention with 1m < raw accepted")
	}
}

func mustSeries(t *testing.T, s *Store, svc, metric string) int64 {
	t.Helper()
	id, err := s.EnsureSeries(context.Background(), SeriesKey{Service: svc, Metric: metric}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestWritePointsCountsRollupsAndIdempotence(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	id := mustSeries(t, s, "cart", "requests")
	var batch []Sample
	// 3 minutes of 1-second points, value = second index.
	for i := range 180 {
		batch = append(batch, Sample{Series: id, T: t0.UnixMilli() + int64(i)*1000, V: float64(i)})
	}
	res, err := s.WritePoints(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 180 || res.Updated != 0 || res.Unchanged != 0 {
		t.Fatalf("first write: %+v", res)
	}
	// Re-reading the same seconds does not double points.
	res, err = s.WritePoints(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 0 || res.Unchanged != 180 {
		t.Fatalf("second write: %+v", res)
	}
	raw, minute, hour, _ := s.PointCounts(ctx)
	if raw != 180 || minute != 3 || hour != 1 {
		t.Fatalf("rows raw/1m/1h = %d/%d/%d, want 180/3/1", raw, minute, hour)
	}
	// One changed value updates the raw point and its buckets.
	res, err = s.WritePoints(ctx, []Sample{{Series: id, T: t0.UnixMilli() + 61_000, V: 1000}})
	if err != nil || res.Updated != 1 {
		t.Fatalf("update: %+v %v", res, err)
	}
	b, err := s.Buckets(ctx, id, t0, t0.Add(time.Hour), Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Minute 1 holds 60..119 with 61 replaced by 1000.
	wantSum := float64((60+119)*60/2) - 61 + 1000
	if len(b) != 3 || b[1].N != 60 || b[1].Sum != wantSum || b[1].Max != 1000 || b[1].Min != 60 {
		t.Fatalf("minute buckets: %+v", b)
	}
	h, _ := s.Buckets(ctx, id, t0, t0.Add(time.Hour), Hour)
	if len(h) != 1 || h[0].N != 180 || h[0].Max != 1000 {
		t.Fatalf("hour bucket: %+v", h)
	}
	// Reads at each resolution; Auto picks raw while it is retained.
	for _, tc := range []struct {
		res  Resolution
		n    int
		mean float64 // of the second point
	}{{Raw, 180, 1}, {Minute, 3, wantSum / 60}, {Hour, 1, h[0].Mean()}, {Auto, 180, 1}} {
		pts, err := s.Range(ctx, id, t0, t0.Add(time.Hour), tc.res)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != tc.n {
			t.Fatalf("%s: %d points, want %d", tc.res, len(pts), tc.n)
		}
		idx := min(1, len(pts)-1)
		if math.Abs(pts[idx].V-tc.mean) > 1e-9 {
			t.Errorf("%s: point %d = %v, want %v", tc.res, idx, pts[idx].V, tc.mean)
		}
		if !slices.IsSortedFunc(pts, func(a, b Point) int { return int(a.T - b.T) }) {
			t.Errorf("%s: not sorted", tc.res)
		}
	}
	// A repeated key in one batch: the last value wins.
	res, err = s.WritePoints(ctx, []Sample{{id, t0.UnixMilli(), 5}, {id, t0.UnixMilli(), 6}})
	if err != nil || res.Updated != 1 {
		t.Fatalf("dup in batch: %+v %v", res, err)
	}
	p, _ := s.Range(ctx, id, t0, t0.Add(time.Second), Raw)
	if len(p) != 1 || p[0].V != 6 {
		t.Fatalf("dup in batch stored %+v", p)
	}
	if _, err := s.WritePoints(ctx, []Sample{{id, t0.UnixMilli(), math.NaN()}}); err == nil {
		t.Fatal("NaN accepted")
	}
	if _, err := s.WritePoints(ctx, []Sample{{id + 100, t0.UnixMilli(), 1}}); err == nil {
		t.Fatal("write to an unknown series accepted")
	}
}

func TestGapsStayGaps(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	id := mustSeries(t, s, "cart", "requests")
	// Minutes 0, 1 and 5: the two-minute... three-minute hole stays a hole.
	var batch []Sample
	for _, m := range []int64{0, 1, 5} {
		batch = append(batch, Sample{id, t0.UnixMilli() + m*minuteMs, 10})
	}
	if _, err := s.WritePoints(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, res := range []Resolution{Raw, Minute} {
		pts, _ := s.Range(ctx, id, t0, t0.Add(10*time.Minute), res)
		if len(pts) != 3 {
			t.Fatalf("%s: %d points, want 3 (no zero-filled gap)", res, len(pts))
		}
	}
}

func TestRangeByKeyAndListSeries(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	a := mustSeries(t, s, "cart", "requests")
	mustSeries(t, s, "cart", "errors")
	ep, err := s.EnsureSeries(ctx, SeriesKey{"cart", "10.0.0.1:80", "requests"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.EnsureSeries(ctx, SeriesKey{"cart", "10.0.0.1:80", "requests"}, "other"); again != ep {
		t.Fatalf("EnsureSeries not stable: %d vs %d", again, ep)
	}
	if _, err := s.EnsureSeries(ctx, SeriesKey{Metric: "x"}, "t"); err == nil {
		t.Fatal("empty service accepted")
	}
	s.WritePoints(ctx, []Sample{{a, t0.UnixMilli(), 3}})
	pts, err := s.RangeByKey(ctx, SeriesKey{Service: "cart", Metric: "requests"}, t0, t0.Add(time.Second), Raw)
	if err != nil || len(pts) != 1 || pts[0].V != 3 || !pts[0].Time().Equal(t0) {
		t.Fatalf("RangeByKey = %v, %v", pts, err)
	}
	if _, err := s.RangeByKey(ctx, SeriesKey{Service: "nope", Metric: "requests"}, t0, t0, Raw); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown series: %v", err)
	}
	for _, tc := range []struct {
		f    SeriesFilter
		want int
	}{{SeriesFilter{}, 3}, {SeriesFilter{Service: "cart", Metric: "requests"}, 2}, {SeriesFilter{Endpoint: "-"}, 2},
		{SeriesFilter{Endpoint: "10.0.0.1:80"}, 1}, {SeriesFilter{Service: "x"}, 0}} {
		got, err := s.ListSeries(ctx, tc.f)
		if err != nil || len(got) != tc.want {
			t.Errorf("ListSeries(%+v) = %d series, %v; want %d", tc.f, len(got), err, tc.want)
		}
	}
	all, _ := s.ListSeries(ctx, SeriesFilter{Service: "cart", Metric: "requests", Endpoint: "-"})
	if len(all) != 1 || !all[0].Last.Equal(t0) || all[0].Source != "test" {
		t.Fatalf("series = %+v", all)
	}
}

func TestRangeMany(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{ReadConns: 3})
	ids := fillWeekOfMinutes(t, s, t0, 5)
	got, err := s.RangeMany(ctx, ids, t0, t0.Add(24*time.Hour), Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if len(got[id]) != 1440 {
			t.Fatalf("series %d: %d points", id, len(got[id]))
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.RangeMany(cctx, ids, t0, t0.Add(time.Hour), Minute); err == nil {
		t.Fatal("cancelled RangeMany succeeded")
	}
}

// TestRetentionBoundsGrowth runs a long "ingestion" of 1-second points with
// a short retention and checks that the row counts stop growing, that the
// compacted detail is still readable as rollups, and that a late point
// below the raw floor is handed back as too old.
func TestRetentionBoundsGrowth(t *testing.T) {
	ctx := context.Background()
	// The clock follows the data, as it does for a live ingestion.
	now := t0
	s := openTest(t, Options{Now: func() time.Time { return now }, Retention: Retention{Raw: 10 * time.Minute, Minute: 2 * time.Hour, Hour: 6 * time.Hour}})
	id := mustSeries(t, s, "cart", "requests")
	var rawMax, minuteMax, hourMax int64
	start := t0.UnixMilli()
	const step = 20_000 // 20 s points keep the test quick
	const hours = 60
	for h := range hours {
		var batch []Sample
		for i := int64(0); i < hourMs/step; i++ {
			batch = append(batch, Sample{id, start + int64(h)*hourMs + i*step, float64(i % 100)})
		}
		if _, err := s.WritePoints(ctx, batch); err != nil {
			t.Fatal(err)
		}
		now = time.UnixMilli(batch[len(batch)-1].T + step)
		if _, err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		raw, m, hh, _ := s.PointCounts(ctx)
		rawMax, minuteMax, hourMax = max(rawMax, raw), max(minuteMax, m), max(hourMax, hh)
	}
	// Bounds: the retention, plus the alignment of each floor (a minute, an
	// hour, a day), plus the hour written since the last compaction.
	if rawMax > (11*60+3600)/20 || minuteMax > 4*60 || hourMax > 6+24+1 {
		t.Fatalf("rows grew past retention: raw %d, 1m %d, 1h %d", rawMax, minuteMax, hourMax)
	}
	raw, m, hh, _ := s.PointCounts(ctx)
	if raw > 11*60/20 || m > 3*60 || hh > 6+24 {
		t.Fatalf("after compaction: raw %d, 1m %d, 1h %d", raw, m, hh)
	}
	ser, _ := s.ListSeries(ctx, SeriesFilter{})
	last := ser[0].Last
	// Auto picks the finest resolution retained at the start of the range.
	for _, tc := range []struct {
		from time.Time
		want time.Duration // spacing of the points
	}{{last.Add(-5 * time.Minute), 20 * time.Second}, {last.Add(-90 * time.Minute), time.Minute}, {last.Add(-5 * time.Hour), time.Hour}} {
		pts, err := s.Range(ctx, id, tc.from, last, Auto)
		if err != nil || len(pts) < 2 {
			t.Fatalf("auto from %v: %d points, %v", tc.from, len(pts), err)
		}
		if d := time.Duration(pts[1].T-pts[0].T) * time.Millisecond; d != tc.want {
			t.Errorf("auto from %v: spacing %v, want %v", last.Sub(tc.from), d, tc.want)
		}
	}
	// Hourly buckets survive compaction exactly: 180 points an hour.
	hb, _ := s.Buckets(ctx, id, last.Add(-5*time.Hour), last, Hour)
	if len(hb) == 0 || hb[0].N != 180 || hb[0].Max != 99 {
		t.Fatalf("hour buckets after compaction: %+v", hb)
	}
	res, err := s.WritePoints(ctx, []Sample{{id, start + step, 1}, {id, last.UnixMilli(), 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.TooOld) != 1 || res.TooOld[0].T != start+step || res.Updated != 1 {
		t.Fatalf("late write: %+v", res)
	}
}

func TestChunkEncoding(t *testing.T) {
	var c chunk
	c.set(0, Bucket{N: 1, Sum: 2, Min: 2, Max: 2})
	c.set(59, Bucket{N: 1 << 40, Sum: -1.5, Min: math.Inf(-1), Max: 3})
	c.set(7, Bucket{N: 3, Sum: 0, Min: 0, Max: 0})
	c.clear(7)
	var d chunk
	if err := d.decode(c.encode(), 1000, 10); err != nil {
		t.Fatal(err)
	}
	if d.count() != 2 || d.b[0].T != 1000 || d.b[59].T != 1590 || d.b[59].N != 1<<40 || !math.IsInf(d.b[59].Min, -1) || d.has(7) {
		t.Fatalf("decoded %+v", d)
	}
	tot, ok := d.total()
	if !ok || tot.N != 1<<40+1 || tot.Sum != 0.5 || tot.Max != 3 {
		t.Fatalf("total %+v", tot)
	}
	for _, bad := range [][]byte{nil, {1, 0, 0, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2}} {
		if err := d.decode(bad, 0, 1); err == nil {
			t.Errorf("decode(%v) accepted", bad)
		}
	}
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := s.EnsureSeries(ctx, SeriesKey{Service: fmt.Sprint("svc", w%2), Metric: "requests"}, "t")
			if err != nil {
				errs <- err
				return
			}
			for b := range 10 {
				var batch []Sample
				for i := range 50 {
					batch = append(batch, Sample{id, t0.UnixMilli() + int64(b*50+i)*1000, float64(w)})
				}
				if _, err := s.WritePoints(ctx, batch); err != nil {
					errs <- err
					return
				}
				if _, err := s.Range(ctx, id, t0, t0.Add(time.Hour), Minute); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// A second handle on the same file (another process, in effect).
	other, err := Open(ctx, s.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if _, err := other.Stats(ctx); err != nil {
				errs <- err
				return
			}
			if err := other.SetSyncState(ctx, "k", "v"); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	raw, _, _, _ := s.PointCounts(ctx)
	if raw != 2*500 {
		t.Fatalf("%d raw points, want 1000 (two series × 500 seconds)", raw)
	}
}

func TestCIsRelationsAndGraph(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	cis := []CI{
		{ID: "sn:1", Name: "Checkout", Class: "cmdb_ci_service", Service: "checkout", Source: "servicenow"},
		{ID: "bs:component:default/checkout", Name: "checkout", Class: "component", Service: "checkout", Source: "backstage"},
		{ID: "sn:2", Name: "Payment", Class: "cmdb_ci_service", Service: "payment", Source: "servicenow"},
		{ID: "sn:3", Name: "Cart", Class: "cmdb_ci_service", Service: "cart", Source: "servicenow"},
		{ID: "sn:db", Name: "orders-db", Class: "cmdb_ci_db_instance", Source: "servicenow", Attrs: map[string]string{"env": "prod"}},
		{ID: "bs:api:default/inventory-api", Name: "inventory-api", Class: "api", Source: "backstage"},
		{ID: "bs:component:default/inventory", Name: "inventory", Class: "component", Service: "inventory", Source: "backstage"},
	}
	res, err := s.UpsertCIs(ctx, cis)
	if err != nil || res.Inserted != len(cis) {
		t.Fatalf("UpsertCIs: %+v %v", res, err)
	}
	cis[4].Attrs = map[string]string{"env": "staging"}
	res, _ = s.UpsertCIs(ctx, cis)
	if res.Updated != 1 || res.Unchanged != len(cis)-1 {
		t.Fatalf("second UpsertCIs: %+v", res)
	}
	c, err := s.CI(ctx, "sn:db")
	if err != nil || c.Attrs["env"] != "staging" {
		t.Fatalf("CI = %+v, %v", c, err)
	}
	if _, err := s.CI(ctx, "sn:none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing CI: %v", err)
	}
	known, _ := s.KnownCIs(ctx, []string{"sn:1", "sn:9"})
	if !known["sn:1"] || known["sn:9"] {
		t.Fatalf("KnownCIs = %v", known)
	}
	rels := []Relation{
		{ID: "r1", Parent: "sn:3", Child: "sn:1", Kind: KindDependsOn, Type: "Depends on::Used by", Source: "servicenow"},                // cart → checkout
		{ID: "r2", Parent: "bs:component:default/checkout", Child: "sn:2", Kind: KindDependsOn, Source: "backstage"},                     // checkout → payment
		{ID: "r3", Parent: "sn:2", Child: "sn:db", Kind: KindDependsOn, Source: "servicenow"},                                            // payment → db
		{ID: "r4", Parent: "sn:1", Child: "bs:api:default/inventory-api", Kind: KindConsumesAPI, Source: "backstage"},                    // checkout → api
		{ID: "r5", Parent: "bs:component:default/inventory", Child: "bs:api:default/inventory-api", Kind: KindProvidesAPI, Source: "bs"}, // api → inventory
		{ID: "r6", Parent: "sn:1", Child: "bs:component:default/checkout", Kind: KindDependsOn, Source: "servicenow"},                    // same service: ignored
		{ID: "r7", Parent: "bs:component:default/checkout", Child: "sn:3", Kind: KindPartOf, Source: "backstage"},                        // structure: ignored
	}
	if _, err := s.UpsertRelations(ctx, rels); err != nil {
		t.Fatal(err)
	}
	g, err := s.Graph(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	api := "bs:api:default/inventory-api"
	check("upstream(cart)", g.Upstream("cart"), []string{api, "checkout", "inventory", "payment", "sn:db"})
	check("downstream(sn:db)", g.Downstream("sn:db"), []string{"cart", "checkout", "payment"})
	check("dependsOn(checkout)", g.DependsOn("checkout"), []string{api, "payment"})
	check("dependedOnBy(inventory)", g.DependedOnBy("inventory"), []string{api})
	if g.FanOut("checkout") != 2 || g.FanIn("checkout") != 1 || g.FanOut("nope") != 0 {
		t.Errorf("fan-out/in of checkout = %d/%d", g.FanOut("checkout"), g.FanIn("checkout"))
	}
	if len(g.Cycles()) != 0 {
		t.Errorf("cycles in an acyclic graph: %v", g.Cycles())
	}
	n, _ := g.Node("checkout")
	check("checkout CIs", n.CIs, []string{"bs:component:default/checkout", "sn:1"})
	for in, want := range map[string]string{"sn:1": "checkout", "orders-db": "sn:db", "Payment": "payment", "payment": "payment"} {
		if k, ok := g.Resolve(in); !ok || k != want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", in, k, ok, want)
		}
	}
	// payment → cart closes cart → checkout → payment; db → db is a self-loop.
	s.UpsertRelations(ctx, []Relation{
		{ID: "r8", Parent: "sn:2", Child: "sn:3", Kind: KindDependsOn, Source: "servicenow"},
		{ID: "r9", Parent: "sn:db", Child: "sn:db", Kind: KindDependsOn, Source: "servicenow"},
	})
	g, _ = s.Graph(ctx)
	cyc := g.Cycles()
	if len(cyc) != 2 || !slices.Equal(cyc[0], []string{"cart", "checkout", "payment"}) || !slices.Equal(cyc[1], []string{"sn:db"}) {
		t.Fatalf("cycles = %v", cyc)
	}
	if up := g.Upstream("cart"); !slices.Contains(up, "cart") {
		t.Errorf("a node on a cycle is its own upstream: %v", up)
	}
	// Replacing a scope's relations deletes the ones no longer declared.
	_, deleted, err := s.ReplaceRelations(ctx, []string{"r2", "r4"},
		[]Relation{{ID: "r2", Parent: "bs:component:default/checkout", Child: "sn:2", Kind: KindDependsOn, Source: "backstage"}})
	if err != nil || deleted != 1 {
		t.Fatalf("ReplaceRelations: deleted %d, %v", deleted, err)
	}
	all, _ := s.Relations(ctx)
	if len(all) != len(rels)+2-1 {
		t.Fatalf("%d relations left", len(all))
	}
}

func TestTickets(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	ts := []Ticket{
		{ID: "i1", Kind: Incident, Number: "INC1", Source: "sn", Service: "cart", Start: h(0), End: h(2), Opened: h(0), Resolved: h(2), Priority: 1},
		{ID: "i2", Kind: Incident, Number: "INC2", Source: "sn", Service: "checkout", Start: h(5)}, // still open
		{ID: "c1", Kind: Change, Number: "CHG1", Source: "sn", Service: "cart", Start: h(3), End: h(4), Category: "normal"},
	}
	res, err := s.UpsertTickets(ctx, ts)
	if err != nil || res.Inserted != 3 {
		t.Fatalf("UpsertTickets: %+v %v", res, err)
	}
	res, _ = s.UpsertTickets(ctx, ts)
	if res.Unchanged != 3 {
		t.Fatalf("re-upsert: %+v", res)
	}
	ts[1].State = "resolved"
	ts[1].End = h(6)
	res, _ = s.UpsertTickets(ctx, ts[1:2])
	if res.Updated != 1 {
		t.Fatalf("update: %+v", res)
	}
	for _, tc := range []struct {
		q    TicketQuery
		inc  []string
		chg  []string
		name string
	}{
		{TicketQuery{From: h(-1), To: h(10)}, []string{"i1", "i2"}, []string{"c1"}, "all"},
		{TicketQuery{From: h(1), To: h(3)}, []string{"i1"}, nil, "overlap start"},
		{TicketQuery{From: h(2), To: h(3)}, nil, nil, "end is exclusive"},
		{TicketQuery{From: h(0), To: h(10), Service: "checkout"}, []string{"i2"}, nil, "by service"},
	} {
		inc, err := s.Incidents(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		chg, _ := s.Changes(ctx, tc.q)
		ids := func(l []Ticket) []string {
			var out []string
			for _, x := range l {
				out = append(out, x.ID)
			}
			return out
		}
		if !slices.Equal(ids(inc), tc.inc) || !slices.Equal(ids(chg), tc.chg) {
			t.Errorf("%s: incidents %v changes %v; want %v %v", tc.name, ids(inc), ids(chg), tc.inc, tc.chg)
		}
	}
	got, err := s.Ticket(ctx, "i1")
	if err != nil || !got.Resolved.Equal(h(2)) || got.Priority != 1 || !got.Closed.IsZero() {
		t.Fatalf("Ticket = %+v, %v", got, err)
	}
	if _, err := s.UpsertTickets(ctx, []Ticket{{ID: "x", Kind: "problem", Source: "sn", Start: h(0)}}); err == nil {
		t.Fatal("unknown kind accepted")
	}
}

func TestEventsReplaceAndQuery(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	d := func(n int) time.Time { return t0.AddDate(0, 0, n) }
	evs := []Event{
		{Calendar: "marketing", UID: "bf", Start: d(0), End: d(1), AllDay: true, Summary: "Black Friday", Categories: []string{"campaign", "sale"}},
		{Calendar: "marketing", UID: "weekly", Start: d(2), End: d(2).Add(time.Hour), Summary: "Newsletter", Categories: []string{"campaign"}},
		{Calendar: "marketing", UID: "weekly", Start: d(9), End: d(9).Add(time.Hour), Summary: "Newsletter", Categories: []string{"campaign"}},
	}
	res, del, err := s.ReplaceEvents(ctx, "marketing", d(-30), d(30), evs)
	if err != nil || res.Inserted != 3 || del != 0 {
		t.Fatalf("ReplaceEvents: %+v %d %v", res, del, err)
	}
	if _, _, err := s.ReplaceEvents(ctx, "ops", d(-30), d(30), []Event{{Calendar: "ops", UID: "rel", Start: d(1), End: d(1).Add(time.Hour), Categories: []string{"release"}}}); err != nil {
		t.Fatal(err)
	}
	// The file changes: the second newsletter is gone, Black Friday moved.
	evs2 := []Event{evs[1], {Calendar: "marketing", UID: "bf", Start: d(0), End: d(1), AllDay: true, Summary: "Black Friday!", Categories: []string{"sale", "campaign"}}}
	res, del, err = s.ReplaceEvents(ctx, "marketing", d(-30), d(30), evs2)
	if err != nil || res.Updated != 1 || res.Unchanged != 1 || del != 1 {
		t.Fatalf("second ReplaceEvents: %+v %d %v", res, del, err)
	}
	for _, tc := range []struct {
		q    EventQuery
		want []string
	}{
		{EventQuery{From: d(-1), To: d(20)}, []string{"bf", "rel", "weekly"}},
		{EventQuery{From: d(-1), To: d(20), Calendars: []string{"marketing"}}, []string{"bf", "weekly"}},
		{EventQuery{From: d(-1), To: d(20), Categories: []string{"Sale", "release"}}, []string{"bf", "rel"}},
		{EventQuery{From: d(1), To: d(2)}, []string{"rel"}}, // bf ends at d(1): exclusive
	} {
		got, err := s.Events(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var uids []string
		for _, e := range got {
			uids = append(uids, e.UID)
		}
		if !slices.Equal(uids, tc.want) {
			t.Errorf("Events(%+v) = %v, want %v", tc.q, uids, tc.want)
		}
	}
	got, _ := s.Events(ctx, EventQuery{From: d(0), To: d(1), Categories: []string{"sale"}})
	if len(got) != 1 || !got[0].AllDay || !slices.Equal(got[0].Categories, []string{"campaign", "sale"}) || got[0].Summary != "Black Friday!" {
		t.Fatalf("event = %+v", got)
	}
}

func TestQuarantineRunsAndSyncState(t *testing.T) {
	ctx := context.Background()
	now := t0
	s := openTest(t, Options{Now: func() time.Time { return now }, Retention: Retention{QuarantineRows: 5}})
	run, err := s.BeginIngestRun(ctx, "csv", "--file x.csv")
	if err != nil {
		t.Fatal(err)
	}
	var rows []Quarantined
	for i := range 8 {
		rows = append(rows, Quarantined{RunID: run, Source: "csv", Location: fmt.Sprintf("x.csv:%d", i+2),
			Reason: Reasons[i%len(Reasons)], Detail: "d", Raw: strings.Repeat("x", 5000)})
	}
	if err := s.Quarantine(ctx, rows); err != nil {
		t.Fatal(err)
	}
	latest, _ := s.LatestQuarantined(ctx, 3)
	if len(latest) != 3 || latest[0].Location != "x.csv:9" || latest[0].RunID != run || len(latest[0].Raw) > maxRaw+4 {
		t.Fatalf("latest = %+v", latest[0])
	}
	counts, _ := s.QuarantineCounts(ctx)
	if len(counts) != 8 {
		t.Fatalf("counts = %+v", counts)
	}
	c := Counts{Inserted: 10, Quarantined: 8}
	if err := s.UpdateIngestRun(ctx, run, c, "ok", ""); err != nil {
		t.Fatal(err)
	}
	runs, _ := s.IngestRuns(ctx, 10)
	if len(runs) != 1 || runs[0].Inserted != 10 || runs[0].Status != "ok" || !runs[0].Finished.Equal(t0) {
		t.Fatalf("runs = %+v", runs)
	}
	// Retention trims the quarantine to its bound, oldest first.
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	latest, _ = s.LatestQuarantined(ctx, 100)
	if len(latest) != 5 || latest[4].Location != "x.csv:5" {
		t.Fatalf("after trim: %d rows, oldest %s", len(latest), latest[len(latest)-1].Location)
	}
	if _, ok, _ := s.SyncState(ctx, "sn:incident"); ok {
		t.Fatal("unset sync state reported set")
	}
	s.SetSyncState(ctx, "sn:incident", "2026-11-27 10:00:00")
	s.SetSyncState(ctx, "sn:incident", "2026-11-27 11:00:00")
	if v, ok, _ := s.SyncState(ctx, "sn:incident"); !ok || v != "2026-11-27 11:00:00" {
		t.Fatalf("sync state = %q %v", v, ok)
	}
	s.DeleteSyncState(ctx, "sn:incident")
	if _, ok, _ := s.SyncState(ctx, "sn:incident"); ok {
		t.Fatal("deleted sync state still set")
	}
}

func TestPipelineMetadata(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	run, err := s.PutPipelineRun(ctx, PipelineRun{Pipeline: "forecast", Params: json.RawMessage(`{"horizon":"1h"}`)})
	if err != nil || !strings.HasPrefix(run, "run-") {
		t.Fatalf("PutPipelineRun = %q, %v", run, err)
	}
	if _, err := s.PutPipelineRun(ctx, PipelineRun{Pipeline: "forecast", Params: json.RawMessage(`{bad`)}); err == nil {
		t.Fatal("bad params accepted")
	}
	ex, existed, err := s.PutArtifact(ctx, Artifact{Kind: "Examples", Digest: "sha256:e1", Producer: "ExampleGen", RunID: run})
	if err != nil || existed {
		t.Fatal(err)
	}
	// The same content is the same artifact.
	again, existed, _ := s.PutArtifact(ctx, Artifact{Kind: "Examples", Digest: "sha256:e1"})
	if again != ex || !existed {
		t.Fatalf("dedupe: %d %v, want %d true", again, existed, ex)
	}
	model, _, err := s.PutArtifact(ctx, Artifact{Kind: "Model", Name: "cart", Digest: "sha256:m1", Payload: []byte("weights"),
		Props: map[string]string{"mase": "0.8"}, RunID: run, Producer: "Trainer"})
	if err != nil {
		t.Fatal(err)
	}
	e1, err := s.PutExecution(ctx, Execution{RunID: run, Component: "ExampleGen", Fingerprint: "f-ex", Status: RunSucceeded,
		Outputs: map[string]int64{"examples": ex}, Seconds: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := s.PutExecution(ctx, Execution{RunID: run, Component: "Trainer", Fingerprint: "f-tr", Status: RunSucceeded,
		Inputs: map[string]int64{"examples": ex}, Outputs: map[string]int64{"model": model}, Params: json.RawMessage(`{"lr":0.1}`),
		Metrics: map[string]float64{"loss": 0.25}})
	s.PutExecution(ctx, Execution{RunID: run, Component: "Trainer", Fingerprint: "f-tr", Status: RunFailed, Error: "diverged"})
	if err := s.FinishPipelineRun(ctx, run, RunSucceeded, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishPipelineRun(ctx, "run-none", RunFailed, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finish unknown run: %v", err)
	}
	r, err := s.PipelineRunByID(ctx, run)
	if err != nil || r.Status != RunSucceeded || r.Finished.IsZero() || string(r.Params) != `{"horizon":"1h"}` {
		t.Fatalf("run = %+v, %v", r, err)
	}
	if runs, _ := s.PipelineRuns(ctx, "forecast", 10); len(runs) != 1 {
		t.Fatalf("runs = %+v", runs)
	}
	execs, err := s.Executions(ctx, run)
	if err != nil || len(execs) != 3 || execs[0].ID != e1 || execs[1].Inputs["examples"] != ex || execs[1].Outputs["model"] != model ||
		execs[1].Metrics["loss"] != 0.25 || string(execs[1].Params) != `{"lr":0.1}` || execs[2].Error != "diverged" {
		t.Fatalf("executions = %+v, %v", execs, err)
	}
	// The cache hit is the succeeded execution, not the newer failed one.
	if c, _ := s.CachedExecution(ctx, "Trainer", "f-tr"); c == nil || c.ID != e2 {
		t.Fatalf("cached = %+v", c)
	}
	if c, _ := s.CachedExecution(ctx, "Trainer", "other"); c != nil {
		t.Fatalf("cache hit for an unknown fingerprint: %+v", c)
	}
	if p, err := s.Producer(ctx, model); err != nil || p.ID != e2 {
		t.Fatalf("producer = %+v, %v", p, err)
	}
	if _, err := s.Producer(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("producer of nothing: %v", err)
	}
	if a, _ := s.LatestArtifact(ctx, "Trainer", "Model"); a == nil || a.ID != model || a.Props["mase"] != "0.8" || a.Payload != nil {
		t.Fatalf("latest model = %+v", a)
	}
	if a, _ := s.LatestArtifact(ctx, "Pusher", "Model"); a != nil {
		t.Fatalf("latest of a component that never ran: %+v", a)
	}
	if p, _ := s.ArtifactPayload(ctx, model); string(p) != "weights" {
		t.Fatalf("payload = %q", p)
	}
	if l, _ := s.Artifacts(ctx, ArtifactQuery{Kind: "Model", Name: "cart", Limit: 1}); len(l) != 1 || l[0].ID != model {
		t.Fatalf("artifacts = %+v", l)
	}
	if _, err := s.ArtifactByID(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown artifact: %v", err)
	}
	if p, _ := s.LatestPushed(ctx, "cart/requests"); p != nil {
		t.Fatalf("pushed before any push: %+v", p)
	}
	s.SetPushed(ctx, Pushed{Series: "cart/requests", RunID: run, ModelID: model, MAE: map[int]float64{1: 2.5}, MASE: map[int]float64{1: 0.8, 60: 0.9}})
	s.SetPushed(ctx, Pushed{Series: "cart/requests", RunID: run, ModelID: model + 1})
	if p, _ := s.LatestPushed(ctx, "cart/requests"); p == nil || p.ModelID != model+1 {
		t.Fatalf("latest pushed = %+v", p)
	}
	// Data lineage: a series fed the examples that trained the model.
	if err := s.AddLineage(ctx,
		LineageEdge{From: SeriesRef(1), To: ArtifactRef(ex), Kind: "input", RunID: run},
		LineageEdge{From: ArtifactRef(ex), To: ArtifactRef(model), Kind: "trained_on", RunID: run},
		LineageEdge{From: ArtifactRef(ex), To: ArtifactRef(model), Kind: "trained_on", RunID: run}, // idempotent
	); err != nil {
		t.Fatal(err)
	}
	in, _ := s.Lineage(ctx, ArtifactRef(model), Inputs, 0)
	if len(in) != 2 || in[1].From != "series:1" {
		t.Fatalf("lineage inputs of the model = %+v", in)
	}
	out, _ := s.Lineage(ctx, "series:1", Outputs, 1)
	if len(out) != 1 || out[0].To != ArtifactRef(ex) {
		t.Fatalf("lineage outputs depth 1 = %+v", out)
	}
}

func TestStatsAndFileSize(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	id := mustSeries(t, s, "cart", "requests")
	s.WritePoints(ctx, []Sample{{id, t0.UnixMilli(), 1}})
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Series != 1 || st.RawPoints != 1 || st.MinutePoints != 1 || st.HourPoints != 1 || st.FileBytes == 0 {
		t.Fatalf("stats = %+v", st)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Size() == 0 {
		t.Fatalf("store file: %v", err)
	}
}
