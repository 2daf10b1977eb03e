package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/cache/rfc9111"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/steer"
)

// The response cache in the proxy (issue #15): internal/cache decides and
// stores; this file connects it to the request path, the configuration,
// the admin API and directives.
//
// A route that caches goes through cache.ServeOutcome with the route's own
// forwarding as the cache's Origin: RoundTrip for the exchanges the cache
// makes (misses, validations, warm fetches), which therefore get
// balancing, retries, health feedback, admission and telemetry like any
// request, and ServeHTTP (the route's ReverseProxy) for what the cache
// leaves alone. An answer from the store never reaches that code: it does
// no admission or balancing work and is accounted here instead. A route
// that does not cache keeps the plain path; only its unsafe requests pass
// through the cache, when the proxy caches anything, so that a write
// invalidates what it changed on the routes that do (RFC 9111 §4.4).

// routeOrigin is a route's forwarding, as the cache's Origin.
type routeOrigin struct {
	px      *Proxy
	rt      *route
	c       *cache.Cache
	trusted []netip.Prefix
}

// ServeHTTP is the route's normal path, for requests the cache leaves
// alone.
func (o *routeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.px.forward(w, r, o.rt, o.trusted)
}

// RoundTrip does what the route's ReverseProxy does before its transport
// (forwarding fields, hop-by-hop fields removed, the endpoint's URL) and
// then runs the route's transport: balancing, retries, admission, health
// and telemetry. req is the cache's own clone of the client's request (or
// a warm request, which has no client: it gets no X-Forwarded-For).
func (o *routeOrigin) RoundTrip(req *http.Request) (*http.Response, error) {
	h := req.Header
	removeHopByHop(h)
	if req.RemoteAddr != "" {
		o.px.setForwarded(req, o.trusted)
	} else {
		for _, f := range [...]string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "Forwarded"} {
			delete(h, f)
		}
	}
	req.URL.Scheme = "http"
	req.URL.Host = req.Host
	req.Close = false
	if req.ContentLength == 0 {
		req.Body = nil
	}
	return (&routeTransport{rt: o.rt}).RoundTrip(req)
}

// removeHopByHop drops the fields that concern one connection only (RFC
// 9110 §7.6.1), and those the request's Connection field names, as
// ReverseProxy does for the requests it forwards.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	for _, f := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		delete(h, f)
	}
}

// serveCached answers a request through the cache: a cached route's, or
// an unsafe one on another route of a proxy that caches.
func (px *Proxy) serveCached(w http.ResponseWriter, r *http.Request, rt *route, rec *accessRecord) {
	start := px.now()
	out, err := rt.origin.c.ServeOutcome(w, r, rt.cache, rt.origin)
	if err != nil {
		rt.rp.ErrorHandler(w, r, err)
		return
	}
	if out.Aborted {
		abortResponse(w)
		return
	}
	if out.FromStore {
		if rec != nil {
			rec.fromStore = true
		}
		rt.countStored(out, px.now().Sub(start))
	}
}

// countStored accounts an answer from the store as the forwarding code
// accounts a response: requests_total (with no endpoint: none was
// reached), the route's duration, the service's telemetry record and
// bytes. The cache's own metrics count it as a hit (or stale, collapsed).
// The endpoints' records do not see it: no endpoint did any work.
func (rt *route) countStored(out cache.Outcome, took time.Duration) {
	svc := rt.svc
	rt.codes.get(svc, rt, "", out.Status).Inc()
	rt.reqDur.Observe(took.Seconds())
	svc.tel.Observe(took, out.Status >= 500, 0, out.Bytes)
	if out.Bytes > 0 {
		svc.bytesOut.Add(float64(out.Bytes))
	}
}

// cacheSetup is what apply prepares for the cache before changing
// anything: whether any route caches, and a new cache when none exists yet.
type cacheSetup struct {
	on    bool
	fresh *cache.Cache // built by prepareCache; published by apply
}

