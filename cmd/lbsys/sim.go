package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/sim"
	"github.com/lbsys/lbsys/internal/simrun"
	"github.com/lbsys/lbsys/scenarios"
)

func newSimCmd() *cobra.Command {
	var (
		scenario, policies, out, format string
		controls, seedList              string
		seed                            uint64
		parallel, gcPercent             int
		quiet, list                     bool
		eventConfidence                 float64
	)
	cmd := &cobra.Command{
		Use:   "sim --scenario NAME|FILE [--policies a,b,...] [--control reactive,predictive,...] [--seeds 1-5] [--out DIR] [flags]",
		Short: "Simulate a scenario (flash sale, failures, autoscaling) under each balancing policy",
		Long: `Run a scenario through a deterministic discrete-event simulation of the shop:
clients (sessions walking the funnel, or independent requests), N proxy
replicas running the production balancing, health and admission code, and
backend replicas with workers, queues, heterogeneous and noisy machines, cold
starts, crashes and a Kubernetes-style autoscaler. Every policy sees the same
arrivals (same seed); the same seed and scenario give byte-identical
results.json.

--scenario takes the name of an embedded scenario (scenarios/ in the
repository):
  ` + strings.Join(scenarios.Names(), ", ") + `
or a path to a YAML file (format: internal/sim's Scenario; errors name the
field and line). A trace file named in a scenario is read relative to the
scenario file; for embedded scenarios, relative to scenarios/ in the working
directory or one of its parents.

--control closes the loop with a controller (internal/control): reactive
(the autoscaler alone, the default), predictive (lbsys: the forecaster
trained on the scenario's history, the event uplift learned from past
events of each announced category, the predictive scaler and the planner,
directives applied to the simulated proxies and autoscalers through the
proxy's own apply code), oracle (the same scaler fed the true future load),
holt_winters (a predictive-horizontal-pod-autoscaler peer) and hourly (an
AWS-predictive-scaling-style peer). --seeds runs several seeds and reports
each figure as mean ± sd over them; the goals of the closed loop are
checked on the runs.

Writes to --out (default: a new directory lbsys-sim-NAME-* under the
system's temporary directory, never the working tree; its path is printed
on stderr, even with --quiet): report.md, results.json (per run: totals, per-minute
series per service with the controller's floor and forecast, incidents,
event readiness, replica-hours and cost) and PNG plots, per seed under
seed-N/ when there are several, and comparison.md and comparison.json for
several seeds or controls. The summary goes to stdout as Markdown or, with
--format json, results.json (or comparison.json). A progress line goes to
stderr; Ctrl-C stops early and still writes what was simulated.

Examples:
  lbsys sim --scenario flash-sale --policies round_robin,least_request,peak_ewma,prequal --seed 1 --out sim-flash
  lbsys sim --scenario announced-flash-sale --control reactive,predictive,oracle --policies round_robin,peak_ewma --seeds 1-5 --parallel 2
  lbsys sim --scenario heterogeneous --out sim-het --parallel 2
  lbsys sim --scenario ./my-scenario.yaml --format json --out /tmp/s > results.json
  lbsys sim --list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if list {
				for _, n := range scenarios.Names() {
					fmt.Fprintln(cmd.OutOrStdout(), n)
				}
				return nil
			}
			if scenario == "" {
				return usageError{errors.New("--scenario is required: a name (" + strings.Join(scenarios.Names(), ", ") + ") or a YAML file")}
			}
			if format != "md" && format != "json" {
				return usageError{fmt.Errorf("--format %q: use md or json", format)}
			}
			if parallel < 1 {
				return usageError{fmt.Errorf("--parallel %d: at least 1", parallel)}
			}
			if err := forecast.CheckEventConfidence(eventConfidence); err != nil {
				return usageError{fmt.Errorf("--event-confidence: %w", err)}
			}
			sc, err := simrun.Load(scenario)
			if err != nil {
				return usageError{err}
			}
			cfg := simrun.Config{Scenario: sc, Parallel: parallel, Out: out, Progress: cmd.ErrOrStderr(), Quiet: quiet, EventConfidence: eventConfidence}
			if cfg.Controls, err = sim.ParseControls(controls); err != nil {
				return usageError{fmt.Errorf("--control: %w", err)}
			}
			if cfg.Seeds, err = simrun.ParseSeeds(seedList, seed, sc.Seed); err != nil {
				return usageError{fmt.Errorf("--seeds: %w", err)}
			}
			if cfg.Policies, err = simrun.ParsePolicies(policies, sc.Policies); err != nil {
				return usageError{fmt.Errorf("--policies: %w", err)}
			}
			if os.Getenv("GOGC") == "" && gcPercent > 0 {
				// The simulator's own state is reused, but some policies
				// allocate per probe (prequal): a larger heap target
				// trades memory for fewer collections.
				debug.SetGCPercent(gcPercent)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := simrun.Run(ctx, cfg)
			var invalid *simrun.InvalidError
			if errors.As(err, &invalid) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			switch {
			case !quiet:
				runs := len(cfg.Policies) * len(cfg.Controls)
				fmt.Fprintf(stderr, "sim %s: %d runs × %d seeds, %.1fM simulated requests in %v (%.2fM req/s of wall time, %d parallel); wrote %s\n",
					sc.Name, runs, len(res.Runs), float64(res.Requests)/1e6, res.Wall.Round(time.Millisecond), float64(res.Requests)/res.Wall.Seconds()/1e6, parallel, res.Out)
			case out == "":
				// Quiet, but the results went to a directory the user did
				// not name: say where.
				fmt.Fprintf(stderr, "sim %s: wrote %s\n", sc.Name, res.Out)
			}
			if res.Interrupted {
				fmt.Fprintln(stderr, "sim: interrupted; the results cover the minutes simulated so far")
			}
			return res.WriteSummary(cmd.OutOrStdout(), format)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "scenario name or YAML file (required)")
	f.StringVar(&policies, "policies", "", "comma-separated balancing policies to compare (default: the scenario's, else round_robin,least_request,peak_ewma,prequal)")
	f.Uint64Var(&seed, "seed", 0, "random seed (default: the scenario's, else 1)")
	f.StringVar(&seedList, "seeds", "", "several seeds, e.g. 1-5 or 1,4,9 (overrides --seed); figures are then mean ± sd over them")
	f.StringVar(&controls, "control", "reactive", "comma-separated controls to compare: "+strings.Join(sim.Controls, ", "))
	f.Float64Var(&eventConfidence, "event-confidence", defaultEventConfidence, eventConfidenceUsage)
	f.StringVar(&out, "out", "", "directory for report.md, results.json, the plots and comparison.md (default: a new directory under the system's temporary directory, printed)")
	f.StringVar(&format, "format", "md", "summary on stdout: md or json")
	f.IntVar(&parallel, "parallel", 1, "runs simulated at once (each run uses one core)")
	f.IntVar(&gcPercent, "gc-percent", 400, "Go GC target percentage (GOGC) unless GOGC is set in the environment")
	f.BoolVar(&quiet, "quiet", false, "no progress line")
	f.BoolVar(&list, "list", false, "list the embedded scenarios and exit")
	return cmd
}
