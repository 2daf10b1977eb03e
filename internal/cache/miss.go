package cache

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
)

// mode marks fetches the cache makes on its own.
type mode struct {
	warm       bool // a warm request: counted as warming, not as a miss
	background bool // a stale-while-revalidate revalidation
	// out receives the answer when it comes from the store after all
	// (collapsed onto another fetch, stale-if-error); nil for the cache's
	// own fetches.
	out *Outcome
}

// miss handles a request nothing stored can answer as it is: it joins or
// leads the key's flight (request coalescing), then fetches. stale is the
// stored response to validate, if any.
func (c *Cache) miss(w http.ResponseWriter, r *http.Request, rt *Route, origin Origin, k Key, res *resource, stale *entry,
	v rfc9111.Verdict, cc rfc9111.Directives, fwd string, m mode) error {
	var f *flight
	passing := res != nil && len(res.variants) == 0 && c.clock.Now().Before(res.passUntil)
	// A conditional request with nothing stored goes to the origin as it is
	// (its 304 cannot be stored), so it neither leads nor waits.
	cfg := c.conf()
	if !cfg.Coalesce.Disabled && !passing && !(stale == nil && hasConditional(r.Header)) {
		var leader bool
		f, leader = c.flights.join(k, cfg.Coalesce.MaxWaiters)
		switch {
		case f == nil:
			rt.stats.coalesced[coalesceOverflow].Add(1)
		case !leader:
			if done, err := c.wait(w, r, rt, k, f, cc, fwd, m); done {
				return err
			}
			f = nil // fetch on our own, outside the flight
		}
	}
	return c.fetch(w, r, rt, origin, k, stale, v, cc, fwd, f, m)
}

// wait waits for another request's fetch of the same key and serves its
// result when it may be used for this request. done is false when the
// request must fetch on its own (timeout, nothing usable stored).
func (c *Cache) wait(w http.ResponseWriter, r *http.Request, rt *Route, k Key, f *flight,
	cc rfc9111.Directives, fwd string, m mode) (done bool, err error) {
	defer f.waiters.Add(-1)
	arrived := c.clock.Now()
	timeout := make(chan struct{})
	t := c.clock.AfterFunc(c.conf().Coalesce.WaitTimeout, func() { close(timeout) })
	defer t.Stop()
	select {
	case <-f.done:
	case <-timeout:
		rt.stats.coalesced[coalesceTimeout].Add(1)
		return false, nil
	case <-r.Context().Done():
		return true, nil // the client left: nothing to answer
	}
	now := c.clock.Now()
	if res, _ := c.store.GetIfPresent(k); res != nil {
		if e := res.selectVariant(r.Header); e != nil {
			// A response received (or validated) after this request
			// arrived answers it as a forwarded one would, whatever the
			// request's no-cache or max-age and even at zero lifetime:
			// that is what lets collapsed validations of no-cache or
			// max-age=0 responses protect the origin too.
			action := rfc9111.Serve
			if e.stored.ResponseTime.Before(arrived) {
				action = rfc9111.Evaluate(&e.stored, &cc, now, &rt.policy).Action
			}
			switch action {
			case rfc9111.Serve, rfc9111.ServeStale, rfc9111.ServeStaleRevalidate:
				if m.warm {
					rt.stats.warm[warmFresh].Add(1)
					return true, nil
				}
				rt.stats.coalesced[coalesceServed].Add(1)
				m.out.set(c.serveStored(w, r, e, now, fwdStatus(e.header["Cache-Status"], fwd, "collapsed"), xHit))
				return true, nil
			}
		}
	}
	rt.stats.coalesced[coalesceUnusable].Add(1)
	return false, nil
}

