package cache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// flightOf returns the key's flight in progress, or nil.
func (e *env) flightOf(target string) *flight {
	k := e.c.key(e.rt, req("GET", target, nil))
	e.c.flights.mu.Lock()
	defer e.c.flights.mu.Unlock()
	return e.c.flights.m[k]
}

func (e *env) waiters(target string) int {
	if f := e.flightOf(target); f != nil {
		return int(f.waiters.Load())
	}
	return 0
}

// parallel serves n GETs of target concurrently and returns their
// recorders once all have finished.
func (e *env) parallel(n int, o Origin, target string, ctx context.Context) []*httptest.ResponseRecorder {
	out := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := httptest.NewRecorder()
			r := req("GET", target, nil)
			if ctx != nil {
				r = r.WithContext(ctx)
			}
			if err := e.c.Serve(w, r, e.rt, o); err != nil {
				w.Code = http.StatusBadGateway
			}
			out[i] = w
		}()
	}
	wg.Wait()
	return out
}

func TestCoalescingOneFetchPerKey(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := fixed(200, cc("max-age=60"), "shared")
	o.gate = make(chan struct{})
	done := make(chan []*httptest.ResponseRecorder)
	go func() { done <- e.parallel(50, o, "/hot", nil) }()
	eventually(t, "49 waiters behind one fetch", func() bool { return o.requests() == 1 && e.waiters("/hot") == 49 })
	close(o.gate)
	res := <-done
	if o.requests() != 1 {
		t.Fatalf("origin saw %d requests, want 1", o.requests())
	}
	collapsed := 0
	for _, w := range res {
		if w.Code != 200 || w.Body.String() != "shared" {
			t.Fatalf("got %d %q", w.Code, w.Body.String())
		}
		if w.Header().Get("Cache-Status") == "lbsys; fwd=uri-miss; collapsed" {
			collapsed++
		}
	}
	if collapsed != 49 {
		t.Errorf("%d responses marked collapsed, want 49", collapsed)
	}
	if s := e.c.Metrics().Route("shop"); s.Coalesced["served"] != 49 || s.Misses != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestCoalescingWaitersAreBounded(t *testing.T) {
	e := newEnv(t, Config{Coalesce: CoalesceConfig{MaxWaiters: 2}}, RouteConfig{})
	o := fixed(200, cc("max-age=60"), "x")
	o.gate = make(chan struct{})
	done := make(chan []*httptest.ResponseRecorder)
	go func() { done <- e.parallel(5, o, "/hot", nil) }()
	// One leader, two waiters, two beyond the bound fetching on their own.
	eventually(t, "leader, 2 waiters and 2 own fetches", func() bool { return o.requests() == 3 && e.waiters("/hot") == 2 })
	close(o.gate)
	<-done
	if s := e.c.Metrics().Route("shop"); s.Coalesced["overflow"] != 2 || s.Coalesced["served"] != 2 {
		t.Errorf("stats %+v", s.Coalesced)
	}
}

func TestCoalescingTimeoutFallsBackToOwnFetch(t *testing.T) {
	e := newEnv(t, Config{Coalesce: CoalesceConfig{WaitTimeout: 5 * time.Second}}, RouteConfig{})
	o := fixed(200, cc("max-age=60"), "x")
	o.gate = make(chan struct{})
	done := make(chan []*httptest.ResponseRecorder)
	go func() { done <- e.parallel(2, o, "/slow", nil) }()
	eventually(t, "a waiter", func() bool { return e.waiters("/slow") == 1 })
	e.clock.Advance(4 * time.Second)
	if o.requests() != 1 {
		t.Fatalf("waiter gave up before its timeout")
	}
	e.clock.Advance(time.Second)
	eventually(t, "the waiter's own fetch", func() bool { return o.requests() == 2 })
	close(o.gate)
	for _, w := range <-done {
		if w.Code != 200 {
			t.Errorf("status %d", w.Code)
		}
	}
	if s := e.c.Metrics().Route("shop"); s.Coalesced["timeout"] != 1 {
		t.Errorf("stats %+v", s.Coalesced)
	}
}

// blockingBody is a response body that delivers its content only when
// released.
type blockingBody struct {
	release chan struct{}
	data    string
	off     int
}

func (b *blockingBody) Read(p []byte) (int, error) {
	<-b.release
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

// slowBodyOrigin answers with headers at once and a body held back.
type slowBodyOrigin struct {
	*fakeOrigin
	bodies chan *blockingBody
}

func (o *slowBodyOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	rep := o.answer(r)
	b := &blockingBody{release: make(chan struct{}), data: rep.body}
	o.bodies <- b
	return &http.Response{StatusCode: 200, Header: rep.header.Clone(), Body: io.NopCloser(b), ContentLength: -1}, nil
}

func TestUnstorableResponseReleasesWaitersAndPasses(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := &slowBodyOrigin{fakeOrigin: fixed(200, cc("private, max-age=60"), "mine"), bodies: make(chan *blockingBody, 10)}
	o.gate = make(chan struct{})
	done := make(chan []*httptest.ResponseRecorder)
	go func() { done <- e.parallel(2, o, "/me", nil) }()
	eventually(t, "a waiter", func() bool { return e.waiters("/me") == 1 })
	close(o.gate)
	first := <-o.bodies // the leader has its headers, its body is held
	// The waiter must not wait for a body it cannot use: it fetches itself.
	second := <-o.bodies
	close(first.release)
	close(second.release)
	<-done
	if o.requests() != 2 {
		t.Fatalf("origin saw %d requests, want 2", o.requests())
	}
	if s := e.c.Metrics().Route("shop"); s.Coalesced["unusable"] != 1 {
		t.Errorf("stats %+v", s.Coalesced)
	}
	// Hit-for-pass: for pass_ttl, requests for the URL go to the origin in
	// parallel instead of queuing behind one another: all three reach the
	// origin while it holds every response.
	o.gate = make(chan struct{})
	go func() { done <- e.parallel(3, o, "/me", nil) }()
	eventually(t, "three parallel fetches", func() bool { return o.requests() == 5 })
	close(o.gate)
	for range 3 {
		close((<-o.bodies).release)
	}
	<-done
}

func TestLeaderLeavingDoesNotFailWaiters(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := fixed(200, cc("max-age=60"), "kept")
	o.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan *httptest.ResponseRecorder)
	go func() { leaderDone <- e.parallel(1, o, "/x", ctx)[0] }()
	eventually(t, "the leader's fetch", func() bool { return o.requests() == 1 })
	waiterDone := make(chan []*httptest.ResponseRecorder)
	go func() { waiterDone <- e.parallel(1, o, "/x", nil) }()
	eventually(t, "a waiter", func() bool { return e.waiters("/x") == 1 })
	cancel() // the leader's client goes away
	close(o.gate)
	<-leaderDone
	w := (<-waiterDone)[0]
	if w.Code != 200 || w.Body.String() != "kept" || o.requests() != 1 {
		t.Fatalf("waiter got %d %q after %d origin requests", w.Code, w.Body.String(), o.requests())
	}
}

func TestBackgroundRevalidationOncePerKey(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := newOrigin(func(r *http.Request, n int) reply {
		if n == 1 {
			return reply{header: hdr("Cache-Control", "max-age=1, stale-while-revalidate=60", "Etag", `"v1"`), body: "v1"}
		}
		return reply{header: hdr("Cache-Control", "max-age=60", "Etag", `"v2"`), body: "v2"}
	})
	e.get(o, "/swr", nil)
	e.clock.Advance(2 * time.Second)
	o.gate = make(chan struct{})
	for range 5 {
		w := e.get(o, "/swr", nil)
		if w.Body.String() != "v1" || w.Header().Get("X-Cache") != "STALE" {
			t.Fatalf("stale-while-revalidate: got %q %q", w.Body.String(), w.Header().Get("X-Cache"))
		}
	}
	eventually(t, "one background revalidation", func() bool { return o.requests() == 2 })
	if got := o.last().Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("background revalidation sent If-None-Match %q", got)
	}
	close(o.gate)
	eventually(t, "the new response stored", func() bool { return e.get(o, "/swr", nil).Body.String() == "v2" })
	if o.requests() != 2 {
		t.Errorf("origin saw %d requests, want 2", o.requests())
	}
	if s := e.c.Metrics().Route("shop"); s.Stale["while_revalidate"] < 5 || s.Revalidations["modified"] != 1 {
		t.Errorf("stats %+v %+v", s.Stale, s.Revalidations)
	}
}

