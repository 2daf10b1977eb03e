package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/telemetry"
)

func TestTelemetryRecordFormat(t *testing.T) {
	// The importer reads exactly what the proxy writes.
	rec := telemetry.Record{Time: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Service: "cart", Endpoint: "10.0.0.1:80",
		Requests: 12, Errors: 1, P50ms: 1.5, P90ms: 3, P99ms: 9.25, InFlight: 2, BytesIn: 100, BytesOut: 2000}
	b, _ := json.Marshal(rec)
	got, p := ParseTelemetryRecord(b)
	if p != nil {
		t.Fatalf("%s: %v", b, p)
	}
	want := map[string]float64{"requests": 12, "errors": 1, "p50_ms": 1.5, "p90_ms": 3, "p99_ms": 9.25, "in_flight": 2, "bytes_in": 100, "bytes_out": 2000}
	if !got.Time.Equal(rec.Time) || got.Service != "cart" || got.Endpoint != "10.0.0.1:80" || len(got.Values) != len(want) {
		t.Fatalf("%+v", got)
	}
	for k, v := range want {
		if got.Values[k] != v {
			t.Errorf("%s = %v, want %v", k, got.Values[k], v)
		}
	}
	// A second without requests has no latency (a gap, not a zero).
	rec.Requests, rec.P50ms, rec.P90ms, rec.P99ms = 0, 0, 0, 0
	b, _ = json.Marshal(rec)
	got, _ = ParseTelemetryRecord(b)
	if _, ok := got.Values["p50_ms"]; ok || got.Values["requests"] != 0 {
		t.Errorf("idle second: %v", got.Values)
	}
}

func line(ts int, service, endpoint string, requests any) string {
	m := map[string]any{"ts": time.Date(2026, 11, 27, 10, 0, ts, 0, time.UTC).Format(time.RFC3339), "service": service,
		"requests": requests, "errors": 0, "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "in_flight": 0, "bytes_in": 10, "bytes_out": 20}
	if endpoint != "" {
		m["endpoint"] = endpoint
	}
	b, _ := json.Marshal(m)
	return string(b) + "\n"
}

func TestTelemetryFileValidation(t *testing.T) {
	st := testStore(t)
	path := filepath.Join(t.TempDir(), "records.jsonl")
	lines := []string{
		line(0, "app", "", 5), // 1 ok
		"{not json\n",         // 2 malformed
		line(1, "", "", 5),    // 3 missing_field: empty service
		`{"ts":"2026-11-27T10:00:02Z","service":"app"}` + "\n",                         // 4 missing_field: requests
		line(3, "app", "", "many"),                                                     // 5 not_a_number
		line(4, "app", "", -1),                                                         // 6 negative_count
		strings.Replace(line(5, "app", "", 5), "2026-11-27T10:00:05Z", "yesterday", 1), // 7 unparseable_time
		line(6, "app", "", 5),                                                          // 8 ok
		line(6, "app", "", 6),                                                          // 9 duplicate_timestamp
		line(2, "app", "", 5),                                                          // 10 out_of_order
		line(6, "app", "10.0.0.1:80", 5),                                               // 11 ok: another series
		`{"ts":"2026-11-27T10:00:07Z","service":"app","endpoint":7,"requests":1,"errors":0,"p50_ms":1,"p90_ms":1,"p99_ms":1,"in_flight":0,"bytes_in":0,"bytes_out":0}` + "\n", // 12 invalid_value
		"\n",                           // 13 blank: ignored
		`{"ts":"2026-11-27T10:00:09Z"`, // 14 unfinished line: waits
	}
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644)
	rep, err := runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
		return ImportTelemetryFile(ctx, run, TelemetryFileOptions{Path: path})
	})
	if err != nil {
		t.Fatal(err)
	}
	q := quarantined(t, st)
	want := map[int]store.Reason{2: store.ReasonMalformed, 3: store.ReasonMissingField, 4: store.ReasonMissingField,
		5: store.ReasonNotANumber, 6: store.ReasonNegative, 7: store.ReasonUnparseableTime, 9: store.ReasonDuplicateTimestamp,
		10: store.ReasonOutOfOrder, 12: store.ReasonInvalidValue}
	for n, r := range want {
		loc := fmt.Sprintf("%s:%d", path, n)
		if q[loc].Reason != r {
			t.Errorf("line %d: %q (%s), want %s", n, q[loc].Reason, q[loc].Detail, r)
		}
	}
	// 3 good records × 8 metrics.
	if rep.Inserted != 24 || rep.Quarantined != int64(len(want)) || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "unfinished line") {
		t.Errorf("report %s, notes %v", rep, rep.Notes)
	}
	// The proxy finishes the line: the next run reads only it.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`,"service":"app","requests":1,"errors":0,"p50_ms":1,"p90_ms":1,"p99_ms":1,"in_flight":0,"bytes_in":0,"bytes_out":0}` + "\n")
	f.Close()
	rep, err = runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
		return ImportTelemetryFile(ctx, run, TelemetryFileOptions{Path: path})
	})
	if err != nil || rep.Inserted != 8 || rep.Quarantined != 0 || rep.Unchanged != 0 {
		t.Errorf("resumed run: %s %v", rep, err)
	}
	if q := quarantined(t, st); q[path+":14"].Reason != "" {
		t.Errorf("the completed line was quarantined: %+v", q[path+":14"])
	}
	// Reading the whole file again stores nothing twice.
	rep, _ = runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
		return ImportTelemetryFile(ctx, run, TelemetryFileOptions{Path: path, FromStart: true})
	})
	if rep.Inserted != 0 || rep.Unchanged != 32 {
		t.Errorf("re-read from start: %s", rep)
	}
}

