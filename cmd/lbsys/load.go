package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/loadgen"
)

func newLoadCmd() *cobra.Command {
	var (
		target, ramp, tracePath, traceStart, valueCol, timeCol string
		rate, speed, peakRPS                                   float64
		flashSales                                             []string
		duration, think, abandonAfter, timeout, lateAfter      time.Duration
		drain, coalesce                                        time.Duration
		arrivals, mode, mix, funnel, thinkDist, format         string
		timeline                                               string
		seed                                                   uint64
		maxInflight, maxSessions, products, checkoutRetries    int
		quiet                                                  bool
		maxErrorRate                                           = percentValue(5)
		gcPercent                                              int
		cpuProfile                                             string
	)
	cmd := &cobra.Command{
		Use:   "load --duration D (--rate R | --ramp A:B | --trace FILE) [flags]",
		Short: "Drive the demo shop with open-loop load (constant, ramp, trace replay, flash sale)",
		Long: `Send load to a loopback target at the times an arrival schedule says, whatever
the responses do (open loop), and measure every request's latency from its
scheduled send time, so a slow target cannot hide behind a slowed-down
generator. If the generator itself falls behind, the late count and the max
lag say so.

Rate (exactly one): --rate R (requests/s), --ramp A:B (linear from A to B
over the duration), or --trace FILE (replay a CSV demand trace: --speed
compresses time, 600 = one trace minute in 0.1 s; --peak-rps maps the
trace's maximum over the replayed span to this rate, otherwise the trace's
own counts are replayed, compressed; values are interpolated between rows and
across gaps of at most 2 steps, longer gaps hold the last value and are
counted). --flash-sale at=60s,for=120s,x=8,rise=10s[,fall=5s] multiplies
the rate during a window (repeatable).

Modes: --mode sessions (default): arrivals are visitors walking the funnel
browse → product → cart → checkout (payment happens inside checkout), with
--funnel giving the fraction of sessions reaching each step, think times
between steps, the shop_session cookie carried like a browser, and an
Idempotency-Key on checkout, retried with the same key when it fails. --rate
still means requests per second: sessions start at rate / (expected requests
per session). Think times are not scaled by --speed. A session that gets an
error, or waits longer than --abandon-after for a response, is abandoned.
--mode requests: independent requests from the weighted --mix.

Durations take Go's units and days and weeks (90s, 2m, 1d = 24h).

Errors are requests that got a 4xx or 5xx, no response (connect, timeout,
reset) or no in-flight slot (dropped); the summary lists the most frequent
with the proxy's or the shop's reason (X-Lbsys-Error, X-Shop-Error). When
more than --max-error-rate of the requests that ended failed (default 5%),
lbsys load exits 1 after the summary, naming the rate and the top errors.

Only loopback targets (127.0.0.0/8, ::1) are accepted; anything else exits 2.
A live line per second goes to stderr; the summary to stdout (text or
--format json); --timeline writes one CSV row per second. Ctrl-C stops early
and still prints the summary.

Examples:
  lbsys load --target http://127.0.0.1:8080 --duration 60s --rate 500
  lbsys load --duration 2m --ramp 100:2000 --mode requests --format json
  lbsys load --duration 60s --trace testdata/traces/nasa_http_1995_07_1min.csv \
      --speed 600 --peak-rps 2000 --trace-start "1995-07-06 00:00:00"
  lbsys load --duration 3m --rate 300 --flash-sale at=60s,for=60s,x=8,rise=10s \
      --timeline flash.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if duration <= 0 {
				return usageError{errors.New("--duration is required (e.g. --duration 60s)")}
			}
			if duration > loadgen.MaxDuration {
				return usageError{fmt.Errorf("--duration %v: at most %v", duration, loadgen.MaxDuration)}
			}
			sources := 0
			for _, n := range []string{"rate", "ramp", "trace"} {
				if f.Changed(n) {
					sources++
				}
			}
			if sources != 1 {
				return usageError{errors.New("give exactly one of --rate, --ramp or --trace")}
			}
			if tracePath == "" {
				for _, n := range []string{"speed", "peak-rps", "trace-start", "value-col", "time-col"} {
					if f.Changed(n) {
						return usageError{fmt.Errorf("--%s only applies with --trace", n)}
					}
				}
			}
			var r loadgen.Rate
			switch {
			case f.Changed("rate"):
				if rate < 0 {
					return usageError{fmt.Errorf("--rate %g: must be >= 0", rate)}
				}
				r = loadgen.Constant(rate)
			case f.Changed("ramp"):
				rp, err := loadgen.ParseRamp(ramp, duration)
				if err != nil {
					return usageError{fmt.Errorf("--ramp: %w", err)}
				}
				r = rp
			default:
				tr, err := loadgen.LoadTrace(tracePath, loadgen.TraceOptions{TimeCol: timeCol, ValueCol: valueCol})
				if err != nil {
					return usageError{fmt.Errorf("--trace: %w", err)}
				}
				rep := loadgen.TraceReplay{Speed: speed, PeakRPS: peakRPS, Span: duration}
				if traceStart != "" {
					if rep.Start, err = loadgen.ParseTraceTime(traceStart); err != nil {
						return usageError{fmt.Errorf("--trace-start: %w", err)}
					}
				}
				tr8, err := loadgen.NewTraceRate(tr, rep)
				if err != nil {
					return usageError{fmt.Errorf("--trace: %w", err)}
				}
				r = tr8
			}
			for _, fs := range flashSales {
				s, err := loadgen.ParseFlashSale(fs, r)
				if err != nil {
					return usageError{fmt.Errorf("--flash-sale: %w", err)}
				}
				r = s
			}
			cfg := loadgen.Config{
				Target: target, Duration: duration, Rate: r, Seed: seed,
				Think: think, AbandonAfter: abandonAfter, Timeout: timeout,
				MaxInflight: maxInflight, MaxSessions: maxSessions, Products: products,
				LateAfter: lateAfter, Drain: drain, Coalesce: coalesce,
				CheckoutRetries: checkoutRetries,
			}
			if checkoutRetries == 0 {
				cfg.CheckoutRetries = -1 // the flag's 0 means none; Config's 0 means the default
			}
			var err error
			if cfg.Arrivals, err = loadgen.ParseArrivalProcess(arrivals); err != nil {
				return usageError{fmt.Errorf("--arrivals: %w", err)}
			}
			if cfg.Mode, err = loadgen.ParseMode(mode); err != nil {
				return usageError{fmt.Errorf("--mode: %w", err)}
			}
			if cfg.ThinkDist, err = loadgen.ParseThinkDist(thinkDist); err != nil {
				return usageError{fmt.Errorf("--think-dist: %w", err)}
			}
			if f.Changed("mix") {
				if cfg.Mix, err = loadgen.ParseMix(mix); err != nil {
					return usageError{fmt.Errorf("--mix: %w", err)}
				}
			}
			if f.Changed("funnel") {
				if cfg.Funnel, err = loadgen.ParseFunnel(funnel); err != nil {
					return usageError{fmt.Errorf("--funnel: %w", err)}
				}
			}
			if think == 0 {
				cfg.Think = -1 // --think 0: no think time (Config's 0 means the default)
			}
			if format != "text" && format != "json" {
				return usageError{fmt.Errorf("--format %q: use text or json", format)}
			}
			if think < 0 || abandonAfter < 0 || timeout < 0 || lateAfter < 0 || drain < 0 || coalesce < 0 {
				return usageError{errors.New("durations must not be negative")}
			}

			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			// Check the target before anything else: a wrong target is a
			// usage error (exit 2), never a run.
			if _, err := loadgen.ResolveTarget(ctx, target); err != nil {
				return usageError{fmt.Errorf("--target: %w", err)}
			}

			var tl *csv.Writer
			if timeline != "" {
				fh, err := os.Create(timeline)
				if err != nil {
					return usageError{fmt.Errorf("--timeline: %w", err)}
				}
				defer fh.Close()
				tl = csv.NewWriter(fh)
				tl.Write(loadgen.TimelineHeader)
				tl.Flush()
			}
			// Like the proxy, the generator allocates a little per request
			// with a small live heap: a higher GC target saves CPU, which
			// is what decides the highest rate one core sustains.
			if os.Getenv("GOGC") == "" && gcPercent > 0 {
				debug.SetGCPercent(gcPercent)
			}

			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return usageError{fmt.Errorf("--cpuprofile: %w", err)}
				}
				if err := pprof.StartCPUProfile(pf); err != nil {
					return err
				}
				defer func() { pprof.StopCPUProfile(); pf.Close() }()
			}

			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			stderr := cmd.ErrOrStderr()
			progress := func(s loadgen.Second) {
				if !quiet {
					fmt.Fprintln(stderr, s.Line())
				}
				if tl != nil {
					tl.Write(s.CSV())
					tl.Flush()
				}
			}
			sum, err := loadgen.Run(ctx, cfg, progress)
			if err != nil {
				return usageError{err}
			}
			if tl != nil {
				if err := tl.Error(); err != nil {
					fmt.Fprintf(stderr, "lbsys: --timeline: %v\n", err)
				}
			}
			if err := writeSummary(cmd.OutOrStdout(), sum, format); err != nil {
				return err
			}
			// A run that mostly failed measured the failures, not the
			// target: exit 1 so that scripts and CI notice (issue #16:
			// 24% of requests failed, exit 0).
			return sum.CheckErrorRate(float64(maxErrorRate) / 100)
		},
	}
	f := cmd.Flags()
	f.StringVar(&target, "target", "http://127.0.0.1:8080", "base URL of the target (loopback only: 127.0.0.0/8 or ::1)")
	durationVar(f, &duration, "duration", 0, "how long to schedule arrivals (required, at most 24h)")
	f.Float64Var(&rate, "rate", 0, "constant rate, requests per second")
	f.StringVar(&ramp, "ramp", "", "linear ramp FROM:TO requests per second over the duration, e.g. 100:2000")
	f.StringVar(&tracePath, "trace", "", "replay a demand trace CSV, e.g. testdata/traces/nasa_http_1995_07_1min.csv")
	f.Float64Var(&speed, "speed", 1, "trace time per wall time (600: one trace minute in 0.1 s)")
	f.Float64Var(&peakRPS, "peak-rps", 0, "scale the trace so its maximum over the replayed span is this rate (0: replay its own counts per step, compressed)")
	f.StringVar(&traceStart, "trace-start", "", `trace time replayed first, e.g. "1995-07-06 00:00:00" (default: the first row)`)
	f.StringVar(&valueCol, "value-col", "requests", "trace column with the demand per step")
	f.StringVar(&timeCol, "time-col", "timestamp", "trace column with the timestamps")
	f.StringArrayVar(&flashSales, "flash-sale", nil, "multiply the rate in a window: at=60s,for=120s,x=8[,rise=10s][,fall=0s] (repeatable)")
	f.StringVar(&arrivals, "arrivals", "poisson", "arrival process: poisson (thinning, seeded) or uniform")
	f.Uint64Var(&seed, "seed", 1, "seed of the arrival schedule and of the sessions' choices")
	f.StringVar(&mode, "mode", "sessions", "sessions (arrivals start funnel sessions) or requests (independent requests from --mix)")
	f.StringVar(&mix, "mix", "catalog=30,product=30,search=10,cart=10,cart_add=5,inventory=15", "requests mode: endpoint weights")
	f.StringVar(&funnel, "funnel", "browse=1,product=0.6,cart=0.3,checkout=0.1", "sessions mode: fraction of all sessions reaching each step")
	durationVar(f, &think, "think", time.Second, "sessions mode: mean think time between steps (0: none; not scaled by --speed)")
	f.StringVar(&thinkDist, "think-dist", "lognormal", "think-time distribution: lognormal (sigma 1) or exponential")
	durationVar(f, &abandonAfter, "abandon-after", 5*time.Second, "sessions mode: a session waiting longer than this for a response is abandoned")
	f.IntVar(&checkoutRetries, "checkout-retries", 2, "sessions mode: retries of a failed checkout with the same Idempotency-Key")
	durationVar(f, &timeout, "timeout", 10*time.Second, "per-request timeout, connecting included")
	f.IntVar(&maxInflight, "max-inflight", 10000, "most requests (and connections) in flight; an arrival beyond it is dropped and counted")
	f.IntVar(&maxSessions, "max-sessions", 100000, "sessions mode: most live sessions; a start beyond it is dropped and counted")
	f.IntVar(&products, "products", 200, "number of products in the shop (ids p0001..)")
	durationVar(f, &lateAfter, "late-after", 5*time.Millisecond, "a send further behind schedule than this counts as late")
	durationVar(f, &drain, "drain", 0, "time requests in flight at the end may still finish (default: the timeout, at most 5s; 1s after Ctrl-C)")
	durationVar(f, &coalesce, "coalesce", loadgen.DefaultCoalesce, "send arrivals due within this window together (up to this early); larger saves CPU at very high rates (e.g. 250us); at most 10ms")
	f.StringVar(&format, "format", "text", "summary format on stdout: text or json")
	f.StringVar(&timeline, "timeline", "", "write a per-second CSV timeline to this file")
	f.BoolVar(&quiet, "quiet", false, "no live line on stderr")
	f.Var(&maxErrorRate, "max-error-rate", "exit 1 (after the summary) when more than this percentage of the requests that ended failed, e.g. 5 or 0.5% (0: never)")
	f.IntVar(&gcPercent, "gc-percent", 400, "Go GC target percentage (GOGC) unless GOGC is set in the environment")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (for performance work)")
	return cmd
}

func writeSummary(w io.Writer, sum loadgen.Summary, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	return sum.WriteText(w)
}

// percentValue is a percentage flag: "5", "5%" or "0.5%", 0 to 100.
type percentValue float64

// Set implements pflag.Value.
func (p *percentValue) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
		return fmt.Errorf("%q is not a percentage from 0 to 100 (e.g. 5 or 0.5%%)", s)
	}
	*p = percentValue(v)
	return nil
}

// Type implements pflag.Value.
func (p *percentValue) Type() string { return "percent" }

// String implements pflag.Value.
func (p *percentValue) String() string { return strconv.FormatFloat(float64(*p), 'f', -1, 64) + "%" }
