package cache

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The conformance tests below are scenarios in the manner of
// http-tests/cache-tests (cache-tests.fyi), written here in our own form:
// a sequence of requests, each with what the origin answers if it is
// asked, and what the client and the origin must see. They run through
// Serve with a manual clock, so "3 seconds later" costs nothing. Each
// table cites the RFC 9111 section (or RFC 5861, 9110, 9211) it checks;
// internal/cache/conformance/run.sh runs the real suite.

type expect uint8

const (
	anyway     expect = iota
	fromCache         // the origin is not contacted
	fromOrigin        // the origin is contacted
)

type step struct {
	after  time.Duration // clock advance before the request
	method string        // default GET
	target string        // default "/r"
	req    http.Header
	reply  reply // what the origin answers if asked (default: 200, max-age=0 free)

	want         expect
	status       int               // 0: don't check
	header       map[string]string // response fields that must equal
	absent       []string          // response fields that must be missing
	body         string            // "" = don't check
	originHeader map[string]string // fields the origin must have received
	originAbsent []string          // fields the origin must not have received
}

type scenario struct {
	name  string
	cfg   Config
	route RouteConfig
	steps []step
}

func runScenarios(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			e := newEnv(t, sc.cfg, sc.route)
			var current reply
			o := newOrigin(func(r *http.Request, n int) reply {
				rep := current
				if rep.body == "" && rep.err == nil {
					rep.body = "body-" + itoa(n)
				}
				if rep.header != nil && rep.header.Get("Date") == "now" {
					rep.header = rep.header.Clone()
					rep.header.Set("Date", httpDate(e.clock.Now()))
				}
				return rep
			})
			for i, s := range sc.steps {
				e.clock.Advance(s.after)
				current = s.reply
				before := o.requests()
				method, target := s.method, s.target
				if method == "" {
					method = http.MethodGet
				}
				if target == "" {
					target = "/r"
				}
				w := e.do(o, method, target, s.req)
				contacted := o.requests() > before
				where := func() string { return "step " + itoa(i+1) + " (" + method + " " + target + ")" }
				switch {
				case s.want == fromCache && contacted:
					t.Fatalf("%s: went to the origin, want it served from the cache; Cache-Status %q", where(), w.Header().Get("Cache-Status"))
				case s.want == fromOrigin && !contacted:
					t.Fatalf("%s: served from the cache, want it sent to the origin; Cache-Status %q", where(), w.Header().Get("Cache-Status"))
				}
				if s.status != 0 && w.Code != s.status {
					t.Errorf("%s: status %d, want %d (%s)", where(), w.Code, s.status, w.Header().Get("X-Test-Error"))
				}
				for k, v := range s.header {
					if got := strings.Join(w.Header().Values(k), ", "); got != v {
						t.Errorf("%s: %s = %q, want %q", where(), k, got, v)
					}
				}
				for _, k := range s.absent {
					if w.Header().Values(k) != nil {
						t.Errorf("%s: %s = %q, want it absent", where(), k, w.Header().Values(k))
					}
				}
				if s.body != "" && w.Body.String() != s.body {
					t.Errorf("%s: body %q, want %q", where(), w.Body.String(), s.body)
				}
				if (len(s.originHeader) > 0 || len(s.originAbsent) > 0) && !contacted {
					t.Fatalf("%s: origin not contacted, cannot check what it received", where())
				}
				if contacted {
					got := o.last().Header
					for k, v := range s.originHeader {
						if g := strings.Join(got.Values(k), ", "); g != v {
							t.Errorf("%s: origin received %s = %q, want %q", where(), k, g, v)
						}
					}
					for _, k := range s.originAbsent {
						if got.Values(k) != nil {
							t.Errorf("%s: origin received %s = %q, want it absent", where(), k, got.Values(k))
						}
					}
				}
			}
		})
	}
}

func cc(v string) http.Header { return hdr("Cache-Control", v) }

