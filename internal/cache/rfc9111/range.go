package rfc9111

import (
	"strconv"
	"strings"
)

// RangeKind is the outcome of reading a Range request field against a
// stored response of known length.
type RangeKind uint8

const (
	// RangeNone: no usable Range; serve the whole response (a server may
	// ignore Range, RFC 9110 §14.2, which lbsys does for multiple ranges,
	// for units other than bytes and for syntax it cannot read).
	RangeNone RangeKind = iota
	// RangeSingle: serve the one range [Start, End] as 206.
	RangeSingle
	// RangeUnsatisfiable: answer 416 with "Content-Range: bytes */size".
	RangeUnsatisfiable
)

// maxRangeLen bounds the Range field lbsys reads.
const maxRangeLen = 256

// ParseRange reads a Range field ("bytes=0-499", "bytes=500-", "bytes=-500")
// for a representation of size bytes (RFC 9110 §14.1.2). Only a single
// byte range is served from the cache.
func ParseRange(v string, size int64) (kind RangeKind, start, end int64) {
	if len(v) > maxRangeLen || size < 0 {
		return RangeNone, 0, 0
	}
	v = trimOWS(v)
	const unit = "bytes="
	if len(v) < len(unit) || !equalFoldASCII(v[:len(unit)], unit) {
		return RangeNone, 0, 0
	}
	spec := trimOWS(v[len(unit):])
	if spec == "" || strings.IndexByte(spec, ',') >= 0 {
		return RangeNone, 0, 0
	}
	dash := strings.IndexByte(spec, '-')
	if dash < 0 {
		return RangeNone, 0, 0
	}
	first, last := trimOWS(spec[:dash]), trimOWS(spec[dash+1:])
	if first == "" {
		// suffix-range: the last N bytes.
		n, ok := parseNonNeg(last)
		if !ok {
			return RangeNone, 0, 0
		}
		if n == 0 || size == 0 {
			return RangeUnsatisfiable, 0, 0
		}
		if n > size {
			n = size
		}
		return RangeSingle, size - n, size - 1
	}
	s, ok := parseNonNeg(first)
	if !ok {
		return RangeNone, 0, 0
	}
	e := size - 1
	if last != "" {
		l, ok := parseNonNeg(last)
		if !ok || l < s {
			return RangeNone, 0, 0 // invalid: ignore the field
		}
		if l < e {
			e = l
		}
	}
	if s >= size {
		return RangeUnsatisfiable, 0, 0
	}
	return RangeSingle, s, e
}

func parseNonNeg(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// IfRangeMatches evaluates If-Range (RFC 9110 §13.1.5) for a stored
// response: an entity-tag must match its ETag strongly; a date must equal
// its Last-Modified exactly. Absent, it matches.
func IfRangeMatches(ifRange, etag, lastModified string) bool {
	ifRange = trimOWS(ifRange)
	if ifRange == "" {
		return true
	}
	if strings.IndexByte(ifRange, '"') >= 0 {
		return StrongMatch(ifRange, etag)
	}
	return lastModified != "" && ifRange == trimOWS(lastModified)
}
