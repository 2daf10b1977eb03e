package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// rawBackend is a TCP server on 127.0.0.1 that records every byte it
// receives and answers each request header block with a canned raw
// response: it shows exactly what the proxy put on the wire, and can send
// what no Go server would.
type rawBackend struct {
	addr    string
	respond func(head string) string

	mu   sync.Mutex
	got  bytes.Buffer
	reqs int
}

func newRawBackend(t testing.TB, respond func(head string) string) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().String(), respond: respond}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				b.serve(c)
			}()
		}
	}()
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			b.mu.Lock()
			b.got.WriteString(line)
			b.mu.Unlock()
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" || line == "\n" {
				break
			}
		}
		b.mu.Lock()
		b.reqs++
		b.mu.Unlock()
		resp := b.respond(head.String())
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
		if strings.Contains(resp, "Connection: close") {
			return
		}
	}
}

func (b *rawBackend) received() (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got.String(), b.reqs
}

const rawOK = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// rawConn sends raw bytes to addr and returns everything read until the
// proxy closes the connection (or 5s pass).
func rawConn(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the proxy kept the connection open after answering %q; got %q", raw, out)
		}
	}
	return string(out)
}

// TestHeaderNameSmuggling: a field name with whitespace before the colon is
// refused with 400 and nothing reaches the endpoint (issue #13, item 1). The
// lbsys engine used to forward "Transfer-Encoding : chunked" verbatim
// next to its own Content-Length, so a lenient backend framed the body as
// the start of the next request.
func TestHeaderNameSmuggling(t *testing.T) {
	be := newRawBackend(t, func(string) string { return rawOK })
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, &testBackend{addr: be.addr}))
	addr := strings.TrimPrefix(px.url, "http://")
	smuggled := "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct{ name, raw string }{
		{"TE with a space before the colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled},
		{"CL with a space before the colon", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length : " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled},
		{"two spaces", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length  : 0\r\n\r\n"},
		{"space inside the name", "GET / HTTP/1.1\r\nHost: x\r\nX Forwarded: y\r\n\r\n"},
		{"tab before the colon", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"},
		{"Host with a space before the colon", "GET / HTTP/1.1\r\nHost : evil\r\nHost: x\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawExchange(t, addr, tc.raw)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if got, n := be.received(); n != 0 || got != "" {
				t.Fatalf("the backend received %d requests: %q", n, got)
			}
		})
	}
	// A valid request still goes through, with canonical framing only.
	resp, body := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("valid request: %d %q", resp.StatusCode, body)
	}
	got, _ := be.received()
	if !strings.Contains(got, "Content-Length: 3\r\n") || strings.Contains(strings.ToLower(got), "transfer-encoding") {
		t.Errorf("forwarded framing: %q", got)
	}
}