// TestStoringResponses covers RFC 9111 §3 (when a response may be stored),
// §3.5 (Authorization) and §5.2.2 (response directives).
func TestStoringResponses(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "§3 max-age is stored and reused", steps: []step{
			{reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache, body: "body-1"},
		}},
		{name: "§3 without freshness or validator, not reused", steps: []step{
			{reply: reply{}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}},
		{name: "§5.2.2.5 no-store is not stored", steps: []step{
			{reply: reply{header: cc("max-age=10000, no-store")}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§5.2.2.5 no-store in any case", steps: []step{
			{reply: reply{header: cc("No-StOrE")}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§5.2.2.5 a no-store response leaves the older stored one in place", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=1", "A", "1", "Etag", `"a"`)}, want: fromOrigin},
			{after: 2 * time.Second, req: cc("no-cache"), reply: reply{header: hdr("Cache-Control", "no-store", "A", "2")}, want: fromOrigin, header: map[string]string{"A": "2"}},
			{req: cc("max-stale"), want: fromCache, header: map[string]string{"A": "1"}},
		}},
		{name: "§5.2.2.7 private is not stored by a shared cache", steps: []step{
			{reply: reply{header: cc("private, max-age=3600")}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§5.2.2.7 private=field stores the rest without the field", steps: []step{
			{reply: reply{header: hdr("Cache-Control", `private="X-User", max-age=3600`, "X-User", "ann", "X-Other", "1")}, want: fromOrigin, header: map[string]string{"X-User": "ann"}},
			{want: fromCache, absent: []string{"X-User"}, header: map[string]string{"X-Other": "1"}},
		}},
		{name: "§5.2.2.4 no-cache is revalidated on every use", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=10000, no-cache", "Etag", `"abcd"`)}, want: fromOrigin},
			{reply: reply{status: 304, header: hdr("Etag", `"abcd"`)}, want: fromOrigin, status: 200, body: "body-1", originHeader: map[string]string{"If-None-Match": `"abcd"`}},
		}},
		{name: "§5.2.2.4 no-cache without a validator is not reused", steps: []step{
			{reply: reply{header: cc("max-age=10000, No-CaChE")}, want: fromOrigin},
			{want: fromOrigin, body: "body-2"},
		}},
		{name: "§3.5 Authorization: bypassed when not allowed", steps: []step{
			{req: hdr("Authorization", "FOO"), reply: reply{header: cc("max-age=3600, public")}, want: fromOrigin, originHeader: map[string]string{"Authorization": "FOO"}},
			{want: fromOrigin},
		}},
		{name: "§3.5 Authorization: stored with public when allowed", route: RouteConfig{AllowAuthorization: true}, steps: []step{
			{req: hdr("Authorization", "FOO"), reply: reply{header: cc("max-age=3600, public")}, want: fromOrigin},
			{want: fromCache},
		}},
		{name: "§3.5 Authorization: s-maxage allows", route: RouteConfig{AllowAuthorization: true}, steps: []step{
			{req: hdr("Authorization", "FOO"), reply: reply{header: cc("s-maxage=3600")}, want: fromOrigin},
			{want: fromCache},
		}},
		{name: "§3.5 Authorization: must-revalidate allows", route: RouteConfig{AllowAuthorization: true}, steps: []step{
			{req: hdr("Authorization", "FOO"), reply: reply{header: cc("max-age=3600, must-revalidate")}, want: fromOrigin},
			{want: fromCache},
		}},
		{name: "§3.5 Authorization: Expires alone does not", route: RouteConfig{AllowAuthorization: true}, steps: []step{
			{req: hdr("Authorization", "FOO"), reply: reply{header: hdr("Expires", httpDate(t0.Add(30*24*time.Hour)), "Date", httpDate(t0))}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "Set-Cookie is not stored by default", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=3600", "Set-Cookie", "a=b")}, want: fromOrigin, header: map[string]string{"Set-Cookie": "a=b"}},
			{want: fromOrigin},
		}},
		{name: "Set-Cookie stored when the route allows it", route: RouteConfig{AllowSetCookie: true}, steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=3600", "Set-Cookie", "a=b")}, want: fromOrigin},
			{want: fromCache, header: map[string]string{"Set-Cookie": "a=b"}},
		}},
		{name: `Set-Cookie named in no-cache="…": stored without it`, steps: []step{
			{reply: reply{header: hdr("Cache-Control", `max-age=3600, no-cache="Set-Cookie"`, "Set-Cookie", "a=b")}, want: fromOrigin, header: map[string]string{"Set-Cookie": "a=b"}},
			{want: fromCache, absent: []string{"Set-Cookie"}},
		}},
		{name: "§3 different query strings are different keys", steps: []step{
			{target: "/r?test=1", reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{target: "/r?test=2", reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{target: "/r?test=1", want: fromCache, body: "body-1"},
		}},
		{name: "§3 a cookie in the request does not prevent reuse", steps: []step{
			{reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{req: hdr("Cookie", "a=b"), want: fromCache},
		}},
	})
}

