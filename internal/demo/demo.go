// Package demo is `lbsys demo`: the whole system on one machine from
// embedded defaults, with the loop closed. It starts
//
//   - the demo shop's five services as `lbsys shop` processes, scaled by a
//     local scaler (internal/fleet: the Kubernetes HPA algorithm on their
//     measured busy time, a warm pool and node provisioning);
//   - an lbsys proxy in front of them (registering instances as they
//     become ready);
//   - with --control predictive (the default): a single-node coordinator
//     (internal/gaia, in process), the proxy's agent watching it, and the
//     live controller (internal/liveloop around internal/control: the
//     forecaster trained on twelve days of the replayed site's history,
//     the uplift of flash sales learned from the past ones in the shop's
//     calendar, the predictive scaler and the planner) proposing directives
//     as standard changes; the fleet holds the directive's replica floors;
//   - an open-loop load generator replaying a real morning of web traffic
//     (NASA's server on 1995-07-13, the STS-70 launch: a real, unannounced
//     surge around 09:30) compressed in time, with the flash sale announced
//     in the calendar on top.
//
// Time: the demo runs on a compressed clock, a virtual minute per real
// second by default (Config.Factor), so three hours of the morning take
// three minutes and the autoscaler's 15-second sync, its 300-second
// stabilisation window and the controller's minutes keep their meaning.
// Every two seconds it prints a table per service; at the end a summary
// (SLO-violation minutes, p99, errors, instance-minutes), a comparison
// with the last run of the other control, and a check of the shop's
// invariants.
package demo

import (
	"context"
	cryptoRand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/dashboard/ui"
	"github.com/lbsys/lbsys/internal/fleet"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
	"github.com/lbsys/lbsys/internal/liveloop"
	"github.com/lbsys/lbsys/internal/loadgen"
	"github.com/lbsys/lbsys/internal/proxy"
	"github.com/lbsys/lbsys/internal/scaler"
	"github.com/lbsys/lbsys/internal/shop"
	"github.com/lbsys/lbsys/internal/steer"
)

// Controls the demo runs.
const (
	ControlReactive   = "reactive"
	ControlPredictive = "predictive"
)

// Config is one demo run. Zero fields take the defaults.
type Config struct {
	// Control is predictive (the closed loop: coordinator, controller,
	// directive floors) or reactive (the local scaler's HPA alone).
	// Default predictive.
	Control string
	// Duration is how long the load runs (real time); it replays Duration
	// × Factor of the morning from From. Default 3m.
	Duration time.Duration
	// Factor is virtual seconds per real second. Default 60.
	Factor float64
	// From is the virtual time the replay starts at. Default 1995-07-12
	// 06:30 UTC (an ordinary Wednesday morning; the flash sale is
	// announced for 07:45). 1995-07-13 is the STS-70 launch morning: the
	// same sale on top of a real, unannounced surge of two to three times
	// the usual traffic.
	From time.Time
	// Policy balances every service (default peak_ewma).
	Policy string
	// Listen is the proxy's client address (default 127.0.0.1:8080; port 0
	// picks a free one). Admin is its admin address (default
	// 127.0.0.1:9901).
	Listen string
	Admin  string
	// PeakRPS is the request rate at the replayed day's busiest minute
	// (default 400); FlashX what the announced sale multiplies it by
	// (default 10: not told to the controller, which learns a flash sale's
	// size from the past ones).
	PeakRPS float64
	FlashX  float64
	// Seed makes the load reproducible (default 1).
	Seed uint64
	// Interval between live tables (default 2s).
	Interval time.Duration
	// Binary is the lbsys executable the instances run as (`lbsys shop`
	// processes); empty: this process's own executable. InProcess starts
	// them in this process instead (tests).
	Binary    string
	InProcess bool
	// StateDir keeps the last run's summary per control, for the
	// comparison (default: the system's temporary directory).
	StateDir string
	// NoWarm turns the controller's cache warming off: the proxy still
	// caches the catalog, cold at the sale's start (the comparison's
	// other half). Reactive control never warms.
	NoWarm bool
	// EventConfidence is the predictive controller's probability that
	// the sale is no larger than its floors plan for
	// (forecast.UpliftOptions.Upper); 0: the default, 0.95.
	EventConfidence float64
	// Out receives the tables and the summary; Log the components' logs
	// (default: discarded, so the tables stay readable).
	Out io.Writer
	Log *slog.Logger
	// OnReady, when set, is called once everything listens, with the
	// proxy's and admin's URLs (tests, the browser opener).
	OnReady func(proxyURL, adminURL string)
}

