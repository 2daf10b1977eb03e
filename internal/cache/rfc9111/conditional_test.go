package rfc9111

import (
	"testing"
	"time"
)

// TestNotModified covers §4.3.2 (a cache answering conditional requests) and
// RFC 9110 §13.1.2–13.1.3, §13.2.2 (If-None-Match precedence, weak
// comparison, If-Modified-Since against Last-Modified or Date).
func TestNotModified(t *testing.T) {
	lm := date(-3000 * time.Second)
	tests := []struct {
		name     string
		req      Header
		etag, lm string
		want     bool
	}{
		{"strong match", Header{"If-None-Match": {`"abcdef"`}}, `"abcdef"`, "", true},
		{"no match", Header{"If-None-Match": {`"zzz"`}}, `"abcdef"`, "", false},
		{"weak matches weakly", Header{"If-None-Match": {`W/"abcdef"`}}, `W/"abcdef"`, "", true},
		{"weak against strong", Header{"If-None-Match": {`W/"abcdef"`}}, `"abcdef"`, "", true},
		{"lower-case weakness flag", Header{"If-None-Match": {`w/"abcdef"`}}, `w/"abcdef"`, "", true},
		{"unquoted request tag", Header{"If-None-Match": {`abcdef`}}, `"abcdef"`, "", true},
		{"unquoted stored tag", Header{"If-None-Match": {`"abcdef"`}}, `abcdef`, "", true},
		{"list, first", Header{"If-None-Match": {`"abcdef", "1234", "5678"`}}, `"abcdef"`, "", true},
		{"list, middle", Header{"If-None-Match": {`"1234", "abcdef", "5678"`}}, `"abcdef"`, "", true},
		{"list over lines", Header{"If-None-Match": {`"1234"`, `"abcdef"`}}, `"abcdef"`, "", true},
		{"star", Header{"If-None-Match": {"*"}}, "", "", true},
		{"obs-text", Header{"If-None-Match": {"\"abcdef\xfc\""}}, "\"abcdef\xfc\"", "", true},
		{"IMS equal to Last-Modified", Header{"If-Modified-Since": {lm}}, "", lm, true},
		{"IMS after Last-Modified", Header{"If-Modified-Since": {date(-2000 * time.Second)}}, "", lm, true},
		{"IMS before Last-Modified", Header{"If-Modified-Since": {date(-4000 * time.Second)}}, "", lm, false},
		{"IMS compared with Date when no Last-Modified", Header{"If-Modified-Since": {date(10 * time.Second)}}, "", "", true},
		{"IMS before Date when no Last-Modified", Header{"If-Modified-Since": {date(-3000 * time.Second)}}, "", "", false},
		{"IMS in RFC 850 form", Header{"If-Modified-Since": {t0.Add(-3000 * time.Second).Format("Monday, 02-Jan-06 15:04:05 GMT")}}, "", lm, true},
		{"invalid IMS ignored", Header{"If-Modified-Since": {"yesterday"}}, "", lm, false},
		{"If-None-Match takes precedence", Header{"If-None-Match": {`"abcdef"`}, "If-Modified-Since": {date(-4000 * time.Second)}}, `"abcdef"`, lm, true},
		{"If-None-Match precedence, no match", Header{"If-None-Match": {`"x"`}, "If-Modified-Since": {date(0)}}, `"abcdef"`, lm, false},
		{"unconditional", Header{}, `"abcdef"`, lm, false},
	}
	for _, tc := range tests {
		if got := NotModified(tc.req, tc.etag, tc.lm, t0, t0); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestQuoteETag(t *testing.T) {
	for in, want := range map[string]string{`abcdef`: `"abcdef"`, `"abcdef"`: `"abcdef"`, `W/"x"`: `W/"x"`, `W/x`: `W/"x"`, `W\"x"`: `W\"x"`, "": ""} {
		if got := QuoteETag(in); got != want {
			t.Errorf("QuoteETag(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUpdateSelects covers §4.3.4 (which stored response a 304 updates).
func TestUpdateSelects(t *testing.T) {
	tests := []struct {
		name     string
		etag, lm string
		resp     Header
		want     bool
	}{
		{"same strong tag", `"a"`, "", Header{"Etag": {`"a"`}}, true},
		{"other strong tag", `"a"`, "", Header{"Etag": {`"b"`}}, false},
		{"strong tag, stored weak", `W/"a"`, "", Header{"Etag": {`"a"`}}, false},
		{"weak tag matches weakly", `W/"a"`, "", Header{"Etag": {`W/"a"`}}, true},
		{"same Last-Modified", "", date(0), Header{"Last-Modified": {date(0)}}, true},
		{"other Last-Modified", "", date(0), Header{"Last-Modified": {date(time.Hour)}}, false},
		{"no validators in the 304", `"a"`, date(0), Header{}, true},
	}
	for _, tc := range tests {
		if got := UpdateSelects(tc.etag, tc.lm, tc.resp); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestUpdateHeader covers §3.2 and §4.3.4 (freshening stored headers with a
// 304) and §3.1 (fields never stored).
func TestUpdateHeader(t *testing.T) {
	stored := Header{"Cache-Control": {"max-age=1"}, "Content-Length": {"36"}, "Test-Header": {"A"}, "Content-Encoding": {"gzip"}, "Content-Md5": {"x"},
		"Content-Type": {"text/plain"}, "Etag": {`"e"`}, "Date": {date(-time.Hour)}}
	fresh := Header{"Cache-Control": {"max-age=3600"}, "Content-Length": {"10"}, "Test-Header": {"B"}, "Content-Encoding": {"br"}, "Content-Md5": {"y"}, "Content-Range": {"bytes 0-1/2"},
		"Content-Type": {"text/plain;charset=utf-8"}, "Date": {date(0)}, "Connection": {"X-Hop"}, "X-Hop": {"1"},
		"Keep-Alive": {"timeout=5"}, "Set-Cookie": {"a=c"}, "Proxy-Authenticate": {"Basic"}}
	before := stored.Clone()
	got := UpdateHeader(stored, fresh, &testPolicy)
	want := Header{"Cache-Control": {"max-age=3600"}, "Content-Length": {"36"}, "Test-Header": {"B"}, "Content-Encoding": {"gzip"}, "Content-Md5": {"x"},
		"Content-Type": {"text/plain;charset=utf-8"}, "Etag": {`"e"`}, "Date": {date(0)}}
	if len(got) != len(want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for k, v := range want {
		if g := got[k]; len(g) != len(v) || g[0] != v[0] {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if stored.Get("Test-Header") != before.Get("Test-Header") {
		t.Error("UpdateHeader modified the stored header in place")
	}
	p := testPolicy
	p.AllowSetCookie = true
	if got := UpdateHeader(stored, fresh, &p); got.Get("Set-Cookie") != "a=c" {
		t.Errorf("allowed Set-Cookie not updated: %q", got)
	}
}

// TestStorableHeader covers §3.1: Connection and the fields it lists,
// hop-by-hop and Proxy-* fields are not stored; §5.2.2.4 and §5.2.2.7:
// fields named by qualified no-cache and private are not stored.
func TestStorableHeader(t *testing.T) {
	h := Header{"Connection": {"a, b"}, "A": {"1"}, "B": {"2"}, "C": {"3"}, "Keep-Alive": {"x"}, "Te": {"x"},
		"Transfer-Encoding": {"chunked"}, "Upgrade": {"x"}, "Proxy-Connection": {"x"}, "Proxy-Authenticate": {"x"},
		"Proxy-Authentication-Info": {"x"}, "Proxy-Authorization": {"x"}, "Age": {"5"},
		"Cache-Control": {`no-cache="D", private="E", max-age=60`}, "D": {"4"}, "E": {"5"}, "Set-Cookie": {"s=1"},
		"Content-Type": {"text/plain"}, "Etag": {`"x"`}, "Public-Key-Pins": {"x"}, "X-Frame-Options": {"deny"}}
	got := StorableHeader(h, &testPolicy)
	for _, k := range []string{"Connection", "A", "B", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade", "Proxy-Connection",
		"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization", "Age", "D", "E", "Set-Cookie"} {
		if got.Has(k) {
			t.Errorf("%s stored", k)
		}
	}
	for _, k := range []string{"C", "Cache-Control", "Content-Type", "Etag", "Public-Key-Pins", "X-Frame-Options"} {
		if !got.Has(k) {
			t.Errorf("%s not stored", k)
		}
	}
}

func FuzzIfNoneMatch(f *testing.F) {
	f.Add(`"a", W/"b", *`, `"b"`)
	f.Add(`w/"x`, `x`)
	f.Fuzz(func(t *testing.T, inm, etag string) {
		got := IfNoneMatch([]string{inm}, etag)
		// A list matches if and only if one of its members matches alone.
		any := false
		for _, m := range Members([]string{inm}) {
			if IfNoneMatch([]string{m}, etag) {
				any = true
			}
		}
		if got != any {
			t.Fatalf("IfNoneMatch(%q, %q) = %v, members say %v", inm, etag, got, any)
		}
		if StrongMatch(inm, etag) && !WeakMatch(inm, etag) {
			t.Fatalf("strong match without weak match: %q %q", inm, etag)
		}
	})
}
