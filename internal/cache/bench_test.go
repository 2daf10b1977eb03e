package cache

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

// benchWriter is a ResponseWriter that discards the body and reuses its
// header map, as a server reuses its buffers: what remains per request is
// the cache's own cost.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(c int)           { w.code = c }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }

var kib = strings.Repeat("x", 1024)

func benchCache(b *testing.B, cfg Config) (*Cache, *Route) {
	b.Helper()
	c, err := New(cfg, nil, clock.Real{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	rt, err := c.Route("bench", RouteConfig{Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	return c, rt
}

// BenchmarkServeHit is the cache's cost of a hit, in process: lookup, the
// freshness decision, the stored fields and a 1 KiB body written.
func BenchmarkServeHit(b *testing.B) {
	for _, bc := range []struct {
		name string
		resp http.Header
		req  http.Header
	}{
		{"plain", hdr("Cache-Control", "max-age=3600", "Content-Type", "text/plain", "Etag", `"v1"`), nil},
		{"vary", hdr("Cache-Control", "max-age=3600", "Content-Type", "text/plain", "Vary", "Accept-Encoding"), hdr("Accept-Encoding", "gzip, deflate, br")},
		{"request-cache-control", hdr("Cache-Control", "max-age=3600", "Content-Type", "text/plain"), hdr("Cache-Control", "max-age=600")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, rt := benchCache(b, Config{})
			o := fixed(200, bc.resp, kib)
			r := req("GET", "/products/42?color=red", bc.req)
			c.Serve(httptest.NewRecorder(), r, rt, o)
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(w.h)
				if c.Serve(w, r, rt, o); w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
			if o.requests() != 1 {
				b.Fatalf("%d origin requests: not a hit", o.requests())
			}
		})
	}
}

// BenchmarkServeHitParallel is BenchmarkServeHit from every core at once
// (otter's striped buffers; no lock of the cache's own).
func BenchmarkServeHitParallel(b *testing.B) {
	c, rt := benchCache(b, Config{})
	o := fixed(200, hdr("Cache-Control", "max-age=3600", "Content-Type", "text/plain"), kib)
	c.Serve(httptest.NewRecorder(), req("GET", "/p", nil), rt, o)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := req("GET", "/p", nil)
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			c.Serve(w, r, rt, o)
		}
	})
}

// BenchmarkServeMiss is the cache's cost of a miss that is stored, in
// process, with an origin that answers from memory: the exchange analysis,
// the copy into the store and the client, the insertion (and evictions: the
// 100,000 URLs cycled through do not fit in 16 MiB).
func BenchmarkServeMiss(b *testing.B) {
	c, rt := benchCache(b, Config{MaxBytes: 16 << 20})
	o := fixed(200, hdr("Cache-Control", "max-age=3600", "Content-Type", "text/plain"), kib)
	reqs := make([]*http.Request, 100_000)
	for i := range reqs {
		reqs[i] = req("GET", "/item/"+strconv.Itoa(i), nil)
	}
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		clear(w.h)
		c.Serve(w, reqs[i%len(reqs)], rt, o)
	}
}

// The loopback benchmarks below run the proxy in a child process (this
// test binary re-executed as a server) so that its CPU time can be read
// from /proc: the number that matters is the proxy's CPU per request for
// a hit against a proxied miss, the client and the origin excluded.

const benchChildEnv = "LBSYS_CACHE_BENCH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchChildEnv); mode != "" {
		runBenchChild(mode, os.Getenv(benchChildEnv+"_ORIGIN"))
		return
	}
	os.Exit(m.Run())
}

// runBenchChild serves on 127.0.0.1: mode "pass" forwards every request
// with httputil.ReverseProxy (the proxied miss), mode "cache" through the
// cache. It prints its address and serves until killed.
func runBenchChild(mode, origin string) {
	u, err := url.Parse(origin)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	po := NewProxyOrigin(u, &http.Transport{MaxIdleConnsPerHost: 64})
	var h http.Handler = po
	if mode == "cache" {
		c, err := New(Config{}, nil, clock.Real{})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(1)
		}
		rt, _ := c.Route("bench", RouteConfig{Enabled: true})
		h = c.Handler(rt, po)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", ln.Addr().String())
	http.Serve(ln, h)
}

// procCPU returns a process's user+system CPU time from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command: state is 0, utime is 11, stime is 12.
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticks, nil
}

func startChild(b *testing.B, mode, origin string) (addr string, pid int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+mode, benchChildEnv+"_ORIGIN="+origin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		b.Fatalf("child: %q %v", line, err)
	}
	return strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")), cmd.Process.Pid
}

// BenchmarkProxyCPU measures the proxy process's CPU per request over
// loopback with keep-alive connections: "proxied-miss" is a plain
// httputil.ReverseProxy forwarding every request to a 1 KiB origin,
// "cache-hit" the cache answering from its store, "cache-miss" the cache
// forwarding a response it may not store. Reported as proxy-cpu-ns/op.
func BenchmarkProxyCPU(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc")
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/nostore") {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "max-age=3600")
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, kib)
	}))
	defer origin.Close()
	for _, bc := range []struct{ name, mode, path string }{
		{"proxied-miss", "pass", "/p"},
		{"cache-hit", "cache", "/p"},
		{"cache-miss", "cache", "/nostore"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr, pid := startChild(b, bc.mode, origin.URL)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			get := func() {
				resp, err := client.Get("http://" + addr + bc.path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			for range 200 { // warm up connections, the store and the child's heap
				get()
			}
			before, err := procCPU(pid)
			if err != nil {
				b.Skip(err)
			}
			b.ResetTimer()
			for range b.N {
				get()
			}
			b.StopTimer()
			after, _ := procCPU(pid)
			b.ReportMetric(float64(after-before)/float64(b.N), "proxy-cpu-ns/op")
		})
	}
}
