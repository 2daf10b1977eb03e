// Package cache is lbsys's RFC 9111 shared HTTP cache for the data plane:
// a byte-bounded store with W-TinyLFU admission (otter), request coalescing,
// stale-while-revalidate in the background, purging by URL, prefix or tag,
// forecast-driven warming with TTL hints, value-aware eviction by route
// weight, metrics and the Cache-Status response field (RFC 9211).
//
// The decisions are in the pure sub-package rfc9111; this package is the
// net/http adapter around them. The proxy calls one method on its request
// path:
//
//	c, _ := cache.New(cfg, metrics, clock.Real{})
//	rt, _ := c.Route("catalog", routeCfg)   // once per route, on (re)load
//	err := c.Serve(w, r, rt, origin)         // per request
//
// where origin is the proxy's forwarding: RoundTrip for the exchanges the
// cache makes (misses, validations, warming) and ServeHTTP for requests the
// cache leaves alone (unsafe methods, upgrades, ranges it cannot serve,
// Authorization when not allowed). Serve returns an error only when an
// origin exchange failed and nothing could be served; the caller then writes
// its own error response.
//
// A hit does no allocation and takes no lock beyond otter's: the stored
// header is kept as a precomputed list of fields whose value slices are
// shared with every response (they must not be modified), the body is one
// []byte, and the Age value is formatted once per second per entry.
package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
	"github.com/lbsys/lbsys/internal/clock"
)

// Key identifies the stored responses of one URL on one route. The route is
// part of the key because two routes may send the same URL to different
// services; invalidation and purging look at every route.
type Key struct {
	Route  string
	Scheme string // "http" or "https"
	Host   string // lower-case, without the scheme's default port
	Target string // path and query exactly as requested
}

// Cache is a shared HTTP cache. It is safe for concurrent use.
type Cache struct {
	// cfg is swapped whole by SetConfig (a configuration reload); readers
	// load it once per decision.
	cfg     atomic.Pointer[Config]
	clock   clock.Clock
	metrics *Metrics
	store   *otter.Cache[Key, *resource]

	flights flights
	bg      atomic.Int64 // background revalidations in flight (≤ coalesce.max_background)

	mu     sync.Mutex
	states map[string]*routeState // by route name, kept across reloads
	names  atomic.Pointer[[]string]

	warm *warmer

	// life ends when the cache closes: the fetches it makes on its own
	// (warming, background revalidation) stop with it instead of
	// holding Close for up to fetch_timeout.
	life context.Context
	end  context.CancelFunc
}

// New builds a cache. metrics may be nil (a private set is used); clk may be
// nil (the real clock). Call Close to stop its goroutines.
func New(cfg Config, metrics *Metrics, clk clock.Clock) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if metrics == nil {
		metrics = NewMetrics()
	}
	if clk == nil {
		clk = clock.Real{}
	}
	c := &Cache{clock: clk, metrics: metrics, states: map[string]*routeState{}}
	c.life, c.end = context.WithCancel(context.Background())
	c.cfg.Store(&cfg)
	c.flights.m = map[Key]*flight{}
	c.names.Store(&[]string{})
	opts := &otter.Options[Key, *resource]{
		MaximumWeight: uint64(cfg.MaxBytes),
		// Weight is bytes: the budget is a memory bound, not a count.
		Weigher: func(_ Key, v *resource) uint32 { return v.size },
		// An entry leaves the store once no rule could use it any more
		// (fresh, stale-servable, or kept for cheap revalidation).
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[Key, *resource]) time.Duration {
			return e.Value.retain
		}),
		// Maintenance (draining the read buffers into the frequency sketch,
		// evicting) runs on the goroutine that finds it due, instead of a
		// new goroutine each time: no allocation, and the sketch sees the
		// route-weight reads (see lookup) instead of losing them to full
		// buffers. Nothing the cache runs under otter's locks (weigher,
		// expiry, OnDeletion, Compute functions) calls the cache again.
		Executor: func(fn func()) { fn() },
		OnDeletion: func(e otter.DeletionEvent[Key, *resource]) {
			switch e.Cause {
			case otter.CauseOverflow:
				metrics.evictions[0].Add(1)
			case otter.CauseExpiration:
				metrics.evictions[1].Add(1)
			}
		},
	}
	if _, real := clk.(clock.Real); !real {
		opts.Clock = otterClock{clk}
	}
	store, err := otter.New(opts)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c.store = store
	gauges := func() (uint64, uint64, uint64) {
		return store.WeightedSize(), store.GetMaximum(), uint64(store.EstimatedSize())
	}
	metrics.gauges.Store(&gauges)
	c.warm = newWarmer(c)
	return c, nil
}

