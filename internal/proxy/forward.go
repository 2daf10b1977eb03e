package proxy

import (
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/health"
)

// fastRand is the proxy's randomness for policies: math/rand/v2's top-level
// generator is per-thread ChaCha8, lock-free and allocation-free.
type fastRand struct{}

func (fastRand) Uint64() uint64 { return rand.Uint64() }

// route is one compiled route of a listener.
type route struct {
	name    string
	host    string // lower case; "" any; "*.x" suffix match
	prefix  string
	methods []string
	svc     *service
	prio    admission.Priority
	hasPrio bool // prio overrides the service's class
	rp      *httputil.ReverseProxy
	reqDur  prometheus.Observer
	codes   codeCounters // proxy-generated answers before an endpoint was tried
}

func (rt *route) matches(r *http.Request) bool {
	if len(rt.methods) > 0 {
		ok := false
		for _, m := range rt.methods {
			if m == r.Method {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if rt.host != "" && !hostMatches(rt.host, r.Host) {
		return false
	}
	return pathHasPrefix(r.URL.Path, rt.prefix)
}

// hostMatches compares a route host pattern with a request's Host header
// (port stripped, case-insensitive). "*.example.com" matches any subdomain
// but not example.com itself.
func hostMatches(pattern, host string) bool {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if strings.HasPrefix(pattern, "*.") {
		suffix := pattern[1:]
		return len(host) > len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix)
	}
	return strings.EqualFold(pattern, host)
}

// pathHasPrefix matches on segment boundaries: /cart matches /cart and
// /cart/x, not /carts.
func pathHasPrefix(path, prefix string) bool {
	if prefix == "/" || prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// listenerHandler serves one listener, reading the current routes on every
// request so that a reload takes effect for the next request while requests
// in flight finish on what they started with.
type listenerHandler struct {
	px  *Proxy
	key string
}

func (h *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.px.gen.Load()
	lr := g.listeners[h.key]
	if lr == nil || h.px.draining.Load() {
		w.Header().Set("Connection", "close")
		writeProxyError(w, http.StatusServiceUnavailable, reasonShuttingDown)
		return
	}
	var rt *route
	for _, c := range lr.routes {
		if c.matches(r) {
			rt = c
			break
		}
	}
	if rt == nil {
		h.px.noRoute.Inc()
		writeProxyError(w, http.StatusNotFound, reasonNoRoute)
		return
	}
	if r.ContentLength != 0 {
		limit := g.maxBody
		if r.ContentLength > limit {
			rt.svc.countLocal(rt, http.StatusRequestEntityTooLarge, reasonBodyTooLarge)
			writeProxyError(w, http.StatusRequestEntityTooLarge, reasonBodyTooLarge)
			return
		}
		if r.ContentLength < 0 {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		// The body is read while the request is forwarded: a client that
		// stalls it must not hold the exchange (and an upstream
		// connection) past the request timeout.
		if d := rt.svc.snap.Load().set.requestTimeout; d > 0 {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
	}
	h.px.setForwarded(r, g.trusted)
	rt.rp.ServeHTTP(w, r)
}

// setForwarded computes X-Forwarded-For/-Proto/-Host and stores them on the
// inbound request, from where Rewrite copies them to the outbound one.
// Client-supplied values are kept (and appended to) only when the peer is a
// trusted proxy; otherwise a client could forge its address for every
// backend. Writing them on the inbound header before ReverseProxy clones it
// sizes the clone's map for them, which saves a map growth per request; a
// missing User-Agent is recorded as empty for the same reason (and so that
// none is sent, as ReverseProxy intends).
func (px *Proxy) setForwarded(in *http.Request, trusted []netip.Prefix) {
	peerIP := hostOnly(in.RemoteAddr)
	trust := false
	if len(trusted) > 0 {
		if a, err := netip.ParseAddr(peerIP); err == nil {
			a = a.Unmap()
			for _, p := range trusted {
				if p.Contains(a) {
					trust = true
					break
				}
			}
		}
	}
	// One backing array for the three values: one allocation, not three.
	vals := make([]string, 3)
	h := in.Header
	if prior := h["X-Forwarded-For"]; trust && len(prior) > 0 {
		vals[0] = strings.Join(prior, ", ") + ", " + peerIP
	} else {
		vals[0] = peerIP
	}
	if v := h.Get("X-Forwarded-Proto"); trust && v != "" {
		vals[1] = v
	} else if in.TLS != nil {
		vals[1] = "https"
	} else {
		vals[1] = "http"
	}
	if v := h.Get("X-Forwarded-Host"); trust && v != "" {
		vals[2] = v
	} else {
		vals[2] = in.Host
	}
	h["X-Forwarded-For"] = vals[0:1:1]
	h["X-Forwarded-Proto"] = vals[1:2:2]
	h["X-Forwarded-Host"] = vals[2:3:3]
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyUA
	}
}

var emptyUA = []string{""}

// copyForwarded moves the values setForwarded computed to the outbound
// request (ReverseProxy strips forwarding headers before Rewrite).
func copyForwarded(pr *httputil.ProxyRequest) {
	in, out := pr.In.Header, pr.Out.Header
	out["X-Forwarded-For"] = in["X-Forwarded-For"]
	out["X-Forwarded-Proto"] = in["X-Forwarded-Proto"]
	out["X-Forwarded-Host"] = in["X-Forwarded-Host"]
}

// hostOnly strips the port from a RemoteAddr ("1.2.3.4:5", "[::1]:5")
// without allocating.
func hostOnly(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr
	}
	h := addr[:i]
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	if strings.HasPrefix(h, "::ffff:") && strings.Count(h, ".") == 3 {
		h = h[len("::ffff:"):] // IPv4-mapped: show the IPv4 address
	}
	return h
}

// newReverseProxy builds the httputil.ReverseProxy of one route.
func (px *Proxy) newReverseProxy(rt *route) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			// The transport dials the endpoint it picks; the URL only
			// carries the path and query. Host is the client's, as
			// virtual-hosted backends expect.
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Host
			pr.Out.Host = pr.In.Host
			copyForwarded(pr)
		},
		Transport:    &routeTransport{rt: rt},
		BufferPool:   bufferPool{},
		ErrorHandler: px.errorHandler(rt),
		ErrorLog:     px.stdLog,
	}
}

