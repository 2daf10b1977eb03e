package demo

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/loadgen"
)

func testWorld(t *testing.T) (*Config, *world) {
	t.Helper()
	cfg := &Config{}
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	w, err := newWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, w
}

// TestDemoCachesTheCatalog: the generated proxy configuration caches the
// catalog service's routes and paces warm fetches as the controller is
// told.
func TestDemoCachesTheCatalog(t *testing.T) {
	y := proxyConfig("127.0.0.1:8080", "127.0.0.1:9901", "peak_ewma", map[string][]string{"catalog": {"127.0.0.1:9001"}}, nil, t.TempDir())
	pc, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if pc.Cache.Warm.Rate != warmRate || pc.Cache.Warm.Burst != warmBurst {
		t.Errorf("top-level cache %+v", pc.Cache)
	}
	for _, s := range pc.Services {
		if s.Cache.Enabled != (s.Name == "catalog") {
			t.Errorf("service %s cache %+v: only the catalog caches", s.Name, s.Cache)
		}
	}
	// Routes match in order on segment boundaries (config.Match): product
	// pages on their own route, lists on the catalog's, searches apart.
	route := func(path string) string {
		for _, r := range pc.Listeners[0].Routes {
			pp := r.Match.PathPrefix
			if strings.HasPrefix(path, pp) && (len(path) == len(pp) || strings.HasSuffix(pp, "/") || path[len(pp)] == '/') {
				return r.Name + "→" + r.Service
			}
		}
		return ""
	}
	if r := pc.Listeners[0].Routes[0]; r.Name != productsRoute {
		t.Errorf("first route %s: the product pages' route goes first (the proxy warms a list route by route, in order)", r.Name)
	}
	for path, want := range map[string]string{"/catalog/products/p0161": productsRoute + "→catalog", "/catalog/products": listsRoute + "→catalog",
		"/catalog/search": "search→catalog", "/cart/items": "cart→cart"} {
		if got := route(path); got != want {
			t.Errorf("%s routed to %q, want %q", path, got, want)
		}
	}
	c := catalogCache(60)
	if math.Abs(c.WarmRate-warmRate/60.0) > 1e-12 || c.Freshness != 30*time.Minute || len(c.Prefixes) != 1 || c.Prefixes[0] != "/catalog" ||
		c.Options.WarmLead != 10*time.Minute {
		t.Errorf("the controller's view of the cache, in virtual time: %+v", c)
	}
}

// TestDemoSaleFeaturesAndHotSets: the calendar's sale in the replay names
// the products it features; the load generator favours them in the
// sale's window (real offsets); only product pages are product choices.
func TestDemoSaleFeaturesAndHotSets(t *testing.T) {
	cfg, w := testWorld(t)
	var sale *control.Featured
	for _, f := range w.featured() {
		if f.Start.Equal(time.Date(1995, 7, 12, 7, 45, 0, 0, time.UTC)) {
			f := f
			sale = &f
		}
	}
	if sale == nil || len(sale.Paths) != 40 || sale.Paths[0] != "/catalog/products/p0161" || !strings.Contains(sale.Name, "telescopes") {
		t.Fatalf("the replay's sale features %+v", sale)
	}
	hs := w.hotSets(cfg.From, cfg.Factor, cfg.Duration)
	if len(hs) != 1 || hs[0].From != 75*time.Second || hs[0].To != 100*time.Second || len(hs[0].Products) != 40 || hs[0].Share != saleHotShare {
		t.Fatalf("hot sets %+v: want the sale's 40 products from 75 s to 100 s", hs)
	}
	if hs[0].Funnel == nil || *hs[0].Funnel != saleFunnel {
		t.Fatalf("the sale's visitors walk %v, want the sale's funnel %v", hs[0].Funnel, saleFunnel)
	}
	w.events[len(w.events)-1].Warm = append(w.events[len(w.events)-1].Warm, "/catalog/products?page=1&size=20")
	if hs := w.hotSets(cfg.From.Add(24*time.Hour), cfg.Factor, cfg.Duration); len(hs) != 1 || len(hs[0].Products) != 40 {
		t.Fatalf("the launch-day sale's hot set %+v: a list page is no product", hs)
	}
}