// TestStoredFields covers §3.1 (fields not stored) and §5.2.2.4/§5.2.2.7
// (fields named by no-cache and private).
func TestStoredFields(t *testing.T) {
	h := hdr("Cache-Control", "max-age=3600", "Date", "now", "Connection", "a, b", "A", "1", "B", "2", "C", "3",
		"Keep-Alive", "timeout=5", "Proxy-Authenticate", "Basic", "Proxy-Authentication-Info", "x", "Te", "trailers",
		"Upgrade", "h2c", "Proxy-Connection", "close", "Content-Type", "text/plain", "X-Frame-Options", "deny",
		"Clear-Site-Data", "cache", "Content-Security-Policy", "default-src 'self'", "Etag", `"e"`,
		"Expires", httpDate(t0.Add(time.Hour)), "Content-Location", "/foo", "Public-Key-Pins", "x")
	runScenarios(t, []scenario{
		{name: "§3.1 hop-by-hop and Connection-listed fields are not stored; the rest is", steps: []step{
			{reply: reply{header: h}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache,
				absent: []string{"Connection", "A", "B", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authentication-Info", "Te", "Upgrade", "Proxy-Connection"},
				header: map[string]string{"C": "3", "Content-Type": "text/plain", "X-Frame-Options": "deny", "Clear-Site-Data": "cache",
					"Content-Security-Policy": "default-src 'self'", "Etag": `"e"`, "Content-Location": "/foo", "Public-Key-Pins": "x",
					"Content-Length": "6"}},
		}},
		{name: `§5.2.2.4 no-cache="a, b" fields are not reused`, steps: []step{
			{reply: reply{header: hdr("Cache-Control", `no-cache="a, b"`, "Cache-Control", "max-age=3600", "A", "1", "B", "2", "C", "3")}, want: fromOrigin},
			{want: fromCache, absent: []string{"A", "B"}, header: map[string]string{"C": "3"}},
		}},
	})
}

// TestConstructingResponses covers §4 (Age generated, Date untouched) and
// §5.1 (Age).
func TestConstructingResponses(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "§4, §5.1 Age is generated", steps: []step{
			{reply: reply{header: hdr("Expires", httpDate(t0.Add(30*24*time.Hour)), "Date", "now")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache, header: map[string]string{"Age": "3"}},
		}},
		{name: "§4.2.3 Age adds to the received Age (Expires)", steps: []step{
			{reply: reply{header: hdr("Expires", httpDate(t0.Add(30*24*time.Hour)), "Date", "now", "Age", "30")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache, header: map[string]string{"Age": "33"}},
		}},
		{name: "§4.2.3 Age adds to the received Age (max-age)", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=600", "Date", "now", "Age", "30")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache, header: map[string]string{"Age": "33"}},
		}},
		{name: "§4 Date is not updated", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=600", "Date", httpDate(t0))}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache, header: map[string]string{"Date": httpDate(t0)}},
		}},
		{name: "§4.2.3 Age greater than max-age: stale at once", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=10", "Date", "now", "Age", "15")}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§4.2.1 an unreadable Age is stale", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=3600", "Date", "now", "Age", "abc")}, want: fromOrigin},
			{after: time.Second, want: fromOrigin},
		}},
	})
}

