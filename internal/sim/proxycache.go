package sim

import (
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// The proxies' response cache (issue #15), as a model of internal/cache —
// not the otter-backed cache itself, whose clock and goroutines a
// discrete-event run cannot drive — at the level that decides hit ratios:
//
//   - a key space of pages with Zipf popularity (key k asked ∝ 1/k^s), as
//     a shop's catalogue is; an announced event's featured pages (the
//     calendar's X-LBSYS-WARM) take a share of the requests while it
//     lasts — pages nobody asked for before, so a cold cache misses on
//     each of them once per proxy at the event's start;
//   - a store per proxy (each proxy replica caches on its own, as
//     lbsys's proxies do) bounded in entries, with LRU or a W-TinyLFU-like
//     eviction (a 1% window LRU in front of a main LRU, a candidate
//     admitted over the main victim only if a count-min sketch has seen it
//     more often: Einziger, Friedman and Manes, "TinyLFU: A Highly
//     Efficient Cache Admission Policy", ACM ToS 2017, §4), a freshness
//     lifetime per entry (the origin's s-maxage; or, for an origin that
//     sends none, a heuristic lifetime that a directive's TTL hints
//     replace);
//   - request coalescing: a miss for a key already being fetched waits
//     for that fetch (internal/cache's one origin fetch per key);
//   - hits are answered by the proxy after hit_latency, without
//     admission, balancing or a backend (the proxy accounts a hit from the
//     cache's outcome, not through its limiter); misses go to the backend
//     as every request does and their answer is stored;
//   - warm fetches: a directive's cache.warm list, applied through
//     internal/steer as the proxy's agent applies it (only when the list
//     changed), is fetched by each proxy at warm.rate (a token bucket of
//     warm.burst), skipping keys already fresh or in flight, through
//     admission and the backends like a miss, and stored.
//
// Not modelled: Vary variants, byte-weighted eviction (entries have one
// size), revalidation with validators (a stale entry is a miss), stale
// serving, invalidation by writes and purges.

// keyspace is a cached service's pages: popularity, featured windows,
// paths. Shared by the proxies' stores of the service.
type keyspace struct {
	cfg   *ProxyCache
	n     int       // keys of the space; ids n.. are extra pages
	cum   []float64 // cumulative popularity, normalised
	extra []string  // paths of the extra pages, by id − n
	byX   map[string]int32
	share float64
	rng   *rand.Rand
	dir   string
	// feats are the announced events' featured keys by window.
	feats []featWin
	// firsts are the windows of the announced events' first minutes.
	firsts []firstWin
}

type featWin struct {
	from, to int64
	ids      []int32
}

type firstWin struct {
	from, to int64
	acc      int // index in the collector's cacheEvents
}

func newKeyspace(s *Sim, svc *service) *keyspace {
	c := svc.spec.ProxyCache
	ks := &keyspace{cfg: c, n: c.Keys, byX: map[string]int32{}, share: *c.FeaturedShare,
		rng: newStream(s.seed, "cache/"+svc.name, 0), dir: c.RouteDir()}
	ks.cum = make([]float64, c.Keys)
	sum := 0.0
	for k := 1; k <= c.Keys; k++ {
		sum += math.Pow(float64(k), -*c.Zipf)
		ks.cum[k-1] = sum
	}
	for i := range ks.cum {
		ks.cum[i] /= sum
	}
	for _, e := range s.events {
		if len(e.Warm) == 0 || (len(e.Services) > 0 && !contains(e.Services, svc.name)) {
			continue
		}
		var ids []int32
		for _, p := range e.Warm {
			if id, ok := ks.id(p, true); ok {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			ks.feats = append(ks.feats, featWin{from: int64(e.Start.Sub(s.sc.Start)), to: int64(e.End.Sub(s.sc.Start)), ids: ids})
		}
	}
	return ks
}

// id maps a path to its key: PathPrefix + k for k in 1..Keys, else an
// extra page under the prefix's directory (made when create is set).
func (ks *keyspace) id(path string, create bool) (int32, bool) {
	if rest, ok := strings.CutPrefix(path, ks.cfg.PathPrefix); ok {
		if k, err := strconv.Atoi(rest); err == nil && k >= 1 && k <= ks.n && strconv.Itoa(k) == rest {
			return int32(k - 1), true
		}
	}
	if id, ok := ks.byX[path]; ok {
		return id, true
	}
	if !create || !inDir(path, ks.dir) || len(ks.extra) >= 1_000_000 {
		return 0, false
	}
	id := int32(ks.n + len(ks.extra))
	ks.extra = append(ks.extra, path)
	ks.byX[path] = id
	return id, true
}

// inDir reports whether path is under dir on segment boundaries.
func inDir(path, dir string) bool {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// path is a key's path.
func (ks *keyspace) path(id int32) string {
	if int(id) < ks.n {
		return ks.cfg.PathPrefix + strconv.Itoa(int(id)+1)
	}
	return ks.extra[int(id)-ks.n]
}

// draw picks the key of a request at now: a featured page of an event
// under way with the featured share, else by popularity.
func (ks *keyspace) draw(now int64) int32 {
	if len(ks.feats) > 0 && ks.share > 0 {
		var cands []int32
		for i := range ks.feats {
			f := &ks.feats[i]
			if now >= f.from && now < f.to {
				if cands == nil {
					cands = f.ids
				} else {
					cands = append(append([]int32(nil), cands...), f.ids...)
				}
			}
		}
		if len(cands) > 0 && ks.rng.Float64() < ks.share {
			return cands[ks.rng.IntN(len(cands))]
		}
	}
	i := sort.SearchFloat64s(ks.cum, ks.rng.Float64())
	return int32(min(i, ks.n-1))
}

// pfetch is a key's fetch in flight and the requests waiting for it.
type pfetch struct {
	waiters []*request
}

// pcache is one proxy's cache of one service.
type pcache struct {
	ks       *keyspace
	svc      *service
	px       *proxy
	st       *store
	inflight map[int32]*pfetch
	hints    []ttlHint
	counts   map[int32]int32 // requests per key this minute (hot keys)
}

type ttlHint struct {
	prefix string
	ttl    int64
}

// cacheState is a request's part in the cache.
const (
	csNone   uint8 = iota
	csHit          // answered from the store after the hit latency
	csLeader       // a miss fetching the key for itself and its waiters
	csWaiter       // waiting for another request's fetch
	csOwn          // fetching on its own (the fetch it waited for failed)
	csWarm         // a warm fetch (no client)
)

// ttlFor is a stored answer's lifetime: the origin's, or for an origin
// without explicit freshness the longest matching TTL hint's.
func (pc *pcache) ttlFor(key int32) int64 {
	ttl := int64(pc.ks.cfg.TTL)
	if !pc.ks.cfg.Heuristic || len(pc.hints) == 0 {
		return ttl
	}
	path := pc.ks.path(key)
	best := -1
	for i, h := range pc.hints {
		if inDir(path, h.prefix) && (best < 0 || len(h.prefix) > len(pc.hints[best].prefix)) {
			best = i
		}
	}
	if best >= 0 {
		return pc.hints[best].ttl
	}
	return ttl
}

// cacheLookup handles a request of a cached class at its proxy: a hit is
// answered after the hit latency, a miss for a key in flight waits for
// that fetch, any other miss leads a fetch. It returns true when the
// request was taken care of (hit or waiter); false: forward it.
func (s *Sim) cacheLookup(r *request, pc *pcache) bool {
	now := s.now()
	key := pc.ks.draw(now)
	r.cache, r.ckey = pc, key
	if pc.counts != nil {
		pc.counts[key]++
	}
	acc := &s.met.svcs[pc.svc.idx]
	acc.cacheLookups++
	e := pc.st.get(key, now)
	for _, f := range pc.ks.firsts {
		if now >= f.from && now < f.to {
			ev := &s.met.cacheEvents[f.acc]
			ev.Lookups++
			if e != nil {
				ev.Hits++
			}
		}
	}
	if e != nil {
		acc.cacheHits++
		if e.warmed {
			acc.cacheWarmHits++
		}
		r.cstate = csHit
		s.eng.after(int64(pc.ks.cfg.HitLatency), r, int64(r.gen)<<8|reqHit)
		return true
	}
	if f := pc.inflight[key]; f != nil {
		acc.cacheCollapsed++
		r.cstate = csWaiter
		f.waiters = append(f.waiters, r)
		return true
	}
	acc.cacheMisses++
	r.cstate = csLeader
	pc.inflight[key] = &pfetch{}
	return false
}

// cacheDone ends a leading, own or warm fetch at the proxy: a successful
// answer is stored and answers the waiters; after a failure each waiter
// fetches on its own, as internal/cache's waiters do when the leader's
// result is unusable.
func (s *Sim) cacheDone(r *request, ok bool) {
	pc := r.cache
	now := s.now()
	if ok {
		pc.st.put(r.ckey, now+pc.ttlFor(r.ckey), r.cstate == csWarm)
	}
	if r.cstate == csWarm {
		acc := &s.met.svcs[pc.svc.idx]
		if ok {
			acc.warmStored++
		} else {
			acc.warmFailed++
		}
	}
	if r.cstate != csLeader && r.cstate != csWarm {
		return
	}
	f := pc.inflight[r.ckey]
	delete(pc.inflight, r.ckey)
	if f == nil {
		return
	}
	for _, w := range f.waiters {
		if w.done {
			continue
		}
		if ok {
			s.final(w, 200, failNone, true)
			continue
		}
		w.cstate = csOwn
		s.admitAndTry(w)
	}
}

// warmer is a proxy's warm queue: (cache, key) jobs fetched at the
// caches' warm rate, one goroutine per proxy in the real cache.
type warmer struct {
	px      *proxy
	jobs    []warmJob
	head    int
	tokens  float64
	last    int64
	started bool // the bucket starts full, as the proxy's does
	armed   bool
}

type warmJob struct {
	pc  *pcache
	key int32
}

// warm queues a directive's warm paths for this proxy's cache of svc.
func (s *Sim) warm(px *proxy, pc *pcache, paths []string) {
	w := px.warmer
	cfg := pc.ks.cfg
	acc := &s.met.svcs[pc.svc.idx]
	for _, p := range paths {
		key, ok := pc.ks.id(p, true)
		if !ok {
			acc.warmDropped++ // not a page of this cache: no route would store it
			continue
		}
		if len(w.jobs)-w.head >= cfg.Warm.Queue {
			acc.warmDropped++
			continue
		}
		w.jobs = append(w.jobs, warmJob{pc, key})
	}
	if !w.armed && len(w.jobs) > w.head {
		w.armed = true
		s.eng.soon(w, 0)
	}
}

// handle runs the warm queue: skip what is fresh or in flight, fetch
// while tokens last, then wait for the next token.
func (w *warmer) handle(int64) {
	s := w.px.s
	w.armed = false
	now := s.now()
	for w.head < len(w.jobs) {
		j := w.jobs[w.head]
		cfg := j.pc.ks.cfg
		if j.pc.st.fresh(j.key, now) || j.pc.inflight[j.key] != nil {
			s.met.svcs[j.pc.svc.idx].warmSkipped++
			w.head++
			continue
		}
		if !w.started {
			w.started, w.tokens = true, float64(cfg.Warm.Burst)
		} else {
			w.tokens = math.Min(float64(cfg.Warm.Burst), w.tokens+float64(now-w.last)/1e9*cfg.Warm.Rate)
		}
		w.last = now
		if w.tokens < 1 {
			w.armed = true
			s.eng.after(int64(math.Ceil((1-w.tokens)/cfg.Warm.Rate*1e9)), w, 0)
			return
		}
		w.tokens--
		w.head++
		s.warmFetch(w.px, j.pc, j.key)
	}
	w.jobs, w.head = w.jobs[:0], 0
}

// warmFetch sends one warm fetch through the proxy: admission, balancing
// and a backend, like a miss, without a client.
func (s *Sim) warmFetch(px *proxy, pc *pcache, key int32) {
	rt := pc.svc.cachedRoute
	r := s.allocRequest()
	r.route, r.ps = rt, px.svcs[rt.svc.idx]
	r.cache, r.ckey, r.cstate = pc, key, csWarm
	r.work = rt.svc.drawService(s.warmRng)
	now := s.now()
	r.clientStart, r.proxyStart = now, now
	pc.inflight[key] = &pfetch{}
	s.met.svcs[pc.svc.idx].warmFetches++
	r.ps.active++
	s.admitAndTry(r)
}

// hotKeys are the most requested paths of svc over the minute across the
// proxies, most first (ties by path), and resets the counts.
func (s *Sim) hotKeys(svc *service) []string {
	n := svc.spec.ProxyCache.HotKeys
	if n == 0 {
		return nil
	}
	sum := map[int32]int32{}
	var ks *keyspace
	for _, px := range s.proxies {
		pc := px.caches[svc.idx]
		ks = pc.ks
		for k, c := range pc.counts {
			sum[k] += c
		}
		clear(pc.counts)
	}
	keys := make([]int32, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if sum[keys[i]] != sum[keys[j]] {
			return sum[keys[i]] > sum[keys[j]]
		}
		return keys[i] < keys[j]
	})
	out := make([]string, 0, min(n, len(keys)))
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, ks.path(k))
	}
	return out
}