// bufferPool lends ReverseProxy its copy buffers.
type bufferPool struct{}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBufs.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBufs.Put(&b) }

// routeTransport is the http.RoundTripper of one route: it picks endpoints,
// retries when that is safe, and reports every outcome to the policy, the
// health state and the metrics.
type routeTransport struct{ rt *route }

// idempotent methods may be retried (RFC 9110 §9.2.2).
func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// reqState follows one client request through its attempts. It is pooled:
// after release nothing may touch it.
type reqState struct {
	rt     *route
	svc    *service
	snap   *snapshot
	picker balance.Picker
	start  time.Time

	info    balance.PickInfo
	done    balance.DoneInfo // passed by pointer to Done: lives here, not on the heap per call
	exclude [4]*balance.Endpoint
	pick    balance.Pick
	ep      *endpoint
	hdrLat  time.Duration
	status  int
	load    balance.LoadReport
	bytesIn int64

	lim        *admission.Limiter // admitted by this limiter; nil if none
	dropped    bool               // the last attempt timed out or could not connect
	hdrAt      time.Time          // when the final response's headers arrived
	retryHeld  bool
	discarding bool // closing a response we retry past: not the request's end
	responded  bool // headers of the final response are being returned
	bodyEnded  bool // the body ended before responded was set
	bodyN      int64
	bodyErr    error
	replay     *replayBody
	cbody      *clientBody // the client's streamed body, when not buffered
}

var reqStates = sync.Pool{New: func() any { return new(reqState) }}

func (t *routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := t.rt
	svc := rt.svc
	st := reqStates.Get().(*reqState)
	*st = reqState{rt: rt, svc: svc, snap: svc.snap.Load(), start: time.Now()}
	st.picker = st.snap.picker
	st.info.Rand = fastRand{}
	st.info.Exclude = st.exclude[:0]
	svc.active.Add(1)

	if lim := svc.limiter.Load(); lim != nil {
		prio := st.snap.set.prio
		if rt.hasPrio {
			prio = rt.prio
		}
		if !lim.Acquire(prio) {
			err := st.proxyErr(&proxyError{status: http.StatusServiceUnavailable, reason: reasonOverloaded})
			st.release()
			return nil, err
		}
		st.lim = lim
	}

	resp, err := st.run(req, st.snap.set)
	if err != nil {
		st.release()
		return nil, err
	}
	st.responded = true
	if st.bodyEnded {
		// An empty body already released its connection inside exchange.
		st.complete(st.bodyN, st.bodyErr)
	}
	return resp, nil
}

