package ingest

// The fake server answers in the format of the Prometheus HTTP API
// (https://prometheus.io/docs/prometheus/latest/querying/api/): the
// {"status", "data": {"resultType": "matrix", "result": [{"metric", "values":
// [[<unix seconds>, "<value>"]]}]}} envelope, {"status": "error",
// "errorType", "error"} with 400 for a bad query, 503 when unavailable, and
// "warnings". The real-server test is prometheus_integration_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

type fakeProm struct {
	mu       sync.Mutex
	requests []map[string]string
	fail     []int // statuses to answer first
	series   func(start, end, step int64) []map[string]any
	warnings []string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/api/v1/query_range" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	r.ParseForm()
	req := map[string]string{"query": r.Form.Get("query"), "start": r.Form.Get("start"), "end": r.Form.Get("end"), "step": r.Form.Get("step")}
	f.requests = append(f.requests, req)
	w.Header().Set("Content-Type", "application/json")
	if len(f.fail) > 0 {
		status := f.fail[0]
		f.fail = f.fail[1:]
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "unavailable", "error": "too busy"})
		return
	}
	if strings.Contains(req["query"], "((") {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "bad_data",
			"error": `invalid parameter "query": 1:3: parse error: unexpected "("`})
		return
	}
	start, _ := strconv.ParseInt(req["start"], 10, 64)
	end, _ := strconv.ParseInt(req["end"], 10, 64)
	step, _ := strconv.ParseInt(req["step"], 10, 64)
	json.NewEncoder(w).Encode(map[string]any{"status": "success", "warnings": f.warnings,
		"data": map[string]any{"resultType": "matrix", "result": f.series(start, end, step)}})
}

func newFakeProm(t testing.TB, f *fakeProm) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// promValues makes [[t, "v"]] for every step in [start, end].
func promValues(start, end, step int64, v func(ts int64) string) [][]any {
	var out [][]any
	for ts := start; ts <= end; ts += step {
		out = append(out, []any{ts, v(ts)})
	}
	return out
}

func TestPrometheusChunksAndMapsSeries(t *testing.T) {
	st := testStore(t)
	f := &fakeProm{warnings: []string{"PromQL info: metric might not be a counter"}}
	f.series = func(start, end, step int64) []map[string]any {
		return []map[string]any{
			{"metric": map[string]string{"service": "cart"}, "values": promValues(start, end, step, func(ts int64) string { return fmt.Sprint(ts % 100) })},
			{"metric": map[string]string{"service": "checkout", "endpoint": "10.0.0.2:80"}, "values": promValues(start, end, step, func(ts int64) string {
				if ts%600 == 0 {
					return "NaN"
				}
				return "1.5"
			})},
			{"metric": map[string]string{"job": "lbsys"}, "values": promValues(start, end, step, func(int64) string { return "1" })},
		}
	}
	url := newFakeProm(t, f)
	end := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	o := PrometheusOptions{URL: url, Query: `sum(rate(lbsys_requests_total[1m])) by (service)`, Start: end.Add(-time.Hour).Add(17 * time.Second),
		End: end, Step: time.Minute, ChunkPoints: 25, Retry: Retry{Sleep: (&noSleep{}).sleep}}
	rep, err := runSource(t, st, "prometheus", func(ctx context.Context, run *Run) error { return ImportPrometheus(ctx, run, o) })
	if err != nil {
		t.Fatal(err)
	}
	// Start aligned down to 09:00 → 61 instants in 3 chunks of ≤ 25.
	if len(f.requests) != 3 {
		t.Fatalf("%d requests: %v", len(f.requests), f.requests)
	}
	if f.requests[0]["start"] != fmt.Sprint(end.Add(-time.Hour).Unix()) || f.requests[0]["step"] != "60" ||
		f.requests[1]["start"] != fmt.Sprint(end.Add(-time.Hour).Unix()+25*60) || f.requests[2]["end"] != fmt.Sprint(end.Unix()) {
		t.Errorf("chunks: %v", f.requests)
	}
	metric := "query_" + fmt.Sprintf("%x", sha256sum(o.Query))[:8]
	cart := points(t, st, store.SeriesKey{Service: "cart", Metric: metric}, store.Raw)
	if len(cart) != 61 {
		t.Fatalf("cart: %d points", len(cart))
	}
	ep := points(t, st, store.SeriesKey{Service: "checkout", Endpoint: "10.0.0.2:80", Metric: metric}, store.Raw)
	// 7 NaN instants (every 10 minutes) are quarantined, not stored.
	if len(ep) != 61-7 || rep.Reasons[store.ReasonNotFinite] != 7 {
		t.Errorf("checkout endpoint: %d points; %s", len(ep), rep)
	}
	// The series without a service label is quarantined once per chunk.
	if rep.Reasons[store.ReasonMissingField] != 3 {
		t.Errorf("%s", rep)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "might not be a counter") {
		t.Errorf("notes %v", rep.Notes)
	}
	// The same import again changes nothing.
	rep, _ = runSource(t, st, "prometheus", func(ctx context.Context, run *Run) error { return ImportPrometheus(ctx, run, o) })
	if rep.Inserted != 0 || rep.Updated != 0 || rep.Unchanged != 61+54 {
		t.Errorf("re-import: %s", rep)
	}
}

