package rfc9111

import (
	"reflect"
	"testing"
)

// TestParseCacheControl covers §5.2 (directive syntax, case-insensitive
// names, token and quoted-string arguments, §1.2.2 delta-seconds) and the
// §4.2.1 rule for repeated directives (first occurrence wins).
func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		check func(d Directives) bool
	}{
		{"max-age", []string{"max-age=3600"}, func(d Directives) bool { return d.MaxAge == 3600 }},
		{"case-insensitive name", []string{"MaX-aGe=3600"}, func(d Directives) bool { return d.MaxAge == 3600 }},
		{"leading zeros", []string{"max-age=003600"}, func(d Directives) bool { return d.MaxAge == 3600 }},
		{"quoted value accepted", []string{`max-age="3600"`}, func(d Directives) bool { return d.MaxAge == 3600 }},
		{"single-quoted invalid", []string{`max-age='3600'`}, func(d Directives) bool { return d.MaxAge == Invalid }},
		{"negative invalid", []string{"max-age=-100"}, func(d Directives) bool { return d.MaxAge == Invalid }},
		{"decimal invalid", []string{"max-age=3600.5"}, func(d Directives) bool { return d.MaxAge == Invalid }},
		{"leading alpha invalid", []string{"max-age=a100"}, func(d Directives) bool { return d.MaxAge == Invalid }},
		{"trailing alpha invalid", []string{"max-age=100a"}, func(d Directives) bool { return d.MaxAge == Invalid }},
		{"missing value invalid", []string{"max-age"}, func(d Directives) bool { return d.MaxAge == Invalid }},
		{"space before = ignores the element", []string{"max-age =100"}, func(d Directives) bool { return d.MaxAge == Absent }},
		{"space after = breaks the element", []string{"max-age= 100"}, func(d Directives) bool { return d.MaxAge == Absent || d.MaxAge == Invalid }},
		{"§1.2.2 saturates at 2^31", []string{"max-age=99999999999"}, func(d Directives) bool { return d.MaxAge == MaxDelta }},
		{"2^31 itself", []string{"max-age=2147483648"}, func(d Directives) bool { return d.MaxAge == MaxDelta }},
		{"first occurrence wins (same line)", []string{"max-age=1800, max-age=1"}, func(d Directives) bool { return d.MaxAge == 1800 }},
		{"first occurrence wins (two lines)", []string{"max-age=1", "max-age=1800"}, func(d Directives) bool { return d.MaxAge == 1 }},
		{"max-age inside a quoted extension is ignored", []string{`extension="max-age=3600", max-age=1`}, func(d Directives) bool { return d.MaxAge == 1 }},
		{"and after the real one", []string{`max-age=1, extension="max-age=3600"`}, func(d Directives) bool { return d.MaxAge == 1 }},
		{"quoted comma does not split", []string{`foo="a, max-age=9", s-maxage=5`}, func(d Directives) bool { return d.MaxAge == Absent && d.SMaxAge == 5 }},
		{"escaped quote inside quoted string", []string{`foo="a\", max-age=9", max-age=2`}, func(d Directives) bool { return d.MaxAge == 2 }},
		{"unterminated quote", []string{`foo="abc, max-age=9`}, func(d Directives) bool { return d.MaxAge == Absent }},
		{"extension then max-age", []string{"foobar, max-age=3600"}, func(d Directives) bool { return d.MaxAge == 3600 }},
		{"bad element does not hide the next", []string{"a b c, no-store"}, func(d Directives) bool { return d.NoStore }},
		{"empty elements", []string{" , ,no-store,, "}, func(d Directives) bool { return d.NoStore }},
		{"no-store case-insensitive", []string{"No-StOrE"}, func(d Directives) bool { return d.NoStore }},
		{"no-cache unqualified", []string{"max-age=10000, No-CaChE"}, func(d Directives) bool { return d.NoCache && d.MaxAge == 10000 }},
		{"no-cache qualified is not unqualified", []string{`no-cache="Set-Cookie"`}, func(d Directives) bool { return !d.NoCache }},
		{"no-cache empty list is unqualified", []string{`no-cache=""`}, func(d Directives) bool { return d.NoCache }},
		{"private unqualified", []string{"private, max-age=3600"}, func(d Directives) bool { return d.Private }},
		{"private qualified", []string{`private="X-User"`}, func(d Directives) bool { return !d.Private }},
		{"public", []string{"public"}, func(d Directives) bool { return d.Public }},
		{"must-revalidate, proxy-revalidate", []string{"must-revalidate,proxy-revalidate"}, func(d Directives) bool { return d.MustRevalidate && d.ProxyRevalidate }},
		{"must-understand", []string{"must-understand, no-store"}, func(d Directives) bool { return d.MustUnderstand && d.NoStore }},
		{"s-maxage", []string{"s-maxage=1, max-age=3600"}, func(d Directives) bool { return d.SMaxAge == 1 && d.MaxAge == 3600 }},
		{"max-stale bare", []string{"max-stale"}, func(d Directives) bool { return d.MaxStaleAny && d.MaxStale == Absent }},
		{"max-stale value", []string{"max-stale=1000"}, func(d Directives) bool { return !d.MaxStaleAny && d.MaxStale == 1000 }},
		{"min-fresh", []string{"min-fresh=2000"}, func(d Directives) bool { return d.MinFresh == 2000 }},
		{"only-if-cached", []string{"only-if-cached"}, func(d Directives) bool { return d.OnlyIfCached }},
		{"RFC 5861", []string{"max-age=0, stale-while-revalidate=3600, stale-if-error=60"}, func(d Directives) bool {
			return d.StaleWhileRevalidate == 3600 && d.StaleIfError == 60
		}},
		{"no directives", nil, func(d Directives) bool { return reflect.DeepEqual(d, NoDirectives) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ParseResponseCacheControl(tc.lines)
			if !tc.check(d) {
				t.Errorf("ParseResponseCacheControl(%q) = %+v", tc.lines, d)
			}
			// The request parser must agree on everything but field lists.
			r := ParseCacheControl(tc.lines)
			r.NoCacheFields, r.PrivateFields = d.NoCacheFields, d.PrivateFields
			if !reflect.DeepEqual(r, d) {
				t.Errorf("request parse %+v differs from response parse %+v", r, d)
			}
		})
	}
}

