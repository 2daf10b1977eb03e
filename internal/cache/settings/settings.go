// Package settings holds the response cache's configuration types: the
// shared `cache:` section and a route's `cache:` section, their defaults
// and validation. They live apart from internal/cache so that
// internal/config can embed them without depending on net/http (the
// simulator, a pure package, imports internal/config); internal/cache
// re-exports them under its own names.
package settings

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
)

// Config is the cache shared by every route of a proxy: one memory budget,
// one admission policy, one warming queue. Each route opts in with its own
// RouteConfig. Zero fields take the defaults listed on each field (see
// WithDefaults).
type Config struct {
	// MaxBytes bounds the memory of stored responses (bodies, headers and
	// bookkeeping), enforced by otter's W-TinyLFU with each entry weighed
	// in bytes. Default 64MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxObjectBytes is the largest response body stored; larger responses
	// stream through to the client without being buffered. Default 1MiB;
	// at most 1GiB and never more than MaxBytes/8 (otter would evict an
	// entry that large at once anyway).
	MaxObjectBytes ByteSize `yaml:"max_object_bytes"`
	// MaxVariants bounds the responses stored per URL for different values
	// of the fields a response Varies on; a new variant beyond it replaces
	// the oldest. Default 8.
	MaxVariants int `yaml:"max_variants"`
	// MaxVaryFields bounds the fields one response may Vary on to be
	// stored. Default 8.
	MaxVaryFields int `yaml:"max_vary_fields"`
	// HeuristicFraction of the time since Last-Modified is the freshness
	// lifetime of a response without explicit freshness, where RFC 9111
	// §4.2.2 allows one. Default 0.1; 0 < f ≤ 1. To turn heuristic
	// freshness off, set max_heuristic to a negative duration.
	HeuristicFraction float64 `yaml:"heuristic_fraction"`
	// MaxHeuristic caps a heuristic lifetime. Default 1h; negative turns
	// heuristic freshness off (TTL hints still apply).
	MaxHeuristic time.Duration `yaml:"max_heuristic"`
	// StaleIfError is how stale a stored response may be served when the
	// origin fails (no response, or 500/502/503/504) and neither the
	// response nor the request set stale-if-error. Never applies to
	// responses with no-cache, must-revalidate, proxy-revalidate or
	// s-maxage. Default 0 (only when the origin asks for it).
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// Keep is how long a stale response with a validator is kept after its
	// last use could have been, so that it can be revalidated with a
	// cheap 304 instead of fetched again. Default 10m.
	Keep time.Duration `yaml:"keep"`
	// IgnoreRequestCacheControl makes the cache disregard the request
	// directives no-cache, max-age, min-fresh and max-stale (RFC 9111
	// no longer requires honouring them) so that clients cannot force
	// origin traffic. only-if-cached and no-store are still honoured.
	// Default false.
	IgnoreRequestCacheControl bool `yaml:"ignore_request_cache_control"`
	// FetchTimeout bounds the fetches the cache makes on its own: background
	// revalidations (stale-while-revalidate) and warm requests. Requests
	// of clients are bounded by the proxy's own timeouts. Default 30s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
	// PassTTL is how long a URL whose response could not be stored
	// (private, no-store, Set-Cookie, too large) skips request coalescing,
	// so that its requests go to the origin in parallel instead of queuing
	// behind one another (Varnish's hit-for-pass). Default 10s.
	PassTTL time.Duration `yaml:"pass_ttl"`
	// Coalesce configures request coalescing.
	Coalesce CoalesceConfig `yaml:"coalesce"`
	// Warm configures forecast-driven warming.
	Warm WarmConfig `yaml:"warm"`
}