// fetch performs the origin exchange for a miss or a validation and answers
// the request with its result.
func (c *Cache) fetch(w http.ResponseWriter, r *http.Request, rt *Route, origin Origin, k Key, stale *entry,
	v rfc9111.Verdict, cc rfc9111.Directives, fwd string, f *flight, m mode) error {
	defer c.flights.finish(k, f)
	ctx, cancel := c.fetchContext(r.Context(), f, m)
	defer cancel()
	validating := stale != nil && (stale.etag != "" || stale.lastModified != "")
	out := outbound(ctx, r, stale, stale != nil)
	reqTime := c.clock.Now()
	resp, err := origin.RoundTrip(out)
	respTime := c.clock.Now()
	if err != nil {
		return c.failed(w, r, rt, stale, v, m, err, "")
	}
	if resp.StatusCode == http.StatusNotModified && validating {
		x := exchange(r, resp, reqTime, respTime)
		if rfc9111.UpdateSelects(stale.etag, stale.lastModified, x.RespHeader) {
			resp.Body.Close()
			p := c.policyFor(rt, k.Target)
			ne, ok := stale.refreshed(&x, rt, &p)
			c.replace(k, stale, ne, ok, respTime, &p)
			if m.warm {
				rt.stats.warm[warmStored].Add(1)
			} else {
				rt.stats.revalidations[revalNotModified].Add(1)
			}
			c.serveStored(w, r, ne, respTime, ne.revalidatedStatus, xHit)
			return nil
		}
		// A 304 for another representation than the one stored: ask for
		// the current one without conditions (§4.3.4: it must not update).
		resp.Body.Close()
		validating = false
		out = outbound(ctx, r, nil, true)
		reqTime = c.clock.Now()
		resp, err = origin.RoundTrip(out)
		respTime = c.clock.Now()
		if err != nil {
			return c.failed(w, r, rt, stale, v, m, err, "")
		}
	}
	defer resp.Body.Close()
	if stale != nil && v.StaleIfError && rfc9111.ErrorStatus(resp.StatusCode) {
		return c.failed(w, r, rt, stale, v, m, nil, strconv.Itoa(resp.StatusCode))
	}
	return c.forward(w, r, rt, k, stale, validating, resp, reqTime, respTime, cc, fwd, f, m)
}

// failed answers a request whose origin exchange failed (err) or answered
// with a server error (status): with the stale response where RFC 5861
// allows, else the error goes back to the caller (status == "" only).
func (c *Cache) failed(w http.ResponseWriter, r *http.Request, rt *Route, stale *entry, v rfc9111.Verdict,
	m mode, err error, status string) error {
	switch {
	case m.warm:
		rt.stats.warm[warmFailed].Add(1)
	case stale != nil:
		rt.stats.revalidations[revalFailed].Add(1)
	default:
		rt.stats.misses.Add(1)
	}
	if stale != nil && v.StaleIfError && !m.warm && !m.background {
		rt.stats.stale[staleIfError].Add(1)
		fs := ""
		if status != "" {
			fs = "fwd-status=" + status
		}
		code, n := c.serveStored(w, r, stale, c.clock.Now(), fwdStatus(stale.header["Cache-Status"], "stale", fs, "detail=stale-if-error"), xStale)
		if err != nil {
			// No origin response: the store alone answered. (An origin
			// error status was an answer, accounted by the origin.)
			m.out.set(code, n)
		}
		return nil
	}
	if err == nil {
		return nil // unreachable: a status without a stale response is forwarded
	}
	return err
}