// Close stops the warming goroutine, cancels the fetches the cache makes
// on its own (warming, background revalidations) and stops the store's
// maintenance. Client requests in flight finish; the cache must not be
// used afterwards.
func (c *Cache) Close() {
	c.end()
	c.warm.stop()
	c.store.StopAllGoroutines()
}

// Metrics returns the cache's metrics.
func (c *Cache) Metrics() *Metrics { return c.metrics }

// SetMaxBytes changes the byte budget (for a configuration reload);
// entries beyond it are evicted by W-TinyLFU.
func (c *Cache) SetMaxBytes(n ByteSize) error {
	if n < 1<<20 {
		return errors.New("cache: max_bytes must be at least 1MiB")
	}
	for {
		old := c.cfg.Load()
		next := *old
		next.MaxBytes = n
		if next.MaxObjectBytes > n/8 {
			next.MaxObjectBytes = n / 8
		}
		if c.cfg.CompareAndSwap(old, &next) {
			break
		}
	}
	c.store.SetMaximum(uint64(n))
	return nil
}

// SetConfig applies a new configuration to a running cache (a reload)
// without dropping what it stores: the byte budget is resized (W-TinyLFU
// evicts what no longer fits), the warming queue and rate change in
// place, and every other setting applies to the next request. Settings a
// route derives when it is built (max_object_bytes, heuristics,
// stale_if_error, max_vary_fields) apply to the handles Route returns
// afterwards, which is what a reload builds anyway. An invalid
// configuration changes nothing.
func (c *Cache) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	old := c.cfg.Swap(&cfg)
	if old.MaxBytes != cfg.MaxBytes {
		c.store.SetMaximum(uint64(cfg.MaxBytes))
	}
	c.warm.configure(cfg.Warm)
	return nil
}

// Config returns the configuration in effect, with its defaults.
func (c *Cache) Config() Config { return *c.cfg.Load() }

// conf is the configuration in effect.
func (c *Cache) conf() *Config { return c.cfg.Load() }

// Size returns the bytes held and the number of stored URLs.
func (c *Cache) Size() (bytes uint64, objects int) {
	return c.store.WeightedSize(), c.store.EstimatedSize()
}

// otterClock lets otter's expiry follow the cache's clock (a manual one in
// tests and the simulator). No periodic clean-up ticks: expired entries
// are invisible to reads and are removed on writes.
type otterClock struct{ c clock.Clock }

// NowNano and Tick implement otter.Clock.
func (o otterClock) NowNano() int64                      { return o.c.Now().UnixNano() }
func (o otterClock) Tick(time.Duration) <-chan time.Time { return nil }

// Route is one route's cache settings, built by Cache.Route. It is
// immutable; a reload builds a new one with the same name, which keeps the
// route's counters and TTL hints.
type Route struct {
	name      string
	cfg       RouteConfig
	policy    rfc9111.Policy // without TTL hint
	maxObject int64
	tagHeader string // canonical; "" for none
	// weightMilli is the route weight ×1000 (1000 neutral).
	weightMilli uint64
	stats       *routeStats
	state       *routeState
}

// routeState is what a route keeps across reloads.
type routeState struct {
	hints atomic.Pointer[[]ttlHint]
	bias  atomic.Uint64 // fractional sketch increments owed (see lookup)
}

