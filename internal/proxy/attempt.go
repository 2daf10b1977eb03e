package proxy

// The attempts of one request: endpoint picks, retries, the outcome
// reported to the policy, health, admission and the metrics (split from
// forward.go, issue #16).

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/health"
	"github.com/lbsys/lbsys/internal/proxy/httpfield"
	"github.com/lbsys/lbsys/internal/proxy/upstream"
	"github.com/lbsys/lbsys/internal/retry"
)

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
	start  time.Time // the proxy's clock: latency, feedback, admission
	wall   time.Time // the wall clock at the same moment: socket deadlines

	info    balance.PickInfo
	done    balance.DoneInfo // passed by pointer to Done: lives here, not on the heap per call
	exclude [4]*balance.Endpoint
	pick    balance.Pick
	ep      *endpoint
	hdrLat  time.Duration
	status  int
	load    balance.LoadReport
	bytesIn int64

	attempts   int                // attempts made (for the access log)
	sticky     bool               // an affinity cookie chose the first attempt
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
	cbody      *clientBody    // the client's streamed body, when not buffered
	resp       *http.Response // the final response, once returned
}

var reqStates = sync.Pool{New: func() any { return new(reqState) }}

func (t *routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt := t.rt
	svc := rt.svc
	st := reqStates.Get().(*reqState)
	*st = reqState{rt: rt, svc: svc, snap: svc.snap.Load()}
	st.start, st.wall = svc.px.times()
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
			if rt.logs {
				noteShed(req, st.snap.set.policy, prio)
			}
			err := st.proxyErr(&proxyError{status: http.StatusServiceUnavailable, reason: reasonOverloaded})
			st.release()
			return nil, err
		}
		st.lim = lim
	}

	resp, err := st.run(req, st.snap.set)
	if rt.logs {
		st.noteAccess(req, err)
	}
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
	var deadline time.Time // wall clock
	if set.requestTimeout > 0 {
		deadline = st.wall.Add(set.requestTimeout)
	}
	replayable := idempotent(req.Method) || req.Header.Get("Idempotency-Key") != ""
	canReplay := true
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		canReplay = false
		if replayable && set.retry.Attempts > 0 && req.ContentLength > 0 && req.ContentLength <= set.maxReplayBody {
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
					st.sticky = true
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
				st.info.Now = st.svc.px.now()
			}
			if st.pick, err = st.picker.Pick(&st.info); err != nil {
				if lastErr != nil {
					return nil, lastErr
				}
				return nil, st.proxyErr(&proxyError{status: http.StatusServiceUnavailable, reason: reasonNoHealthy, err: err})
			}
		}
		st.ep = st.snap.eps[st.pick.Slot]
		st.attempts = attempt + 1
		if st.replay != nil {
			st.replay.rewind()
			req.Body = st.replay
		}
		st.bodyEnded = false
		attemptStart, attemptWall := st.start, st.wall
		if attempt > 0 {
			attemptStart, attemptWall = st.svc.px.times()
		}
		hdrDeadline := deadline
		if set.perTryTimeout > 0 {
			if d := attemptWall.Add(set.perTryTimeout); hdrDeadline.IsZero() || d.Before(hdrDeadline) {
				hdrDeadline = d
			}
		}
		resp, err := st.ep.up.Exchange(ctx, set.abortOnClose, req, attemptStart, attemptWall, !replayable, hdrDeadline, deadline, st)
		now := st.svc.px.now()
		st.hdrLat = now.Sub(attemptStart)
		if err != nil {
			pe, cond := st.attemptFailed(err, now)
			lastErr = pe
			if cond == 0 {
				return nil, pe
			}
			_, isDial := err.(*upstream.DialError)
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
		if cond := retry.StatusCondition(resp.StatusCode); cond&set.retry.On != 0 &&
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
		st.resp = resp
		return resp, nil
	}
}

