package rfc9111

import (
	"strings"
	"time"
)

// Delta is a delta-seconds argument (§1.2.2): Absent, Invalid, or a number
// of seconds from 0 to MaxDelta.
type Delta int64

const (
	// Absent marks a directive that was not given.
	Absent Delta = -1
	// Invalid marks a directive given with an argument that is not
	// delta-seconds ("max-age=a100", "max-age=-1", "max-age='5'"). §4.2.1
	// encourages treating invalid freshness information as stale.
	Invalid Delta = -2
	// MaxDelta is where larger values saturate: §1.2.2 asks a cache to use
	// 2147483648 (2^31) for anything it cannot represent or that overflows.
	MaxDelta Delta = 1 << 31
)

// Present reports whether the directive was given (valid or not).
func (d Delta) Present() bool { return d != Absent }

// Valid reports whether the directive was given with a usable value.
func (d Delta) Valid() bool { return d >= 0 }

// Duration returns the value as a duration; 0 unless Valid.
func (d Delta) Duration() time.Duration {
	if d < 0 {
		return 0
	}
	return time.Duration(d) * time.Second
}

// Directives are the Cache-Control directives lbsys understands, from a
// request or a response (§5.2). Unknown extensions are ignored, as §5.2.3
// requires.
type Directives struct {
	MaxAge               Delta
	SMaxAge              Delta
	MaxStale             Delta // a value; see MaxStaleAny for the bare form
	MinFresh             Delta
	StaleWhileRevalidate Delta // RFC 5861 §3
	StaleIfError         Delta // RFC 5861 §4

	// MaxStaleAny is a bare max-stale: any staleness is acceptable.
	MaxStaleAny bool

	NoStore         bool
	NoCache         bool // the unqualified form: every use needs validation
	Private         bool // the unqualified form
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	MustUnderstand  bool
	NoTransform     bool
	Immutable       bool
	OnlyIfCached    bool

	// NoCacheFields and PrivateFields are the canonical field names of the
	// qualified forms (no-cache="Set-Cookie"): a shared cache must not
	// reuse (no-cache) or store (private) those fields. Only filled when
	// parsing with fields (responses); requests do not need them.
	NoCacheFields []string
	PrivateFields []string
}

// maxListedFields bounds the field names kept from one qualified directive.
const maxListedFields = 64

// directive bits, to keep the first occurrence of a repeated directive
// (§4.2.1: "either the first occurrence should be used or the response
// should be considered stale").
const (
	seenMaxAge = 1 << iota
	seenSMaxAge
	seenMaxStale
	seenMinFresh
	seenSWR
	seenSIE
)

// ParseCacheControl parses the lines of a Cache-Control field without
// allocating: qualified no-cache/private lists are not kept (requests never
// need them). Directive names are case-insensitive; arguments may be tokens
// or quoted strings; a repeated directive keeps its first value; an element
// that breaks the grammar ("max-age =5") is ignored.
func ParseCacheControl(lines []string) Directives {
	return parse(lines, false)
}

// ParseResponseCacheControl is ParseCacheControl keeping the field names of
// no-cache="…" and private="…" (canonical, at most 64 each).
func ParseResponseCacheControl(lines []string) Directives {
	return parse(lines, true)
}

func parse(lines []string, fields bool) Directives {
	d := Directives{MaxAge: Absent, SMaxAge: Absent, MaxStale: Absent, MinFresh: Absent,
		StaleWhileRevalidate: Absent, StaleIfError: Absent}
	seen := 0
	for _, line := range lines {
		s := line
		for s != "" {
			var name, arg string
			var hasArg, quoted, ok bool
			name, arg, hasArg, quoted, s, ok = nextDirective(s)
			if !ok || name == "" {
				continue
			}
			d.apply(name, arg, hasArg, quoted, fields, &seen)
		}
	}
	return d
}

