// Package proxy is the data plane: the net/http adapter around the pure
// decision packages (balance, health). It compiles the configuration into
// immutable routing generations, forwards requests with
// httputil.ReverseProxy and its own connection-pooling RoundTripper, retries
// when that is safe, keeps session affinity, runs active health checks and
// exports metrics and per-second telemetry.
//
// It never talks to the control plane on the request path (DESIGN.md
// principle 1).
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/dashboard/ui"
	"github.com/lbsys/lbsys/internal/proxy/h1"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// Options are the proxy's process-level settings.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock drives health decisions and telemetry; default clock.Real.
	Clock clock.Clock
	// Registry receives the metrics; default a new registry with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// ConfigPath is re-read by Reload-from-file (POST /reload, SIGHUP).
	ConfigPath string
	// TickInterval is how often ejections expire and slow-start ramps move.
	// Default 200ms.
	TickInterval time.Duration
	// Listen binds the client listeners; default net.Listen. Tests use it
	// to make accepts fail.
	Listen func(network, address string) (net.Listener, error)
}

// generation is one compiled configuration: what a request reads with one
// atomic load.
type generation struct {
	cfg       *config.Config
	version   string
	listeners map[string]*listenerRoutes // by listen address as configured
	services  map[string]*service
	maxBody   int64
	certs     map[string]*tls.Certificate // by listen address
	trusted   []netip.Prefix              // peers whose X-Forwarded-* are kept
}

type listenerRoutes struct {
	name   string
	routes []*route
	alog   *accessLog // nil: the listener does not log
}

// Proxy is a running lbsys data plane.
type Proxy struct {
	log    *slog.Logger
	stdLog *log.Logger
	clock  clock.Clock
	// realClock: clock is clock.Real, so the request path reads the wall
	// clock once for both its decisions and its socket deadlines.
	realClock bool
	reg       *prometheus.Registry
	metrics   *telemetry.Metrics
	opts      Options

	gen       atomic.Pointer[generation]
	draining  atomic.Bool
	ticks     atomic.Int64 // tickLoop rounds done, for tests that drive the clock
	noRoute   prometheus.Counter
	badTarget prometheus.Counter

	reloadMu  sync.Mutex // serializes Apply
	mu        sync.Mutex // guards services, servers, secrets
	services  map[string]*service
	servers   map[string]*listenerServer
	admin     *http.Server
	adminLn   net.Listener
	secrets   map[string][]byte
	adminAuth atomic.Pointer[string]

	agg   *telemetry.Aggregator
	ring  *telemetry.Ring
	jsonl *telemetry.JSONL

	// cache is the response cache, built the first time a route opts in
	// and kept (a reload reconfigures it); nil while nothing caches. Its
	// metrics are registered with it.
	cache        atomic.Pointer[cache.Cache]
	cacheMetrics *cache.Metrics
	cacheClose   sync.Once
	// cacheHints are the TTL hints the running directive gives each
	// service (guarded by reloadMu), for routes that start caching later.
	cacheHints map[string][]directive.TTLHint

	// sinks are the access log outputs in use, by config.AccessLog.Key
	// (guarded by mu); accessDropped counts the lines they lost.
	sinks         map[string]*logSink
	retiring      map[*logSink]bool // outputs a reload dropped, still being closed
	accessDropped *prometheus.CounterVec

	// agent is the coordinator agent and its directive applier while one
	// runs (StartAgent), nil otherwise; uiColl is the web UI's collector,
	// made on first use (uiCollector).
	agent  atomic.Pointer[dirAgent]
	uiColl atomic.Pointer[ui.Collector]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type listenerServer struct {
	key  string
	name string
	tls  bool
	srv  httpServer
	ln   net.Listener
	cert atomic.Pointer[tls.Certificate]
	done chan struct{}
	// stopped is set when the server stopped serving on its own (not by
	// Shutdown or Close): /healthz then fails.
	stopped atomic.Pointer[error]
}

// New compiles cfg; Start binds the listeners.
func New(cfg *config.Config, opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = 200 * time.Millisecond
	}
	if opts.Listen == nil {
		opts.Listen = net.Listen
	}
	px := &Proxy{
		log:          opts.Logger,
		stdLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		clock:        opts.Clock,
		reg:          opts.Registry,
		opts:         opts,
		services:     map[string]*service{},
		servers:      map[string]*listenerServer{},
		secrets:      map[string][]byte{},
		cacheMetrics: cache.NewMetrics(),
		cacheHints:   map[string][]directive.TTLHint{},
	}
	_, px.realClock = px.clock.(clock.Real)
	px.metrics = telemetry.NewMetrics(px.reg)
	px.noRoute = px.metrics.ProxyErrors.WithLabelValues("", reasonNoRoute)
	px.badTarget = px.metrics.ProxyErrors.WithLabelValues("", reasonAmbiguousPath)
	px.accessDropped = newAccessDropped(px.reg)
	px.reg.MustRegister(&inflightCollector{px: px})
	px.ring = telemetry.NewRing(cfg.Telemetry.RingSeconds)
	px.agg = telemetry.NewAggregator(px.clock, px.log, px.ring)
	px.ctx, px.cancel = context.WithCancel(context.Background())
	if cfg.Telemetry.JSONLPath != "" {
		j, err := telemetry.OpenJSONL(cfg.Telemetry.JSONLPath)
		if err != nil {
			return nil, err
		}
		px.jsonl = j
		px.agg.AddSink(j)
	}
	if err := px.apply(cfg, true); err != nil {
		return nil, err
	}
	return px, nil
}