// prepareCache checks the cache sections of cfg (Parse did, but a Config
// may be built in Go) and builds the cache the first time a route opts in.
// It changes nothing that runs.
func (px *Proxy) prepareCache(cfg *config.Config) (cacheSetup, error) {
	var cs cacheSetup
	svcs := map[string]*config.Service{}
	for i := range cfg.Services {
		svcs[cfg.Services[i].Name] = &cfg.Services[i]
	}
	for _, l := range cfg.Listeners {
		for i := range l.Routes {
			r := &l.Routes[i]
			rc := r.CacheConfig(svcs[r.Service])
			if !rc.Enabled {
				continue
			}
			if err := rc.Validate(); err != nil {
				return cs, fmt.Errorf("listeners[%s].routes[%s].cache: %w", l.Name, r.Name, err)
			}
			cs.on = true
		}
	}
	if err := cfg.Cache.Validate(); err != nil {
		return cs, fmt.Errorf("cache: %w", err)
	}
	if cs.on && px.cache.Load() == nil {
		c, err := cache.New(cfg.Cache, px.cacheMetrics, px.clock)
		if err != nil {
			return cs, fmt.Errorf("cache: %w", err)
		}
		cs.fresh = c
	}
	return cs, nil
}

// commitCache publishes the cache prepared for a configuration (or
// reconfigures the running one) and returns it; nil when the proxy has
// never cached anything.
func (px *Proxy) commitCache(cfg *config.Config, cs cacheSetup) *cache.Cache {
	if cs.fresh != nil {
		px.reg.MustRegister(px.cacheMetrics)
		px.cache.Store(cs.fresh)
		return cs.fresh
	}
	c := px.cache.Load()
	if c != nil {
		if err := c.SetConfig(cfg.Cache); err != nil {
			// Checked by prepareCache: not expected.
			px.log.Error("cache configuration not applied", "err", err)
		}
	}
	return c
}

// cacheRoute sets up a new route's cache handle and origin. c is the
// proxy's cache (nil: it caches nothing, and the route keeps the plain
// path for every request).
func (px *Proxy) cacheRoute(c *cache.Cache, rt *route, rc config.Route, svc *config.Service, trusted []netip.Prefix) {
	if c == nil {
		return
	}
	rt.origin = &routeOrigin{px: px, rt: rt, c: c, trusted: trusted}
	conf := rc.CacheConfig(svc)
	if !conf.Enabled {
		return
	}
	h, err := c.Route(rt.name, conf)
	if err != nil {
		// Checked by prepareCache: not expected.
		px.log.Error("route does not cache", "route", rt.name, "err", err)
		return
	}
	rt.cache = h
	// TTL hints live in the cache by route name, so a kept route keeps
	// them; a route that starts caching gets its service's.
	if hints, ok := px.cacheHints[svc.Name]; ok {
		c.SetTTLHints(h, hints)
	}
}

// safeMethod reports the methods that never invalidate (RFC 9110 §9.2.1).
func safeMethod(m string) bool { return rfc9111.Safe(m) }

// applyCacheChange applies the cache part of a directive change to the
// service's cached routes: TTL hints, then the warm list, fetched by the
// cache's warmer off the request path at cache.warm.rate. The caller holds
// reloadMu. It cannot fail: steer.Plan checked the section.
func (px *Proxy) applyCacheChange(g *generation, service string, ch steer.Change) {
	if ch.Cache == nil && !ch.ClearCache {
		return
	}
	sec := ch.Cache
	if sec != nil {
		px.cacheHints[service] = sec.TTLHints
	} else {
		delete(px.cacheHints, service)
	}
	c := px.cache.Load()
	if c == nil {
		return
	}
	keys := make([]string, 0, len(g.listeners))
	for k := range g.listeners {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		lr := g.listeners[key]
		for _, rt := range lr.routes {
			if rt.cache == nil || rt.svc == nil || rt.svc.name != service {
				continue
			}
			host := px.warmHost(g, key, rt)
			rs := sec
			if sec != nil && len(sec.Warm) > 0 {
				// Each path is warmed on the route a client's GET of it
				// would take (entries are keyed per route): a service with
				// several cached routes (lists, products, search) would
				// otherwise fetch every path once per route, and the
				// useful fetches would wait behind the others.
				cp := *sec
				cp.Warm = routedHere(lr.routes, rt, host, sec.Warm)
				rs = &cp
			}
			n := c.ApplyDirective(rt.cache, host, rs, rt.origin)
			if rs != nil && len(rs.Warm) > 0 {
				px.log.Info("cache warming queued", "service", service, "route", rt.name, "paths", len(rs.Warm), "queued", n)
			}
		}
	}
}

