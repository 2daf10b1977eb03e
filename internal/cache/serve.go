package cache

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
)

// Origin is how the cache reaches the upstream: in the proxy, its own
// forwarding with balancing, retries and telemetry.
type Origin interface {
	// RoundTrip performs one exchange for the cache (a miss, a validation,
	// a warm fetch) and returns the response with its body unread; the
	// cache closes it. The request is a clone of the client's with
	// RequestURI cleared, whose header the cache may have changed
	// (validators added, the client's own conditionals removed); the
	// origin removes hop-by-hop fields and adds forwarding fields as it
	// does for any request.
	RoundTrip(req *http.Request) (*http.Response, error)
	// ServeHTTP serves a request the cache leaves alone (unsafe methods,
	// upgrades, ranges, Authorization when not allowed): the proxy's
	// normal path, with streaming, trailers and 1xx responses.
	ServeHTTP(w http.ResponseWriter, r *http.Request)
}

// Serve answers r on route rt: from the store when RFC 9111 allows it,
// otherwise through origin, storing what may be stored. It returns an
// error only when an origin exchange failed and no response was written;
// the caller writes its own error response then. A nil or disabled route
// stores and serves nothing: safe requests go to origin.ServeHTTP as they
// are, unsafe ones too but their successful responses still invalidate
// what they name on every route (§4.4), since a write through a route
// that caches nothing can change what a cached route serves.
//
// A response whose body could not be copied whole from the origin after its
// header was sent ends with a panic of http.ErrAbortHandler, which
// net/http.Server takes as "close the connection without ending the
// response" (ServeOutcome reports it as Outcome.Aborted instead).
func (c *Cache) Serve(w http.ResponseWriter, r *http.Request, rt *Route, origin Origin) error {
	out, err := c.ServeOutcome(w, r, rt, origin)
	if out.Aborted {
		panic(http.ErrAbortHandler)
	}
	return err
}

// Outcome says how ServeOutcome answered a request, for the caller's own
// accounting: a request the store answers never reaches the origin, so
// the proxy's forwarding code (which counts requests, feeds telemetry and
// balancing) does not see it.
type Outcome struct {
	// FromStore is set when the answer came from the store without an
	// origin exchange of this request's own: a fresh hit, a stale response
	// (max-stale, stale-while-revalidate, stale-if-error after the origin
	// could not be reached), a response collapsed onto another request's
	// fetch, or the 504 of only-if-cached.
	FromStore bool
	// Status and Bytes are the status code and body bytes written when
	// FromStore is set.
	Status int
	Bytes  int64
	// Aborted is set when the response's header was written but its body
	// could not be copied whole (the origin's body failed, or the client
	// went away): the caller must end the answer so that the client
	// cannot take it for complete (close the connection without the last
	// chunk).
	Aborted bool
}

