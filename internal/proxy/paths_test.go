package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAmbiguousPathsAreRefused: the proxy routes on the decoded path and
// forwards the escaped one; where a backend could resolve them to another
// path (dot-segments, encoded separators, backslashes, non-path targets)
// the request is refused with 400 before routing, on both engines, and
// never reaches an endpoint. Plain percent-encoding is forwarded as sent.
func TestAmbiguousPathsAreRefused(t *testing.T) {
	pub, admin := newBackend(t, "public"), newBackend(t, "admin")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {match: {path_prefix: /public}, service: public}
      - {match: {path_prefix: /admin, methods: [GET]}, service: admin}
services:
  - {name: public, endpoints: [{address: "{{.B0}}"}]}
  - {name: admin, endpoints: [{address: "{{.B1}}"}]}
`, pub, admin))
	addr := strings.TrimPrefix(px.url, "http://")
	for _, target := range []string{
		"/public/../admin/users",
		"/public/%2e%2e/admin/users",
		"/public/%2E%2e/admin",
		"/public/..;/admin",
		"/public/./x",
		"/public/..",
		"/public%2f..%2fadmin",
		"/public/a%5C..%5Cadmin",
		"/public/a\\..\\admin",
		"/public/%2e%2e;x/admin",
		"a:b",
		"*",
	} {
		resp, body := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 400 || (resp.Header.Get("X-Lbsys-Error") != reasonAmbiguousPath && !strings.HasPrefix(body, "400 Bad Request")) {
			t.Errorf("%s: %d %q %q, want 400 %s", target, resp.StatusCode, resp.Header.Get("X-Lbsys-Error"), body, reasonAmbiguousPath)
		}
	}
	if n := pub.hits.Load() + admin.hits.Load(); n != 0 {
		t.Fatalf("%d ambiguous requests reached a backend", n)
	}
	for _, tc := range []struct{ target, wantPath string }{
		{"/public/a%20b", "/public/a b"},
		{"/public/.well-known/x", "/public/.well-known/x"},
		{"/public/a..b/c.", "/public/a..b/c."},
		{"/public/%41", "/public/A"},
		{"/public?next=/../admin", "/public"},
		{"/public/a%2Fb", "/public/a/b"},
		{"/public/a%5Cb", "/public/a\\b"},
	} {
		resp, _ := rawExchange(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d, want 200", tc.target, resp.StatusCode)
			continue
		}
		if got := pub.last().URL.Path; got != tc.wantPath {
			t.Errorf("%s: the backend read %q, want %q", tc.target, got, tc.wantPath)
		}
		if got := pub.last().RequestURI; got != tc.target {
			t.Errorf("%s: forwarded as %q, want it unchanged", tc.target, got)
		}
	}
	// Routes match the path as forwarded: an encoded letter does not move a
	// request onto a route, an encoded slash does not either.
	for _, target := range []string{"/%70ublic/x", "/public%2Fx"} {
		resp, _ := rawExchange(t, addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404 (no route matches it as forwarded)", target, resp.StatusCode)
		}
	}
	resp, _ := rawExchange(t, addr, "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode == 400 && resp.Header.Get("X-Lbsys-Error") == reasonAmbiguousPath {
		t.Errorf("OPTIONS * was refused as ambiguous")
	}
}

func TestAmbiguousTarget(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		want           bool
	}{
		{"GET", "/", false},
		{"GET", "/a/b/c", false},
		{"GET", "/a/.b", false},
		{"GET", "/a/..b", false},
		{"GET", "/a/b.", false},
		{"GET", "/a/%2e", true},
		{"GET", "/.", true},
		{"GET", "/..", true},
		{"GET", "/a/./", true},
		{"GET", "/a/.;x/b", true},
		{"GET", "/a%2Fb", false},
		{"GET", "/a%2F..%2Fb", true},
		{"GET", "/a%5C..", true},
		{"GET", "/a\\.\\b", true},
		{"GET", "/a\\.b", false},
		{"GET", "/a%25%32%65%25%32%65/b", false}, // "%2e%2e" spelled out: decoded once, it is not ".."
		{"GET", "/a%", true},                     // invalid escape: never parsed
		{"GET", "http://h", false},
		{"GET", "http://h/a/../b", true},
		{"OPTIONS", "*", false},
		{"GET", "*", true},
	} {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			if !tc.want {
				t.Errorf("%s: %v", tc.target, err)
			}
			continue
		}
		if got := ambiguousTarget(&http.Request{Method: tc.method, URL: u}); got != tc.want {
			t.Errorf("%s %s: ambiguous %v, want %v", tc.method, tc.target, got, tc.want)
		}
	}
}
