package ingest

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

func TestPointSinkValidation(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "s.db"), store.Options{Retention: store.Retention{Raw: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	key := store.SeriesKey{Service: "cart", Metric: "requests"}
	rep, err := runSource(t, st, "test", func(ctx context.Context, run *Run) error {
		sink := NewPointSink(run, "test")
		sink.BatchSize = 2
		add := func(loc string, k store.SeriesKey, at time.Time, v float64) {
			if err := sink.Add(ctx, k, at, v, loc, "raw"); err != nil {
				t.Fatal(err)
			}
		}
		add("ok1", key, t0, 1)
		add("missing-service", store.SeriesKey{Metric: "requests"}, t0, 1)
		add("missing-metric", store.SeriesKey{Service: "cart"}, t0, 1)
		add("missing-time", key, time.Time{}, 1)
		add("nan", key, t0.Add(time.Second), math.NaN())
		add("inf", key, t0.Add(time.Second), math.Inf(1))
		add("negative", key, t0.Add(time.Second), -1)
		add("ok2", key, t0.Add(2*time.Second), 2)
		add("dup", key, t0.Add(2*time.Second), 3)
		add("back", key, t0.Add(time.Second), 3)
		add("ok3", key, t0.Add(10*time.Hour), 4)
		if err := sink.Flush(ctx); err != nil {
			return err
		}
		// The hours before 10:00 are compacted away by the 1 h raw
		// retention; a late second in them is handed back as too old.
		if _, err := st.Compact(ctx); err != nil {
			return err
		}
		sink.Forget()
		add("late", key, t0.Add(3*time.Second), 5)
		return sink.Flush(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	q := quarantined(t, st)
	for loc, want := range map[string]store.Reason{
		"missing-service": store.ReasonMissingField, "missing-metric": store.ReasonMissingField, "missing-time": store.ReasonMissingField,
		"nan": store.ReasonNotFinite, "inf": store.ReasonNotFinite, "negative": store.ReasonNegative,
		"dup": store.ReasonDuplicateTimestamp, "back": store.ReasonOutOfOrder, "late": store.ReasonTooOld,
	} {
		if q[loc].Reason != want || q[loc].RunID == 0 {
			t.Errorf("%s: %+v, want %s", loc, q[loc], want)
		}
	}
	if rep.Inserted != 3 || rep.Quarantined != 9 || rep.Reasons[store.ReasonMissingField] != 3 {
		t.Errorf("report %s", rep)
	}
	if s := rep.String(); !strings.Contains(s, "3 inserted") || !strings.Contains(s, "too_old 1") {
		t.Errorf("summary %q", s)
	}
	runs, _ := st.IngestRuns(ctx, 1)
	if runs[0].Status != "ok" || runs[0].Inserted != 3 || runs[0].Quarantined != 9 {
		t.Errorf("run record %+v", runs[0])
	}
}

func TestRunFinishRecordsOutcome(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	_, err := runSource(t, st, "x", func(ctx context.Context, run *Run) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("error lost")
	}
	cctx, cancel := context.WithCancel(ctx)
	run, _ := Begin(cctx, st, "y", "")
	run.Quarantine(Problem{"here", store.ReasonMalformed, "d", "r"})
	cancel()
	if _, err := run.Finish(cctx, cctx.Err()); !errors.Is(err, context.Canceled) {
		t.Fatalf("finish: %v", err)
	}
	runs, _ := st.IngestRuns(ctx, 2)
	if runs[0].Status != "interrupted" || runs[0].Quarantined != 1 || runs[1].Status != "failed" || runs[1].Error != "boom" {
		t.Errorf("runs %+v", runs)
	}
	// The quarantined row of the interrupted run was still written.
	if q := quarantined(t, st); q["here"].Reason != store.ReasonMalformed {
		t.Errorf("quarantine %+v", q)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{"7": 7 * time.Second, "0": 0,
		"Fri, 27 Nov 2026 10:00:30 GMT": 30 * time.Second, "Fri, 27 Nov 2026 09:00:00 GMT": 0,
		// Seconds past what a Duration holds: the longest wait, not a
		// wrapped negative one (FuzzRetryAfter found 9227000000).
		"9227000000": time.Duration(math.MaxInt64)} {
		if got, ok := retryAfter(h, now); !ok || got != want {
			t.Errorf("Retry-After %q = %v, %v; want %v", h, got, ok, want)
		}
	}
	for _, h := range []string{"", "soon", "-3"} {
		if _, ok := retryAfter(h, now); ok {
			t.Errorf("Retry-After %q accepted", h)
		}
	}
}
