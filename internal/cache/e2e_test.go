package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

// shopOrigin is a real HTTP origin on 127.0.0.1 with the kinds of pages a
// shop serves, counting what reaches it.
type shopOrigin struct {
	srv     *httptest.Server
	hits    sync.Map // path → *atomic.Int32
	release chan struct{}
}

func (s *shopOrigin) count(path string) int {
	v, ok := s.hits.Load(path)
	if !ok {
		return 0
	}
	return int(v.(*atomic.Int32).Load())
}

// newShopOrigin starts the origin; its Date follows clk, as a real origin's
// follows the same wall clock as the cache.
func newShopOrigin(t *testing.T, clk clock.Clock) *shopOrigin {
	s := &shopOrigin{release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := s.hits.LoadOrStore(r.URL.Path, new(atomic.Int32))
		n := v.(*atomic.Int32).Add(1)
		h := w.Header()
		h.Set("Date", httpDate(clk.Now()))
		switch {
		case strings.HasPrefix(r.URL.Path, "/product/"):
			if r.Method != http.MethodGet {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			etag := `"` + r.URL.Path + `-v1"`
			h.Set("Cache-Control", "max-age=60")
			h.Set("Etag", etag)
			h.Set("Surrogate-Key", "products "+strings.TrimPrefix(r.URL.Path, "/product/"))
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			fmt.Fprintf(w, "product %s, render %d", r.URL.Path, n)
		case r.URL.Path == "/account":
			h.Set("Cache-Control", "max-age=600")
			h.Set("Set-Cookie", "seen="+r.Header.Get("Authorization"))
			fmt.Fprintf(w, "account of %s", r.Header.Get("Authorization"))
		case r.URL.Path == "/big":
			// 4 MiB of a known pattern, streamed without Content-Length.
			h.Set("Cache-Control", "max-age=60")
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			for range 64 {
				w.Write(chunk)
			}
		case r.URL.Path == "/slow":
			<-s.release
			h.Set("Date", httpDate(clk.Now()))
			h.Set("Cache-Control", "max-age=60")
			io.WriteString(w, "worth the wait")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// TestEndToEnd runs a real origin and the cache as an http.Handler, both on
// 127.0.0.1, and drives them with an HTTP client: misses and hits,
// validation with 304, invalidation by POST, privacy, an object over the
// size limit streamed through, coalescing of concurrent clients and purges.
func TestEndToEnd(t *testing.T) {
	clk := clock.NewManual(time.Now())
	origin := newShopOrigin(t, clk)
	c, err := New(Config{MaxObjectBytes: 1 << 20, MaxBytes: 16 << 20}, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rt, err := c.Route("shop", RouteConfig{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(origin.srv.URL)
	front := httptest.NewServer(c.Handler(rt, NewProxyOrigin(u, &http.Transport{MaxIdleConnsPerHost: 64})))
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(path string, h http.Header) (*http.Response, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, front.URL+path, nil)
		for k, v := range h {
			r.Header[k] = v
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	// Miss, then hit.
	r1, b1 := get("/product/1", nil)
	r2, b2 := get("/product/1", nil)
	if r1.Header.Get("X-Cache") != "MISS" || r2.Header.Get("X-Cache") != "HIT" || b1 != b2 || origin.count("/product/1") != 1 {
		t.Fatalf("miss/hit: %q %q, bodies %q %q, origin %d", r1.Header.Get("X-Cache"), r2.Header.Get("X-Cache"), b1, b2, origin.count("/product/1"))
	}
	if r2.Header.Get("Age") == "" || r2.Header.Get("Cache-Status") != "lbsys; hit" {
		t.Errorf("hit fields: Age %q Cache-Status %q", r2.Header.Get("Age"), r2.Header.Get("Cache-Status"))
	}

	// Stale: validated with the origin, which answers 304.
	clk.Advance(61 * time.Second)
	r3, b3 := get("/product/1", nil)
	if r3.StatusCode != 200 || b3 != b1 || r3.Header.Get("Cache-Status") != "lbsys; fwd=stale; fwd-status=304" || origin.count("/product/1") != 2 {
		t.Fatalf("revalidation: %d %q %q, origin %d", r3.StatusCode, b3, r3.Header.Get("Cache-Status"), origin.count("/product/1"))
	}

	// A POST invalidates the URL (RFC 9111 §4.4).
	resp, err := client.Post(front.URL+"/product/1", "text/plain", strings.NewReader("stock=0"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r, _ := get("/product/1", nil); r.Header.Get("X-Cache") != "MISS" {
		t.Errorf("after POST: %q", r.Header.Get("Cache-Status"))
	}

	// Privacy: one user's response never reaches another.
	_, alice := get("/account", hdr("Authorization", "alice"))
	rb, bob := get("/account", hdr("Authorization", "bob"))
	_, anon := get("/account", nil)
	if !strings.Contains(alice, "alice") || strings.Contains(bob, "alice") || strings.Contains(anon, "alice") ||
		strings.Contains(rb.Header.Get("Set-Cookie"), "alice") {
		t.Fatalf("privacy: alice %q, bob %q, anonymous %q", alice, bob, anon)
	}

	// An object over max_object_bytes streams through whole and uncached.
	_, big := get("/big", nil)
	want := sha256.Sum256(bytes.Repeat(bytes.Repeat([]byte("0123456789abcdef"), 4096), 64))
	if sha256.Sum256([]byte(big)) != want {
		t.Fatalf("big object corrupted: %d bytes", len(big))
	}
	get("/big", nil)
	if origin.count("/big") != 2 {
		t.Errorf("big object served from the cache")
	}
	if size, _ := c.Size(); size > 1<<20 {
		t.Errorf("cache holds %d bytes after streaming a 4 MiB object", size)
	}

	// Coalescing: concurrent clients, one origin request.
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bodies[i] = get("/slow", nil)
		}()
	}
	eventually(t, "the slow fetch and 19 waiters", func() bool {
		return origin.count("/slow") == 1 && c.flights.inFlight(Key{Route: "shop", Scheme: "http", Host: strings.TrimPrefix(front.URL, "http://"), Target: "/slow"}) &&
			c.Metrics().Route("shop").Coalesced["served"] == 0 && waitersOf(c, "/slow") == 19
	})
	close(origin.release)
	wg.Wait()
	for _, b := range bodies {
		if b != "worth the wait" {
			t.Fatalf("coalesced client got %q", b)
		}
	}
	if origin.count("/slow") != 1 {
		t.Errorf("origin saw %d requests for /slow", origin.count("/slow"))
	}

	// Purge by tag, then by prefix.
	get("/product/2", nil)
	get("/product/3", nil)
	if n, err := c.Purge(PurgeRequest{Tag: "2"}); err != nil || n != 1 {
		t.Fatalf("purge by tag: %d %v", n, err)
	}
	if r, _ := get("/product/2", nil); r.Header.Get("X-Cache") != "MISS" {
		t.Errorf("purged URL still cached")
	}
	if r, _ := get("/product/3", nil); r.Header.Get("X-Cache") != "HIT" {
		t.Errorf("unrelated URL purged")
	}
	if n, _ := c.Purge(PurgeRequest{Prefix: "/product"}); n < 2 {
		t.Errorf("purge by prefix removed %d", n)
	}
	if r, _ := get("/product/3", nil); r.Header.Get("X-Cache") != "MISS" {
		t.Errorf("prefix purge missed /product/3")
	}
}

func waitersOf(c *Cache, target string) int {
	c.flights.mu.Lock()
	defer c.flights.mu.Unlock()
	for k, f := range c.flights.m {
		if k.Target == target {
			return int(f.waiters.Load())
		}
	}
	return 0
}

// TestOriginDownIsTheCallersError: with nothing to serve, Serve returns the
// origin's error and writes nothing, so the proxy can answer with its own
// error page.
func TestOriginDownIsTheCallersError(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	w := httptest.NewRecorder()
	err := e.c.Serve(w, req("GET", "/x", nil), e.rt, newOrigin(func(*http.Request, int) reply { return reply{err: context.DeadlineExceeded} }))
	if err == nil || w.Code != 200 || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Fatalf("err %v, wrote %d %q %v", err, w.Code, w.Body.String(), w.Header())
	}
}
