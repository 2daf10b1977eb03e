package cache

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

func TestTokenBucket(t *testing.T) {
	b := tokenBucket{rate: 2, burst: 3, tokens: 3, last: t0}
	for i := range 3 {
		if w := b.take(t0); w != 0 {
			t.Fatalf("burst token %d: wait %v", i, w)
		}
	}
	if w := b.take(t0); w != 500*time.Millisecond {
		t.Fatalf("empty bucket: wait %v, want 500ms", w)
	}
	if w := b.take(t0.Add(500 * time.Millisecond)); w != 0 {
		t.Fatalf("after 500ms: wait %v", w)
	}
	// A long idle period refills only up to the burst.
	now := t0.Add(time.Hour)
	for range 3 {
		b.take(now)
	}
	if w := b.take(now); w == 0 {
		t.Fatal("bucket held more than its burst")
	}
}

// TestWarmIsPacedAndCounted: warm paths are fetched by the warming
// goroutine at warm.rate, stored, and later client hits on them are
// counted as warm hits; paths already fresh are skipped.
func TestWarmIsPacedAndCounted(t *testing.T) {
	e := newEnv(t, Config{Warm: WarmConfig{Rate: 2, Burst: 1, Headers: map[string]string{"Accept-Encoding": "gzip"}}}, RouteConfig{})
	o := newOrigin(func(r *http.Request, n int) reply {
		return reply{header: hdr("Cache-Control", "max-age=600", "Vary", "Accept-Encoding")}
	})
	paths := []string{"/p/1", "/p/2", "/p/3?color=red"}
	if n := e.c.Warm(e.rt, "shop.example", paths, o); n != 3 {
		t.Fatalf("queued %d", n)
	}
	eventually(t, "the first warm fetch (burst)", func() bool { return o.requests() == 1 })
	if got := o.last().Header.Get("Accept-Encoding"); got != "gzip" {
		t.Errorf("warm request Accept-Encoding %q", got)
	}
	if got := o.last().Header.Get("User-Agent"); got != "lbsys-cache-warm" {
		t.Errorf("warm request User-Agent %q", got)
	}
	// The next token comes 500ms later on the cache's clock.
	for i := 2; i <= 3; i++ {
		eventually(t, "the warmer waiting for a token", func() bool { return o.requests() == i-1 })
		e.clock.Advance(499 * time.Millisecond)
		if o.requests() != i-1 {
			t.Fatalf("warm fetch %d before its token", i)
		}
		e.clock.Advance(time.Millisecond)
		eventually(t, "warm fetch "+itoa(i), func() bool { return o.requests() == i })
	}
	eventually(t, "three stored", func() bool { return e.c.Metrics().Route("shop").Warm["stored"] == 3 })
	for _, p := range paths {
		if w := e.get(o, p, hdr("Accept-Encoding", "gzip")); w.Header().Get("X-Cache") != "HIT" {
			t.Errorf("%s after warming: %s", p, w.Header().Get("Cache-Status"))
		}
	}
	s := e.c.Metrics().Route("shop")
	if s.WarmHits != 3 || s.Hits != 3 || s.Misses != 0 {
		t.Errorf("warm hits %d, hits %d, misses %d", s.WarmHits, s.Hits, s.Misses)
	}
	// Warming again: everything is fresh, nothing is fetched.
	e.clock.Advance(10 * time.Second)
	e.c.Warm(e.rt, "shop.example", paths, o)
	eventually(t, "three skipped as fresh", func() bool { return e.c.Metrics().Route("shop").Warm["fresh"] == 3 })
	if o.requests() != 3 {
		t.Errorf("fresh paths fetched again: %d requests", o.requests())
	}
}

