package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestForwardRequestFields: what the endpoint receives of a client's
// request, field by field, as httputil.ReverseProxy sent it before the
// proxy forwarded by itself.
func TestForwardRequestFields(t *testing.T) {
	b := newBackend(t, "b")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	addr := strings.TrimPrefix(px.url, "http://")
	for _, tc := range []struct {
		name, target, fields string
		check                func(r *http.Request) string
	}{
		{"a query with a semicolon keeps only what parses", "/q?a=1;b=2&c=3", "", func(r *http.Request) string {
			return want("query", r.URL.RawQuery, "c=3")
		}},
		{"a malformed escape drops its parameter", "/q?x=%zz&d=4", "", func(r *http.Request) string {
			return want("query", r.URL.RawQuery, "d=4")
		}},
		{"a clean query passes as sent", "/q?b=%20&a=1&&z", "", func(r *http.Request) string {
			return want("query", r.URL.RawQuery, "b=%20&a=1&&z")
		}},
		{"Te: trailers passes alone", "/te", "Te: deflate, Trailers\r\n", func(r *http.Request) string {
			return want("Te", strings.Join(r.Header["Te"], "|"), "trailers")
		}},
		{"another Te does not pass", "/te", "Te: deflate\r\n", func(r *http.Request) string {
			return want("Te", strings.Join(r.Header["Te"], "|"), "")
		}},
		{"fields Connection names are dropped", "/c", "Connection: close, X-Drop\r\nClose: 1\r\nX-Drop: 1\r\nX-Keep: 1\r\n", func(r *http.Request) string {
			return want("fields", r.Header.Get("Close")+r.Header.Get("X-Drop")+"/"+r.Header.Get("X-Keep"), "/1")
		}},
		{"hop-by-hop fields stay", "/h", "Keep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n", func(r *http.Request) string {
			for _, f := range []string{"Keep-Alive", "Proxy-Authorization", "Upgrade", "Proxy-Connection"} {
				if v := r.Header.Get(f); v != "" {
					return f + " reached the endpoint: " + v
				}
			}
			return ""
		}},
		{"no User-Agent stays none", "/ua", "", func(r *http.Request) string {
			if _, ok := r.Header["User-Agent"]; ok {
				return "a User-Agent was added: " + r.Header.Get("User-Agent")
			}
			return ""
		}},
		{"repeated fields keep their order", "/m", "X-Multi: one\r\nX-Multi: two\r\n", func(r *http.Request) string {
			return want("X-Multi", strings.Join(r.Header["X-Multi"], "|"), "one|two")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := rawExchange(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: shop.test\r\n"+tc.fields+"\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if msg := tc.check(b.last()); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func want(what, got, wanted string) string {
	if got != wanted {
		return what + ": got " + strings.TrimSpace(got) + ", want " + wanted
	}
	return ""
}

// TestForwardResponseFields: the hop-by-hop fields of an endpoint's answer
// stay with the proxy, including those its Connection field names; the
// rest reach the client with every value.
func TestForwardResponseFields(t *testing.T) {
	b := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("Te", "trailers")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		io.WriteString(w, "ok")
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	resp, body := rawExchange(t, strings.TrimPrefix(px.url, "http://"), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	for _, f := range []string{"X-Hop", "Keep-Alive", "Proxy-Authenticate", "Upgrade", "Te"} {
		if v := resp.Header.Get(f); v != "" {
			t.Errorf("%s: %q reached the client", f, v)
		}
	}
	if got := strings.Join(resp.Header["Set-Cookie"], "|"); got != "a=1|b=2" {
		t.Errorf("Set-Cookie: %q", got)
	}
}

// TestCutBodyIsNotComplete: an endpoint that dies in the middle of a
// chunked body must not make the proxy end the client's body as if it
// were whole (the last chunk), nor keep the connection: the client has to
// see the answer as incomplete. Under net/http.Server ReverseProxy did so
// with http.ErrAbortHandler; the lbsys engine ended the body cleanly.
func TestCutBodyIsNotComplete(t *testing.T) {
	b := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		bw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		bw.Flush()
		c.Close()
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	got, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("the cut body %q ended cleanly", got)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading the cut body: %v, want an unexpected EOF", err)
	}
}

// TestCachedCutBodyIsNotComplete: the same cut body on a route that
// caches (the cache copies the origin's body itself): the client must not
// take the answer for complete either, and nothing is stored (the next
// request goes to the endpoint again).
func TestCachedCutBodyIsNotComplete(t *testing.T) {
	var asked atomic.Int32
	b := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		c, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		bw.WriteString("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		bw.Flush()
		c.Close()
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}], cache: {enabled: true}}
`, b))
	for i := 1; i <= 2; i++ {
		c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("request %d: no answer: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		c.Close()
		if err == nil {
			t.Fatalf("request %d: the cut body %q ended cleanly", i, got)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("request %d: reading the cut body: %v, want an unexpected EOF", i, err)
		}
		if n := asked.Load(); n != int32(i) {
			t.Errorf("after request %d the endpoint was asked %d times: a cut body was stored", i, n)
		}
	}
}

// TestUnaskedSwitchIs502: a 101 to a request that asked for no upgrade is
// a broken endpoint: the client gets a 502 and the exchange ends (it used
// to stay open, holding the service's in-flight count and its admission
// slot for good).
func TestUnaskedSwitchIs502(t *testing.T) {
	b := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
		bw.Flush()
		io.Copy(io.Discard, c) // until the proxy lets go
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	resp, _ := rawExchange(t, strings.TrimPrefix(px.url, "http://"), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	svc := px.gen.Load().services["app"]
	eventually(t, 5*time.Second, "the service's in-flight count back to 0", func() bool { return svc.active.Load() == 0 })
}
