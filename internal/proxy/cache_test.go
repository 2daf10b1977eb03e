package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/config"
)

// The response cache through the real proxy: a real origin on 127.0.0.1,
// real client connections, both server engines (TestCacheNetHTTPEngine
// runs these again on net/http).

// cacheOrigin is an origin whose paths answer with the caching headers
// the tests need, counting what it receives.
type cacheOrigin struct {
	*testBackend
	version atomic.Int64 // in bodies and ETags; bumped by POST /write
	cookies atomic.Int64
	warm    atomic.Int64 // requests from the cache's warmer
	cond    atomic.Int64 // requests with If-None-Match
	mu      sync.Mutex
	byPath  map[string]int
	release chan struct{} // /slow/ waits for it
	slowIn  chan struct{} // /slow/ signals arrival
}

func newCacheOrigin(t *testing.T) *cacheOrigin {
	o := &cacheOrigin{byPath: map[string]int{}, release: make(chan struct{}), slowIn: make(chan struct{}, 16)}
	o.version.Store(1)
	o.testBackend = newCustomBackend(t, o)
	return o
}

func (o *cacheOrigin) seen(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.byPath[path]
}

func (o *cacheOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		return
	}
	o.mu.Lock()
	o.byPath[r.URL.Path]++
	o.mu.Unlock()
	if r.Header.Get("User-Agent") == "lbsys-cache-warm" {
		o.warm.Add(1)
	}
	if r.Header.Get("If-None-Match") != "" {
		o.cond.Add(1)
	}
	h := w.Header()
	v := o.version.Load()
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/fresh/"):
		h.Set("Cache-Control", "max-age=600")
		h.Set("Surrogate-Key", "tag-"+p[len("/fresh/"):]+" all")
		fmt.Fprintf(w, "fresh %s v%d", p, v)
	case strings.HasPrefix(p, "/etag/"):
		etag := fmt.Sprintf(`"v%d"`, v)
		h.Set("Cache-Control", "max-age=0")
		h.Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "etag %s v%d", p, v)
	case p == "/vary":
		h.Set("Cache-Control", "max-age=600")
		h.Set("Vary", "Accept-Encoding")
		fmt.Fprintf(w, "vary %q", r.Header.Get("Accept-Encoding"))
	case p == "/cookie":
		n := o.cookies.Add(1)
		h.Set("Cache-Control", "max-age=600")
		h.Set("Set-Cookie", fmt.Sprintf("session=s%d", n))
		fmt.Fprintf(w, "cookie s%d", n)
	case p == "/private":
		h.Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "for %q", r.Header.Get("Authorization"))
	case strings.HasPrefix(p, "/hint/"):
		fmt.Fprintf(w, "no freshness %s", p) // no Cache-Control, Expires or Last-Modified
	case strings.HasPrefix(p, "/slow/"):
		o.slowIn <- struct{}{}
		<-o.release
		h.Set("Cache-Control", "max-age=600")
		io.WriteString(w, "slow")
	case p == "/write" && r.Method == http.MethodPost:
		o.version.Add(1)
		h.Set("Link", `</fresh/a>; rel="invalidates"`)
		io.WriteString(w, "written")
	default:
		io.WriteString(w, "plain "+p)
	}
}

const cacheProxyConfig = `
admin: {listen: 127.0.0.1:0, token_file: TOKEN}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {name: writes, match: {path_prefix: /write}, service: writer}
      - {name: shop, service: app}
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    cache: {enabled: true}
  - name: writer
    endpoints: [{address: "{{.B0}}"}]
`

// startCacheProxy starts a proxy for o with yaml (TOKEN replaced by a
// token file holding "t0ken").
func startCacheProxy(t *testing.T, o *cacheOrigin, yaml string) *testProxy {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("t0ken\n"), 0o600)
	return startProxy(t, strings.ReplaceAll(renderConfig(t, yaml, o.testBackend), "TOKEN", tok))
}

// get sends a GET with headers and returns status, body and header.
func get(t *testing.T, px *testProxy, path string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	return do(t, "GET", px.url+path, "", hdr)
}