func TestWarmQueueIsBounded(t *testing.T) {
	e := newEnv(t, Config{Warm: WarmConfig{Queue: 2, Rate: 1000, Burst: 100}}, RouteConfig{})
	o := fixed(200, cc("max-age=60"), "x")
	o.gate = make(chan struct{})
	e.c.Warm(e.rt, "shop.example", []string{"/a"}, o)
	eventually(t, "the warmer busy with /a", func() bool { return o.requests() == 1 })
	n := e.c.Warm(e.rt, "shop.example", []string{"/b", "/c", "/d", "/e", "not-a-path"}, o)
	if n != 2 {
		t.Errorf("queued %d, want 2", n)
	}
	if d := e.c.Metrics().Route("shop").Warm["dropped"]; d != 2 {
		t.Errorf("dropped %d, want 2", d)
	}
	close(o.gate)
	eventually(t, "the queue drained", func() bool { return e.c.Metrics().Route("shop").Warm["stored"] == 3 })
}

// TestTTLHints: a hint gives freshness only where RFC 9111 §4.2.2 allows a
// heuristic lifetime, and never overrides what the origin said.
func TestTTLHints(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		status int
		header http.Header
		req    http.Header
		route  RouteConfig
		cached bool // a second request 4 minutes later is a hit
	}{
		{"no freshness info: the hint applies", "/products/1", 200, hdr(), nil, RouteConfig{}, true},
		{"query string under the prefix", "/products/1?x=y", 200, hdr(), nil, RouteConfig{}, true},
		{"the prefix itself", "/products", 200, hdr(), nil, RouteConfig{}, true},
		{"outside the prefix", "/productsale", 200, hdr(), nil, RouteConfig{}, false},
		{"longest prefix wins", "/products/flash/1", 200, hdr(), nil, RouteConfig{}, false},
		{"max-age from the origin wins", "/products/1", 200, cc("max-age=10"), nil, RouteConfig{}, false},
		{"s-maxage from the origin wins", "/products/1", 200, cc("s-maxage=0, max-age=600"), nil, RouteConfig{}, false},
		{"Expires from the origin wins", "/products/1", 200, hdr("Expires", "0"), nil, RouteConfig{}, false},
		{"no-cache is never extended", "/products/1", 200, hdr("Cache-Control", "no-cache", "Etag", `"x"`), nil, RouteConfig{}, false},
		{"private is never stored", "/products/1", 200, cc("private"), nil, RouteConfig{}, false},
		{"no-store is never stored", "/products/1", 200, cc("no-store"), nil, RouteConfig{}, false},
		{"Set-Cookie is never extended", "/products/1", 200, hdr("Set-Cookie", "a=b"), nil, RouteConfig{AllowSetCookie: true}, false},
		{"Authorization is never extended", "/products/1", 200, cc("public"), hdr("Authorization", "x"), RouteConfig{AllowAuthorization: true}, false},
		{"a 503 is never made fresh", "/products/1", 503, hdr(), nil, RouteConfig{}, false},
		{"a 404 may be", "/products/1", 404, hdr(), nil, RouteConfig{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, tc.route)
			e.c.SetTTLHints(e.rt, []directive.TTLHint{
				{PathPrefix: "/products", TTL: directive.Duration(5 * time.Minute)},
				{PathPrefix: "/products/flash", TTL: directive.Duration(time.Minute)},
			})
			o := fixed(tc.status, tc.header, "page")
			e.get(o, tc.path, tc.req)
			e.clock.Advance(4 * time.Minute)
			e.get(o, tc.path, tc.req)
			if cached := o.requests() == 1; cached != tc.cached {
				t.Errorf("served from the cache: %v, want %v", cached, tc.cached)
			}
		})
	}
}

func TestApplyDirective(t *testing.T) {
	e := newEnv(t, Config{Warm: WarmConfig{Rate: 1000, Burst: 10}}, RouteConfig{})
	o := fixed(200, hdr(), "catalog page") // no freshness: only the hint makes it fresh
	n := e.c.ApplyDirective(e.rt, "shop.example", &directive.Cache{
		Warm:     []string{"/catalog/1", "/catalog/2"},
		TTLHints: []directive.TTLHint{{PathPrefix: "/catalog", TTL: directive.Duration(10 * time.Minute)}},
	}, o)
	if n != 2 {
		t.Fatalf("queued %d", n)
	}
	eventually(t, "both warmed", func() bool { return e.c.Metrics().Route("shop").Warm["stored"] == 2 })
	e.clock.Advance(9 * time.Minute)
	if w := e.get(o, "/catalog/2", nil); w.Header().Get("X-Cache") != "HIT" {
		t.Errorf("warmed page with a 10m hint, 9m later: %s", w.Header().Get("Cache-Status"))
	}
	// Clearing the directive clears the hints for what is stored next.
	e.c.ApplyDirective(e.rt, "shop.example", nil, o)
	e.get(o, "/catalog/3", nil)
	e.get(o, "/catalog/3", nil)
	if o.requests() != 4 {
		t.Errorf("origin saw %d requests, want 4 (no hint: nothing stored)", o.requests())
	}
}