func TestPrometheusServiceOverrideAndConflicts(t *testing.T) {
	st := testStore(t)
	f := &fakeProm{series: func(start, end, step int64) []map[string]any {
		return []map[string]any{
			{"metric": map[string]string{"__name__": "up", "instance": "a"}, "values": promValues(start, end, step, func(int64) string { return "1" })},
			{"metric": map[string]string{"__name__": "up", "instance": "b"}, "values": promValues(start, end, step, func(int64) string { return "0" })},
		}
	}}
	url := newFakeProm(t, f)
	end := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	o := PrometheusOptions{URL: url, Query: "up", Service: "fleet", Start: end.Add(-10 * time.Minute), End: end, Step: time.Minute}
	rep, err := runSource(t, st, "prometheus", func(ctx context.Context, run *Run) error { return ImportPrometheus(ctx, run, o) })
	if err != nil {
		t.Fatal(err)
	}
	if len(points(t, st, store.SeriesKey{Service: "fleet", Metric: "up"}, store.Raw)) != 11 || rep.Reasons[store.ReasonDuplicateID] != 1 {
		t.Errorf("%s", rep)
	}
}

func TestPrometheusErrorsAndRetries(t *testing.T) {
	end := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	one := func(start, end, step int64) []map[string]any {
		return []map[string]any{{"metric": map[string]string{"service": "a"}, "values": promValues(start, end, step, func(int64) string { return "2" })}}
	}
	for _, tc := range []struct {
		name    string
		f       *fakeProm
		o       PrometheusOptions
		wantErr string
		waits   int
	}{
		{"bad query", &fakeProm{series: one}, PrometheusOptions{Query: "sum((x"}, "bad_data: invalid parameter", 0},
		{"503 then 429 then ok", &fakeProm{series: one, fail: []int{503, 429}}, PrometheusOptions{Query: "x"}, "", 2},
		{"unavailable", &fakeProm{series: one, fail: []int{503, 503, 503}}, PrometheusOptions{Query: "x", Retry: Retry{Attempts: 3}}, "giving up after 3 attempts", 2},
		{"no query", &fakeProm{series: one}, PrometheusOptions{}, "--query is required", 0},
		{"sub-second step", &fakeProm{series: one}, PrometheusOptions{Query: "x", Step: 500 * time.Millisecond}, "whole seconds", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testStore(t)
			ns := &noSleep{}
			o := tc.o
			o.URL = newFakeProm(t, tc.f)
			o.Start, o.End = end.Add(-5*time.Minute), end
			if o.Step == 0 {
				o.Step = time.Minute
			}
			o.Retry.Sleep = ns.sleep
			rep, err := runSource(t, st, "prometheus", func(ctx context.Context, run *Run) error { return ImportPrometheus(ctx, run, o) })
			if tc.wantErr == "" && (err != nil || rep.Inserted != 6) {
				t.Fatalf("%s %v", rep, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if len(ns.waits) != tc.waits {
				t.Errorf("waits %v", ns.waits)
			}
		})
	}
}

func TestParsePromMatrix(t *testing.T) {
	series, _, err := ParsePromMatrix([]byte(`{"status":"success","data":{"resultType":"matrix","result":[
		{"metric":{"service":"a"},"values":[[1764237600.5,"1"],[1764237601,"+Inf"],["x","1"],[1764237602,1],[1764237603,"abc"],[1764237604]]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := series[0].Values
	if v[0].Problem != nil || v[0].Time.UnixMilli() != 1764237600500 || v[0].Value != 1 {
		t.Errorf("v0 %+v", v[0])
	}
	for i, want := range []store.Reason{"", "", store.ReasonUnparseableTime, store.ReasonNotANumber, store.ReasonNotANumber, store.ReasonMalformed} {
		got := store.Reason("")
		if v[i].Problem != nil {
			got = v[i].Problem.Reason
		}
		if got != want {
			t.Errorf("value %d: %q, want %q", i, got, want)
		}
	}
	for _, body := range []string{`{"status":"success","data":{"resultType":"vector","result":[]}}`, `{"status":"error","errorType":"timeout","error":"query timed out"}`, `<html>`} {
		if _, _, err := ParsePromMatrix([]byte(body)); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

// TestPrometheusSamplesOutsideTheRangeOrTooFarAhead: a sample outside the
// range asked for (a server or proxy bug: 1970, 2126) is quarantined as
// invalid_value, one inside it but more than a day ahead of the clock (an
// --until in the future) as future_time; the others are stored, in order.
// Before, the 2126 sample was stored and every later sample of its series
// was quarantined as out_of_order.
func TestPrometheusSamplesOutsideTheRangeOrTooFarAhead(t *testing.T) {
	now := time.Now().Truncate(time.Minute)
	ahead := now.Add(36 * time.Hour)
	url := newFakeProm(t, &fakeProm{series: func(start, end, step int64) []map[string]any {
		vals := promValues(start, end, step, func(int64) string { return "1" })
		// Strays at the front: the order a sample comes in matters.
		vals = append([][]any{{4955897600, "7"}, {0, "8"}}, vals...)
		return []map[string]any{{"metric": map[string]string{"service": "cart"}, "values": vals}}
	}})
	st := testStore(t)
	rep, err := runSource(t, st, "prometheus", func(ctx context.Context, run *Run) error {
		return ImportPrometheus(ctx, run, PrometheusOptions{URL: url, Query: "up", Metric: "up", Step: time.Hour,
			Start: now.Add(-2 * time.Hour), End: ahead, ChunkPoints: 100})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The hourly steps from now-2h to now+36h: those up to now+24h are
	// stored, the 12 after are future_time.
	if rep.Reasons[store.ReasonInvalidValue] != 2 || rep.Reasons[store.ReasonFutureTime] != 12 || rep.Inserted != 27 || rep.Reasons[store.ReasonOutOfOrder] != 0 {
		t.Fatalf("report %s", rep)
	}
	if d := rep.First[store.ReasonInvalidValue].Detail; !strings.Contains(d, "2127-01-17") || !strings.Contains(d, "outside the range") {
		t.Errorf("detail %q", d)
	}
}