// processSecret returns a random affinity key for a service, stable for the
// life of the process.
func (px *Proxy) processSecret(service string) []byte {
	px.mu.Lock()
	defer px.mu.Unlock()
	s, ok := px.secrets[service]
	if !ok {
		s = randomSecret()
		px.secrets[service] = s
		px.log.Warn("cookie affinity has no shared secret: cookies will not survive a restart nor work across replicas; set affinity.cookie.secret_file or secret_env",
			"service", service)
	}
	return s
}

// Apply installs a new configuration atomically: requests already in flight
// finish with what they started with; new requests see the new routes.
// Listener addresses added or removed start or stop their servers (when the
// proxy is started). On error nothing changes.
func (px *Proxy) Apply(cfg *config.Config) error {
	err := px.apply(cfg, false)
	result := "success"
	if err != nil {
		result = "failure"
	}
	px.metrics.Reloads.WithLabelValues(result).Inc()
	return err
}

func (px *Proxy) apply(cfg *config.Config, initial bool) error {
	px.reloadMu.Lock()
	defer px.reloadMu.Unlock()

	trusted, err := cfg.Server.TrustedNets()
	if err != nil {
		return err
	}
	token, err := cfg.Admin.Token()
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if cfg.Admin.AllowRemote && token == "" {
		return fmt.Errorf("admin.allow_remote: true needs a token, or anyone who reaches the admin port can reload the proxy and change its directives: set admin.token_file, or the variable %s", cfg.Admin.TokenEnv)
	}
	// Everything that can fail is done before anything changes: the
	// services' dynamic parts (policy factories, affinity secrets), the
	// certificates, and the binding of new listen addresses.
	inputs := make([]serviceInputs, len(cfg.Services))
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		f, err := sc.BalancerFactory()
		if err != nil {
			return fmt.Errorf("services[%s].policy: %w", sc.Name, err)
		}
		secret, err := affinitySecret(sc, px)
		if err != nil {
			return err
		}
		inputs[i] = serviceInputs{factory: f, secret: secret}
	}
	var certs map[string]*tls.Certificate
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		c, err := tls.LoadX509KeyPair(l.TLS.CertFile, l.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("listeners[%s].tls: %w", l.Name, err)
		}
		if certs == nil {
			certs = map[string]*tls.Certificate{}
		}
		certs[l.Listen] = &c
	}
	cs, err := px.prepareCache(cfg)
	if err != nil {
		return err
	}
	as, err := px.prepareAccessLogs(cfg)
	if err != nil {
		if cs.fresh != nil {
			cs.fresh.Close()
		}
		return err
	}
	px.mu.Lock()
	started := px.adminLn != nil
	px.mu.Unlock()
	var bound map[string]net.Listener
	if started {
		// Bind first, publish next, stop the old last (run-then-swap): a
		// reload whose new address cannot be bound leaves the running
		// configuration whole.
		if bound, err = px.bindNew(cfg, certs); err != nil {
			if cs.fresh != nil {
				cs.fresh.Close()
			}
			as.abort()
			return err
		}
	}
	pc := px.commitCache(cfg, cs)

	px.mu.Lock()
	old := px.services
	px.mu.Unlock()
	services := make(map[string]*service, len(cfg.Services))
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		s, ok := old[sc.Name]
		if !ok {
			s = newService(px, sc.Name)
		}
		s.apply(sc, initial || !ok, inputs[i])
		services[sc.Name] = s
	}

	g := &generation{cfg: cfg, version: cfg.Version(), listeners: map[string]*listenerRoutes{},
		services: services, maxBody: int64(cfg.Server.MaxRequestBodyBytes), trusted: trusted, certs: certs}
	svcCfg := make(map[string]*config.Service, len(cfg.Services))
	for i := range cfg.Services {
		svcCfg[cfg.Services[i].Name] = &cfg.Services[i]
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		lr := &listenerRoutes{name: l.Name, alog: px.newAccessLog(l, as)}
		for _, rc := range l.Routes {
			rt := &route{
				name:    rc.Name,
				host:    strings.ToLower(rc.Match.Host),
				prefix:  rc.Match.PathPrefix,
				methods: rc.Match.Methods,
				svc:     services[rc.Service],
				logs:    lr.alog != nil,
			}
			if rc.Priority != "" {
				rt.prio, rt.hasPrio = priorityOrNormal(rc.Priority), true
			}
			rt.reqDur = px.metrics.Duration.WithLabelValues(rc.Service, rc.Name)
			rt.rp = px.newReverseProxy(rt)
			px.cacheRoute(pc, rt, rc, svcCfg[rc.Service], trusted)
			lr.routes = append(lr.routes, rt)
		}
		g.listeners[l.Listen] = lr
	}
	px.gen.Store(g)
	px.commitAccessLogs(as)
	px.adminAuth.Store(&token)
	px.metrics.ConfigInfo.Reset()
	px.metrics.ConfigInfo.WithLabelValues(g.version).Set(1)

	px.mu.Lock()
	px.services = services
	for name, s := range old {
		if _, keep := services[name]; !keep {
			go s.stop() // in-flight requests finish; idle connections close
		}
	}
	px.mu.Unlock()

	var series []telemetry.Series
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		series = append(series, services[n].series()...)
	}
	px.agg.SetSeries(series)

	if started {
		px.serveListeners(g, bound)
	}
	return nil
}

