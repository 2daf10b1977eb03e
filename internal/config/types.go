// Package config defines the `lbsys proxy` configuration file: its schema,
// strict parsing (unknown fields are errors), defaults and validation.
//
// The doc comment on each field is the user documentation; docs/config.md is
// written from them. Errors always name the field path (for example
// `services[catalog].health.active.interval`), the YAML line when known, and
// what to do about it.
package config

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/cache/settings"
)

// Config is the whole file.
type Config struct {
	// Admin is the separate, loopback-by-default listener for /status,
	// /metrics and /reload.
	Admin Admin `yaml:"admin"`
	// Server holds the hardening limits shared by all listeners.
	Server Server `yaml:"server"`
	// Listeners accept client traffic and route it to services. At least one.
	Listeners []Listener `yaml:"listeners"`
	// Services are the backend pools. At least one; names are unique.
	Services []Service `yaml:"services"`
	// Telemetry configures the per-second records the proxy aggregates for the
	// rest of the system (ingestion, forecasting).
	Telemetry Telemetry `yaml:"telemetry"`
	// Coordinator connects the proxy to Gaia, which streams directives.
	// Absent: no coordinator (POST /directive still works).
	Coordinator Coordinator `yaml:"coordinator"`
	// Cache is the response cache shared by every route that opts in
	// (services[].cache or routes[].cache with `enabled: true`): one
	// memory budget, request coalescing, warming. It stores nothing until a
	// route opts in. See docs/cache.md.
	Cache settings.Config `yaml:"cache"`

	// version is set by Parse; see Version.
	version string
}

// Admin is the admin listener.
type Admin struct {
	// Listen is host:port. Default 127.0.0.1:9901. A non-loopback address is
	// refused unless AllowRemote is true.
	Listen string `yaml:"listen"`
	// AllowRemote permits a non-loopback Listen address. Default false.
	AllowRemote bool `yaml:"allow_remote"`
	// TokenFile is a file whose first line is the bearer token required by
	// every mutating call (POST /reload). Takes precedence over TokenEnv.
	TokenFile string `yaml:"token_file"`
	// TokenEnv names an environment variable holding the bearer token.
	// Default LBSYS_ADMIN_TOKEN. With no token configured, mutating calls are
	// refused (401).
	TokenEnv string `yaml:"token_env"`
}

