package rfc9111

// AbsentValue is the normalised value of a selecting field the request did not
// send: a NUL byte, which no field value may contain (RFC 9110 §5.5), so it
// never equals a value that was sent, not even an empty one.
const AbsentValue = "\x00"

// maxVaryNames bounds the names kept from one Vary field; one more is kept
// so that a caller comparing with its own, lower bound sees the excess.
const maxVaryNames = 64

// ParseVary returns the canonical field names of a Vary field, without
// duplicates, and whether it contains "*" (which no request ever matches,
// §4.1). Empty members are ignored.
func ParseVary(lines []string) (names []string, star bool) {
	for _, l := range lines {
		for rest := l; rest != ""; {
			var m string
			m, rest = nextMember(rest)
			switch {
			case m == "":
			case m == "*":
				star = true
			case isToken(m):
				k := CanonicalKey(m)
				dup := false
				for _, n := range names {
					if n == k {
						dup = true
						break
					}
				}
				if !dup && len(names) < maxVaryNames+1 {
					names = append(names, k)
				}
			}
		}
	}
	return names, star
}

// caseInsensitiveValue lists selecting fields whose values are tokens
// compared case-insensitively (RFC 9110 §12.5), so "gzip" and "GZIP" select
// the same variant.
func caseInsensitiveValue(name string) bool {
	switch name {
	case "Accept-Encoding", "Accept-Language", "Accept-Charset":
		return true
	}
	return false
}

// AppendNormalized appends the normalised value of a selecting field to dst
// (§4.1 allows normalising "by combining multiple header fields with the
// same field name ... or normalizing ... whitespace"): its lines joined as
// one list, members trimmed of whitespace and separated by a bare comma,
// empty members dropped, lower-cased for the fields listed in
// caseInsensitiveValue. An absent field appends AbsentValue.
func AppendNormalized(dst []byte, name string, lines []string, present bool) []byte {
	if !present {
		return append(dst, AbsentValue...)
	}
	lower := caseInsensitiveValue(name)
	first := true
	for _, l := range lines {
		for rest := l; rest != ""; {
			var m string
			m, rest = nextMember(rest)
			if m == "" {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if lower {
				for i := 0; i < len(m); i++ {
					c := m[i]
					if 'A' <= c && c <= 'Z' {
						c += 'a' - 'A'
					}
					dst = append(dst, c)
				}
			} else {
				dst = append(dst, m...)
			}
		}
	}
	return dst
}

// SelectingValues returns the normalised values of the request's selecting
// fields named by a stored response's Vary, in the order of names.
func SelectingValues(names []string, req Header) []string {
	out := make([]string, len(names))
	var buf []byte
	for i, n := range names {
		lines, present := req[n]
		buf = AppendNormalized(buf[:0], n, lines, present)
		out[i] = string(buf)
	}
	return out
}

// VaryMatches reports whether a request selects a stored response whose Vary
// named names and whose request had the normalised values stored (§4.1).
// It does not allocate for values up to 256 bytes.
func VaryMatches(names, stored []string, req Header) bool {
	var arr [256]byte
	for i, n := range names {
		lines, present := req[n]
		b := AppendNormalized(arr[:0], n, lines, present)
		if string(b) != stored[i] {
			return false
		}
	}
	return true
}