// TestFreshness covers §4.2.1 (s-maxage, max-age, Expires), §4.2.2
// (heuristics by status) and §5.3 (Expires parsing).
func TestFreshness(t *testing.T) {
	now := httpDate(t0)
	scenarios := []scenario{
		{name: "§4.2.1 s-maxage beats a longer max-age", steps: []step{
			{reply: reply{header: cc("max-age=3600, s-maxage=1")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}},
		{name: "§4.2.1 s-maxage beats a shorter max-age", steps: []step{
			{reply: reply{header: cc("max-age=1, s-maxage=3600")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache},
		}},
		{name: "§4.2.1 max-age=0 with a future Expires is stale", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=0", "Expires", httpDate(t0.Add(time.Hour)), "Date", now)}, want: fromOrigin},
			{after: time.Second, want: fromOrigin},
		}},
		{name: "§4.2.1 max-age beats an invalid Expires", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=3600", "Expires", "0", "Date", now)}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache},
		}},
		{name: "§5.3 a past Expires is stale", steps: []step{
			{reply: reply{header: hdr("Expires", httpDate(t0.Add(-30*24*time.Hour)), "Date", now)}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}},
		{name: "§5.3 an Expires equal to Date is stale", steps: []step{
			{reply: reply{header: hdr("Expires", now, "Date", now)}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§5.3 an invalid Expires (UTC) is stale", steps: []step{
			{reply: reply{header: hdr("Expires", "Thu, 18 Aug 2050 02:01:18 UTC", "Date", now)}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}},
		{name: "§5.3 a future Expires is fresh", steps: []step{
			{reply: reply{header: hdr("Expires", httpDate(t0.Add(30*24*time.Hour)), "Date", now)}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache},
		}},
		{name: "§4.2.1 invalid max-age (quoted with single quotes) is stale", steps: []step{
			{reply: reply{header: cc("max-age='3600'")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}},
		{name: "§4.2.1 max-age inside a quoted extension is ignored", steps: []step{
			{reply: reply{header: cc(`extension="max-age=3600", max-age=1`)}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}},
		{name: "§1.2.2 an overlarge max-age is 2^31 seconds", steps: []step{
			{reply: reply{header: cc("max-age=99999999999")}, want: fromOrigin},
			{after: 3 * time.Second, want: fromCache},
		}},
	}
	// §4.2.2: status codes heuristically cacheable by default may be
	// reused without explicit freshness; others must not be.
	for _, c := range []struct {
		status int
		extra  http.Header
		reuse  bool
	}{
		{200, nil, true}, {203, nil, true}, {204, nil, true}, {404, nil, true}, {405, nil, true},
		{410, nil, true}, {414, nil, true}, {501, nil, true},
		{201, nil, false}, {202, nil, false}, {403, nil, false}, {502, nil, false}, {503, nil, false},
		{504, nil, false}, {599, nil, false}, {599, cc("public"), true},
	} {
		h := hdr("Last-Modified", httpDate(t0.Add(-24*time.Hour)), "Date", now)
		for k, v := range c.extra {
			h[k] = v
		}
		want := fromOrigin
		if c.reuse {
			want = fromCache
		}
		scenarios = append(scenarios, scenario{name: "§4.2.2 heuristic " + itoa(c.status) + " " + c.extra.Get("Cache-Control"), steps: []step{
			{reply: reply{status: c.status, header: h}, want: fromOrigin},
			{want: want},
		}})
	}
	// §4.2: a stale response with explicit freshness is not reused, whatever its status.
	for _, status := range []int{200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599} {
		scenarios = append(scenarios, scenario{name: "§4.2 stale " + itoa(status) + " not reused", steps: []step{
			{reply: reply{status: status, header: hdr("Expires", httpDate(t0.Add(-5000*time.Second)), "Last-Modified", httpDate(t0.Add(-100000*time.Second)), "Date", now)}, want: fromOrigin},
			{after: 3 * time.Second, want: fromOrigin},
		}})
	}
	runScenarios(t, scenarios)
}

// TestVary covers §4.1 (secondary keys).
func TestVary(t *testing.T) {
	vary := func(v string) http.Header {
		return hdr("Cache-Control", "max-age=5000", "Last-Modified", httpDate(t0.Add(-3000*time.Second)), "Date", httpDate(t0), "Vary", v)
	}
	runScenarios(t, []scenario{
		{name: "§4.1 match", steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "1"), want: fromCache, header: map[string]string{"Vary": "Foo"}},
		}},
		{name: "§4.1 no match", steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "2"), reply: reply{header: vary("Foo")}, want: fromOrigin, header: map[string]string{"Cache-Status": "lbsys; fwd=vary-miss; fwd-status=200; stored"}},
		}},
		{name: "§4.1 request omits the field", steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§4.1 stored request omitted the field", steps: []step{
			{reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "1"), want: fromOrigin},
		}},
		{name: "§4.1 two variants live side by side", steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "2"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "1"), want: fromCache, body: "body-1"},
			{req: hdr("Foo", "2"), want: fromCache, body: "body-2"},
		}},
		{name: "§4.1 fields not in Vary are not in the key", steps: []step{
			{req: hdr("Foo", "1", "Other", "2"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "1", "Other", "3"), want: fromCache},
		}},
		{name: "§4.1 three-way mismatch in one field", steps: []step{
			{req: hdr("Foo", "1", "Bar", "abc", "Baz", "789"), reply: reply{header: vary("Foo, Bar, Baz")}, want: fromOrigin},
			{req: hdr("Foo", "1", "Bar", "abc", "Baz", "789"), want: fromCache},
			{req: hdr("Foo", "1", "Baz", "789", "Bar", "abcde"), want: fromOrigin},
		}},
		{name: "§4.1 both omit a field", steps: []step{
			{req: hdr("Foo", "1", "Baz", "789"), reply: reply{header: vary("Foo, Bar, Baz")}, want: fromOrigin},
			{req: hdr("Foo", "1", "Baz", "789"), want: fromCache},
		}},
		{name: "§4.1 Vary: * never matches", steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("*")}, want: fromOrigin},
			{req: hdr("Foo", "1"), want: fromOrigin},
		}},
		{name: "§4.1 Vary: Foo, * never matches", steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("Foo, *")}, want: fromOrigin},
			{req: hdr("Foo", "1"), want: fromOrigin},
		}},
		{name: "§4.1 whitespace normalised", steps: []step{
			{req: hdr("Foo", "1,2"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", " 1, 2 "), want: fromCache},
		}},
		{name: "§4.1 lines combined", steps: []step{
			{req: hdr("Foo", "1, 2"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "1", "Foo", "2"), want: fromCache},
		}},
		{name: "§4.1 variants are bounded", cfg: Config{MaxVariants: 2}, steps: []step{
			{req: hdr("Foo", "1"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "2"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "3"), reply: reply{header: vary("Foo")}, want: fromOrigin},
			{req: hdr("Foo", "3"), want: fromCache},
			{req: hdr("Foo", "2"), want: fromCache},
			{req: hdr("Foo", "1"), want: fromOrigin}, // the oldest was replaced
		}},
	})
}