// attemptFailed accounts a transport failure. It returns the error to show
// the client and the retry condition it matches (0: never retry, e.g. the
// client went away or its body was bad).
func (st *reqState) attemptFailed(err error, now time.Time) (*proxyError, retry.Condition) {
	st.done = balance.DoneInfo{Now: now, Latency: st.hdrLat, Failed: true}
	st.picker.Done(st.pick, &st.done)
	// A failure to read the client's body is the client's fault, whatever
	// error the write path wrapped it in (net/http's request writer hides
	// it in a type without Unwrap).
	if st.cbody != nil && st.cbody.err != nil {
		return st.proxyErr(clientBodyError(st.cbody.err)), 0
	}
	var ue *upstream.Error
	pe := &proxyError{endpoint: st.ep.be.ID, err: err}
	var cond retry.Condition
	switch {
	case isFieldError(err):
		// Refused before anything was sent: the request, not the
		// endpoint, is at fault.
		pe.status, pe.reason = http.StatusBadRequest, reasonInvalidHeader
		return st.proxyErr(pe), 0
	case errors.As(err, new(*upstream.DialError)):
		pe.status, pe.reason, cond = http.StatusBadGateway, reasonConnectFailure, retry.ConnectFailure
	case errors.As(err, &ue) && ue.Kind == "timeout":
		pe.status, pe.reason, cond = http.StatusGatewayTimeout, reasonTimeout, retry.Timeout
	case errors.As(err, &ue) && ue.Kind == "invalid":
		// A field a lenient client could frame by: not passed on, and
		// the endpoint is blamed as for a broken connection.
		pe.status, pe.reason, cond = http.StatusBadGateway, reasonInvalidResponse, retry.Reset
	case errors.As(err, &ue) && ue.Kind == "canceled":
		pe.status, pe.reason = statusClientCanceled, reasonClientCanceled
		return st.proxyErr(pe), 0
	default:
		pe.status, pe.reason, cond = http.StatusBadGateway, reasonReset, retry.Reset
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
}, set *serviceSettings, attempt int, cond retry.Condition, safe bool, deadline time.Time) bool {
	// attempt counts from 0: after the first try, retry number 1 is asked.
	if !set.retry.Wants(cond, attempt+1, safe) || ctx.Err() != nil {
		return false
	}
	svc := st.svc
	if !st.retryHeld {
		if svc.retrying.Add(1) > set.retry.Budget(svc.active.Load()) {
			svc.retrying.Add(-1)
			svc.px.metrics.BudgetExhausted.WithLabelValues(svc.name).Inc()
			return false
		}
		st.retryHeld = true
	}
	backoff := set.retry.Backoff(attempt+1, rand.Int64N) // full jitter
	// The deadline and the backoff's timer are the wall clock's: they
	// bound socket work.
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
	svc.px.metrics.Retries.WithLabelValues(svc.name, cond.Name()).Inc()
	return true
}

// BodyDone implements upstream.Hooks: the end of the final response body.
func (st *reqState) BodyDone(n int64, err error) {
	if st.discarding {
		return
	}
	if err == nil && st.resp != nil {
		// Trailers arrive after the body, when the response can no
		// longer be refused: invalid and framing ones are dropped before
		// ReverseProxy passes them on.
		upstream.DropInvalidTrailers(st.resp.Trailer)
	}
	if !st.responded {
		st.bodyEnded, st.bodyN, st.bodyErr = true, n, err
		return
	}
	st.complete(n, err)
}

// complete accounts a request that got a response from an endpoint.
func (st *reqState) complete(n int64, err error) {
	now := st.svc.px.now()
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
	isErr := st.status >= 500 || (err != nil && err != upstream.ErrBodyClosedEarly)
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
			st.lim.Release(st.svc.px.now(), st.hdrAt.Sub(st.start), false)
		} else if st.dropped {
			now := st.svc.px.now()
			st.lim.Release(now, now.Sub(st.start), true)
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
			pe = &proxyError{status: http.StatusBadGateway, reason: reasonBadGateway, err: err, start: px.now()}
		}
		if pe.status != statusClientCanceled {
			writeProxyError(w, pe.status, pe.reason)
		} else {
			noteProxyError(w, pe.reason)
		}
		svc := rt.svc
		total := px.now().Sub(pe.start)
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

// isFieldError reports whether err is the upstream writer refusing a field
// (not a malformed response, which comes wrapped in an upstream.Error).
func isFieldError(err error) bool {
	_, ok := err.(*httpfield.Error)
	return ok
}
