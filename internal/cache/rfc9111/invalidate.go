package rfc9111

import (
	"net/url"
	"strings"
)

// Safe reports whether a method is safe (RFC 9110 §9.2.1). A method lbsys
// does not know is unsafe, as §4.4 requires ("including methods whose
// safety is unknown").
func Safe(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// Invalidates reports whether a response to a request invalidates stored
// responses (§4.4): an unsafe method and a non-error status (2xx or 3xx).
func Invalidates(method string, status int) bool {
	return !Safe(method) && status >= 200 && status < 400
}

// MaxLinkedInvalidations bounds the Link targets one response may
// invalidate, so that a response cannot make the cache walk an unbounded
// list.
const MaxLinkedInvalidations = 128

// InvalidationTargets returns the URIs whose stored responses an invalidating
// response removes: the target URI, the URIs in Location and
// Content-Location (§4.4), and those of Link fields with the relation type
// "invalidates" (linked cache invalidation, draft-nottingham-linked-cache-inv
// §3: one write may change several resources, and Location and
// Content-Location can name one each and mean something else in a 200),
// each resolved against the target and kept only when it has the same
// origin (scheme, host and port; §4.4 forbids invalidating another origin's
// responses, which would let one host purge another's cache). At most
// MaxLinkedInvalidations Link targets are read; duplicates are dropped. The
// target must be absolute.
func InvalidationTargets(target *url.URL, h Header) []*url.URL {
	out := []*url.URL{target}
	add := func(v string) {
		ref, err := url.Parse(trimOWS(v))
		if err != nil {
			return
		}
		u := target.ResolveReference(ref)
		if !sameOrigin(u, target) {
			return
		}
		for _, o := range out {
			if u.Path == o.Path && u.RawPath == o.RawPath && u.RawQuery == o.RawQuery {
				return
			}
		}
		out = append(out, u)
	}
	for _, f := range [...]string{"Location", "Content-Location"} {
		if v := h.Get(f); v != "" {
			add(v)
		}
	}
	if lines := h["Link"]; len(lines) > 0 {
		n := 0
		for _, line := range lines {
			for _, ref := range LinkTargets(line, "invalidates", MaxLinkedInvalidations-n) {
				add(ref)
				n++
			}
		}
	}
	return out
}

// LinkTargets returns the URI-references of the links in a Link field line
// (RFC 8288 §3) whose rel parameter lists relation type rel
// (case-insensitively), at most max of them. Malformed links are skipped:
// the parse resumes after the next comma outside quotes and angle
// brackets.
func LinkTargets(line, rel string, max int) []string {
	var out []string
	s := line
	i := 0
	for i < len(s) && len(out) < max {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		if s[i] != '<' {
			i = nextLink(s, i)
			continue
		}
		end := strings.IndexByte(s[i+1:], '>')
		if end < 0 {
			break // an unterminated reference runs to the end
		}
		ref := s[i+1 : i+1+end]
		i += end + 2
		matched, ok := false, true
		seenRel := false
		for ok {
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if i >= len(s) || s[i] == ',' {
				break
			}
			if s[i] != ';' {
				ok = false
				break
			}
			i++
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			start := i
			for i < len(s) && isTchar(s[i]) {
				i++
			}
			name := s[start:i]
			if name == "" {
				ok = false
				break
			}
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			value := ""
			if i < len(s) && s[i] == '=' {
				i++
				for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
					i++
				}
				if i < len(s) && s[i] == '"' {
					v, next, good := quotedString(s, i)
					if !good {
						ok = false
						break
					}
					value, i = v, next
				} else {
					start := i
					for i < len(s) && isTchar(s[i]) {
						i++
					}
					value = s[start:i]
				}
			}
			// RFC 8288 §3.3: only the first rel parameter counts.
			if equalFoldASCII(name, "rel") && !seenRel {
				seenRel = true
				for _, r := range strings.Fields(value) {
					if equalFoldASCII(r, rel) {
						matched = true
					}
				}
			}
		}
		if !ok {
			i = nextLink(s, i)
			continue
		}
		if matched {
			out = append(out, ref)
		}
	}
	return out
}

// nextLink returns the index after the next comma of s from i that is
// outside a quoted string and an angle-bracketed reference, or len(s).
func nextLink(s string, i int) int {
	inQuote, inRef := false, false
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"' && !inRef:
			inQuote = !inQuote
		case c == '<' && !inQuote:
			inRef = true
		case c == '>' && !inQuote:
			inRef = false
		case c == ',' && !inQuote && !inRef:
			return i + 1
		}
	}
	return len(s)
}

// quotedString reads the quoted-string starting at s[i] == '"' and returns
// its unescaped value and the index after it; ok is false when it is not
// terminated.
func quotedString(s string, i int) (value string, next int, ok bool) {
	var b []byte
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; c {
		case '\\':
			if j+1 >= len(s) {
				return "", len(s), false
			}
			j++
			b = append(b, s[j])
		case '"':
			return string(b), j + 1, true
		default:
			b = append(b, c)
		}
	}
	return "", len(s), false
}

func sameOrigin(a, b *url.URL) bool {
	return equalFoldASCII(a.Scheme, b.Scheme) && equalFoldASCII(a.Host, b.Host)
}
