package rfc9111

import (
	"reflect"
	"testing"
)

// TestParseVary covers §4.1 and RFC 9110 §12.5.5 (Vary syntax, "*").
func TestParseVary(t *testing.T) {
	tests := []struct {
		lines []string
		names []string
		star  bool
	}{
		{[]string{"Foo"}, []string{"Foo"}, false},
		{[]string{"foo, BAR", "baz"}, []string{"Foo", "Bar", "Baz"}, false},
		{[]string{"Foo, foo"}, []string{"Foo"}, false},
		{[]string{"*"}, nil, true},
		{[]string{"*, *"}, nil, true},
		{[]string{"", "*"}, nil, true},
		{[]string{", *"}, nil, true},
		{[]string{"Foo, *"}, []string{"Foo"}, true},
		{[]string{"*, Foo"}, []string{"Foo"}, true},
		{[]string{" , "}, nil, false},
	}
	for _, tc := range tests {
		n, s := ParseVary(tc.lines)
		if !reflect.DeepEqual(n, tc.names) || s != tc.star {
			t.Errorf("ParseVary(%q) = %q, %v; want %q, %v", tc.lines, n, s, tc.names, tc.star)
		}
	}
}

// TestVaryMatches covers §4.1: matching selecting fields after normalising
// whitespace and combining lines; an absent field matches only absent.
func TestVaryMatches(t *testing.T) {
	tests := []struct {
		name      string
		vary      []string
		storedReq Header
		req       Header
		want      bool
	}{
		{"same value", []string{"Foo"}, Header{"Foo": {"1"}}, Header{"Foo": {"1"}}, true},
		{"different value", []string{"Foo"}, Header{"Foo": {"1"}}, Header{"Foo": {"2"}}, false},
		{"request omits the field", []string{"Foo"}, Header{"Foo": {"1"}}, Header{}, false},
		{"stored request omitted the field", []string{"Foo"}, Header{}, Header{"Foo": {"1"}}, false},
		{"both omit", []string{"Foo", "Bar"}, Header{"Foo": {"1"}}, Header{"Foo": {"1"}}, true},
		{"empty is not absent", []string{"Foo"}, Header{"Foo": {""}}, Header{}, false},
		{"whitespace normalised", []string{"Foo"}, Header{"Foo": {"1,2"}}, Header{"Foo": {" 1, 2 "}}, true},
		{"lines combined", []string{"Foo"}, Header{"Foo": {"1, 2"}}, Header{"Foo": {"1", "2"}}, true},
		{"two-way mismatch", []string{"Foo", "Bar"}, Header{"Foo": {"1"}, "Bar": {"abc"}}, Header{"Foo": {"2"}, "Bar": {"abc"}}, false},
		{"three-way, order of fields irrelevant", []string{"Foo", "Bar", "Baz"}, Header{"Foo": {"1"}, "Bar": {"abc4"}, "Baz": {"789"}}, Header{"Baz": {"789"}, "Foo": {"1"}, "Bar": {"abc"}}, false},
		{"other fields ignored", []string{"Foo"}, Header{"Foo": {"1"}, "Other": {"2"}}, Header{"Foo": {"1"}, "Other": {"3"}}, true},
		{"Accept-Encoding case", []string{"Accept-Encoding"}, Header{"Accept-Encoding": {"GZIP, br"}}, Header{"Accept-Encoding": {"gzip,br"}}, true},
		{"value case matters elsewhere", []string{"Foo"}, Header{"Foo": {"A"}}, Header{"Foo": {"a"}}, false},
	}
	for _, tc := range tests {
		stored := SelectingValues(tc.vary, tc.storedReq)
		if got := VaryMatches(tc.vary, stored, tc.req); got != tc.want {
			t.Errorf("%s: got %v, want %v (stored %q)", tc.name, got, tc.want, stored)
		}
	}
}

func TestVaryMatchesDoesNotAllocate(t *testing.T) {
	names := []string{"Accept-Encoding", "Accept-Language"}
	req := Header{"Accept-Encoding": {"gzip, deflate, br"}, "Accept-Language": {"en-GB,en;q=0.9"}}
	stored := SelectingValues(names, req)
	if n := testing.AllocsPerRun(100, func() { VaryMatches(names, stored, req) }); n != 0 {
		t.Errorf("VaryMatches allocates %v times per call", n)
	}
}

func FuzzVary(f *testing.F) {
	f.Add("Accept-Encoding, *", "gzip ,br", " gzip, br ")
	f.Add("Foo", "1,2", "1, 2")
	f.Fuzz(func(t *testing.T, vary, a, b string) {
		names, _ := ParseVary([]string{vary})
		if len(names) > maxVaryNames+1 {
			t.Fatalf("%d names kept", len(names))
		}
		ha, hb := Header{}, Header{}
		for _, n := range names {
			ha[n] = []string{a}
			hb[n] = []string{b}
		}
		stored := SelectingValues(names, ha)
		if !VaryMatches(names, stored, ha) {
			t.Fatalf("a request does not match its own stored values: %q %q", vary, a)
		}
		// Matching is symmetric.
		if VaryMatches(names, stored, hb) != VaryMatches(names, SelectingValues(names, hb), ha) {
			t.Fatalf("asymmetric match for %q / %q", a, b)
		}
	})
}
