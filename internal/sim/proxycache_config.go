package sim

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// The proxy cache model's scenario section: its fields, defaults and
// validation (the model itself is in proxycache.go, its store in
// proxycache_store.go).

// ProxyCache is the proxies' response cache for a service's pages.
type ProxyCache struct {
	// Classes are the service's classes whose answers the proxies cache
	// (pages fetched with GET: product, list). Required; each must be
	// idempotent.
	Classes []string `yaml:"classes"`
	// PathPrefix makes the keys' paths: key k (1 the most requested) is
	// PathPrefix followed by k ("/catalog/products/p" gives
	// /catalog/products/p1 … /catalog/products/p2000). Announced events'
	// X-LBSYS-WARM paths and directives' warm lists are read in this
	// form; a path under the prefix's directory that is not one of the
	// keys is a page of its own that only an event's featured traffic
	// asks for. Default "/<service>/".
	PathPrefix string `yaml:"path_prefix"`
	// Keys is the size of the key space (1 to 1,000,000). Default 1000.
	Keys int `yaml:"keys"`
	// Zipf is the popularity exponent s (key k is asked ∝ 1/k^s): about
	// 1 for shop catalogues and web objects, 0 for uniform. Default 1.
	Zipf *float64 `yaml:"zipf"`
	// MaxEntries bounds the entries each proxy keeps; or MaxBytes, at
	// ObjectBytes per entry. One of them is required.
	MaxEntries int `yaml:"max_entries"`
	// MaxBytes is the store's budget (bodies, headers and bookkeeping:
	// the proxy's cache.max_bytes); each entry weighs ObjectBytes.
	MaxBytes config.ByteSize `yaml:"max_bytes"`
	// ObjectBytes is an entry's size with MaxBytes. Default 16KiB.
	ObjectBytes config.ByteSize `yaml:"object_bytes"`
	// Eviction is lru or tinylfu (W-TinyLFU-like, as internal/cache's
	// otter store). Default tinylfu.
	Eviction string `yaml:"eviction"`
	// TTL is how long a stored answer stays fresh: the origin's s-maxage
	// (or, with Heuristic, the cache's heuristic lifetime). Default 5m.
	TTL time.Duration `yaml:"ttl"`
	// Heuristic is set when the origin sends no explicit freshness: TTL
	// is then the cache's heuristic lifetime, which a directive's TTL
	// hints replace for the paths they cover (never otherwise: RFC 9111
	// lets a hint only stand in for a heuristic). Default false.
	Heuristic bool `yaml:"heuristic"`
	// HitLatency is how long the proxy takes to answer a hit. Default
	// 500µs.
	HitLatency time.Duration `yaml:"hit_latency"`
	// FeaturedShare is the share of the cached classes' requests that ask
	// for an announced event's featured paths (uniformly) while it lasts
	// (several at once share it). Default 0.5.
	FeaturedShare *float64 `yaml:"featured_share"`
	// Warm paces the warm fetches of each proxy, with the proxy's
	// cache.warm defaults.
	Warm WarmPace `yaml:"warm"`
	// WarmBoost is the extra sketch counts a warmed entry starts with
	// (TinyLFU): internal/cache stores a warmed response until admission
	// takes it, up to the saturated count of 15 (its warmBoost), so
	// warmed pages win against a full store's probation victims; a
	// smaller value measures a weaker boost (with 2, most warmed pages are
	// turned away before the crowd arrives: TestWarmBoostDecidesAdmission).
	// Default 15; 0 in YAML: none.
	WarmBoost *int `yaml:"warm_boost"`
	// HotKeys is how many of the most requested keys the proxies report
	// to the controller each minute (what the planner warms before a
	// forecast peak). Default 50; 0 in YAML: none.
	HotKeys int `yaml:"hot_keys"`
}

// WarmPace is a proxy's warm fetch pacing (the proxy configuration's
// cache.warm).
type WarmPace struct {
	// Rate is warm fetches per second. Default 10.
	Rate float64 `yaml:"rate"`
	// Burst is the token bucket's size. Default 10.
	Burst int `yaml:"burst"`
	// Queue bounds the paths waiting; more are dropped and counted.
	// Default 10000.
	Queue int `yaml:"queue"`
	// MaxPaths is the controller's bound on a warm list (the planner's
	// max_warm_paths, an operator's setting). Default 200, at most 1000.
	MaxPaths int `yaml:"max_paths"`
}

// Eviction policies of the model.
const (
	evictLRU     = "lru"
	evictTinyLFU = "tinylfu"
)

func (sc *Scenario) proxyCacheDefaults(s *Service, p string) {
	c := s.ProxyCache
	if c == nil {
		return
	}
	p += ".proxy_cache"
	if c.PathPrefix == "" {
		c.PathPrefix = "/" + s.Name + "/"
	}
	if c.Keys == 0 {
		c.Keys = 1000
	}
	if c.Zipf == nil {
		z := 1.0
		c.Zipf = &z
	}
	if c.ObjectBytes == 0 {
		c.ObjectBytes = 16 << 10
	}
	if c.MaxEntries == 0 && c.MaxBytes > 0 && c.ObjectBytes > 0 {
		c.MaxEntries = int(min(int64(c.MaxBytes)/int64(c.ObjectBytes), math.MaxInt32))
	}
	if c.Eviction == "" {
		c.Eviction = evictTinyLFU
	}
	defDur(&c.TTL, sc.set(p+".ttl"), 5*time.Minute)
	defDur(&c.HitLatency, sc.set(p+".hit_latency"), 500*time.Microsecond)
	if c.FeaturedShare == nil {
		f := 0.5
		c.FeaturedShare = &f
	}
	if c.Warm.Rate == 0 {
		c.Warm.Rate = 10
	}
	if c.Warm.Burst == 0 {
		c.Warm.Burst = 10
	}
	if c.Warm.Queue == 0 {
		c.Warm.Queue = 10000
	}
	if c.Warm.MaxPaths == 0 {
		c.Warm.MaxPaths = 200
	}
	if c.WarmBoost == nil {
		b := 15
		c.WarmBoost = &b
	}
	if c.HotKeys == 0 && !sc.set(p+".hot_keys") {
		c.HotKeys = 50
	}
}

