//go:build unix

package proxy

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAccessLogCPU is BenchmarkForward/round_robin without and with
// an access log, reporting the process's CPU time per request (client,
// proxy and backends, all in this process) next to wall time: on a
// shared machine wall time swings with the neighbours' load, CPU time
// much less, and the client and backends cost the same in every case, so
// the differences are the proxy's.
func BenchmarkAccessLogCPU(b *testing.B) {
	for _, tc := range []struct{ name, section string }{
		{"off", ""},
		{"combined", "format: combined"},
		{"json", "format: json"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bs := []*testBackend{newFastBackend(b), newFastBackend(b), newFastBackend(b)}
			cfg := baseConfig
			if tc.section != "" {
				path := filepath.Join(b.TempDir(), "access.log")
				cfg = strings.Replace(baseConfig, "    routes: [{service: app}]",
					"    access_log: {path: \""+path+"\", "+tc.section+"}\n    routes: [{service: app}]", 1)
			}
			px := startProxy(b, renderConfig(b, cfg+`
services:
  - name: app
    policy: round_robin
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    health:
      active: {path: /healthz, interval: 5s}
`, bs...))
			start := cpuTime(b)
			runRawClient(b, strings.TrimPrefix(px.url, "http://"))
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkAccessLogHandler isolates what logging adds to a request: the
// listener handler is called in process (no network, no backend) for a
// path no route matches, so the request itself costs little and the
// difference between off and on is the record, the wrappers, the context,
// formatting and queueing, plus the writer goroutine's share (cpu-ns/op).
func BenchmarkAccessLogHandler(b *testing.B) {
	for _, tc := range []struct{ name, section string }{
		{"off", ""},
		{"combined", "format: combined"},
		{"json", "format: json"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes: [{match: {path_prefix: /app}, service: app}]
services:
  - name: app
    endpoints: [{address: "127.0.0.1:9"}]
`
			if tc.section != "" {
				path := filepath.Join(b.TempDir(), "access.log")
				cfg = strings.Replace(cfg, "    routes:", "    access_log: {path: \""+path+"\", "+tc.section+"}\n    routes:", 1)
			}
			px := startProxy(b, cfg)
			h := &listenerHandler{px: px.Proxy, key: "127.0.0.1:0"}
			req, _ := http.NewRequest("GET", "http://shop.test/catalog/products/p1", nil)
			req.RemoteAddr = "10.0.0.7:51234"
			req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36")
			req.Header.Set("Referer", "https://shop.test/")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			start := cpuTime(b)
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
			b.StopTimer()
			if w.code != 404 {
				b.Fatalf("status %d", w.code)
			}
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing but the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAccessLogSlowDiskAndFlushOnClose: the log is a FIFO whose reader
// does not read, so the writer blocks once the pipe is full (a disk that
// stopped answering). Requests are still answered at full speed, their
// lines wait in the queue, and Close writes every one of them before it
// returns, once the reader reads again.
func TestAccessLogSlowDiskAndFlushOnClose(t *testing.T) {
	b := newBackend(t, "b")
	path := filepath.Join(t.TempDir(), "access.fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	read := make(chan struct{})
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(path) // returns once the proxy opens it for writing
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		<-read
		data, _ := io.ReadAll(f) // until the proxy closes it
		got <- data
	}()
	yaml := strings.Replace(baseConfig, "    routes: [{service: app}]", "    access_log: {path: \""+path+"\"}\n    routes: [{service: app}]", 1)
	px := startProxy(t, renderConfig(t, yaml+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
`, b))
	// 400 lines of ~900 bytes: several times a pipe's 64 KiB, well within
	// the queue's 8192 lines.
	const n = 400
	ua := strings.Repeat("u", 500)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				req, _ := http.NewRequest("GET", px.url+"/x", nil)
				req.Header.Set("User-Agent", ua)
				resp, err := c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d requests in %v with the log's reader stopped", n, time.Since(start))
	if v := metric(t, px, `lbsys_access_log_dropped_total{listener="main",reason="queue_full"}`); v != 0 {
		t.Errorf("%v lines dropped; the queue should hold them", v)
	}
	closed := make(chan struct{})
	go func() { px.Close(); close(closed) }()
	close(read)
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	var data []byte
	select {
	case data = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the log file was not closed after Close")
	}
	if lines := bytes.Count(data, []byte("\n")); lines != n {
		t.Errorf("%d lines reached the log, want %d", lines, n)
	}
}
