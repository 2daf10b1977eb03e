package cache

import "strings"

// Cache-Status members (RFC 9211) and X-Cache values this cache adds to the
// responses it serves. The Cache-Status member is appended to any the
// response already carries from caches nearer the origin (RFC 9211 §2:
// the last member is the cache nearest the client).
const (
	statusName        = "lbsys"
	statusHit         = statusName + "; hit"
	statusStaleHit    = statusName + "; hit; detail=stale"
	statusRevalidated = statusName + "; fwd=stale; fwd-status=304"
)

var (
	xHit   = []string{"HIT"}
	xMiss  = []string{"MISS"}
	xStale = []string{"STALE"}
)

// fwdStatus builds a Cache-Status member for a forwarded request: fwd is
// the RFC 9211 reason (uri-miss, vary-miss, miss, stale, request, bypass,
// method), then optional parameters already formatted ("stored",
// "collapsed", "fwd-status=200", "detail=no-store").
func fwdStatus(upstream []string, fwd string, params ...string) []string {
	var b strings.Builder
	b.WriteString(statusName)
	b.WriteString("; fwd=")
	b.WriteString(fwd)
	for _, p := range params {
		if p == "" {
			continue
		}
		b.WriteString("; ")
		b.WriteString(p)
	}
	out := make([]string, 0, len(upstream)+1)
	return append(append(out, upstream...), b.String())
}

// detail formats a Cache-Status detail parameter; RFC 9211 §2.8 allows a
// token or a string, and lbsys's reasons are tokens.
func detail(reason string) string {
	if reason == "" {
		return ""
	}
	return "detail=" + reason
}