// TestValidation covers §4.3.1 (sending validation requests), §4.3.2
// (answering conditional requests), §4.3.3 and §4.3.4 (handling 304 and
// freshening stored responses).
func TestValidation(t *testing.T) {
	lm := httpDate(t0.Add(-24 * time.Hour))
	fresh := func(kv ...string) http.Header {
		return hdr(append([]string{"Cache-Control", "max-age=100000", "Date", httpDate(t0)}, kv...)...)
	}
	stale := func(kv ...string) http.Header {
		return hdr(append([]string{"Cache-Control", "max-age=2", "Date", httpDate(t0)}, kv...)...)
	}
	runScenarios(t, []scenario{
		{name: "§4.3.1 If-None-Match sent for a stale response", steps: []step{
			{reply: reply{header: stale("Etag", `"abcdef"`)}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304, header: hdr("Etag", `"abcdef"`)}, want: fromOrigin, status: 200, body: "body-1",
				originHeader: map[string]string{"If-None-Match": `"abcdef"`}, header: map[string]string{"Cache-Status": "lbsys; fwd=stale; fwd-status=304", "X-Cache": "HIT"}},
		}},
		{name: "§4.3.1 weak tag sent as it came", steps: []step{
			{reply: reply{header: stale("Etag", `W/"abcdef"`)}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304}, want: fromOrigin, originHeader: map[string]string{"If-None-Match": `W/"abcdef"`}},
		}},
		{name: "§4.3.1 an unquoted ETag is sent quoted", steps: []step{
			{reply: reply{header: stale("Etag", `abcdef`)}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304}, want: fromOrigin, originHeader: map[string]string{"If-None-Match": `"abcdef"`}},
		}},
		{name: "§4.3.1 If-Modified-Since sent with Last-Modified", steps: []step{
			{reply: reply{header: stale("Last-Modified", lm)}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304}, want: fromOrigin, originHeader: map[string]string{"If-Modified-Since": lm}},
		}},
		{name: "§4.3.1 the selecting fields of Vary are sent with the validation", steps: []step{
			{req: hdr("Abc", "123"), reply: reply{header: stale("Etag", `"abcdef"`, "Vary", "Abc")}, want: fromOrigin},
			{after: 3 * time.Second, req: hdr("Abc", "123"), reply: reply{status: 304}, want: fromOrigin, originHeader: map[string]string{"Abc": "123", "If-None-Match": `"abcdef"`}},
		}},
		{name: "§4.3.1 no validator of another variant is sent", steps: []step{
			{req: hdr("Abc", "123"), reply: reply{header: fresh("Etag", `"abcdef"`, "Vary", "Abc")}, want: fromOrigin},
			{req: hdr("Abc", "456"), want: fromOrigin, originAbsent: []string{"If-None-Match"}},
		}},
		{name: "§4.3.1 a client's If-None-Match is forwarded when nothing is stored", steps: []step{
			{req: hdr("If-None-Match", `"abcdef"`), reply: reply{status: 304}, want: fromOrigin, status: 304, originHeader: map[string]string{"If-None-Match": `"abcdef"`}},
		}},
		{name: "§4.3.2 If-None-Match answered from a fresh response", steps: []step{
			{reply: reply{header: fresh("Etag", `"abcdef"`)}, want: fromOrigin},
			{req: hdr("If-None-Match", `"abcdef"`), want: fromCache, status: 304, header: map[string]string{"Etag": `"abcdef"`}, absent: []string{"Content-Length"}},
		}},
		{name: "§4.3.2 If-None-Match with several tags", steps: []step{
			{reply: reply{header: fresh("Etag", `"abcdef"`)}, want: fromOrigin},
			{req: hdr("If-None-Match", `"1234", "abcdef", "5678"`), want: fromCache, status: 304},
		}},
		{name: "§4.3.2 weak If-None-Match", steps: []step{
			{reply: reply{header: fresh("Etag", `W/"abcdef"`)}, want: fromOrigin},
			{req: hdr("If-None-Match", `W/"abcdef"`), want: fromCache, status: 304},
		}},
		{name: "§4.3.2 If-None-Match takes precedence over If-Modified-Since", steps: []step{
			{reply: reply{header: fresh("Etag", `"abcdef"`, "Last-Modified", httpDate(t0.Add(-5000*time.Second)))}, want: fromOrigin},
			{req: hdr("If-None-Match", `"abcdef"`, "If-Modified-Since", httpDate(t0.Add(-6000*time.Second))), want: fromCache, status: 304},
		}},
		{name: "§4.3.2 a non-matching If-None-Match gets the whole response", steps: []step{
			{reply: reply{header: fresh("Etag", `"abcdef"`)}, want: fromOrigin},
			{req: hdr("If-None-Match", `"zzz"`), want: fromCache, status: 200, body: "body-1"},
		}},
		{name: "§4.3.2 If-Modified-Since answered from a fresh response", steps: []step{
			{reply: reply{header: fresh("Last-Modified", httpDate(t0.Add(-3000*time.Second)))}, want: fromOrigin},
			{after: 3 * time.Second, req: hdr("If-Modified-Since", httpDate(t0.Add(-2000*time.Second))), want: fromCache, status: 304, header: map[string]string{"Last-Modified": httpDate(t0.Add(-3000 * time.Second))}},
		}},
		{name: "§4.3.2 a stale response is validated before answering If-Modified-Since", steps: []step{
			{reply: reply{header: stale("Last-Modified", httpDate(t0.Add(-3000*time.Second)))}, want: fromOrigin},
			{after: 3 * time.Second, req: hdr("If-Modified-Since", httpDate(t0.Add(-3000*time.Second))), reply: reply{status: 304}, want: fromOrigin, status: 304},
		}},
		{name: "§4.3.4 a 304 updates the returned and the stored fields", steps: []step{
			{reply: reply{header: stale("Etag", `"e1"`, "Test-Header", "A", "Content-Type", "text/plain", "Cache-Control", "max-age=1")}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304, header: hdr("Etag", `"e1"`, "Test-Header", "B", "Content-Type", "text/plain;charset=utf-8", "Cache-Control", "max-age=3600", "Content-Length", "10")},
				want: fromOrigin, status: 200, header: map[string]string{"Test-Header": "B", "Content-Type": "text/plain;charset=utf-8", "Content-Length": "6"}},
			{after: 3 * time.Second, want: fromCache, header: map[string]string{"Test-Header": "B", "Content-Length": "6"}, body: "body-1"},
		}},
		{name: "§4.3.4 stored fields a 304 omits are kept", steps: []step{
			{reply: reply{header: stale("Last-Modified", lm, "Test-Header", "A")}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304, header: hdr("Last-Modified", lm, "Date", httpDate(t0))}, want: fromOrigin, header: map[string]string{"Test-Header": "A"}},
		}},
		{name: "§4.3.4 a 304 for another representation is not used to update", steps: []step{
			{reply: reply{header: stale("Etag", `"e1"`)}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 304, header: hdr("Etag", `"e2"`)}, want: fromOrigin},
			// the cache asked again without conditions, and got a 304 again: passed on.
		}},
		{name: "§4.3.3 a 200 replaces the stored response", steps: []step{
			{reply: reply{header: stale("Etag", `"e1"`)}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{header: hdr("Etag", `"e2"`, "Cache-Control", "max-age=60")}, want: fromOrigin, body: "body-2"},
			{want: fromCache, body: "body-2", header: map[string]string{"Etag": `"e2"`}},
		}},
		{name: "§5.2.2.2 must-revalidate: a stale response is validated", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=2, must-revalidate", "Etag", `"abcd"`)}, want: fromOrigin},
			{want: fromCache},
			{after: 3 * time.Second, reply: reply{status: 304, header: hdr("Etag", `"abcd"`)}, want: fromOrigin, originHeader: map[string]string{"If-None-Match": `"abcd"`}},
		}},
	})
}

