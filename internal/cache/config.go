package cache

import "github.com/lbsys/lbsys/internal/cache/settings"

// The configuration types are defined in internal/cache/settings (free of
// net/http, so that internal/config can embed them) and re-exported here,
// so that users of the cache need one import. Their fields document
// themselves there.
type (
	// Config is the cache shared by every route (the `cache:` section).
	Config = settings.Config
	// CoalesceConfig configures request coalescing.
	CoalesceConfig = settings.CoalesceConfig
	// WarmConfig configures forecast-driven warming.
	WarmConfig = settings.WarmConfig
	// RouteConfig is one route's (or service's) `cache:` section.
	RouteConfig = settings.RouteConfig
	// FieldError is one configuration problem at a path relative to the
	// section.
	FieldError = settings.FieldError
	// ConfigError lists every problem found.
	ConfigError = settings.ConfigError
	// ByteSize is a size in bytes, written with a unit in YAML.
	ByteSize = settings.ByteSize
)

// ErrInvalidConfig is wrapped by every ConfigError.
var ErrInvalidConfig = settings.ErrInvalidConfig

// ParseByteSize parses "64MiB", "10MB", "512" and the like.
func ParseByteSize(s string) (ByteSize, error) { return settings.ParseByteSize(s) }

// Defaults, as in internal/cache/settings.
const (
	DefaultMaxBytes       = settings.DefaultMaxBytes
	DefaultMaxObjectBytes = settings.DefaultMaxObjectBytes
	DefaultMaxVariants    = settings.DefaultMaxVariants
	DefaultMaxVaryFields  = settings.DefaultMaxVaryFields
	DefaultHeuristic      = settings.DefaultHeuristic
	DefaultMaxHeuristic   = settings.DefaultMaxHeuristic
	DefaultKeep           = settings.DefaultKeep
	DefaultPassTTL        = settings.DefaultPassTTL
	DefaultMaxWaiters     = settings.DefaultMaxWaiters
	DefaultWaitTimeout    = settings.DefaultWaitTimeout
	DefaultMaxBackground  = settings.DefaultMaxBackground
	DefaultWarmRate       = settings.DefaultWarmRate
	DefaultWarmBurst      = settings.DefaultWarmBurst
	DefaultWarmQueue      = settings.DefaultWarmQueue
	DefaultFetchTimeout   = settings.DefaultFetchTimeout
	DefaultTagHeader      = settings.DefaultTagHeader
)