func (st *reqState) run(req *http.Request, set *serviceSettings) (*http.Response, error) {
	ctx := req.Context()
	var deadline time.Time
	if set.requestTimeout > 0 {
		deadline = st.start.Add(set.requestTimeout)
	}
	replayable := idempotent(req.Method) || req.Header.Get("Idempotency-Key") != ""
	canReplay := true
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		canReplay = false
		if replayable && set.attempts > 0 && req.ContentLength > 0 && req.ContentLength <= set.maxReplayBody {
			rb, err := bufferBody(req)
			if err != nil {
				return nil, st.proxyErr(clientBodyError(err))
			}
			st.replay = rb
			canReplay = true
		} else {
			st.cbody = &clientBody{rc: req.Body}
			req.Body = st.cbody
		}
		if req.ContentLength > 0 {
			st.bytesIn = req.ContentLength
		}
	}

	// Affinity: a valid cookie naming an eligible endpoint pins the first
	// attempt; a hash key routes through the bounded-load ring.
	sticky := -1
	if c := set.cookie; c != nil {
		if v, ok := cookieValue(req.Header, c.name); ok {
			if id, ok := c.parse(v); ok {
				if slot, ok := st.snap.byKey[id]; ok {
					sticky = slot
				}
			}
		}
	} else if st.snap.ring != nil {
		if key := affinityKey(req, set); key != "" {
			st.info.Hash = balance.HashString(key)
			st.info.HasHash = true
			st.picker = st.snap.ring
		}
	}

	var lastErr *proxyError
	for attempt := 0; ; attempt++ {
		var err error
		if attempt == 0 && sticky >= 0 {
			st.pick = st.picker.Take(sticky)
		} else {
			if attempt == 0 {
				st.info.Now = st.start
			} else {
				st.info.Now = time.Now()
			}
			if st.pick, err = st.picker.Pick(&st.info); err != nil {
				if lastErr != nil {
					return nil, lastErr
				}
				return nil, st.proxyErr(&proxyError{status: http.StatusServiceUnavailable, reason: reasonNoHealthy, err: err})
			}
		}
		st.ep = st.snap.eps[st.pick.Slot]
		if st.replay != nil {
			st.replay.rewind()
			req.Body = st.replay
		}
		st.bodyEnded = false
		attemptStart := st.start
		if attempt > 0 {
			attemptStart = time.Now()
		}
		hdrDeadline := deadline
		if set.perTryTimeout > 0 {
			if d := attemptStart.Add(set.perTryTimeout); hdrDeadline.IsZero() || d.Before(hdrDeadline) {
				hdrDeadline = d
			}
		}
		resp, err := st.ep.up.exchange(ctx, set.abortOnClose, req, attemptStart, !replayable, hdrDeadline, deadline, st)
		now := time.Now()
		st.hdrLat = now.Sub(attemptStart)
		if err != nil {
			pe, cond := st.attemptFailed(err, now)
			lastErr = pe
			if cond == 0 {
				return nil, pe
			}
			_, isDial := err.(*dialError)
			if st.mayRetry(ctx, set, attempt, cond, isDial || (replayable && canReplay), deadline) {
				continue
			}
			return nil, pe
		}

		// Response headers arrived.
		st.hdrAt = now
		st.status = resp.StatusCode
		st.load = parseLoad(resp.Header)
		st.ep.upstreamLatency.Observe(st.hdrLat.Seconds())
		st.svc.observe(st.ep, health.Classify(resp.StatusCode, false), now)
		if cond := statusCondition(resp.StatusCode); cond&set.retryOn != 0 &&
			st.mayRetry(ctx, set, attempt, cond, replayable && canReplay, deadline) {
			st.discarding = true
			resp.Body.Close()
			st.discarding = false
			st.done = balance.DoneInfo{Now: now, Latency: st.hdrLat, Status: resp.StatusCode, Load: st.load}
			st.picker.Done(st.pick, &st.done)
			continue
		}
		if c := set.cookie; c != nil && (sticky < 0 || attempt > 0) {
			resp.Header.Add("Set-Cookie", c.setCookie(st.ep.key))
		}
		return resp, nil
	}
}