// TestServingStale covers §4.2.4 (serving stale responses, and when not
// to) and RFC 5861 (stale-while-revalidate, stale-if-error).
func TestServingStale(t *testing.T) {
	down := reply{err: errors.New("connection reset")}
	scenarios := []scenario{
		{name: "§4.2.4 no stale on error without permission", steps: []step{
			{reply: reply{header: cc("max-age=2")}, want: fromOrigin},
			{after: 3 * time.Second, reply: down, want: fromOrigin, status: http.StatusBadGateway},
		}},
		{name: "RFC 5861 §4 stale-if-error on a connection error", steps: []step{
			{reply: reply{header: cc("max-age=2, stale-if-error=60")}, want: fromOrigin},
			{after: 3 * time.Second, reply: down, want: fromOrigin, status: 200, body: "body-1",
				header: map[string]string{"X-Cache": "STALE", "Cache-Status": "lbsys; fwd=stale; detail=stale-if-error"}},
		}},
		{name: "RFC 5861 §4 stale-if-error on a 500", steps: []step{
			{reply: reply{header: cc("max-age=0, stale-if-error=3600")}, want: fromOrigin},
			{reply: reply{status: 500}, want: fromOrigin, status: 200, body: "body-1",
				header: map[string]string{"Cache-Status": "lbsys; fwd=stale; fwd-status=500; detail=stale-if-error"}},
		}},
		{name: "RFC 5861 §4 not after the window", steps: []step{
			{reply: reply{header: cc("max-age=0, stale-if-error=1")}, want: fromOrigin},
			{after: 3 * time.Second, reply: reply{status: 500}, want: fromOrigin, status: 500},
		}},
		{name: "RFC 5861 §4 request stale-if-error", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=0", "Etag", `"v"`)}, want: fromOrigin},
			{req: cc("stale-if-error=3600"), reply: reply{status: 500}, want: fromOrigin, status: 200},
		}},
		{name: "RFC 5861 §4 request stale-if-error elapsed", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=0", "Etag", `"v"`)}, want: fromOrigin},
			{after: 3 * time.Second, req: cc("stale-if-error=1"), reply: reply{status: 500}, want: fromOrigin, status: 500},
		}},
		{name: "stale_if_error default window", cfg: Config{StaleIfError: time.Minute}, steps: []step{
			{reply: reply{header: cc("max-age=2")}, want: fromOrigin},
			{after: 3 * time.Second, reply: down, want: fromOrigin, status: 200},
		}},
		{name: "§5.2.1.2 request max-stale", steps: []step{
			{reply: reply{header: cc("max-age=1")}, want: fromOrigin},
			{after: 3 * time.Second, req: cc("max-stale=1000"), want: fromCache, header: map[string]string{"X-Cache": "STALE"}},
		}},
	}
	// §4.2.4: these directives forbid stale even when the origin is down.
	for _, d := range []string{"must-revalidate", "proxy-revalidate", "no-cache", "s-maxage=2"} {
		scenarios = append(scenarios, scenario{name: "§4.2.4 never stale with " + d, cfg: Config{StaleIfError: time.Hour}, steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=2, stale-if-error=600, "+d, "Etag", `"x"`)}, want: fromOrigin},
			{after: 3 * time.Second, req: cc("max-stale"), reply: down, want: fromOrigin, status: http.StatusBadGateway},
		}})
	}
	runScenarios(t, scenarios)
}

