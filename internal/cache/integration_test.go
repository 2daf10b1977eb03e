package cache

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
)

// The tests in this file cover what phase 2 (the proxy's integration)
// needs of the cache: the outcome a caller accounts for, reloads, the
// invalidation of writes through routes that cache nothing, the moment
// invalidation happens, Link rel="invalidates" and trailers on misses.

// TestServeOutcome checks that ServeOutcome reports every answer the store
// gave (the proxy counts those itself: its forwarding never sees them)
// and none the origin gave.
func TestServeOutcome(t *testing.T) {
	fresh := cc("max-age=60")
	tests := []struct {
		name string
		// prime runs first (its outcome is not checked).
		prime  func(e *env, o *fakeOrigin)
		method string
		req    http.Header
		origin reply
		want   Outcome
	}{
		{name: "miss", origin: reply{header: fresh, body: "abc"}, want: Outcome{}},
		{name: "fresh hit", prime: getOnce, origin: reply{header: fresh, body: "abc"},
			want: Outcome{FromStore: true, Status: 200, Bytes: 3}},
		{name: "hit of HEAD", prime: getOnce, method: http.MethodHead, origin: reply{header: fresh, body: "abc"},
			want: Outcome{FromStore: true, Status: 200, Bytes: 0}},
		{name: "304 from the store", prime: getOnce, req: hdr("If-None-Match", `"v1"`),
			origin: reply{header: hdr("Cache-Control", "max-age=60", "ETag", `"v1"`), body: "abc"},
			want:   Outcome{FromStore: true, Status: 304}},
		{name: "single range from the store", prime: getOnce, req: hdr("Range", "bytes=1-"),
			origin: reply{header: fresh, body: "abc"}, want: Outcome{FromStore: true, Status: 206, Bytes: 2}},
		{name: "stale with max-stale", prime: getThenAge(2 * time.Minute), req: hdr("Cache-Control", "max-stale"),
			origin: reply{header: fresh, body: "abc"}, want: Outcome{FromStore: true, Status: 200, Bytes: 3}},
		{name: "stale-if-error after a failed connection", prime: getThenAge(2 * time.Minute),
			origin: reply{header: cc("max-age=60, stale-if-error=600"), body: "abc"},
			want:   Outcome{FromStore: true, Status: 200, Bytes: 3}},
		{name: "stale-if-error after a 503 is the origin's answer", prime: getThenAge(2 * time.Minute),
			origin: reply{header: cc("max-age=60, stale-if-error=600"), body: "abc"}, want: Outcome{}},
		{name: "only-if-cached with nothing stored", req: hdr("Cache-Control", "only-if-cached"),
			want: Outcome{FromStore: true, Status: 504, Bytes: int64(len("only-if-cached: no stored response can answer this request\n"))}},
		{name: "revalidated with a 304", prime: getThenAge(2 * time.Minute),
			origin: reply{header: hdr("Cache-Control", "max-age=60", "ETag", `"v1"`), body: "abc"}, want: Outcome{}},
		{name: "unsafe method", method: http.MethodPost, origin: reply{status: 200}, want: Outcome{}},
		{name: "bypass for Authorization", req: hdr("Authorization", "Bearer x"), origin: reply{header: fresh}, want: Outcome{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, RouteConfig{})
			var mu sync.Mutex
			current := tc.origin
			o := newOrigin(func(*http.Request, int) reply {
				mu.Lock()
				defer mu.Unlock()
				return current
			})
			if tc.prime != nil {
				tc.prime(e, o)
				mu.Lock()
				current = tc.origin
				if after, ok := failAfterPrime[tc.name]; ok {
					current = after
				}
				mu.Unlock()
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			got, err := e.c.ServeOutcome(httptest.NewRecorder(), req(method, "/r", tc.req), e.rt, o)
			if err != nil && tc.want.FromStore {
				t.Fatalf("error %v", err)
			}
			if got != tc.want {
				t.Errorf("outcome %+v, want %+v", got, tc.want)
			}
		})
	}
}