// setHints applies a directive's TTL hints to a proxy's cache.
func (pc *pcache) setHints(hs []ttlHint) { pc.hints = hs }

// initCaches builds the cached services' key spaces, marks their cached
// routes and opens the first-minute windows of the announced events that
// start inside the run.
func (s *Sim) initCaches() {
	for _, svc := range s.services {
		c := svc.spec.ProxyCache
		if c == nil {
			continue
		}
		svc.ks = newKeyspace(s, svc)
		for _, name := range c.Classes {
			for _, rt := range svc.routes {
				if rt.class == name {
					rt.cached = true
					if svc.cachedRoute == nil {
						svc.cachedRoute = rt
					}
				}
			}
		}
		for _, e := range s.events {
			from := int64(e.Start.Sub(s.sc.Start))
			if from < 0 || from >= s.end {
				continue
			}
			featured := 0
			for _, f := range svc.ks.feats {
				if f.from == from {
					featured += len(f.ids)
				}
			}
			s.met.cacheEvents = append(s.met.cacheEvents, CacheEventResult{Service: svc.name, Category: e.Category, Name: e.Name, Start: e.Start, Featured: featured})
			svc.ks.firsts = append(svc.ks.firsts, firstWin{from: from, to: from + int64(time.Minute), acc: len(s.met.cacheEvents) - 1})
		}
	}
}

// hintsOf converts a directive's TTL hints.
func hintsOf(hs []directive.TTLHint) []ttlHint {
	var out []ttlHint
	for _, h := range hs {
		if h.TTL > 0 && strings.HasPrefix(h.PathPrefix, "/") {
			out = append(out, ttlHint{prefix: h.PathPrefix, ttl: int64(h.TTL)})
		}
	}
	return out
}
