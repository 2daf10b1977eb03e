package rfc9111

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// TestInvalidates covers §4.4: unsafe (and unknown) methods with a
// non-error status invalidate.
func TestInvalidates(t *testing.T) {
	tests := []struct {
		method string
		status int
		want   bool
	}{
		{"POST", 200, true}, {"PUT", 201, true}, {"DELETE", 204, true}, {"PATCH", 303, true},
		{"M-SEARCH", 200, true}, // unknown: unsafe
		{"POST", 500, false}, {"POST", 404, false}, {"POST", 100, false},
		{"GET", 200, false}, {"HEAD", 200, false}, {"OPTIONS", 200, false}, {"TRACE", 200, false},
	}
	for _, tc := range tests {
		if got := Invalidates(tc.method, tc.status); got != tc.want {
			t.Errorf("Invalidates(%s, %d) = %v", tc.method, tc.status, got)
		}
	}
}

// TestInvalidationTargets covers §4.4: Location and Content-Location of the
// same origin, resolved against the target; another origin is left alone.
func TestInvalidationTargets(t *testing.T) {
	target, _ := url.Parse("http://shop.example:8080/cart/items?x=1")
	tests := []struct {
		name string
		h    Header
		want []string
	}{
		{"target only", Header{}, []string{"http://shop.example:8080/cart/items?x=1"}},
		{"relative Location", Header{"Location": {"location_target"}}, []string{"http://shop.example:8080/cart/items?x=1", "http://shop.example:8080/cart/location_target"}},
		{"absolute path Content-Location", Header{"Content-Location": {"/cart"}}, []string{"http://shop.example:8080/cart/items?x=1", "http://shop.example:8080/cart"}},
		{"both", Header{"Location": {"/a"}, "Content-Location": {"/b"}}, []string{"http://shop.example:8080/cart/items?x=1", "http://shop.example:8080/a", "http://shop.example:8080/b"}},
		{"other host ignored", Header{"Location": {"http://evil.example:8080/cart"}}, []string{"http://shop.example:8080/cart/items?x=1"}},
		{"other port ignored", Header{"Location": {"http://shop.example:9090/cart"}}, []string{"http://shop.example:8080/cart/items?x=1"}},
		{"other scheme ignored", Header{"Location": {"https://shop.example:8080/cart"}}, []string{"http://shop.example:8080/cart/items?x=1"}},
		{"unparsable ignored", Header{"Location": {"http://[::1"}}, []string{"http://shop.example:8080/cart/items?x=1"}},
	}
	for _, tc := range tests {
		got := InvalidationTargets(target, tc.h)
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i].String() != tc.want[i] {
				t.Errorf("%s: [%d] = %s, want %s", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

func FuzzInvalidationTargets(f *testing.F) {
	f.Add("/a/b?c", "../x", "http://shop.example:8080/y")
	f.Add("/", "//evil.example/", "%zz")
	f.Fuzz(func(t *testing.T, target, location, contentLocation string) {
		u, err := url.Parse("http://shop.example:8080" + target)
		if err != nil {
			return
		}
		got := InvalidationTargets(u, Header{"Location": {location}, "Content-Location": {contentLocation}})
		if len(got) == 0 || got[0] != u || len(got) > 3 {
			t.Fatalf("targets %v", got)
		}
		for _, g := range got[1:] {
			if !sameOrigin(g, u) {
				t.Fatalf("%q / %q: invalidates another origin: %v", location, contentLocation, g)
			}
		}
	})
}

// TestLinkTargets covers the Link field syntax of RFC 8288 §3 as far as
// linked cache invalidation reads it: references in angle brackets, the
// first rel parameter (token or quoted, several relation types,
// case-insensitive), malformed links skipped without losing the next.
func TestLinkTargets(t *testing.T) {
	tests := []struct {
		line string
		max  int
		want []string
	}{
		{`</a>; rel="invalidates"`, 10, []string{"/a"}},
		{`</a>;rel=invalidates`, 10, []string{"/a"}},
		{`</a> ; REL = "Invalidates"`, 10, []string{"/a"}},
		{`</a>; rel="next invalidates"`, 10, []string{"/a"}},
		{`</a>; rel="next"`, 10, nil},
		{`</a>; rel="next", </b>; rel="invalidates"`, 10, []string{"/b"}},
		{`</a>; title="x, y; rel=invalidates"; rel=invalidates, </b>; rel=invalidates`, 10, []string{"/a", "/b"}},
		{`</a>; rel="next"; rel="invalidates"`, 10, nil}, // only the first rel counts
		{`</a,b>; rel=invalidates`, 10, []string{"/a,b"}},
		{`garbage, </b>; rel=invalidates`, 10, []string{"/b"}},
		{`</a> junk; rel=invalidates, </b>; rel=invalidates`, 10, []string{"/b"}},
		{`</a>; rel="invalidates`, 10, nil}, // unterminated quote
		{`</a>; title="a \" quote"; rel=invalidates`, 10, []string{"/a"}},
		{`</a; rel=invalidates`, 10, nil},
		{`</a>; rel=invalidates, </b>; rel=invalidates, </c>; rel=invalidates`, 2, []string{"/a", "/b"}},
		{``, 10, nil},
		{`,,, ,`, 10, nil},
	}
	for _, tc := range tests {
		got := LinkTargets(tc.line, "invalidates", tc.max)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("LinkTargets(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestInvalidationTargetsLink: Link targets join §4.4's, resolved, same
// origin only, deduplicated, and bounded.
func TestInvalidationTargetsLink(t *testing.T) {
	target, _ := url.Parse("http://shop.example/inventory/reserve")
	got := InvalidationTargets(target, Header{
		"Location": {"/catalog/products/p1"},
		"Link":     {`</catalog/products/p1>; rel=invalidates, <../catalog/products/p2>; rel=invalidates`, `<http://evil.example/x>; rel=invalidates`},
	})
	var s []string
	for _, u := range got {
		s = append(s, u.String())
	}
	want := []string{"http://shop.example/inventory/reserve", "http://shop.example/catalog/products/p1", "http://shop.example/catalog/products/p2"}
	if strings.Join(s, " ") != strings.Join(want, " ") {
		t.Errorf("targets %v, want %v", s, want)
	}
	var many []string
	for i := range 300 {
		many = append(many, fmt.Sprintf("</p/%d>; rel=invalidates", i))
	}
	got = InvalidationTargets(target, Header{"Link": {strings.Join(many[:150], ", "), strings.Join(many[150:], ", ")}})
	if len(got) != 1+MaxLinkedInvalidations {
		t.Errorf("%d targets from 300 links, want the target and %d", len(got), MaxLinkedInvalidations)
	}
}

func FuzzLinkTargets(f *testing.F) {
	f.Add(`</a>; rel="invalidates", </b>; rel=next`)
	f.Add(`<x>;rel="a\"b invalidates";title=","`)
	f.Add(`<`)
	f.Fuzz(func(t *testing.T, line string) {
		got := LinkTargets(line, "invalidates", 8)
		if len(got) > 8 {
			t.Fatalf("%d targets, max 8", len(got))
		}
		for _, ref := range got {
			if strings.Contains(ref, ">") || !strings.Contains(line, "<"+ref+">") {
				t.Fatalf("target %q is not a bracketed reference of %q", ref, line)
			}
		}
		u, _ := url.Parse("http://shop.example/w")
		for _, g := range InvalidationTargets(u, Header{"Link": {line}}) {
			if !sameOrigin(g, u) {
				t.Fatalf("%q invalidates another origin: %v", line, g)
			}
		}
	})
}