// TestUpstreamInvalidFieldsAre502: a response header whose name is not a
// token is a bad gateway, never passed on (it would split the response
// for a lenient client); a bad trailer, which arrives after the response
// started, is dropped.
func TestUpstreamInvalidFieldsAre502(t *testing.T) {
	responses := map[string]string{
		"/cl":      "HTTP/1.1 200 OK\r\nContent-Length : 5\r\nContent-Length: 2\r\n\r\nokHTTP/",
		"/te":      "HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 2\r\n\r\nok",
		"/name":    "HTTP/1.1 200 OK\r\nX Bad: v\r\nContent-Length: 2\r\n\r\nok",
		"/trailer": "HTTP/1.1 200 OK\r\nTrailer: X Bad\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX Bad: v\r\n\r\n",
		"/late":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX Bad: v\r\nX-Good: g\r\nContent-Length: 99\r\n\r\n",
	}
	be := newRawBackend(t, func(head string) string {
		path := strings.Fields(head)[1]
		return responses[path]
	})
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    retries: {attempts: 0}
    health: {outlier: {disabled: true}}
`, &testBackend{addr: be.addr}))
	addr := strings.TrimPrefix(px.url, "http://")
	for _, path := range []string{"/cl", "/te", "/name", "/trailer"} {
		out := rawConn(t, addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%s: %v in %q", path, err, out)
		}
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Lbsys-Error") != reasonInvalidResponse {
			t.Errorf("%s: %d %q, want 502 %s", path, resp.StatusCode, resp.Header.Get("X-Lbsys-Error"), reasonInvalidResponse)
		}
		if strings.Contains(out, " :") || strings.Contains(out, "X Bad") {
			t.Errorf("%s: the invalid field reached the client: %q", path, out)
		}
	}
	out := rawConn(t, addr, "GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
	if err != nil {
		t.Fatalf("/late: %v in %q", err, out)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("/late: %d %q", resp.StatusCode, body)
	}
	if strings.Contains(out, "X Bad") || strings.Contains(out, "Content-Length: 99") {
		t.Errorf("/late: an invalid or framing trailer reached the client: %q", out)
	}
	if resp.Trailer.Get("X-Good") != "g" {
		t.Errorf("/late: the valid trailer was lost: %q", out)
	}
}

// TestChunkedRequestClosesConnection: after a request with both
// Content-Length and Transfer-Encoding the connection closes (RFC 9112
// §6.1), so bytes after it are never read as a request.
func TestChunkedRequestClosesConnection(t *testing.T) {
	b := newBackend(t, "b")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	addr := strings.TrimPrefix(px.url, "http://")
	out := rawConn(t, addr, "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(strings.NewReader(out))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "b POST /one" {
		t.Fatalf("first response: %d %q", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("the response to a CL+TE request does not say Connection: close")
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("the request after it was answered: %q", rest)
	}
	if n := b.hits.Load(); n != 1 {
		t.Errorf("backend hits %d, want 1", n)
	}
	b.mu.Lock()
	got := b.bodies
	b.mu.Unlock()
	if len(got) != 1 || got[0] != "abc" {
		t.Errorf("backend bodies %q", got)
	}
}

// TestAbsoluteFormHost: an absolute-form request is routed by the
// authority of its target (RFC 9112 §3.2.2). HTTP/1.1 still needs a Host
// header; the lbsys engine also refuses one that names another host, so
// nothing downstream can read a different host than the one routed by.
func TestAbsoluteFormHost(t *testing.T) {
	a, other := newBackend(t, "a"), newBackend(t, "other")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {match: {host: a.example}, service: a}
      - {service: other}
services:
  - {name: a, endpoints: [{address: "{{.B0}}"}]}
  - {name: other, endpoints: [{address: "{{.B1}}"}]}
`, a, other))
	addr := strings.TrimPrefix(px.url, "http://")
	netHTTP := testEngine == config.EngineNetHTTP

	resp, _ := rawExchange(t, addr, "GET http://a.example/x HTTP/1.1\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Errorf("absolute form without Host: %d, want 400", resp.StatusCode)
	}
	resp, body := rawExchange(t, addr, "GET http://a.example/x HTTP/1.1\r\nHost: A.example\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || body != "a GET /x" || a.last().Host != "a.example" {
		t.Errorf("absolute form with a matching Host: %d %q", resp.StatusCode, body)
	}
	resp, body = rawExchange(t, addr, "GET http://a.example/y HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n")
	switch {
	case !netHTTP && resp.StatusCode != 400:
		t.Errorf("absolute form with another Host: %d %q, want 400", resp.StatusCode, body)
	case netHTTP && (resp.StatusCode != 200 || body != "a GET /y" || a.last().Host != "a.example"):
		// net/http ignores the Host header here; what is forwarded must
		// still be the authority routed by.
		t.Errorf("net_http: absolute form with another Host: %d %q, forwarded Host %q", resp.StatusCode, body, a.last().Host)
	}
	if other.hits.Load() != 0 {
		t.Errorf("a request was routed by its Host header instead of its target")
	}
}
