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

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/config"
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
}

// Proxy is a running lbsys data plane.
type Proxy struct {
	log     *slog.Logger
	stdLog  *log.Logger
	clock   clock.Clock
	reg     *prometheus.Registry
	metrics *telemetry.Metrics
	opts    Options

	gen      atomic.Pointer[generation]
	draining atomic.Bool
	noRoute  prometheus.Counter

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

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type listenerServer struct {
	key  string
	name string
	srv  httpServer
	ln   net.Listener
	cert atomic.Pointer[tls.Certificate]
	done chan struct{}
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
	px := &Proxy{
		log:      opts.Logger,
		stdLog:   slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		clock:    opts.Clock,
		reg:      opts.Registry,
		opts:     opts,
		services: map[string]*service{},
		servers:  map[string]*listenerServer{},
		secrets:  map[string][]byte{},
	}
	px.metrics = telemetry.NewMetrics(px.reg)
	px.noRoute = px.metrics.ProxyErrors.WithLabelValues("", reasonNoRoute)
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
	// Validate every service's dynamic parts before touching anything.
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		if _, err := sc.BalancerFactory(); err != nil {
			return fmt.Errorf("services[%s].policy: %w", sc.Name, err)
		}
		if sc.Affinity.Type == "cookie" {
			if _, err := sc.Affinity.Cookie.Secret(); err != nil {
				return fmt.Errorf("services[%s].affinity.cookie: %w", sc.Name, err)
			}
		}
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

	px.mu.Lock()
	old := px.services
	px.mu.Unlock()
	services := make(map[string]*service, len(cfg.Services))
	var created []*service
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		s, ok := old[sc.Name]
		if !ok {
			s = newService(px, sc.Name)
			created = append(created, s)
		}
		if err := s.apply(sc, initial || !ok); err != nil {
			for _, c := range created {
				c.stop()
			}
			return err
		}
		services[sc.Name] = s
	}

	g := &generation{cfg: cfg, version: cfg.Version(), listeners: map[string]*listenerRoutes{},
		services: services, maxBody: int64(cfg.Server.MaxRequestBodyBytes), trusted: trusted}
	for _, l := range cfg.Listeners {
		lr := &listenerRoutes{name: l.Name}
		for _, rc := range l.Routes {
			rt := &route{
				name:    rc.Name,
				host:    strings.ToLower(rc.Match.Host),
				prefix:  rc.Match.PathPrefix,
				methods: rc.Match.Methods,
				svc:     services[rc.Service],
			}
			if rc.Priority != "" {
				rt.prio, rt.hasPrio = mustPriority(rc.Priority), true
			}
			rt.reqDur = px.metrics.Duration.WithLabelValues(rc.Service, rc.Name)
			rt.rp = px.newReverseProxy(rt)
			lr.routes = append(lr.routes, rt)
		}
		g.listeners[l.Listen] = lr
	}
	px.gen.Store(g)
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
	started := px.adminLn != nil
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

	g.certs = certs
	if started {
		return px.syncListeners(g)
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
		ErrorLog:          px.stdLog,
	}
	px.mu.Unlock()
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		if err := px.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			px.log.Error("admin server stopped", "err", err)
		}
	}()
	if err := px.syncListeners(g); err != nil {
		px.Close()
		return err
	}
	px.wg.Add(2)
	go func() { defer px.wg.Done(); px.agg.Run(px.ctx) }()
	go func() { defer px.wg.Done(); px.tickLoop() }()
	return nil
}

// syncListeners starts servers for new listen addresses, stops those no
// longer configured, and updates TLS certificates and limits of the rest.
func (px *Proxy) syncListeners(g *generation) error {
	cfg := g.cfg
	px.mu.Lock()
	defer px.mu.Unlock()
	want := map[string]config.Listener{}
	for _, l := range cfg.Listeners {
		want[l.Listen] = l
	}
	var started []*listenerServer
	for key, l := range want {
		if ls, ok := px.servers[key]; ok {
			ls.name = l.Name
			if c := g.certs[key]; c != nil {
				ls.cert.Store(c)
			}
			continue
		}
		ls, err := px.startListener(l, g)
		if err != nil {
			for _, s := range started {
				s.srv.Close()
				delete(px.servers, s.key)
			}
			return err
		}
		started = append(started, ls)
		px.servers[key] = ls
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
	return nil
}

func (px *Proxy) startListener(l config.Listener, g *generation) (*listenerServer, error) {
	sc := g.cfg.Server
	ln, err := net.Listen("tcp", l.Listen)
	if err != nil {
		return nil, fmt.Errorf("listeners[%s].listen %s: %w", l.Name, l.Listen, err)
	}
	ls := &listenerServer{key: l.Listen, name: l.Name, ln: ln, done: make(chan struct{})}
	handler := &listenerHandler{px: px, key: l.Listen}
	engine := sc.Engine
	if c := g.certs[l.Listen]; c != nil {
		// TLS (and HTTP/2 through ALPN) is net/http's.
		engine = config.EngineNetHTTP
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
		ls.srv = &h1Server{Handler: handler, ReadHeaderTimeout: sc.ReadHeaderTimeout, IdleTimeout: sc.IdleTimeout,
			MaxHeaderBytes: int(sc.MaxHeaderBytes), ErrorLog: px.stdLog}
	}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		defer close(ls.done)
		if err := ls.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			px.log.Error("listener stopped", "listener", l.Name, "err", err)
		}
	}()
	px.log.Info("listening", "listener", l.Name, "addr", ln.Addr().String(), "tls", l.TLS != nil, "engine", engine)
	return ls, nil
}

// httpServer is what a listener needs of its server: net/http.Server or
// the proxy's own h1Server.
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

// tickLoop expires ejections, moves slow-start ramps and closes idle
// upstream connections.
func (px *Proxy) tickLoop() {
	t := time.NewTicker(px.opts.TickInterval)
	defer t.Stop()
	lastIdle := time.Now()
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
		if time.Since(lastIdle) > 5*time.Second {
			lastIdle = time.Now()
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
	if px.jsonl != nil {
		px.jsonl.Close()
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