// metric reads one sample from GET /metrics: name{labels} exactly as
// exposed (labels sorted by name, as client_golang writes them).
func metric(t *testing.T, px *testProxy, series string) float64 {
	t.Helper()
	resp, err := testClient.Get(px.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(line[len(series):]), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	return -1
}

func purge(t *testing.T, px *testProxy, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", px.admin+"/cache/purge", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCacheNetHTTPEngine(t *testing.T) {
	testEngine = config.EngineNetHTTP
	defer func() { testEngine = "" }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"OffByDefault", TestCacheOffByDefault},
		{"HitAndMiss", TestCacheHitAndMiss},
		{"HitDoesNoAdmissionOrBalancing", TestCacheHitDoesNoAdmissionOrBalancing},
		{"Revalidation304", TestCacheRevalidation304},
		{"Vary", TestCacheVary},
		{"NeverSharesPrivateResponses", TestCacheNeverSharesPrivateResponses},
		{"Purge", TestCachePurge},
		{"WriteOnAnotherRouteInvalidates", TestCacheWriteOnAnotherRouteInvalidates},
		{"ReloadKeepsTheCache", TestCacheReloadKeepsTheCache},
		{"WarmingFromADirective", TestCacheWarmingFromADirective},
	} {
		t.Run(tc.name, tc.f)
	}
}

// TestCacheOffByDefault: without a cache section nothing is stored, no
// cache field is added, no cache metric or status appears.
func TestCacheOffByDefault(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, strings.Replace(cacheProxyConfig, "    cache: {enabled: true}\n", "", 1))
	for range 2 {
		_, body, h := get(t, px, "/fresh/a", nil)
		if h.Get("X-Cache") != "" || h.Get("Cache-Status") != "" || body != "fresh /fresh/a v1" {
			t.Fatalf("X-Cache %q, Cache-Status %q, body %q: want the origin's answer untouched", h.Get("X-Cache"), h.Get("Cache-Status"), body)
		}
	}
	if n := o.seen("/fresh/a"); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (nothing cached)", n)
	}
	if status(t, px).Cache != nil || px.cache.Load() != nil {
		t.Error("a cache exists although no route opts in")
	}
	if v := metric(t, px, "lbsys_cache_max_bytes"); v != -1 {
		t.Errorf("lbsys_cache_max_bytes exposed (%v) with no cache", v)
	}
	g := px.gen.Load()
	for _, lr := range g.listeners {
		for _, rt := range lr.routes {
			if rt.origin != nil || rt.cache != nil {
				t.Errorf("route %s takes the cache path", rt.name)
			}
		}
	}
}

