package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var (
		cfg      demo.Config
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole system on this machine: shop, proxy and a replayed flash-sale day",
		Long: `Run lbsys end to end from embedded defaults, no files needed: the demo shop's
five services (catalog, cart, inventory, payment, checkout; three instances
each, the last one at half speed), an lbsys proxy in front of them, and an
open-loop load generator replaying a real day of web traffic (NASA, 1995-07-13,
the STS-70 launch) compressed into --duration, with a flash sale in the middle.
Every two seconds it prints a table per service (req/s, p50, p99, errors,
in-flight, share per endpoint); Ctrl-C stops everything cleanly; at the end it
prints a summary and checks the shop's invariants (stock conserved, each
payment charged once). Everything listens on 127.0.0.1 only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, ok := balance.Lookup(cfg.Policy); !ok {
				return usageError{fmt.Errorf("--policy %q: use one of %v", cfg.Policy, balance.Names())}
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return usageError{err}
			}
			if logLevel != "off" {
				cfg.Log = log
			}
			cfg.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := demo.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if len(res.Invariants) > 0 {
				return fmt.Errorf("the shop's invariants were violated: %v", res.Invariants)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 2*time.Minute, "how long to run the load (the whole day is replayed in it)")
	f.StringVar(&cfg.Policy, "policy", "prequal", "balancing policy of every service")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "proxy client address (port 0: any free port)")
	f.StringVar(&cfg.Admin, "admin", "127.0.0.1:9901", "proxy admin address (port 0: any free port)")
	f.Float64Var(&cfg.PeakRPS, "peak-rps", 300, "request rate at the replayed day's busiest minute")
	f.Float64Var(&cfg.FlashX, "flash-x", 3, "flash sale multiplier (for a tenth of the run, starting at 60%)")
	f.IntVar(&cfg.Instances, "instances", 3, "instances per service (the last one at half speed)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the load (same seed, same arrivals)")
	f.StringVar(&logLevel, "log-level", "off", "components' log level on stderr: off, debug, info, warn, error")
	return cmd
}
