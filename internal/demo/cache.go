package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/loadgen"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/proxy"
)

// The demo's response cache (issue #15): the proxy caches the catalog
// service (product pages carry s-maxage, list and search pages max-age:
// internal/shop), the calendar names the pages each sale features
// (X-LBSYS-WARM), the load generator favours them while the sale lasts,
// and the predictive controller's directive has the proxy fetch them
// before it starts. The figure that shows it: the product pages' hit
// ratio in the sale's first (virtual) minute, warm against cold
// (--warm=false), with the whole catalog's (lists too) beside it.

const (
	// productsRoute is the proxy route of the catalog's product pages
	// (/catalog/products/{id}): what a sale features, what the controller
	// warms and the simulator's cached class (scenarios' proxy_cache
	// classes: [product]). Its hit ratio is the demo's figure.
	productsRoute = "products"
	// listsRoute is the rest of the catalog (/catalog/products?page=…
	// lists; searches take their own route): every session starts on a
	// list, a handful of pages fresh an hour of virtual time, hits warm
	// or cold. Reported with the product pages as the catalog's overall.
	listsRoute = "catalog"
	// productSharedMaxAge is the shop's s-maxage of a product page
	// (internal/shop/cacheable.go), on the wall clock: what the
	// controller is told of the origin's freshness, in its own time.
	productSharedMaxAge = 30 * time.Second
	// warmRate and warmBurst are the proxy's warm pacing (cache.warm):
	// the whole sale's list in about a second of wall time, a virtual
	// minute.
	warmRate  = 20
	warmBurst = 20
	// controlLatency is how long, on the wall clock, a warm list takes
	// from the controller's decision to the proxy's queue: the change's
	// workflow at the coordinator, the stream, the agent's apply —
	// seconds (3 s measured on an idle machine, more under load). The
	// planner's default lead counts them as seconds of its own time, but
	// under the demo's compression each is a virtual minute, so the lead
	// adds them scaled; the pages stay fresh 30 virtual minutes, far
	// longer.
	controlLatency = 8 * time.Second
	// saleHotShare is the share of product choices during a sale that
	// are its featured products: the sale's crowd came for them.
	saleHotShare = 0.7
)

// featured is what the calendar's events feature, for the controller.
func (w *world) featured() []control.Featured {
	var out []control.Featured
	for _, e := range w.events {
		if len(e.Warm) > 0 {
			out = append(out, control.Featured{Name: e.Summary, Category: e.Category(), Start: e.Start, End: e.End, Services: e.Services, Paths: e.Warm})
		}
	}
	return out
}

// hotSets are the load generator's sale windows: each sale of the replay
// favours the products it features and gives its visitors the sale's
// funnel while it lasts (offsets in real time from the run's start at
// from, factor virtual seconds per real one).
func (w *world) hotSets(from time.Time, factor float64, runFor time.Duration) []loadgen.HotSet {
	var out []loadgen.HotSet
	real := func(t time.Time) time.Duration { return time.Duration(float64(t.Sub(from)) / factor) }
	for _, e := range w.events {
		if !e.End.After(from) || real(e.Start) >= runFor {
			continue
		}
		var products []string
		for _, p := range e.Warm {
			if rest, ok := strings.CutPrefix(p, "/catalog/products/"); ok && rest != "" && !strings.ContainsAny(rest, "/?") {
				products = append(products, p) // product pages; lists and searches are no product choice
			}
		}
		h := loadgen.HotSet{From: max(0, real(e.Start)), To: real(e.End), Funnel: &w.sale}
		if len(products) > 0 {
			h.Products, h.Share = products, saleHotShare
		}
		out = append(out, h)
	}
	return out
}

// catalogCache is what the controller knows of the catalog's cache, in
// its own (virtual) time: the proxy's warm rate per virtual second, the
// product pages' freshness and a warm lead that covers the control
// chain's wall-clock latency.
func catalogCache(factor float64) *control.CacheSetup {
	return &control.CacheSetup{Prefixes: []string{"/catalog"}, WarmRate: warmRate / factor,
		Freshness: time.Duration(float64(productSharedMaxAge) * factor),
		Options:   planner.CacheOptions{WarmLead: planner.DefaultWarmLead + time.Duration(float64(controlLatency)*factor)}}
}

// CacheFigures are the cache's counters of a route (or the catalog's
// two) over a window.
type CacheFigures struct {
	// Lookups are the requests the cache handled (hits, stale, misses,
	// revalidations, collapsed); Hits the fresh hits.
	Lookups  uint64  `json:"lookups"`
	Hits     uint64  `json:"hits"`
	HitRatio float64 `json:"hit_ratio"`
	// Invalidations are the stored pages the shop's stock changes
	// dropped (Link rel=invalidates of a reserve or release).
	Invalidations uint64 `json:"invalidations"`
}