// TestRequestDirectives covers §5.2.1.
func TestRequestDirectives(t *testing.T) {
	fresh := hdr("Cache-Control", "max-age=100000", "Date", httpDate(t0), "Etag", `"e"`)
	runScenarios(t, []scenario{
		{name: "§5.2.1.1 max-age=0 validates", steps: []step{
			{reply: reply{header: fresh}, want: fromOrigin},
			{after: 3 * time.Second, req: cc("max-age=0"), reply: reply{status: 304}, want: fromOrigin,
				header: map[string]string{"Cache-Status": "lbsys; fwd=stale; fwd-status=304"}},
		}},
		{name: "§5.2.1.1 max-age smaller than the age", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=3600", "Age", "1800")}, want: fromOrigin},
			{req: cc("max-age=600"), want: fromOrigin},
		}},
		{name: "§5.2.1.3 min-fresh", steps: []step{
			{reply: reply{header: cc("max-age=1500")}, want: fromOrigin},
			{req: cc("min-fresh=2000"), want: fromOrigin},
		}},
		{name: "§5.2.1.4 no-cache validates", steps: []step{
			{reply: reply{header: fresh}, want: fromOrigin},
			{req: cc("no-cache"), reply: reply{status: 304}, want: fromOrigin, originHeader: map[string]string{"If-None-Match": `"e"`}},
		}},
		{name: "§5.2.1.4 no-cache forwarded as fwd=request", steps: []step{
			{reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{req: cc("no-cache"), reply: reply{header: cc("max-age=3600")}, want: fromOrigin, header: map[string]string{"Cache-Status": "lbsys; fwd=request; fwd-status=200; stored"}},
		}},
		{name: "§5.2.1.5 no-store: the response is not stored", steps: []step{
			{req: cc("no-store"), reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{want: fromOrigin},
		}},
		{name: "§5.2.1.7 only-if-cached without a stored response: 504", steps: []step{
			{req: cc("only-if-cached"), want: fromCache, status: http.StatusGatewayTimeout},
		}},
		{name: "§5.2.1.7 only-if-cached with a stored response", steps: []step{
			{reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{req: cc("only-if-cached"), want: fromCache, status: 200},
		}},
		{name: "request directives ignored when configured", cfg: Config{IgnoreRequestCacheControl: true}, steps: []step{
			{reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{req: cc("no-cache, max-age=0"), want: fromCache},
		}},
		{name: "Pragma: no-cache in a request does not bypass (RFC 9111 deprecates it)", steps: []step{
			{reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{req: hdr("Pragma", "no-cache"), want: fromCache},
		}},
	})
}

// TestInvalidation covers §4.4.
func TestInvalidation(t *testing.T) {
	fresh := cc("max-age=100000")
	var scenarios []scenario
	for _, m := range []string{"POST", "PUT", "DELETE", "M-SEARCH", "PATCH"} {
		scenarios = append(scenarios,
			scenario{name: "§4.4 " + m + " invalidates the target", steps: []step{
				{reply: reply{header: fresh}, want: fromOrigin},
				{method: m, reply: reply{status: 200}, want: fromOrigin, header: map[string]string{"Cache-Status": "lbsys; fwd=method"}},
				{want: fromOrigin},
			}},
			scenario{name: "§4.4 a failed " + m + " does not invalidate", steps: []step{
				{reply: reply{header: fresh}, want: fromOrigin},
				{method: m, reply: reply{status: 500}, want: fromOrigin},
				{want: fromCache},
			}},
			scenario{name: "§4.4 " + m + " invalidates Location and Content-Location", steps: []step{
				{target: "/a/location_target", reply: reply{header: fresh}, want: fromOrigin},
				{target: "/a/content_location_target", reply: reply{header: fresh}, want: fromOrigin},
				{target: "/a/other", reply: reply{header: fresh}, want: fromOrigin},
				{method: m, target: "/a/r", reply: reply{status: 201, header: hdr("Location", "location_target", "Content-Location", "/a/content_location_target")}, want: fromOrigin},
				{target: "/a/location_target", want: fromOrigin},
				{target: "/a/content_location_target", want: fromOrigin},
				{target: "/a/other", want: fromCache},
			}},
		)
	}
	scenarios = append(scenarios, scenario{name: "§4.4 another host's Location is not invalidated", steps: []step{
		{target: "/x", reply: reply{header: fresh}, want: fromOrigin},
		{method: "POST", reply: reply{status: 200, header: hdr("Location", "http://other.example/x")}, want: fromOrigin},
		{target: "/x", want: fromCache},
	}})
	runScenarios(t, scenarios)
}

// TestCacheStatus covers RFC 9211's Cache-Status values and X-Cache.
func TestCacheStatus(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "miss stored, then hit", steps: []step{
			{reply: reply{header: cc("max-age=60")}, want: fromOrigin, header: map[string]string{"Cache-Status": "lbsys; fwd=uri-miss; fwd-status=200; stored", "X-Cache": "MISS"}},
			{want: fromCache, header: map[string]string{"Cache-Status": "lbsys; hit", "X-Cache": "HIT"}},
		}},
		{name: "not stored: the reason is in detail", steps: []step{
			{reply: reply{header: cc("private")}, want: fromOrigin, header: map[string]string{"Cache-Status": "lbsys; fwd=uri-miss; fwd-status=200; detail=private"}},
		}},
		{name: "an upstream cache's member comes first", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=60", "Cache-Status", "origin-cdn; hit")}, want: fromOrigin,
				header: map[string]string{"Cache-Status": "origin-cdn; hit, lbsys; fwd=uri-miss; fwd-status=200; stored"}},
			{want: fromCache, header: map[string]string{"Cache-Status": "origin-cdn; hit, lbsys; hit"}},
		}},
		{name: "bypass", steps: []step{
			{req: hdr("Authorization", "x"), reply: reply{header: cc("max-age=60")}, want: fromOrigin, header: map[string]string{"Cache-Status": "lbsys; fwd=bypass; detail=authorization"}},
		}},
	})
}

