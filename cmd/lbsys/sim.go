package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/sim"
	"github.com/lbsys/lbsys/scenarios"
)

func newSimCmd() *cobra.Command {
	var (
		scenario, policies, out, format string
		seed                            uint64
		parallel, gcPercent             int
		quiet, list                     bool
	)
	cmd := &cobra.Command{
		Use:   "sim --scenario NAME|FILE [--policies a,b,...] [--seed N] [--out DIR] [flags]",
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

Writes to --out: report.md, results.json (per policy: totals, per-minute
series per service, incidents, replica-hours and cost) and PNG plots (p99 over
time under the load curve, SLO-violation minutes, utilisation spread). The
summary goes to stdout as Markdown or, with --format json, results.json. A
progress line goes to stderr; Ctrl-C stops early and still writes what was
simulated.

Examples:
  lbsys sim --scenario flash-sale --policies round_robin,least_request,peak_ewma,prequal --seed 1 --out sim-flash
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
			sc, err := loadScenario(scenario)
			if err != nil {
				return err
			}
			pols := sc.Policies
			if policies != "" {
				pols = nil
				for _, p := range strings.Split(policies, ",") {
					p = strings.TrimSpace(p)
					if _, ok := balance.Lookup(p); !ok {
						return usageError{fmt.Errorf("--policies: unknown policy %q: use %s", p, strings.Join(balance.Names(), ", "))}
					}
					pols = append(pols, p)
				}
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if os.Getenv("GOGC") == "" && gcPercent > 0 {
				// The simulator's own state is reused, but some policies
				// allocate per probe (prequal): a larger heap target
				// trades memory for fewer collections.
				debug.SetGCPercent(gcPercent)
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			prog := newSimProgress(cmd.ErrOrStderr(), sc.Name, pols, quiet)
			prog.start(ctx)
			base := sim.Options{
				Progress: prog.update,
				Stop:     func() bool { return ctx.Err() != nil },
			}
			started := time.Now()
			res, err := sim.RunAll(sc, pols, seed, parallel, base)
			prog.stop()
			if err != nil {
				return usageError{err}
			}
			wall := time.Since(started)
			if err := writeSimOutputs(out, res); err != nil {
				return err
			}
			var reqs, evs uint64
			for _, pr := range res.Policies {
				reqs += uint64(pr.Totals.Requests + pr.Totals.Unfinished)
				evs += pr.Totals.Events
			}
			if !quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "sim %s: %d policies, %.1fM simulated requests in %v (%.2fM req/s of wall time, %d parallel); wrote %s\n",
					sc.Name, len(pols), float64(reqs)/1e6, wall.Round(time.Millisecond), float64(reqs)/wall.Seconds()/1e6, parallel, out)
			}
			if ctx.Err() != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "sim: interrupted; the results cover the minutes simulated so far")
			}
			if format == "json" {
				return sim.WriteJSON(cmd.OutOrStdout(), res)
			}
			return sim.WriteMarkdown(cmd.OutOrStdout(), res, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scenario, "scenario", "", "scenario name or YAML file (required)")
	f.StringVar(&policies, "policies", "", "comma-separated balancing policies to compare (default: the scenario's, else round_robin,least_request,peak_ewma,prequal)")
	f.Uint64Var(&seed, "seed", 0, "random seed (default: the scenario's, else 1)")
	f.StringVar(&out, "out", "sim-out", "directory for report.md, results.json and the plots")
	f.StringVar(&format, "format", "md", "summary on stdout: md or json")
	f.IntVar(&parallel, "parallel", 1, "policies simulated at once (each run uses one core)")
	f.IntVar(&gcPercent, "gc-percent", 400, "Go GC target percentage (GOGC) unless GOGC is set in the environment")
	f.BoolVar(&quiet, "quiet", false, "no progress line")
	f.BoolVar(&list, "list", false, "list the embedded scenarios and exit")
	return cmd
}

