package e2e

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// The control plane's telemetry ingestion reading what a real proxy
// writes, through its admin API and its JSON-lines sink. Moved here from
// internal/ingest (issue #16): ingestion's tests may not import the data
// plane.

func TestTelemetryAdminAndFileFromLiveProxy(t *testing.T) {
	ctx := context.Background()
	st := testStore(t)
	jsonl := filepath.Join(t.TempDir(), "telemetry.jsonl")
	px := startLiveProxy(t, jsonl)
	const sent = 30
	px.send(t, sent)
	sum := func(recs []telemetry.Record) (n int64) {
		for _, r := range recs {
			if r.Endpoint == "" {
				n += r.Requests
			}
		}
		return n
	}
	within(t, 10*time.Second, "the proxy's ring to hold the requests", func() bool { return sum(px.Telemetry(time.Time{}, "app")) == sent })
	stored := func() (n float64) {
		for _, p := range points(t, st, store.SeriesKey{Service: "app", Metric: "requests"}, store.Raw) {
			n += p.V
		}
		return n
	}
	rep, err := runSource(t, st, "telemetry", func(ctx context.Context, run *ingest.Run) error {
		return ingest.ImportTelemetryAdmin(ctx, run, ingest.TelemetryAdminOptions{URL: px.admin})
	})
	if err != nil || rep.Quarantined != 0 || rep.Inserted == 0 {
		t.Fatalf("admin import: %s %v", rep, err)
	}
	if got := stored(); got != sent {
		t.Fatalf("stored %v requests, sent %d", got, sent)
	}
	series, _ := st.ListSeries(ctx, store.SeriesFilter{Service: "app"})
	if len(series) != 16 { // 8 metrics × (service + one endpoint)
		t.Errorf("%d series: %+v", len(series), series)
	}
	// The JSON-lines sink has the same seconds: reading it into the same
	// store doubles nothing.
	rep, err = runSource(t, st, "telemetry", func(ctx context.Context, run *ingest.Run) error {
		return ingest.ImportTelemetryFile(ctx, run, ingest.TelemetryFileOptions{Path: jsonl})
	})
	if err != nil || rep.Quarantined != 0 || rep.Unchanged == 0 || rep.Updated != 0 {
		t.Fatalf("file import: %s %v", rep, err)
	}
	if got := stored(); got != sent {
		t.Fatalf("after the file import: %v requests stored, sent %d", got, sent)
	}
	// A second admin import continues after the saved position.
	px.send(t, 5)
	within(t, 10*time.Second, "5 more requests in the ring", func() bool { return sum(px.Telemetry(time.Time{}, "app")) == sent+5 })
	rep, err = runSource(t, st, "telemetry", func(ctx context.Context, run *ingest.Run) error {
		return ingest.ImportTelemetryAdmin(ctx, run, ingest.TelemetryAdminOptions{URL: px.admin})
	})
	if err != nil || rep.Unchanged != 0 || rep.Quarantined != 0 {
		t.Fatalf("second admin import: %s %v", rep, err)
	}
	if got := stored(); got != sent+5 {
		t.Fatalf("stored %v requests, sent %d", got, sent+5)
	}
}