func (sc *Scenario) validateProxyCache(v *validator, s *Service, p string) {
	c := s.ProxyCache
	if c == nil {
		return
	}
	p += ".proxy_cache"
	if len(c.Classes) == 0 {
		v.errf(p+".classes", "required: the classes whose answers the proxies cache (e.g. [product])")
	}
	seen := map[string]bool{}
	for i, name := range c.Classes {
		cp := fmt.Sprintf("%s.classes[%d]", p, i)
		var cl *Class
		for j := range s.Classes {
			if s.Classes[j].Name == name {
				cl = &s.Classes[j]
			}
		}
		switch {
		case cl == nil:
			var names []string
			for _, c := range s.Classes {
				names = append(names, c.Name)
			}
			v.errf(cp, "service %s has no class %q: use one of %s", s.Name, name, strings.Join(names, ", "))
		case !*cl.Idempotent:
			v.errf(cp, "class %q is not idempotent: only GET pages are cached (RFC 9111 §3); leave it out", name)
		case seen[name]:
			v.errf(cp, "%q is listed twice", name)
		}
		seen[name] = true
	}
	if !strings.HasPrefix(c.PathPrefix, "/") || strings.ContainsAny(c.PathPrefix, " \t\r\n?#") || len(c.PathPrefix) > 256 {
		v.errf(p+".path_prefix", "want an absolute path without spaces, query or fragment, at most 256 bytes (e.g. /catalog/products/p), got %q", c.PathPrefix)
	}
	if c.Keys < 1 || c.Keys > 1_000_000 {
		v.errf(p+".keys", "want 1 to 1000000 keys, got %d", c.Keys)
	}
	if z := *c.Zipf; !(z >= 0) || z > 5 {
		v.errf(p+".zipf", "want an exponent in [0, 5] (1 is typical of catalogues), got %v", z)
	}
	switch {
	case c.MaxEntries < 0 || c.MaxBytes < 0 || c.ObjectBytes < 0:
		v.errf(p, "max_entries, max_bytes and object_bytes must not be negative")
	case c.MaxEntries == 0:
		v.errf(p+".max_entries", "required: the entries each proxy keeps (or max_bytes with object_bytes, at least one entry's worth)")
	case c.MaxEntries > 10_000_000:
		v.errf(p+".max_entries", "at most 10000000 entries, got %d", c.MaxEntries)
	}
	if c.Eviction != evictLRU && c.Eviction != evictTinyLFU {
		v.errf(p+".eviction", "want lru or tinylfu, got %q", c.Eviction)
	}
	if c.TTL <= 0 || c.TTL > 7*24*time.Hour {
		v.errf(p+".ttl", "want a freshness lifetime in (0, 168h], got %v", c.TTL)
	}
	if c.HitLatency < 0 || c.HitLatency > time.Second {
		v.errf(p+".hit_latency", "want 0 to 1s, got %v", c.HitLatency)
	}
	if f := *c.FeaturedShare; !(f >= 0 && f <= 1) {
		v.errf(p+".featured_share", "want a share in [0, 1], got %v", f)
	}
	if !(c.Warm.Rate > 0) || c.Warm.Rate > 1e6 {
		v.errf(p+".warm.rate", "want warm fetches per second in (0, 1e6], got %v", c.Warm.Rate)
	}
	if c.Warm.Burst < 1 || c.Warm.Burst > 1_000_000 {
		v.errf(p+".warm.burst", "want 1 to 1000000, got %d", c.Warm.Burst)
	}
	if c.Warm.Queue < 1 || c.Warm.Queue > 1_000_000 {
		v.errf(p+".warm.queue", "want 1 to 1000000, got %d", c.Warm.Queue)
	}
	if c.Warm.MaxPaths < 1 || c.Warm.MaxPaths > 1000 {
		v.errf(p+".warm.max_paths", "want 1 to 1000 (a directive's warm list holds at most 1000), got %d", c.Warm.MaxPaths)
	}
	if b := *c.WarmBoost; b < 0 || b > 15 {
		v.errf(p+".warm_boost", "want 0 to 15 (the sketch's counters are 4 bits), got %d", b)
	}
	if c.HotKeys < 0 || c.HotKeys > 1000 {
		v.errf(p+".hot_keys", "want 0 to 1000, got %d", c.HotKeys)
	}
}

// RouteDir is the cache's route prefix as a proxy route would match it:
// PathPrefix up to its last "/" ("/catalog/products/p" → "/catalog/products").
func (c *ProxyCache) RouteDir() string {
	i := strings.LastIndexByte(c.PathPrefix, '/')
	if i <= 0 {
		return "/"
	}
	return c.PathPrefix[:i]
}
