package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/demo"
)

func newDemoCmd() *cobra.Command { return newDemoCmdRunning(demo.Run) }

// newDemoCmdRunning builds the command with the function that runs the
// demo, so that tests can check what the flags turn into.
func newDemoCmdRunning(run func(context.Context, demo.Config) (*demo.Result, error)) *cobra.Command {
	var (
		cfg      demo.Config
		logLevel string
		warm     bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole system on this machine with the loop closed: shop, proxy, coordinator, controller, local scaler and a replayed morning with an announced flash sale",
		Long: `Run lbsys end to end from embedded defaults, no files needed:

  - the demo shop's five services (catalog, cart, inventory, payment,
    checkout) as lbsys shop processes, started and stopped by a local
    scaler (the Kubernetes HPA algorithm on their measured busy time; a
    warm pool of six instance slots, then nodes that take three minutes);
  - an lbsys proxy in front of them;
  - with --control predictive (the default): a single-node coordinator, the
    proxy's agent, and the controller — the forecaster trained on twelve
    days of the site's history, the flash sales' uplift learned from the six
    past ones in the shop's calendar, the predictive scaler and the planner —
    proposing directives (replica floors ready before the announced sale,
    admission seeds) as standard changes; with --control reactive, the
    local scaler alone;
  - an open-loop load generator replaying NASA's web traffic of 1995-07-12
    from --from (06:30 by default), compressed --factor times (a virtual
    minute per real second by default), with the flash sale announced in the
    calendar for 07:45; --from "1995-07-13 06:30" replays the STS-70 launch
    morning instead: the same sale on a real, unannounced surge of two to
    three times the usual traffic.

The proxy caches the catalog's pages; the calendar names the products
each sale features, the load favours them while it lasts, and the
controller's directive warms them before it starts. The summary gives the
product pages' hit ratio in the sale's first minute (and the whole
catalog's, lists too); --warm=false runs the same with the cache cold at
the sale, and the second run prints both.

Every two seconds it prints a table per service (req/s, p50, p99, errors,
instances, utilisation, the directive's floor); the proxy's admin listener
serves the web UI. Ctrl-C stops everything cleanly. At the end it prints a
summary (SLO-violation minutes, worst p99, errors, instance-minutes), the
comparison with the last run of the other control (same seed and
settings), and checks the shop's invariants (stock conserved, each payment
charged once). bench/closedloop-real.sh runs both controls back to back.
Everything listens on 127.0.0.1 only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.NoWarm = !warm
			// --policies, like lbsys sim's; the demo runs one policy for
			// every service, so it takes one name.
			if strings.Contains(cfg.Policy, ",") {
				return usageError{fmt.Errorf("--policies %q: the demo runs one policy for every service; to compare several, run lbsys sim --policies %s", cfg.Policy, cfg.Policy)}
			}
			if _, ok := balance.Lookup(cfg.Policy); !ok {
				return usageError{fmt.Errorf("--policies %q: use one of %s", cfg.Policy, strings.Join(balance.Names(), ", "))}
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
			res, err := run(ctx, cfg)
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
	f.StringVar(&cfg.Control, "control", demo.ControlPredictive, "predictive (coordinator, controller and directive floors) or reactive (the local scaler's autoscaler alone)")
	durationVar(f, &cfg.Duration, "duration", 3*time.Minute, "how long to run the load (real time; it replays duration × factor of the morning)")
	f.Float64Var(&cfg.Factor, "factor", 60, "time compression: virtual seconds per real second (60: a virtual minute per second)")
	f.Var(&timeFlag{&cfg.From}, "from", "virtual time the replay starts at (1995-07-12 06:30 UTC by default; the trace covers 1995-07-01..13)")
	f.StringVar(&cfg.Policy, "policies", "peak_ewma", "balancing policy of every service (one of "+strings.Join(balance.Names(), ", ")+")")
	// --policy was the flag's first name; it still works, and says so.
	f.StringVar(&cfg.Policy, "policy", "peak_ewma", "")
	f.MarkDeprecated("policy", "use --policies (the name lbsys sim uses too)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "proxy client address (port 0: any free port)")
	f.StringVar(&cfg.Admin, "admin", "127.0.0.1:9901", "proxy admin address (port 0: any free port)")
	f.Float64Var(&cfg.PeakRPS, "peak-rps", 400, "request rate at the replayed day's busiest minute")
	f.Float64Var(&cfg.EventConfidence, "event-confidence", defaultEventConfidence, eventConfidenceUsage)
	f.Float64Var(&cfg.FlashX, "flash-x", 10, "what the announced flash sale multiplies the traffic by (the controller is not told: it learns it from the past sales)")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the load (same seed, same arrivals)")
	f.StringVar(&cfg.StateDir, "state-dir", "", "where the last run of each control is kept for the comparison (default: lbsys-demo under the system's temporary directory)")
	f.BoolVar(&warm, "warm", true, "let the controller warm the proxy's cache with the pages each announced sale features (false: the cache is cold at the sale, for the comparison)")
	f.StringVar(&logLevel, "log-level", "off", "components' log level on stderr: off, debug, info, warn, error")
	return cmd
}

// timeFlag reads a time such as 1995-07-13T06:30:00Z or "1995-07-13 06:30"
// (UTC).
type timeFlag struct{ t *time.Time }

func (f *timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			*f.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("%q: write a time such as 1995-07-13T06:30:00Z or \"1995-07-13 06:30\"", s)
}

func (f *timeFlag) Type() string { return "time" }