// TestCacheHitAndMiss: a fresh response is stored on the miss and served
// on the next request without the origin, with X-Cache and Cache-Status;
// both are counted in the cache's metrics, requests_total, the route's
// duration and the service's telemetry (not the endpoint's).
func TestCacheHitAndMiss(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	code, body, h := get(t, px, "/fresh/a", nil)
	if code != 200 || h.Get("X-Cache") != "MISS" || h.Get("Cache-Status") != "lbsys; fwd=uri-miss; fwd-status=200; stored" {
		t.Fatalf("first: %d %q, X-Cache %q, Cache-Status %q", code, body, h.Get("X-Cache"), h.Get("Cache-Status"))
	}
	code, body2, h := get(t, px, "/fresh/a", nil)
	if code != 200 || body2 != body || h.Get("X-Cache") != "HIT" || h.Get("Cache-Status") != "lbsys; hit" || h.Get("Age") == "" {
		t.Fatalf("second: %d %q, X-Cache %q, Cache-Status %q, Age %q", code, body2, h.Get("X-Cache"), h.Get("Cache-Status"), h.Get("Age"))
	}
	if n := o.seen("/fresh/a"); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	for series, want := range map[string]float64{
		`lbsys_cache_hits_total{route="shop"}`:                                                  1,
		`lbsys_cache_misses_total{route="shop"}`:                                                1,
		`lbsys_cache_stores_total{route="shop"}`:                                                1,
		`lbsys_requests_total{code="200",endpoint="",route="shop",service="app"}`:               1,
		`lbsys_requests_total{code="200",endpoint="` + o.addr + `",route="shop",service="app"}`: 1,
		`lbsys_request_duration_seconds_count{route="shop",service="app"}`:                      2,
		`lbsys_cache_objects`: 1,
	} {
		if got := metric(t, px, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	eventually(t, 5*time.Second, "telemetry with the hit", func() bool {
		var svc, ep int64
		for _, r := range px.Telemetry(time.Time{}, "app") {
			if r.Endpoint == "" {
				svc += r.Requests
			} else {
				ep += r.Requests
			}
		}
		return svc == 2 && ep == 1
	})
	if st := status(t, px).Cache; st == nil || len(st.Routes) != 1 || st.Routes[0].Route != "shop" || st.Routes[0].Hits != 1 || st.Objects != 1 {
		t.Errorf("status cache %+v", st)
	}
}

// TestCacheHitDoesNoAdmissionOrBalancing: with the service's only
// admission slot taken (a slow miss in flight), a hit is still served and
// a miss is refused; with every endpoint gone, a hit is still served.
func TestCacheHitDoesNoAdmissionOrBalancing(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, strings.Replace(cacheProxyConfig, "    cache: {enabled: true}\n",
		"    cache: {enabled: true}\n    admission: {min_limit: 1, max_limit: 1, initial_limit: 1}\n", 1))
	get(t, px, "/fresh/a", nil) // stored
	done := make(chan int)
	go func() {
		code, _, _ := do(t, "GET", px.url+"/slow/1", "", nil)
		done <- code
	}()
	<-o.slowIn // the slow miss holds the only slot
	if code, _, h := get(t, px, "/fresh/a", nil); code != 200 || h.Get("X-Cache") != "HIT" {
		t.Errorf("hit while admission is full: %d, X-Cache %q", code, h.Get("X-Cache"))
	}
	if code, _, h := get(t, px, "/fresh/b", nil); code != 503 || h.Get("X-Lbsys-Error") != "overloaded" {
		t.Errorf("miss while admission is full: %d %q, want 503 overloaded", code, h.Get("X-Lbsys-Error"))
	}
	close(o.release)
	if code := <-done; code != 200 {
		t.Errorf("slow miss: %d", code)
	}
	o.stop()
	if code, _, h := get(t, px, "/fresh/a", nil); code != 200 || h.Get("X-Cache") != "HIT" {
		t.Errorf("hit with the origin down: %d, X-Cache %q", code, h.Get("X-Cache"))
	}
}

// TestCacheRevalidation304: a stale response with an ETag is validated
// with If-None-Match; the origin's 304 refreshes it and the client gets the
// stored body.
func TestCacheRevalidation304(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	_, first, _ := get(t, px, "/etag/x", nil)
	code, body, h := get(t, px, "/etag/x", nil)
	if code != 200 || body != first || h.Get("Cache-Status") != "lbsys; fwd=stale; fwd-status=304" || h.Get("X-Cache") != "HIT" {
		t.Fatalf("revalidated: %d %q, Cache-Status %q, X-Cache %q", code, body, h.Get("Cache-Status"), h.Get("X-Cache"))
	}
	if o.cond.Load() != 1 || o.seen("/etag/x") != 2 {
		t.Errorf("origin saw %d requests, %d conditional; want 2 and 1", o.seen("/etag/x"), o.cond.Load())
	}
	if got := metric(t, px, `lbsys_cache_revalidations_total{result="not_modified",route="shop"}`); got != 1 {
		t.Errorf("not_modified revalidations = %v", got)
	}
	// A client's own conditional is answered from the cache.
	if code, _, _ := get(t, px, "/etag/x", map[string]string{"If-None-Match": `"v1"`}); code != 304 {
		t.Errorf("client conditional: %d, want 304", code)
	}
	// A new version: the validation gets a 200 with the new body.
	o.version.Add(1)
	if _, body, _ := get(t, px, "/etag/x", nil); body != "etag /etag/x v2" {
		t.Errorf("after the origin changed: %q", body)
	}
}

// TestCacheVary: responses that vary on Accept-Encoding are stored per
// value and each client gets its own.
func TestCacheVary(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	gz := map[string]string{"Accept-Encoding": "gzip"}
	id := map[string]string{"Accept-Encoding": "identity"}
	for round := 0; round < 2; round++ {
		for _, c := range []struct {
			hdr  map[string]string
			want string
		}{{gz, `vary "gzip"`}, {id, `vary "identity"`}} {
			_, body, h := get(t, px, "/vary", c.hdr)
			if body != c.want {
				t.Fatalf("round %d: body %q, want %q", round, body, c.want)
			}
			wantX := "MISS"
			if round == 1 {
				wantX = "HIT"
			}
			if h.Get("X-Cache") != wantX {
				t.Errorf("round %d %v: X-Cache %q, want %s", round, c.hdr, h.Get("X-Cache"), wantX)
			}
		}
	}
	if n := o.seen("/vary"); n != 2 {
		t.Errorf("origin saw %d requests, want 2", n)
	}
}

// TestCacheNeverSharesPrivateResponses: a response carrying Set-Cookie,
// and a response to a request with Authorization, never reach another
// client.
func TestCacheNeverSharesPrivateResponses(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	_, bodyA, hA := get(t, px, "/cookie", nil)
	_, bodyB, hB := get(t, px, "/cookie", nil)
	if bodyA == bodyB || hA.Get("Set-Cookie") == hB.Get("Set-Cookie") || hB.Get("X-Cache") != "MISS" {
		t.Errorf("second client got %q (Set-Cookie %q, X-Cache %q), first %q (%q)", bodyB, hB.Get("Set-Cookie"), hB.Get("X-Cache"), bodyA, hA.Get("Set-Cookie"))
	}
	if got := metric(t, px, `lbsys_cache_not_stored_total{reason="set-cookie",route="shop"}`); got != 2 {
		t.Errorf("not stored for set-cookie = %v, want 2", got)
	}
	_, body, h := get(t, px, "/private", map[string]string{"Authorization": "Bearer alice"})
	if body != `for "Bearer alice"` || !strings.Contains(h.Get("Cache-Status"), "fwd=bypass; detail=authorization") {
		t.Fatalf("alice: %q, Cache-Status %q", body, h.Get("Cache-Status"))
	}
	for range 2 {
		if _, body, _ := get(t, px, "/private", nil); strings.Contains(body, "alice") {
			t.Fatalf("an anonymous client got alice's response: %q", body)
		}
	}
	if _, body, _ := get(t, px, "/private", map[string]string{"Authorization": "Bearer bob"}); body != `for "Bearer bob"` {
		t.Errorf("bob got %q", body)
	}
}

// TestCachePurge: POST /cache/purge needs the token, removes by tag, path
// and prefix, and says what was wrong with a bad request.
func TestCachePurge(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	for _, p := range []string{"/fresh/a", "/fresh/b", "/fresh/c", "/vary"} {
		get(t, px, p, nil)
	}
	if code, _ := purge(t, px, "", `{"tag": "tag-a"}`); code != 401 {
		t.Errorf("no token: %d", code)
	}
	if code, _ := purge(t, px, "wrong", `{"tag": "tag-a"}`); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"tag": "tag-a"}`, 200, `"purged": 1`},
		{`{"path": "/fresh/b", "route": "shop"}`, 200, `"purged": 1`},
		{`{"prefix": "/fresh"}`, 200, `"purged": 1`}, // /fresh/c is left
		{`{"tag": "nothing"}`, 200, `"purged": 0`},
		{`{"tag": "a", "path": "/x"}`, 400, "set exactly one of path, prefix and tag"},
		{`{"tag": "a b"}`, 400, "tag must be one tag"},
		{`{"tags": "a"}`, 400, `unknown field \"tags\"`},
		{`{"tag": "a"} {}`, 400, "more than one JSON value"},
		{`{"tag": "a", "route": "nope"}`, 404, `route \"nope\" does not cache; cached routes: shop`},
	} {
		code, body := purge(t, px, "t0ken", c.body)
		if code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("purge %s: %d %s, want %d with %q", c.body, code, body, c.status, c.want)
		}
	}
	for p, want := range map[string]string{"/fresh/a": "MISS", "/fresh/b": "MISS", "/fresh/c": "MISS", "/vary": "HIT"} {
		if _, _, h := get(t, px, p, nil); h.Get("X-Cache") != want {
			t.Errorf("%s after the purges: X-Cache %q, want %s", p, h.Get("X-Cache"), want)
		}
	}
	if got := metric(t, px, "lbsys_cache_purged_total"); got != 3 {
		t.Errorf("lbsys_cache_purged_total = %v, want 3", got)
	}
}