// Start binds the admin and client listeners and starts serving. It returns
// an error if any address cannot be bound (nothing is left listening then).
func (px *Proxy) Start() error {
	g := px.gen.Load()
	cfg := g.cfg
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	px.mu.Lock()
	px.adminLn = ln
	px.admin = &http.Server{
		Handler:           px.adminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          px.stdLog,
	}
	px.mu.Unlock()
	adminLn := &clientListener{Listener: ln, errs: px.metrics.AcceptErrors.WithLabelValues("admin"),
		writeTimeout: func() time.Duration { return px.gen.Load().cfg.Server.WriteTimeout }}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		if err := px.admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			px.log.Error("admin server stopped", "err", err)
		}
	}()
	bound, err := px.bindNew(cfg, g.certs)
	if err != nil {
		px.Close()
		return err
	}
	px.serveListeners(g, bound)
	px.wg.Add(2)
	go func() { defer px.wg.Done(); px.agg.Run(px.ctx) }()
	go func() { defer px.wg.Done(); px.tickLoop() }()
	return nil
}

// bindNew binds the listen addresses cfg adds to the running ones. On
// error nothing stays bound. A kept address whose TLS setting changed is
// an error: its server cannot switch protocols in place.
func (px *Proxy) bindNew(cfg *config.Config, certs map[string]*tls.Certificate) (map[string]net.Listener, error) {
	px.mu.Lock()
	running := make(map[string]bool, len(px.servers))
	for key, ls := range px.servers {
		if ls.tls != (certs[key] != nil) {
			px.mu.Unlock()
			return nil, fmt.Errorf("listeners[%s]: adding or removing tls on %s needs a restart (or a new listen address, then remove the old one)", ls.name, key)
		}
		running[key] = true
	}
	px.mu.Unlock()
	bound := map[string]net.Listener{}
	for _, l := range cfg.Listeners {
		if running[l.Listen] {
			continue
		}
		ln, err := px.opts.Listen("tcp", l.Listen)
		if err != nil {
			for _, b := range bound {
				b.Close()
			}
			return nil, fmt.Errorf("listeners[%s].listen %s: %w", l.Name, l.Listen, err)
		}
		bound[l.Listen] = ln
	}
	return bound, nil
}