// attemptFailed accounts a transport failure. It returns the error to show
// the client and the retry condition it matches (0: never retry, e.g. the
// client went away or its body was bad).
func (st *reqState) attemptFailed(err error, now time.Time) (*proxyError, int) {
	st.done = balance.DoneInfo{Now: now, Latency: st.hdrLat, Failed: true}
	st.picker.Done(st.pick, &st.done)
	// A failure to read the client's body is the client's fault, whatever
	// error the write path wrapped it in (net/http's request writer hides
	// it in a type without Unwrap).
	if st.cbody != nil && st.cbody.err != nil {
		return st.proxyErr(clientBodyError(st.cbody.err)), 0
	}
	var ue *upstreamError
	pe := &proxyError{endpoint: st.ep.be.ID, err: err}
	cond := 0
	switch {
	case errors.As(err, new(*dialError)):
		pe.status, pe.reason, cond = http.StatusBadGateway, reasonConnectFailure, retryConnect
	case errors.As(err, &ue) && ue.kind == "timeout":
		pe.status, pe.reason, cond = http.StatusGatewayTimeout, reasonTimeout, retryTimeout
	case errors.As(err, &ue) && ue.kind == "canceled":
		pe.status, pe.reason = statusClientCanceled, reasonClientCanceled
		return st.proxyErr(pe), 0
	default:
		pe.status, pe.reason, cond = http.StatusBadGateway, reasonReset, retryReset
	}
	st.svc.observe(st.ep, health.GatewayFailure, now)
	st.dropped = pe.reason == reasonTimeout || pe.reason == reasonConnectFailure
	return st.proxyErr(pe), cond
}

// proxyErr stamps an error with what the error handler needs after st is
// released.
func (st *reqState) proxyErr(pe *proxyError) *proxyError {
	pe.start = st.start
	pe.bytesIn = st.bytesIn
	if pe.endpoint == "" && st.ep != nil {
		pe.endpoint = st.ep.be.ID
	}
	if st.ep != nil {
		pe.ep = st.ep
	}
	return pe
}