// TestDemoControllerWarmsBeforeTheSale runs the demo's controller setup
// through the oracle (the same planner without a forecaster to train):
// before the sale its directive lists the sale's pages for the catalog,
// with the event as the reason; with warming off it lists none.
func TestDemoControllerWarmsBeforeTheSale(t *testing.T) {
	cfg, w := testWorld(t)
	for _, noWarm := range []bool{false, true} {
		cfg.NoWarm = noWarm
		s := controllerSetup(cfg, w)
		s.Future = func(string, time.Time) float64 { return 50 }
		o, err := control.NewOracle(s)
		if err != nil {
			t.Fatal(err)
		}
		var warm *directive.Cache
		for at := cfg.From.Add(time.Minute); !at.After(time.Date(1995, 7, 12, 7, 44, 0, 0, time.UTC)); at = at.Add(time.Minute) {
			var sm []control.ServiceMinute
			for _, d := range services {
				sm = append(sm, control.ServiceMinute{Service: d.name, RPS: 20, ServedRPS: 20, Ready: 2, Util: 0.2, P50Ms: 10})
			}
			o.Observe(control.Minute{At: at, Services: sm})
			if p := o.Decide(at); p.Directive != nil {
				if sec := p.Directive.Services["catalog"]; sec != nil && sec.Cache != nil && warm == nil {
					warm = sec.Cache
					// The lead: 10 virtual minutes (2 and the control
					// chain's 8 s at ×60), and the 40 pages' fetches.
					if at.Before(time.Date(1995, 7, 12, 7, 32, 0, 0, time.UTC)) || at.After(time.Date(1995, 7, 12, 7, 34, 0, 0, time.UTC)) {
						t.Errorf("warm list proposed at %s, want about 07:33: early enough for the control chain's seconds, each a virtual minute", at.Format("15:04"))
					}
				}
			}
		}
		switch {
		case noWarm && warm != nil:
			t.Errorf("warming off, yet warm list %v", warm.Warm)
		case !noWarm && (warm == nil || len(warm.Warm) != 40 || warm.Why == nil || warm.Why.Driver != "event" || !strings.Contains(warm.Why.Text, "telescopes")):
			t.Errorf("warm list before the sale: %+v", warm)
		}
	}
}

// TestCacheFigures: a window's figures are the counters' differences,
// the product pages alone or with the lists.
func TestCacheFigures(t *testing.T) {
	a := catalogStats{products: cache.RouteStats{Hits: 5, Misses: 5, Invalidations: 1}, lists: cache.RouteStats{Hits: 100}}
	b := catalogStats{products: cache.RouteStats{Hits: 8, Misses: 9, Invalidations: 3, Stale: map[string]uint64{"while_revalidate": 1}},
		lists: cache.RouteStats{Hits: 110, Misses: 2}}
	if f := figures(a, b, false); f.Lookups != 8 || f.Hits != 3 || f.Invalidations != 2 || math.Abs(f.HitRatio-3.0/8) > 1e-12 {
		t.Errorf("product pages %+v, want 3 hits of 8, 2 invalidations", f)
	}
	if f := figures(a, b, true); f.Lookups != 20 || f.Hits != 13 || math.Abs(f.HitRatio-13.0/20) > 1e-12 {
		t.Errorf("whole catalog %+v, want 13 hits of 20", f)
	}
	if f := figures(b, b, true); f.Lookups != 0 || f.HitRatio != 0 {
		t.Errorf("empty window %+v", f)
	}
}

func TestLookups(t *testing.T) {
	s := cache.RouteStats{Hits: 10, Misses: 3, Coalesced: map[string]uint64{"served": 2, "timeout": 9}, Stale: map[string]uint64{"while_revalidate": 1},
		Revalidations: map[string]uint64{"not_modified": 4}, Bypass: map[string]uint64{"method": 100}}
	if n := lookups(s); n != 20 {
		t.Errorf("lookups %d, want 20 (hits, misses, collapsed served, stale, revalidations; not bypass)", n)
	}
}

