// Package demo is `lbsys demo`: the whole system on one machine from
// embedded defaults. It starts the demo shop's five services (three
// instances each, one of them deliberately slower), an lbsys proxy in front
// of them with a generated configuration, and an open-loop load generator
// replaying a real day of web traffic (NASA's server on the day of the
// STS-70 launch, compressed into the run) with a flash sale on top. Every
// two seconds it prints a table per service; at the end, a summary and a
// check of the shop's invariants.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/loadgen"
	"github.com/lbsys/lbsys/internal/proxy"
	"github.com/lbsys/lbsys/internal/shop"
)

// dayTrace is one day of the NASA Kennedy Space Center web server's request
// counts per minute (1995-07-13, the STS-70 launch: a real morning spike).
// Provenance: shared/data/traces/nasa_http_1995_07_1min.csv — NASA-HTTP logs
// (public), per-second counts from reconfigurable-ml-pipeline/
// web-service-datasets, aggregated.
//
//go:embed nasa_1995-07-13_1min.csv
var dayTrace []byte

// Config is one demo run. Zero fields take the defaults.
type Config struct {
	// Duration of the load (default 2m); the whole day is replayed in it.
	Duration time.Duration
	// Policy balances every service (default prequal).
	Policy string
	// Listen is the proxy's client address (default 127.0.0.1:8080; port 0
	// picks a free one). Admin is its admin address (default
	// 127.0.0.1:9901).
	Listen string
	Admin  string
	// PeakRPS is the request rate at the trace's busiest minute (default
	// 300); the flash sale multiplies it by FlashX (default 3) for the
	// middle tenth of the run.
	PeakRPS float64
	FlashX  float64
	// Instances per service (default 3); the last one runs at half speed.
	Instances int
	// Seed makes the load reproducible (default 1).
	Seed uint64
	// Interval between live tables (default 2s).
	Interval time.Duration
	// Out receives the tables and the summary; Log the components' logs
	// (default: discarded, so the tables stay readable).
	Out io.Writer
	Log *slog.Logger
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 2 * time.Minute
	}
	if c.Policy == "" {
		c.Policy = "prequal"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Admin == "" {
		c.Admin = "127.0.0.1:9901"
	}
	if c.PeakRPS <= 0 {
		c.PeakRPS = 300
	}
	if c.FlashX <= 0 {
		c.FlashX = 3
	}
	if c.Instances <= 0 {
		c.Instances = 3
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Interval <= 0 {
		c.Interval = 2 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Result is what a run did.
type Result struct {
	Load       loadgen.Summary
	Services   []ServiceTotal
	Invariants []string // violations; empty when the shop stayed consistent
	ProxyURL   string
	AdminURL   string
}

// ServiceTotal sums a service's per-second records over the run.
type ServiceTotal struct {
	Service  string
	Requests int64
	Errors   int64
	Shed     int64
	Share    map[string]float64 // endpoint -> share of requests
}

// services in the order the tables show them; checkout is started last
// because it needs the proxy's address.
var services = []string{"catalog", "cart", "inventory", "payment", "checkout"}

// priorities per service, for admission control.
var priorities = map[string]string{
	"catalog": "sheddable", "cart": "normal", "inventory": "critical", "payment": "critical", "checkout": "critical",
}

// Run runs the demo until the load ends or ctx is cancelled (Ctrl-C), then
// stops everything and returns the summary.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	listen, err := reserve(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", cfg.Listen, err)
	}
	admin, err := reserve(cfg.Admin)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %w", cfg.Admin, err)
	}
	proxyURL := "http://" + listen

	// Shops. A group's context outlives the run: they are closed below.
	shopCtx, stopShops := context.WithCancel(context.Background())
	defer stopShops()
	groups := map[string]*shop.Group{}
	defer func() {
		for _, g := range groups {
			g.Close()
		}
	}()
	for i, name := range services {
		sc := shop.DefaultConfig()
		sc.Service = name
		sc.Addrs = make([]string, cfg.Instances)
		sc.Speeds = make([]float64, cfg.Instances)
		for k := range sc.Addrs {
			sc.Addrs[k] = "127.0.0.1:0"
			sc.Speeds[k] = 1
		}
		sc.Speeds[cfg.Instances-1] = 0.5 // one slower machine per service
		sc.Warmup = 5 * time.Second
		sc.Seed = cfg.Seed + uint64(i)
		sc.Logger = cfg.Log
		if name == "checkout" {
			sc.Upstream = proxyURL
		}
		g, err := shop.Start(shopCtx, sc)
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", name, err)
		}
		groups[name] = g
	}

	// The proxy, from a generated configuration.
	yaml := proxyConfig(listen, admin, cfg.Policy, groups)
	pc, err := config.Parse([]byte(yaml))
	if err != nil {
		return nil, fmt.Errorf("generated proxy configuration: %w", err)
	}
	px, err := proxy.New(pc, proxy.Options{Logger: cfg.Log})
	if err != nil {
		return nil, err
	}
	if err := px.Start(); err != nil {
		return nil, err
	}
	defer px.Close()

	res := &Result{ProxyURL: proxyURL, AdminURL: "http://" + admin}
	order := map[string][]string{}
	for name, g := range groups {
		order[name] = g.Addrs()
	}
	fmt.Fprintf(cfg.Out, "lbsys demo: %d shop services × %d instances (the last at half speed), policy %s\n", len(services), cfg.Instances, cfg.Policy)
	fmt.Fprintf(cfg.Out, "  proxy    %s   (try: curl %s/catalog/products/p0001)\n", proxyURL, proxyURL)
	fmt.Fprintf(cfg.Out, "  status   %s/status\n  metrics  %s/metrics\n  records  %s/telemetry\n", res.AdminURL, res.AdminURL, res.AdminURL)
	fmt.Fprintf(cfg.Out, "  load     NASA web traffic of 1995-07-13 (STS-70 launch) in %v, peak %.0f req/s, flash sale ×%.0f at %v for %v; Ctrl-C stops\n\n",
		cfg.Duration, cfg.PeakRPS, cfg.FlashX, flashAt(cfg.Duration), flashFor(cfg.Duration))

	rate, err := loadRate(cfg)
	if err != nil {
		return nil, err
	}
	lg := loadgen.Config{
		Target:   proxyURL,
		Duration: cfg.Duration,
		Rate:     rate,
		Seed:     cfg.Seed,
		Mode:     loadgen.ModeSessions,
	}
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
			printTable(cfg.Out, px, order, time.Since(start), cfg.Interval)
		}
	}
	if lr.err != nil {
		return nil, fmt.Errorf("load generator: %w", lr.err)
	}
	res.Load = lr.s
	// Let the last second's records land before summing.
	time.Sleep(1100 * time.Millisecond)
	res.Services = totals(px, start)
	res.Invariants = checkInvariants(groups)
	printSummary(cfg.Out, res, order)

	// Drain the proxy, then stop the shops.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	px.Shutdown(sctx)
	for _, g := range groups {
		g.Shutdown(sctx)
	}
	return res, nil
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