// nextDirective reads one list element `name [ "=" ( token / quoted-string ) ]`
// from s. ok is false when the element breaks that grammar; rest always
// starts after the element's comma, so one bad element does not hide the
// next (a comma inside a quoted string does not end an element).
func nextDirective(s string) (name, arg string, hasArg, quoted bool, rest string, ok bool) {
	i := 0
	for i < len(s) && (isOWS(s[i]) || s[i] == ',') {
		i++
	}
	start := i
	for i < len(s) && isTchar(s[i]) {
		i++
	}
	name = s[start:i]
	ok = true
	if i < len(s) && s[i] == '=' {
		hasArg = true
		i++
		if i < len(s) && s[i] == '"' {
			quoted = true
			j := i + 1
			escaped := false
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					escaped = true
					j += 2
					continue
				}
				j++
			}
			if j >= len(s) {
				ok = false // unterminated
				arg, i = s[i+1:], len(s)
			} else {
				arg, i = s[i+1:j], j+1
			}
			if escaped {
				arg = unescapeQuoted(arg)
			}
		} else {
			astart := i
			for i < len(s) && isTchar(s[i]) {
				i++
			}
			arg = s[astart:i]
		}
	}
	// After the element only OWS may come before the comma or the end.
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	if i < len(s) && s[i] != ',' {
		ok = false
		// Skip to the next comma outside a quoted string.
		inQuote := false
		for i < len(s) {
			c := s[i]
			if inQuote && c == '\\' {
				i += 2
				continue
			}
			if c == '"' {
				inQuote = !inQuote
			} else if c == ',' && !inQuote {
				break
			}
			i++
		}
	}
	if i < len(s) {
		i++ // the comma
	}
	if i > len(s) {
		i = len(s)
	}
	return name, arg, hasArg, quoted, s[i:], ok
}

func (d *Directives) apply(name, arg string, hasArg, quoted, fields bool, seen *int) {
	delta := func(bit int, dst *Delta) {
		if *seen&bit != 0 {
			return
		}
		*seen |= bit
		if !hasArg {
			*dst = Invalid
			return
		}
		*dst = parseDelta(arg)
	}
	switch {
	case strings.EqualFold(name, "max-age"):
		delta(seenMaxAge, &d.MaxAge)
	case strings.EqualFold(name, "s-maxage"):
		delta(seenSMaxAge, &d.SMaxAge)
	case strings.EqualFold(name, "max-stale"):
		if !hasArg {
			if *seen&seenMaxStale == 0 {
				*seen |= seenMaxStale
				d.MaxStaleAny = true
			}
			return
		}
		delta(seenMaxStale, &d.MaxStale)
	case strings.EqualFold(name, "min-fresh"):
		delta(seenMinFresh, &d.MinFresh)
	case strings.EqualFold(name, "stale-while-revalidate"):
		delta(seenSWR, &d.StaleWhileRevalidate)
	case strings.EqualFold(name, "stale-if-error"):
		delta(seenSIE, &d.StaleIfError)
	case strings.EqualFold(name, "no-store"):
		d.NoStore = true
	case strings.EqualFold(name, "no-cache"):
		// The qualified form (no-cache="Set-Cookie") restricts only the
		// named fields; the token form no-cache=Field is understood too.
		// An empty list is read as the unqualified form: the stricter one.
		if hasArg && countFields(arg) > 0 {
			if fields {
				d.NoCacheFields = fieldList(arg, d.NoCacheFields)
			}
			return
		}
		d.NoCache = true
	case strings.EqualFold(name, "private"):
		if hasArg && countFields(arg) > 0 {
			if fields {
				d.PrivateFields = fieldList(arg, d.PrivateFields)
			}
			return
		}
		d.Private = true
	case strings.EqualFold(name, "public"):
		d.Public = true
	case strings.EqualFold(name, "must-revalidate"):
		d.MustRevalidate = true
	case strings.EqualFold(name, "proxy-revalidate"):
		d.ProxyRevalidate = true
	case strings.EqualFold(name, "must-understand"):
		d.MustUnderstand = true
	case strings.EqualFold(name, "no-transform"):
		d.NoTransform = true
	case strings.EqualFold(name, "immutable"):
		d.Immutable = true
	case strings.EqualFold(name, "only-if-cached"):
		d.OnlyIfCached = true
	}
}

// parseDelta reads delta-seconds: one or more digits, nothing else (a
// leading zero is fine; a sign, a decimal point or a letter is not).
func parseDelta(s string) Delta {
	if s == "" {
		return Invalid
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Invalid
		}
		if n < int64(MaxDelta) {
			n = n*10 + int64(c-'0')
		}
	}
	if n > int64(MaxDelta) {
		n = int64(MaxDelta)
	}
	return Delta(n)
}

// fieldList appends the canonical field names of a qualified directive's
// argument ("Set-Cookie, X-Session") to dst, bounded by maxListedFields.
func fieldList(arg string, dst []string) []string {
	for rest := arg; rest != ""; {
		var m string
		m, rest = nextMember(rest)
		if m == "" || !isToken(m) {
			continue
		}
		if len(dst) >= maxListedFields {
			break
		}
		dst = append(dst, CanonicalKey(m))
	}
	return dst
}

// countFields counts the field names in a qualified directive's argument
// without allocating.
func countFields(arg string) int {
	n := 0
	for rest := arg; rest != ""; {
		var m string
		m, rest = nextMember(rest)
		if isToken(m) {
			n++
		}
	}
	return n
}

// unescapeQuoted removes the backslashes of quoted-pairs (RFC 9110 §5.6.4).
func unescapeQuoted(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}
