package cache

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestHitDoesNotAllocate keeps a hit free of allocations (the ≤ 0.5× CPU
// goal of a proxied miss depends on it): fresh hit, conditional hit (304),
// Vary hit.
func TestHitDoesNotAllocate(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := fixed(200, hdr("Cache-Control", "max-age=3600", "Etag", `"v"`, "Vary", "Accept-Encoding", "Content-Type", "text/plain"), kib)
	for _, h := range []http.Header{hdr("Accept-Encoding", "gzip"), hdr("Accept-Encoding", "gzip", "If-None-Match", `"v"`)} {
		r := req("GET", "/p?q=1", h)
		e.c.Serve(httptest.NewRecorder(), r, e.rt, o)
		w := &benchWriter{h: http.Header{}}
		e.c.Serve(w, r, e.rt, o) // formats the Age value once
		if n := testing.AllocsPerRun(200, func() {
			clear(w.h)
			e.c.Serve(w, r, e.rt, o)
		}); n != 0 {
			t.Errorf("%v: a hit allocates %v times", h, n)
		}
	}
	if o.requests() != 1 {
		t.Fatalf("origin saw %d requests", o.requests())
	}
}

// TestSharedFieldsAreAppendSafe: a handler after the cache appending to a
// field of a hit must not change the stored response or race with another
// hit (the stored value slices have no spare capacity).
func TestSharedFieldsAreAppendSafe(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := spareCapacityOrigin{fixed(200, nil, "x")}
	e.get(o, "/v", nil)
	// Two hits at once, each handler appending: without the capacity
	// clamp both write the same array element (the race detector sees it).
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := e.get(o, "/v", nil)
			w.Header().Add("Vary", "Cookie")
		}()
	}
	wg.Wait()
	if got := e.get(o, "/v", nil).Header().Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
		t.Fatalf("stored Vary changed by a later handler: %q", got)
	}
}

// spareCapacityOrigin answers with field values that have spare capacity,
// as net/http's response parsing may produce.
type spareCapacityOrigin struct{ *fakeOrigin }

func (o spareCapacityOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	o.answer(r)
	h := http.Header{"Cache-Control": {"max-age=3600"}}
	h["Vary"] = make([]string, 1, 8)
	h["Vary"][0] = "Accept-Encoding"
	return &http.Response{StatusCode: 200, Header: h, Body: http.NoBody, ContentLength: 0}, nil
}
