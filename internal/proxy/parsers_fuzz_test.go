package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy/httpfield"
)

// FuzzCookieValue: the allocation-free Cookie header scan never panics,
// returns a value that is part of the header, and finds what net/http finds
// for well-formed headers.
func FuzzCookieValue(f *testing.F) {
	for _, s := range []string{"lbsys_affinity=abc", "a=1; lbsys_affinity=\"q\"; b=2", "lbsys_affinity", "=x; lbsys_affinity=", ";;lbsys_affinity=v;"} {
		f.Add(s, "lbsys_affinity")
	}
	f.Fuzz(func(t *testing.T, line, name string) {
		if name == "" || !httpfield.ValidName(name) {
			return
		}
		h := http.Header{"Cookie": {line}}
		v, ok := cookieValue(h, name)
		if ok && !strings.Contains(line, v) {
			t.Fatalf("value %q is not in %q", v, line)
		}
		// net/http agrees wherever it finds a valid cookie of that name
		// first (it skips malformed ones; cookieValue leaves those to the
		// MAC check).
		r := &http.Request{Header: h}
		if c, err := r.Cookie(name); err == nil && ok && firstIsValid(line, name) && c.Value != v {
			t.Fatalf("%q: cookieValue %q, net/http %q", line, v, c.Value)
		}
	})
}

// firstIsValid reports whether the first "name=" pair of line is one
// net/http accepts as is.
func firstIsValid(line, name string) bool {
	for _, part := range strings.Split(line, ";") {
		part = strings.TrimSpace(part)
		if strings.HasPrefix(part, name+"=") {
			parsed, err := http.ParseCookie(part)
			return err == nil && len(parsed) == 1 && parsed[0].Name == name
		}
	}
	return false
}

// FuzzCookieSigner: a cookie value verifies only if the signer made it:
// whatever the input, parse either refuses it or returns an endpoint whose
// own cookie decodes to the same bytes.
func FuzzCookieSigner(f *testing.F) {
	s := newCookieSigner("app", "lbsys_affinity", 0, false, []byte("k"))
	f.Add(s.value(endpointKey("127.0.0.1:9001")))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := s.parse(v)
		if !ok {
			return
		}
		again, ok2 := s.parse(s.value(id))
		if !ok2 || again != id {
			t.Fatalf("%q verified as %x, but the signer's own cookie for it does not", v, id)
		}
	})
}

// FuzzParseLoad: the X-Lbsys-Load parser never panics, reports only values
// in range, and removes the header.
func FuzzParseLoad(f *testing.F) {
	for _, s := range []string{"rif=3,util=0.5", "util=1", "rif=-1", "rif=9223372036854775807", "util=NaN", ",,=,rif=", "util=1e-320, rif=0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{headerLoad: {v}}
		lr := parseLoad(h)
		if _, left := h[headerLoad]; left {
			t.Fatal("header not removed")
		}
		if lr.RIF < 0 || lr.Util < 0 || lr.Util > 1 || math.IsNaN(lr.Util) {
			t.Fatalf("%q parsed to %+v", v, lr)
		}
		if !lr.Valid && (lr.RIF != 0 || lr.Util != 0) {
			t.Fatalf("%q: values without Valid: %+v", v, lr)
		}
	})
}

// FuzzDirectiveRequest feeds POST /directive bodies to the handler of a
// proxy with a weighted, admission-controlled service: never a panic, only
// documented statuses, and a refused directive changes nothing (issue #13
// item 5: applied whole or not at all).
func FuzzDirectiveRequest(f *testing.F) {
	for _, s := range []string{
		`{"service":"app","version":"v1","weights":{"127.0.0.1:9001":1,"127.0.0.1:9002":0}}`,
		`{"service":"app","weights":{"127.0.0.1:9001":1},"admission":{"min":2000}}`,
		`{"service":"app","ramps":[{"endpoint":"127.0.0.1:9002","from":0,"to":1,"duration":"30s","start":"2026-11-27T12:00:00Z"}]}`,
		`{"service":"app","ramps":[{"endpoint":"127.0.0.1:9002","duration":1.5}]}`,
		`{"service":"app","clear":true,"admission":{"seed":120,"max":300}}`,
		`{"service":"app","weights":{"127.0.0.1:1":1}}`,
		`{"service":"nope"}`,
		`{"service":"app","weights":{"127.0.0.1:9001":-1}}`,
		`{"service":"app","admission":{"min":-1}}`,
		`[]`, `{"service":"app","x":1}`, `{"service":"app"} {}`,
		`{"service":"app","cache":{"warm":["/a","/b?x=1"],"ttl_hints":[{"path_prefix":"/a","ttl":"30s"}]}}`,
		`{"service":"app","weights":{"127.0.0.1:9001":1},"cache":{"warm":["nope"]}}`,
	} {
		f.Add([]byte(s))
	}
	cfg, err := config.Parse([]byte(`
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - name: app
    policy: weighted
    endpoints: [{address: 127.0.0.1:9001}, {address: 127.0.0.1:9002}]
    admission: {}
`))
	if err != nil {
		f.Fatal(err)
	}
	px, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(px.Close)
	state := func() string {
		st := px.Status().Services[0]
		b, _ := json.Marshal([]any{st.PolicyState.(map[string]any)["directive"], st.Admission.Min, st.Admission.Max, st.Admission.Limit})
		return string(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := state()
		rec := httptest.NewRecorder()
		px.handleDirective(rec, httptest.NewRequest("POST", "/directive", strings.NewReader(string(body))))
		switch rec.Code {
		case 200:
			var out map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out["result"] != "applied" {
				t.Fatalf("200 with body %q", rec.Body.String())
			}
		case 400, 404, 422:
			if after := state(); after != before {
				t.Fatalf("refused (%d %s) but the service changed:\nbefore %s\nafter  %s", rec.Code, rec.Body.String(), before, after)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

// FuzzAmbiguousTarget: a request target that is let through has no
// dot-segment a backend could resolve, whatever the separators and
// encodings; an oracle built on path.Clean checks it.
func FuzzAmbiguousTarget(f *testing.F) {
	for _, s := range []string{"/a/b", "/a/../b", "/a/%2e%2e/b", "/a%2F..%2Fb", "/a\\..\\b", "/..;x/a", "*", "http://h/x/./y", "/a/.b/..c"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		if ambiguousTarget(&http.Request{Method: method, URL: u}) {
			return
		}
		if u.Opaque != "" {
			t.Fatalf("%q: opaque target let through", target)
		}
		if u.Path == "" || u.Path == "*" {
			return
		}
		var segs []string
		for _, seg := range strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' || r == '\\' }) {
			if i := strings.IndexByte(seg, ';'); i >= 0 {
				seg = seg[:i]
			}
			if seg != "" {
				segs = append(segs, seg)
			}
		}
		p := "/" + strings.Join(segs, "/")
		if path.Clean(p) != p {
			t.Fatalf("%q let through, but a backend resolves %q to %q", target, p, path.Clean(p))
		}
	})
}