// failAfterPrime is what the origin answers after the prime step, for the
// cases where it fails.
var failAfterPrime = map[string]reply{
	"stale-if-error after a failed connection":          {err: errors.New("connection refused")},
	"stale-if-error after a 503 is the origin's answer": {status: 503, body: "down"},
	"revalidated with a 304":                            {status: 304, header: hdr("ETag", `"v1"`)},
}

func getOnce(e *env, o *fakeOrigin) { e.get(o, "/r", nil) }

func getThenAge(d time.Duration) func(*env, *fakeOrigin) {
	return func(e *env, o *fakeOrigin) { e.get(o, "/r", nil); e.clock.Advance(d) }
}

// TestCollapsedRequestIsFromStore: a request served from another request's
// fetch is the store's answer (the fetch is counted once, by its leader).
func TestCollapsedRequestIsFromStore(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := fixed(200, cc("max-age=60"), "abc")
	o.gate = make(chan struct{})
	outs := make(chan Outcome, 2)
	for range 2 {
		go func() {
			out, _ := e.c.ServeOutcome(httptest.NewRecorder(), req("GET", "/r", nil), e.rt, o)
			outs <- out
		}()
	}
	eventually(t, "the leader's fetch and a waiter", func() bool {
		return o.requests() == 1 && e.c.flights.inFlight(e.c.key(e.rt, req("GET", "/r", nil))) && waiters(e) == 1
	})
	close(o.gate)
	a, b := <-outs, <-outs
	if a.FromStore == b.FromStore {
		t.Fatalf("outcomes %+v and %+v: want one fetched (leader) and one collapsed (from the store)", a, b)
	}
	if o.requests() != 1 {
		t.Errorf("origin saw %d requests, want 1", o.requests())
	}
}

func waiters(e *env) int32 {
	e.c.flights.mu.Lock()
	defer e.c.flights.mu.Unlock()
	for _, f := range e.c.flights.m {
		return f.waiters.Load()
	}
	return 0
}