// TestCacheWriteOnAnotherRouteInvalidates: a POST on a route that caches
// nothing invalidates what its response links (Link rel=invalidates),
// before the client reads the answer.
func TestCacheWriteOnAnotherRouteInvalidates(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	get(t, px, "/fresh/a", nil)
	get(t, px, "/fresh/b", nil)
	if code, body, h := do(t, "POST", px.url+"/write", "x", nil); code != 200 || body != "written" || h.Get("Cache-Status") != "" {
		t.Fatalf("write: %d %q, Cache-Status %q", code, body, h.Get("Cache-Status"))
	}
	if _, body, h := get(t, px, "/fresh/a", nil); h.Get("X-Cache") != "MISS" || body != "fresh /fresh/a v2" {
		t.Errorf("/fresh/a after the write: X-Cache %q, body %q; want the new version", h.Get("X-Cache"), body)
	}
	if _, _, h := get(t, px, "/fresh/b", nil); h.Get("X-Cache") != "HIT" {
		t.Errorf("/fresh/b (not linked) after the write: X-Cache %q", h.Get("X-Cache"))
	}
	// GETs on the uncached route keep the plain path.
	if _, _, h := get(t, px, "/write/x", nil); h.Get("Cache-Status") != "" {
		t.Errorf("GET on an uncached route: Cache-Status %q", h.Get("Cache-Status"))
	}
}