// CacheEvent is the cache in the first virtual minute (and five) of an
// announced event of the replay.
type CacheEvent struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"` // virtual
	// Products are the product pages' figures in the first virtual
	// minute, Catalog the whole catalog's (lists and product pages).
	Products CacheFigures `json:"products"`
	Catalog  CacheFigures `json:"catalog"`
	// Measured is false when the run ended before the minute did.
	Measured bool `json:"measured"`
	// Products5 and Catalog5 are the same over the first five virtual
	// minutes: under compressed time a shopper still thinks a real
	// second between pages, a virtual minute, so most of the sale's crowd
	// reaches its product pages after its first minute.
	Products5 CacheFigures `json:"products_5m"`
	Catalog5  CacheFigures `json:"catalog_5m"`
	Measured5 bool         `json:"measured_5m"`
	// WarmStored are the warm fetches stored before the event started.
	WarmStored uint64 `json:"warm_stored"`
}

// CacheResult is the catalog's cache over a run.
type CacheResult struct {
	Warm     bool         `json:"warm"`
	Products CacheFigures `json:"products"`
	Catalog  CacheFigures `json:"catalog"`
	WarmHits uint64       `json:"warm_hits"`
	Warmed   uint64       `json:"warm_stored"`
	Events   []CacheEvent `json:"events"`
}

// lookups counts what the cache handled of a route's requests: every
// request on a cached route ends in exactly one of hits, stale served,
// misses, revalidations, collapsed or bypass (docs/cache.md, metrics).
func lookups(s cache.RouteStats) uint64 {
	n := s.Hits + s.Misses + s.Coalesced["served"]
	for _, v := range s.Stale {
		n += v
	}
	for _, v := range s.Revalidations {
		n += v
	}
	return n
}

// catalogStats are the counters of the catalog's two routes at an
// instant.
type catalogStats struct{ products, lists cache.RouteStats }

func readStats(px *proxy.Proxy) catalogStats {
	var cs catalogStats
	if st := px.Status(); st.Cache != nil {
		for _, r := range st.Cache.Routes {
			switch r.Route {
			case productsRoute:
				cs.products = r.RouteStats
			case listsRoute:
				cs.lists = r.RouteStats
			}
		}
	}
	return cs
}

// figures are the counters from a to b over the given routes.
func figures(a, b catalogStats, withLists bool) CacheFigures {
	pairs := [][2]cache.RouteStats{{a.products, b.products}}
	if withLists {
		pairs = append(pairs, [2]cache.RouteStats{a.lists, b.lists})
	}
	var f CacheFigures
	for _, p := range pairs {
		f.Lookups += lookups(p[1]) - lookups(p[0])
		f.Hits += p[1].Hits - p[0].Hits
		f.Invalidations += p[1].Invalidations - p[0].Invalidations
	}
	f.HitRatio = ratioOf(f.Hits, f.Lookups)
	return f
}

// cacheProbe samples the routes' counters at each event's start, a
// virtual minute and five later, on the demo's clock.
type cacheProbe struct {
	mu     sync.Mutex
	px     *proxy.Proxy
	events []CacheEvent
	at     [][3]catalogStats
	timers []clock.Timer
}

// startCacheProbe arms the samples for the events starting within the run.
func startCacheProbe(px *proxy.Proxy, vc *clock.Scaled, w *world, from, until time.Time) *cacheProbe {
	cp := &cacheProbe{px: px}
	for _, e := range w.events {
		if e.Start.Before(from) || !e.Start.Before(until) {
			continue
		}
		i := len(cp.events)
		cp.events = append(cp.events, CacheEvent{Name: e.Summary, Start: e.Start})
		cp.at = append(cp.at, [3]catalogStats{})
		for k, t := range []time.Time{e.Start, e.Start.Add(time.Minute), e.Start.Add(5 * time.Minute)} {
			cp.timers = append(cp.timers, vc.AfterFunc(t.Sub(vc.Now()), func() {
				s := readStats(px)
				cp.mu.Lock()
				cp.at[i][k] = s
				switch k {
				case 1:
					cp.events[i].Measured = true
				case 2:
					cp.events[i].Measured5 = true
				}
				cp.mu.Unlock()
			}))
		}
	}
	return cp
}

// result stops the probe and sums the run.
func (cp *cacheProbe) result(warm bool) *CacheResult {
	for _, t := range cp.timers {
		t.Stop()
	}
	s := readStats(cp.px)
	res := &CacheResult{Warm: warm, Products: figures(catalogStats{}, s, false), Catalog: figures(catalogStats{}, s, true),
		WarmHits: s.products.WarmHits + s.lists.WarmHits, Warmed: s.products.Warm["stored"] + s.lists.Warm["stored"]}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for i, e := range cp.events {
		a, b, c := cp.at[i][0], cp.at[i][1], cp.at[i][2]
		if e.Measured {
			e.Products, e.Catalog = figures(a, b, false), figures(a, b, true)
		}
		if e.Measured5 {
			e.Products5, e.Catalog5 = figures(a, c, false), figures(a, c, true)
		}
		e.WarmStored = a.products.Warm["stored"] + a.lists.Warm["stored"]
		res.Events = append(res.Events, e)
	}
	return res
}

