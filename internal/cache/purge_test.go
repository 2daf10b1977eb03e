package cache

import (
	"errors"
	"testing"
)

func TestPurgeRequestValidate(t *testing.T) {
	tests := []struct {
		p  PurgeRequest
		ok bool
	}{
		{PurgeRequest{Path: "/a"}, true},
		{PurgeRequest{Prefix: "/a"}, true},
		{PurgeRequest{Tag: "products"}, true},
		{PurgeRequest{}, false},
		{PurgeRequest{Path: "/a", Tag: "x"}, false},
		{PurgeRequest{Path: "a"}, false},
		{PurgeRequest{Prefix: "a"}, false},
		{PurgeRequest{Tag: "a b"}, false},
	}
	for _, tc := range tests {
		err := tc.p.Validate()
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadPurge) {
			t.Errorf("%+v: %v", tc.p, err)
		}
	}
}

// TestPurge: by exact URL (all variants), by prefix on segment boundaries,
// by tag, narrowed by route and host.
func TestPurge(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{TagHeader: "Cache-Tag"})
	other, err := e.c.Route("other", RouteConfig{Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	tagged := fixed(200, hdr("Cache-Control", "max-age=600", "Cache-Tag", "sale, shoes", "Vary", "Accept-Language"), "x")
	fill := func() {
		for _, p := range []string{"/products/1", "/products/2?x=1", "/productsale", "/other"} {
			e.get(tagged, p, hdr("Accept-Language", "en"))
			e.get(tagged, p, hdr("Accept-Language", "fr"))
			e.c.Serve(newRecorder(), req("GET", p, nil), other, tagged)
		}
	}
	cached := func(rt *Route, path string) bool {
		_, ok := e.c.store.GetIfPresent(e.c.key(rt, req("GET", path, nil)))
		return ok
	}
	tests := []struct {
		name string
		p    PurgeRequest
		n    int
		gone []string // on route shop
		kept []string
	}{
		{"path, all variants, every route", PurgeRequest{Path: "/products/1"}, 2, []string{"/products/1"}, []string{"/products/2?x=1"}},
		{"path with query", PurgeRequest{Path: "/products/2?x=1", Route: "shop", Host: "SHOP.example"}, 1, []string{"/products/2?x=1"}, []string{"/products/1"}},
		{"prefix on segment boundaries", PurgeRequest{Prefix: "/products", Route: "shop"}, 2, []string{"/products/1", "/products/2?x=1"}, []string{"/productsale"}},
		{"tag", PurgeRequest{Tag: "shoes", Route: "shop"}, 4, []string{"/products/1", "/productsale", "/other"}, nil},
		{"another host", PurgeRequest{Prefix: "/", Host: "elsewhere.example"}, 0, nil, []string{"/products/1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.c.store.InvalidateAll()
			fill()
			n, err := e.c.Purge(tc.p)
			if err != nil || n != tc.n {
				t.Fatalf("purged %d (%v), want %d", n, err, tc.n)
			}
			for _, p := range tc.gone {
				if cached(e.rt, p) {
					t.Errorf("%s still cached", p)
				}
			}
			for _, p := range tc.kept {
				if !cached(e.rt, p) {
					t.Errorf("%s purged", p)
				}
			}
		})
	}
	if e.c.Metrics().Purged() == 0 {
		t.Error("purges not counted")
	}
}