// TestCompareCache: a run keeps its figures; the next run with warming
// the other way (same seed and settings) prints both, warm first; a run
// with other settings only says how to compare.
func TestCompareCache(t *testing.T) {
	cfg, _ := testWorld(t)
	cfg.StateDir = t.TempDir()
	ev := func(products, products5 float64) CacheEvent {
		return CacheEvent{Name: "Sale", Measured: true, Measured5: true, Products: CacheFigures{HitRatio: products},
			Catalog: CacheFigures{HitRatio: 0.9}, Products5: CacheFigures{HitRatio: products5}}
	}
	var b strings.Builder
	compareCache(&b, cfg, &CacheResult{Warm: false, Events: []CacheEvent{ev(0.4, 0.7)}})
	if !strings.Contains(b.String(), "run `lbsys demo --warm=true`") || strings.Contains(b.String(), "cache comparison") {
		t.Errorf("first run: %s", b.String())
	}
	b.Reset()
	other := *cfg
	other.Seed++
	compareCache(&b, &other, &CacheResult{Warm: true, Events: []CacheEvent{ev(0.9, 0.8)}})
	if !strings.Contains(b.String(), "run `lbsys demo --warm=false`") {
		t.Errorf("another seed compared: %s", b.String())
	}
	b.Reset()
	compareCache(&b, cfg, &CacheResult{Warm: true, Events: []CacheEvent{ev(0.9, 0.8)}})
	if want := "cache comparison, Sale's first minute: product pages warmed 0.900, cold 0.400 (2.25×); the whole catalog warmed 0.900, cold 0.900; first five minutes: product pages warmed 0.800, cold 0.700 (1.14×)"; !strings.Contains(b.String(), want) {
		t.Errorf("comparison %q, want %q", b.String(), want)
	}
}

// TestDemoHistoryHasTheSalesFunnel: the history the controller learns
// from is what the load generator sends: in a past sale's window each
// service's rate is the sale funnel's (a checkout per five visits), out
// of it the ordinary one's (one per ten), for the same visits.
func TestDemoHistoryHasTheSalesFunnel(t *testing.T) {
	cfg, w := testWorld(t)
	h := w.history(cfg.From)
	at := func(svc string, t time.Time) float64 {
		s := h[svc]
		return s.Values[int(t.Sub(s.Start)/time.Minute)]
	}
	sale := time.Date(1995, 7, 4, 10, 10, 0, 0, time.UTC) // sale-2: 10:00 to 10:25
	before := sale.Add(-15 * time.Minute)
	for _, tc := range []struct {
		at   time.Time
		f    loadgen.Funnel
		what string
	}{{sale, saleFunnel, "in the sale"}, {before, loadgen.DefaultFunnel, "before it"}} {
		visits := w.realRPS(tc.at) / loadgen.DefaultFunnel.ExpectedRequests()
		for svc, per := range tc.f.ServiceRequests() {
			if got, want := at(svc, tc.at), visits*per; math.Abs(got-want) > 1e-9*want {
				t.Errorf("%s %s: %.4f req/s, want %.4f (%.3f visits/s × %.2f)", svc, tc.what, got, want, visits, per)
			}
		}
	}
	// The sale's uplift on checkout is twice the one on visits.
	if r := (at("checkout", sale) / w.realRPS(sale)) / (at("checkout", before) / w.realRPS(before)); math.Abs(r-2) > 1e-9 {
		t.Errorf("checkout per visit in the sale ×%.3f of before, want ×2", r)
	}
}

// TestDemoEventConfidence: the demo's event confidence reaches its
// controller's setup (0: the forecaster's default), and a value outside
// [0.5, 0.999] is refused before anything starts.
func TestDemoEventConfidence(t *testing.T) {
	cfg, w := testWorld(t)
	if s := controllerSetup(cfg, w); s.Uplift.Upper != 0 {
		t.Errorf("default: Uplift.Upper %v, want 0 (the forecaster's 0.95)", s.Uplift.Upper)
	}
	cfg.EventConfidence = 0.8
	if s := controllerSetup(cfg, w); s.Uplift.Upper != 0.8 {
		t.Errorf("EventConfidence 0.8: Uplift.Upper %v", s.Uplift.Upper)
	}
	for _, p := range []float64{0.2, 1, 3} {
		c := &Config{EventConfidence: p}
		if err := c.defaults(); err == nil || !strings.Contains(err.Error(), "event confidence") {
			t.Errorf("EventConfidence %v: %v, want refused", p, err)
		}
	}
}