func TestTelemetryFileFollowRotationTruncation(t *testing.T) {
	st := testStore(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "records.jsonl")
	write := func(p string, flag int, secs ...int) {
		f, err := os.OpenFile(p, flag|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secs {
			f.WriteString(line(s, "app", "", s))
		}
		f.Close()
	}
	write(path, os.O_CREATE|os.O_TRUNC, 0, 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run, err := Begin(ctx, st, "telemetry", "follow")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- ImportTelemetryFile(ctx, run, TelemetryFileOptions{Path: path, Follow: true, Interval: 5 * time.Millisecond})
	}()
	key := store.SeriesKey{Service: "app", Metric: "requests"}
	have := func(n int) func() bool {
		return func() bool {
			pts, err := st.RangeByKey(context.Background(), key, time.Unix(0, 0), time.Now().Add(24*time.Hour), store.Raw)
			return err == nil && len(pts) == n
		}
	}
	eventually(t, 10*time.Second, "the first 3 seconds", have(3))
	write(path, os.O_APPEND, 3, 4)
	eventually(t, 10*time.Second, "appended seconds", have(5))
	// Rotation: the proxy's file is renamed and a new one started.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write(path, os.O_CREATE|os.O_TRUNC, 10, 11)
	eventually(t, 10*time.Second, "the rotated file's seconds", have(7))
	// Truncation in place.
	write(path, os.O_TRUNC, 20)
	eventually(t, 10*time.Second, "the truncated file's second", have(8))
	cancel()
	err = <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended with %v, want context.Canceled", err)
	}
	rep, _ := run.Finish(ctx, err)
	if rep.Quarantined != 0 || rep.Inserted != 8*8-3 { // second 0 has no requests, so no latencies
		t.Errorf("report %s", rep)
	}
	notes := strings.Join(rep.Notes, "\n")
	if strings.Count(notes, "rotated or truncated") < 2 {
		t.Errorf("notes: %s", notes)
	}
	runs, _ := st.IngestRuns(context.Background(), 1)
	if runs[0].Status != "interrupted" {
		t.Errorf("run status %q", runs[0].Status)
	}
}

func TestTelemetryAdminFollowSurvivesFailures(t *testing.T) {
	st := testStore(t)
	var calls atomic.Int64
	served := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n == 1 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		since := r.URL.Query().Get("since")
		var recs []json.RawMessage
		for s := range 3 {
			ts := time.Date(2026, 11, 27, 10, 0, s, 0, time.UTC)
			if since == "" || ts.Format(time.RFC3339) >= since {
				recs = append(recs, json.RawMessage(line(s, "app", "", 1)))
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"records": recs})
		select {
		case served <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	run, _ := Begin(ctx, st, "telemetry", "")
	done := make(chan error, 1)
	go func() {
		done <- ImportTelemetryAdmin(ctx, run, TelemetryAdminOptions{URL: srv.URL, Follow: true, Interval: time.Millisecond})
	}()
	<-served
	<-served // the second successful poll asked with since= and got nothing new
	cancel()
	err := <-done
	rep, _ := run.Finish(ctx, err)
	if rep.Inserted != 3*8 || rep.Unchanged != 0 {
		// 3 seconds × 8 metrics, each read once.
		t.Errorf("report %s", rep)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "503") {
		t.Errorf("notes %v", rep.Notes)
	}
	// Without --follow a failure is an error.
	calls.Store(0)
	_, err = runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
		return ImportTelemetryAdmin(ctx, run, TelemetryAdminOptions{URL: srv.URL})
	})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("single poll of a failing proxy: %v", err)
	}
	if _, err := runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
		return ImportTelemetryAdmin(ctx, run, TelemetryAdminOptions{URL: "localhost:9901"})
	}); err == nil {
		t.Error("a URL without scheme was accepted")
	}
}