// Server holds limits that protect the proxy from slow or abusive clients.
type Server struct {
	// ReadHeaderTimeout bounds the time to read request headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes idle client keep-alive connections. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WriteTimeout disconnects a client that takes no response bytes for
	// this long: every write to a client must make progress within it
	// (between WriteTimeout and 1.5× WriteTimeout), whatever the length of
	// the response, like NGINX's send_timeout. Default 60s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxHeaderBytes bounds request line plus headers. Default 64KiB.
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"`
	// MaxRequestBodyBytes bounds request bodies; larger bodies get 413.
	// Default 10MiB.
	MaxRequestBodyBytes ByteSize `yaml:"max_request_body_bytes"`
	// Engine serves plain-HTTP listeners: "lbsys" (default), the proxy's own
	// HTTP/1.1 server, which parses with net/http's parser but skips its
	// per-request background read and context (about a third less CPU per
	// request), or "net_http", Go's net/http.Server. TLS listeners always
	// use net_http (it brings HTTP/2). timeouts.abort_on_client_close needs
	// net_http: only it notices a client leaving mid-request.
	Engine string `yaml:"engine"`
	// DrainTimeout is how long SIGTERM waits for in-flight requests before
	// closing connections. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// TrustedProxies lists CIDRs whose X-Forwarded-For/-Proto/-Host headers
	// are kept (and appended to), and whose X-Real-IP and Forwarded headers
	// pass. From any other peer the first are replaced and the others
	// removed. Default: none trusted.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Listener is one client-facing address with its routes.
type Listener struct {
	// Name identifies the listener in metrics and errors. Default: Listen.
	Name string `yaml:"name"`
	// Listen is host:port, required.
	Listen string `yaml:"listen"`
	// TLS, when set, serves HTTPS (and HTTP/2) on this listener.
	TLS *TLS `yaml:"tls"`
	// Routes are matched in order; the first match wins. At least one.
	Routes []Route `yaml:"routes"`
	// AccessLog writes one line per request this listener answers.
	// Absent: no access log (the default).
	AccessLog *AccessLog `yaml:"access_log"`
}

// TLS names a certificate and key in PEM files.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Route sends matching requests to a service.
type Route struct {
	// Name labels the route in metrics. Default: "<listener>#<index>".
	Name string `yaml:"name"`
	// Match selects requests; an empty match matches everything.
	Match Match `yaml:"match"`
	// Service is the name of a service in `services`, required.
	Service string `yaml:"service"`
	// Priority overrides the service's priority class for requests of this
	// route (for example sheddable search inside a normal catalog service).
	// Empty: the service's class.
	Priority string `yaml:"priority"`
	// Cache, when present, is this route's response cache section, in
	// place of the service's (the whole section: fields left out take
	// their defaults, not the service's values).
	Cache *settings.RouteConfig `yaml:"cache"`
}

// CacheConfig returns the cache section that applies to a route of
// service svc: the route's own, else the service's.
func (r *Route) CacheConfig(svc *Service) settings.RouteConfig {
	if r.Cache != nil {
		return *r.Cache
	}
	if svc == nil {
		return settings.RouteConfig{}
	}
	return svc.Cache
}

// Match is a conjunction of conditions.
type Match struct {
	// Host matches the request host without port, case-insensitively.
	// "*.example.com" matches any subdomain. Empty matches any host.
	Host string `yaml:"host"`
	// PathPrefix matches the start of the URL path as sent (percent-encoded,
	// which is also what is forwarded), on segment boundaries: "/cart"
	// matches "/cart" and "/cart/x" but not "/carts" nor "/%63art". Default
	// "/".
	PathPrefix string `yaml:"path_prefix"`
	// Methods lists accepted methods (upper case). Empty accepts all.
	Methods []string `yaml:"methods"`
}

// Service is a pool of endpoints with its policies.
type Service struct {
	// Name is unique, [a-z0-9_-]+, required.
	Name string `yaml:"name"`
	// Priority is the class used when shedding: critical (checkout, payment),
	// normal (cart) or sheddable (browse, search). Default normal.
	Priority string `yaml:"priority"`
	// Endpoints are the backends. At least one; addresses are unique.
	Endpoints []Endpoint `yaml:"endpoints"`
	// Policy is the balancing policy. Default round_robin.
	Policy Policy `yaml:"policy"`
	// Health configures active checks, outlier ejection, panic mode and slow start.
	Health Health `yaml:"health"`
	// Retries configures safe retries.
	Retries Retries `yaml:"retries"`
	// Timeouts bounds upstream work.
	Timeouts Timeouts `yaml:"timeouts"`
	// Affinity keeps a client on one endpoint.
	Affinity Affinity `yaml:"affinity"`
	// Upstream tunes the connection pool to the endpoints.
	Upstream Upstream `yaml:"upstream"`
	// Admission is adaptive concurrency control with priority shedding.
	// Absent: every request is admitted. `admission: {}` turns it on with
	// the defaults.
	Admission *Admission `yaml:"admission"`
	// Cache opts the service's routes into the response cache
	// (`cache: {enabled: true}`); a route's own `cache:` replaces it.
	// Default: off.
	Cache settings.RouteConfig `yaml:"cache"`

	// balancer is the policy's factory, built while validating; see
	// BalancerFactory.
	balancer func() balance.Balancer
}

// Endpoint is one backend.
type Endpoint struct {
	// Address is host:port (plain HTTP/1.1), required. It is also the
	// endpoint's identity in affinity cookies and hash rings, so every proxy
	// replica must spell it the same way.
	Address string `yaml:"address"`
	// Weight is the relative share of traffic, 1..10000. Default 1.
	Weight int `yaml:"weight"`
}

// Policy selects the balancing algorithm. It may be written as a bare name
// (`policy: least_request`) or as a mapping with options.
type Policy struct {
	// Name is a registered policy: round_robin, least_request, ... Default
	// round_robin.
	Name string `yaml:"name"`
	// Options are the policy's own settings; each policy documents and
	// validates them (unknown options are errors).
	Options yaml.Node `yaml:"options"`
}

// Health groups the health mechanisms.
type Health struct {
	// Active probes each endpoint over HTTP. Absent: no active checks.
	Active *ActiveHealth `yaml:"active"`
	// Outlier ejects endpoints that fail live traffic. Absent: defaults apply
	// (5 consecutive 5xx or 3 consecutive connect failures); set
	// `outlier: {disabled: true}` to turn it off.
	Outlier Outlier `yaml:"outlier"`
	// PanicThreshold is the percentage of available endpoints below which
	// the proxy balances over all endpoints, ignoring health, rather than
	// overloading the few left. 0 disables. Default 50.
	PanicThreshold *float64 `yaml:"panic_threshold"`
	// SlowStart ramps the weight of new and recovered endpoints.
	SlowStart *SlowStart `yaml:"slow_start"`
}

// ActiveHealth is an HTTP probe.
type ActiveHealth struct {
	// Path is the probe's request path. Default /healthz.
	Path string `yaml:"path"`
	// Interval between probes of one endpoint. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one probe; must be below Interval. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// HealthyThreshold consecutive successes mark an endpoint healthy. Default 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold consecutive failures mark it unhealthy. Default 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// ExpectedStatuses are accepted status ranges such as "200-299" or "204".
	// Default ["200-399"].
	ExpectedStatuses []string `yaml:"expected_statuses"`
	// Host overrides the Host header of probes. Default: the endpoint address.
	Host string `yaml:"host"`
}

// Outlier is passive outlier detection on live traffic (Envoy's model).
type Outlier struct {
	// Disabled turns passive ejection off.
	Disabled bool `yaml:"disabled"`
	// Consecutive5xx responses (500-599 from the endpoint, including connect
	// failures) eject it. 0 disables this trigger. Default 5.
	Consecutive5xx *int `yaml:"consecutive_5xx"`
	// ConsecutiveGatewayFailure (502, 503, 504, connect failures and
	// resets) eject it. 0 disables this trigger. Default 3.
	ConsecutiveGatewayFailure *int `yaml:"consecutive_gateway_failure"`
	// BaseEjectionTime is multiplied by the number of times the endpoint has
	// been ejected. Default 30s.
	BaseEjectionTime time.Duration `yaml:"base_ejection_time"`
	// MaxEjectionTime caps the ejection time. Default 300s.
	MaxEjectionTime time.Duration `yaml:"max_ejection_time"`
	// MaxEjectionPercent of the pool may be ejected at once (at least one
	// endpoint can always be ejected). Default 50.
	MaxEjectionPercent *float64 `yaml:"max_ejection_percent"`
}

// SlowStart is Envoy's slow-start ramp:
// weight × max(min_weight_percent/100, (t/window)^(1/aggression)).
type SlowStart struct {
	// Window is the ramp length, required (> 0).
	Window time.Duration `yaml:"window"`
	// Aggression > 0 shapes the curve; 1 is linear. Default 1.
	Aggression float64 `yaml:"aggression"`
	// MinWeightPercent is the floor of the ramp, 0..100. Default 10.
	MinWeightPercent float64 `yaml:"min_weight_percent"`
}

// Retries makes failed attempts go to another endpoint, only when safe: the
// method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or the request
// carries an Idempotency-Key header, and no response byte has reached the
// client yet.
type Retries struct {
	// Attempts is the number of retries after the first try, 0..10. Default 2.
	Attempts *int `yaml:"attempts"`
	// On lists the retry conditions: connect_failure, reset, timeout,
	// gateway_error (502/503/504), 5xx. Default [connect_failure, reset,
	// gateway_error].
	On []string `yaml:"on"`
	// PerTryTimeout bounds one attempt's wait for response headers. 0 means
	// only the request timeout applies. Default 0.
	PerTryTimeout time.Duration `yaml:"per_try_timeout"`
	// BudgetPercent caps concurrent retries to this percentage of active
	// requests to the service. Default 20.
	BudgetPercent *float64 `yaml:"budget_percent"`
	// MinRetryConcurrency is the budget's floor. Default 3.
	MinRetryConcurrency *int `yaml:"min_retry_concurrency"`
	// BackoffBase is the first backoff; backoff doubles per retry with full
	// jitter. Default 25ms.
	BackoffBase time.Duration `yaml:"backoff_base"`
	// BackoffMax caps the backoff. Default 250ms.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// MaxBodyBytes: request bodies up to this size are buffered so they can
	// be replayed; larger bodies are streamed and never retried. Default 64KiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes"`
}

// Timeouts bound upstream work; exceeding one gives the client a 504.
type Timeouts struct {
	// Connect bounds the TCP connect to an endpoint. Default 2s.
	Connect time.Duration `yaml:"connect"`
	// Request bounds the whole exchange including retries and the response
	// body. 0 disables. Default 30s.
	Request time.Duration `yaml:"request"`
	// Idle closes pooled upstream connections unused this long. Default 60s.
	Idle time.Duration `yaml:"idle"`
	// TunnelIdle closes an upgraded connection (WebSocket, after 101
	// Switching Protocols) once no byte has passed either way for this long.
	// Request does not apply to it once upgraded. 0 disables the limit.
	// Default 5m.
	TunnelIdle time.Duration `yaml:"tunnel_idle"`
	// AbortOnClientClose cancels the upstream exchange as soon as the client
	// goes away, instead of letting the endpoint finish (bounded by Request).
	// Off by default, as in HAProxy (option abortonclose): watching every
	// request's context costs about 3% CPU per request, and most requests
	// are short. Turn it on for services with long waits (long polls,
	// slow reports) so abandoned requests free their endpoint at once.
	AbortOnClientClose bool `yaml:"abort_on_client_close"`
}

// Affinity keeps a client's requests on one endpoint.
type Affinity struct {
	// Type is none, cookie or hash. Default none.
	Type string `yaml:"type"`
	// Cookie configures type cookie: the proxy sets an opaque, HMAC-signed
	// cookie naming the endpoint, and re-picks when that endpoint is gone.
	Cookie CookieAffinity `yaml:"cookie"`
	// Hash configures type hash: bounded-load consistent hashing of a header
	// or cookie, so that replicas of the proxy agree without sharing state.
	Hash HashAffinity `yaml:"hash"`
}

// CookieAffinity is the sticky-cookie form of affinity.
type CookieAffinity struct {
	// Name of the cookie. Default lbsys_affinity.
	Name string `yaml:"name"`
	// TTL is the cookie's Max-Age; 0 makes a session cookie. Default 0.
	TTL time.Duration `yaml:"ttl"`
	// Secure marks the cookie Secure. Default false.
	Secure bool `yaml:"secure"`
	// SecretFile holds the HMAC key (first line). Every replica must use the
	// same key. Takes precedence over SecretEnv.
	SecretFile string `yaml:"secret_file"`
	// SecretEnv names an environment variable with the key. Default
	// LBSYS_AFFINITY_SECRET. With neither set, a random per-process key is
	// used and a warning is logged (cookies then do not survive restarts).
	SecretEnv string `yaml:"secret_env"`
}

// HashAffinity is consistent hashing with bounded loads (Mirrokni, Thorup,
// Zadimoghaddam, 2018).
type HashAffinity struct {
	// Header whose value is the key. Exactly one of Header and Cookie.
	Header string `yaml:"header"`
	// Cookie whose value is the key.
	Cookie string `yaml:"cookie"`
	// Epsilon bounds load: no endpoint takes more than ceil((1+ε)·average)
	// of the in-flight requests. > 0. Default 0.25.
	Epsilon float64 `yaml:"epsilon"`
	// VirtualNodes per endpoint (scaled by weight). Default 100.
	VirtualNodes int `yaml:"virtual_nodes"`
}

// Admission limits the requests in flight to a service to a concurrency
// limit learned from latency (Netflix's Gradient2). Requests beyond it get
// 503 with Retry-After: sheddable ones once in-flight reaches
// sheddable_share of the limit, normal ones at normal_share, critical ones
// only at the limit itself.
type Admission struct {
	// MinLimit is the limit's floor. Default 10.
	MinLimit int `yaml:"min_limit"`
	// MaxLimit is the limit's ceiling. Default 1000.
	MaxLimit int `yaml:"max_limit"`
	// InitialLimit is where the limit starts. Default 50.
	InitialLimit int `yaml:"initial_limit"`
	// Tolerance: how far short-term latency may exceed the long-term average
	// before the limit shrinks, as a ratio >= 1. Default 1.5.
	Tolerance float64 `yaml:"tolerance"`
	// Smoothing weighs each new estimate, in (0, 1]. Default 0.2.
	Smoothing float64 `yaml:"smoothing"`
	// Window is the sampling window of latency. Default 250ms.
	Window time.Duration `yaml:"window"`
	// SheddableShare of the limit sheddable requests may fill. Default 0.7.
	SheddableShare float64 `yaml:"sheddable_share"`
	// NormalShare of the limit normal requests may fill. Default 0.9.
	NormalShare float64 `yaml:"normal_share"`
}

// Upstream tunes connections to endpoints.
type Upstream struct {
	// MaxIdlePerEndpoint keep-alive connections are pooled per endpoint.
	// Default 256.
	MaxIdlePerEndpoint int `yaml:"max_idle_per_endpoint"`
}

// Telemetry configures the per-second service/endpoint records.
type Telemetry struct {
	// RingSeconds of records are kept in memory for GET /telemetry. Default 600.
	RingSeconds int `yaml:"ring_seconds"`
	// JSONLPath, when set, appends every record as one JSON line to this file.
	JSONLPath string `yaml:"jsonl_path"`
}

// Coordinator is the proxy's connection to the Gaia coordinator. The agent
// watches the leader for directives on its own goroutine, applies each
// whole or NACKs it, and keeps the last good one on disk; requests never
// wait on the coordinator. Changing this block needs a restart.
type Coordinator struct {
	// URLs of coordinator members (any of them: the agent follows the
	// leader), e.g. [http://10.0.0.1:7101, http://10.0.0.2:7101]. Empty:
	// no coordinator. The --coordinator flag overrides it.
	URLs []string `yaml:"urls"`
	// TokenFile is a file whose first line is a bearer token with the
	// agent role. Takes precedence over TokenEnv.
	TokenFile string `yaml:"token_file"`
	// TokenEnv names an environment variable holding the token. Default
	// LBSYS_COORDINATOR_TOKEN.
	TokenEnv string `yaml:"token_env"`
	// ProxyID names this proxy in the fleet (canary choice, ACK records).
	// Default: the host name and the admin port, e.g. web-1-9901.
	ProxyID string `yaml:"proxy_id"`
	// StateFile keeps the last good directive, so a proxy restarted while
	// no coordinator is reachable starts from it. Default:
	// lbsys-directive-<proxy_id>.json next to the configuration file.
	StateFile string `yaml:"state_file"`
	// Wait is how long one long poll may be held by the coordinator.
	// Default 20s; 1s..5m.
	Wait time.Duration `yaml:"wait"`
}