func flashAt(d time.Duration) time.Duration  { return d * 6 / 10 }
func flashFor(d time.Duration) time.Duration { return d / 10 }

// loadRate replays the embedded day in the run's duration with a flash sale
// on top.
func loadRate(cfg Config) (loadgen.Rate, error) {
	tr, err := loadgen.ParseTrace(bytes.NewReader(dayTrace), "nasa_1995-07-13_1min.csv", loadgen.TraceOptions{})
	if err != nil {
		return nil, err
	}
	span := tr.Last().Sub(tr.First())
	base, err := loadgen.NewTraceRate(tr, loadgen.TraceReplay{
		Speed:   float64(span) / float64(cfg.Duration),
		PeakRPS: cfg.PeakRPS,
		Span:    cfg.Duration,
	})
	if err != nil {
		return nil, err
	}
	rise := flashFor(cfg.Duration) / 10
	return loadgen.FlashSale{Base: base, Start: flashAt(cfg.Duration), For: flashFor(cfg.Duration), X: cfg.FlashX, Rise: rise, Fall: rise}, nil
}

// proxyConfig generates the proxy's YAML: one listener routing each service
// by path prefix; every service on the chosen policy with active health
// checks, retries and admission control; cookie affinity for carts.
func proxyConfig(listen, admin, policy string, groups map[string]*shop.Group) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %q}\n", admin)
	b.WriteString("server: {drain_timeout: 5s}\n")
	b.WriteString("telemetry: {ring_seconds: 3600}\n")
	fmt.Fprintf(&b, "listeners:\n  - name: shop\n    listen: %q\n    routes:\n", listen)
	b.WriteString("      - {name: search, match: {path_prefix: /catalog/search}, service: catalog, priority: sheddable}\n")
	for _, s := range services {
		fmt.Fprintf(&b, "      - {name: %s, match: {path_prefix: /%s}, service: %s}\n", s, s, s)
	}
	b.WriteString("services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  - name: %s\n    priority: %s\n    policy: %s\n    endpoints:\n", s, priorities[s], policy)
		for _, a := range groups[s].Addrs() {
			fmt.Fprintf(&b, "      - {address: %q}\n", a)
		}
		b.WriteString("    health:\n      active: {path: /healthz, interval: 1s, timeout: 500ms}\n      slow_start: {window: 10s}\n")
		b.WriteString("    retries: {attempts: 2, on: [connect_failure, reset, gateway_error]}\n")
		b.WriteString("    admission: {initial_limit: 64, max_limit: 512}\n")
		if s == "cart" {
			b.WriteString("    affinity: {type: cookie}\n")
		}
	}
	return b.String()
}