func (c *Config) defaults() error {
	if c.Control == "" {
		c.Control = ControlPredictive
	}
	if c.Control != ControlPredictive && c.Control != ControlReactive {
		return fmt.Errorf("control %q: use %s or %s", c.Control, ControlPredictive, ControlReactive)
	}
	if c.EventConfidence != 0 {
		if err := forecast.CheckEventConfidence(c.EventConfidence); err != nil {
			return err
		}
	}
	if c.Duration <= 0 {
		c.Duration = 3 * time.Minute
	}
	if c.Factor <= 0 {
		c.Factor = 60
	}
	if c.Factor > 600 {
		return fmt.Errorf("factor %v: at most 600 (a telemetry second must stay within a controller minute)", c.Factor)
	}
	if c.From.IsZero() {
		c.From = time.Date(1995, 7, 12, 6, 30, 0, 0, time.UTC)
	}
	if c.Policy == "" {
		c.Policy = "peak_ewma"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Admin == "" {
		c.Admin = "127.0.0.1:9901"
	}
	if c.PeakRPS <= 0 {
		c.PeakRPS = 400
	}
	if c.FlashX <= 0 {
		c.FlashX = 10
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join(os.TempDir(), "lbsys-demo")
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// serviceDef is one shop service of the demo: its instances' size, its
// autoscaler and its objective.
type serviceDef struct {
	name     string
	priority string
	workers  int
	latency  time.Duration
	min, max int
	slo      time.Duration
}

// services in the order the tables show them; checkout is last: it needs
// the proxy's address. Small instances (2 workers at 25 ms for the busy
// services), so that the morning's traffic and the sale need real scaling.
var services = []serviceDef{
	{"catalog", "sheddable", 2, 25 * time.Millisecond, 2, 12, 300 * time.Millisecond},
	{"cart", "normal", 2, 25 * time.Millisecond, 2, 12, 300 * time.Millisecond},
	{"inventory", "critical", 2, 25 * time.Millisecond, 2, 12, 300 * time.Millisecond},
	{"payment", "critical", 4, 50 * time.Millisecond, 2, 6, time.Second},
	{"checkout", "critical", 16, 20 * time.Millisecond, 2, 6, 1500 * time.Millisecond},
}

// The cluster the local scaler plays: room for six more instances at the
// start, then nodes of four, three virtual minutes to provision; an
// instance is ready a virtual minute after it starts and runs 3× slower
// for its first virtual minute.
const (
	warmSlots        = 6
	nodeSize         = 4
	nodeProvisioning = 3 * time.Minute
	readyAfter       = time.Minute
	warmup           = time.Minute
	pricePerHour     = 0.10
)

// Result is what a run did.
type Result struct {
	Control    string
	Load       loadgen.Summary
	Services   []ServiceTotal
	Invariants []string // violations; empty when the shop stayed consistent
	ProxyURL   string
	AdminURL   string
	// Directives is the last directive version the proxy applied
	// (predictive).
	Directives int
	// Events are the announced events of the replayed window with when
	// their capacity was ready (predictive or not).
	Timeline []string
	// Cache is the catalog's response cache (its product pages, and with
	// its lists) over the run and in the first minute of each announced
	// event.
	Cache *CacheResult
}

// ServiceTotal sums a service's run.
type ServiceTotal struct {
	Service string `json:"service"`
	// Requests, Errors and Shed over the run (errors include sheds).
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	Shed     int64 `json:"shed"`
	// ViolationMinutes are the virtual minutes whose p99 exceeded the
	// service's objective or whose error rate exceeded 1%.
	ViolationMinutes int     `json:"slo_violation_minutes"`
	P99Ms            float64 `json:"p99_ms"` // the worst minute's
	InstanceMinutes  float64 `json:"instance_minutes"`
	MaxInstances     int     `json:"max_instances"`
	// Share is each endpoint's share of the service's requests.
	Share map[string]float64 `json:"-"`
}

// Run runs the demo until the load ends or ctx is cancelled (Ctrl-C), then
// stops everything and returns the summary.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	listen, err := reserve(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	admin, err := reserve(cfg.Admin)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %w", cfg.Admin, err)
	}
	proxyURL := "http://" + listen
	w, err := newWorld(&cfg)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lbsys-demo-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(cfg.Out, "lbsys demo (%s control): the demo shop's five services behind an lbsys proxy (policy %s)\n", cfg.Control, cfg.Policy)
	fmt.Fprintf(cfg.Out, "  time     %s to %s of %s replayed at ×%.0f (a virtual minute per %s)\n",
		cfg.From.Format("15:04"), cfg.From.Add(time.Duration(float64(cfg.Duration)*cfg.Factor)).Format("15:04"), cfg.From.Format("2006-01-02"), cfg.Factor, time.Duration(float64(time.Minute)/cfg.Factor))

	// The coordinator and its tokens (predictive only).
	var node *gaia.Node
	tokens := map[string]string{}
	if cfg.Control == ControlPredictive {
		node, tokens, err = startCoordinator(dir, cfg.Log)
		if err != nil {
			return nil, err
		}
		defer node.Close()
	}

	// The instances, before the proxy: its configuration lists them.
	vc := clock.NewScaled(nil, cfg.From, cfg.Factor)
	var (
		pxMu    sync.Mutex
		px      *proxy.Proxy
		endpts  = map[string][]string{}
		applyMu sync.Mutex
	)
	republish := func(svc string, addrs []string) error {
		pxMu.Lock()
		endpts[svc] = append([]string(nil), addrs...)
		p := px
		snapshot := map[string][]string{}
		for k, v := range endpts {
			snapshot[k] = v
		}
		pxMu.Unlock()
		if p == nil {
			return nil
		}
		applyMu.Lock()
		defer applyMu.Unlock()
		pc, err := config.Parse([]byte(proxyConfig(listen, admin, cfg.Policy, snapshot, node, dir)))
		if err != nil {
			return fmt.Errorf("proxy configuration: %w", err)
		}
		return p.Apply(pc)
	}
	var specs []fleet.ServiceSpec
	for _, s := range services {
		specs = append(specs, fleet.ServiceSpec{Name: s.name, HPA: scaler.DefaultHPASpec(s.min, s.max, 0.6), PricePerHour: pricePerHour})
	}
	launcher, err := newLauncher(&cfg, dir, proxyURL)
	if err != nil {
		return nil, err
	}
	fl, err := fleet.New(fleet.Options{Clock: vc, Scaled: vc, WarmSlots: warmSlots, NodeSize: nodeSize, NodeProvisioning: nodeProvisioning,
		Drain: 30 * time.Second, OnEndpoints: republish, Launcher: launcher, Log: cfg.Log}, specs)
	if err != nil {
		return nil, err
	}
	startCtx, cancelStart := context.WithTimeout(ctx, 60*time.Second)
	err = fl.Start(startCtx)
	cancelStart()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fl.Close(sctx)
	}()
	if err != nil {
		return nil, err
	}

	// The proxy.
	pc, err := config.Parse([]byte(proxyConfig(listen, admin, cfg.Policy, endpts, node, dir)))
	if err != nil {
		return nil, fmt.Errorf("generated proxy configuration: %w", err)
	}
	p, err := proxy.New(pc, proxy.Options{Logger: cfg.Log, ConfigPath: filepath.Join(dir, "lbsys.yaml")})
	if err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		return nil, err
	}
	defer p.Close()
	pxMu.Lock()
	px = p
	pxMu.Unlock()
	if node != nil {
		if err := p.StartAgent(nil); err != nil {
			return nil, fmt.Errorf("the proxy's agent: %w", err)
		}
	}
	res := &Result{Control: cfg.Control, ProxyURL: proxyURL, AdminURL: "http://" + admin}
	fmt.Fprintf(cfg.Out, "  proxy    %s   (try: curl %s/catalog/products/p0001)\n", proxyURL, proxyURL)
	fmt.Fprintf(cfg.Out, "  web UI   %s/   (forecast ahead, the announced sale, directives)   status %s/status   metrics %s/metrics   why %s/explain\n", res.AdminURL, res.AdminURL, res.AdminURL, res.AdminURL)
	if node != nil {
		fmt.Fprintf(cfg.Out, "  gaia     %s (single-node coordinator; lbsys explain --coordinator %s --token-file %s)\n", node.URL(), node.URL(), filepath.Join(dir, "viewer.token"))
	}

	// The controller (predictive): trained on the history before From.
	var loop *liveloop.Loop
	if cfg.Control == ControlPredictive {
		floors := func(svc string, _ time.Time) int {
			st := p.Status()
			if st.Coordinator == nil {
				return 0
			}
			sd, ok := st.Coordinator.Services[svc]
			if !ok || sd.Scale == nil {
				return 0
			}
			// The directive's times are the wall clock's.
			return steer.Floor(&directive.Service{Scale: sd.Scale}, time.Now())
		}
		fl.SetFloors(floors)
		fmt.Fprintf(cfg.Out, "  control  training the forecaster on %s of history (12 days of the site, six past flash sales)…\n", cfg.From.Sub(w.trace.First()).Round(time.Hour))
		t0 := time.Now()
		ctrl, err := newController(ctx, &cfg, w)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(cfg.Out, "  control  trained in %v; planning every virtual minute, proposing standard changes to the coordinator\n", time.Since(t0).Round(100*time.Millisecond))
		cl := client.New([]string{node.URL()}, tokens["controller"])
		loop = &liveloop.Loop{Clock: vc, Scaled: vc, Controller: ctrl, Telemetry: p, Fleet: fl, Coordinator: cl,
			Services: serviceNames(), Requester: "demo-controller", Log: cfg.Log}
	}
	for _, e := range w.events {
		if !e.Start.Before(cfg.From) && e.Start.Before(cfg.From.Add(time.Duration(float64(cfg.Duration)*cfg.Factor))) {
			fmt.Fprintf(cfg.Out, "  calendar %s %s at %s (virtual; %v into the run): announced, size unknown\n", e.Category(), e.Summary,
				e.Start.Format("15:04"), time.Duration(float64(e.Start.Sub(cfg.From))/cfg.Factor).Round(time.Second))
		}
	}
	fmt.Fprintln(cfg.Out)
	if cfg.OnReady != nil {
		cfg.OnReady(proxyURL, res.AdminURL)
	}

	// Go: the clock starts with the load.
	vc.Restart(cfg.From)
	// The web UI: the calendar's events of the replay on its charts and
	// in its table from now on, in wall-clock time and named as the
	// planner names them (a directive sized for one updates its entry);
	// its time axis labelled in the replayed day's time.
	var uiEvents []ui.Announcement
	for _, e := range w.events {
		if e.End.After(cfg.From) && e.Start.Before(cfg.From.Add(time.Duration(float64(cfg.Duration)*cfg.Factor))) {
			uiEvents = append(uiEvents, ui.Announcement{Name: ui.EventName(e.Category(), vc.Real(e.Start)), Title: e.Summary,
				Start: vc.Real(e.Start), End: vc.Real(e.End)})
		}
	}
	if err := p.AnnounceUIEvents(uiEvents); err != nil {
		cfg.Log.Warn("web UI: the calendar's events are not shown", "err", err)
	}
	p.SetUIReplay(&ui.Replay{WallStart: vc.Real(cfg.From), VirtualStart: cfg.From, Factor: cfg.Factor})
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); fl.Run(runCtx) }()
	if loop != nil {
		wg.Add(1)
		go func() { defer wg.Done(); loop.Run(runCtx) }()
	}
	lg := loadgen.Config{Target: proxyURL, Duration: cfg.Duration, Rate: rate{w: w, from: cfg.From, factor: cfg.Factor}, Seed: cfg.Seed, Mode: loadgen.ModeSessions,
		Hot: w.hotSets(cfg.From, cfg.Factor, cfg.Duration)}
	probe := startCacheProbe(p, vc, w, cfg.From, cfg.From.Add(time.Duration(float64(cfg.Duration)*cfg.Factor)))
	type loadResult struct {
		s   loadgen.Summary
		err error
	}
	done := make(chan loadResult, 1)
	start := time.Now()
	go func() {
		s, err := loadgen.Run(ctx, lg, nil)
		done <- loadResult{s, err}
	}()
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	var lr loadResult
loop:
	for {
		select {
		case lr = <-done:
			break loop
		case <-tick.C:
			printTable(cfg.Out, p, fl, vc, time.Since(start), cfg.Interval)
		}
	}
	stopRun()
	wg.Wait()
	if lr.err != nil {
		return nil, fmt.Errorf("load generator: %w", lr.err)
	}
	res.Load = lr.s
	res.Cache = probe.result(cfg.Control == ControlPredictive && !cfg.NoWarm)
	// Let the last second's records land before summing.
	time.Sleep(1100 * time.Millisecond)
	res.Services = totals(p, fl, start, time.Now(), vc)
	if st := p.Status(); st.Coordinator != nil {
		res.Directives = int(st.Coordinator.Version)
	}
	if loop != nil {
		for _, ev := range loop.Events() {
			if ev.Change != 0 {
				res.Timeline = append(res.Timeline, fmt.Sprintf("%s change %d (%s) version %d", ev.At.Format("15:04"), ev.Change, ev.State, ev.Version))
			}
		}
	}
	// After a Ctrl-C too: the check reads the instances, which stop only
	// after it (deferred), on its own timeout.
	res.Invariants = checkInvariants(context.WithoutCancel(ctx), fl)
	printSummary(cfg.Out, res)
	compareWithLast(cfg.Out, &cfg, res)
	if cfg.Control == ControlPredictive {
		compareCache(cfg.Out, &cfg, res.Cache)
	}

	// Drain the proxy, then stop the shops (deferred).
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Shutdown(sctx)
	return res, nil
}