// TestCacheReloadKeepsTheCache: a reload keeps stored responses and the
// route's counters, resizes the cache, and a route that stops caching
// takes the plain path.
func TestCacheReloadKeepsTheCache(t *testing.T) {
	o := newCacheOrigin(t)
	px := startCacheProxy(t, o, cacheProxyConfig)
	get(t, px, "/fresh/a", nil)
	get(t, px, "/fresh/a", nil)
	reload := func(yaml string) {
		t.Helper()
		data, _ := os.ReadFile(px.path)
		tok := regexpTokenFile(string(data))
		if err := os.WriteFile(px.path, []byte(strings.ReplaceAll(renderConfig(t, yaml, o.testBackend), "TOKEN", tok)), 0o600); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", px.admin+"/reload", nil)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload: %d %s", resp.StatusCode, b)
		}
	}
	reload("cache: {max_bytes: 32MiB}\n" + cacheProxyConfig)
	if _, _, h := get(t, px, "/fresh/a", nil); h.Get("X-Cache") != "HIT" {
		t.Errorf("after the reload: X-Cache %q, want HIT (the stored response kept)", h.Get("X-Cache"))
	}
	if got := metric(t, px, `lbsys_cache_hits_total{route="shop"}`); got != 2 {
		t.Errorf("hits after the reload = %v, want 2 (the route's counters kept)", got)
	}
	if got := metric(t, px, "lbsys_cache_max_bytes"); got != 32<<20 {
		t.Errorf("lbsys_cache_max_bytes = %v, want 32MiB", got)
	}
	reload(strings.Replace(cacheProxyConfig, "    cache: {enabled: true}\n", "", 1))
	if _, _, h := get(t, px, "/fresh/a", nil); h.Get("X-Cache") != "" {
		t.Errorf("route no longer caching: X-Cache %q", h.Get("X-Cache"))
	}
	reload(cacheProxyConfig)
	if _, _, h := get(t, px, "/fresh/a", nil); h.Get("X-Cache") != "HIT" {
		t.Errorf("route caching again: X-Cache %q, want HIT (still stored)", h.Get("X-Cache"))
	}
}