// printTable prints the last interval per service from the proxy's
// per-second records.
func printTable(w io.Writer, px *proxy.Proxy, order map[string][]string, elapsed, interval time.Duration) {
	since := time.Now().Add(-interval - time.Second).Truncate(time.Second)
	recs := px.Telemetry(since, "")
	st := px.Status()
	inflight := map[string]int64{}
	for _, s := range st.Services {
		inflight[s.Name] = s.InFlight
	}
	type agg struct {
		req, errs    int64
		p50, p99     float64
		secs         map[int64]bool
		byEP         map[string]int64
		weightedP50s float64
	}
	by := map[string]*agg{}
	for _, r := range recs {
		a := by[r.Service]
		if a == nil {
			a = &agg{secs: map[int64]bool{}, byEP: map[string]int64{}}
			by[r.Service] = a
		}
		if r.Endpoint != "" {
			a.byEP[r.Endpoint] += r.Requests
			continue
		}
		a.secs[r.Time.Unix()] = true
		a.req += r.Requests
		a.errs += r.Errors
		a.weightedP50s += r.P50ms * float64(r.Requests)
		if r.P99ms > a.p99 {
			a.p99 = r.P99ms
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "t=%3.0fs\tservice\trps\tp50 ms\tp99 ms\terrors\tin-flight\tshare per endpoint\t\n", elapsed.Seconds())
	for _, name := range services {
		a := by[name]
		if a == nil {
			a = &agg{secs: map[int64]bool{}, byEP: map[string]int64{}}
		}
		secs := float64(len(a.secs))
		if secs == 0 {
			secs = 1
		}
		p50 := 0.0
		if a.req > 0 {
			p50 = a.weightedP50s / float64(a.req)
		}
		fmt.Fprintf(tw, "\t%s\t%.0f\t%.1f\t%.1f\t%d\t%d\t%s\t\n", name, float64(a.req)/secs, p50, a.p99, a.errs, inflight[name], shares(a.byEP, order[name]))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// shares formats endpoint shares in instance order, the half-speed
// instance (the last) marked with *, e.g. "41% 43% *16%".
func shares(by map[string]int64, order []string) string {
	var total int64
	for _, v := range by {
		total += v
	}
	if total == 0 {
		return "-"
	}
	if len(order) == 0 {
		for k := range by {
			order = append(order, k)
		}
		sort.Strings(order)
	}
	parts := make([]string, len(order))
	for i, k := range order {
		mark := ""
		if i == len(order)-1 {
			mark = "*"
		}
		parts[i] = fmt.Sprintf("%s%.0f%%", mark, 100*float64(by[k])/float64(total))
	}
	return strings.Join(parts, " ")
}

func totals(px *proxy.Proxy, since time.Time) []ServiceTotal {
	recs := px.Telemetry(since.Add(-time.Second), "")
	by := map[string]*ServiceTotal{}
	eps := map[string]map[string]int64{}
	for _, r := range recs {
		t := by[r.Service]
		if t == nil {
			t = &ServiceTotal{Service: r.Service, Share: map[string]float64{}}
			by[r.Service] = t
			eps[r.Service] = map[string]int64{}
		}
		if r.Endpoint != "" {
			eps[r.Service][r.Endpoint] += r.Requests
			continue
		}
		t.Requests += r.Requests
		t.Errors += r.Errors
	}
	st := px.Status()
	for _, s := range st.Services {
		if t := by[s.Name]; t != nil && s.Admission != nil {
			for _, n := range s.Admission.Rejected {
				t.Shed += n
			}
		}
	}
	var out []ServiceTotal
	for _, name := range services {
		t := by[name]
		if t == nil {
			continue
		}
		var sum int64
		for _, n := range eps[name] {
			sum += n
		}
		for ep, n := range eps[name] {
			if sum > 0 {
				t.Share[ep] = float64(n) / float64(sum)
			}
		}
		out = append(out, *t)
	}
	return out
}

// checkInvariants reads the shop's state: stock is conserved and never
// negative, and every payment key was charged once.
func checkInvariants(groups map[string]*shop.Group) []string {
	var bad []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if st, err := groups["inventory"].Stats(ctx, 0); err != nil {
		bad = append(bad, "inventory stats: "+err.Error())
	} else {
		s := st.State
		if s["available_units"] < 0 || s["reserved_units"] < 0 {
			bad = append(bad, fmt.Sprintf("negative stock: %v", s))
		}
		if s["available_units"]+s["reserved_units"]+s["sold_units"] != s["initial_units"] {
			bad = append(bad, fmt.Sprintf("stock not conserved: %v", s))
		}
	}
	if st, err := groups["payment"].Stats(ctx, 0); err != nil {
		bad = append(bad, "payment stats: "+err.Error())
	} else if s := st.State; s["charges"] != s["distinct_keys"] {
		bad = append(bad, fmt.Sprintf("a key was charged twice: %v", s))
	}
	return bad
}

func printSummary(w io.Writer, r *Result, order map[string][]string) {
	l := r.Load
	fmt.Fprintf(w, "summary: %d requests in %.0fs (%.0f req/s), %d ok, errors %d (5xx %d, connect %d, timeout %d, reset %d, dropped %d)\n",
		l.Requests, l.DurationS, l.AchievedRPS, l.OK, l.Errors.Total, l.Errors.Status5xx, l.Errors.Connect, l.Errors.Timeout, l.Errors.Reset, l.Errors.Dropped)
	fmt.Fprintf(w, "latency from scheduled send: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, p99.9 %.1f ms\n", l.Latency.P50, l.Latency.P90, l.Latency.P99, l.Latency.P999)
	if s := l.Sessions; s != nil {
		fmt.Fprintf(w, "sessions: %d started, %d completed, %d abandoned; checkouts completed: %d\n", s.Started, s.Completed, s.Abandoned, l.Checkouts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "service\trequests\terrors\tshed\tshare per endpoint\t")
	for _, t := range r.Services {
		sh := map[string]int64{}
		for ep, f := range t.Share {
			sh[ep] = int64(f * 1000)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t\n", t.Service, t.Requests, t.Errors, t.Shed, shares(sh, order[t.Service]))
	}
	tw.Flush()
	if len(r.Invariants) == 0 {
		fmt.Fprintln(w, "shop invariants held: stock never negative and conserved, every payment key charged once")
	} else {
		for _, v := range r.Invariants {
			fmt.Fprintln(w, "INVARIANT VIOLATED:", v)
		}
	}
}
