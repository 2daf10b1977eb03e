package proxy

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests pin behaviours that no other test would notice breaking:
// the percentage part of the retry budget, the replay-buffer limit, the HMAC
// of affinity cookies naming real endpoints, hash affinity under health
// changes and bounded load across replicas, the client idle timeout,
// upstream keep-alive and the no_healthy_upstream answer. Each one waits on
// explicit barriers or polls with deadlines; none depends on a sleep being
// long enough.

// attemptTracker tells a request's first attempt from its retries across
// all the backends that share it, by a per-request X-Req-Id header, so a
// test does not depend on which endpoint the policy picks first.
type attemptTracker struct {
	mu     sync.Mutex
	seen   map[string]int      // attempts per request ID
	bodies map[string][]string // bodies received per request ID
}

func newAttemptTracker() *attemptTracker {
	return &attemptTracker{seen: map[string]int{}, bodies: map[string][]string{}}
}

// arrive records an attempt and returns its number (1 for the first).
func (a *attemptTracker) arrive(id, body string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen[id]++
	a.bodies[id] = append(a.bodies[id], body)
	return a.seen[id]
}

func (a *attemptTracker) attempts(id string) (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[id], append([]string(nil), a.bodies[id]...)
}

// releaser closes a channel once, however often it is called (deferred and
// explicit calls both end held handlers).
func releaser() (chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// TestCoverageRetryBudgetPercent shows that the retry budget grows with the
// requests in flight: max(min_retry_concurrency, budget_percent × active).
// Forty requests are held at the backends; then their first attempts fail
// one at a time, each waiting for the previous one's retry decision, so
// every decision sees exactly 40 active requests. The budget is
// max(2, 25% × 40) = 10 retries in flight: exactly ten retries happen (the
// floor alone would allow two, no budget forty).
func TestCoverageRetryBudgetPercent(t *testing.T) {
	const (
		clients = 40
		floor   = 2
		want    = clients * 25 / 100 // budget_percent 25
	)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait() // after release: no client outlives the test
	done, release := releaser()
	defer release()
	tr := newAttemptTracker()
	var firsts, retries atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tr.arrive(r.Header.Get("X-Req-Id"), "") == 1 {
			firsts.Add(1)
			select { // fail when the test says so
			case <-gate:
			case <-done:
			case <-r.Context().Done():
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "first attempt fails")
			return
		}
		retries.Add(1)
		select { // a retry stays in flight until the end
		case <-done:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "retry succeeds")
	})
	a, b := newCustomBackend(t, h), newCustomBackend(t, h)
	px := startProxy(t, renderConfig(t, baseConfig+fmt.Sprintf(`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    retries: {attempts: 1, on: [gateway_error], budget_percent: 25, min_retry_concurrency: %d, backoff_base: 0s, backoff_max: 0s}
    health: {outlier: {disabled: true}}
`, floor), a, b))

	var got503, got200 atomic.Int64
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", px.url+"/", nil)
			req.Header.Set("X-Req-Id", fmt.Sprint(i))
			resp, err := testClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 503:
				got503.Add(1)
			case 200:
				got200.Add(1)
			default:
				t.Errorf("request %d: status %d", i, resp.StatusCode)
			}
		}()
	}
	eventually(t, 5*time.Second, "all first attempts in flight", func() bool { return firsts.Load() == clients })
	for i := int64(1); i <= clients; i++ {
		select {
		case gate <- struct{}{}:
		case <-time.After(5 * time.Second):
			t.Fatalf("first attempt %d never waited at the gate", i)
		}
		// The decision is made once the retry reached a backend or the
		// client got the 503.
		eventually(t, 5*time.Second, fmt.Sprintf("retry decision %d", i), func() bool {
			return retries.Load()+got503.Load() == i
		})
	}
	if n := retries.Load(); n != want {
		t.Errorf("%d retries for %d requests in flight; want %d = 25%% of them (the floor of %d alone would allow %d)",
			n, clients, want, floor, floor)
	}
	release()
	wg.Wait()
	if got200.Load() != retries.Load() || got503.Load() != clients-retries.Load() {
		t.Errorf("clients got %d×200 and %d×503 for %d retries", got200.Load(), got503.Load(), retries.Load())
	}
	if !strings.Contains(metricsText(t, px), `lbsys_retry_budget_exhausted_total{service="app"} `+fmt.Sprint(clients-want)) {
		t.Errorf("budget exhaustion not counted %d times", clients-want)
	}
}