// mayRetry decides whether to retry and, if so, waits out the backoff.
func (st *reqState) mayRetry(ctx interface {
	Done() <-chan struct{}
	Err() error
}, set *serviceSettings, attempt, cond int, safe bool, deadline time.Time) bool {
	if attempt >= set.attempts || cond&set.retryOn == 0 || !safe || ctx.Err() != nil {
		return false
	}
	svc := st.svc
	if !st.retryHeld {
		limit := int64(set.budgetPercent / 100 * float64(svc.active.Load()))
		if limit < set.minRetryConc {
			limit = set.minRetryConc
		}
		if svc.retrying.Add(1) > limit {
			svc.retrying.Add(-1)
			svc.px.metrics.BudgetExhausted.WithLabelValues(svc.name).Inc()
			return false
		}
		st.retryHeld = true
	}
	backoff := set.backoffBase << attempt
	if backoff > set.backoffMax || backoff <= 0 {
		backoff = set.backoffMax
	}
	if backoff > 0 {
		backoff = time.Duration(rand.Int64N(int64(backoff)) + 1) // full jitter
	}
	if !deadline.IsZero() && time.Now().Add(backoff).After(deadline) {
		return false
	}
	if backoff > 0 {
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
	if len(st.info.Exclude) < cap(st.info.Exclude) {
		st.info.Exclude = append(st.info.Exclude, st.ep.be)
	} else {
		// More retries than slots: forget the oldest tried endpoint.
		copy(st.info.Exclude, st.info.Exclude[1:])
		st.info.Exclude[len(st.info.Exclude)-1] = st.ep.be
	}
	svc.px.metrics.Retries.WithLabelValues(svc.name, conditionName(cond)).Inc()
	return true
}

func conditionName(cond int) string {
	switch {
	case cond&retryConnect != 0:
		return "connect_failure"
	case cond&retryReset != 0:
		return "reset"
	case cond&retryTimeout != 0:
		return "timeout"
	case cond&retryGateway != 0:
		return "gateway_error"
	}
	return "5xx"
}

// statusCondition maps a response status to the retry conditions it meets.
func statusCondition(code int) int {
	switch {
	case code == 502 || code == 503 || code == 504:
		return retryGateway | retry5xx
	case code >= 500 && code <= 599:
		return retry5xx
	}
	return 0
}

// bodyDone implements exchangeHooks: the end of the final response body.
func (st *reqState) bodyDone(n int64, err error) {
	if st.discarding {
		return
	}
	if !st.responded {
		st.bodyEnded, st.bodyN, st.bodyErr = true, n, err
		return
	}
	st.complete(n, err)
}

// complete accounts a request that got a response from an endpoint.
func (st *reqState) complete(n int64, err error) {
	now := time.Now()
	st.done = balance.DoneInfo{Now: now, Latency: st.hdrLat, Status: st.status, Load: st.load}
	st.picker.Done(st.pick, &st.done)
	if st.lim != nil {
		st.lim.Release(now, st.hdrAt.Sub(st.start), st.status == 503 || st.status == 504)
		st.lim = nil
	}
	total := now.Sub(st.start)
	rt, svc, ep := st.rt, st.svc, st.ep
	ep.codes.get(svc, rt, ep.be.ID, st.status).Inc()
	rt.reqDur.Observe(total.Seconds())
	isErr := st.status >= 500 || (err != nil && err != errBodyClosedEarly)
	svc.tel.Observe(total, isErr, st.bytesIn, n)
	ep.tel.Observe(total, isErr, st.bytesIn, n)
	if st.bytesIn > 0 {
		svc.bytesIn.Add(float64(st.bytesIn))
	}
	if n > 0 {
		svc.bytesOut.Add(float64(n))
	}
	st.release()
}

// release ends the request's claim on the service and recycles st.
func (st *reqState) release() {
	if st.lim != nil {
		// Ended without a response from an endpoint: a timeout or an
		// overloaded path is a drop; anything else (the client left, no
		// endpoint to try) says nothing about latency.
		if st.ep != nil && !st.hdrAt.IsZero() {
			st.lim.Release(time.Now(), st.hdrAt.Sub(st.start), false)
		} else if st.dropped {
			st.lim.Release(time.Now(), time.Since(st.start), true)
		} else {
			st.lim.Cancel()
		}
	}
	st.svc.active.Add(-1)
	if st.retryHeld {
		st.svc.retrying.Add(-1)
	}
	if st.replay != nil {
		st.replay.free()
	}
	*st = reqState{}
	reqStates.Put(st)
}

// errorHandler answers requests that got no usable response.
func (px *Proxy) errorHandler(rt *route) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		var pe *proxyError
		if !errors.As(err, &pe) {
			pe = &proxyError{status: http.StatusBadGateway, reason: reasonBadGateway, err: err, start: time.Now()}
		}
		if pe.status != statusClientCanceled {
			writeProxyError(w, pe.status, pe.reason)
		}
		svc := rt.svc
		total := time.Since(pe.start)
		svc.px.metrics.ProxyErrors.WithLabelValues(svc.name, pe.reason).Inc()
		if pe.ep != nil {
			pe.ep.codes.get(svc, rt, pe.ep.be.ID, pe.status).Inc()
			pe.ep.tel.Observe(total, true, pe.bytesIn, 0)
		} else {
			rt.codes.get(svc, rt, "", pe.status).Inc()
		}
		rt.reqDur.Observe(total.Seconds())
		svc.tel.Observe(total, true, pe.bytesIn, 0)
		if pe.status >= 500 {
			px.log.Debug("proxy error", "service", svc.name, "route", rt.name, "reason", pe.reason, "err", pe.err)
		}
	}
}

// countLocal accounts a response the listener generated before forwarding.
func (s *service) countLocal(rt *route, status int, reason string) {
	s.px.metrics.ProxyErrors.WithLabelValues(s.name, reason).Inc()
	rt.codes.get(s, rt, "", status).Inc()
	s.tel.Observe(0, status >= 500, 0, 0)
}