// ServeOutcome is Serve, also reporting how the request was answered.
func (c *Cache) ServeOutcome(w http.ResponseWriter, r *http.Request, rt *Route, origin Origin) (Outcome, error) {
	var out Outcome
	if rt == nil || !rt.cfg.Enabled {
		if rfc9111.Safe(r.Method) {
			origin.ServeHTTP(w, r)
		} else {
			c.serveUnsafe(w, r, nil, origin)
		}
		return out, nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		c.serveUnsafe(w, r, rt, origin)
		return out, nil
	}
	h := r.Header
	if _, ok := h["Upgrade"]; ok {
		return out, c.bypass(w, r, rt, origin, bypassUpgrade, "upgrade")
	}
	if _, ok := h["Authorization"]; ok && !rt.cfg.AllowAuthorization {
		return out, c.bypass(w, r, rt, origin, bypassAuthorization, "authorization")
	}
	if _, ok := h["If-Match"]; ok {
		return out, c.bypass(w, r, rt, origin, bypassConditional, "conditional")
	}
	if _, ok := h["If-Unmodified-Since"]; ok {
		return out, c.bypass(w, r, rt, origin, bypassConditional, "conditional")
	}
	cc := rfc9111.NoDirectives
	if v := h["Cache-Control"]; len(v) > 0 {
		cc = rfc9111.ParseCacheControl(v)
		if c.conf().IgnoreRequestCacheControl {
			cc.NoCache, cc.MaxStaleAny = false, false
			cc.MaxAge, cc.MinFresh, cc.MaxStale = rfc9111.Absent, rfc9111.Absent, rfc9111.Absent
		}
	}

	k := c.key(rt, r)
	now := c.clock.Now()
	res := c.lookup(rt, k)
	var e *entry
	if res != nil {
		e = res.selectVariant(h)
	}
	if e != nil {
		v := rfc9111.Evaluate(&e.stored, &cc, now, &rt.policy)
		switch v.Action {
		case rfc9111.Serve:
			rt.stats.hits.Add(1)
			if e.warmed {
				rt.stats.warmHits.Add(1)
			}
			out.set(c.serveStored(w, r, e, now, e.hitStatus, xHit))
			return out, nil
		case rfc9111.ServeStale:
			rt.stats.stale[staleMaxStale].Add(1)
			out.set(c.serveStored(w, r, e, now, e.staleStatus, xStale))
			return out, nil
		case rfc9111.ServeStaleRevalidate:
			rt.stats.stale[staleWhileRevalidate].Add(1)
			c.revalidateInBackground(r, rt, k, e, origin)
			out.set(c.serveStored(w, r, e, now, e.staleStatus, xStale))
			return out, nil
		}
		if cc.OnlyIfCached {
			out.set(c.onlyIfCached(w, rt, "stale"))
			return out, nil
		}
		if r.Method == http.MethodHead {
			// HEAD does not refresh the stored GET here: forward it.
			return out, c.bypass(w, r, rt, origin, bypassMethod, "head")
		}
		fwd := "stale"
		if v.ByRequest {
			fwd = "request"
		}
		err := c.miss(w, r, rt, origin, k, res, e, v, cc, fwd, mode{out: &out})
		return out, err
	}
	if cc.OnlyIfCached {
		out.set(c.onlyIfCached(w, rt, ""))
		return out, nil
	}
	if _, ok := h["Range"]; ok {
		return out, c.bypass(w, r, rt, origin, bypassRange, "range")
	}
	if r.Method == http.MethodHead {
		return out, c.bypass(w, r, rt, origin, bypassMethod, "head")
	}
	fwd := "uri-miss"
	if res != nil && len(res.variants) > 0 {
		fwd = "vary-miss"
	}
	err := c.miss(w, r, rt, origin, k, res, nil, rfc9111.Verdict{Action: rfc9111.Validate}, cc, fwd, mode{out: &out})
	return out, err
}

// set records an answer from the store.
func (o *Outcome) set(status int, n int64) {
	if o != nil {
		o.FromStore, o.Status, o.Bytes = true, status, n
	}
}