// CoalesceConfig configures request coalescing: one origin fetch per cache
// key at a time, the other requests for the key waiting for its result.
type CoalesceConfig struct {
	// Disabled turns coalescing off: every miss fetches on its own.
	Disabled bool `yaml:"disabled"`
	// MaxWaiters bounds the requests waiting for one fetch; a request
	// beyond it fetches on its own. Default 1000.
	MaxWaiters int `yaml:"max_waiters"`
	// WaitTimeout bounds how long a request waits for another's fetch;
	// after it, the request fetches on its own (it does not fail: the
	// origin being slow is no reason to answer 503 to a request the origin
	// might still serve, and admission control bounds the load). Default
	// 5s.
	WaitTimeout time.Duration `yaml:"wait_timeout"`
	// MaxBackground bounds the background revalidations
	// (stale-while-revalidate) in flight; beyond it the stale response is
	// served and the next request tries again. Default 64.
	MaxBackground int `yaml:"max_background"`
}

// WarmConfig configures the warming queue fed by directives' cache.warm
// lists.
type WarmConfig struct {
	// Rate is the sustained rate of warm fetches per second (a token
	// bucket). Default 10.
	Rate float64 `yaml:"rate"`
	// Burst is the bucket's size. Default 10.
	Burst int `yaml:"burst"`
	// Queue bounds the paths waiting to be warmed; more are dropped and
	// counted. Default 10000.
	Queue int `yaml:"queue"`
	// Headers are sent with every warm request, so that warmed responses
	// match what clients ask for when a response Varies (for example
	// Accept-Encoding: gzip). Default none.
	Headers map[string]string `yaml:"headers"`
}

// RouteConfig turns the cache on for one route (or service) and sets what
// may differ between routes.
type RouteConfig struct {
	// Enabled opts the route in. Default false: a route caches nothing.
	Enabled bool `yaml:"enabled"`
	// Weight is the value of this route's responses to the business (a
	// checkout-critical product page 4, a search page 0.5). It scales how
	// strongly each hit counts in W-TinyLFU's frequency sketch, so a
	// heavier route's responses win admission and survive eviction against
	// lighter routes' responses used as often. Default 1; 0 < w ≤ 8.
	Weight float64 `yaml:"weight"`
	// AllowSetCookie stores responses that carry Set-Cookie with the
	// cookie, to be sent to every client. Off (the default), such a
	// response is not stored, unless the origin named Set-Cookie in
	// no-cache="…" or private="…" (then it is stored without the cookie).
	AllowSetCookie bool `yaml:"allow_set_cookie"`
	// AllowAuthorization lets responses to requests with Authorization be
	// stored and shared when the origin marks them public, s-maxage or
	// must-revalidate (RFC 9111 §3.5). Off (the default), requests with
	// Authorization bypass the cache entirely.
	AllowAuthorization bool `yaml:"allow_authorization"`
	// TagHeader names the response field whose space- or comma-separated
	// values tag a stored response for purging by tag. Default
	// "Surrogate-Key"; "-" turns tags off.
	TagHeader string `yaml:"tag_header"`
	// MaxObjectBytes lowers the cache's max_object_bytes for this route.
	// Default 0 (the cache's).
	MaxObjectBytes ByteSize `yaml:"max_object_bytes"`
}