// printCache writes the cache's lines of the summary.
func printCache(w io.Writer, c *CacheResult) {
	if c == nil {
		return
	}
	mode := "warmed by the controller"
	if !c.Warm {
		mode = "no warming: cold at each sale"
	}
	fmt.Fprintf(w, "cache (%s): product pages' hit ratio %.3f over the run (%d of %d; the whole catalog with its lists %.3f), %d warm fetches stored, %d hits on them, %d pages dropped by stock changes\n",
		mode, c.Products.HitRatio, c.Products.Hits, c.Products.Lookups, c.Catalog.HitRatio, c.Warmed, c.WarmHits, c.Products.Invalidations)
	for _, e := range c.Events {
		if !e.Measured {
			fmt.Fprintf(w, "  %s at %s: the run ended before its first minute did\n", e.Name, e.Start.Format("15:04"))
			continue
		}
		five := ""
		if e.Measured5 {
			five = fmt.Sprintf("; %.3f in its first five (%d of %d; whole catalog %.3f)", e.Products5.HitRatio, e.Products5.Hits, e.Products5.Lookups, e.Catalog5.HitRatio)
		}
		fmt.Fprintf(w, "  %s at %s: product pages' hit ratio %.3f in its first virtual minute (%d of %d; whole catalog %.3f)%s; %d pages warmed before it\n",
			e.Name, e.Start.Format("15:04"), e.Products.HitRatio, e.Products.Hits, e.Products.Lookups, e.Catalog.HitRatio, five, e.WarmStored)
	}
}

// lastCache is a run's cache figures kept for the warm/cold comparison.
type lastCache struct {
	Seed     uint64       `json:"seed"`
	Factor   float64      `json:"factor"`
	Duration string       `json:"duration"`
	From     time.Time    `json:"from"`
	Cache    *CacheResult `json:"cache"`
}

// compareCache keeps this run's cache figures and prints them next to
// the last run's with warming the other way (same seed and settings).
func compareCache(w io.Writer, cfg *Config, c *CacheResult) {
	if c == nil {
		return
	}
	name := func(warm bool) string {
		if warm {
			return "last-cache-warm.json"
		}
		return "last-cache-cold.json"
	}
	mine := lastCache{Seed: cfg.Seed, Factor: cfg.Factor, Duration: cfg.Duration.String(), From: cfg.From, Cache: c}
	os.MkdirAll(cfg.StateDir, 0o755)
	if b, err := json.MarshalIndent(mine, "", " "); err == nil {
		os.WriteFile(filepath.Join(cfg.StateDir, name(c.Warm)), b, 0o644)
	}
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, name(!c.Warm)))
	var prev lastCache
	if err != nil || json.Unmarshal(b, &prev) != nil || prev.Cache == nil || prev.Seed != mine.Seed || prev.Factor != mine.Factor ||
		prev.Duration != mine.Duration || !prev.From.Equal(mine.From) {
		other := "--warm=false"
		if !c.Warm {
			other = "--warm=true"
		}
		fmt.Fprintf(w, "run `lbsys demo %s` (same seed and settings) to compare the sale's first minute with the cache %s\n", other,
			map[bool]string{true: "warmed", false: "cold"}[!c.Warm])
		return
	}
	warm, cold := c, prev.Cache
	if !c.Warm {
		warm, cold = prev.Cache, c
	}
	times := func(w, c float64) string {
		if c > 0 {
			return fmt.Sprintf("%.2f×", w/c)
		}
		return "∞"
	}
	for i := range warm.Events {
		if i >= len(cold.Events) || !warm.Events[i].Measured || !cold.Events[i].Measured {
			continue
		}
		we, ce := warm.Events[i], cold.Events[i]
		fmt.Fprintf(w, "cache comparison, %s's first minute: product pages warmed %.3f, cold %.3f (%s); the whole catalog warmed %.3f, cold %.3f",
			we.Name, we.Products.HitRatio, ce.Products.HitRatio, times(we.Products.HitRatio, ce.Products.HitRatio), we.Catalog.HitRatio, ce.Catalog.HitRatio)
		if we.Measured5 && ce.Measured5 {
			fmt.Fprintf(w, "; first five minutes: product pages warmed %.3f, cold %.3f (%s)", we.Products5.HitRatio, ce.Products5.HitRatio,
				times(we.Products5.HitRatio, ce.Products5.HitRatio))
		}
		fmt.Fprintln(w)
	}
}

func ratioOf(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