// serveListeners starts serving on the addresses bindNew bound, updates
// the names and certificates of the kept ones and drains the ones g no
// longer has (their requests already see g: 503 shutting_down for new
// ones, in-flight ones finish). It cannot fail.
func (px *Proxy) serveListeners(g *generation, bound map[string]net.Listener) {
	cfg := g.cfg
	px.mu.Lock()
	defer px.mu.Unlock()
	want := map[string]config.Listener{}
	for _, l := range cfg.Listeners {
		want[l.Listen] = l
	}
	for key, l := range want {
		if ls, ok := px.servers[key]; ok {
			ls.name = l.Name
			if c := g.certs[key]; c != nil {
				ls.cert.Store(c)
			}
			continue
		}
		px.servers[key] = px.startListener(l, g, bound[key])
	}
	for key, ls := range px.servers {
		if _, ok := want[key]; !ok {
			delete(px.servers, key)
			go func(ls *listenerServer) {
				ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.DrainTimeout)
				defer cancel()
				if err := ls.srv.Shutdown(ctx); err != nil {
					ls.srv.Close()
				}
			}(ls)
		}
	}
}

// startListener serves l on ln, bound by bindNew.
func (px *Proxy) startListener(l config.Listener, g *generation, ln net.Listener) *listenerServer {
	sc := g.cfg.Server
	ls := &listenerServer{key: l.Listen, name: l.Name, ln: ln, done: make(chan struct{}), tls: g.certs[l.Listen] != nil}
	ln = &clientListener{Listener: ln, errs: px.metrics.AcceptErrors.WithLabelValues(l.Name),
		writeTimeout: func() time.Duration { return px.gen.Load().cfg.Server.WriteTimeout }}
	engine := sc.Engine
	if g.certs[l.Listen] != nil {
		engine = config.EngineNetHTTP // TLS (and HTTP/2 through ALPN) is net/http's
	}
	handler := &listenerHandler{px: px, key: l.Listen, netHTTP: engine == config.EngineNetHTTP}
	if c := g.certs[l.Listen]; c != nil {
		ls.cert.Store(c)
		tc := &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return ls.cert.Load(), nil
			},
			NextProtos: []string{"h2", "http/1.1"},
		}
		ls.srv = &http.Server{Handler: handler, ReadHeaderTimeout: sc.ReadHeaderTimeout, IdleTimeout: sc.IdleTimeout,
			MaxHeaderBytes: int(sc.MaxHeaderBytes), ErrorLog: px.stdLog, TLSConfig: tc}
		ln = tls.NewListener(ln, tc)
	} else if engine == config.EngineNetHTTP {
		ls.srv = &http.Server{Handler: handler, ReadHeaderTimeout: sc.ReadHeaderTimeout, IdleTimeout: sc.IdleTimeout,
			MaxHeaderBytes: int(sc.MaxHeaderBytes), ErrorLog: px.stdLog}
	} else {
		ls.srv = &h1.Server{Handler: handler, ReadHeaderTimeout: sc.ReadHeaderTimeout, IdleTimeout: sc.IdleTimeout,
			MaxHeaderBytes: int(sc.MaxHeaderBytes), ErrorLog: px.stdLog}
	}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		defer close(ls.done)
		if err := ls.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			ls.stopped.Store(&err)
			px.log.Error("listener stopped", "listener", l.Name, "err", err)
		}
	}()
	px.log.Info("listening", "listener", l.Name, "addr", ln.Addr().String(), "tls", l.TLS != nil, "engine", engine)
	return ls
}

