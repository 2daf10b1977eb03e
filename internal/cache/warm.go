package cache

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/cache/rfc9111"
	"github.com/lbsys/lbsys/internal/clock"
)

// ttlHint is a directive's freshness suggestion for a path prefix.
type ttlHint struct {
	prefix string
	ttl    time.Duration
}

// SetTTLHints replaces a route's TTL hints (a directive's cache.ttl_hints).
// A hint gives responses under its path prefix (on segment boundaries:
// "/products" covers "/products" and "/products/1", not "/productsale";
// the longest matching prefix wins) a freshness lifetime, but only where
// RFC 9111 §4.2.2 would allow a heuristic lifetime: the response has no
// max-age, s-maxage or Expires, is not no-cache, no-store or private, does
// not carry Set-Cookie, answers no request with Authorization, and has a
// status heuristically cacheable by default (200, 203, 204, 300, 301, 308,
// 404, 405, 410, 414, 501) or public. There it replaces the heuristic
// lifetime (10% of the time since Last-Modified); it never lengthens or
// shortens a lifetime the origin set. Hints apply to responses stored or
// revalidated after the call.
func (c *Cache) SetTTLHints(rt *Route, hints []directive.TTLHint) {
	hs := make([]ttlHint, 0, len(hints))
	for _, h := range hints {
		if h.TTL <= 0 || !strings.HasPrefix(h.PathPrefix, "/") {
			continue
		}
		hs = append(hs, ttlHint{prefix: h.PathPrefix, ttl: h.TTL.Std()})
	}
	sort.SliceStable(hs, func(i, j int) bool { return len(hs[i].prefix) > len(hs[j].prefix) })
	rt.state.hints.Store(&hs)
}

// policyFor returns the route's policy with the TTL hint for a request
// target, if any.
func (c *Cache) policyFor(rt *Route, target string) rfc9111.Policy {
	p := rt.policy
	hp := rt.state.hints.Load()
	if hp == nil || len(*hp) == 0 {
		return p
	}
	path := target
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	for _, h := range *hp {
		if pathHasPrefix(path, h.prefix) {
			p.TTLHint = h.ttl
			break
		}
	}
	return p
}

func pathHasPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// WarmQueued returns the number of paths waiting to be warmed.
func (c *Cache) WarmQueued() int { return c.warm.queued() }

// Warm queues paths (with query, if any) of a route to be fetched into the
// cache ahead of a forecast peak, through origin, as requests for host
// ("shop.example", "shop.example:8080"; "https://shop.example" fills the
// entries of clients that came over TLS, which are keyed apart). The
// paths are fetched by one goroutine per cache at warm.rate per second
// (bursts of warm.burst), never on a client's request path; a path already
// fresh in the cache is skipped. Paths beyond the queue's capacity are
// dropped and counted. It returns how many were queued.
func (c *Cache) Warm(rt *Route, host string, paths []string, origin Origin) int {
	if !rt.Enabled() {
		return 0
	}
	n := 0
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") {
			continue
		}
		if c.warm.push(warmJob{rt: rt, host: host, path: p, origin: origin}) {
			n++
		} else {
			rt.stats.warm[warmDropped].Add(1)
		}
	}
	return n
}

// ApplyDirective applies a directive's cache section to a route: its TTL
// hints, then its warm list (so warmed responses get the hints). A nil
// section clears the hints.
func (c *Cache) ApplyDirective(rt *Route, host string, d *directive.Cache, origin Origin) int {
	if d == nil {
		c.SetTTLHints(rt, nil)
		return 0
	}
	c.SetTTLHints(rt, d.TTLHints)
	return c.Warm(rt, host, d.Warm, origin)
}

type warmJob struct {
	rt     *Route
	host   string
	path   string
	origin Origin
}

// warmer runs warm jobs off the request path, paced by a token bucket.
// Its queue grows only while jobs wait (no memory reserved for an idle
// queue).
type warmer struct {
	c      *Cache
	mu     sync.Mutex // guards queue, max and bucket
	queue  []warmJob
	max    int
	wake   chan struct{} // one pending signal: the queue is not empty
	quit   chan struct{}
	done   chan struct{}
	once   sync.Once
	bucket tokenBucket
}

func newWarmer(c *Cache) *warmer {
	wc := c.conf().Warm
	w := &warmer{c: c, max: wc.Queue, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		bucket: tokenBucket{rate: wc.Rate, burst: float64(wc.Burst), tokens: float64(wc.Burst), last: c.clock.Now()}}
	go w.run()
	return w
}

