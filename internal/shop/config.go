package shop

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

// Services are the service names Start accepts, in funnel order.
var Services = []string{"catalog", "inventory", "cart", "checkout", "payment"}

// Config describes one group: the instances of one service started
// together, sharing one store. Start from DefaultConfig: Start fills no
// defaults, and a zero Workers or QueueTimeout is an error rather than a
// silent guess.
type Config struct {
	// Service is one of Services.
	Service string
	// Addrs are the instances' listen addresses, one instance each; port 0
	// picks a free port (see Group.Addrs). A crashed instance restarts on
	// the port it first got.
	Addrs []string

	// Workers is the number of requests an instance serves at once (≥ 1).
	Workers int
	// Queue is how many more requests may wait for a worker (≥ 0; 0 = no
	// queue). A request that finds the queue full is answered 503 at once.
	Queue int
	// QueueTimeout is the longest wait in the queue before a 503 (> 0).
	QueueTimeout time.Duration

	// Latency is the mean service time of a cost-1 request; 0 serves
	// without holding a worker (to measure the shop's own overhead).
	Latency time.Duration
	// CV is the service time's coefficient of variation (≥ 0; 0 makes it
	// constant).
	CV float64
	// Speeds divide each instance's service time (a machine twice as fast
	// has speed 2). Empty means 1 for all; one value applies to all;
	// otherwise one per address.
	Speeds []float64
	// Warmup is how long after a start or restart the instance is slower,
	// by ColdFactor at first, falling linearly to 1 (0 = no cold start).
	Warmup time.Duration
	// ColdFactor multiplies the service time right after start (≥ 1).
	ColdFactor float64

	// Products is the catalog size (≥ 1); ids are p0001… .
	Products int
	// Stock is every product's initial units (≥ 0), for products the
	// store has not seen yet.
	Stock int64
	// DeclineRate is the share of payment keys declined (payment), 0..1.
	DeclineRate float64
	// Upstream is the base URL checkout sends its downstream calls to
	// (normally the proxy, e.g. http://127.0.0.1:8080); required for
	// checkout, ignored otherwise.
	Upstream string

	// DataPath, when set, is a SQLite file holding the state (shared by
	// processes, kept across restarts); otherwise state is in memory.
	DataPath string
	// Store, when set, is used instead of opening one (so that groups in
	// one process can share state); the group does not close it. Setting
	// both Store and DataPath is an error.
	Store Store

	// AddrFile, when set, receives the instances' listen addresses, one
	// per line, once every instance listens (written to a temporary file
	// and renamed: a reader never sees half of it). A launcher that
	// started the shop on port 0 learns its ports from it.
	AddrFile string

	// ReadyAfter keeps /healthz answering 503 "starting" for this long
	// after the group starts, as a starting pod's readiness probe fails
	// until it has loaded what it needs (0 = ready at once).
	ReadyAfter time.Duration

	// FaultAPI serves GET and POST /_shop/fault, fault injection over
	// HTTP. Off by default: a proxy route that catches every path (the
	// demo's) would otherwise hand anyone who reaches the proxy the power
	// to crash instances. Even on, it answers loopback clients only and
	// refuses requests that came through a proxy. Group.SetFault works
	// either way.
	FaultAPI bool

	// Seed makes service times, error injection and declines
	// reproducible; each instance derives its own stream from it.
	Seed uint64
	// Clock tells the time for cold starts and schedules restarts;
	// default clock.Real. Service times are slept on the real clock.
	Clock clock.Clock
	// Logger receives start, crash and restart messages; default
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the `lbsys shop` defaults: 8 workers, a queue of 64
// waiting at most 500ms, 20ms mean service time with cv 0.5, a 30s warm-up
// starting 3× slower, 200 products of 1000 units, no declines, one instance
// on a free loopback port, in-memory state.
func DefaultConfig() Config {
	return Config{
		Addrs:        []string{"127.0.0.1:0"},
		Workers:      8,
		Queue:        64,
		QueueTimeout: 500 * time.Millisecond,
		Latency:      20 * time.Millisecond,
		CV:           0.5,
		Warmup:       30 * time.Second,
		ColdFactor:   3,
		Products:     200,
		Stock:        1000,
		Seed:         1,
	}
}

// Validate reports every problem of c at once, one per line, each saying
// how to fix it. A line starts with the name of the `lbsys shop` flag that
// sets the field (workers, queue-timeout, …), so the command can point at
// the flag.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains(Services, c.Service) {
		bad("service %q: use one of %s", c.Service, strings.Join(Services, ", "))
	}
	if len(c.Addrs) == 0 {
		bad("no listen address: give at least one host:port")
	}
	seen := map[string]bool{}
	for _, a := range c.Addrs {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			bad("listen address %q: write host:port, e.g. 127.0.0.1:9001", a)
			continue
		}
		if port != "0" && seen[a] {
			bad("listen address %q given twice", a)
		}
		seen[a] = true
	}
	if c.Workers < 1 {
		bad("workers %d: need at least 1", c.Workers)
	}
	if c.Queue < 0 {
		bad("queue %d: use 0 (no queue) or more", c.Queue)
	}
	if c.QueueTimeout <= 0 {
		bad("queue-timeout %v: must be > 0", c.QueueTimeout)
	}
	if c.Latency < 0 {
		bad("latency %v is negative", c.Latency)
	}
	if !(c.CV >= 0 && c.CV <= 10) {
		bad("cv %v: use a coefficient of variation from 0 (constant) to 10", c.CV)
	}
	if len(c.Speeds) > 1 && len(c.Speeds) != len(c.Addrs) {
		bad("%d speeds for %d instances: give one speed, or one per instance", len(c.Speeds), len(c.Addrs))
	}
	for _, s := range c.Speeds {
		if !(s > 0) || math.IsInf(s, 0) {
			bad("speed %v: must be > 0 (1 = normal, 0.5 = half as fast)", s)
		}
	}
	if c.Warmup < 0 {
		bad("warmup %v is negative", c.Warmup)
	}
	if c.ReadyAfter < 0 {
		bad("ready-after %v is negative", c.ReadyAfter)
	}
	if !(c.ColdFactor >= 1 && c.ColdFactor <= 1000) {
		bad("cold-factor %v: use 1 (no cold start) or more", c.ColdFactor)
	}
	if c.Products < 1 || c.Products > 1_000_000 {
		bad("products %d: use 1 to 1000000", c.Products)
	}
	if c.Stock < 0 {
		bad("stock %d is negative", c.Stock)
	}
	if !(c.DeclineRate >= 0 && c.DeclineRate <= 1) {
		bad("decline-rate %v: use a share between 0 and 1", c.DeclineRate)
	}
	if c.Service == "checkout" {
		if c.Upstream == "" {
			bad("checkout needs an upstream: the base URL of its downstream calls, normally the proxy (e.g. http://127.0.0.1:8080)")
		} else if u, err := url.Parse(c.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("upstream %q: write a base URL such as http://127.0.0.1:8080", c.Upstream)
		}
	}
	if c.Store != nil && c.DataPath != "" {
		bad("both a Store and a data file given: use one")
	}
	return errors.Join(errs...)
}

// speed is instance i's speed factor.
func (c *Config) speed(i int) float64 {
	switch len(c.Speeds) {
	case 0:
		return 1
	case 1:
		return c.Speeds[0]
	}
	return c.Speeds[i]
}