// forward sends a fresh origin response to the client while storing it
// when RFC 9111 and the configuration allow.
func (c *Cache) forward(w http.ResponseWriter, r *http.Request, rt *Route, k Key, stale *entry, validating bool,
	resp *http.Response, reqTime, respTime time.Time, cc rfc9111.Directives, fwd string, f *flight, m mode) error {
	p := c.policyFor(rt, k.Target)
	x := exchange(r, resp, reqTime, respTime)
	a := rfc9111.Analyze(&x, &p)
	reason := a.NotStored
	if reason == "" && cc.NoStore {
		reason = reasonRequestNoStore
	}
	if reason == "" && len(resp.Trailer) > 0 {
		reason = rfc9111.ReasonTrailer
	}
	storable := reason == ""
	if !storable {
		// Waiters cannot use this response: release them now.
		c.flights.finish(k, f)
		if stale == nil && reason != reasonRequestNoStore && resp.StatusCode != http.StatusNotModified && c.conf().PassTTL > 0 {
			c.markPass(k, respTime)
		}
	}
	switch {
	case m.warm:
	case validating:
		rt.stats.revalidations[revalModified].Add(1)
	default:
		rt.stats.misses.Add(1)
	}

	h := w.Header()
	copyEndToEnd(h, resp.Header)
	params := []string{"fwd-status=" + strconv.Itoa(resp.StatusCode)}
	if storable {
		params = append(params, "stored")
	} else {
		params = append(params, detail(reason))
	}
	h["Cache-Status"] = fwdStatus(resp.Header["Cache-Status"], fwd, params...)
	h["X-Cache"] = xMiss
	w.WriteHeader(resp.StatusCode)

	limit := rt.maxObject
	body, complete, tooLarge, cut := tee(w, resp, storable, limit, func() {
		// Grown past the object limit: not stored after all.
		c.flights.finish(k, f)
	})
	if cut && m.out != nil {
		// The header went out and the origin's body did not follow whole:
		// the caller must end the answer so that the client cannot take it
		// for complete (a chunked body would otherwise get its last chunk).
		m.out.Aborted = true
	}
	if complete {
		// Trailer fields arrive with the end of the body; both server
		// engines send fields set under TrailerPrefix after it. (A response
		// with trailers is never stored: ReasonTrailer.)
		for name, vs := range resp.Trailer {
			if len(vs) > 0 {
				h[http.TrailerPrefix+name] = vs
			}
		}
	}
	switch {
	case !storable:
		if m.warm {
			rt.stats.warm[warmNotStored].Add(1)
		}
	case tooLarge:
		rt.stats.countNotStored(rfc9111.ReasonTooLarge)
		if stale == nil && c.conf().PassTTL > 0 {
			c.markPass(k, respTime)
		}
		if m.warm {
			rt.stats.warm[warmNotStored].Add(1)
		}
	case !complete:
		rt.stats.countNotStored(reasonIncomplete)
		if m.warm {
			rt.stats.warm[warmFailed].Add(1)
		}
	default:
		e := newEntry(&x, &a, rt, body, m.warm)
		c.insert(k, e, r.Header, respTime, rt, &p, m.warm)
		if m.warm {
			rt.stats.warm[warmStored].Add(1)
		}
	}
	if !storable {
		rt.stats.countNotStored(reason)
	}
	return nil
}

// exchange describes an origin exchange for the rules.
func exchange(r *http.Request, resp *http.Response, reqTime, respTime time.Time) rfc9111.Exchange {
	return rfc9111.Exchange{
		Method:        http.MethodGet,
		ReqHeader:     rfc9111.Header(r.Header),
		Status:        resp.StatusCode,
		RespHeader:    rfc9111.Header(resp.Header),
		RequestTime:   reqTime,
		ResponseTime:  respTime,
		ContentLength: resp.ContentLength,
	}
}

// copyBufs lends tee its read buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// tee copies the response body to the client and, while store is true and
// the body fits in limit bytes, into a buffer. It never buffers more than
// limit: beyond it the buffer is dropped, overflow is called and the rest
// only streams. When the client goes away it keeps reading only while
// buffering (the fetch may serve waiting requests; the fetch context ends
// it otherwise). complete reports that the whole body was read; cut that
// reading the origin's body failed while the client was being answered
// (its answer is incomplete; a client that went away, or a status without a
// body, is not cut).
func tee(w http.ResponseWriter, resp *http.Response, store bool, limit int64, overflow func()) (body []byte, complete, tooLarge, cut bool) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	if store && resp.ContentLength > 0 && resp.ContentLength <= limit {
		body = make([]byte, 0, resp.ContentLength)
	}
	// Responses of unknown length (streams, server-sent events) are
	// flushed as they come, as httputil.ReverseProxy does.
	flush := resp.ContentLength < 0
	rc := http.NewResponseController(w)
	clientOK := true
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if store {
				if int64(len(body)+n) > limit {
					store, body, tooLarge = false, nil, true
					overflow()
				} else {
					body = append(body, buf[:n]...)
				}
			}
			if clientOK {
				if _, werr := w.Write(buf[:n]); werr != nil {
					clientOK = false
				} else if flush && rc.Flush() != nil {
					flush = false // the writer cannot flush: stop asking
				}
			}
			if !clientOK && !store {
				return nil, false, tooLarge, false
			}
		}
		if err == io.EOF {
			if body == nil && store {
				body = []byte{}
			}
			return body, true, tooLarge, false
		}
		if err != nil {
			return nil, false, tooLarge, clientOK
		}
	}
}