// configure applies a reloaded warm configuration: the rate and burst
// from now on (tokens saved beyond the new burst are dropped), and the
// queue bound for the next pushes (paths already queued stay).
func (w *warmer) configure(wc WarmConfig) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.max = wc.Queue
	w.bucket.rate = wc.Rate
	w.bucket.burst = float64(wc.Burst)
	if w.bucket.tokens > w.bucket.burst {
		w.bucket.tokens = w.bucket.burst
	}
}

// queued returns the number of paths waiting to be warmed.
func (w *warmer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

func (w *warmer) push(j warmJob) bool {
	w.mu.Lock()
	if len(w.queue) >= w.max {
		w.mu.Unlock()
		return false
	}
	w.queue = append(w.queue, j)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return true
}

func (w *warmer) pop() (warmJob, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return warmJob{}, false
	}
	j := w.queue[0]
	w.queue[0] = warmJob{}
	w.queue = w.queue[1:]
	if len(w.queue) == 0 {
		w.queue = nil // let the backing array go
	}
	return j, true
}

func (w *warmer) stop() {
	w.once.Do(func() { close(w.quit) })
	<-w.done
}

func (w *warmer) run() {
	defer close(w.done)
	for {
		j, ok := w.pop()
		if !ok {
			select {
			case <-w.quit:
				return
			case <-w.wake:
			}
			continue
		}
		if !w.c.warmOne(j, w.pace) {
			return
		}
	}
}

// pace waits for a token; false when the warmer stops meanwhile.
func (w *warmer) pace() bool {
	for {
		w.mu.Lock()
		wait := w.bucket.take(w.c.clock.Now())
		w.mu.Unlock()
		if wait <= 0 {
			return true
		}
		if !sleep(w.c.clock, wait, w.quit) {
			return false
		}
	}
}

// sleep waits d on clk; false if quit closes first.
func sleep(clk clock.Clock, d time.Duration, quit <-chan struct{}) bool {
	ch := make(chan struct{})
	t := clk.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
		return true
	case <-quit:
		t.Stop()
		return false
	}
}

// tokenBucket paces warm fetches: rate tokens per second, at most burst.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// take consumes a token and returns 0, or returns how long until one is
// available (consuming nothing).
func (b *tokenBucket) take(now time.Time) time.Duration {
	if el := now.Sub(b.last); el > 0 {
		b.tokens += el.Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// warmOne fetches one warm path unless it is already fresh; pace waits for
// the rate limit before a fetch (skipping a fresh path costs no token). It
// returns false when pace was interrupted (the warmer stops).
func (c *Cache) warmOne(j warmJob, pace func() bool) (cont bool) {
	cfg := c.conf()
	ctx, cancel := context.WithTimeout(c.life, cfg.FetchTimeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			cont = true // one bad job does not stop the warmer
			logPanic("warming", Key{Route: j.rt.name, Host: j.host, Target: j.path}, v)
		}
	}()
	scheme, host := "http", j.host
	if h, ok := strings.CutPrefix(host, "https://"); ok {
		scheme, host = "https", h
	}
	u := &url.URL{Scheme: scheme, Host: host}
	pu, err := url.Parse(j.path)
	if err != nil {
		j.rt.stats.warm[warmFailed].Add(1)
		return true
	}
	u.Path, u.RawPath, u.RawQuery = pu.Path, pu.RawPath, pu.RawQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		j.rt.stats.warm[warmFailed].Add(1)
		return true
	}
	req.Host = host
	if scheme == "https" {
		// The key's scheme comes from the request's TLS state; the
		// origin forwards over plain HTTP either way.
		req.TLS = &tls.ConnectionState{}
	}
	for k, v := range cfg.Warm.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "lbsys-cache-warm")
	k := c.key(j.rt, req)
	var stale *entry
	res, ok := c.store.GetEntryQuietly(k)
	if ok {
		if e := res.Value.selectVariant(req.Header); e != nil {
			if rfc9111.Evaluate(&e.stored, &rfc9111.NoDirectives, c.clock.Now(), &j.rt.policy).Action == rfc9111.Serve {
				j.rt.stats.warm[warmFresh].Add(1)
				return true
			}
			stale = e
		}
	}
	var r *resource
	if ok {
		r = res.Value
	}
	if !pace() {
		return false
	}
	c.miss(discard{h: http.Header{}}, req, j.rt, j.origin, k, r, stale, rfc9111.Verdict{Action: rfc9111.Validate},
		rfc9111.NoDirectives, "uri-miss", mode{warm: true})
	return true
}