// serveStored writes a stored response: a 304 when the client's own
// conditional says it has it (§4.3.2), a 206 for a single byte range, else
// the whole response. It returns the status and body bytes written. No
// allocation on the common path.
func (c *Cache) serveStored(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, status, xcache []string) (int, int64) {
	h := w.Header()
	if e.status == http.StatusOK && hasConditional(r.Header) &&
		rfc9111.NotModified(rfc9111.Header(r.Header), e.etag, e.lastModified, e.date, now) {
		for _, f := range e.nmFields {
			h[f.k] = f.v
		}
		h["Age"] = e.ageHeader(now)
		h["Cache-Status"] = status
		h["X-Cache"] = xcache
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified, 0
	}
	for _, f := range e.fields {
		h[f.k] = f.v
	}
	h["Age"] = e.ageHeader(now)
	h["Cache-Status"] = status
	h["X-Cache"] = xcache
	if rng, ok := r.Header["Range"]; ok && len(rng) > 0 && r.Method == http.MethodGet && e.status == http.StatusOK &&
		rfc9111.IfRangeMatches(r.Header.Get("If-Range"), e.etag, e.lastModified) {
		if code, n, ok := c.serveRange(w, e, rng[0]); ok {
			return code, n
		}
	}
	if e.clen != nil {
		h["Content-Length"] = e.clen
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead && len(e.body) > 0 {
		n, _ := w.Write(e.body)
		return e.status, int64(n)
	}
	return e.status, 0
}

func hasConditional(h http.Header) bool {
	if _, ok := h["If-None-Match"]; ok {
		return true
	}
	_, ok := h["If-Modified-Since"]
	return ok
}

// serveRange answers a single byte range of a stored complete response
// (RFC 9110 §14) and returns the status and body bytes written; false
// means serve the whole response instead.
func (c *Cache) serveRange(w http.ResponseWriter, e *entry, rng string) (int, int64, bool) {
	size := int64(len(e.body))
	kind, start, end := rfc9111.ParseRange(rng, size)
	h := w.Header()
	switch kind {
	case rfc9111.RangeSingle:
		h["Content-Range"] = []string{"bytes " + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10) + "/" + strconv.FormatInt(size, 10)}
		h["Content-Length"] = []string{strconv.FormatInt(end-start+1, 10)}
		w.WriteHeader(http.StatusPartialContent)
		n, _ := w.Write(e.body[start : end+1])
		return http.StatusPartialContent, int64(n), true
	case rfc9111.RangeUnsatisfiable:
		h["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
		h["Content-Length"] = []string{"0"}
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return http.StatusRequestedRangeNotSatisfiable, 0, true
	}
	return 0, 0, false
}

// bypass hands the request to the origin unchanged.
func (c *Cache) bypass(w http.ResponseWriter, r *http.Request, rt *Route, origin Origin, reason int, why string) error {
	rt.stats.bypass[reason].Add(1)
	origin.ServeHTTP(&recorder{ResponseWriter: w, member: statusName + "; fwd=bypass; " + detail(why)}, r)
	return nil
}

// onlyIfCached answers a request with only-if-cached that nothing stored
// can satisfy: 504 (§5.2.1.7). It returns the status and body bytes.
func (c *Cache) onlyIfCached(w http.ResponseWriter, rt *Route, why string) (int, int64) {
	rt.stats.bypass[bypassOnlyIfCached].Add(1)
	fwd := "uri-miss"
	if why != "" {
		fwd = why
	}
	h := w.Header()
	h["Cache-Status"] = []string{statusName + "; fwd=" + fwd + "; detail=only-if-cached"}
	h["X-Cache"] = xMiss
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	w.WriteHeader(http.StatusGatewayTimeout)
	n, _ := w.Write([]byte("only-if-cached: no stored response can answer this request\n"))
	return http.StatusGatewayTimeout, int64(n)
}

// serveUnsafe forwards a request with an unsafe (or unknown) method and
// invalidates what its response invalidates (§4.4). rt is nil for a route
// that does not cache: the invalidation still applies to every route, but
// the response gets no Cache-Status member and no bypass is counted.
func (c *Cache) serveUnsafe(w http.ResponseWriter, r *http.Request, rt *Route, origin Origin) {
	if rfc9111.Safe(r.Method) {
		// OPTIONS, TRACE: nothing to store, nothing to invalidate.
		if rt == nil {
			origin.ServeHTTP(w, r)
			return
		}
		rt.stats.bypass[bypassMethod].Add(1)
		origin.ServeHTTP(&recorder{ResponseWriter: w, member: statusName + "; fwd=method"}, r)
		return
	}
	rec := &recorder{ResponseWriter: w, c: c, r: r}
	if rt != nil {
		rt.stats.bypass[bypassMethod].Add(1)
		rec.member = statusName + "; fwd=method"
	}
	origin.ServeHTTP(rec, r)
}

// invalidateAfter removes what a successful response to an unsafe request
// invalidates: its target URI and the same-origin URIs its Location,
// Content-Location and Link rel="invalidates" fields name, on every route.
func (c *Cache) invalidateAfter(r *http.Request, h http.Header) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := normalizeHost(r.Host, scheme)
	target := r.RequestURI
	if target == "" || target[0] != '/' {
		target = r.URL.RequestURI()
	}
	u, err := url.Parse(scheme + "://" + host + target)
	if err != nil {
		return
	}
	for _, t := range rfc9111.InvalidationTargets(u, rfc9111.Header(h)) {
		c.invalidate(scheme, normalizeHost(t.Host, scheme), t.RequestURI())
	}
}

// invalidate removes a URL's stored responses on every route, counting
// each under the route that stored it.
func (c *Cache) invalidate(scheme, host, target string) int {
	n := 0
	for _, name := range *c.names.Load() {
		if _, ok := c.store.Invalidate(Key{Route: name, Scheme: scheme, Host: host, Target: target}); ok {
			c.metrics.route(name).invalidations.Add(1)
			n++
		}
	}
	return n
}

// recorder passes a response through, adding the cache's Cache-Status
// member (after any the origin's response carries, RFC 9211 §2; none when
// member is empty) and, for an unsafe request (c set), invalidating what
// a successful response names as its header is written: before the
// client can see the answer, so its next request finds the new state.
type recorder struct {
	http.ResponseWriter
	member string
	status int

	c *Cache // set for unsafe requests: invalidate on success
	r *http.Request
}

// WriteHeader adds the Cache-Status member and invalidates before passing
// the call on.
func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 && code >= 200 {
		rw.status = code
		h := rw.ResponseWriter.Header()
		if rw.member != "" {
			h["Cache-Status"] = append(h["Cache-Status"], rw.member)
		}
		if rw.c != nil && rfc9111.Invalidates(rw.r.Method, code) && rw.r.Method != http.MethodConnect {
			rw.c.invalidateAfter(rw.r, h)
		}
	}
	rw.ResponseWriter.WriteHeader(code)
}

// Write passes the body on, noting an implicit 200.
func (rw *recorder) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines, hijack) through the recorder.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// Flush keeps streaming responses streaming for callers that type-assert.
func (rw *recorder) Flush() {
	http.NewResponseController(rw.ResponseWriter).Flush()
}