// httpServer is what a listener needs of its server: net/http.Server or
// the proxy's own h1.Server.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Addr returns the bound address of the listener configured with listen
// address key (useful with port 0), or "" if none.
func (px *Proxy) Addr(key string) string {
	px.mu.Lock()
	defer px.mu.Unlock()
	if ls, ok := px.servers[key]; ok {
		return ls.ln.Addr().String()
	}
	return ""
}

// stoppedListeners describes the listeners that stopped serving on their
// own, for /healthz.
func (px *Proxy) stoppedListeners() []string {
	px.mu.Lock()
	defer px.mu.Unlock()
	var out []string
	for _, ls := range px.servers {
		if err := ls.stopped.Load(); err != nil {
			out = append(out, fmt.Sprintf("listener %s (%s) stopped accepting: %v", ls.name, ls.key, *err))
		}
	}
	sort.Strings(out)
	return out
}

// AdminAddr returns the admin listener's bound address.
func (px *Proxy) AdminAddr() string {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.adminLn == nil {
		return ""
	}
	return px.adminLn.Addr().String()
}

// Version returns the configuration version in effect.
func (px *Proxy) Version() string { return px.gen.Load().version }

// now is the proxy's clock on the request path (Options.Clock).
func (px *Proxy) now() time.Time {
	if px.realClock {
		return time.Now()
	}
	return px.clock.Now()
}

// times returns the proxy's clock, for decisions and measurements
// (ejection, balancing feedback, admission, latency), and the wall clock,
// for socket deadlines (which the kernel enforces). With the real clock they
// are one reading.
func (px *Proxy) times() (clk, wall time.Time) {
	wall = time.Now()
	if px.realClock {
		return wall, wall
	}
	return px.clock.Now(), wall
}

// tickLoop expires ejections, moves slow-start ramps and closes idle
// upstream connections. It wakes on the wall clock and reads the proxy's
// clock, so a test with a manual clock only has to advance it.
func (px *Proxy) tickLoop() {
	t := time.NewTicker(px.opts.TickInterval)
	defer t.Stop()
	lastIdle := px.clock.Now()
	for {
		select {
		case <-px.ctx.Done():
			return
		case <-t.C:
		}
		now := px.clock.Now()
		px.mu.Lock()
		svcs := make([]*service, 0, len(px.services))
		for _, s := range px.services {
			svcs = append(svcs, s)
		}
		px.mu.Unlock()
		for _, s := range svcs {
			s.tick(now)
		}
		px.ticks.Add(1)
		if now.Sub(lastIdle) > 5*time.Second {
			lastIdle = now
			for _, s := range svcs {
				s.closeIdle(now)
			}
		}
	}
}

// Shutdown drains: listeners stop accepting, in-flight requests finish until
// ctx ends, then remaining connections are closed. The admin listener stays
// up until the end so the drain can be watched.
func (px *Proxy) Shutdown(ctx context.Context) error {
	px.draining.Store(true)
	px.mu.Lock()
	servers := make([]*listenerServer, 0, len(px.servers))
	for _, ls := range px.servers {
		servers = append(servers, ls)
	}
	px.mu.Unlock()
	var wg sync.WaitGroup
	var firstErr error
	var errMu sync.Mutex
	for _, ls := range servers {
		wg.Add(1)
		go func(ls *listenerServer) {
			defer wg.Done()
			if err := ls.srv.Shutdown(ctx); err != nil {
				ls.srv.Close()
				errMu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("drain of %s incomplete: %w", ls.name, err)
				}
				errMu.Unlock()
			}
		}(ls)
	}
	wg.Wait()
	px.Close()
	return firstErr
}

