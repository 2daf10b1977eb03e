package rfc9111

// Header is a field section keyed by canonical field name ("Cache-Control"),
// each name mapping to its field lines in order. It has the underlying type
// of net/http's Header, so rfc9111.Header(r.Header) costs nothing; functions
// here never modify a Header they are given unless they say so.
type Header map[string][]string

// Get returns the first line of the field name (canonical), or "".
func (h Header) Get(name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Has reports whether the field is present (possibly empty).
func (h Header) Has(name string) bool {
	_, ok := h[name]
	return ok
}

// Clone returns a copy whose line slices may be changed without affecting h.
func (h Header) Clone() Header {
	if h == nil {
		return nil
	}
	n := 0
	for _, v := range h {
		n += len(v)
	}
	// One backing array for all lines, as net/http's Header.Clone does.
	lines := make([]string, n)
	out := make(Header, len(h))
	for k, v := range h {
		c := lines[:len(v):len(v)]
		copy(c, v)
		lines = lines[len(v):]
		out[k] = c
	}
	return out
}

// CanonicalKey returns the canonical form of a field name, as net/textproto
// writes it: the first letter and every letter after a hyphen upper-case, the
// rest lower-case ("cache-control" → "Cache-Control"). A name with a byte
// that is not a token character is returned unchanged, as textproto does.
// It exists here because net/textproto depends on package net.
func CanonicalKey(s string) string {
	upper := true
	ok := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isTchar(c) {
			return s
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			ok = false
		}
		upper = c == '-'
	}
	if ok {
		return s
	}
	b := []byte(s)
	upper = true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// nextMember splits the first member off a comma-separated list (RFC 9110
// §5.6.1), not splitting inside a quoted string. It returns the member
// trimmed of OWS (possibly empty) and the rest after the comma.
func nextMember(s string) (member, rest string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\' && i+1 < len(s):
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return trimOWS(s[:i]), s[i+1:]
		}
	}
	return trimOWS(s), ""
}

// Members returns the non-empty members of a list field spread over lines.
// It allocates; the hot paths use nextMember directly.
func Members(lines []string) []string {
	var out []string
	for _, l := range lines {
		for rest := l; rest != ""; {
			var m string
			m, rest = nextMember(rest)
			if m != "" {
				out = append(out, m)
			}
		}
	}
	return out
}

// hopByHop are the fields a proxy removes before forwarding a message and a
// cache never stores (RFC 9110 §7.6.1, RFC 9111 §3.1), keyed canonically.
// The Proxy-* authentication fields are specific to the proxy that answered
// (§3.1: not stored unless the proxy's identity is in the cache key).
var hopByHop = map[string]bool{
	"Connection":                true,
	"Keep-Alive":                true,
	"Proxy-Connection":          true,
	"Te":                        true,
	"Trailer":                   true,
	"Transfer-Encoding":         true,
	"Upgrade":                   true,
	"Proxy-Authenticate":        true,
	"Proxy-Authentication-Info": true,
	"Proxy-Authorization":       true,
}

// IsHopByHop reports whether a canonical field name is one a proxy never
// forwards or stores as such.
func IsHopByHop(name string) bool { return hopByHop[name] }

// ConnectionFields returns the canonical names listed in Connection: fields
// that apply to the last hop only and must be removed along with it.
func ConnectionFields(h Header) []string {
	lines := h["Connection"]
	if len(lines) == 0 {
		return nil
	}
	// "close" and "keep-alive" are connection options, not field names, but
	// removing a field of that name does no harm.
	members := Members(lines)
	for i, m := range members {
		members[i] = CanonicalKey(m)
	}
	return members
}