func TestDisabledRoutePassesEverything(t *testing.T) {
	clkEnv := newEnv(t, Config{}, RouteConfig{})
	rt, err := clkEnv.c.Route("off", RouteConfig{})
	if err != nil {
		t.Fatal(err)
	}
	o := fixed(200, cc("max-age=600"), "x")
	for range 2 {
		clkEnv.c.Serve(newRecorder(), req("GET", "/x", nil), rt, o)
	}
	if o.requests() != 2 || clkEnv.c.Warm(rt, "h", []string{"/x"}, o) != 0 {
		t.Errorf("a disabled route cached or warmed")
	}
	clkEnv.c.Serve(newRecorder(), req("GET", "/x", nil), nil, o)
	if o.requests() != 3 {
		t.Error("a nil route did not pass the request")
	}
}

// panicOrigin panics on its first exchange: a bug in an origin (or in the
// cache) during warming must not stop the warmer or the process.
type panicOrigin struct{ *fakeOrigin }

func (o panicOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	if o.count.Add(1) == 1 {
		panic("origin bug")
	}
	return o.fakeOrigin.RoundTrip(r)
}

func TestWarmerSurvivesAPanic(t *testing.T) {
	e := newEnv(t, Config{Warm: WarmConfig{Rate: 1000, Burst: 10}}, RouteConfig{})
	o := panicOrigin{fixed(200, cc("max-age=60"), "x")}
	e.c.Warm(e.rt, "shop.example", []string{"/boom", "/fine"}, o)
	eventually(t, "the second path warmed", func() bool { return e.c.Metrics().Route("shop").Warm["stored"] == 1 })
}

// TestWarmedPagesWinAdmission: a full cache whose entries clients have
// asked for several times each still keeps the pages a directive warms
// (the controller says the crowd is about to ask for them): W-TinyLFU's
// admission compares a candidate's sketch frequency with the victim's, and
// a warmed page, asked for by nobody yet, must not lose that comparison
// before its first real request.
func TestWarmedPagesWinAdmission(t *testing.T) {
	e := newEnv(t, Config{MaxBytes: 1 << 20, MaxObjectBytes: 64 << 10, Warm: WarmConfig{Rate: 1000, Burst: 1000}}, RouteConfig{})
	o := fixed(200, cc("max-age=3600"), strings.Repeat("p", 8<<10))
	// 150 pages of ~9 KiB, each asked for six times: the cache (about
	// 110 of them) is full of pages with high frequencies.
	for range 6 {
		for i := range 150 {
			e.get(o, "/hot/"+itoa(i), nil)
		}
		e.c.store.CleanUp()
	}
	var warm []string
	for i := range 40 {
		warm = append(warm, "/sale/"+itoa(i))
	}
	if n := e.c.Warm(e.rt, "shop.example", warm, o); n != len(warm) {
		t.Fatalf("queued %d of %d", n, len(warm))
	}
	eventually(t, "every warm fetch stored", func() bool { return e.c.Metrics().Route("shop").Warm["stored"] == uint64(len(warm)) })
	e.c.store.CleanUp()
	kept := 0
	for k := range e.c.store.Keys() {
		if strings.HasPrefix(k.Target, "/sale/") {
			kept++
		}
	}
	if kept < len(warm)*9/10 {
		t.Errorf("the cache kept %d of %d warmed pages: admission turned them away", kept, len(warm))
	}
}
