package rfc9111

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func date(offset time.Duration) string { return FormatHTTPDate(t0.Add(offset)) }

var testPolicy = Policy{HeuristicFraction: 0.1, MaxHeuristic: 24 * time.Hour, MaxVaryFields: 8}

// exchange builds a GET exchange received at t0 after a 100 ms round trip.
func exchange(status int, resp Header, req Header) *Exchange {
	if req == nil {
		req = Header{}
	}
	return &Exchange{Method: "GET", ReqHeader: req, Status: status, RespHeader: resp,
		RequestTime: t0.Add(-100 * time.Millisecond), ResponseTime: t0, ContentLength: -1}
}

// TestStorable covers §3 (storing responses), §3.5 (Authorization), §5.2.2
// (no-store, private, must-understand), §4.1 (Vary: *) and lbsys's own
// Set-Cookie and size policy.
func TestStorable(t *testing.T) {
	auth := Header{"Authorization": {"Bearer x"}}
	tests := []struct {
		name   string
		method string
		status int
		resp   Header
		req    Header
		policy func(*Policy)
		want   string // "" = storable
	}{
		{"§3 max-age", "GET", 200, Header{"Cache-Control": {"max-age=60"}}, nil, nil, ""},
		{"§3 HEAD is not stored", "HEAD", 200, Header{"Cache-Control": {"max-age=60"}}, nil, nil, ReasonMethod},
		{"§3 POST is not stored", "POST", 200, Header{"Cache-Control": {"max-age=60"}}, nil, nil, ReasonMethod},
		{"§3 206 is not stored", "GET", 206, Header{"Cache-Control": {"max-age=60"}}, nil, nil, ReasonStatus},
		{"§3 1xx is not final", "GET", 103, Header{"Cache-Control": {"max-age=60"}}, nil, nil, ReasonStatus},
		{"§5.2.2.5 no-store", "GET", 200, Header{"Cache-Control": {"max-age=60, no-store"}}, nil, nil, ReasonNoStore},
		{"§5.2.2.3 must-understand overrides no-store for a known code", "GET", 200, Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, nil, nil, ""},
		{"§5.2.2.3 must-understand with an unknown code", "GET", 299, Header{"Cache-Control": {"max-age=60, no-store, must-understand"}}, nil, nil, ReasonStatus},
		{"§5.2.2.7 private", "GET", 200, Header{"Cache-Control": {"private, max-age=3600"}}, nil, nil, ReasonPrivate},
		{"§5.2.2.7 private=field stores the rest", "GET", 200, Header{"Cache-Control": {`private="X-User", max-age=3600`}}, nil, nil, ""},
		{"§3.5 Authorization, not allowed by policy", "GET", 200, Header{"Cache-Control": {"public, max-age=60"}}, auth, nil, ReasonAuthorization},
		{"§3.5 Authorization with public, allowed", "GET", 200, Header{"Cache-Control": {"public, max-age=60"}}, auth, func(p *Policy) { p.AllowAuthorization = true }, ""},
		{"§3.5 Authorization with s-maxage, allowed", "GET", 200, Header{"Cache-Control": {"s-maxage=60"}}, auth, func(p *Policy) { p.AllowAuthorization = true }, ""},
		{"§3.5 Authorization with must-revalidate, allowed", "GET", 200, Header{"Cache-Control": {"max-age=60, must-revalidate"}}, auth, func(p *Policy) { p.AllowAuthorization = true }, ""},
		{"§3.5 Authorization with only max-age", "GET", 200, Header{"Cache-Control": {"max-age=60"}}, auth, func(p *Policy) { p.AllowAuthorization = true }, ReasonAuthorization},
		{"§3.5 Authorization with only Expires", "GET", 200, Header{"Expires": {date(time.Hour)}, "Date": {date(0)}}, auth, func(p *Policy) { p.AllowAuthorization = true }, ReasonAuthorization},
		{"Set-Cookie refused by default", "GET", 200, Header{"Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b"}}, nil, nil, ReasonSetCookie},
		{"Set-Cookie2 too", "GET", 200, Header{"Cache-Control": {"max-age=60"}, "Set-Cookie2": {"a=b"}}, nil, nil, ReasonSetCookie},
		{"Set-Cookie allowed by policy", "GET", 200, Header{"Cache-Control": {"max-age=60"}, "Set-Cookie": {"a=b"}}, nil, func(p *Policy) { p.AllowSetCookie = true }, ""},
		{"Set-Cookie the origin named in no-cache=", "GET", 200, Header{"Cache-Control": {`max-age=60, no-cache="Set-Cookie"`}, "Set-Cookie": {"a=b"}}, nil, nil, ""},
		{"Set-Cookie the origin named in private=", "GET", 200, Header{"Cache-Control": {`max-age=60, private="set-cookie"`}, "Set-Cookie": {"a=b"}}, nil, nil, ""},
		{"§4.1 Vary: *", "GET", 200, Header{"Cache-Control": {"max-age=60"}, "Vary": {"Foo, *"}}, nil, nil, ReasonVaryStar},
		{"too many Vary fields", "GET", 200, Header{"Cache-Control": {"max-age=60"}, "Vary": {"A,B,C,D,E,F,G,H,I"}}, nil, nil, ReasonVaryTooMany},
		{"trailer", "GET", 200, Header{"Cache-Control": {"max-age=60"}, "Trailer": {"X-Sum"}}, nil, nil, ReasonTrailer},
		{"§3 201 without explicit freshness", "GET", 201, Header{"Last-Modified": {date(-time.Hour)}}, nil, nil, ReasonNotCacheable},
		{"§3 503 without explicit freshness", "GET", 503, Header{"Last-Modified": {date(-time.Hour)}}, nil, nil, ReasonNotCacheable},
		{"§3 599 with public is heuristically cacheable", "GET", 599, Header{"Cache-Control": {"public"}, "Last-Modified": {date(-time.Hour)}}, nil, nil, ""},
		{"§3 500 with explicit freshness", "GET", 500, Header{"Cache-Control": {"max-age=60"}}, nil, nil, ""},
		{"nothing to reuse", "GET", 200, Header{}, nil, nil, ReasonNoFreshness},
		{"stale but validatable", "GET", 200, Header{"Cache-Control": {"max-age=0"}, "Etag": {`"x"`}}, nil, nil, ""},
		{"no-cache without a validator", "GET", 200, Header{"Cache-Control": {"max-age=60, no-cache"}}, nil, nil, ReasonNoFreshness},
		{"no-cache with a validator", "GET", 200, Header{"Cache-Control": {"no-cache"}, "Etag": {`"x"`}}, nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy
			if tc.policy != nil {
				tc.policy(&p)
			}
			x := exchange(tc.status, tc.resp, tc.req)
			x.Method = tc.method
			a := Analyze(x, &p)
			if a.NotStored != tc.want || a.Storable != (tc.want == "") {
				t.Errorf("not stored %q (storable %v), want %q", a.NotStored, a.Storable, tc.want)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	p := testPolicy
	p.MaxObjectBytes = 100
	x := exchange(200, Header{"Cache-Control": {"max-age=60"}}, nil)
	x.ContentLength = 101
	if a := Analyze(x, &p); a.NotStored != ReasonTooLarge {
		t.Errorf("got %q, want too-large", a.NotStored)
	}
	x.ContentLength = 100
	if a := Analyze(x, &p); !a.Storable {
		t.Errorf("at the limit: got %q", a.NotStored)
	}
}

// TestLifetime covers §4.2.1 (shared cache: s-maxage, then max-age, then
// Expires − Date) and §4.2.2 (heuristics only where allowed).
func TestLifetime(t *testing.T) {
	tests := []struct {
		name   string
		status int
		resp   Header
		req    Header
		hint   time.Duration
		want   time.Duration
		from   string
	}{
		{"s-maxage beats longer max-age", 200, Header{"Cache-Control": {"max-age=3600, s-maxage=1"}}, nil, 0, time.Second, "s-maxage"},
		{"s-maxage beats shorter max-age", 200, Header{"Cache-Control": {"max-age=1, s-maxage=3600"}}, nil, 0, time.Hour, "s-maxage"},
		{"s-maxage on another line", 200, Header{"Cache-Control": {"max-age=3600", "s-maxage=1"}}, nil, 0, time.Second, "s-maxage"},
		{"max-age beats past Expires", 200, Header{"Cache-Control": {"max-age=3600"}, "Expires": {date(-time.Hour)}, "Date": {date(0)}}, nil, 0, time.Hour, "max-age"},
		{"max-age beats invalid Expires", 200, Header{"Cache-Control": {"max-age=3600"}, "Expires": {"0"}}, nil, 0, time.Hour, "max-age"},
		{"max-age=0 beats future Expires", 200, Header{"Cache-Control": {"max-age=0"}, "Expires": {date(time.Hour)}}, nil, 0, 0, "max-age"},
		{"invalid max-age is stale", 200, Header{"Cache-Control": {"max-age=a100"}, "Last-Modified": {date(-240 * time.Hour)}}, nil, 0, 0, "max-age"},
		{"Expires − Date", 200, Header{"Expires": {date(30 * time.Minute)}, "Date": {date(-10 * time.Minute)}}, nil, 0, 40 * time.Minute, "expires"},
		{"Expires before Date", 200, Header{"Expires": {date(5 * time.Minute)}, "Date": {date(6 * time.Minute)}}, nil, 0, 0, "expires"},
		{"invalid Expires is expired", 200, Header{"Expires": {"0"}, "Last-Modified": {date(-240 * time.Hour)}}, nil, 0, 0, "expires"},
		{"Expires with invalid Date uses response time", 200, Header{"Expires": {date(10 * time.Second)}, "Date": {"foo"}}, nil, 0, 10 * time.Second, "expires"},
		{"§4.2.2 10% of Date − Last-Modified", 200, Header{"Last-Modified": {date(-10 * time.Hour)}, "Date": {date(0)}}, nil, 0, time.Hour, "heuristic"},
		{"§4.2.2 capped", 200, Header{"Last-Modified": {date(-1000 * time.Hour)}, "Date": {date(0)}}, nil, 0, 24 * time.Hour, "heuristic"},
		{"§4.2.2 not for 201", 201, Header{"Last-Modified": {date(-10 * time.Hour)}}, nil, 0, 0, "none"},
		{"§4.2.2 599 with public", 599, Header{"Cache-Control": {"public"}, "Last-Modified": {date(-10 * time.Hour)}, "Date": {date(0)}}, nil, 0, time.Hour, "heuristic"},
		{"§4.2.2 no Last-Modified, no heuristic", 200, Header{}, nil, 0, 0, "none"},
		{"TTL hint replaces a heuristic", 200, Header{"Last-Modified": {date(-10 * time.Hour)}}, nil, 5 * time.Minute, 5 * time.Minute, "ttl-hint"},
		{"TTL hint without Last-Modified", 200, Header{}, nil, 5 * time.Minute, 5 * time.Minute, "ttl-hint"},
		{"TTL hint never beats max-age", 200, Header{"Cache-Control": {"max-age=10"}}, nil, time.Hour, 10 * time.Second, "max-age"},
		{"TTL hint never beats s-maxage", 200, Header{"Cache-Control": {"s-maxage=0"}}, nil, time.Hour, 0, "s-maxage"},
		{"TTL hint never beats Expires", 200, Header{"Expires": {"0"}}, nil, time.Hour, 0, "expires"},
		{"TTL hint not for no-cache", 200, Header{"Cache-Control": {"no-cache"}, "Etag": {`"a"`}}, nil, time.Hour, 0, "none"},
		{"TTL hint not for private", 200, Header{"Cache-Control": {"private"}}, nil, time.Hour, 0, "none"},
		{"TTL hint not for Set-Cookie", 200, Header{"Set-Cookie": {"a=b"}, "Cache-Control": {`no-cache="Set-Cookie"`}}, nil, time.Hour, 0, "none"},
		{"TTL hint not for Authorization", 200, Header{"Cache-Control": {"public"}}, Header{"Authorization": {"x"}}, time.Hour, 0, "none"},
		{"TTL hint not for 503", 503, Header{}, nil, time.Hour, 0, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy
			p.TTLHint = tc.hint
			a := Analyze(exchange(tc.status, tc.resp, tc.req), &p)
			if a.Lifetime != tc.want || a.LifetimeFrom != tc.from {
				t.Errorf("lifetime %v from %q, want %v from %q", a.Lifetime, a.LifetimeFrom, tc.want, tc.from)
			}
		})
	}
}

// TestAge covers §4.2.3 (apparent age, corrected Age, response delay) and
// §5.1 (Age parsing).
func TestAge(t *testing.T) {
	tests := []struct {
		name string
		resp Header
		want time.Duration
	}{
		{"no Date, no Age: the response delay", Header{}, 100 * time.Millisecond},
		{"Age corrected by the delay", Header{"Age": {"15"}, "Date": {date(0)}}, 15*time.Second + 100*time.Millisecond},
		{"apparent age from a slow Date", Header{"Date": {date(-20 * time.Second)}}, 20 * time.Second},
		{"larger of apparent and corrected", Header{"Date": {date(-10 * time.Second)}, "Age": {"25"}}, 25*time.Second + 100*time.Millisecond},
		{"Date in the future gives apparent 0", Header{"Date": {date(10 * time.Second)}, "Age": {"15"}}, 15*time.Second + 100*time.Millisecond},
		{"Age with spaces", Header{"Age": {" 30 "}}, 30*time.Second + 100*time.Millisecond},
	}
	for _, tc := range tests {
		a := Analyze(exchange(200, tc.resp, nil), &testPolicy)
		if a.CorrectedInitialAge != tc.want {
			t.Errorf("%s: corrected initial age %v, want %v", tc.name, a.CorrectedInitialAge, tc.want)
		}
	}
	// §4.2.1: a response whose Age cannot be read is stale.
	for _, age := range [][]string{{"abc"}, {"-7200"}, {"7200.0"}, {"7200,0"}, {"0, 0"}, {"0", "0"}, {"30", "0"}, {"7200;foo=bar"}} {
		a := Analyze(exchange(200, Header{"Age": age, "Cache-Control": {"max-age=3600"}}, nil), &testPolicy)
		if a.Lifetime != 0 || a.LifetimeFrom != "invalid-age" {
			t.Errorf("Age %q: lifetime %v from %q, want stale", age, a.Lifetime, a.LifetimeFrom)
		}
	}
	s := Stored{ResponseTime: t0, CorrectedInitialAge: 30 * time.Second}
	if got := s.CurrentAge(t0.Add(5 * time.Second)); got != 35*time.Second {
		t.Errorf("current age = %v, want resident time added: 35s", got)
	}
}

func FuzzAnalyze(f *testing.F) {
	f.Add("max-age=60, stale-while-revalidate=30", date(time.Hour), date(0), date(-time.Hour), "5", "Accept-Encoding", 200)
	f.Add(`no-cache="Set-Cookie", s-maxage=99999999999`, "0", "foo", "", "abc", "*", 599)
	f.Fuzz(func(t *testing.T, cc, expires, dateV, lm, age, vary string, status int) {
		x := exchange(status, Header{"Cache-Control": {cc}, "Expires": {expires}, "Date": {dateV},
			"Last-Modified": {lm}, "Age": {age}, "Vary": {vary}}, nil)
		a := Analyze(x, &testPolicy)
		if a.Lifetime < 0 || a.CorrectedInitialAge < 0 {
			t.Fatalf("negative lifetime or age: %+v", a)
		}
		if a.Storable == (a.NotStored != "") {
			t.Fatalf("storable %v with reason %q", a.Storable, a.NotStored)
		}
		s := NewStored(x, &a)
		v := Evaluate(&s, &NoDirectives, t0.Add(time.Minute), &testPolicy)
		if v.Action == Serve && s.Lifetime <= v.Age {
			t.Fatalf("served a stale response as fresh: %+v %+v", s, v)
		}
	})
}
