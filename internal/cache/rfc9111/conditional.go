package rfc9111

import (
	"strings"
	"time"
)

// opaqueTag returns an entity-tag's opaque part and whether it is weak
// (RFC 9110 §8.8.3). It is lenient, as deployed servers and clients are:
// the weakness flag may be lower-case ("w/"), and an unquoted tag
// ("abcdef") stands for itself, so `abcdef` and `"abcdef"` compare equal.
func opaqueTag(t string) (opaque string, weak bool) {
	t = trimOWS(t)
	if len(t) >= 2 && (t[0] == 'W' || t[0] == 'w') && t[1] == '/' {
		weak = true
		t = t[2:]
	}
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	return t, weak
}

// QuoteETag returns an entity-tag in its proper quoted form, for sending a
// validator an origin gave unquoted ("abcdef" → `"abcdef"`); a tag with any
// quote in it is sent as it came.
func QuoteETag(t string) string {
	t = trimOWS(t)
	if t == "" || strings.IndexByte(t, '"') >= 0 {
		return t
	}
	if len(t) > 2 && (t[0] == 'W' || t[0] == 'w') && t[1] == '/' {
		return "W/\"" + t[2:] + "\""
	}
	return "\"" + t + "\""
}

// WeakMatch compares two entity-tags with the weak comparison (RFC 9110
// §8.8.3.2), used by If-None-Match.
func WeakMatch(a, b string) bool {
	oa, _ := opaqueTag(a)
	ob, _ := opaqueTag(b)
	return oa == ob && (oa != "" || trimOWS(a) == trimOWS(b))
}

// StrongMatch compares with the strong comparison: both strong, same opaque
// part. Used by If-Range and to pick the stored response a 304 updates.
func StrongMatch(a, b string) bool {
	oa, wa := opaqueTag(a)
	ob, wb := opaqueTag(b)
	return !wa && !wb && oa == ob && oa != ""
}

// IfNoneMatch reports whether an If-None-Match field (its lines) matches
// etag: "*" matches any current representation, otherwise any listed tag
// matching weakly (RFC 9110 §13.1.2).
func IfNoneMatch(lines []string, etag string) bool {
	for _, l := range lines {
		for rest := l; rest != ""; {
			var m string
			m, rest = nextMember(rest)
			if m == "*" {
				return true
			}
			if m != "" && etag != "" && WeakMatch(m, etag) {
				return true
			}
		}
	}
	return false
}

// NotModified decides a conditional GET or HEAD received by the cache for a
// stored response it would otherwise serve (§4.3.2, RFC 9110 §13.2.2):
// If-None-Match when present (it takes precedence), else If-Modified-Since
// compared with the stored Last-Modified, or with Date when there is none.
// True means answer 304.
func NotModified(req Header, etag, lastModified string, date time.Time, now time.Time) bool {
	if inm, ok := req["If-None-Match"]; ok {
		return IfNoneMatch(inm, etag)
	}
	ims := req.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	since, ok := ParseHTTPDate(ims, now)
	if !ok {
		return false // an invalid date is ignored (RFC 9110 §13.1.3)
	}
	modified := date
	if lm, ok := ParseHTTPDate(lastModified, now); ok {
		modified = lm
	}
	if modified.IsZero() {
		return false
	}
	return !modified.After(since)
}

// NotModifiedFields are the fields a 304 sent from the cache carries (RFC
// 9110 §15.4.5): those a 200 would have carried of this list, plus
// Last-Modified when there is no ETag to guide cache updates.
var NotModifiedFields = []string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary"}

// UpdateSelects reports whether a 304 received for a conditional request
// the cache made (with the stored response's validators) identifies that
// stored response for update (§4.3.4): a strong ETag in the 304 must match
// the stored one strongly, a weak one weakly; a 304 with only Last-Modified
// must carry the stored value; a 304 without validators answers the
// validators lbsys sent and so selects the response they came from.
func UpdateSelects(storedETag, storedLM string, resp Header) bool {
	if et := resp.Get("Etag"); et != "" {
		if _, weak := opaqueTag(et); !weak {
			return StrongMatch(et, storedETag)
		}
		return storedETag != "" && WeakMatch(et, storedETag)
	}
	if lm := resp.Get("Last-Modified"); lm != "" && storedLM != "" {
		return trimOWS(lm) == trimOWS(storedLM)
	}
	return true
}

// contentIntegrity are fields describing the stored bytes themselves: a 304
// does not change those bytes, so it does not change these fields either
// (§3.2 lets a cache omit such fields "to assure integrity of the stored
// response"; Content-Length is excluded by §3.2 itself).
var contentIntegrity = map[string]bool{
	"Content-Length": true, "Content-Encoding": true, "Content-Range": true,
	"Content-Md5": true, "Content-Digest": true, "Repr-Digest": true, "Digest": true,
}

// UpdateHeader returns the stored header updated with the fields of a 304
// (or of a 200 to HEAD) as §3.2 describes: every field of the new response
// replaces the stored one, except those a cache never stores (hop-by-hop,
// Connection-listed, Proxy-*), those describing the stored bytes
// (Content-Length, Content-Encoding, Content-Range, digests) and fields the
// policy keeps out (see StorableHeader). The result is a new Header; stored
// is not modified.
func UpdateHeader(stored, fresh Header, p *Policy) Header {
	out := stored.Clone()
	update := StorableHeader(fresh, p)
	for k, v := range update {
		if contentIntegrity[k] {
			continue
		}
		out[k] = v
	}
	// A qualified no-cache/private in the new Cache-Control applies to the
	// updated response as a whole.
	cc := ParseResponseCacheControl(out["Cache-Control"])
	for _, f := range cc.NoCacheFields {
		delete(out, f)
	}
	for _, f := range cc.PrivateFields {
		delete(out, f)
	}
	if !p.AllowSetCookie {
		delete(out, "Set-Cookie")
		delete(out, "Set-Cookie2")
	}
	return out
}

// StorableHeader returns the fields of a response a shared cache stores
// (§3.1, §5.2.2.4, §5.2.2.7): without hop-by-hop fields and those listed in
// Connection, without the Proxy-* authentication fields, without the fields
// named in no-cache="…" and private="…", without Age (recomputed on every
// use) and, unless the policy allows cookies, without Set-Cookie and
// Set-Cookie2. Analyze has already refused to store a response whose cookie
// the origin did not name. The result shares line slices with h.
func StorableHeader(h Header, p *Policy) Header {
	drop := map[string]bool{"Age": true}
	for _, f := range ConnectionFields(h) {
		drop[f] = true
	}
	cc := ParseResponseCacheControl(h["Cache-Control"])
	for _, f := range cc.NoCacheFields {
		drop[f] = true
	}
	for _, f := range cc.PrivateFields {
		drop[f] = true
	}
	if !p.AllowSetCookie {
		drop["Set-Cookie"] = true
		drop["Set-Cookie2"] = true
	}
	out := make(Header, len(h))
	for k, v := range h {
		if IsHopByHop(k) || drop[k] {
			continue
		}
		out[k] = v
	}
	return out
}
