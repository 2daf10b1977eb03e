package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func TestRouting(t *testing.T) {
	cat, cart, pay, shop := newBackend(t, "catalog"), newBackend(t, "cart"), newBackend(t, "payment"), newBackend(t, "shop")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {name: pay, match: {path_prefix: /payment, methods: [POST]}, service: payment}
      - {name: cart, match: {path_prefix: /cart}, service: cart}
      - {name: shop-host, match: {host: "*.shop.test"}, service: shop}
      - {name: catalog, match: {host: catalog.test}, service: catalog}
services:
  - {name: catalog, endpoints: [{address: "{{.B0}}"}]}
  - {name: cart, endpoints: [{address: "{{.B1}}"}]}
  - {name: payment, endpoints: [{address: "{{.B2}}"}]}
  - {name: shop, endpoints: [{address: "{{.B3}}"}]}
`, cat, cart, pay, shop))
	cases := []struct {
		method, path, host string
		wantStatus         int
		wantBackend        string
	}{
		{"POST", "/payment/charge", "", 200, "payment"},
		{"GET", "/payment/charge", "", 404, ""}, // method not allowed by the route
		{"GET", "/cart", "", 200, "cart"},
		{"GET", "/cart/items?x=1", "", 200, "cart"},
		{"GET", "/carts", "", 404, ""}, // segment boundary
		{"GET", "/anything", "www.shop.test", 200, "shop"},
		{"GET", "/anything", "WWW.SHOP.TEST:8080", 200, "shop"},
		{"GET", "/anything", "shop.test", 404, ""}, // wildcard needs a subdomain
		{"GET", "/p/1", "catalog.test", 200, "catalog"},
		{"GET", "/p/1", "other.test", 404, ""},
	}
	for _, c := range cases {
		status, body, h := do(t, c.method, px.url+c.path, "", map[string]string{"Host": c.host})
		if status != c.wantStatus || h.Get("X-Backend") != c.wantBackend {
			t.Errorf("%s %s host %q: status %d backend %q body %q; want %d %q", c.method, c.path, c.host, status, h.Get("X-Backend"), body, c.wantStatus, c.wantBackend)
		}
		if c.wantStatus == 404 && h.Get("X-Lbsys-Error") != "no_route" {
			t.Errorf("%s %s: X-Lbsys-Error %q, want no_route", c.method, c.path, h.Get("X-Lbsys-Error"))
		}
	}
	// The query string and path reach the backend intact.
	do(t, "GET", px.url+"/cart/a%2Fb?q=1&r=x%20y", "", nil)
	if r := cart.last(); r.URL.RawQuery != "q=1&r=x%20y" || r.URL.EscapedPath() != "/cart/a%2Fb" {
		t.Errorf("backend saw path %q query %q", r.URL.EscapedPath(), r.URL.RawQuery)
	}
}

func TestForwardedHeadersAndHopByHop(t *testing.T) {
	b := newBackend(t, "b")
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			tp := ""
			if trusted {
				tp = "server: {trusted_proxies: [127.0.0.0/8]}"
			}
			px := startProxy(t, renderConfig(t, baseConfig+tp+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
			status, _, _ := do(t, "GET", px.url+"/x", "", map[string]string{
				"Host":              "shop.example",
				"X-Forwarded-For":   "203.0.113.9",
				"X-Forwarded-Proto": "https",
				"X-Forwarded-Host":  "public.example",
				"Connection":        "X-Secret-Hop",
				"X-Secret-Hop":      "must-not-pass",
				"Keep-Alive":        "timeout=5",
				"X-End-To-End":      "kept",
				"X-Real-IP":         "203.0.113.9",
				"Forwarded":         "for=203.0.113.9;proto=https",
			})
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			r := b.last()
			xff, proto, host := r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host")
			if trusted {
				if xff != "203.0.113.9, 127.0.0.1" || proto != "https" || host != "public.example" {
					t.Errorf("trusted peer: XFF %q proto %q host %q", xff, proto, host)
				}
			} else if xff != "127.0.0.1" || proto != "http" || host != "shop.example" {
				t.Errorf("untrusted peer: XFF %q proto %q host %q (client values must be replaced)", xff, proto, host)
			}
			// X-Real-IP and Forwarded say who the client is as much as
			// X-Forwarded-For: only a trusted peer's pass.
			realIP, fwd := r.Header.Get("X-Real-IP"), r.Header.Get("Forwarded")
			if trusted && (realIP != "203.0.113.9" || fwd != "for=203.0.113.9;proto=https") {
				t.Errorf("trusted peer: X-Real-IP %q Forwarded %q, want them kept", realIP, fwd)
			}
			if !trusted && (realIP != "" || fwd != "") {
				t.Errorf("untrusted peer: X-Real-IP %q Forwarded %q passed through", realIP, fwd)
			}
			if r.Host != "shop.example" {
				t.Errorf("Host %q, want the client's", r.Host)
			}
			if r.Header.Get("X-Secret-Hop") != "" || r.Header.Get("Keep-Alive") != "" {
				t.Errorf("hop-by-hop headers leaked: %v", r.Header)
			}
			if r.Header.Get("X-End-To-End") != "kept" {
				t.Errorf("end-to-end header dropped")
			}
		})
	}
}

func TestStreamingBothWays(t *testing.T) {
	// The backend streams two chunks a while apart; the client must see the
	// first before the second is written.
	release := make(chan struct{})
	var gotBody atomic.Int64
	srv := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		gotBody.Store(n)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: second\n\n")
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, srv))
	// A 3 MiB chunked upload (unknown length) is streamed, not buffered.
	pr, pw := io.Pipe()
	go func() {
		chunk := strings.Repeat("z", 64<<10)
		for i := 0; i < 48; i++ {
			pw.Write([]byte(chunk))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", px.url+"/events", pr)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q err %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest %q", rest)
	}
	if gotBody.Load() != 48*64<<10 {
		t.Fatalf("backend got %d body bytes", gotBody.Load())
	}
}

// newCustomBackend serves h on 127.0.0.1 and wraps it as a testBackend
// address holder.
func newCustomBackend(t testing.TB, h http.Handler) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &testBackend{t: t, srv: srv, ln: ln, addr: ln.Addr().String()}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	srv := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			http.Error(w, "not an upgrade", 400)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		// Echo lines until EOF.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, srv))
	c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, msg := range []string{"hello\n", "world\n"} {
		fmt.Fprint(c, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != "echo "+msg {
			t.Fatalf("got %q err %v", got, err)
		}
	}
}

func TestProxyErrorsAreShortAndLabelled(t *testing.T) {
	hang := newBackend(t, "hang")
	hang.delay.Store(int64(time.Minute))
	dead := newBackend(t, "dead")
	dead.stop()
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {match: {path_prefix: /hang}, service: hang}
      - {match: {path_prefix: /dead}, service: dead}
services:
  - name: hang
    endpoints: [{address: "{{.B0}}"}]
    timeouts: {request: 300ms}
    retries: {attempts: 0}
  - name: dead
    endpoints: [{address: "{{.B1}}"}]
    retries: {attempts: 0}
    health: {outlier: {disabled: true}}
`, hang, dead))
	start := time.Now()
	status, body, h := do(t, "GET", px.url+"/hang", "", nil)
	if status != 504 || h.Get("X-Lbsys-Error") != "upstream_timeout" || len(body) > 100 {
		t.Errorf("hang: %d %q %q", status, h.Get("X-Lbsys-Error"), body)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timeout took %v", el)
	}
	status, _, h = do(t, "GET", px.url+"/dead", "", nil)
	if status != 502 || h.Get("X-Lbsys-Error") != "upstream_connect_failure" {
		t.Errorf("dead: %d %q", status, h.Get("X-Lbsys-Error"))
	}
}