// Route returns the cache handle of a route, to pass to Serve. Calling it
// again with the same name (a reload) returns a new handle sharing the
// route's counters and TTL hints; handles in use stay valid. A route whose
// configuration is not enabled returns a handle that passes every request
// to the origin.
func (c *Cache) Route(name string, rc RouteConfig) (*Route, error) {
	if name == "" {
		return nil, errors.New("cache: a route needs a name")
	}
	if err := rc.Validate(); err != nil {
		return nil, err
	}
	rc = rc.WithDefaults()
	c.mu.Lock()
	st := c.states[name]
	if st == nil {
		st = &routeState{}
		c.states[name] = st
		names := append(append([]string(nil), *c.names.Load()...), name)
		c.names.Store(&names)
	}
	c.mu.Unlock()
	cfg := c.conf()
	maxObj := int64(cfg.MaxObjectBytes)
	if rc.MaxObjectBytes > 0 && int64(rc.MaxObjectBytes) < maxObj {
		maxObj = int64(rc.MaxObjectBytes)
	}
	heur := cfg.MaxHeuristic
	frac := cfg.HeuristicFraction
	if heur < 0 {
		frac = 0 // heuristics off; TTL hints still apply
	}
	rt := &Route{
		name: name, cfg: rc, maxObject: maxObj,
		weightMilli: uint64(rc.Weight*1000 + 0.5),
		stats:       c.metrics.route(name),
		state:       st,
		policy: rfc9111.Policy{
			HeuristicFraction:  frac,
			MaxHeuristic:       heur,
			AllowAuthorization: rc.AllowAuthorization,
			AllowSetCookie:     rc.AllowSetCookie,
			StaleIfError:       cfg.StaleIfError,
			MaxObjectBytes:     maxObj,
			MaxVaryFields:      cfg.MaxVaryFields,
		},
	}
	if rc.TagHeader != "-" {
		rt.tagHeader = http.CanonicalHeaderKey(rc.TagHeader)
	}
	return rt, nil
}

// Name returns the route's name.
func (rt *Route) Name() string { return rt.name }

// Enabled reports whether the route caches at all.
func (rt *Route) Enabled() bool { return rt != nil && rt.cfg.Enabled }

// key builds the cache key of a request without allocating in the common
// case (a lower-case Host and an origin-form request target).
func (c *Cache) key(rt *Route, r *http.Request) Key {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	host = normalizeHost(host, scheme)
	target := r.RequestURI
	if target == "" || target[0] != '/' {
		target = r.URL.RequestURI()
	}
	return Key{Route: rt.name, Scheme: scheme, Host: host, Target: target}
}

func normalizeHost(host, scheme string) string {
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			host = strings.ToLower(host)
			break
		}
	}
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = host[:len(host)-3]
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = host[:len(host)-4]
	}
	return host
}

// lookup reads a key's resource, biasing W-TinyLFU by the route's weight:
// otter counts every GetIfPresent in its frequency sketch and none of
// GetEntryQuietly, so a route of weight w records on average w sketch
// increments per hit (w < 1: some hits are read quietly; w > 1: extra
// reads). Admission and eviction compare these frequencies, so a heavier
// route's responses win against a lighter route's used as often, while the
// byte budget stays exact (weights never change the weigher).
func (c *Cache) lookup(rt *Route, k Key) *resource {
	w := rt.weightMilli
	if w == 1000 {
		v, _ := c.store.GetIfPresent(k)
		return v
	}
	if w < 1000 {
		n := rt.state.bias.Add(w)
		if n/1000 != (n-w)/1000 {
			v, _ := c.store.GetIfPresent(k)
			return v
		}
		e, ok := c.store.GetEntryQuietly(k)
		if !ok {
			return nil
		}
		return e.Value
	}
	v, ok := c.store.GetIfPresent(k)
	if ok {
		extra := w - 1000
		n := rt.state.bias.Add(extra)
		for i := n/1000 - (n-extra)/1000; i > 0; i-- {
			c.store.GetIfPresent(k)
		}
	}
	return v
}

// boost records extra sketch increments for a newly stored response: a
// heavier route's and a warmed response's, so that they are not turned
// away by admission before their first real hit.
func (c *Cache) boost(k Key, n int) {
	for ; n > 0; n-- {
		c.store.GetIfPresent(k)
	}
}