// TestSetConfigKeepsTheStore checks a reload: stored responses stay,
// changed settings apply to the next request, an invalid configuration
// changes nothing, and a smaller budget evicts.
func TestSetConfigKeepsTheStore(t *testing.T) {
	e := newEnv(t, Config{MaxBytes: 8 << 20}, RouteConfig{})
	o := newOrigin(func(r *http.Request, n int) reply {
		return reply{header: cc("max-age=600"), body: strings.Repeat("x", 64<<10)}
	})
	for i := range 40 {
		e.get(o, "/p/"+itoa(i), nil)
	}
	if err := e.c.SetConfig(Config{MaxBytes: 8 << 20, MaxVariants: 99}); err == nil {
		t.Fatal("max_variants 99 accepted")
	}
	if got := e.c.Config().MaxVariants; got != DefaultMaxVariants {
		t.Errorf("a refused configuration changed max_variants to %d", got)
	}
	if err := e.c.SetConfig(Config{MaxBytes: 8 << 20, IgnoreRequestCacheControl: true, Warm: WarmConfig{Rate: 5, Burst: 2, Queue: 3}}); err != nil {
		t.Fatal(err)
	}
	before := o.requests()
	w := e.get(o, "/p/1", hdr("Cache-Control", "no-cache"))
	if o.requests() != before || w.Header().Get("X-Cache") != "HIT" {
		t.Errorf("after the reload: X-Cache %q, origin contacted %v; want a hit (stored response kept, no-cache ignored)",
			w.Header().Get("X-Cache"), o.requests() != before)
	}
	e.c.warm.mu.Lock()
	rate, burst, max := e.c.warm.bucket.rate, e.c.warm.bucket.burst, e.c.warm.max
	e.c.warm.mu.Unlock()
	if rate != 5 || burst != 2 || max != 3 {
		t.Errorf("warmer rate %v burst %v queue %d, want 5, 2, 3", rate, burst, max)
	}
	full, _ := e.c.Size()
	if err := e.c.SetConfig(Config{MaxBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	e.get(o, "/p/new", nil) // writes run otter's maintenance
	e.c.store.CleanUp()
	if b, _ := e.c.Size(); b > 1<<20 || b >= full {
		t.Errorf("after shrinking to 1MiB the store holds %d bytes (was %d)", b, full)
	}
}

func TestNewRefusesInvalidConfig(t *testing.T) {
	if _, err := New(Config{MaxBytes: 10}, nil, nil); err == nil {
		t.Error("New accepted an invalid config")
	}
}

// TestWriteThroughUncachedRouteInvalidates: a route that caches nothing
// (nil or disabled) still invalidates on every route what a successful
// write names, and adds no Cache-Status to it.
func TestWriteThroughUncachedRouteInvalidates(t *testing.T) {
	for _, name := range []string{"nil route", "disabled route"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, Config{}, RouteConfig{})
			var off *Route
			if name == "disabled route" {
				var err error
				if off, err = e.c.Route("inventory", RouteConfig{}); err != nil {
					t.Fatal(err)
				}
			}
			page := fixed(200, cc("max-age=600"), "stock 5")
			e.get(page, "/catalog/products/p1", nil)
			e.get(page, "/catalog/products/p2", nil)
			write := fixed(200, hdr("Link", `</catalog/products/p1>; rel="invalidates"`), "ok")
			w := httptest.NewRecorder()
			e.c.Serve(w, req("POST", "/inventory/reserve", nil), off, write)
			if w.Header().Get("Cache-Status") != "" {
				t.Errorf("Cache-Status %q on a route that does not cache", w.Header().Get("Cache-Status"))
			}
			if got := e.get(page, "/catalog/products/p1", nil).Header().Get("X-Cache"); got != "MISS" {
				t.Errorf("p1 after the write: X-Cache %q, want MISS (invalidated)", got)
			}
			if got := e.get(page, "/catalog/products/p2", nil).Header().Get("X-Cache"); got != "HIT" {
				t.Errorf("p2 after the write: X-Cache %q, want HIT (not named)", got)
			}
			if got := e.c.Metrics().Route("shop").Invalidations; got != 1 {
				t.Errorf("invalidations of route shop = %d, want 1 (counted where the entry was stored)", got)
			}
			// Safe requests on such a route are passed as they are.
			get := fixed(200, nil, "x")
			w = httptest.NewRecorder()
			e.c.Serve(w, req("OPTIONS", "/inventory", nil), off, get)
			if get.requests() != 1 || w.Header().Get("Cache-Status") != "" {
				t.Errorf("OPTIONS: origin requests %d, Cache-Status %q", get.requests(), w.Header().Get("Cache-Status"))
			}
		})
	}
}

// headerThenBlock writes its response header, then waits for release
// before the body: what the client could see first.
type headerThenBlock struct {
	header  http.Header
	wrote   chan struct{}
	release chan struct{}
}

func (o *headerThenBlock) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("not used")
}

func (o *headerThenBlock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range o.header {
		w.Header()[k] = v
	}
	w.WriteHeader(http.StatusOK)
	close(o.wrote)
	<-o.release
	io.WriteString(w, "done")
}

// TestInvalidationBeforeTheClientSeesTheAnswer: the invalidation happens
// when the write's header is written, so a client that reads the answer
// and asks again at once finds the new state (not a race with the end of
// the body).
func TestInvalidationBeforeTheClientSeesTheAnswer(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	page := fixed(200, cc("max-age=600"), "old")
	e.get(page, "/catalog/products/p1", nil)
	o := &headerThenBlock{header: hdr("Content-Location", "/catalog/products/p1"), wrote: make(chan struct{}), release: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.c.Serve(httptest.NewRecorder(), req("POST", "/inventory/stock/p1", nil), e.rt, o)
	}()
	<-o.wrote
	if _, ok := e.c.store.GetIfPresent(e.c.key(e.rt, req("GET", "/catalog/products/p1", nil))); ok {
		t.Error("the product page is still stored after the write's header was written")
	}
	close(o.release)
	<-done
}