// regexpTokenFile finds the token file path in a rendered config.
func regexpTokenFile(cfg string) string {
	i := strings.Index(cfg, "token_file: ")
	rest := cfg[i+len("token_file: "):]
	return rest[:strings.IndexAny(rest, "}\n")]
}

// TestCacheWarmingFromADirective: the coordinator's directive warms the
// listed paths through the agent (off the request path, as the cache's
// own requests) and its TTL hints make responses without freshness
// storable; an unchanged section is not warmed again.
func TestCacheWarmingFromADirective(t *testing.T) {
	o := newCacheOrigin(t)
	coord := newStubCoordinator(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "agent-token")
	os.WriteFile(tok, []byte("agent-secret-token\n"), 0o600)
	yaml := cacheProxyConfig + "cache: {warm: {rate: 100, burst: 5}}\ncoordinator: {urls: [COORD], token_file: " + tok +
		", proxy_id: edge-1, state_file: " + filepath.Join(dir, "d.json") + ", wait: 1s}\n"
	px := startCacheProxy(t, o, strings.ReplaceAll(yaml, "COORD", coord.srv.URL))
	if err := px.StartAgent(nil); err != nil {
		t.Fatal(err)
	}
	// Before any hint, a response without freshness is not stored.
	get(t, px, "/hint/1", nil)
	if _, _, h := get(t, px, "/hint/1", nil); h.Get("X-Cache") != "MISS" {
		t.Fatalf("no hint yet: X-Cache %q", h.Get("X-Cache"))
	}
	sec := &directive.Cache{Warm: []string{"/fresh/w1", "/fresh/w2?x=1"}, TTLHints: []directive.TTLHint{{PathPrefix: "/hint", TTL: directive.Duration(time.Minute)}}}
	coord.set(&directive.Directive{Schema: 1, Version: 1, Services: map[string]*directive.Service{"app": {Cache: sec}}})
	eventually(t, 10*time.Second, "two warm fetches", func() bool { return o.warm.Load() == 2 })
	for _, p := range []string{"/fresh/w1", "/fresh/w2?x=1"} {
		if _, _, h := get(t, px, p, nil); h.Get("X-Cache") != "HIT" {
			t.Errorf("%s after warming: X-Cache %q, want HIT", p, h.Get("X-Cache"))
		}
	}
	if got := metric(t, px, `lbsys_cache_warm_fetches_total{result="stored",route="shop"}`); got != 2 {
		t.Errorf("warm stored = %v", got)
	}
	if got := metric(t, px, `lbsys_cache_warm_hits_total{route="shop"}`); got != 2 {
		t.Errorf("warm hits = %v", got)
	}
	get(t, px, "/hint/2", nil)
	if _, _, h := get(t, px, "/hint/2", nil); h.Get("X-Cache") != "HIT" {
		t.Errorf("with a TTL hint: X-Cache %q, want HIT", h.Get("X-Cache"))
	}
	// A new version with the same cache section warms nothing again (the
	// cache is emptied first, so a second warming would reach the origin).
	// POST /directive takes a cache section too; the warm queue is FIFO, so
	// once its path arrived, any re-warming of version 2 would have too.
	if _, err := px.cache.Load().Purge(cache.PurgeRequest{Prefix: "/"}); err != nil {
		t.Fatal(err)
	}
	coord.set(&directive.Directive{Schema: 1, Version: 2, Services: map[string]*directive.Service{"app": {Cache: sec, Scale: &directive.Scale{Replicas: 2}}}})
	eventually(t, 5*time.Second, "version 2", func() bool { c := status(t, px).Coordinator; return c != nil && c.Version == 2 })
	req, _ := http.NewRequest("POST", px.admin+"/directive", strings.NewReader(`{"service": "app", "cache": {"warm": ["/fresh/w3"]}}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /directive: %d %s", resp.StatusCode, b)
	}
	eventually(t, 10*time.Second, "the warm fetch of POST /directive", func() bool { return o.seen("/fresh/w3") == 1 })
	if n := o.warm.Load(); n != 3 {
		t.Errorf("%d warm fetches, want 3: an unchanged cache section was warmed again", n)
	}
	req, _ = http.NewRequest("POST", px.admin+"/directive", strings.NewReader(`{"service": "app", "cache": {"ttl_hints": [{"path_prefix": "/x", "ttl": "0s"}]}}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err = testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 422 || !strings.Contains(string(b), "cache.ttl_hints[0].ttl") {
		t.Errorf("bad hint: %d %s", resp.StatusCode, b)
	}
}

// TestCacheHintsReachRoutesThatStartCaching: TTL hints given while a
// service's route did not cache apply once a reload makes it cache.
func TestCacheHintsReachRoutesThatStartCaching(t *testing.T) {
	o := newCacheOrigin(t)
	off := strings.Replace(cacheProxyConfig, "    cache: {enabled: true}\n", "", 1)
	// A cache exists (another service caches), app's route does not.
	off = strings.Replace(off, "  - name: writer\n    endpoints: [{address: \"{{.B0}}\"}]\n",
		"  - name: writer\n    endpoints: [{address: \"{{.B0}}\"}]\n    cache: {enabled: true}\n", 1)
	px := startCacheProxy(t, o, off)
	admin := func(path, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", px.admin+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
	}
	admin("/directive", `{"service": "app", "cache": {"ttl_hints": [{"path_prefix": "/hint", "ttl": "1m"}]}}`)
	data, _ := os.ReadFile(px.path)
	tok := regexpTokenFile(string(data))
	os.WriteFile(px.path, []byte(strings.ReplaceAll(renderConfig(t, cacheProxyConfig, o.testBackend), "TOKEN", tok)), 0o600)
	admin("/reload", "")
	get(t, px, "/hint/a", nil)
	if _, _, h := get(t, px, "/hint/a", nil); h.Get("X-Cache") != "HIT" {
		t.Errorf("after the route started caching: X-Cache %q, want HIT (the service's TTL hint applied)", h.Get("X-Cache"))
	}
}

// TestWarmPathsGoToTheirRoute: a service with two cached routes (product
// pages first, everything else after) warms each path once, on the route a
// client's GET of it takes — not every path on every route (entries are
// keyed per route, so the other route's fetches were wasted and delayed the
// useful ones).
func TestWarmPathsGoToTheirRoute(t *testing.T) {
	o := newCacheOrigin(t)
	yaml := strings.Replace(cacheProxyConfig, "      - {name: writes,", "      - {name: products, match: {path_prefix: /fresh/p}, service: app}\n      - {name: writes,", 1) +
		"cache: {warm: {rate: 100, burst: 10}}\n"
	px := startCacheProxy(t, o, yaml)
	req, _ := http.NewRequest("POST", px.admin+"/directive", strings.NewReader(`{"service": "app", "cache": {"warm": ["/fresh/w1", "/fresh/p/1", "/fresh/p/2?c=red"]}}`))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /directive: %d %s", resp.StatusCode, b)
	}
	eventually(t, 10*time.Second, "three warm fetches stored", func() bool {
		return metric(t, px, `lbsys_cache_warm_fetches_total{result="stored",route="products"}`)+
			metric(t, px, `lbsys_cache_warm_fetches_total{result="stored",route="shop"}`) == 3
	})
	if got := metric(t, px, `lbsys_cache_warm_fetches_total{result="stored",route="products"}`); got != 2 {
		t.Errorf("products route stored %v warm fetches, want 2", got)
	}
	if got := metric(t, px, `lbsys_cache_warm_fetches_total{result="stored",route="shop"}`); got != 1 {
		t.Errorf("shop route stored %v warm fetches, want 1", got)
	}
	if n := o.warm.Load(); n != 3 {
		t.Errorf("%d warm fetches reached the origin, want 3 (one per path)", n)
	}
	for _, p := range []string{"/fresh/w1", "/fresh/p/1", "/fresh/p/2?c=red"} {
		if _, _, h := get(t, px, p, nil); h.Get("X-Cache") != "HIT" {
			t.Errorf("%s after warming: X-Cache %q, want HIT", p, h.Get("X-Cache"))
		}
	}
}