// Defaults.
const (
	DefaultMaxBytes       = 64 << 20
	DefaultMaxObjectBytes = 1 << 20
	DefaultMaxVariants    = 8
	DefaultMaxVaryFields  = 8
	DefaultHeuristic      = 0.1
	DefaultMaxHeuristic   = time.Hour
	DefaultKeep           = 10 * time.Minute
	DefaultPassTTL        = 10 * time.Second
	DefaultMaxWaiters     = 1000
	DefaultWaitTimeout    = 5 * time.Second
	DefaultMaxBackground  = 64
	DefaultWarmRate       = 10
	DefaultWarmBurst      = 10
	DefaultWarmQueue      = 10000
	DefaultFetchTimeout   = 30 * time.Second
	DefaultTagHeader      = "Surrogate-Key"
	// MaxObjectLimit is the largest max_object_bytes allowed.
	MaxObjectLimit = 1 << 30
	// MaxWeight is the largest route weight.
	MaxWeight = 8
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxObjectBytes == 0 {
		c.MaxObjectBytes = DefaultMaxObjectBytes
		if c.MaxObjectBytes > c.MaxBytes/8 {
			c.MaxObjectBytes = c.MaxBytes / 8
		}
	}
	if c.MaxVariants == 0 {
		c.MaxVariants = DefaultMaxVariants
	}
	if c.MaxVaryFields == 0 {
		c.MaxVaryFields = DefaultMaxVaryFields
	}
	if c.HeuristicFraction == 0 {
		c.HeuristicFraction = DefaultHeuristic
	}
	if c.MaxHeuristic == 0 {
		c.MaxHeuristic = DefaultMaxHeuristic
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.PassTTL == 0 {
		c.PassTTL = DefaultPassTTL
	}
	if c.Coalesce.MaxWaiters == 0 {
		c.Coalesce.MaxWaiters = DefaultMaxWaiters
	}
	if c.Coalesce.WaitTimeout == 0 {
		c.Coalesce.WaitTimeout = DefaultWaitTimeout
	}
	if c.Coalesce.MaxBackground == 0 {
		c.Coalesce.MaxBackground = DefaultMaxBackground
	}
	if c.Warm.Rate == 0 {
		c.Warm.Rate = DefaultWarmRate
	}
	if c.Warm.Burst == 0 {
		c.Warm.Burst = DefaultWarmBurst
	}
	if c.Warm.Queue == 0 {
		c.Warm.Queue = DefaultWarmQueue
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	return c
}

// WithDefaults returns r with zero fields set to their defaults.
func (r RouteConfig) WithDefaults() RouteConfig {
	if r.Weight == 0 {
		r.Weight = 1
	}
	if r.TagHeader == "" {
		r.TagHeader = DefaultTagHeader
	}
	return r
}

// FieldError is one configuration problem at a field path relative to the
// cache's own section, such as `coalesce.wait_timeout`; the configuration
// loader prefixes its own path (`cache.` or `services[catalog].cache.`).
type FieldError struct {
	Path string
	Msg  string
}

// Error formats the problem as "path: message".
func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// ConfigError lists every problem found.
type ConfigError struct{ Errors []FieldError }

// Error joins every problem.
func (e *ConfigError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.Error()
	}
	return "invalid cache configuration: " + strings.Join(parts, "; ")
}

// ErrInvalidConfig is wrapped by every ConfigError.
var ErrInvalidConfig = errors.New("invalid cache configuration")

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

type problems []FieldError

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ConfigError{Errors: p}
}