// TestRanges covers serving a single byte range of a stored complete
// response (RFC 9110 §14; RFC 9111 §3.3 is not implemented: partial
// responses are not stored).
func TestRanges(t *testing.T) {
	body := "01234567890"
	runScenarios(t, []scenario{
		{name: "byte range from a stored response", steps: []step{
			{reply: reply{header: hdr("Cache-Control", "max-age=3600", "Etag", `"r"`), body: body}, want: fromOrigin},
			{req: hdr("Range", "bytes=0-1"), want: fromCache, status: 206, body: "01", header: map[string]string{"Content-Range": "bytes 0-1/11", "Content-Length": "2"}},
			{req: hdr("Range", "bytes=1-"), want: fromCache, status: 206, body: "1234567890"},
			{req: hdr("Range", "bytes=-1"), want: fromCache, status: 206, body: "0"},
			{req: hdr("Range", "bytes=20-"), want: fromCache, status: 416, header: map[string]string{"Content-Range": "bytes */11"}},
			{req: hdr("Range", "bytes=0-1,3-4"), want: fromCache, status: 200, body: body},
			{req: hdr("Range", "bytes=0-1", "If-Range", `"other"`), want: fromCache, status: 200, body: body},
			{req: hdr("Range", "bytes=0-1", "If-Range", `"r"`), want: fromCache, status: 206, body: "01"},
		}},
		{name: "a range request with nothing stored goes to the origin as it is", steps: []step{
			{req: hdr("Range", "bytes=0-1"), reply: reply{status: 206, header: hdr("Cache-Control", "max-age=3600", "Content-Range", "bytes 0-1/10"), body: "01"}, want: fromOrigin, status: 206, originHeader: map[string]string{"Range": "bytes=0-1"}},
			{req: hdr("Range", "bytes=0-1"), reply: reply{status: 206, body: "01"}, want: fromOrigin},
		}},
	})
}

// TestHEAD: a HEAD is answered from a stored GET response (§4: the
// response to HEAD is the GET response without content).
func TestHEAD(t *testing.T) {
	runScenarios(t, []scenario{
		{name: "HEAD from a stored GET", steps: []step{
			{reply: reply{header: cc("max-age=3600"), body: "hello"}, want: fromOrigin},
			{method: "HEAD", want: fromCache, status: 200, header: map[string]string{"Content-Length": "5"}},
		}},
		{name: "HEAD with nothing stored is forwarded", steps: []step{
			{method: "HEAD", reply: reply{header: cc("max-age=3600")}, want: fromOrigin},
			{want: fromOrigin},
		}},
	})
}
