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
)

// telemetryAt is one proxy record of service app at t.
func telemetryAt(t time.Time, requests int) string {
	return fmt.Sprintf(`{"ts":%q,"service":"app","requests":%d,"errors":0,"p50_ms":1,"p90_ms":2,"p99_ms":3,"in_flight":0,"bytes_in":10,"bytes_out":20}`,
		t.UTC().Format(time.RFC3339), requests)
}

// followFeed is a proxy whose telemetry grows while a follower reads it:
// either its JSON-lines file or its admin API's GET /telemetry?since=.
type followFeed interface {
	append(t *testing.T, recs ...string)
	follow(ctx context.Context, run *Run, compactEvery time.Duration) error
}

type fileFeed struct{ path string }

func (f *fileFeed) append(t *testing.T, recs ...string) {
	fh, err := os.OpenFile(f.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for _, r := range recs {
		if _, err := fh.WriteString(r + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fileFeed) follow(ctx context.Context, run *Run, every time.Duration) error {
	return ImportTelemetryFile(ctx, run, TelemetryFileOptions{Path: f.path, Follow: true, Interval: 5 * time.Millisecond, CompactEvery: every})
}

type adminFeed struct {
	mu   sync.Mutex
	recs []string
	url  string
}

func (a *adminFeed) append(_ *testing.T, recs ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, recs...)
}

func (a *adminFeed) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	since, _ := time.Parse(time.RFC3339, r.URL.Query().Get("since"))
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []json.RawMessage{}
	for _, rec := range a.recs {
		var probe struct {
			TS time.Time `json:"ts"`
		}
		json.Unmarshal([]byte(rec), &probe)
		if !probe.TS.Before(since) {
			out = append(out, json.RawMessage(rec))
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"records": out})
}

func (a *adminFeed) follow(ctx context.Context, run *Run, every time.Duration) error {
	return ImportTelemetryAdmin(ctx, run, TelemetryAdminOptions{URL: a.url, Follow: true, Interval: 5 * time.Millisecond, CompactEvery: every})
}

// TestTelemetryFollowCompactsPeriodically shows that a following import
// applies the store's retention while it runs (CompactEvery), not only when
// it ends: once the clock has moved 49 h past the first seconds (and a
// record of then arrived), the raw points older than the 48 h raw
// retention are deleted and their 1-minute bucket stays. Nothing here waits for the compaction itself: the loop compacts
// (when CompactEvery has passed) after storing what it read and before its
// next read, and CompactEvery (1 ms) is shorter than the poll interval
// (5 ms); so once a record appended after the late one is stored, the
// compaction that followed the late record has finished. With a CompactEvery
// longer than the test, the same sequence leaves the old points alone.
func TestTelemetryFollowCompactsPeriodically(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	late := t0.Add(49 * time.Hour)
	key := store.SeriesKey{Service: "app", Metric: "requests"}
	for _, source := range []string{"file", "admin"} {
		for _, tc := range []struct {
			every     time.Duration
			compacted bool
		}{
			{time.Millisecond, true},
			{time.Hour, false},
		} {
			t.Run(fmt.Sprintf("%s/every=%v", source, tc.every), func(t *testing.T) {
				// The store's clock, which retention counts back from: the
				// proxy's time, moved by hand.
				var clock atomic.Int64
				clock.Store(t0.Add(3 * time.Second).UnixNano())
				st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"),
					store.Options{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				var feed followFeed
				switch source {
				case "file":
					feed = &fileFeed{path: filepath.Join(t.TempDir(), "telemetry.jsonl")}
				case "admin":
					a := &adminFeed{}
					srv := httptest.NewServer(a)
					defer srv.Close()
					a.url = srv.URL
					feed = a
				}
				feed.append(t, telemetryAt(t0, 1), telemetryAt(t0.Add(time.Second), 2), telemetryAt(t0.Add(2*time.Second), 3))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				run, err := Begin(ctx, st, "telemetry", "follow")
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- feed.follow(ctx, run, tc.every) }()
				stopped := false
				stop := func() error {
					if stopped {
						return nil
					}
					stopped = true
					cancel()
					select {
					case err := <-done:
						return err
					case <-time.After(10 * time.Second):
						t.Fatal("the follower did not stop within 10 s of its context ending")
						return nil
					}
				}
				defer stop()
				// The series exists once the follower's first write lands.
				raw := func() []store.Point {
					pts, _ := st.RangeByKey(context.Background(), key, time.Unix(0, 0), late.Add(time.Hour), store.Raw)
					return pts
				}
				hasRaw := func(at time.Time) func() bool {
					return func() bool {
						for _, p := range raw() {
							if p.Time().Equal(at) {
								return true
							}
						}
						return false
					}
				}
				eventually(t, 10*time.Second, "the first 3 seconds", func() bool { return len(raw()) == 3 })
				clock.Store(late.Add(time.Second).UnixNano())
				feed.append(t, telemetryAt(late, 4))
				eventually(t, 10*time.Second, "the second 49 h later", hasRaw(late))
				feed.append(t, telemetryAt(late.Add(time.Second), 5))
				eventually(t, 10*time.Second, "the record after it", hasRaw(late.Add(time.Second)))

				// Still following: the checks below see what the loop did,
				// not a compaction at the end of the run.
				select {
				case err := <-done:
					t.Fatalf("the follower ended early: %v", err)
				default:
				}
				series, err := st.ListSeries(context.Background(), store.SeriesFilter{Service: "app", Metric: "requests"})
				if err != nil || len(series) != 1 {
					t.Fatalf("series %+v %v", series, err)
				}
				var old int
				for _, p := range raw() {
					if p.Time().Before(t0.Add(time.Hour)) {
						old++
					}
				}
				// The 1-minute bucket of 10:00 holds the three seconds
				// (mean 2) whether or not their raw points are gone.
				minute, err := st.RangeByKey(context.Background(), key, t0, t0.Add(time.Minute), store.Minute)
				if err != nil || len(minute) != 1 || minute[0].V != 2 {
					t.Errorf("1-minute bucket of %v: %+v %v", t0, minute, err)
				}
				if tc.compacted {
					// Raw floor: 48 h before the clock, to the minute.
					if old != 0 || !series[0].RawFloor.Equal(t0.Add(time.Hour)) {
						t.Errorf("no compaction while following: %d raw points before %v remain, raw floor %v",
							old, t0.Add(time.Hour), series[0].RawFloor)
					}
				} else if old != 3 || !series[0].RawFloor.IsZero() {
					t.Errorf("compacted although CompactEvery (%v) had not passed: %d old raw points, raw floor %v",
						tc.every, old, series[0].RawFloor)
				}
				if err := stop(); !errors.Is(err, context.Canceled) {
					t.Fatalf("follow ended with %v, want context.Canceled", err)
				}
				rep, _ := run.Finish(context.Background(), context.Canceled)
				if rep.Quarantined != 0 {
					t.Errorf("report %s, notes %v", rep, rep.Notes)
				}
				for _, n := range rep.Notes {
					// (The admin poller notes the 49 h jump as a gap.)
					if strings.Contains(n, "compaction") {
						t.Errorf("note: %s", n)
					}
				}
			})
		}
	}
}
