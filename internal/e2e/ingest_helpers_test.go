package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/proxy"
	"github.com/lbsys/lbsys/internal/store"
)

// liveProxy is a real lbsys proxy on 127.0.0.1 in front of a tiny backend,
// as `lbsys proxy` runs it (internal/proxy's own tests start it the same
// way).
type liveProxy struct {
	*proxy.Proxy
	url, admin string
}

func startLiveProxy(t testing.TB, jsonlPath string) *liveProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), ReadHeaderTimeout: 5 * time.Second}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Close() })
	yaml := fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes: [{service: app}]
services:
  - {name: app, endpoints: [{address: %q}]}
`, ln.Addr().String())
	if jsonlPath != "" {
		yaml += fmt.Sprintf("telemetry: {jsonl_path: %q}\n", jsonlPath)
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	px, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TickInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	return &liveProxy{Proxy: px, url: "http://" + px.Addr(cfg.Listeners[0].Listen), admin: "http://" + px.AdminAddr()}
}

var liveClient = &http.Client{Timeout: 10 * time.Second}

// send makes n requests through the proxy.
func (p *liveProxy) send(t testing.TB, n int) {
	t.Helper()
	for range n {
		resp, err := liveClient.Get(p.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("proxy answered %s", resp.Status)
		}
	}
}

// testStore opens an ingestion store in a temporary directory.
func testStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ingest.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runSource runs fn as one ingest run and returns its report.
func runSource(t testing.TB, st *store.Store, source string, fn func(ctx context.Context, run *ingest.Run) error) (ingest.Report, error) {
	t.Helper()
	ctx := context.Background()
	run, err := ingest.Begin(ctx, st, source, "test")
	if err != nil {
		t.Fatal(err)
	}
	return run.Finish(ctx, fn(ctx, run))
}

// points returns every stored point of the series at resolution res.
func points(t testing.TB, st *store.Store, key store.SeriesKey, res store.Resolution) []store.Point {
	t.Helper()
	pts, err := st.RangeByKey(context.Background(), key, time.Unix(0, 0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), res)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return pts
}
