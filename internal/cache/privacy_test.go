package cache

import (
	"net/http"
	"strings"
	"testing"
)

// userOrigin answers with the requesting user's identity in the body (from
// Authorization or Cookie) and the given header, as a personalised page
// would.
func userOrigin(header http.Header) *fakeOrigin {
	return newOrigin(func(r *http.Request, n int) reply {
		who := r.Header.Get("Authorization")
		if who == "" {
			who = r.Header.Get("Cookie")
		}
		h := header.Clone()
		if h.Get("Set-Cookie") == "session" {
			h.Set("Set-Cookie", "session="+who)
		}
		return reply{header: h, body: "page for " + who}
	})
}

// TestPrivateResponsesNeverReachAnotherUser: a response to a request with
// Authorization, and a response with Set-Cookie, are never served to
// another user, whatever the freshness the origin gives them (RFC 9111
// §3.5, §5.2.2.7, and lbsys's Set-Cookie policy).
func TestPrivateResponsesNeverReachAnotherUser(t *testing.T) {
	tests := []struct {
		name   string
		route  RouteConfig
		header http.Header
		first  http.Header // user A's request
	}{
		{"Authorization, default route", RouteConfig{}, cc("max-age=3600, public"), hdr("Authorization", "Bearer alice")},
		{"Authorization allowed, but not marked shareable", RouteConfig{AllowAuthorization: true}, cc("max-age=3600"), hdr("Authorization", "Bearer alice")},
		{"Authorization allowed, private", RouteConfig{AllowAuthorization: true}, cc("private, s-maxage=3600"), hdr("Authorization", "Bearer alice")},
		{"Set-Cookie", RouteConfig{}, hdr("Cache-Control", "max-age=3600, public", "Set-Cookie", "session"), hdr("Cookie", "alice")},
		{"Set-Cookie with s-maxage", RouteConfig{}, hdr("Cache-Control", "s-maxage=3600", "Set-Cookie", "session"), hdr("Cookie", "alice")},
		{"Set-Cookie, Authorization allowed", RouteConfig{AllowAuthorization: true}, hdr("Cache-Control", "public, max-age=60", "Set-Cookie", "session"), hdr("Authorization", "Bearer alice")},
		{"private", RouteConfig{}, cc("private, max-age=3600"), hdr("Cookie", "alice")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{}, tc.route)
			o := userOrigin(tc.header)
			a := e.get(o, "/account", tc.first)
			if !strings.Contains(a.Body.String(), "alice") {
				t.Fatalf("alice got %q", a.Body.String())
			}
			for _, bob := range []http.Header{nil, hdr("Cookie", "bob"), hdr("Authorization", "Bearer bob")} {
				b := e.get(o, "/account", bob)
				if strings.Contains(b.Body.String(), "alice") {
					t.Fatalf("another user (%v) was served alice's response: %q", bob, b.Body.String())
				}
				for _, c := range b.Header().Values("Set-Cookie") {
					if strings.Contains(c, "alice") {
						t.Fatalf("another user (%v) was given alice's cookie %q", bob, c)
					}
				}
			}
		})
	}
}

// TestCookieStrippedWhenOriginNamesIt: with no-cache="Set-Cookie" the
// response is shared, its cookie never.
func TestCookieStrippedWhenOriginNamesIt(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	o := userOrigin(hdr("Cache-Control", `max-age=3600, no-cache="Set-Cookie"`, "Set-Cookie", "session"))
	a := e.get(o, "/home", hdr("Cookie", "alice"))
	if a.Header().Get("Set-Cookie") != "session=alice" {
		t.Fatalf("alice's own response lost her cookie: %q", a.Header())
	}
	b := e.get(o, "/home", hdr("Cookie", "bob"))
	if b.Header().Get("X-Cache") != "HIT" || b.Header().Values("Set-Cookie") != nil {
		t.Fatalf("bob: %q, cookies %q", b.Header().Get("X-Cache"), b.Header().Values("Set-Cookie"))
	}
}
