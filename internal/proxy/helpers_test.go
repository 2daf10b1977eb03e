package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/config"
)

// testEngine, when set, overrides server.engine of every proxy the tests
// start (see TestNetHTTPEngine).
var testEngine string

// testBackend is a real HTTP server on 127.0.0.1 whose behaviour a test can
// change while it runs.
type testBackend struct {
	t    testing.TB
	name string
	srv  *http.Server
	ln   net.Listener
	addr string

	hits       atomic.Int64 // requests to paths other than /healthz
	postHits   atomic.Int64
	status     atomic.Int64 // response status, default 200
	healthCode atomic.Int64 // /healthz status, default 200
	delay      atomic.Int64 // ns before answering
	reset      atomic.Bool  // drop the connection without answering

	mu      sync.Mutex
	lastReq *http.Request
	bodies  []string
}

func newBackend(t testing.TB, name string) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{t: t, name: name, ln: ln, addr: ln.Addr().String()}
	b.status.Store(200)
	b.healthCode.Store(200)
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func (b *testBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(int(b.healthCode.Load()))
		return
	}
	b.hits.Add(1)
	if r.Method == http.MethodPost {
		b.postHits.Add(1)
	}
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.lastReq = r.Clone(r.Context())
	b.bodies = append(b.bodies, string(body))
	b.mu.Unlock()
	if d := b.delay.Load(); d > 0 {
		select {
		case <-time.After(time.Duration(d)):
		case <-r.Context().Done():
			return
		}
	}
	if b.reset.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			c, _, err := hj.Hijack()
			if err == nil {
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
			return
		}
	}
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(int(b.status.Load()))
	fmt.Fprintf(w, "%s %s %s", b.name, r.Method, r.URL.Path)
}

func (b *testBackend) last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastReq
}

// stop closes the backend's listener and connections: new connects are
// refused from then on.
func (b *testBackend) stop() { b.srv.Close() }

// testProxy is a started Proxy on 127.0.0.1:0 ports.
type testProxy struct {
	*Proxy
	url   string // client listener base URL
	admin string // admin base URL
	path  string // config file path
}

// renderConfig fills a config template; {{.B0}}, {{.B1}}… are backend
// addresses.
func renderConfig(t testing.TB, tmpl string, backends ...*testBackend) string {
	t.Helper()
	data := map[string]string{}
	for i, b := range backends {
		data[fmt.Sprintf("B%d", i)] = b.addr
	}
	var buf bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(tmpl)).Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func writeConfig(t testing.TB, yaml string) string {
	t.Helper()
	path := t.TempDir() + "/lbsys.yaml"
	if err := writeFile(path, yaml); err != nil {
		t.Fatal(err)
	}
	return path
}

func startProxy(t testing.TB, yaml string) *testProxy {
	t.Helper()
	return startProxyWith(t, yaml, nil)
}

// startProxyWith is startProxy with options changed by opt (a manual clock,
// a listener hook...).
func startProxyWith(t testing.TB, yaml string, opt func(*Options)) *testProxy {
	t.Helper()
	path := writeConfig(t, yaml)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	if testEngine != "" {
		cfg.Server.Engine = testEngine
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := Options{Logger: log, ConfigPath: path, TickInterval: 20 * time.Millisecond}
	if opt != nil {
		opt(&opts)
	}
	px, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	tp := &testProxy{Proxy: px, path: path, admin: "http://" + px.AdminAddr()}
	if len(cfg.Listeners) > 0 {
		tp.url = "http://" + px.Addr(cfg.Listeners[0].Listen)
	}
	return tp
}

// startProxyClock starts a proxy on a manual clock set years away from
// the wall clock, so that a wall-clock reading anywhere in a decision
// shows, and the test moves time instead of waiting for it.
func startProxyClock(t testing.TB, yaml string) (*testProxy, *clock.Manual) {
	t.Helper()
	clk := clock.NewManual(time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC))
	return startProxyWith(t, yaml, func(o *Options) { o.Clock = clk }), clk
}

// waitTicks waits until the proxy's tick loop has run n more rounds, so
// that whatever fell due at the clock's current time has been processed.
func waitTicks(t testing.TB, px *testProxy, n int64) {
	t.Helper()
	want := px.ticks.Load() + n
	eventually(t, 5*time.Second, fmt.Sprintf("%d tick rounds", n), func() bool { return px.ticks.Load() >= want })
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// baseConfig is the usual head of a test config.
const baseConfig = `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes: [{service: app}]
`

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var testClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		Proxy:               nil,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends a request and returns status, body and headers.
func do(t testing.TB, method, url string, body string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}
