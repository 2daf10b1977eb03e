package cache

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
	"github.com/lbsys/lbsys/internal/clock"
)

// t0 is the tests' start time on the manual clock.
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return rfc9111.FormatHTTPDate(t) }

// reply is what the fake origin answers.
type reply struct {
	status int
	header http.Header
	body   string
	err    error // RoundTrip fails (connection refused, reset)
}

// fakeOrigin is an in-process Origin: a function from request to reply,
// recording what it received. It needs no sockets, so tests run on the
// manual clock; the end-to-end tests use real servers on 127.0.0.1.
type fakeOrigin struct {
	mu      sync.Mutex
	handler func(r *http.Request, n int) reply
	seen    []*http.Request
	count   atomic.Int32
	// gate, when set, holds every RoundTrip until it is closed.
	gate chan struct{}
}

func newOrigin(h func(r *http.Request, n int) reply) *fakeOrigin { return &fakeOrigin{handler: h} }

// fixed answers every request the same way.
func fixed(status int, header http.Header, body string) *fakeOrigin {
	return newOrigin(func(*http.Request, int) reply { return reply{status: status, header: header, body: body} })
}

func (o *fakeOrigin) answer(r *http.Request) reply {
	n := int(o.count.Add(1))
	o.mu.Lock()
	o.seen = append(o.seen, r)
	o.mu.Unlock()
	if o.gate != nil {
		<-o.gate
	}
	return o.handler(r, n)
}

func (o *fakeOrigin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.RequestURI != "" {
		return nil, errors.New("RequestURI set on a client request")
	}
	rep := o.answer(r)
	if rep.err != nil {
		return nil, rep.err
	}
	h := rep.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	status := rep.status
	if status == 0 {
		status = 200
	}
	resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader([]byte(rep.body))),
		ContentLength: int64(len(rep.body)), Request: r}
	return resp, nil
}

func (o *fakeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := o.answer(r)
	if rep.err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	for k, v := range rep.header {
		w.Header()[k] = v
	}
	if rep.status == 0 {
		rep.status = 200
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (o *fakeOrigin) requests() int { return int(o.count.Load()) }

func (o *fakeOrigin) last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) == 0 {
		return nil
	}
	return o.seen[len(o.seen)-1]
}

// env is a cache with one route on a manual clock.
type env struct {
	t     *testing.T
	c     *Cache
	rt    *Route
	clock *clock.Manual
}

func newEnv(t *testing.T, cfg Config, rc RouteConfig) *env {
	t.Helper()
	clk := clock.NewManual(t0)
	c, err := New(cfg, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	rc.Enabled = true
	rt, err := c.Route("shop", rc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, c: c, rt: rt, clock: clk}
}

// req builds a server-side request as net/http's server would.
func req(method, target string, h http.Header) *http.Request {
	// Origin-form, as a server receives it: RequestURI is the target.
	r := httptest.NewRequest(method, target, nil)
	r.Host = "shop.example"
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}

// do serves one request through the cache.
func (e *env) do(o Origin, method, target string, h http.Header) *httptest.ResponseRecorder {
	e.t.Helper()
	w := httptest.NewRecorder()
	if err := e.c.Serve(w, req(method, target, h), e.rt, o); err != nil {
		w.Code = http.StatusBadGateway
		w.Header().Set("X-Test-Error", err.Error())
	}
	return w
}

func (e *env) get(o Origin, target string, h http.Header) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(o, http.MethodGet, target, h)
}

// eventually polls cond until it holds or a deadline passes (no sleeps as
// synchronisation: a bounded wait for work another goroutine does).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func itoa(n int) string { return strconv.Itoa(n) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