func TestServerHardening(t *testing.T) {
	b := newBackend(t, "b")
	px := startProxy(t, renderConfig(t, baseConfig+`
server:
  max_header_bytes: 4KiB
  max_request_body_bytes: 1KiB
  read_header_timeout: 200ms
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	// Oversized headers: 431 from net/http.
	status, _, _ := do(t, "GET", px.url+"/", "", map[string]string{"X-Big": strings.Repeat("a", 8<<10)})
	if status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header: status %d", status)
	}
	// Declared body too large: 413 before anything is forwarded.
	hits := b.hits.Load()
	status, _, h := do(t, "POST", px.url+"/", strings.Repeat("x", 2048), nil)
	if status != 413 || h.Get("X-Lbsys-Error") != "request_body_too_large" || b.hits.Load() != hits {
		t.Errorf("big body: status %d reason %q backend hits +%d", status, h.Get("X-Lbsys-Error"), b.hits.Load()-hits)
	}
	// Chunked body that grows too large: cut with 413.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(strings.Repeat("y", 4096))); pw.Close() }()
	req, _ := http.NewRequest("POST", px.url+"/", pr)
	resp, err := testClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked big body: status %d", resp.StatusCode)
		}
	}
	// Slowloris: a client that never finishes its headers is cut off.
	c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(c)
	if el := time.Since(start); err != nil || el > 3*time.Second {
		t.Errorf("slow header client: closed after %v err %v", el, err)
	}
}

// TestActiveHealthChecks runs on a manual clock: probes fall due when the
// test moves the clock by an interval, not after real time.
func TestActiveHealthChecks(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	px, clk := startProxyClock(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    health:
      active: {path: /healthz, interval: 10s, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}
      panic_threshold: 0
`, a, b))
	probeRound := func() { clk.Advance(11 * time.Second) } // interval + the largest jitter
	b.healthCode.Store(503)
	eventually(t, 5*time.Second, "b marked unhealthy", func() bool {
		probeRound()
		return !endpointAvailable(t, px, "app", b.addr)
	})
	a0, b0 := a.hits.Load(), b.hits.Load()
	for i := 0; i < 20; i++ {
		if s, _, _ := do(t, "GET", px.url+"/", "", nil); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if a.hits.Load()-a0 != 20 || b.hits.Load() != b0 {
		t.Fatalf("traffic went to an unhealthy endpoint: a +%d b +%d", a.hits.Load()-a0, b.hits.Load()-b0)
	}
	b.healthCode.Store(200)
	eventually(t, 5*time.Second, "b healthy again", func() bool {
		probeRound()
		return endpointAvailable(t, px, "app", b.addr)
	})
	for i := 0; i < 20; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	if b.hits.Load() == b0 {
		t.Fatal("b receives no traffic after recovering")
	}
}

func status(t testing.TB, px *testProxy) Status {
	t.Helper()
	resp, err := testClient.Get(px.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func endpointStatus(t testing.TB, px *testProxy, svc, id string) EndpointStatus {
	for _, s := range status(t, px).Services {
		if s.Name != svc {
			continue
		}
		for _, e := range s.Endpoints {
			if e.ID == id {
				return e
			}
		}
	}
	t.Fatalf("endpoint %s/%s not in /status", svc, id)
	return EndpointStatus{}
}

func endpointAvailable(t testing.TB, px *testProxy, svc, id string) bool {
	return endpointStatus(t, px, svc, id).Available
}

// TestOutlierEjectionAndReturn runs on a manual clock years away from the
// wall clock: the ejection lasts exactly base_ejection_time of the proxy's
// clock. Ejections used to be stamped with the wall clock on the request
// path and expired by the proxy's clock, so with a manual clock an ejected
// endpoint came back at the next tick.
func TestOutlierEjectionAndReturn(t *testing.T) {
	good, bad := newBackend(t, "good"), newBackend(t, "bad")
	bad.status.Store(503)
	px, clk := startProxyClock(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    retries: {attempts: 0}
    health:
      outlier: {consecutive_gateway_failure: 3, base_ejection_time: 30s, max_ejection_percent: 50}
`, good, bad))
	// Round-robin alternates: bad answers 503 until its third consecutive
	// failure ejects it.
	for i := 0; i < 6; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	if bad.hits.Load() != 3 {
		t.Fatalf("bad endpoint hit %d times before ejection, want 3", bad.hits.Load())
	}
	st := endpointStatus(t, px, "app", bad.addr)
	if !st.Ejected || st.Available {
		t.Fatalf("bad not ejected: %+v", st)
	}
	// Time stands still: it stays out whatever the wall clock does.
	waitTicks(t, px, 3)
	clk.Advance(30*time.Second - time.Millisecond)
	waitTicks(t, px, 3)
	if st := endpointStatus(t, px, "app", bad.addr); !st.Ejected {
		t.Fatalf("bad returned before base_ejection_time of the proxy's clock: %+v", st)
	}
	for i := 0; i < 10; i++ {
		if s, _, _ := do(t, "GET", px.url+"/", "", nil); s != 200 {
			t.Fatalf("status %d while bad is ejected", s)
		}
	}
	if bad.hits.Load() != 3 {
		t.Fatalf("ejected endpoint received traffic")
	}
	// It returns when the ejection time (30s × 1) has passed.
	bad.status.Store(200)
	clk.Advance(time.Millisecond)
	waitTicks(t, px, 2)
	if !endpointAvailable(t, px, "app", bad.addr) {
		t.Fatalf("bad not back after base_ejection_time: %+v", endpointStatus(t, px, "app", bad.addr))
	}
	for i := 0; i < 10; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	if bad.hits.Load() == 3 {
		t.Fatal("returned endpoint receives no traffic")
	}
	// Metrics counted the ejection.
	if m := metricsText(t, px); !strings.Contains(m, `lbsys_outlier_ejections_total{endpoint="`+bad.addr+`",service="app"} 1`) {
		t.Errorf("ejection metric missing")
	}
}

func metricsText(t testing.TB, px *testProxy) string {
	t.Helper()
	resp, err := testClient.Get(px.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPanicModeBalancesOverAll(t *testing.T) {
	bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	px, clk := startProxyClock(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    health:
      active: {path: /healthz, interval: 10s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
      panic_threshold: 50
`, bs...))
	bs[0].healthCode.Store(500)
	bs[1].healthCode.Store(500)
	eventually(t, 5*time.Second, "panic mode", func() bool {
		clk.Advance(11 * time.Second) // a probe round
		for _, s := range status(t, px).Services {
			return s.Panic
		}
		return false
	})
	for i := 0; i < 30; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	for _, b := range bs {
		if b.hits.Load() < 5 {
			t.Errorf("%s got %d of 30 requests in panic mode; want traffic over all", b.name, b.hits.Load())
		}
	}
	if !strings.Contains(metricsText(t, px), `lbsys_service_panic_mode{service="app"} 1`) {
		t.Error("panic gauge not set")
	}
}

func TestSlowStartRampsNewEndpoint(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	cfg := baseConfig + `
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}%s]
    health:
      slow_start: {window: 2s, aggression: 1, min_weight_percent: 10}
`
	px, clk := startProxyClock(t, renderConfig(t, fmt.Sprintf(cfg, ""), a, b))
	// Endpoints present at start are warm: no ramp.
	if st := endpointStatus(t, px, "app", a.addr); st.SlowStart || st.EffectiveWeight != 1 {
		t.Fatalf("initial endpoint ramping: %+v", st)
	}
	writeFile(px.path, renderConfig(t, fmt.Sprintf(cfg, `, {address: "{{.B1}}"}`), a, b))
	if _, err := px.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	first := endpointStatus(t, px, "app", b.addr)
	if !first.SlowStart || first.EffectiveWeight != 0.1 {
		t.Fatalf("new endpoint not at the ramp's floor (10%%): %+v", first)
	}
	// Early traffic share of b is small; it grows and the ramp ends.
	var picksB int
	for i := 0; i < 40; i++ {
		_, _, h := do(t, "GET", px.url+"/", "", nil)
		if h.Get("X-Backend") == "b" {
			picksB++
		}
	}
	if picksB > 15 {
		t.Errorf("b got %d of 40 requests at the start of its ramp", picksB)
	}
	// Half the window of the proxy's clock: half the weight (linear).
	clk.Advance(time.Second)
	if mid := endpointStatus(t, px, "app", b.addr); !mid.SlowStart || math.Abs(mid.EffectiveWeight-0.5) > 1e-9 {
		t.Fatalf("mid-ramp: %+v, want weight 0.5", mid)
	}
	// The window is over; the next tick ends the ramp and rebuilds the
	// picker: b gets its share.
	clk.Advance(time.Second)
	waitTicks(t, px, 2)
	if st := endpointStatus(t, px, "app", b.addr); st.SlowStart || st.EffectiveWeight != 1 {
		t.Fatalf("after the window: %+v, want the ramp over", st)
	}
	b0 := b.hits.Load()
	for i := 0; i < 40; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	if got := b.hits.Load() - b0; got < 15 {
		t.Errorf("b got %d of 40 requests after its ramp", got)
	}
}

func TestRetriesRespectIdempotency(t *testing.T) {
	cases := []struct {
		name       string
		method     string
		hdr        map[string]string
		body       string
		mode       string // "503" or "reset"
		wantStatus int
		wantBadHit int64
	}{
		{"GET moves to a healthy endpoint on 503", "GET", nil, "", "503", 200, 1},
		{"GET moves on reset", "GET", nil, "", "reset", 200, 1},
		{"PUT body replayed", "PUT", nil, "put-body", "503", 200, 1},
		{"POST without key sent once (503)", "POST", nil, "order", "503", 503, 1},
		{"POST without key sent once (reset)", "POST", nil, "order", "reset", 502, 1},
		{"POST with Idempotency-Key retried", "POST", map[string]string{"Idempotency-Key": "k-1"}, "order", "503", 200, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad, good := newBackend(t, "bad"), newBackend(t, "good")
			if c.mode == "reset" {
				bad.reset.Store(true)
			} else {
				bad.status.Store(503)
			}
			px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}", weight: 10000}, {address: "{{.B1}}"}]
    retries: {attempts: 2, on: [connect_failure, reset, gateway_error], backoff_base: 1ms, backoff_max: 2ms}
    health: {outlier: {disabled: true}}
`, bad, good))
			// Weight 10000:1 makes the bad endpoint the first pick.
			status, _, _ := do(t, c.method, px.url+"/order", c.body, c.hdr)
			if status != c.wantStatus {
				t.Errorf("status %d, want %d", status, c.wantStatus)
			}
			if got := bad.hits.Load(); got != c.wantBadHit {
				t.Errorf("bad endpoint hit %d times, want %d", got, c.wantBadHit)
			}
			if c.wantStatus == 200 {
				if good.hits.Load() != 1 {
					t.Errorf("good endpoint hit %d times", good.hits.Load())
				}
				if c.body != "" && good.bodies[0] != c.body {
					t.Errorf("replayed body %q, want %q", good.bodies[0], c.body)
				}
			} else if good.hits.Load() != 0 {
				t.Errorf("non-idempotent request reached a second endpoint")
			}
		})
	}
}

func TestConnectFailureRetriedEvenForPOST(t *testing.T) {
	// Nothing was sent to a refused endpoint, so moving the POST elsewhere
	// cannot duplicate it.
	dead, good := newBackend(t, "dead"), newBackend(t, "good")
	dead.stop()
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}", weight: 10000}, {address: "{{.B1}}"}]
    retries: {backoff_base: 1ms, backoff_max: 2ms}
    health: {outlier: {disabled: true}}
`, dead, good))
	status, _, _ := do(t, "POST", px.url+"/checkout", "cart=1", nil)
	if status != 200 || good.postHits.Load() != 1 {
		t.Fatalf("status %d, good POST hits %d", status, good.postHits.Load())
	}
}

func TestRetryBudget(t *testing.T) {
	bad1, bad2 := newBackend(t, "bad1"), newBackend(t, "bad2")
	bad1.status.Store(503)
	bad2.status.Store(503)
	bad1.delay.Store(int64(50 * time.Millisecond))
	bad2.delay.Store(int64(50 * time.Millisecond))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    retries: {attempts: 1, budget_percent: 0, min_retry_concurrency: 1, backoff_base: 1ms, backoff_max: 1ms}
    health: {outlier: {disabled: true}}
`, bad1, bad2))
	const clients = 16
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(t, "GET", px.url+"/", "", nil)
		}()
	}
	wg.Wait()
	total := bad1.hits.Load() + bad2.hits.Load()
	retries := total - clients
	if retries < 1 || retries >= clients {
		t.Fatalf("%d retries for %d concurrent failing requests with a budget of 1 in flight", retries, clients)
	}
	if !strings.Contains(metricsText(t, px), `lbsys_retry_budget_exhausted_total{service="app"}`) {
		t.Error("budget exhaustion not counted")
	}
}

func TestCookieAffinity(t *testing.T) {
	bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	t.Setenv("TEST_AFFINITY_SECRET", "s3cret-for-tests")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    affinity: {type: cookie, cookie: {name: sticky, secret_env: TEST_AFFINITY_SECRET}}
    health:
      outlier: {consecutive_5xx: 1, base_ejection_time: 10s}
    retries: {attempts: 0}
`, bs...))
	_, _, h := do(t, "GET", px.url+"/", "", nil)
	first := h.Get("X-Backend")
	setCookie := h.Get("Set-Cookie")
	if first == "" || !strings.HasPrefix(setCookie, "sticky=") || !strings.Contains(setCookie, "HttpOnly") {
		t.Fatalf("backend %q Set-Cookie %q", first, setCookie)
	}
	cookie := strings.SplitN(setCookie, ";", 2)[0]
	if strings.Contains(cookie, "127.0.0.1") {
		t.Fatalf("cookie reveals the endpoint address: %q", cookie)
	}
	for i := 0; i < 20; i++ {
		_, _, h := do(t, "GET", px.url+"/", "", map[string]string{"Cookie": "other=1; " + cookie})
		if h.Get("X-Backend") != first {
			t.Fatalf("request %d went to %q, want sticky %q", i, h.Get("X-Backend"), first)
		}
		if h.Get("Set-Cookie") != "" {
			t.Fatalf("a valid cookie was re-issued")
		}
	}
	// A forged cookie is ignored (and replaced).
	_, _, h = do(t, "GET", px.url+"/", "", map[string]string{"Cookie": "sticky=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	if h.Get("Set-Cookie") == "" {
		t.Fatal("forged cookie accepted")
	}
	// When the sticky endpoint is ejected, the client is re-pinned elsewhere.
	var sticky *testBackend
	for _, b := range bs {
		if b.name == first {
			sticky = b
		}
	}
	sticky.status.Store(500)
	do(t, "GET", px.url+"/", "", map[string]string{"Cookie": cookie}) // 500 ejects it
	_, _, h = do(t, "GET", px.url+"/", "", map[string]string{"Cookie": cookie})
	if h.Get("X-Backend") == first || h.Get("Set-Cookie") == "" {
		t.Fatalf("after ejection: backend %q Set-Cookie %q", h.Get("X-Backend"), h.Get("Set-Cookie"))
	}
}

