package proxy

import (
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/cache"
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
	logs    bool // the listener has an access log: the transport notes what it did
	reqDur  prometheus.Observer
	codes   codeCounters // proxy-generated answers before an endpoint was tried
	// cache is the route's cache handle, nil when it does not cache;
	// origin is its forwarding as the cache's Origin, nil when the proxy
	// caches nothing (then every request takes the plain path).
	cache  *cache.Route
	origin *routeOrigin
}

// matches reports whether the route takes r; path is r's escaped path.
func (rt *route) matches(r *http.Request, path string) bool {
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
	return pathHasPrefix(path, rt.prefix)
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
	// netHTTP: served by net/http.Server, which reads up to 256 KiB of an
	// unread request body after the handler returns, with no deadline of
	// its own; the handler gives it one.
	netHTTP bool
}

func (h *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.px.gen.Load()
	lr := g.listeners[h.key]
	if lr != nil && lr.alog != nil {
		h.serveLogged(g, lr, w, r)
		return
	}
	h.serve(g, lr, w, r, nil)
}

// serve routes and forwards a request; rec is its access record when the
// listener logs (nil otherwise).
func (h *listenerHandler) serve(g *generation, lr *listenerRoutes, w http.ResponseWriter, r *http.Request, rec *accessRecord) {
	if lr == nil || h.px.draining.Load() {
		w.Header().Set("Connection", "close")
		h.refuseBody(w, r)
		writeProxyError(w, http.StatusServiceUnavailable, reasonShuttingDown)
		return
	}
	if ambiguousTarget(r) {
		h.px.badTarget.Inc()
		w.Header().Set("Connection", "close")
		h.refuseBody(w, r)
		writeProxyError(w, http.StatusBadRequest, reasonAmbiguousPath)
		return
	}
	// Route on the path as it will be forwarded (upstream's writeRequest sends
	// EscapedPath), so that what selected the route is what the endpoint
	// reads.
	path := r.URL.EscapedPath()
	var rt *route
	for _, c := range lr.routes {
		if c.matches(r, path) {
			rt = c
			break
		}
	}
	if rt == nil {
		h.px.noRoute.Inc()
		h.refuseBody(w, r)
		writeProxyError(w, http.StatusNotFound, reasonNoRoute)
		return
	}
	if rec != nil {
		rec.rt = rt
	}
	if r.ContentLength != 0 {
		limit := g.maxBody
		if r.ContentLength > limit {
			rt.svc.countLocal(rt, http.StatusRequestEntityTooLarge, reasonBodyTooLarge)
			h.refuseBody(w, r)
			writeProxyError(w, http.StatusRequestEntityTooLarge, reasonBodyTooLarge)
			return
		}
		if r.ContentLength < 0 {
			mw := w
			if rec != nil {
				mw = rec.w.ResponseWriter // net/http closes the connection through its own writer
			}
			r.Body = http.MaxBytesReader(mw, r.Body, limit)
		}
		// The body is read while the request is forwarded: a client that
		// stalls it must not hold the exchange (and an upstream
		// connection) past the request timeout.
		if d := rt.svc.snap.Load().set.requestTimeout; d > 0 {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
	}
	if len(r.TransferEncoding) > 0 {
		// RFC 9112 §6.1: close after a request that may have carried both
		// Content-Length and Transfer-Encoding (the parser removed the
		// former). The lbsys engine does this itself; net/http does not.
		w.Header().Set("Connection", "close")
	}
	if rt.origin != nil && (rt.cache != nil || !safeMethod(r.Method)) {
		// A cached route; or a write on another route of a proxy that
		// caches, which may invalidate what it changed (RFC 9111 §4.4).
		h.px.serveCached(w, r, rt, rec)
	} else {
		h.px.forward(w, r, rt, g.trusted)
	}
	if h.netHTTP && r.ContentLength != 0 {
		// What the endpoint did not read of the body (it answered early,
		// or failed) is drained by net/http now: bound it. The lbsys
		// engine bounds its own drain.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyDrainTimeout))
	}
}

// refuseBody prepares an answer given without reading the request body:
// the connection closes after it (the lbsys engine then reads nothing
// more), and net/http's drain of the unread body, which it does whatever
// the answer says, is bounded by a read deadline.
func (h *listenerHandler) refuseBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	w.Header().Set("Connection", "close")
	if h.netHTTP {
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyDrainTimeout))
	}
}

// ambiguousTarget reports a request target an endpoint could resolve to
// another path than the one it was routed by. Routes match the escaped path,
// which is what is forwarded (see listenerHandler), so percent-encoding
// cannot move a request to another route; what remains are dot-segments,
// which a backend resolves ("/public/../admin" serves /admin, routed as
// /public), including encoded ones ("%2e%2e"), ones behind encoded or
// literal separators ("%2F", "%5C", "\", which some backends treat as "/")
// and servlet-style ones with parameters ("..;x"), and targets that are no
// path at all ("a:b", "*" outside OPTIONS). They are refused rather than
// normalized: a normalization of ours could differ from the backend's.
func ambiguousTarget(r *http.Request) bool {
	u := r.URL
	p := u.Path // decoded: %2e, %2F and %5C are plain characters here
	switch {
	case u.Opaque != "":
		return true
	case p == "":
		return u.Host == "" // only an absolute-form target may omit it
	case p[0] != '/':
		return p != "*" || r.Method != http.MethodOptions
	}
	// Fast path: no dot after a separator, no dot-segment.
	if !strings.Contains(p, "/.") && !strings.Contains(p, "\\.") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '/' && p[i] != '\\' {
			continue
		}
		seg := p[i+1:]
		if j := strings.IndexAny(seg, "/\\"); j >= 0 {
			seg = seg[:j]
		}
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// setForwarded computes X-Forwarded-For/-Proto/-Host and stores them on the
// inbound request, from where Rewrite copies them to the outbound one.
// Client-supplied values are kept (and appended to) only when the peer is a
// trusted proxy; otherwise a client could forge its address for every
// backend. X-Real-IP and Forwarded from an untrusted peer are removed for
// the same reason (the proxy does not write them itself). Writing them on the inbound header before ReverseProxy clones it
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
	if !trust {
		// The other ways of naming the client: kept (Forwarded copied by
		// copyForwarded, which ReverseProxy would strip) only from a
		// trusted peer.
		delete(h, "X-Real-Ip")
		delete(h, "Forwarded")
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = emptyUA
	}
}

var emptyUA = []string{""}

// copyForwarded moves the values setForwarded computed to the outbound
// request (ReverseProxy strips forwarding headers before Rewrite), and a
// trusted peer's Forwarded (setForwarded removed an untrusted one).
func copyForwarded(pr *httputil.ProxyRequest) {
	in, out := pr.In.Header, pr.Out.Header
	out["X-Forwarded-For"] = in["X-Forwarded-For"]
	out["X-Forwarded-Proto"] = in["X-Forwarded-Proto"]
	out["X-Forwarded-Host"] = in["X-Forwarded-Host"]
	if v, ok := in["Forwarded"]; ok {
		out["Forwarded"] = v
	}
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
