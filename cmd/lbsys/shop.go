package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/shop"
)

// shopDrainTimeout bounds the drain on SIGINT/SIGTERM.
const shopDrainTimeout = 10 * time.Second

// shopFlags are the raw flag values of `lbsys shop`.
type shopFlags struct {
	service      string
	listen       string
	instances    int
	basePort     int
	host         string
	workers      int
	queue        int
	queueTimeout time.Duration
	latency      time.Duration
	cv           float64
	speed        float64
	speeds       string
	warmup       time.Duration
	coldFactor   float64
	products     int
	stock        int64
	declineRate  float64
	upstream     string
	data         string
	seed         uint64
	logLevel     string
	faultAPI     bool
	readyAfter   time.Duration
	addrFile     string
}

func newShopCmd() *cobra.Command { return newShopCmdRunning(runShop) }

// newShopCmdRunning builds the command with the function that runs the
// shop, so that tests can check what the flags turn into.
func newShopCmdRunning(run func(context.Context, shop.Config, *slog.Logger) error) *cobra.Command {
	var fl shopFlags
	cmd := &cobra.Command{
		Use:   "shop --service NAME [--listen HOST:PORT | --instances N --base-port PORT]",
		Short: "Run instances of one demo-shop microservice (catalog, inventory, cart, checkout, payment)",
		Long: `Run instances of one of the demo shop's HTTP microservices, whose API is
docs/shop-api.md: catalog, inventory, cart, checkout or payment. They are what
the proxy balances in the demo, the tests and the benchmarks.

Each instance serves with --workers workers and a bounded queue (--queue,
--queue-timeout; beyond them: 503 with Retry-After: 1 and X-Shop-Error:
overloaded). A request holds a worker for a log-normal service time of mean
--latency and coefficient of variation --cv, times the endpoint's cost (search
x3, checkout x2 for its own work, the rest x1), times the cold-start factor
(--cold-factor right after start, falling linearly to 1 over --warmup), divided
by the instance's speed (--speed, or --speeds per instance). Every answer
carries X-Lbsys-Load: rif=<in flight>,util=<busy/workers>.

Instances of one run share one store: in memory, or a SQLite file with --data
(which several runs may share; state survives restarts). With --fault-api,
faults are injected per instance with POST /_shop/fault from loopback (never
through a proxy), e.g.
  curl -d '{"crash":true,"restart_after":"5s"}' 127.0.0.1:9001/_shop/fault

Checkout calls the other services through --upstream, normally the proxy.

SIGINT or SIGTERM drains: listeners close, requests in flight finish (up to
10s), then the command exits.

Examples:
  lbsys shop --service catalog --listen 127.0.0.1:9001
  lbsys shop --service catalog --instances 3 --base-port 9001 --speeds 1,1,0.5
  lbsys shop --service checkout --base-port 9031 --instances 2 --upstream http://127.0.0.1:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := fl.config(cmd)
			if err != nil {
				return usageError{err}
			}
			log, err := newLogger(fl.logLevel)
			if err != nil {
				return usageError{err}
			}
			cfg.Logger = log
			return run(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.service, "service", "", "the service to run: "+strings.Join(shop.Services, ", ")+" (required)")
	f.StringVar(&fl.listen, "listen", "", "listen address of a single instance, host:port (default 127.0.0.1 on a free port, which is logged)")
	f.IntVar(&fl.instances, "instances", 1, "number of instances, on consecutive ports from --base-port")
	f.IntVar(&fl.basePort, "base-port", 0, "port of the first instance when running several (--instances); the others follow")
	f.StringVar(&fl.host, "host", "127.0.0.1", "host the instances listen on with --base-port")
	f.IntVar(&fl.workers, "workers", 8, "requests an instance serves at once")
	f.IntVar(&fl.queue, "queue", 64, "requests that may wait for a worker (0 = none); a full queue answers 503")
	durationVar(f, &fl.queueTimeout, "queue-timeout", 500*time.Millisecond, "longest wait for a worker before a 503")
	durationVar(f, &fl.latency, "latency", 20*time.Millisecond, "mean service time of a cost-1 request (0 = no service time)")
	f.Float64Var(&fl.cv, "cv", 0.5, "coefficient of variation of the log-normal service time (0 = constant)")
	f.Float64Var(&fl.speed, "speed", 1, "speed of every instance's machine: service time is divided by it (0.5 = half the capacity)")
	f.StringVar(&fl.speeds, "speeds", "", "speed per instance, comma-separated (e.g. 1,1,0.5); overrides --speed")
	durationVar(f, &fl.warmup, "warmup", 30*time.Second, "warm-up after start and restart, during which service time falls linearly from --cold-factor times to normal (0 = none)")
	f.Float64Var(&fl.coldFactor, "cold-factor", 3, "service-time multiplier right after start (1 = no cold start)")
	f.IntVar(&fl.products, "products", 200, "number of catalog products (p0001…)")
	f.Int64Var(&fl.stock, "stock", 1000, "initial units per product (for products the store does not know yet)")
	f.Float64Var(&fl.declineRate, "decline-rate", 0, "payment: share of charges declined, 0..1")
	f.StringVar(&fl.upstream, "upstream", "", "checkout: base URL of its downstream calls, normally the proxy (e.g. http://127.0.0.1:8080); required for checkout")
	f.StringVar(&fl.data, "data", "", "SQLite file holding the state (shared by runs, kept across restarts); default in memory")
	f.Uint64Var(&fl.seed, "seed", 1, "seed of service times, injected errors and declines, for reproducible runs")
	f.StringVar(&fl.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	durationVar(f, &fl.readyAfter, "ready-after", 0, "answer /healthz with 503 \"starting\" for this long after start, as a starting pod's readiness probe (0 = ready at once)")
	f.StringVar(&fl.addrFile, "addr-file", "", "once listening, write the instances' addresses (one per line) to this file: how a launcher learns the ports chosen for port 0")
	f.BoolVar(&fl.faultAPI, "fault-api", false, "serve POST /_shop/fault (fault injection) to loopback clients that do not come through a proxy")
	return cmd
}

// config turns the flags into a shop.Config, or says what is wrong.
func (fl *shopFlags) config(cmd *cobra.Command) (shop.Config, error) {
	cfg := shop.DefaultConfig()
	if fl.service == "" {
		return cfg, fmt.Errorf("--service is required: one of %s", strings.Join(shop.Services, ", "))
	}
	cfg.Service = fl.service
	if fl.instances < 1 || fl.instances > 1000 {
		return cfg, fmt.Errorf("--instances %d: use 1 to 1000", fl.instances)
	}
	changed := cmd.Flags().Changed
	switch {
	case fl.listen != "" && changed("base-port"):
		return cfg, fmt.Errorf("--listen and --base-port both given: use --listen for one instance, --base-port with --instances for several")
	case fl.listen != "" && fl.instances > 1:
		return cfg, fmt.Errorf("--listen gives one address but --instances is %d: use --base-port for several instances", fl.instances)
	case fl.listen != "":
		if _, _, err := net.SplitHostPort(fl.listen); err != nil {
			return cfg, fmt.Errorf("--listen %q: write host:port, e.g. 127.0.0.1:9001", fl.listen)
		}
		cfg.Addrs = []string{fl.listen}
	case changed("base-port"):
		if fl.basePort < 1 || fl.basePort+fl.instances-1 > 65535 {
			return cfg, fmt.Errorf("--base-port %d with %d instances: ports must lie within 1..65535", fl.basePort, fl.instances)
		}
		cfg.Addrs = make([]string, fl.instances)
		for i := range cfg.Addrs {
			cfg.Addrs[i] = net.JoinHostPort(fl.host, strconv.Itoa(fl.basePort+i))
		}
	default:
		cfg.Addrs = make([]string, fl.instances)
		for i := range cfg.Addrs {
			cfg.Addrs[i] = net.JoinHostPort(fl.host, "0")
		}
	}
	cfg.FaultAPI = fl.faultAPI
	cfg.Workers = fl.workers
	cfg.Queue = fl.queue
	cfg.QueueTimeout = fl.queueTimeout
	cfg.Latency = fl.latency
	cfg.CV = fl.cv
	switch {
	case fl.speeds != "" && changed("speed"):
		return cfg, fmt.Errorf("--speed and --speeds both given: use --speed for all instances or --speeds for each")
	case fl.speeds != "":
		for _, p := range strings.Split(fl.speeds, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil {
				return cfg, fmt.Errorf("--speeds %q: %q is not a number; write e.g. 1,1,0.5", fl.speeds, p)
			}
			cfg.Speeds = append(cfg.Speeds, v)
		}
		if len(cfg.Speeds) != len(cfg.Addrs) {
			return cfg, fmt.Errorf("--speeds has %d values for %d instances: give one per instance", len(cfg.Speeds), len(cfg.Addrs))
		}
	default:
		cfg.Speeds = []float64{fl.speed}
	}
	cfg.Warmup = fl.warmup
	cfg.ReadyAfter = fl.readyAfter
	cfg.AddrFile = fl.addrFile
	cfg.ColdFactor = fl.coldFactor
	cfg.Products = fl.products
	cfg.Stock = fl.stock
	cfg.DeclineRate = fl.declineRate
	cfg.Upstream = fl.upstream
	cfg.DataPath = fl.data
	cfg.Seed = fl.seed
	if err := cfg.Validate(); err != nil {
		// Each line starts with the flag's name without dashes: add them.
		lines := strings.Split(err.Error(), "\n")
		for i, l := range lines {
			if name, _, _ := strings.Cut(l, " "); cmd.Flags().Lookup(name) != nil {
				lines[i] = "--" + l
			}
		}
		return cfg, fmt.Errorf("%s", strings.Join(lines, "; "))
	}
	return cfg, nil
}

func runShop(ctx context.Context, cfg shop.Config, log *slog.Logger) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	g, err := shop.Start(context.Background(), cfg)
	if err != nil {
		return err
	}
	for i, u := range g.URLs() {
		log.Info("shop instance listening", "service", cfg.Service, "instance", fmt.Sprintf("%s-%d", cfg.Service, i), "url", u)
	}
	store := "memory"
	if cfg.DataPath != "" {
		store = cfg.DataPath
	}
	log.Info("shop started", "service", cfg.Service, "instances", g.Len(), "workers", cfg.Workers, "latency", cfg.Latency, "store", store)
	<-ctx.Done()
	stop()
	log.Info("draining", "deadline", shopDrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), shopDrainTimeout)
	defer cancel()
	if err := g.Shutdown(dctx); err != nil {
		log.Warn("drain deadline passed with requests in flight; they were cut", "err", err)
		return nil
	}
	log.Info("drained; bye")
	return nil
}