func TestHashAffinityAgreesAcrossProxies(t *testing.T) {
	bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	cfg := renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    affinity: {type: hash, hash: {header: X-Session-Id, epsilon: 0.25}}
`, bs...)
	var pxs []*testProxy
	for i := 0; i < 3; i++ {
		pxs = append(pxs, startProxy(t, cfg))
	}
	owners := map[string]int{}
	for k := 0; k < 60; k++ {
		key := fmt.Sprintf("session-%d", k)
		var seen []string
		for _, px := range pxs {
			_, _, h := do(t, "GET", px.url+"/", "", map[string]string{"X-Session-Id": key})
			seen = append(seen, h.Get("X-Backend"))
		}
		if seen[0] != seen[1] || seen[1] != seen[2] {
			t.Fatalf("key %s mapped to %v by the three proxies", key, seen)
		}
		owners[seen[0]]++
	}
	if len(owners) != 3 {
		t.Fatalf("keys spread over %v; want all three endpoints used", owners)
	}
	// Bounded load: one hot key with many concurrent requests spills to
	// other endpoints instead of piling onto its owner.
	for _, b := range bs {
		b.delay.Store(int64(200 * time.Millisecond))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, h := do(t, "GET", pxs[0].url+"/", "", map[string]string{"X-Session-Id": "hot"})
			mu.Lock()
			got[h.Get("X-Backend")]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// ceil(1.25 × 12 / 3) = 5: no endpoint may have more than 5 of 12
	// concurrent requests.
	for name, n := range got {
		if n > 5 {
			t.Errorf("%s took %d of 12 concurrent requests for one key; bound is 5 (%v)", name, n, got)
		}
	}
}

func TestAdminTokenRequired(t *testing.T) {
	b := newBackend(t, "b")
	tokenFile := t.TempDir() + "/token"
	writeFile(tokenFile, "t0ken\n")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0, token_file: `+tokenFile+`}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	for _, c := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer wrong", 401}, {"Basic dDBrZW4=", 401}, {"Bearer t0ken", 200}} {
		req, _ := http.NewRequest("POST", px.admin+"/reload", nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("Authorization %q: status %d, want %d", c.auth, resp.StatusCode, c.want)
		}
	}
	// Read-only endpoints need no token.
	for _, p := range []string{"/status", "/metrics", "/healthz", "/telemetry"} {
		resp, err := testClient.Get(px.admin + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
}

func TestReloadUnderLoadLosesNothing(t *testing.T) {
	bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	for _, b := range bs {
		b.delay.Store(int64(2 * time.Millisecond))
	}
	tmpl := baseConfig + `
services:
  - name: app
    policy: %s
    endpoints: [%s]
`
	eps := []string{`{address: "{{.B0}}"}, {address: "{{.B1}}"}`, `{address: "{{.B1}}", weight: 3}, {address: "{{.B2}}"}`, `{address: "{{.B0}}"}, {address: "{{.B2}}"}, {address: "{{.B1}}"}`}
	policies := []string{"round_robin", "least_request"}
	px := startProxy(t, renderConfig(t, fmt.Sprintf(tmpl, policies[0], eps[0]), bs...))

	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				method, body := "GET", ""
				if i%4 == 0 {
					method, body = "POST", "x=1"
				}
				req, _ := http.NewRequest(method, px.url+"/", strings.NewReader(body))
				resp, err := testClient.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d %s", resp.StatusCode, resp.Header.Get("X-Lbsys-Error")))
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	for r := 0; r < 20; r++ {
		time.Sleep(50 * time.Millisecond)
		writeFile(px.path, renderConfig(t, fmt.Sprintf(tmpl, policies[r%2], eps[r%3]), bs...))
		if _, err := px.ReloadFile(); err != nil {
			t.Fatalf("reload %d: %v", r, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstErr.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests completed", ok.Load())
	}
	// A bad config is refused and the running one stays.
	before := px.Version()
	writeFile(px.path, "listeners: [")
	if _, err := px.ReloadFile(); err == nil {
		t.Fatal("broken config accepted")
	}
	if px.Version() != before {
		t.Fatal("version changed after a failed reload")
	}
	if s, _, _ := do(t, "GET", px.url+"/", "", nil); s != 200 {
		t.Fatalf("status %d after failed reload", s)
	}
}

func TestTelemetryRecordsAndMetrics(t *testing.T) {
	b := newBackend(t, "b")
	jsonl := t.TempDir() + "/telemetry.jsonl"
	px := startProxy(t, renderConfig(t, baseConfig+`
telemetry: {jsonl_path: `+jsonl+`}
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	for i := 0; i < 25; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	eventually(t, 5*time.Second, "a telemetry second with the requests", func() bool {
		resp, err := testClient.Get(px.admin + "/telemetry?service=app")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var out struct {
			Records []struct {
				Service  string  `json:"service"`
				Endpoint string  `json:"endpoint"`
				Requests int64   `json:"requests"`
				P50      float64 `json:"p50_ms"`
			} `json:"records"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		var svc, ep int64
		for _, r := range out.Records {
			if r.Endpoint == "" {
				svc += r.Requests
			} else if r.Endpoint == b.addr {
				ep += r.Requests
			}
		}
		return svc == 25 && ep == 25
	})
	data, err := os.ReadFile(jsonl)
	if err != nil || !strings.Contains(string(data), `"service":"app"`) {
		t.Fatalf("jsonl file: %v %q", err, data)
	}
	m := metricsText(t, px)
	for _, want := range []string{
		`lbsys_requests_total{code="200",endpoint="` + b.addr + `",route="main#0",service="app"} 25`,
		`lbsys_request_duration_seconds_count{route="main#0",service="app"} 25`,
		`lbsys_endpoint_available{endpoint="` + b.addr + `",service="app"} 1`,
		`lbsys_in_flight_requests{service="app"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAbortOnClientClose(t *testing.T) {
	for _, abort := range []bool{true, false} {
		t.Run(fmt.Sprintf("abort=%v", abort), func(t *testing.T) {
			canceled := make(chan time.Time, 1)
			srv := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
					canceled <- time.Now()
				case <-time.After(1500 * time.Millisecond):
					w.Write([]byte("late"))
				}
			}))
			px := startProxy(t, renderConfig(t, baseConfig+fmt.Sprintf(`
server: {engine: net_http}
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    timeouts: {request: 5s, abort_on_client_close: %v}
`, abort), srv))
			c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
			time.Sleep(100 * time.Millisecond)
			left := time.Now()
			c.Close()
			select {
			case at := <-canceled:
				if !abort {
					t.Fatalf("endpoint's request was cut although abort_on_client_close is off")
				}
				if d := at.Sub(left); d > time.Second {
					t.Fatalf("endpoint noticed %v after the client left", d)
				}
			case <-time.After(3 * time.Second):
				if abort {
					t.Fatal("endpoint kept working for a client that left")
				}
			}
		})
	}
}