// Close stops everything at once.
func (px *Proxy) Close() {
	px.cancel()
	px.mu.Lock()
	for _, ls := range px.servers {
		ls.srv.Close()
	}
	if px.admin != nil {
		px.admin.Close()
	}
	svcs := px.services
	px.mu.Unlock()
	for _, s := range svcs {
		s.stop()
	}
	px.wg.Wait()
	px.closeAccessLogs()
	if px.jsonl != nil {
		px.jsonl.Close()
	}
	if c := px.cache.Load(); c != nil {
		px.cacheClose.Do(c.Close)
	}
}

// ReloadFile re-reads the configuration file and applies it.
func (px *Proxy) ReloadFile() (string, error) {
	if px.opts.ConfigPath == "" {
		return "", errors.New("no configuration file to reload (the proxy was started without --config)")
	}
	cfg, err := config.Load(px.opts.ConfigPath)
	if err != nil {
		px.metrics.Reloads.WithLabelValues("failure").Inc()
		return "", err
	}
	if err := px.Apply(cfg); err != nil {
		return "", err
	}
	px.log.Info("configuration reloaded", "version", cfg.Version())
	return cfg.Version(), nil
}

// inflightCollector exports in-flight gauges straight from the counters the
// request path maintains anyway.
type inflightCollector struct{ px *Proxy }

var (
	descSvcInflight = prometheus.NewDesc(telemetry.InFlightRequests,
		"Requests in flight to the service, retries included.", []string{telemetry.LabelService}, nil)
	descEpInflight = prometheus.NewDesc(telemetry.EndpointInFlight,
		"Attempts in flight to the endpoint.", []string{telemetry.LabelService, telemetry.LabelEndpoint}, nil)
)

var (
	descAdmLimit = prometheus.NewDesc(telemetry.AdmissionLimit,
		"The service's adaptive concurrency limit.", []string{telemetry.LabelService}, nil)
	descAdmInflight = prometheus.NewDesc(telemetry.AdmissionInFlight,
		"Requests admitted and not yet finished.", []string{telemetry.LabelService}, nil)
	descAdmRejected = prometheus.NewDesc(telemetry.AdmissionRejected,
		"Requests refused by admission control (503), by priority class.", []string{telemetry.LabelService, telemetry.LabelPriority}, nil)
)

func (c *inflightCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSvcInflight
	ch <- descEpInflight
	ch <- descAdmLimit
	ch <- descAdmInflight
	ch <- descAdmRejected
}

func (c *inflightCollector) Collect(ch chan<- prometheus.Metric) {
	c.px.mu.Lock()
	svcs := c.px.services
	c.px.mu.Unlock()
	for name, s := range svcs {
		ch <- prometheus.MustNewConstMetric(descSvcInflight, prometheus.GaugeValue, float64(s.active.Load()), name)
		if l := s.limiter.Load(); l != nil {
			ch <- prometheus.MustNewConstMetric(descAdmLimit, prometheus.GaugeValue, l.Limit(), name)
			ch <- prometheus.MustNewConstMetric(descAdmInflight, prometheus.GaugeValue, float64(l.InFlight()), name)
			for _, p := range []admission.Priority{admission.Critical, admission.Normal, admission.Sheddable} {
				ch <- prometheus.MustNewConstMetric(descAdmRejected, prometheus.CounterValue, float64(l.Rejected(p)), name, p.String())
			}
		}
		s.mu.Lock()
		for id, ep := range s.eps {
			ch <- prometheus.MustNewConstMetric(descEpInflight, prometheus.GaugeValue, float64(ep.be.InFlight()), name, id)
		}
		s.mu.Unlock()
	}
}

// nodeString renders policy options for change detection.
func nodeString(n *yaml.Node) string {
	if n == nil || n.Kind == 0 {
		return ""
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return fmt.Sprintf("%p", n)
	}
	return string(b)
}

// DrainTimeout is the configured drain deadline.
func (px *Proxy) DrainTimeout() time.Duration { return px.gen.Load().cfg.Server.DrainTimeout }

// Telemetry returns the per-second records kept in memory since t, for one
// service or all ("").
func (px *Proxy) Telemetry(since time.Time, service string) []telemetry.Record {
	return px.ring.Since(since, service)
}