// copyEndToEnd copies a response's end-to-end fields (RFC 9110 §7.6.1:
// without hop-by-hop fields and those Connection names).
func copyEndToEnd(dst, src http.Header) {
	conn := rfc9111.ConnectionFields(rfc9111.Header(src))
	for k, v := range src {
		if rfc9111.IsHopByHop(k) {
			continue
		}
		skip := false
		for _, c := range conn {
			if c == k {
				skip = true
				break
			}
		}
		if !skip {
			dst[k] = v
		}
	}
}

// outbound clones the client's request for the origin. With stale, the
// stored response's validators replace the client's own conditionals (the
// client's are evaluated by the cache against what it serves, §4.3.2);
// strip alone removes the client's conditionals.
func outbound(ctx context.Context, r *http.Request, stale *entry, strip bool) *http.Request {
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Method = http.MethodGet
	if strip {
		delete(out.Header, "If-None-Match")
		delete(out.Header, "If-Modified-Since")
	}
	if stale != nil {
		if stale.etag != "" {
			out.Header["If-None-Match"] = []string{rfc9111.QuoteETag(stale.etag)}
		}
		if stale.lastModified != "" {
			out.Header["If-Modified-Since"] = []string{stale.lastModified}
		}
	}
	return out
}

// fetchContext returns the context of an origin exchange. A flight's
// leader fetches for its waiters too: the fetch outlives the leader's
// client as long as someone waits, and ends with it otherwise.
func (c *Cache) fetchContext(parent context.Context, f *flight, m mode) (context.Context, context.CancelFunc) {
	if f == nil || m.warm || m.background {
		return context.WithCancel(parent)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		if f.waiters.Load() == 0 {
			cancel()
		}
	})
	return ctx, func() { stop(); cancel() }
}

// insert stores a new response for a key, replacing the variants the same
// request would have selected and keeping at most max_variants.
func (c *Cache) insert(k Key, e *entry, req http.Header, now time.Time, rt *Route, p *rfc9111.Policy, warmed bool) {
	cfg := c.conf()
	c.store.Compute(k, func(old *resource, found bool) (*resource, otter.ComputeOp) {
		variants := make([]*entry, 1, cfg.MaxVariants)
		variants[0] = e
		if found {
			for _, o := range old.variants {
				if len(variants) < cfg.MaxVariants && !o.matches(req) {
					variants = append(variants, o)
				}
			}
		}
		return newResource(k, variants, now, p, cfg.Keep), otter.WriteOp
	})
	rt.stats.stores.Add(1)
	// A heavier route's response starts with extra frequency, so that
	// W-TinyLFU's admission does not turn it away before its first real
	// hit. A warmed one, which no client has asked for yet, starts with
	// the sketch's highest count: a directive warms it because a crowd is
	// forecast to ask for it, and in a full cache the probation victims'
	// counts (pages asked for a few times each) would otherwise turn it
	// away before the crowd arrives (TestWarmedPagesWinAdmission). The
	// sketch halves every count periodically, so a wrong warm list fades.
	n := int(rt.weightMilli/1000) - 1
	if !warmed {
		c.boost(k, n)
		return
	}
	// The store admits a new entry when its maintenance runs, which may
	// come (on its own goroutine) before reads of the entry are counted,
	// and the sketch counts reads through a lossy buffer: reads alone do
	// not raise a warmed entry's count reliably. Writes are counted
	// always, and the sketch keeps a key's counts after its entry is
	// turned away: so store the entry again until it is admitted, at most
	// warmBoost times (each store counts once, reads count when they land).
	// Warm fetches are paced (cache.warm.rate), so this stays off the
	// request path.
	for try := 1; ; try++ {
		c.boost(k, max(n, warmBoost))
		c.store.CleanUp()
		if _, ok := c.store.GetEntryQuietly(k); ok || try >= warmBoost {
			return
		}
		c.store.Compute(k, func(old *resource, found bool) (*resource, otter.ComputeOp) {
			if found {
				return old, otter.CancelOp
			}
			return newResource(k, []*entry{e}, now, p, cfg.Keep), otter.WriteOp
		})
	}
}