// loadScenario reads a named (embedded) scenario or a file, and its trace.
func loadScenario(arg string) (*sim.Scenario, error) {
	var (
		data []byte
		name string
		dir  string
		err  error
	)
	if strings.ContainsAny(arg, `/\`) || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		data, err = os.ReadFile(arg)
		if err != nil {
			return nil, usageError{fmt.Errorf("--scenario: %w", err)}
		}
		name, dir = arg, filepath.Dir(arg)
	} else {
		data, err = scenarios.Read(arg)
		if err != nil {
			return nil, usageError{fmt.Errorf("--scenario: %w", err)}
		}
		name = "scenarios/" + arg + ".yaml"
	}
	sc, err := sim.ParseScenario(data, name)
	if err != nil {
		return nil, usageError{err}
	}
	if sc.NeedsTrace() != "" {
		if dir == "" {
			if dir, err = findScenariosDir(); err != nil {
				return nil, usageError{fmt.Errorf("scenario %s replays %s: %w", arg, sc.NeedsTrace(), err)}
			}
		}
		err = sc.LoadTrace(func(p string) ([]byte, error) {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			return os.ReadFile(p)
		})
		if err != nil {
			return nil, usageError{err}
		}
	}
	return sc, nil
}

// findScenariosDir looks for scenarios/ in the working directory and its
// parents (the repository checkout the embedded scenarios come from).
func findScenariosDir() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		c := filepath.Join(d, "scenarios")
		if st, err := os.Stat(filepath.Join(c, "scenarios.go")); err == nil && !st.IsDir() {
			return c, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("relative to scenarios/, which is not in the working directory or its parents: run from the repository, or pass the scenario as a file")
		}
		d = parent
	}
}

// writeSimOutputs writes results.json, the plots and report.md into dir.
func writeSimOutputs(dir string, res *sim.Results) error {
	var buf bytes.Buffer
	if err := sim.WriteJSON(&buf, res); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), buf.Bytes(), 0o644); err != nil {
		return err
	}
	var files []string
	for _, p := range sim.Plots(res) {
		buf.Reset()
		if err := p.Render(&buf); err != nil {
			return fmt.Errorf("plot %s: %w", p.File, err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.File), buf.Bytes(), 0o644); err != nil {
			return err
		}
		files = append(files, p.File)
	}
	buf.Reset()
	if err := sim.WriteMarkdown(&buf, res, files); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), buf.Bytes(), 0o644)
}

// simProgress prints one line per second with every policy's progress.
type simProgress struct {
	w        io.Writer
	scenario string
	order    []string
	quiet    bool
	mu       sync.Mutex
	last     map[string]sim.Progress
	began    time.Time
	done     chan struct{}
	wg       sync.WaitGroup
}

func newSimProgress(w io.Writer, scenario string, order []string, quiet bool) *simProgress {
	return &simProgress{w: w, scenario: scenario, order: order, quiet: quiet, last: map[string]sim.Progress{}, done: make(chan struct{})}
}

func (p *simProgress) update(pr sim.Progress) {
	p.mu.Lock()
	p.last[pr.Policy] = pr
	p.mu.Unlock()
}

func (p *simProgress) start(ctx context.Context) {
	p.began = time.Now()
	if p.quiet {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Fprintln(p.w, p.line())
			}
		}
	}()
}

func (p *simProgress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	var reqs uint64
	for _, name := range p.order {
		pr, ok := p.last[name]
		switch {
		case !ok:
			parts = append(parts, name+" waiting")
		case pr.Done:
			parts = append(parts, name+" done")
		default:
			parts = append(parts, fmt.Sprintf("%s %.0f%%", name, 100*pr.SimTime.Seconds()/pr.Duration.Seconds()))
		}
		reqs += pr.Requests
	}
	el := time.Since(p.began)
	return fmt.Sprintf("sim %s %s: %s; %.1fM requests, %.2fM/s", p.scenario, el.Round(time.Second), strings.Join(parts, ", "), float64(reqs)/1e6, float64(reqs)/el.Seconds()/1e6)
}

func (p *simProgress) stop() {
	close(p.done)
	p.wg.Wait()
}