// TestCoverageReplayBodyLimit shows retries.max_body_bytes at work: a
// retryable request whose body fits is buffered and replayed to the other
// endpoint; one byte more and it is streamed and sent exactly once.
func TestCoverageReplayBodyLimit(t *testing.T) {
	const limit = 1024
	tr := newAttemptTracker()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if tr.arrive(r.Header.Get("X-Req-Id"), string(body)) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	a, b := newCustomBackend(t, h), newCustomBackend(t, h)
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    retries: {attempts: 2, on: [gateway_error], max_body_bytes: 1KiB, backoff_base: 1ms, backoff_max: 2ms}
    health: {outlier: {disabled: true}}
`, a, b))
	key := map[string]string{"Idempotency-Key": "order-1"}
	cases := []struct {
		method     string
		size       int
		hdr        map[string]string
		wantStatus int
		wantSent   int
	}{
		{"PUT", 100, nil, 200, 2},
		{"PUT", limit, nil, 200, 2}, // exactly the limit still fits
		{"PUT", limit + 1, nil, 503, 1},
		{"PUT", 64 << 10, nil, 503, 1},
		{"POST", limit, key, 200, 2},
		{"POST", limit + 1, key, 503, 1},
	}
	for i, c := range cases {
		id := fmt.Sprintf("req-%d", i)
		body := strings.Repeat(string(rune('a'+i)), c.size)
		hdr := map[string]string{"X-Req-Id": id}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		status, _, _ := do(t, c.method, px.url+"/order", body, hdr)
		sent, bodies := tr.attempts(id)
		if status != c.wantStatus || sent != c.wantSent {
			t.Errorf("%s with a %d-byte body (limit %d): status %d, sent %d times; want %d, %d times",
				c.method, c.size, limit, status, sent, c.wantStatus, c.wantSent)
		}
		for k, got := range bodies {
			if got != body {
				t.Errorf("%s %d bytes: attempt %d carried %d bytes, want the whole body", c.method, c.size, k+1, len(got))
			}
		}
	}
}

// TestCoverageCookieAffinitySignature shows that a cookie's HMAC is checked
// even when the cookie names a real endpoint: genuine cookies stick; the
// same endpoint ID with a wrong MAC, or with another endpoint's MAC, is
// ignored: the policy picks and a fresh, genuine cookie is issued.
func TestCoverageCookieAffinitySignature(t *testing.T) {
	bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	secret := t.TempDir() + "/affinity-secret"
	if err := writeFile(secret, "coverage-test-secret-0123456789abcdef\n"); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    affinity: {type: cookie, cookie: {name: sticky, secret_file: `+secret+`}}
    health: {outlier: {disabled: true}}
    retries: {attempts: 0}
`, bs...))
	addr := map[string]string{}
	for _, b := range bs {
		addr[b.name] = b.addr
	}
	cookieOf := func(h http.Header) string {
		for _, sc := range h.Values("Set-Cookie") {
			if v, ok := strings.CutPrefix(strings.SplitN(sc, ";", 2)[0], "sticky="); ok {
				return v
			}
		}
		return ""
	}
	send := func(cookie string) (backend, issued string) {
		t.Helper()
		hdr := map[string]string{}
		if cookie != "" {
			hdr["Cookie"] = "sticky=" + cookie
		}
		status, _, h := do(t, "GET", px.url+"/", "", hdr)
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		return h.Get("X-Backend"), cookieOf(h)
	}

	// Round robin over three endpoints: three fresh clients get one
	// genuine cookie each.
	genuine := map[string]string{} // backend name -> cookie value
	raw := map[string][]byte{}
	for i := 0; i < 3; i++ {
		name, c := send("")
		if c == "" {
			t.Fatalf("no affinity cookie for a client without one")
		}
		genuine[name] = c
		r, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || len(r) != 8+cookieMACLen {
			t.Fatalf("cookie %q: %d bytes, err %v", c, len(r), err)
		}
		raw[name] = r
	}
	if len(genuine) != 3 {
		t.Fatalf("three fresh clients were sent to %v; want all three endpoints", genuine)
	}
	for name, r := range raw {
		if got := uint64(r[0])<<56 | uint64(r[1])<<48 | uint64(r[2])<<40 | uint64(r[3])<<32 |
			uint64(r[4])<<24 | uint64(r[5])<<16 | uint64(r[6])<<8 | uint64(r[7]); got != endpointKey(addr[name]) {
			t.Fatalf("cookie of %s names ID %x, want %x", name, got, endpointKey(addr[name]))
		}
	}

	// Genuine cookies stick and are not re-issued.
	for name, c := range genuine {
		for i := 0; i < 4; i++ {
			if got, issued := send(c); got != name || issued != "" {
				t.Fatalf("genuine cookie of %s: went to %s, re-issued %q", name, got, issued)
			}
		}
	}

	forgeries := map[string]func(name string) []byte{
		"flipped MAC bit": func(name string) []byte {
			r := append([]byte(nil), raw[name]...)
			r[8+cookieMACLen-1] ^= 0x01
			return r
		},
		"zero MAC": func(name string) []byte {
			r := append([]byte(nil), raw[name][:8]...)
			return append(r, make([]byte, cookieMACLen)...)
		},
		"another endpoint's MAC": func(name string) []byte {
			other := "a"
			if name == "a" {
				other = "b"
			}
			r := append([]byte(nil), raw[name][:8]...)
			return append(r, raw[other][8:]...)
		},
	}
	for what, forge := range forgeries {
		for target := range genuine {
			forged := base64.RawURLEncoding.EncodeToString(forge(target))
			// Three requests with the forged cookie are balanced by round
			// robin (one to each endpoint) instead of all going to the
			// endpoint the cookie names, and each gets a genuine cookie.
			went := map[string]bool{}
			for i := 0; i < 3; i++ {
				got, issued := send(forged)
				if issued == "" {
					t.Fatalf("%s naming %s: accepted (request went to %s, no cookie issued)", what, target, got)
				}
				if issued != genuine[got] {
					t.Fatalf("%s naming %s: request went to %s with cookie %q; want its genuine cookie %q", what, target, got, issued, genuine[got])
				}
				went[got] = true
			}
			if len(went) != 3 {
				t.Fatalf("%s naming %s: three requests went to %v; want them balanced over all endpoints", what, target, went)
			}
		}
	}
}

