package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy"
	"github.com/lbsys/lbsys/internal/stub"
)

func newProxyCmd() *cobra.Command {
	var (
		configPath string
		logLevel   string
		checkOnly  bool
		stubs      bool
		cpuProfile string
		gcPercent  int
		coord      string
	)
	cmd := &cobra.Command{
		Use:   "proxy --config lbsys.yaml",
		Short: "Run the L7 load balancer (the data plane)",
		Long: `Run the lbsys data plane: listeners route requests to services, each a pool of
endpoints with a balancing policy, health checks, retries, timeouts and
affinity. The configuration file is documented field by field in
docs/config.md; examples/lbsys.yaml is a working example.

Signals: SIGHUP reloads the configuration (as does POST /reload on the admin
listener, with the bearer token); SIGUSR1 reopens the access log files (after
logrotate renamed them); SIGTERM or SIGINT drain gracefully: stop accepting,
finish in-flight requests up to server.drain_timeout, then exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return usageError{fmt.Errorf("--config is required (try examples/lbsys.yaml)")}
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return usageError{err}
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return usageError{err}
			}
			if checkOnly {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (version %s)\n", configPath, cfg.Version())
				return nil
			}
			// The proxy's live heap is small (a few MB) while it allocates
			// per request, so the default GOGC=100 collects very often; a
			// higher target trades a few MB for several percent of CPU.
			// An explicit GOGC in the environment wins.
			if os.Getenv("GOGC") == "" && gcPercent > 0 {
				debug.SetGCPercent(gcPercent)
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return usageError{fmt.Errorf("--cpuprofile: %w", err)}
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
			if stubs {
				var addrs []string
				for _, s := range cfg.Services {
					for _, e := range s.Endpoints {
						addrs = append(addrs, e.Address)
					}
				}
				b, err := stub.Start(addrs)
				if err != nil {
					return err
				}
				defer b.Close()
				log.Info("stub backends started", "count", len(addrs))
			}
			var coordURLs []string
			if coord != "" {
				coordURLs = strings.Split(coord, ",")
			}
			return runProxy(cmd.Context(), cfg, configPath, log, coordURLs)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", "", "path of the YAML configuration file (required)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.BoolVar(&checkOnly, "check", false, "validate the configuration and exit (0 valid, 2 invalid)")
	f.IntVar(&gcPercent, "gc-percent", 400, "Go GC target percentage (GOGC) unless GOGC is set in the environment; higher uses more memory and less CPU")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until the proxy exits (for performance work)")
	f.StringVar(&coord, "coordinator", "", "Gaia coordinator URL(s), comma-separated, to take directives from (overrides coordinator.urls; token from coordinator.token_file or LBSYS_COORDINATOR_TOKEN)")
	f.BoolVar(&stubs, "stub-backends", false, "also start a tiny built-in HTTP backend on every endpoint address of the config (loopback only), to try the proxy without real services")
	return cmd
}

func newLogger(level string) (*slog.Logger, error) {
	if level == "off" {
		return slog.New(slog.NewTextHandler(io.Discard, nil)), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func runProxy(ctx context.Context, cfg *config.Config, path string, log *slog.Logger, coordinator []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	px, err := proxy.New(cfg, proxy.Options{Logger: log, ConfigPath: path})
	if err != nil {
		return usageError{err}
	}
	// The agent applies the persisted directive before it returns (so the
	// first request already sees it), then watches the coordinator in the
	// background.
	if err := px.StartAgent(coordinator); err != nil {
		px.Close()
		return usageError{err}
	}
	// Signals are caught before anything listens: a signal the runtime
	// receives before Notify is dropped (SIGUSR1, SIGHUP) or ends the
	// process (SIGTERM), and a logrotate or a supervisor may send one as
	// soon as the proxy is up. Those that arrive during Start wait in the
	// channel.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append(proxy.ReopenSignals(), syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)...)
	defer signal.Stop(sigs)
	if err := px.Start(); err != nil {
		px.Close()
		return err
	}
	var addrs []string
	for _, l := range cfg.Listeners {
		addrs = append(addrs, px.Addr(l.Listen))
	}
	log.Info("lbsys proxy started", "listeners", strings.Join(addrs, ","), "admin", px.AdminAddr(), "config_version", px.Version())
	for {
		select {
		case <-ctx.Done():
			return drain(px, cfg, log)
		case s := <-sigs:
			if proxy.IsReopenSignal(s) {
				if err := px.ReopenAccessLogs(); err != nil {
					log.Error("access logs not all reopened", "err", err)
				} else {
					log.Info("access logs reopened", "signal", s.String())
				}
				continue
			}
			if s == syscall.SIGHUP {
				if v, err := px.ReloadFile(); err != nil {
					log.Error("reload failed; keeping the running configuration", "err", err)
				} else {
					log.Info("reloaded on SIGHUP", "config_version", v)
				}
				continue
			}
			log.Info("draining", "signal", s.String(), "deadline", px.DrainTimeout())
			return drain(px, cfg, log)
		}
	}
}

func drain(px *proxy.Proxy, cfg *config.Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), px.DrainTimeout())
	defer cancel()
	if err := px.Shutdown(ctx); err != nil {
		log.Warn("drain deadline passed with requests in flight; they were cut", "err", err)
		return nil
	}
	log.Info("drained; bye")
	return nil
}
