package sim

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/control"
)

// zipfProbs are the popularities of n keys with exponent s (key k ∝ 1/k^s).
func zipfProbs(n int, s float64) []float64 {
	p := make([]float64, n)
	sum := 0.0
	for k := range p {
		p[k] = math.Pow(float64(k+1), -s)
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
	return p
}

// cheHitRatio is LRU's hit ratio under independent requests with
// popularities p and c entries, by Che's approximation (Che, Tung and
// Wang, "Hierarchical Web caching systems: modeling, design and
// experimental results", IEEE JSAC 2002; its accuracy explained by
// Fricker, Robert and Roberts, ITC 2012): the characteristic time T solves
// Σ (1 − e^{−p_i T}) = c, and the hit ratio is Σ p_i (1 − e^{−p_i T}).
func cheHitRatio(p []float64, c int) float64 {
	fill := func(t float64) float64 {
		s := 0.0
		for _, x := range p {
			s += 1 - math.Exp(-x*t)
		}
		return s
	}
	lo, hi := 0.0, 1.0
	for fill(hi) < float64(c) {
		hi *= 2
	}
	for i := 0; i < 100; i++ {
		mid := (lo + hi) / 2
		if fill(mid) < float64(c) {
			lo = mid
		} else {
			hi = mid
		}
	}
	h := 0.0
	for _, x := range p {
		h += x * (1 - math.Exp(-x*lo))
	}
	return h
}

// topMass is an ideal frequency-based cache's hit ratio: the c most
// popular keys always stored.
func topMass(p []float64, c int) float64 {
	q := append([]float64(nil), p...)
	sort.Sort(sort.Reverse(sort.Float64Slice(q)))
	s := 0.0
	for _, x := range q[:c] {
		s += x
	}
	return s
}

// storeHitRatio drives a store with n requests drawn from a key space
// (no expiry: a TTL far beyond the run), storing every miss at once, and
// returns the hit ratio after the first tenth (the fill).
func storeHitRatio(keys int, s float64, capacity int, policy string, n int, seed uint64) float64 {
	z := s
	ks := &keyspace{cfg: &ProxyCache{Keys: keys, Zipf: &z}, n: keys, rng: rand.New(rand.NewPCG(seed, 7))}
	ks.cum = make([]float64, keys)
	sum := 0.0
	for k := 1; k <= keys; k++ {
		sum += math.Pow(float64(k), -s)
		ks.cum[k-1] = sum
	}
	for i := range ks.cum {
		ks.cum[i] /= sum
	}
	st := newStore(capacity, policy)
	hits, looks := 0, 0
	for i := 0; i < n; i++ {
		now := int64(i)
		k := ks.draw(now)
		e := st.get(k, now)
		if i >= n/10 {
			looks++
			if e != nil {
				hits++
			}
		}
		if e == nil {
			st.put(k, math.MaxInt64, false)
		}
		if len(st.entries) > capacity {
			panic(fmt.Sprintf("%d entries in a store of %d", len(st.entries), capacity))
		}
	}
	return float64(hits) / float64(looks)
}

// TestStoreHitRatioZipf checks the stores against known figures on Zipf
// key spaces: LRU within 0.015 of Che's approximation; the TinyLFU-like
// store above LRU and within 0.05 below the ideal frequency cache (the
// most popular keys always stored), never above it (TinyLFU reaches
// within a few percent of it on Zipf traces: Einziger et al. 2017, §5).
func TestStoreHitRatioZipf(t *testing.T) {
	n := 600_000
	if raceEnabled || testing.Short() {
		n = 200_000
	}
	for _, tc := range []struct {
		keys, capacity int
		s              float64
	}{
		{5000, 500, 1.0},
		{5000, 250, 0.8},
		{2000, 1000, 1.2},
		{1000, 100, 0.6},
	} {
		t.Run(fmt.Sprintf("keys=%d,c=%d,s=%.1f", tc.keys, tc.capacity, tc.s), func(t *testing.T) {
			p := zipfProbs(tc.keys, tc.s)
			che, ideal := cheHitRatio(p, tc.capacity), topMass(p, tc.capacity)
			lru := storeHitRatio(tc.keys, tc.s, tc.capacity, evictLRU, n, 1)
			tiny := storeHitRatio(tc.keys, tc.s, tc.capacity, evictTinyLFU, n, 1)
			t.Logf("LRU %.4f (Che %.4f); TinyLFU %.4f (ideal LFU %.4f)", lru, che, tiny, ideal)
			if math.Abs(lru-che) > 0.015 {
				t.Errorf("LRU hit ratio %.4f, Che's approximation %.4f: off by more than 0.015", lru, che)
			}
			if tiny < lru+0.005 || tiny > ideal+0.005 || tiny < ideal-0.05 {
				t.Errorf("TinyLFU hit ratio %.4f: want above LRU's %.4f and within [ideal − 0.05, ideal] = [%.4f, %.4f]", tiny, lru, ideal-0.05, ideal)
			}
		})
	}
}

// TestStoreTTL: an entry is fresh for exactly its lifetime; and one key
// asked as a Poisson stream of rate λ with lifetime T (each miss stores
// it again) hits with probability λT / (1 + λT): after each miss, λT hits
// are expected before it expires (a renewal argument).
func TestStoreTTL(t *testing.T) {
	for _, policy := range []string{evictLRU, evictTinyLFU} {
		st := newStore(10, policy)
		st.put(3, 1000, false)
		for _, tc := range []struct {
			at   int64
			want bool
		}{{0, true}, {999, true}, {1000, false}, {5000, false}} {
			if got := st.get(3, tc.at) != nil; got != tc.want {
				t.Errorf("%s: fresh at %d = %v, want %v (expires at 1000)", policy, tc.at, got, tc.want)
			}
		}
		if !st.fresh(3, 999) || st.fresh(3, 1000) || st.fresh(4, 0) {
			t.Errorf("%s: fresh() disagrees with get()", policy)
		}
	}
	for _, tc := range []struct{ lambda, ttl float64 }{{2, 1}, {0.5, 1}, {10, 0.3}} {
		rng := rand.New(rand.NewPCG(3, 4))
		st := newStore(10, evictLRU)
		now, hits, n := 0.0, 0, 200_000
		for i := 0; i < n; i++ {
			now += rng.ExpFloat64() / tc.lambda
			ns := int64(now * 1e9)
			if st.get(1, ns) != nil {
				hits++
			} else {
				st.put(1, ns+int64(tc.ttl*1e9), false)
			}
		}
		want := tc.lambda * tc.ttl / (1 + tc.lambda*tc.ttl)
		got := float64(hits) / float64(n)
		if math.Abs(got-want) > 0.01 {
			t.Errorf("λ=%v T=%v: hit ratio %.4f, want λT/(1+λT) = %.4f", tc.lambda, tc.ttl, got, want)
		}
	}
}

// TestKeyspace: paths map to keys and back; pages under the prefix's
// directory that are not keys become pages of their own, others are no
// page of the cache; draws follow popularity, and the featured pages take
// their share while their event lasts.
func TestKeyspace(t *testing.T) {
	z := 1.0
	share := 0.5
	cfg := &ProxyCache{PathPrefix: "/catalog/products/p", Keys: 100, Zipf: &z, FeaturedShare: &share}
	ks := &keyspace{cfg: cfg, n: 100, byX: map[string]int32{}, share: share, rng: rand.New(rand.NewPCG(1, 2)), dir: cfg.RouteDir()}
	ks.cum = make([]float64, 100)
	p := zipfProbs(100, 1)
	sum := 0.0
	for i, x := range p {
		sum += x
		ks.cum[i] = sum
	}
	for _, tc := range []struct {
		path string
		id   int32
		ok   bool
	}{
		{"/catalog/products/p1", 0, true},
		{"/catalog/products/p100", 99, true},
		{"/catalog/products/p101", 100, true}, // outside the space: a page of its own
		{"/catalog/products/p007", 101, true}, // not the canonical form of key 7
		{"/catalog/products/jacket?size=M", 102, true},
		{"/catalog/products/p101", 100, true}, // the same page again
		{"/cart", 0, false},
		{"/catalogue/x", 0, false},
	} {
		id, ok := ks.id(tc.path, true)
		if id != tc.id || ok != tc.ok {
			t.Errorf("id(%q) = %d, %v; want %d, %v", tc.path, id, ok, tc.id, tc.ok)
		}
		if ok && ks.path(id) != tc.path {
			t.Errorf("path(%d) = %q, want %q", id, ks.path(id), tc.path)
		}
	}
	if cfg.RouteDir() != "/catalog/products" {
		t.Errorf("route dir %q", cfg.RouteDir())
	}
	ks.feats = []featWin{{from: 100, to: 200, ids: []int32{100, 102}}}
	count := map[int32]int{}
	const n = 200_000
	for i := 0; i < n; i++ {
		count[ks.draw(50)]++
	}
	if d := math.Abs(float64(count[0])/n - p[0]); d > 0.005 || count[100] > 0 {
		t.Errorf("outside the event: key 1 drawn %.4f (want %.4f), featured %d times", float64(count[0])/n, p[0], count[100])
	}
	clear(count)
	for i := 0; i < n; i++ {
		count[ks.draw(150)]++
	}
	if f := float64(count[100]+count[102]) / n; math.Abs(f-share) > 0.01 || math.Abs(float64(count[100]-count[102]))/n > 0.01 {
		t.Errorf("during the event: featured share %.4f (want %.2f), split %d/%d", f, share, count[100], count[102])
	}
}

// cacheScenario is a small shop page service behind two proxies with a
// cache of catalog pages.
func cacheScenario(t testing.TB, extra string) *Scenario {
	return mustParse(t, `
duration: 2m
load: {rate: 400}
clients: {mode: requests, mix: [{service: catalog, class: product, weight: 3}, {service: catalog, class: list}]}
proxies: {count: 2}
services:
  - name: catalog
    replicas: 4
    workers: 8
    service_time: {mean: 10ms, dist: constant}
    classes: [{name: list}, {name: product}]
    proxy_cache:
      classes: [product]
      path_prefix: /catalog/products/p
      keys: 2000
      max_entries: 400
      ttl: 10m
      hit_latency: 1ms
`+extra)
}

// TestProxyCacheInTheRun: hits are answered by the proxy after the hit
// latency and never reach a replica; misses and the uncached class do;
// the totals add up; the run is deterministic.
func TestProxyCacheInTheRun(t *testing.T) {
	sc := cacheScenario(t, "")
	pr := run(t, sc, "least_request", 3)
	ct := pr.Services[0].Cache
	if ct == nil {
		t.Fatal("no cache totals")
	}
	t.Logf("cache %+v; p50 %.2f ms", *ct, pr.Services[0].P50Ms)
	if ct.Lookups != ct.Hits+ct.Collapsed+ct.Misses {
		t.Errorf("lookups %d != hits %d + collapsed %d + misses %d", ct.Lookups, ct.Hits, ct.Collapsed, ct.Misses)
	}
	// 3 of 4 requests are cached pages: lookups ≈ 0.75 of the requests.
	if f := float64(ct.Lookups) / float64(pr.Totals.Requests); math.Abs(f-0.75) > 0.02 {
		t.Errorf("lookups are %.3f of the requests, want 0.75", f)
	}
	// Zipf s=1 over 2000 keys, 400 entries per proxy: Che gives ≈ 0.75
	// for LRU; TinyLFU better; the first seconds fill it.
	if ct.HitRatio < 0.7 || ct.HitRatio > 0.85 {
		t.Errorf("hit ratio %.3f, want 0.7–0.85", ct.HitRatio)
	}
	if pr.Services[0].P50Ms > 1.5 {
		t.Errorf("p50 %.2f ms: with three quarters of the requests hits at 1 ms it must be near 1 ms", pr.Services[0].P50Ms)
	}
	var looks, hits int64
	for _, m := range pr.Minutes {
		looks += m.Services[0].CacheLookups
		hits += m.Services[0].CacheHits
	}
	if looks != ct.Lookups || hits != ct.Hits {
		t.Errorf("per-minute lookups %d hits %d, totals %d %d", looks, hits, ct.Lookups, ct.Hits)
	}
	if ct.BackendSaved != ct.Hits+ct.Collapsed || ct.WarmFetches != 0 {
		t.Errorf("backend saved %d, warm %d", ct.BackendSaved, ct.WarmFetches)
	}
	again := run(t, sc, "least_request", 3)
	if *again.Services[0].Cache != *ct || again.Totals.P99Ms != pr.Totals.P99Ms {
		t.Errorf("not deterministic: %+v vs %+v", *again.Services[0].Cache, *ct)
	}
}

// TestWarmingPopulates: warm paths are fetched through the backends at
// the warm rate (a full bucket first), stored, and then hit; paths
// already fresh are skipped without a fetch; paths of no page of the
// cache are dropped; TTL hints replace a heuristic lifetime only.
func TestWarmingPopulates(t *testing.T) {
	sc := cacheScenario(t, `      warm: {rate: 10, burst: 10}
`)
	sc.Duration = 2050 * time.Millisecond
	sc.Load.Rate = 1 // next to nothing: the warm fetches are what runs
	s, err := New(sc, Options{Policy: "round_robin", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for k := 1001; k <= 1050; k++ {
		paths = append(paths, fmt.Sprintf("/catalog/products/p%d", k))
	}
	px, pc := s.proxies[0], s.proxies[0].caches[0]
	s.warm(px, pc, append(paths, "/cart", "/catalog/products/p1001"))
	pr := s.Run()
	ct := pr.Services[0].Cache
	// A bucket of 10 at once, then 10 a second: 30 by 2.05 s.
	if ct.WarmFetches != 30 || ct.WarmStored != 30 || ct.WarmDropped != 1 {
		t.Fatalf("warm fetches %d stored %d dropped %d; want 30, 30, 1 (at 10/s after a burst of 10; /cart is no page of the cache)", ct.WarmFetches, ct.WarmStored, ct.WarmDropped)
	}
	now := s.now()
	for i, p := range paths[:30] {
		k, _ := pc.ks.id(p, false)
		if !pc.st.fresh(k, now) {
			t.Errorf("warm path %d %s not stored", i, p)
		}
	}
	if s.proxies[1].caches[0].st.fresh(1000, now) {
		t.Error("the other proxy's cache was warmed")
	}
	// Warming the same paths again skips the fresh ones.
	s2, _ := New(sc, Options{Policy: "round_robin", Seed: 1})
	pc2 := s2.proxies[0].caches[0]
	for _, p := range paths[:5] {
		k, _ := pc2.ks.id(p, true)
		pc2.st.put(k, int64(time.Hour), false)
	}
	s2.warm(s2.proxies[0], pc2, paths[:8])
	pr2 := s2.Run()
	if c := pr2.Services[0].Cache; c.WarmSkipped != 5 || c.WarmFetches != 3 {
		t.Errorf("skipped %d fetched %d, want 5 and 3", c.WarmSkipped, c.WarmFetches)
	}
	// TTL hints: only for an origin without explicit freshness.
	for _, heuristic := range []bool{false, true} {
		sc := cacheScenario(t, "")
		sc.Services[0].ProxyCache.Heuristic = heuristic
		s, _ := New(sc, Options{Policy: "round_robin", Seed: 1})
		pc := s.proxies[0].caches[0]
		pc.setHints(hintsOf([]directive.TTLHint{{PathPrefix: "/catalog/products/p7", TTL: directive.Duration(time.Hour)}}))
		k7, _ := pc.ks.id("/catalog/products/p7", false)
		k8, _ := pc.ks.id("/catalog/products/p8", false)
		want7 := int64(10 * time.Minute)
		if heuristic {
			want7 = int64(time.Hour)
		}
		if got := pc.ttlFor(k7); got != want7 {
			t.Errorf("heuristic %v: lifetime of a hinted path %v, want %v", heuristic, time.Duration(got), time.Duration(want7))
		}
		if got := pc.ttlFor(k8); got != int64(10*time.Minute) {
			t.Errorf("heuristic %v: lifetime of an unhinted path %v", heuristic, time.Duration(got))
		}
	}
}

// TestProxyCacheCoalesces: requests for a key being fetched wait for that
// fetch instead of going to the backend; they count as collapsed, not as
// hits, and are answered when it is.
func TestProxyCacheCoalesces(t *testing.T) {
	sc := mustParse(t, `
duration: 30s
load: {rate: 2000}
clients: {mode: requests, mix: [{service: catalog, class: product}]}
services:
  - name: catalog
    replicas: 8
    workers: 8
    service_time: {mean: 200ms, dist: constant}
    classes: [{name: product}]
    proxy_cache: {classes: [product], keys: 10, max_entries: 100, ttl: 2s}
`)
	pr := run(t, sc, "round_robin", 1)
	ct := pr.Services[0].Cache
	// 10 keys at 200 rps each, a 200 ms fetch every 2 s per key: about 15
	// fetches per key, each with some 40 requests waiting on it.
	if ct.Misses > 200 || ct.Collapsed < 2000 || ct.Lookups != ct.Hits+ct.Misses+ct.Collapsed {
		t.Errorf("%+v: want few misses and many collapsed", *ct)
	}
	if pr.Totals.Errors+pr.Totals.Timeouts+pr.Totals.Sheds > 0 || pr.Totals.Unfinished > 100 {
		t.Errorf("totals %+v", pr.Totals)
	}
}

// TestProxyCacheScenarioErrors: the section is validated with field paths.
func TestProxyCacheScenarioErrors(t *testing.T) {
	base := `
duration: 1m
load: {rate: 10}
clients: {mode: requests}
services:
  - name: catalog
    classes: [{name: product}, {name: add, idempotent: false}]
    proxy_cache: %s
`
	for _, tc := range []struct{ section, want string }{
		{`{max_entries: 10}`, "services[catalog].proxy_cache.classes: required"},
		{`{classes: [nope], max_entries: 10}`, `services[catalog].proxy_cache.classes[0]: service catalog has no class "nope"`},
		{`{classes: [add], max_entries: 10}`, `services[catalog].proxy_cache.classes[0]: class "add" is not idempotent`},
		{`{classes: [product]}`, "services[catalog].proxy_cache.max_entries: required"},
		{`{classes: [product], max_entries: 10, eviction: fifo}`, `services[catalog].proxy_cache.eviction: want lru or tinylfu, got "fifo"`},
		{`{classes: [product], max_entries: 10, zipf: -1}`, "services[catalog].proxy_cache.zipf: want an exponent in [0, 5]"},
		{`{classes: [product], max_entries: 10, path_prefix: catalog}`, "services[catalog].proxy_cache.path_prefix: want an absolute path"},
		{`{classes: [product], max_entries: 10, featured_share: 2}`, "services[catalog].proxy_cache.featured_share: want a share in [0, 1]"},
		{`{classes: [product], max_entries: 10, warm: {rate: -1}}`, "services[catalog].proxy_cache.warm.rate: want warm fetches per second"},
		{`{classes: [product], max_entries: 10, ttl: 0s}`, "services[catalog].proxy_cache.ttl: want a freshness lifetime"},
		{`{classes: [product], max_entries: 10, warm_boost: 16}`, "services[catalog].proxy_cache.warm_boost: want 0 to 15"},
		{`{classes: [product], max_entries: 10, warm: {max_paths: 1001}}`, "services[catalog].proxy_cache.warm.max_paths: want 1 to 1000"},
		{`{classes: [product], max_entries: 10, keys: 0}`, ""}, // 0 takes the default
		{`{classes: [product], max_bytes: 1MiB, object_bytes: 64KiB}`, ""},
		{`{classes: [product], max_entries: 10, size: 3}`, "services[catalog].proxy_cache.size"},
	} {
		_, err := ParseScenario([]byte(fmt.Sprintf(base, tc.section)), "x.yaml")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.section, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.section, err, tc.want)
		}
	}
	sc := mustParse(t, fmt.Sprintf(base, `{classes: [product], max_bytes: 1MiB, object_bytes: 64KiB}`))
	c := sc.Services[0].ProxyCache
	if c.MaxEntries != 16 || c.PathPrefix != "/catalog/" || c.Keys != 1000 || *c.Zipf != 1 || c.TTL != 5*time.Minute || c.Eviction != evictTinyLFU ||
		c.Warm.Rate != 10 || c.Warm.Burst != 10 || c.Warm.MaxPaths != 200 || *c.WarmBoost != 15 || c.HotKeys != 50 || *c.FeaturedShare != 0.5 || c.HitLatency != 500*time.Microsecond {
		t.Errorf("defaults %+v", *c)
	}
}

// saleScenario is a small shop page service with an announced sale that
// features n pages nobody asked for before (extra pages of the key
// space), sized so that each featured page is asked about once per
// minute at the sale's start: where a cold cache misses on most of them.
func saleScenario(t testing.TB, n int) *Scenario {
	t.Helper()
	sc := mustParse(t, `
start: 2026-11-17T10:50:00Z
duration: 14m
history: {days: 0}
calendar:
  file: sale.ics
  effects:
    flash-sale: {x: 2, rise: 0s}
load: {rate: 10}
clients: {mode: requests, mix: [{service: catalog, class: product}]}
services:
  - name: catalog
    replicas: 2
    workers: 8
    service_time: {mean: 10ms, dist: constant}
    classes: [{name: product}]
    proxy_cache:
      classes: [product]
      path_prefix: /catalog/products/p
      keys: 5000
      max_entries: 2000
      ttl: 10m
      featured_share: 0.8
      warm: {rate: 20, burst: 20, max_paths: 1000}
`)
	var paths []string
	for i := 1; i <= n; i++ {
		paths = append(paths, fmt.Sprintf("/catalog/products/sale-%d", i))
	}
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:s@t\r\nDTSTAMP:20261101T000000Z\r\n" +
		"DTSTART:20261117T110000Z\r\nDTEND:20261117T110400Z\r\nCATEGORIES:flash-sale\r\nSUMMARY:Jackets -60%\r\n" +
		"X-LBSYS-WARM:" + strings.Join(paths, ",") + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	if err := sc.LoadCalendar(func(string) ([]byte, error) { return []byte(ics), nil }); err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestWarmedSaleBeatsColdCache is the closed loop on a small sale: the
// oracle controller (the calendar and the true load; no forecaster to
// train) warms the proxy with the sale's featured pages before it
// starts, through a directive and the proxy's apply path; the same run
// with warming off is the cold cache. The first minute's hit ratio is at
// least twice the cold one's, and the cold cache's misses on the
// featured pages are what the warm one spared.
func TestWarmedSaleBeatsColdCache(t *testing.T) {
	sc := saleScenario(t, 1000)
	runWith := func(noWarm bool) *PolicyResult {
		pr, err := Run(sc, Options{Policy: "round_robin", Seed: 1, Control: "oracle", NewController: func(s *Sim) (control.Controller, error) {
			st := s.ControlSetup()
			st.NoWarm = noWarm
			return control.NewOracle(st)
		}})
		if err != nil {
			t.Fatal(err)
		}
		return pr
	}
	warm, cold := runWith(false), runWith(true)
	if len(warm.CacheEvents) != 1 || len(cold.CacheEvents) != 1 {
		t.Fatalf("cache events %+v / %+v", warm.CacheEvents, cold.CacheEvents)
	}
	w, c := warm.CacheEvents[0], cold.CacheEvents[0]
	t.Logf("first minute: warm %d/%d = %.3f, cold %d/%d = %.3f; warm totals %+v", w.Hits, w.Lookups, w.HitRatio, c.Hits, c.Lookups, c.HitRatio, *warm.Services[0].Cache)
	if w.Featured != 1000 || w.Name != "Jackets -60%" || w.Category != "flash-sale" {
		t.Errorf("event %+v", w)
	}
	if w.HitRatio < 2*c.HitRatio || w.HitRatio < 0.8 {
		t.Errorf("first-minute hit ratio warm %.3f, cold %.3f: want warm ≥ 2× cold and ≥ 0.8", w.HitRatio, c.HitRatio)
	}
	wc, cc := warm.Services[0].Cache, cold.Services[0].Cache
	if wc.WarmFetches != 1000 || wc.WarmStored != 1000 || wc.WarmHits == 0 || cc.WarmFetches != 0 {
		t.Errorf("warm fetches %d stored %d warm hits %d; cold fetches %d", wc.WarmFetches, wc.WarmStored, wc.WarmHits, cc.WarmFetches)
	}
	if warm.Directives == 0 || warm.NACKs != 0 {
		t.Errorf("directives %d NACKs %d", warm.Directives, warm.NACKs)
	}
}

// TestControlsIncludeTheColdBaseline: predictive_nowarm is a control.
func TestControlsIncludeTheColdBaseline(t *testing.T) {
	got, err := ParseControls("predictive_nowarm,reactive,predictive")
	if err != nil || strings.Join(got, ",") != "reactive,predictive,predictive_nowarm" {
		t.Fatalf("%v %v", got, err)
	}
}

// TestCacheInReportsAndGoals: the report and the comparison carry the
// cache's figures, and the goal compares warming with the cold cache of
// the same policy (the oracle stands in for the predictive controller
// here: same planner, no forecaster to train).
func TestCacheInReportsAndGoals(t *testing.T) {
	sc := saleScenario(t, 1000)
	factory := func(s *Sim, name string) (control.Controller, error) {
		st := s.ControlSetup()
		st.NoWarm = name == "predictive_nowarm"
		return control.NewOracle(st)
	}
	runs := []RunSpec{{Policy: "round_robin", Control: "predictive"}, {Policy: "round_robin", Control: "predictive_nowarm"}}
	var all []*Results
	for _, seed := range []uint64{1, 2} {
		res, err := RunMatrix(sc, runs, seed, 2, Options{}, factory)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, res)
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, all[0], nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Proxy cache", "| round_robin/predictive | catalog |", "First minute of each announced event", "flash-sale 11:00 (Jackets -60%) | 1000 |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	c := Compare(sc, all)
	w, _ := c.Row("predictive", "round_robin")
	k, _ := c.Row("predictive_nowarm", "round_robin")
	if w.Cache == nil || k.Cache == nil || w.Cache.FirstMinuteHitRatio == nil || w.Cache.WarmFetches.Mean != 1000 || k.Cache.WarmFetches.Mean != 0 {
		t.Fatalf("comparison cache %+v / %+v", w.Cache, k.Cache)
	}
	var goal *Goal
	for _, g := range c.Goals() {
		if strings.Contains(g.Goal, "first minute of announced sales") {
			g := g
			goal = &g
		}
	}
	if goal == nil || !goal.Met || !strings.Contains(goal.Goal, "predictive_nowarm") {
		t.Fatalf("goal %+v in %+v", goal, c.Goals())
	}
	var cmp bytes.Buffer
	if err := WriteComparison(&cmp, c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cmp.String(), "### Proxy cache") || !strings.Contains(cmp.String(), "hit ratio in the first minute of announced sales ≥ 2×") {
		t.Errorf("comparison:\n%s", cmp.String())
	}
	t.Logf("%s", cmp.String())
}

// TestWarmBoostDecidesAdmission: in a full TinyLFU store of popular
// pages, warmed pages nobody asked for yet compete with the probation
// victims on their sketch counts: a boost of 2 loses many of them, a
// saturating one (internal/cache's) keeps them all.
func TestWarmBoostDecidesAdmission(t *testing.T) {
	kept := func(boost int) int {
		z := 0.9
		ks := &keyspace{cfg: &ProxyCache{Keys: 20000, Zipf: &z}, n: 20000, rng: rand.New(rand.NewPCG(5, 6))}
		ks.cum = make([]float64, ks.n)
		p := zipfProbs(ks.n, z)
		sum := 0.0
		for i, x := range p {
			sum += x
			ks.cum[i] = sum
		}
		st := newStore(1000, evictTinyLFU)
		st.warmBoost = boost
		for i := 0; i < 100_000; i++ {
			if k := ks.draw(0); st.get(k, 0) == nil {
				st.put(k, math.MaxInt64, false)
			}
		}
		for k := int32(30000); k < 30200; k++ {
			st.put(k, math.MaxInt64, true)
		}
		n := 0
		for k := int32(30000); k < 30200; k++ {
			if st.fresh(k, 0) {
				n++
			}
		}
		return n
	}
	weak, strong := kept(2), kept(14)
	t.Logf("warmed pages kept of 200: boost 2: %d, boost 14: %d", weak, strong)
	if weak > 150 || strong < 195 {
		t.Errorf("kept %d with boost 2 (want admission to turn many away) and %d with boost 14 (want nearly all)", weak, strong)
	}
}

// hotSpy is a controller that records the hot keys it is shown.
type hotSpy struct{ hot [][]string }

func (h *hotSpy) Name() string { return "spy" }
func (h *hotSpy) Observe(m control.Minute) {
	for _, s := range m.Services {
		h.hot = append(h.hot, s.HotKeys)
	}
}
func (h *hotSpy) Decide(time.Time) control.Plan { return control.Plan{} }

// TestHotKeysReachTheController: each minute the controller sees the
// cache's most requested pages, most first, at most hot_keys of them.
func TestHotKeysReachTheController(t *testing.T) {
	sc := cacheScenario(t, "      hot_keys: 5\n")
	spy := &hotSpy{}
	if _, err := Run(sc, Options{Policy: "round_robin", Seed: 1, Controller: spy}); err != nil {
		t.Fatal(err)
	}
	if len(spy.hot) != 2 {
		t.Fatalf("%d minutes observed", len(spy.hot))
	}
	for _, h := range spy.hot {
		if len(h) != 5 || h[0] != "/catalog/products/p1" || h[1] != "/catalog/products/p2" {
			t.Errorf("hot keys %q: want the five most popular, p1 first", h)
		}
	}
}