func serviceNames() []string {
	var out []string
	for _, s := range services {
		out = append(out, s.name)
	}
	return out
}

// newLauncher runs instances as lbsys shop processes, or in this process.
func newLauncher(cfg *Config, dir, proxyURL string) (fleet.Launcher, error) {
	def := func(name string) serviceDef {
		for _, s := range services {
			if s.name == name {
				return s
			}
		}
		return services[0]
	}
	// Compressed time: a virtual minute of readiness or warm-up lasts a
	// real second at ×60.
	ready := time.Duration(float64(readyAfter) / cfg.Factor)
	warm := time.Duration(float64(warmup) / cfg.Factor)
	if cfg.InProcess {
		return &fleet.GroupLauncher{Config: func(service string, seq int) shop.Config {
			d := def(service)
			c := shop.DefaultConfig()
			c.Workers, c.Latency, c.ReadyAfter, c.Warmup = d.workers, d.latency, ready, warm
			c.DataPath = filepath.Join(dir, service+".db")
			c.Seed = cfg.Seed + uint64(seq)
			c.Logger = cfg.Log
			if service == "checkout" {
				c.Upstream = proxyURL
			}
			return c
		}}, nil
	}
	bin := cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding the lbsys binary for the instances: %w", err)
		}
		bin = exe
	}
	return &fleet.ProcessLauncher{Binary: bin, Dir: dir, Args: func(service string, seq int) []string {
		d := def(service)
		args := []string{"--workers", fmt.Sprint(d.workers), "--latency", d.latency.String(), "--ready-after", ready.String(),
			"--warmup", warm.String(), "--data", filepath.Join(dir, service+".db"), "--seed", fmt.Sprint(cfg.Seed + uint64(seq))}
		if service == "checkout" {
			args = append(args, "--upstream", proxyURL)
		}
		return args
	}}, nil
}

