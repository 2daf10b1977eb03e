package cache

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMemoryBoundInBytes: W-TinyLFU keeps the stored bytes (bodies, headers
// and bookkeeping) within max_bytes however many responses arrive.
func TestMemoryBoundInBytes(t *testing.T) {
	e := newEnv(t, Config{MaxBytes: 1 << 20, MaxObjectBytes: 64 << 10}, RouteConfig{})
	body := strings.Repeat("x", 10<<10)
	o := fixed(200, cc("max-age=3600"), body)
	for i := range 500 { // 5 MB offered to a 1 MiB cache
		e.get(o, "/item/"+itoa(i), nil)
	}
	e.c.store.CleanUp()
	size, objects := e.c.Size()
	if size > 1<<20 {
		t.Errorf("cache holds %d bytes, over its 1 MiB budget", size)
	}
	if objects < 50 || objects > 100 {
		t.Errorf("%d objects of ~10 KiB in 1 MiB", objects)
	}
	if ev := e.c.Metrics().Evictions()["size"]; ev < uint64(500-objects-20) {
		t.Errorf("%d size evictions for 500 stored and %d kept", ev, objects)
	}
}

// endlessBody is a body of n bytes produced on demand (never held in
// memory whole).
type endlessBody struct{ left int64 }

func (b *endlessBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(p))
	if n > b.left {
		n = b.left
	}
	for i := range p[:n] {
		p[i] = 'z'
	}
	b.left -= n
	return int(n), nil
}

type bigOrigin struct {
	fakeOrigin
	size          int64
	contentLength int64
}

func (o *bigOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	o.count.Add(1)
	return &http.Response{StatusCode: 200, Header: cc("max-age=3600"), Body: io.NopCloser(&endlessBody{left: o.size}), ContentLength: o.contentLength}, nil
}

// countingWriter is a client that counts what it receives.
type countingWriter struct {
	h http.Header
	n int64
}

func (w *countingWriter) Header() http.Header         { return w.h }
func (w *countingWriter) WriteHeader(int)             {}
func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// TestOversizedObjectStreamsUncached: a response over max_object_bytes
// reaches the client whole but is never buffered beyond the limit, with or
// without a Content-Length.
func TestOversizedObjectStreamsUncached(t *testing.T) {
	for _, cl := range []int64{-1, 16 << 20} {
		e := newEnv(t, Config{MaxBytes: 8 << 20, MaxObjectBytes: 1 << 20}, RouteConfig{})
		o := &bigOrigin{size: 16 << 20, contentLength: cl}
		w := &countingWriter{h: http.Header{}}
		if err := e.c.Serve(w, req("GET", "/huge", nil), e.rt, o); err != nil {
			t.Fatal(err)
		}
		if w.n != 16<<20 {
			t.Fatalf("Content-Length %d: client got %d bytes", cl, w.n)
		}
		if size, _ := e.c.Size(); size > 4096 {
			t.Errorf("Content-Length %d: %d bytes stored", cl, size)
		}
		e.c.Serve(&countingWriter{h: http.Header{}}, req("GET", "/huge", nil), e.rt, o)
		if o.requests() != 2 {
			t.Errorf("Content-Length %d: the oversized object was served from the cache", cl)
		}
		if s := e.c.Metrics().Route("shop"); s.NotStored["too-large"] != 2 {
			t.Errorf("not stored: %v", s.NotStored)
		}
	}
}

// TestTeeNeverBuffersBeyondTheLimit checks the buffer itself: 16 MiB of
// unknown length through a 1 MiB limit allocates about the limit, not the
// body.
func TestTeeNeverBuffersBeyondTheLimit(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Body: io.NopCloser(&endlessBody{left: 16 << 20}), ContentLength: -1}
	overflowed := false
	allocs := testing.AllocsPerRun(1, func() {
		resp.Body = io.NopCloser(&endlessBody{left: 16 << 20})
		body, complete, tooLarge, _ := tee(&countingWriter{h: http.Header{}}, resp, true, 1<<20, func() { overflowed = true })
		if body != nil || !complete || !tooLarge {
			t.Fatalf("body %d bytes, complete %v, tooLarge %v", len(body), complete, tooLarge)
		}
	})
	if !overflowed {
		t.Error("overflow not reported")
	}
	// append doubling up to 1 MiB is ~20 allocations; a buffered 16 MiB
	// body would be ~24 more and 16 MiB of memory.
	if allocs > 40 {
		t.Errorf("%v allocations", allocs)
	}
}

// TestRouteWeightBiasesEviction: two routes serve the same number of
// requests of same-sized responses into a cache too small for both; the
// route with weight 8 keeps far more of its responses than the route with
// weight 0.5. With equal weights they keep about the same.
func TestRouteWeightBiasesEviction(t *testing.T) {
	kept := func(heavy, light float64) (int, int) {
		e := newEnv(t, Config{MaxBytes: 1 << 20, MaxObjectBytes: 64 << 10}, RouteConfig{})
		checkout, err := e.c.Route("checkout", RouteConfig{Enabled: true, Weight: heavy})
		if err != nil {
			t.Fatal(err)
		}
		search, err := e.c.Route("search", RouteConfig{Enabled: true, Weight: light})
		if err != nil {
			t.Fatal(err)
		}
		o := fixed(200, cc("max-age=3600"), strings.Repeat("p", 8<<10))
		serve := func(rt *Route, path string) {
			e.c.Serve(httptest.NewRecorder(), req("GET", path, nil), rt, o)
		}
		// 150 URLs per route, ~9 KiB each: 2.7 MB wanted, 1 MiB room.
		// Every URL is requested four times, interleaved across routes.
		for round := range 4 {
			for i := range 150 {
				serve(checkout, "/checkout/"+itoa(i))
				serve(search, "/search/"+itoa(i))
			}
			e.c.store.CleanUp()
			_ = round
		}
		e.c.store.CleanUp()
		var c, s int
		for k := range e.c.store.Keys() {
			switch k.Route {
			case "checkout":
				c++
			case "search":
				s++
			}
		}
		return c, s
	}
	c, s := kept(8, 0.5)
	if c < 2*s || c < 40 {
		t.Errorf("weights 8 vs 0.5: checkout kept %d, search %d; want checkout at least twice search", c, s)
	}
	c1, s1 := kept(1, 1)
	if c1 > 2*s1+10 || s1 > 2*c1+10 {
		t.Errorf("equal weights: %d vs %d, want them close", c1, s1)
	}
	t.Logf("weights 8/0.5: checkout %d, search %d; weights 1/1: %d, %d", c, s, c1, s1)
}