// routedHere returns the paths (with their queries) of warm that a GET
// for host would route to rt among routes, the listener's routes in
// order.
func routedHere(routes []*route, rt *route, host string, warm []string) []string {
	out := make([]string, 0, len(warm))
	r := &http.Request{Method: http.MethodGet, Host: strings.TrimPrefix(host, "https://")}
	for _, p := range warm {
		path := p
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		for _, c := range routes {
			if c.matches(r, path) {
				if c == rt {
					out = append(out, p)
				}
				break
			}
		}
	}
	return out
}

// warmHost is the host warm requests of a route carry, so that they fill
// the entries clients hit (the cache key has the Host): the route's exact
// match.host, else the listener's address as clients reaching it directly
// write it; with the listener's port unless it is the scheme's default,
// and "https://" in front on a TLS listener.
func (px *Proxy) warmHost(g *generation, key string, rt *route) string {
	addr := px.Addr(key)
	if addr == "" {
		addr = key
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, ""
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		host = "localhost"
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	tls := g.certs[key] != nil
	if rt.host != "" && !strings.HasPrefix(rt.host, "*.") {
		host = rt.host
	}
	if port != "" && !(port == "80" && !tls) && !(port == "443" && tls) {
		host += ":" + port
	}
	if tls {
		return "https://" + host
	}
	return host
}

// CacheStatus is the "cache" object of GET /status.
type CacheStatus struct {
	Bytes      uint64             `json:"bytes"`
	MaxBytes   int64              `json:"max_bytes"`
	Objects    int                `json:"objects"`
	WarmQueued int                `json:"warm_queued"`
	Routes     []CacheRouteStatus `json:"routes"`
}

// CacheRouteStatus is one cached route in GET /status: its counters since
// the proxy started (kept across reloads).
type CacheRouteStatus struct {
	Route   string `json:"route"`
	Service string `json:"service"`
	cache.RouteStats
}

// cacheStatus is nil when the proxy caches nothing.
func (px *Proxy) cacheStatus(g *generation) *CacheStatus {
	c := px.cache.Load()
	if c == nil {
		return nil
	}
	b, n := c.Size()
	st := &CacheStatus{Bytes: b, MaxBytes: int64(c.Config().MaxBytes), Objects: n, WarmQueued: c.WarmQueued(), Routes: []CacheRouteStatus{}}
	for _, name := range cachedRoutes(g) {
		st.Routes = append(st.Routes, CacheRouteStatus{Route: name.route, Service: name.service, RouteStats: c.Metrics().Route(name.route)})
	}
	return st
}

type cachedRoute struct{ route, service string }

// cachedRoutes lists the routes of g that cache, by name.
func cachedRoutes(g *generation) []cachedRoute {
	var out []cachedRoute
	for _, lr := range g.listeners {
		for _, rt := range lr.routes {
			if rt.cache != nil {
				out = append(out, cachedRoute{rt.name, rt.svc.name})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].route < out[j].route })
	return out
}

// mountCache registers the cache's admin endpoints.
func (px *Proxy) mountCache(mux *http.ServeMux) {
	mux.Handle("POST /cache/purge", px.requireToken(http.HandlerFunc(px.handlePurge)))
}

// handlePurge is POST /cache/purge: {"path"|"prefix"|"tag": …, "route"?,
// "host"?} removes stored responses and answers {"purged": n}.
func (px *Proxy) handlePurge(w http.ResponseWriter, r *http.Request) {
	var req cache.PurgeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad purge request: " + err.Error() +
			`; send one JSON object such as {"tag": "product-p0001"}, {"path": "/catalog/products/p0001"} or {"prefix": "/catalog", "route": "catalog"}`})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad purge request: more than one JSON value; send one object"})
		return
	}
	c := px.cache.Load()
	if c == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "this proxy caches nothing: set `cache: {enabled: true}` on a service or route in its configuration"})
		return
	}
	if req.Route != "" {
		var names []string
		found := false
		for _, cr := range cachedRoutes(px.gen.Load()) {
			names = append(names, cr.route)
			found = found || cr.route == req.Route
		}
		if !found {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("route %q does not cache; cached routes: %s", req.Route, strings.Join(names, ", "))})
			return
		}
	}
	n, err := c.Purge(req)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, cache.ErrBadPurge) {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, map[string]string{"error": strings.ReplaceAll(err.Error(), "\n", ": ")})
		return
	}
	px.log.Info("cache purged", "route", req.Route, "host", req.Host, "path", req.Path, "prefix", req.Prefix, "tag", req.Tag, "purged", n)
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}