// futureLine is line(ts, …) with the year 2126: a proxy whose clock jumped.
func futureLine(ts int) string {
	return strings.Replace(line(ts, "app", "", 1), "2026-11-27", "2126-11-27", 1)
}

// TestTelemetryFutureSecondIsRefused is issue #13 item 6 for the proxy's
// telemetry: one record stamped 2126 in the JSON-lines file is quarantined
// as future_time (once, not per metric) and the seconds after it are
// stored. Before, it was stored, became the "latest" second of its series,
// and every following record was quarantined as out_of_order.
func TestTelemetryFutureSecondIsRefused(t *testing.T) {
	st := testStore(t)
	path := filepath.Join(t.TempDir(), "records.jsonl")
	var b strings.Builder
	for s := range 10 {
		if s == 4 {
			b.WriteString(futureLine(s))
			continue
		}
		b.WriteString(line(s, "app", "", 1))
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	rep, err := runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
		return ImportTelemetryFile(ctx, run, TelemetryFileOptions{Path: path})
	})
	if err != nil {
		t.Fatal(err)
	}
	q := quarantined(t, st)
	if rep.Inserted != 9*8 || rep.Quarantined != 1 || q[path+":5"].Reason != store.ReasonFutureTime {
		t.Fatalf("report %s; quarantined %+v", rep, q)
	}
	ser, _ := st.ListSeries(context.Background(), store.SeriesFilter{Service: "app", Metric: "requests"})
	if len(ser) != 1 || ser[0].Last.Year() != 2026 {
		t.Errorf("series %+v", ser)
	}
}

// TestTelemetryAdminFutureSecondKeepsPosition: the admin poller asks for
// since= the second after the newest one read and saves it. A record from
// 2126 in one answer moved that position past every second the proxy will
// ever have (and saved it), so nothing was read again. The position now
// follows the records with a usable time only.
func TestTelemetryAdminFutureSecondKeepsPosition(t *testing.T) {
	st := testStore(t)
	var mu sync.Mutex
	recs := []string{line(0, "app", "", 1), futureLine(1), line(2, "app", "", 1)}
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		since, _ := time.Parse(time.RFC3339, r.URL.Query().Get("since"))
		asked = append(asked, r.URL.Query().Get("since"))
		var out []json.RawMessage
		for _, rec := range recs {
			var probe struct {
				TS time.Time `json:"ts"`
			}
			json.Unmarshal([]byte(rec), &probe)
			if !probe.TS.Before(since) {
				out = append(out, json.RawMessage(rec))
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"records": out})
	}))
	defer srv.Close()
	poll := func() Report {
		t.Helper()
		rep, err := runSource(t, st, "telemetry", func(ctx context.Context, run *Run) error {
			return ImportTelemetryAdmin(ctx, run, TelemetryAdminOptions{URL: srv.URL})
		})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := poll(); rep.Inserted != 2*8 || rep.Reasons[store.ReasonFutureTime] != 1 {
		t.Fatalf("first poll: %s", rep)
	}
	mu.Lock()
	recs = append(recs, line(3, "app", "", 1))
	mu.Unlock()
	rep := poll()
	mu.Lock()
	if rep.Inserted != 8 || asked[1] != "2026-11-27T10:00:03Z" {
		t.Fatalf("second poll asked since=%q: %s", asked[1], rep)
	}
	mu.Unlock()
	// Following, the proxy answers the 2126 record on every poll: it is
	// quarantined once.
	ctx, cancel := context.WithCancel(context.Background())
	run, _ := Begin(ctx, st, "telemetry", "follow")
	done := make(chan error, 1)
	go func() {
		done <- ImportTelemetryAdmin(ctx, run, TelemetryAdminOptions{URL: srv.URL, Follow: true, Interval: time.Millisecond})
	}()
	eventually(t, 10*time.Second, "five more polls", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(asked) >= 7
	})
	cancel()
	<-done
	if rep, _ := run.Finish(context.Background(), context.Canceled); rep.Reasons[store.ReasonFutureTime] != 1 {
		t.Errorf("following: %s", rep)
	}
}