// TestQualifiedFieldLists covers the field-name forms of no-cache and
// private (§5.2.2.4, §5.2.2.7).
func TestQualifiedFieldLists(t *testing.T) {
	tests := []struct {
		lines            []string
		noCache, private []string
	}{
		{[]string{`no-cache="a"`}, []string{"A"}, nil},
		{[]string{`no-cache="a, b"`, "max-age=3600"}, []string{"A", "B"}, nil},
		{[]string{`no-cache=set-cookie`}, []string{"Set-Cookie"}, nil},
		{[]string{`private="x-user, Set-Cookie"`}, nil, []string{"X-User", "Set-Cookie"}},
		{[]string{`no-cache="a", no-cache="b"`}, []string{"A", "B"}, nil},
		{[]string{`no-cache="bad field, ok"`}, []string{"Ok"}, nil},
	}
	for _, tc := range tests {
		d := ParseResponseCacheControl(tc.lines)
		if !reflect.DeepEqual(d.NoCacheFields, tc.noCache) || !reflect.DeepEqual(d.PrivateFields, tc.private) {
			t.Errorf("%q: no-cache %q private %q, want %q %q", tc.lines, d.NoCacheFields, d.PrivateFields, tc.noCache, tc.private)
		}
	}
}

func TestParseCacheControlDoesNotAllocate(t *testing.T) {
	lines := []string{`max-age=60, stale-while-revalidate=30, no-cache="Set-Cookie", public, x="y"`}
	if n := testing.AllocsPerRun(100, func() { ParseCacheControl(lines) }); n != 0 {
		t.Errorf("ParseCacheControl allocates %v times; the hit path parses every request's Cache-Control", n)
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=3600", `no-cache="a, b", private="c"`, `x="\"", max-age="1"`,
		"max-age =1", "max-stale, min-fresh=5", `a="`, `,,,`, "s-maxage=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseResponseCacheControl([]string{s})
		for _, v := range []Delta{d.MaxAge, d.SMaxAge, d.MaxStale, d.MinFresh, d.StaleWhileRevalidate, d.StaleIfError} {
			if v < Invalid || v > MaxDelta {
				t.Fatalf("%q: delta out of range: %+v", s, d)
			}
		}
		if len(d.NoCacheFields) > maxListedFields || len(d.PrivateFields) > maxListedFields {
			t.Fatalf("%q: unbounded field list", s)
		}
		for _, f := range append(d.NoCacheFields, d.PrivateFields...) {
			if !isToken(f) {
				t.Fatalf("%q: field %q is not a token", s, f)
			}
		}
		// Splitting across lines at a top-level comma gives the same set of
		// booleans (lines are one list, RFC 9110 §5.3).
		if r := ParseCacheControl([]string{s, ""}); r.NoStore != d.NoStore || r.NoCache != d.NoCache {
			t.Fatalf("%q: an empty extra line changed the result", s)
		}
	})
}