// TestLinkInvalidatesScenarios covers Link rel="invalidates" through Serve
// (draft-nottingham-linked-cache-inv §3, on top of §4.4).
func TestLinkInvalidatesScenarios(t *testing.T) {
	fresh := cc("max-age=100000")
	runScenarios(t, []scenario{
		{name: "every linked same-origin URI is invalidated", steps: []step{
			{target: "/p/1", reply: reply{header: fresh}, want: fromOrigin},
			{target: "/p/2", reply: reply{header: fresh}, want: fromOrigin},
			{target: "/p/3?x=1", reply: reply{header: fresh}, want: fromOrigin},
			{target: "/p/4", reply: reply{header: fresh}, want: fromOrigin},
			{method: "POST", target: "/w", reply: reply{status: 200, header: hdr(
				"Link", `</p/1>; rel="invalidates", </p/2>; rel="invalidates other"`,
				"Link", `<p/3?x=1>; rel=invalidates`)}, want: fromOrigin},
			{target: "/p/1", want: fromOrigin},
			{target: "/p/2", want: fromOrigin},
			{target: "/p/3?x=1", want: fromOrigin},
			{target: "/p/4", want: fromCache},
		}},
		{name: "other relations and other origins are not invalidated", steps: []step{
			{target: "/p/1", reply: reply{header: fresh}, want: fromOrigin},
			{target: "/p/2", reply: reply{header: fresh}, want: fromOrigin},
			{method: "POST", target: "/w", reply: reply{status: 200, header: hdr(
				"Link", `</p/1>; rel="next", <http://other.example/p/2>; rel="invalidates"`)}, want: fromOrigin},
			{target: "/p/1", want: fromCache},
			{target: "/p/2", want: fromCache},
		}},
		{name: "a failed write invalidates nothing", steps: []step{
			{target: "/p/1", reply: reply{header: fresh}, want: fromOrigin},
			{method: "POST", target: "/w", reply: reply{status: 409, header: hdr("Link", `</p/1>; rel="invalidates"`)}, want: fromOrigin},
			{target: "/p/1", want: fromCache},
		}},
	})
}

// TestMissForwardsTrailers: a response with trailers (never stored) keeps
// them on its way through the cache.
func TestMissForwardsTrailers(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := trailerOrigin{}
	w := httptest.NewRecorder()
	if err := e.c.Serve(w, req("GET", "/t", nil), e.rt, o); err != nil {
		t.Fatal(err)
	}
	res := w.Result()
	io.ReadAll(res.Body)
	if got := res.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("trailer X-Checksum = %q, want abc (trailers %v, header %v)", got, res.Trailer, res.Header)
	}
	if got := e.c.Metrics().Route("shop").NotStored[rfc9111.ReasonTrailer]; got != 1 {
		t.Errorf("not stored for trailer = %d, want 1", got)
	}
}

type trailerOrigin struct{}

func (trailerOrigin) ServeHTTP(http.ResponseWriter, *http.Request) {}

func (trailerOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	body := &trailerBody{r: strings.NewReader("payload")}
	resp := &http.Response{StatusCode: 200, Header: cc("max-age=60"), Body: body, ContentLength: -1,
		Trailer: http.Header{"X-Checksum": nil}, Request: r}
	body.resp = resp
	return resp, nil
}

// trailerBody fills the trailer at EOF, as net/http's client does.
type trailerBody struct {
	r    io.Reader
	resp *http.Response
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.resp.Trailer.Set("X-Checksum", "abc")
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }

// blockingOrigin holds every exchange until its request's context ends.
type blockingOrigin struct{ arrived chan struct{} }

func (o blockingOrigin) ServeHTTP(http.ResponseWriter, *http.Request) {}

func (o blockingOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	o.arrived <- struct{}{}
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// TestCloseCancelsOwnFetches: a warm fetch stuck on a slow origin does not
// hold Close for fetch_timeout (the proxy closes its cache on shutdown).
func TestCloseCancelsOwnFetches(t *testing.T) {
	c, err := New(Config{FetchTimeout: 10 * time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := c.Route("r", RouteConfig{Enabled: true})
	o := blockingOrigin{arrived: make(chan struct{}, 1)}
	c.Warm(rt, "shop.example", []string{"/slow"}, o)
	<-o.arrived
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for the warm fetch (fetch_timeout 10m)")
	}
}