// warmBoost is the sketch count a warmed entry starts with: the 4-bit
// counters of TinyLFU's count-min sketch saturate at 15.
const warmBoost = 15

// replace puts a 304-refreshed response in place of the one it validated;
// storable false removes the old one instead (the 304 forbade storing).
func (c *Cache) replace(k Key, old, ne *entry, storable bool, now time.Time, p *rfc9111.Policy) {
	cfg := c.conf()
	c.store.Compute(k, func(cur *resource, found bool) (*resource, otter.ComputeOp) {
		var variants []*entry
		if storable {
			variants = append(variants, ne)
		}
		if found {
			for _, o := range cur.variants {
				if o != old && len(variants) < cfg.MaxVariants {
					variants = append(variants, o)
				}
			}
		}
		if len(variants) == 0 {
			if found {
				return nil, otter.InvalidateOp
			}
			return nil, otter.CancelOp
		}
		return newResource(k, variants, now, p, cfg.Keep), otter.WriteOp
	})
}

// markPass records that a URL's response could not be stored, unless
// something is stored for it.
func (c *Cache) markPass(k Key, now time.Time) {
	ttl := c.conf().PassTTL
	c.store.Compute(k, func(old *resource, found bool) (*resource, otter.ComputeOp) {
		if found && len(old.variants) > 0 {
			return old, otter.CancelOp
		}
		return passResource(k, now, ttl), otter.WriteOp
	})
}

// revalidateInBackground validates a stale response served under
// stale-while-revalidate, at most one fetch per key and MaxBackground in
// all; beyond that the next request tries again.
func (c *Cache) revalidateInBackground(r *http.Request, rt *Route, k Key, e *entry, origin Origin) {
	cfg := c.conf()
	if c.bg.Add(1) > int64(cfg.Coalesce.MaxBackground) {
		c.bg.Add(-1)
		return
	}
	f := c.flights.lead(k)
	if f == nil {
		c.bg.Add(-1)
		return
	}
	ctx, cancel := context.WithTimeout(c.life, cfg.FetchTimeout)
	br := r.Clone(ctx) // r belongs to the client's exchange, which ends first
	go func() {
		defer func() {
			cancel()
			c.bg.Add(-1)
		}()
		// Off any request's goroutine: a bug here must not take the
		// process down, as net/http would not let it on a request path.
		defer recoverLogged("background revalidation", k)
		c.fetch(discard{h: http.Header{}}, br, rt, origin, k, e, rfc9111.Verdict{Action: rfc9111.Validate},
			rfc9111.NoDirectives, "stale", f, mode{background: true})
	}()
}

// recoverLogged stops a panic in a goroutine the cache started and logs it.
func recoverLogged(what string, k Key) {
	if v := recover(); v != nil {
		logPanic(what, k, v)
	}
}

func logPanic(what string, k Key, v any) {
	slog.Error("cache: panic", "in", what, "route", k.Route, "host", k.Host, "target", k.Target, "panic", v, "stack", string(debug.Stack()))
}

// discard is the ResponseWriter of fetches nobody waits on.
type discard struct{ h http.Header }

// Header, Write and WriteHeader implement http.ResponseWriter.
func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}