func TestStaleWhileRevalidateWindowEnds(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := newOrigin(func(r *http.Request, n int) reply {
		switch n {
		case 1:
			return reply{header: hdr("Cache-Control", "max-age=1, stale-while-revalidate=4", "Etag", `"abc"`)}
		case 2: // the background revalidation
			return reply{header: hdr("Cache-Control", "no-cache", "Etag", `"def"`)}
		}
		return reply{status: 304, header: hdr("Etag", `"def"`)}
	})
	e.get(o, "/w", nil)
	e.clock.Advance(3 * time.Second)
	if w := e.get(o, "/w", nil); w.Header().Get("X-Cache") != "STALE" {
		t.Fatalf("within the window: %q", w.Header().Get("Cache-Status"))
	}
	eventually(t, "the background revalidation", func() bool { return !e.c.flights.inFlight(e.c.key(e.rt, req("GET", "/w", nil))) && o.requests() == 2 })
	e.clock.Advance(3 * time.Second)
	// Past the window, and the stored response is now no-cache: the third
	// request reaches the origin.
	e.get(o, "/w", nil)
	if o.requests() != 3 {
		t.Errorf("origin saw %d requests, want 3", o.requests())
	}
}

// TestCollapsedValidationOfNoCache: concurrent requests for a no-cache
// response share one validation (the response validated after they arrived
// answers them all).
func TestCollapsedValidationOfNoCache(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := newOrigin(func(r *http.Request, n int) reply {
		if r.Header.Get("If-None-Match") == `"s1"` {
			return reply{status: 304, header: hdr("Etag", `"s1"`)}
		}
		return reply{header: hdr("Cache-Control", "no-cache", "Etag", `"s1"`), body: "stock: 3"}
	})
	e.get(o, "/stock", nil)
	o.gate = make(chan struct{})
	done := make(chan []*httptest.ResponseRecorder)
	go func() { done <- e.parallel(10, o, "/stock", nil) }()
	eventually(t, "one validation and 9 waiters", func() bool { return o.requests() == 2 && e.waiters("/stock") == 9 })
	close(o.gate)
	for _, w := range <-done {
		if w.Code != 200 || w.Body.String() != "stock: 3" {
			t.Fatalf("got %d %q", w.Code, w.Body.String())
		}
	}
	if o.requests() != 2 {
		t.Errorf("origin saw %d requests, want 2", o.requests())
	}
}
