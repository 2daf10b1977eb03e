package rfc9111

import (
	"testing"
	"time"
)

// TestEvaluate covers §4 (reuse of a fresh response), §4.2.4 (serving stale,
// must-revalidate, proxy-revalidate, s-maxage), §5.2.2.4 (no-cache), §5.2.1
// (request max-age, min-fresh, max-stale, no-cache) and RFC 5861
// (stale-while-revalidate, stale-if-error).
func TestEvaluate(t *testing.T) {
	type tc struct {
		name      string
		resp      string // response Cache-Control
		req       string // request Cache-Control
		after     time.Duration
		policySIE time.Duration
		action    Action
		byRequest bool
		sie       bool
	}
	tests := []tc{
		{"§4 fresh", "max-age=60", "", 10 * time.Second, 0, Serve, false, false},
		{"§4.2.1 max-age=0 is stale at once", "max-age=0", "", 0, 0, Validate, false, false},
		{"stale", "max-age=60", "", 61 * time.Second, 0, Validate, false, false},
		{"§5.2.2.4 no-cache validates even fresh", "max-age=60, no-cache", "", 0, 0, Validate, false, false},
		{"§5.2.2.4 no-cache never served on error", "max-age=60, no-cache, stale-if-error=600", "", 0, 0, Validate, false, false},
		{"§5.2.1.4 request no-cache", "max-age=60", "no-cache", 0, 0, Validate, true, true},
		{"§5.2.1.1 request max-age=0", "max-age=60", "max-age=0", time.Second, 0, Validate, true, true},
		{"§5.2.1.1 request max-age larger than age", "max-age=60", "max-age=30", 10 * time.Second, 0, Serve, false, false},
		{"§5.2.1.3 min-fresh not met", "max-age=60", "min-fresh=55", 10 * time.Second, 0, Validate, true, true},
		{"§5.2.1.3 min-fresh met", "max-age=60", "min-fresh=30", 10 * time.Second, 0, Serve, false, false},
		{"§5.2.1.2 max-stale accepts", "max-age=1", "max-stale=1000", 10 * time.Second, 0, ServeStale, false, false},
		{"§5.2.1.2 max-stale too small", "max-age=1", "max-stale=5", 10 * time.Second, 0, Validate, false, false},
		{"§5.2.1.2 bare max-stale", "max-age=1", "max-stale", time.Hour, 0, ServeStale, false, false},
		{"§4.2.4 must-revalidate beats max-stale", "max-age=1, must-revalidate", "max-stale", time.Hour, 0, Validate, false, false},
		{"§5.2.2.8 proxy-revalidate binds a shared cache", "max-age=1, proxy-revalidate, stale-if-error=600", "", 10 * time.Second, 0, Validate, false, false},
		{"§5.2.2.10 s-maxage implies proxy-revalidate", "s-maxage=1, stale-while-revalidate=600", "", 10 * time.Second, 0, Validate, false, false},
		{"must-revalidate never stale on error", "max-age=1, must-revalidate", "", 10 * time.Second, time.Hour, Validate, false, false},
		{"RFC 5861 §3 within stale-while-revalidate", "max-age=1, stale-while-revalidate=60", "", 30 * time.Second, 0, ServeStaleRevalidate, false, false},
		{"RFC 5861 §3 past the window", "max-age=1, stale-while-revalidate=4", "", 6 * time.Second, 0, Validate, false, false},
		{"RFC 5861 §4 within stale-if-error", "max-age=0, stale-if-error=60", "", 30 * time.Second, 0, Validate, false, true},
		{"RFC 5861 §4 past stale-if-error", "max-age=0, stale-if-error=1", "", 3 * time.Second, 0, Validate, false, false},
		{"RFC 5861 §4 request stale-if-error", "max-age=0", "stale-if-error=3600", 3 * time.Second, 0, Validate, false, true},
		{"RFC 5861 §4 request stale-if-error elapsed", "max-age=0", "stale-if-error=1", 3 * time.Second, time.Hour, Validate, false, false},
		{"policy default window", "max-age=0", "", 3 * time.Second, 10 * time.Second, Validate, false, true},
		{"policy default window elapsed", "max-age=0", "", 30 * time.Second, 10 * time.Second, Validate, false, false},
		{"response window beats the policy default", "max-age=0, stale-if-error=1", "", 3 * time.Second, time.Hour, Validate, false, false},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			p := testPolicy
			p.StaleIfError = c.policySIE
			x := exchange(200, Header{"Cache-Control": {c.resp}, "Etag": {`"v"`}, "Date": {date(0)}}, nil)
			x.RequestTime = t0
			a := Analyze(x, &p)
			s := NewStored(x, &a)
			req := NoDirectives
			if c.req != "" {
				req = ParseCacheControl([]string{c.req})
			}
			v := Evaluate(&s, &req, t0.Add(c.after), &p)
			if v.Action != c.action || v.ByRequest != c.byRequest || v.StaleIfError != c.sie {
				t.Errorf("got %s byRequest=%v sie=%v, want %s %v %v", v.Action, v.ByRequest, v.StaleIfError, c.action, c.byRequest, c.sie)
			}
		})
	}
}

// TestAgeOverLifetime: a response whose Age already exceeds its lifetime is
// stale on arrival (§4.2.3 applied to §4.2.1).
func TestAgeOverLifetime(t *testing.T) {
	x := exchange(200, Header{"Cache-Control": {"max-age=10"}, "Age": {"15"}, "Date": {date(0)}}, nil)
	a := Analyze(x, &testPolicy)
	s := NewStored(x, &a)
	if v := Evaluate(&s, &NoDirectives, t0, &testPolicy); v.Action != Validate {
		t.Errorf("got %s, want validate", v.Action)
	}
	x = exchange(200, Header{"Expires": {date(10 * time.Second)}, "Date": {date(-10 * time.Second)}, "Age": {"25"}}, nil)
	a = Analyze(x, &testPolicy)
	s = NewStored(x, &a)
	if v := Evaluate(&s, &NoDirectives, t0, &testPolicy); v.Action != Validate {
		t.Errorf("Expires: got %s, want validate", v.Action)
	}
}

func TestRetention(t *testing.T) {
	s := Stored{Lifetime: time.Minute, CorrectedInitialAge: 10 * time.Second, StaleWhileRevalidate: 5 * time.Minute, StaleIfError: -1}
	if got := s.Retention(&testPolicy, time.Minute); got != 50*time.Second+5*time.Minute {
		t.Errorf("retention %v", got)
	}
	s.MustRevalidate = true
	if got := s.Retention(&testPolicy, time.Minute); got != 50*time.Second+time.Minute {
		t.Errorf("must-revalidate: retention %v, want only keep", got)
	}
}

func TestEvaluateDoesNotAllocate(t *testing.T) {
	s := Stored{ResponseTime: t0, Lifetime: time.Minute, StaleWhileRevalidate: -1, StaleIfError: -1}
	req := NoDirectives
	if n := testing.AllocsPerRun(100, func() { Evaluate(&s, &req, t0, &testPolicy) }); n != 0 {
		t.Errorf("Evaluate allocates %v times per call", n)
	}
}