// TestCoverageHashAffinityRepicksUnavailable shows that a hash-affinity key
// whose endpoint becomes unavailable (active checks down, or ejected as an
// outlier) moves to one other endpoint, and comes back when its endpoint
// recovers.
func TestCoverageHashAffinityRepicksUnavailable(t *testing.T) {
	for _, mode := range []string{"active_check", "outlier"} {
		t.Run(mode, func(t *testing.T) {
			bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
			health := `
    health:
      active: {path: /healthz, interval: 50ms, timeout: 40ms, healthy_threshold: 1, unhealthy_threshold: 1}
      outlier: {disabled: true}
      panic_threshold: 0`
			if mode == "outlier" {
				health = `
    health:
      outlier: {consecutive_5xx: 1, base_ejection_time: 1s, max_ejection_percent: 50}
      panic_threshold: 0`
			}
			px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    affinity: {type: hash, hash: {header: X-Session-Id}}
    retries: {attempts: 0}`+health+`
`, bs...))
			const key = "session-42"
			route := func() (string, int) {
				t.Helper()
				status, _, h := do(t, "GET", px.url+"/", "", map[string]string{"X-Session-Id": key})
				return h.Get("X-Backend"), status
			}
			home, _ := route()
			var hb *testBackend
			for _, b := range bs {
				if b.name == home {
					hb = b
				}
			}
			if hb == nil {
				t.Fatalf("key went to %q", home)
			}
			for i := 0; i < 3; i++ {
				if got, _ := route(); got != home {
					t.Fatalf("key moved from %s to %s with every endpoint healthy", home, got)
				}
			}

			if mode == "outlier" {
				hb.status.Store(500)
				if _, s := route(); s != 500 {
					t.Fatalf("status %d from the failing home endpoint", s)
				}
				hb.status.Store(200) // it works again, but stays ejected for 1s
			} else {
				hb.healthCode.Store(503)
			}
			// /status shows the health state a moment before the routing
			// snapshot built from it is published: wait for the routing.
			eventually(t, 3*time.Second, "home endpoint unavailable", func() bool { return !endpointAvailable(t, px, "app", hb.addr) })
			var moved string
			eventually(t, 2*time.Second, "the key to move off its unavailable endpoint "+home, func() bool {
				moved, _ = route()
				return moved != home
			})
			if moved == "" {
				t.Fatal("no backend answered while the home endpoint is unavailable")
			}
			hits := hb.hits.Load()
			for i := 0; i < 4; i++ {
				if got, _ := route(); got != moved {
					t.Fatalf("while %s is unavailable the key went to %s, then %s; want one stable endpoint", home, moved, got)
				}
			}
			if hb.hits.Load() != hits {
				t.Fatalf("unavailable endpoint received %d requests", hb.hits.Load()-hits)
			}

			hb.healthCode.Store(200)
			eventually(t, 5*time.Second, "home endpoint available again", func() bool { return endpointAvailable(t, px, "app", hb.addr) })
			eventually(t, 2*time.Second, "the key to return to "+home, func() bool {
				got, _ := route()
				return got == home
			})
			for i := 0; i < 3; i++ {
				if got, _ := route(); got != home {
					t.Fatalf("after %s recovered the key went to %s", home, got)
				}
			}
		})
	}
}

// TestCoverageHashAffinityBoundedLoadAcrossProxies runs three proxies with
// one configuration. Unloaded, they map every key to the same endpoint.
// Loaded, with the same requests held in flight at the backends (a hot key
// interleaved with cold ones), each proxy keeps every endpoint within
// ⌈(1+ε)·in-flight/3⌉ at every step, and all three spill the hot key to
// the same endpoints in the same order.
func TestCoverageHashAffinityBoundedLoadAcrossProxies(t *testing.T) {
	var wg sync.WaitGroup
	defer wg.Wait() // after release: no client outlives the test
	done, release := releaser()
	defer release()
	var arrivals atomic.Int64
	var mu sync.Mutex
	placed := map[string]string{} // X-Seq -> backend
	var bs []*testBackend
	for _, name := range []string{"a", "b", "c"} {
		bs = append(bs, newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			if seq := r.Header.Get("X-Seq"); seq != "" {
				mu.Lock()
				placed[seq] = name
				mu.Unlock()
				arrivals.Add(1)
				select {
				case <-done:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, name)
		})))
	}
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
	for k := 0; k < 30; k++ {
		key := fmt.Sprintf("user-%d", k)
		var seen []string
		for _, px := range pxs {
			_, _, h := do(t, "GET", px.url+"/", "", map[string]string{"X-Session-Id": key})
			seen = append(seen, h.Get("X-Backend"))
		}
		if seen[0] == "" || seen[0] != seen[1] || seen[1] != seen[2] {
			t.Fatalf("unloaded: key %s mapped to %v by the three proxies", key, seen)
		}
		owners[seen[0]]++
	}
	if len(owners) != 3 {
		t.Fatalf("30 keys spread over %v; want all three endpoints used", owners)
	}

	// Loaded: step j sends request j to every proxy and waits until each
	// reached a backend, so every proxy sees the same arrivals in the same
	// order. Even steps carry the hot key.
	const steps = 24
	keyOf := func(j int) string {
		if j%2 == 0 {
			return "hot"
		}
		return fmt.Sprintf("cold-%d", j)
	}
	for j := 0; j < steps; j++ {
		for p, px := range pxs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", px.url+"/", nil)
				req.Header.Set("X-Session-Id", keyOf(j))
				req.Header.Set("X-Seq", fmt.Sprintf("%d/%d", p, j))
				resp, err := testClient.Do(req)
				if err != nil {
					t.Errorf("proxy %d step %d: %v", p, j, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("proxy %d step %d: status %d", p, j, resp.StatusCode)
				}
			}()
			want := int64(j*len(pxs) + p + 1)
			eventually(t, 5*time.Second, fmt.Sprintf("proxy %d step %d in flight", p, j), func() bool { return arrivals.Load() == want })
		}
	}
	mu.Lock()
	seqs := make([][]string, len(pxs))
	for p := range pxs {
		for j := 0; j < steps; j++ {
			seqs[p] = append(seqs[p], placed[fmt.Sprintf("%d/%d", p, j)])
		}
	}
	mu.Unlock()
	for p := 1; p < len(pxs); p++ {
		if strings.Join(seqs[p], ",") != strings.Join(seqs[0], ",") {
			t.Errorf("under load proxy %d placed the requests on\n  %v\nproxy 0 on\n  %v", p, seqs[p], seqs[0])
		}
	}
	for p, seq := range seqs {
		load := map[string]int{}
		hot := map[string]bool{}
		for j, name := range seq {
			load[name]++
			if keyOf(j) == "hot" {
				hot[name] = true
			}
			m := j + 1
			bound := (5*m + 11) / 12 // ⌈1.25·m/3⌉
			for n, l := range load {
				if l > bound {
					t.Fatalf("proxy %d: with %d requests in flight %s holds %d; bound ⌈(1+ε)·%d/3⌉ = %d (%v)", p, m, n, l, m, bound, seq[:m])
				}
			}
		}
		if len(hot) < 2 {
			t.Errorf("proxy %d: %d concurrent hot-key requests all on %v; want them spilled", p, steps/2, hot)
		}
	}
	release()
	wg.Wait()
}

// TestCoverageServerIdleTimeout shows server.idle_timeout: a keep-alive
// client connection used more often than the timeout stays open well past
// it; left idle, the proxy closes it (the client reads EOF), long before
// read_header_timeout or the 120s default could.
func TestCoverageServerIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	b := newBackend(t, "b")
	for _, engine := range []string{"lbsys", "net_http"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			px := startProxy(t, renderConfig(t, baseConfig+`
server: {engine: `+engine+`, idle_timeout: 400ms, read_header_timeout: 10s}
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
			c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			exchange := func(i int) {
				t.Helper()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, "GET /ka HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatalf("request %d on the kept-alive connection: %v", i, err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d on the kept-alive connection: %v", i, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Close {
					t.Fatalf("request %d: status %d close %v", i, resp.StatusCode, resp.Close)
				}
			}
			// In use every idle/10 for 2.5 idle timeouts: stays open.
			opened := time.Now()
			for i := 0; time.Since(opened) < idle*5/2; i++ {
				exchange(i)
				time.Sleep(idle / 10)
			}
			exchange(-1)
			// Idle: closed after idle_timeout.
			idleFrom := time.Now()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			n, err := br.Read(make([]byte, 1))
			var ne net.Error
			switch {
			case err == nil:
				t.Fatalf("unexpected %d bytes on an idle connection", n)
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("idle connection still open after %v; idle_timeout is %v", time.Since(idleFrom), idle)
			}
			if el := time.Since(idleFrom); el < idle/2 {
				t.Fatalf("idle connection closed after %v (%v); idle_timeout is %v", el, err, idle)
			}
		})
	}
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// TestCoverageUpstreamKeepAlive shows that sequential requests share pooled
// upstream connections (GETs and POSTs without an Idempotency-Key, whose
// pooled connection is first checked to be alive) instead of dialing one
// per request.
func TestCoverageUpstreamKeepAlive(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: raw}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok "+r.Method)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b := &testBackend{t: t, srv: srv, ln: ln, addr: raw.Addr().String()}
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	const n = 60
	for i := 0; i < n; i++ {
		method, body := "GET", ""
		switch i % 3 {
		case 1:
			method, body = "POST", "order=1"
		case 2:
			method, body = "PUT", "item=2"
		}
		if status, got, _ := do(t, method, px.url+"/", body, nil); status != 200 || got != "ok "+method {
			t.Fatalf("request %d: %d %q", i, status, got)
		}
	}
	if got := ln.accepted.Load(); got > 2 {
		t.Fatalf("%d sequential requests opened %d upstream connections; want them kept alive and reused", n, got)
	}
	eventually(t, 2*time.Second, "the connection back in the pool", func() bool {
		return endpointStatus(t, px, "app", b.addr).IdleConns == int(ln.accepted.Load())
	})
}