// startCoordinator starts a single-node Gaia coordinator in this process
// (an in-memory Raft transport, its API on a free loopback port) with
// tokens for the controller (proposer), the proxy's agent and a viewer.
func startCoordinator(dir string, log *slog.Logger) (*gaia.Node, map[string]string, error) {
	tokens := map[string]string{}
	tk := gaia.NewTokens()
	for name, roles := range map[string][]string{"controller": {fsm.RoleProposer}, "agent": {fsm.RoleAgent}, "viewer": {fsm.RoleViewer}} {
		t := randomToken()
		if err := tk.Add(t, "demo-"+name, roles...); err != nil {
			return nil, nil, err
		}
		tokens[name] = t
		if err := os.WriteFile(filepath.Join(dir, name+".token"), []byte(t+"\n"), 0o600); err != nil {
			return nil, nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr, tr := raft.NewInmemTransport("")
	pol := change.DefaultPolicy()
	pol.CanaryFraction = 0 // one proxy: nothing to compare a canary with
	n, err := gaia.Start(gaia.Options{ID: "demo", DataDir: filepath.Join(dir, "gaia"), Bootstrap: true,
		Peers: []gaia.Peer{{ID: "demo", RaftAddr: string(addr)}}, Transport: tr, Listener: ln,
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		CommitTimeout: 5 * time.Millisecond, TickInterval: 50 * time.Millisecond, WatchWait: 2 * time.Second, ReportInterval: 200 * time.Millisecond,
		Tokens: tk, Policy: &pol, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("starting the coordinator: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			n.Close()
			return nil, nil, errors.New("the coordinator did not elect itself within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return n, tokens, nil
}

// newController builds the predictive controller: the forecaster trained
// on the history, the calendar, the services' autoscalers.
func newController(ctx context.Context, cfg *Config, w *world) (control.Controller, error) {
	return control.NewPredictive(ctx, controllerSetup(cfg, w))
}

// controllerSetup is what the controller knows: the history, the
// calendar with what each event features, the services' autoscalers and
// the catalog's cache.
func controllerSetup(cfg *Config, w *world) control.Setup {
	s := control.Setup{Start: cfg.From, Step: time.Minute, Proxies: 1, History: w.history(cfg.From), Events: w.announced(),
		// The platform's stated startup: readiness plus a node.
		StartupPrior: readyAfter + nodeProvisioning,
		Forecast:     forecast.Options{Seed: cfg.Seed, NoLSTM: true, Holidays: "none"},
		Uplift:       forecast.UpliftOptions{Upper: cfg.EventConfidence}}
	for _, d := range services {
		ss := control.ServiceSetup{Name: d.name, Min: d.min, Max: d.max, TargetUtilization: 0.6, Tolerance: 0.1, Admission: true}
		if d.name == "catalog" {
			ss.Cache = catalogCache(cfg.Factor)
		}
		s.Services = append(s.Services, ss)
	}
	s.Featured, s.NoWarm = w.featured(), cfg.NoWarm
	return s
}

// proxyConfig generates the proxy's YAML: one listener routing each service
// by path prefix; every service on the chosen policy with active health
// checks, slow start, retries and admission control; cookie affinity for
// carts; the coordinator when there is one.
func proxyConfig(listen, admin, policy string, endpoints map[string][]string, node *gaia.Node, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %q}\n", admin)
	b.WriteString("server: {drain_timeout: 5s}\n")
	b.WriteString("telemetry: {ring_seconds: 3600}\n")
	if node != nil {
		fmt.Fprintf(&b, "coordinator: {urls: [%q], token_file: %q, proxy_id: demo-proxy, state_file: %q}\n", node.URL(),
			filepath.Join(dir, "agent.token"), filepath.Join(dir, "agent-state.json"))
	}
	// The catalog's pages are cacheable (internal/shop): the proxy caches
	// them, and warms what a directive lists at warmRate.
	fmt.Fprintf(&b, "cache: {max_bytes: 64MiB, warm: {rate: %d, burst: %d}}\n", warmRate, warmBurst)
	fmt.Fprintf(&b, "listeners:\n  - name: shop\n    listen: %q\n    routes:\n", listen)
	// Product pages on a route of their own: what a sale features and
	// the controller warms, counted apart from the lists. First: the
	// proxy queues a directive's warm list on each cached route of the
	// service in the listener's order, whether or not the route would
	// serve the paths, so the route that serves them goes first.
	fmt.Fprintf(&b, "      - {name: %s, match: {path_prefix: /catalog/products/}, service: catalog}\n", productsRoute)
	b.WriteString("      - {name: search, match: {path_prefix: /catalog/search}, service: catalog, priority: sheddable}\n")
	for _, s := range services {
		fmt.Fprintf(&b, "      - {name: %s, match: {path_prefix: /%s}, service: %s}\n", s.name, s.name, s.name)
	}
	b.WriteString("services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  - name: %s\n    priority: %s\n    policy: %s\n    endpoints:\n", s.name, s.priority, policy)
		addrs := append([]string(nil), endpoints[s.name]...)
		sort.Strings(addrs)
		if len(addrs) == 0 {
			// Never an empty pool: the proxy answers 503 no_healthy_upstream
			// from a closed port until an instance is ready.
			addrs = []string{"127.0.0.1:1"}
		}
		for _, a := range addrs {
			fmt.Fprintf(&b, "      - {address: %q}\n", a)
		}
		b.WriteString("    health:\n      active: {path: /healthz, interval: 1s, timeout: 500ms}\n      slow_start: {window: 5s}\n")
		b.WriteString("    retries: {attempts: 2, on: [connect_failure, reset, gateway_error]}\n")
		b.WriteString("    admission: {initial_limit: 64, max_limit: 1024}\n")
		if s.name == "cart" {
			b.WriteString("    affinity: {type: cookie}\n")
		}
		if s.name == "catalog" {
			b.WriteString("    cache: {enabled: true}\n")
		}
	}
	return b.String()
}

// reserve resolves a listen address: a free port for port 0, and a clear
// error when the port is taken.
func reserve(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", errors.New("cannot listen there (in use?); pick another with the flag, or port 0 for a free one")
	}
	a := ln.Addr().String()
	ln.Close()
	return a, nil
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := cryptoRand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return fmt.Sprintf("%x", b)
}

// lastRun is what a run leaves for the comparison with the other control.
type lastRun struct {
	Control  string         `json:"control"`
	At       time.Time      `json:"at"`
	Seed     uint64         `json:"seed"`
	Factor   float64        `json:"factor"`
	Duration string         `json:"duration"`
	Services []ServiceTotal `json:"services"`
	Errors   int64          `json:"errors"`
	P99Ms    float64        `json:"p99_ms"`
}

func compareWithLast(w io.Writer, cfg *Config, res *Result) {
	mine := lastRun{Control: cfg.Control, At: time.Now().UTC(), Seed: cfg.Seed, Factor: cfg.Factor, Duration: cfg.Duration.String(),
		Services: res.Services, Errors: res.Load.Errors.Total, P99Ms: res.Load.Latency.P99}
	os.MkdirAll(cfg.StateDir, 0o755)
	if b, err := json.MarshalIndent(mine, "", " "); err == nil {
		os.WriteFile(filepath.Join(cfg.StateDir, "last-"+cfg.Control+".json"), b, 0o644)
	}
	other := ControlReactive
	if cfg.Control == ControlReactive {
		other = ControlPredictive
	}
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, "last-"+other+".json"))
	if err != nil {
		fmt.Fprintf(w, "\nrun `lbsys demo --control %s` (same seed) to compare; bench/closedloop-real.sh runs both back to back\n", other)
		return
	}
	var prev lastRun
	if json.Unmarshal(b, &prev) != nil || prev.Seed != mine.Seed || prev.Factor != mine.Factor || prev.Duration != mine.Duration {
		fmt.Fprintf(w, "\nthe last %s run had other settings (seed, factor or duration): run it again with these to compare\n", other)
		return
	}
	writeComparison(w, []lastRun{prev, mine})
}
