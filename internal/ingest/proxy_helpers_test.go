package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy"
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

// eventually polls cond every 20 ms until it holds (the event being awaited
// happens in another process or goroutine with no channel to wait on).
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