// parseLoad reads and strips the backend's X-Lbsys-Load report
// ("rif=<in-flight>,util=<0..1>"): it is for the balancer, not the client.
func parseLoad(h http.Header) balance.LoadReport {
	vs, ok := h[headerLoad]
	if !ok {
		return balance.LoadReport{}
	}
	delete(h, headerLoad)
	if len(vs) == 0 {
		return balance.LoadReport{}
	}
	var lr balance.LoadReport
	v := vs[0]
	for len(v) > 0 {
		var kv string
		if i := strings.IndexByte(v, ','); i >= 0 {
			kv, v = v[:i], v[i+1:]
		} else {
			kv, v = v, ""
		}
		kv = strings.TrimSpace(kv)
		eq := strings.IndexByte(kv, '=')
		if eq < 0 {
			continue
		}
		key, val := kv[:eq], kv[eq+1:]
		switch key {
		case "rif":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
				lr.RIF = n
				lr.Valid = true
			}
		case "util":
			if f, err := strconv.ParseFloat(val, 64); err == nil && f >= 0 && f <= 1 {
				lr.Util = f
				lr.Valid = true
			}
		}
	}
	return lr
}

// affinityKey returns the request's hash affinity key.
func affinityKey(req *http.Request, set *serviceSettings) string {
	if set.hashHeader != "" {
		return req.Header.Get(set.hashHeader)
	}
	if set.hashCookie != "" {
		v, _ := cookieValue(req.Header, set.hashCookie)
		return v
	}
	return ""
}

// replayBody is a buffered request body that can be sent again.
type replayBody struct {
	buf    []byte
	off    int
	pooled *[]byte
}

var replayBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// bufferBody reads a request body of known length so retries can resend it.
func bufferBody(req *http.Request) (*replayBody, error) {
	n := int(req.ContentLength)
	rb := &replayBody{}
	if n <= 64<<10 {
		rb.pooled = replayBufs.Get().(*[]byte)
		rb.buf = (*rb.pooled)[:n]
	} else {
		rb.buf = make([]byte, n)
	}
	_, err := io.ReadFull(req.Body, rb.buf)
	req.Body.Close()
	if err != nil {
		rb.free()
		return nil, err
	}
	return rb, nil
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.off >= len(b.buf) {
		return 0, io.EOF
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

func (b *replayBody) Close() error { return nil }
func (b *replayBody) rewind()      { b.off = 0 }

// WriteTo lets io.Copy send the buffer in one write.
func (b *replayBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.buf[b.off:])
	b.off += n
	return int64(n), err
}

func (b *replayBody) free() {
	if b.pooled != nil {
		*b.pooled = (*b.pooled)[:0]
		replayBufs.Put(b.pooled)
		b.pooled = nil
	}
	b.buf = nil
}

// clientBody remembers read errors of the client's request body, so a
// client that sends less than it announced (or too much) gets a 4xx and the
// endpoint is not blamed for it.
type clientBody struct {
	rc  io.ReadCloser
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// clientBodyError maps a failure to read the client's body.
func clientBodyError(err error) *proxyError {
	if errors.As(err, new(*http.MaxBytesError)) {
		return &proxyError{status: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge, err: err}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &proxyError{status: http.StatusRequestTimeout, reason: reasonBodyTimeout, err: err}
	}
	return &proxyError{status: http.StatusBadRequest, reason: reasonBadRequestBody, err: err}
}

// codeCounters caches the requests_total child per (route, code) for one
// endpoint (or a route's proxy-generated answers): a copy-on-write map, so
// the request path does one map lookup and an atomic add.
type codeCounters struct {
	m  atomic.Pointer[map[codeKey]prometheus.Counter]
	mu sync.Mutex
}

type codeKey struct {
	rt   *route
	code int
}

func (c *codeCounters) get(svc *service, rt *route, endpoint string, code int) prometheus.Counter {
	k := codeKey{rt, code}
	if m := c.m.Load(); m != nil {
		if ctr, ok := (*m)[k]; ok {
			return ctr
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	next := make(map[codeKey]prometheus.Counter, 8)
	if old != nil && len(*old) < 512 { // stale routes from many reloads are dropped
		for kk, v := range *old {
			next[kk] = v
		}
	}
	ctr := svc.px.metrics.Requests.WithLabelValues(svc.name, rt.name, endpoint, strconv.Itoa(code))
	next[k] = ctr
	c.m.Store(&next)
	return ctr
}