// Validate checks c after defaults and returns a *ConfigError listing every
// problem, each with what to write instead.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var p problems
	if c.MaxBytes < 1<<20 {
		p.add("max_bytes", "%d bytes is too small to be useful: give at least 1MiB, e.g. max_bytes: 64MiB", int64(c.MaxBytes))
	}
	switch {
	case c.MaxObjectBytes < 0:
		p.add("max_object_bytes", "must not be negative")
	case c.MaxObjectBytes > MaxObjectLimit:
		p.add("max_object_bytes", "%d bytes is more than the 1GiB allowed; larger responses are better streamed uncached", int64(c.MaxObjectBytes))
	case c.MaxBytes >= 1<<20 && c.MaxObjectBytes > c.MaxBytes/8:
		p.add("max_object_bytes", "%d bytes is more than max_bytes/8 (%d): such an object would push out most of the cache; raise max_bytes or lower max_object_bytes", int64(c.MaxObjectBytes), int64(c.MaxBytes/8))
	}
	if c.MaxVariants < 1 || c.MaxVariants > 64 {
		p.add("max_variants", "must be between 1 and 64, got %d", c.MaxVariants)
	}
	if c.MaxVaryFields < 1 || c.MaxVaryFields > 32 {
		p.add("max_vary_fields", "must be between 1 and 32, got %d", c.MaxVaryFields)
	}
	if math.IsNaN(c.HeuristicFraction) || c.HeuristicFraction <= 0 || c.HeuristicFraction > 1 {
		p.add("heuristic_fraction", "must be in (0, 1], got %v; RFC 9111 §4.2.2 suggests 0.1", c.HeuristicFraction)
	}
	if c.StaleIfError < 0 {
		p.add("stale_if_error", "must not be negative, got %s", c.StaleIfError)
	}
	if c.Keep < 0 {
		p.add("keep", "must not be negative, got %s", c.Keep)
	}
	if c.PassTTL < 0 || c.PassTTL > time.Hour {
		p.add("pass_ttl", "must be between 0s and 1h, got %s", c.PassTTL)
	}
	if c.Coalesce.MaxWaiters < 1 || c.Coalesce.MaxWaiters > 1_000_000 {
		p.add("coalesce.max_waiters", "must be between 1 and 1000000, got %d", c.Coalesce.MaxWaiters)
	}
	if c.Coalesce.WaitTimeout < 0 || c.Coalesce.WaitTimeout > 5*time.Minute {
		p.add("coalesce.wait_timeout", "must be between 0s and 5m, got %s", c.Coalesce.WaitTimeout)
	}
	if c.Coalesce.MaxBackground < 1 || c.Coalesce.MaxBackground > 100_000 {
		p.add("coalesce.max_background", "must be between 1 and 100000, got %d", c.Coalesce.MaxBackground)
	}
	if math.IsNaN(c.Warm.Rate) || c.Warm.Rate <= 0 || c.Warm.Rate > 100_000 {
		p.add("warm.rate", "must be a number of fetches per second in (0, 100000], got %v", c.Warm.Rate)
	}
	if c.Warm.Burst < 1 || c.Warm.Burst > 100_000 {
		p.add("warm.burst", "must be between 1 and 100000, got %d", c.Warm.Burst)
	}
	if c.Warm.Queue < 1 || c.Warm.Queue > 1_000_000 {
		p.add("warm.queue", "must be between 1 and 1000000, got %d", c.Warm.Queue)
	}
	if c.FetchTimeout < 0 || c.FetchTimeout > 10*time.Minute {
		p.add("fetch_timeout", "must be between 0s and 10m, got %s", c.FetchTimeout)
	}
	for k, v := range c.Warm.Headers {
		path := "warm.headers[" + k + "]"
		switch {
		case !validFieldName(k):
			p.add(path, "%q is not a valid header field name", k)
		case rfc9111.CanonicalKey(k) == "Authorization" || rfc9111.CanonicalKey(k) == "Cookie":
			p.add(path, "warm requests must not carry credentials: their responses are shared")
		case strings.ContainsAny(v, "\r\n\x00"):
			p.add(path, "value contains a line break or NUL")
		}
	}
	return p.err()
}

// Validate checks r after defaults.
func (r RouteConfig) Validate() error {
	r = r.WithDefaults()
	var p problems
	if math.IsNaN(r.Weight) || r.Weight <= 0 || r.Weight > MaxWeight {
		p.add("weight", "must be in (0, %d], got %v; 1 is neutral, 4 for checkout-critical pages, 0.5 for search", MaxWeight, r.Weight)
	}
	if r.TagHeader != "-" && !validFieldName(r.TagHeader) {
		p.add("tag_header", "%q is not a valid header field name; use e.g. Surrogate-Key or Cache-Tag, or - for none", r.TagHeader)
	}
	if r.MaxObjectBytes < 0 || r.MaxObjectBytes > MaxObjectLimit {
		p.add("max_object_bytes", "must be between 0 and 1GiB, got %d", int64(r.MaxObjectBytes))
	}
	return p.err()
}

func validFieldName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ByteSize is a size in bytes. In YAML it is an integer or a string with a
// unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024),
// the same syntax as the proxy configuration's sizes.
type ByteSize int64

// ParseByteSize parses "64MiB", "10MB", "512" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q: write a non-negative integer with an optional unit, e.g. 65536, 64KiB or 10MB", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML accepts an integer or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a size such as 64MiB", n.Line)
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}