// TestCoverageNoHealthyUpstream shows the answer when active checks take
// every endpoint down: with panic mode off, an immediate 503 with
// X-Lbsys-Error: no_healthy_upstream and Retry-After, nothing forwarded;
// with panic_threshold 50 (the default), panic mode balances over all
// endpoints instead.
func TestCoverageNoHealthyUpstream(t *testing.T) {
	for _, panicThreshold := range []int{0, 50} {
		t.Run(fmt.Sprintf("panic_threshold=%d", panicThreshold), func(t *testing.T) {
			a, b := newBackend(t, "a"), newBackend(t, "b")
			px := startProxy(t, renderConfig(t, baseConfig+fmt.Sprintf(`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    timeouts: {request: 10s}
    health:
      active: {path: /healthz, interval: 50ms, timeout: 40ms, healthy_threshold: 1, unhealthy_threshold: 1}
      panic_threshold: %d
`, panicThreshold), a, b))
			a.healthCode.Store(503)
			b.healthCode.Store(503)
			eventually(t, 3*time.Second, "both endpoints down", func() bool {
				return !endpointAvailable(t, px, "app", a.addr) && !endpointAvailable(t, px, "app", b.addr)
			})
			if panicThreshold > 0 {
				eventually(t, 2*time.Second, "panic mode", func() bool {
					st := status(t, px)
					return len(st.Services) == 1 && st.Services[0].Panic
				})
				for i := 0; i < 4; i++ {
					if s, body, h := do(t, "GET", px.url+"/", "", nil); s != 200 || h.Get("X-Backend") == "" {
						t.Fatalf("panic mode: status %d %q %q; want the request balanced over the (unhealthy) endpoints", s, body, h.Get(headerError))
					}
				}
				if a.hits.Load() == 0 || b.hits.Load() == 0 {
					t.Errorf("panic mode sent a:%d b:%d; want both used", a.hits.Load(), b.hits.Load())
				}
				return
			}
			// The routing snapshot follows /status a moment later.
			eventually(t, 2*time.Second, "requests no longer forwarded", func() bool {
				s, _, _ := do(t, "GET", px.url+"/", "", nil)
				return s != 200
			})
			hits := a.hits.Load() + b.hits.Load()
			for _, method := range []string{"GET", "POST"} {
				reqBody := ""
				if method == "POST" {
					reqBody = "order=1"
				}
				start := time.Now()
				s, body, h := do(t, method, px.url+"/", reqBody, nil)
				el := time.Since(start)
				if s != 503 || h.Get(headerError) != reasonNoHealthy || h.Get("Retry-After") != "1" || h.Get("X-Backend") != "" {
					t.Errorf("%s: status %d %s=%q Retry-After %q body %q; want 503 %s", method, s, headerError, h.Get(headerError), h.Get("Retry-After"), body, reasonNoHealthy)
				}
				if el > 2*time.Second {
					t.Errorf("%s: answered after %v; want at once", method, el)
				}
			}
			if got := a.hits.Load() + b.hits.Load(); got != hits {
				t.Errorf("%d requests reached unhealthy endpoints", got-hits)
			}
			a.healthCode.Store(200)
			eventually(t, 3*time.Second, "requests served by a again", func() bool {
				s, _, h := do(t, "GET", px.url+"/", "", nil)
				return s == 200 && h.Get("X-Backend") == "a"
			})
		})
	}
}
