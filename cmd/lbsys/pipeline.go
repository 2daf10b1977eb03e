package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/pipeline"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/textutil"
)

func newPipelineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipeline",
		Short: "Run the forecasting pipeline on the store and push forecasts into it",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("name a subcommand: run; see --help")}
		},
	}
	cmd.AddCommand(newPipelineRunCmd())
	return cmd
}

// pipelineFlags are the flags of `lbsys pipeline run`.
type pipelineFlags struct {
	store, services, metric, window, until, horizons, report, data, holidays, format string
	budget, step                                                                     time.Duration
	seed                                                                             uint64
	gbdtTrials, lstmTrials                                                           int
	minGain                                                                          float64
	endpoints, noLSTM, quiet                                                         bool
	// The directive planner and the coordinator (#8).
	coordinator, tokenFile, loadUnit string
	observe                          time.Duration
	targetUtil                       float64
	dryRun                           bool
	// options, when set, adjusts the forecaster's options last (tests
	// make training cheap, or deliberately poor, with it).
	options func(*forecast.Options)
}

func newPipelineRunCmd() *cobra.Command { return newPipelineRunCmdWith(&pipelineFlags{}) }

// newPipelineRunCmdWith binds the flags to f (tests set f.options).
func newPipelineRunCmdWith(f *pipelineFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run --store FILE [flags]",
		Short: "Forecast every service's load from the store; push blessed forecasts into it",
		Long: `Run the forecasting pipeline (ExampleGen → StatisticsGen → SchemaGen →
ExampleValidator → Transform → Tuner → Trainer → Evaluator → Pusher) on the
embedded store that lbsys ingest fills.

ExampleGen reads, per service (and per endpoint with --endpoints), the
--metric series at the store's 1-minute resolution over --window, ending at
the newest point (or --until), with every exogenous input the store has: the
load of the services that call it (CMDB dependency graph: coupling), the
checkout/payment rate (transaction velocity), the session funnel (the
catalog → cart → checkout → payment request rates, their distribution
reduced by an SVD), open incidents and change
windows of the service and its direct dependencies (ITIL), and calendar
events by category. Absent inputs are simply absent. All series share one
grid: the coarsest native step among them, at least 1 minute.

Runs, artifacts, executions, the model serving each series and the lineage
are recorded in the store; artifact payloads live under --data (default
FILE.artifacts) and the small ones are copied into the store too. A component
whose code, parameters and inputs did not change is not run again: a second
run on unchanged data reuses everything up to the model.

A model is pushed for a series only when it beats the seasonal-naive forecast
at every horizon and the model serving the series now on the same test
windows. Pushed forecasts are written into the store per series and horizon:
the series (service, endpoint, METRIC_forecast_H) with the point forecast and
METRIC_forecast_H_upper with the upper band, and a "Forecast" artifact (point,
upper band, top drivers) linked to the series it was made from.

With --coordinator, the pushed forecasts also become a directive proposed to
the Gaia coordinator: per forecast service, admission seed and floor from
Little's law (upper-band peak rps × the observed p50 latency, with headroom),
a replica recommendation (upper-band peak ÷ the per-replica throughput the
endpoints demonstrated in the last --observe of telemetry, at
--target-utilisation), endpoint weights proportional to that throughput when
every endpoint has enough data, and why (run, model, forecast, drivers,
expected effect). It is proposed as a standard change (auto-approved inside
the coordinator's policy); outside the policy (a weight moving more than it
allows) it is proposed again as a normal change for an approver. An
unreachable coordinator fails the run and nothing is recorded as pushed.
--dry-run prints the planned directive instead, proposes nothing, writes no
forecasts and records nothing as pushed.

Exit codes: 0 the run succeeded (also when nothing was good enough to push),
1 the run failed, 2 bad usage or nothing to forecast.

Examples:
  lbsys pipeline run --store lbsys.db
  lbsys pipeline run --store lbsys.db --services cart,checkout --horizons 15m,1h --budget 30s --report out/
  lbsys pipeline run --store nasa.db --until 1995-07-28T00:00:00Z --window 14d --format json
  lbsys pipeline run --store lbsys.db --coordinator http://127.0.0.1:7101 --token-file pipeline.token
  lbsys pipeline run --store lbsys.db --dry-run [--coordinator http://127.0.0.1:7101]`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPipeline(cmd, *f)
		},
	}
	def := os.Getenv("LBSYS_STORE")
	if def == "" {
		def = "lbsys.db"
	}
	fl := cmd.Flags()
	fl.StringVar(&f.store, "store", def, "store file; default $LBSYS_STORE or lbsys.db")
	fl.StringVar(&f.services, "services", "", "comma-separated services to forecast (default: every service with a --metric series)")
	fl.BoolVar(&f.endpoints, "endpoints", false, "also forecast every endpoint of each service")
	fl.StringVar(&f.metric, "metric", pipeline.DefaultMetric, "the load metric to forecast")
	fl.StringVar(&f.window, "window", "14d", "history to learn from, ending at the newest point (e.g. 2w, 14d, 72h)")
	fl.StringVar(&f.until, "until", "", "end the window here instead (RFC 3339 or a date)")
	durationVar(fl, &f.step, "step", 0, "grid step (default: the coarsest native step of the series read, at least 1m)")
	fl.StringVar(&f.horizons, "horizons", "15m,1h", "comma-separated forecast horizons (e.g. 15m,1h,1d; d and w accepted)")
	durationVar(fl, &f.budget, "budget", 30*time.Second, "wall-clock budget of hyperparameter tuning (0: no tuning)")
	fl.IntVar(&f.gbdtTrials, "gbdt-trials", 16, "GBDT tuning trials")
	fl.IntVar(&f.lstmTrials, "lstm-trials", 6, "LSTM tuning trials")
	fl.BoolVar(&f.noLSTM, "no-lstm", false, "leave the LSTM out (faster)")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed (same seed and data, same forecast)")
	fl.StringVar(&f.holidays, "holidays", "us", "public holiday calendar: us, au or none")
	fl.Float64Var(&f.minGain, "min-gain", 0, "relative MASE improvement over seasonal naive a blessing needs")
	fl.StringVar(&f.data, "data", "", "artifact directory (default: the store file's name + .artifacts)")
	fl.StringVar(&f.report, "report", "", "write report.md, run.json, lineage.json and a PNG per pushed series here")
	fl.StringVar(&f.format, "format", "text", "output format: text or json")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	fl.StringVar(&f.coordinator, "coordinator", "", "propose the planned directive to this Gaia coordinator (URL[,URL]; any member)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file whose first line is the coordinator token, with the proposer role (default: $LBSYS_TOKEN, then $LBSYS_COORDINATOR_TOKEN)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the planned directive; propose nothing, write no forecasts, record nothing as pushed")
	durationVar(fl, &f.observe, "observe", pipeline.DefaultObserve, "telemetry the planner reads, back from its newest point")
	fl.Float64Var(&f.targetUtil, "target-utilisation", planner.DefaultTargetUtilisation,
		"share of each replica's demonstrated throughput the replica recommendation plans for at the upper-band peak (0 < u <= 1)")
	fl.StringVar(&f.loadUnit, "load-unit", pipeline.UnitAuto, "what the forecast metric's values are: auto (by the series' source), rps, or per-sample (requests per native sample)")
	return cmd
}

func parseHorizons(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, h := range strings.Split(s, ",") {
		d, err := textutil.ParseDuration(strings.TrimSpace(h))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--horizons: %q is not a positive duration such as 15m, 1h, 1d or 2w", h)
		}
		out = append(out, d)
	}
	return out, nil
}

func runPipeline(cmd *cobra.Command, f pipelineFlags) error {
	if f.format != "text" && f.format != "json" {
		return usageError{fmt.Errorf("--format %q: expected text or json", f.format)}
	}
	horizons, err := parseHorizons(f.horizons)
	if err != nil {
		return usageError{err}
	}
	window, err := parseSpan(f.window)
	if err != nil || window <= 0 {
		return usageError{fmt.Errorf("--window: %q: want a positive duration such as 14d or 72h", f.window)}
	}
	var until time.Time
	if f.until != "" {
		if until, err = parseInstant(f.until, time.Now()); err != nil {
			return usageError{fmt.Errorf("--until %w", err)}
		}
	}
	if f.step < 0 || f.step%time.Minute != 0 {
		return usageError{fmt.Errorf("--step %v: want whole minutes such as 1m or 5m", f.step)}
	}
	if f.budget < 0 {
		return usageError{fmt.Errorf("--budget %v: must not be negative", f.budget)}
	}
	if _, err := forecast.HolidaysByName(f.holidays); err != nil {
		return usageError{fmt.Errorf("--holidays: %w", err)}
	}
	if !(f.targetUtil > 0 && f.targetUtil <= 1) {
		return usageError{fmt.Errorf("--target-utilisation %v: want a share in (0, 1], e.g. 0.8", f.targetUtil)}
	}
	if f.observe <= 0 {
		return usageError{fmt.Errorf("--observe %v: want a positive duration such as 24h", f.observe)}
	}
	switch f.loadUnit {
	case pipeline.UnitAuto, pipeline.UnitRPS, pipeline.UnitPerSample:
	default:
		return usageError{fmt.Errorf("--load-unit %q: want auto, rps or per-sample", f.loadUnit)}
	}
	coord, err := coordinatorClient(f)
	if err != nil {
		return err
	}
	var services []string
	for _, s := range strings.Split(f.services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			services = append(services, s)
		}
	}
	if f.store == "" {
		return usageError{errors.New("--store is required")}
	}
	if _, err := os.Stat(f.store); err != nil {
		return usageError{fmt.Errorf("--store %s: %w (fill it with lbsys ingest first)", f.store, err)}
	}
	ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, f.store)
	if err != nil {
		return err
	}
	defer st.Close()
	dataDir := f.data
	if dataDir == "" {
		dataDir = f.store + ".artifacts"
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return usageError{fmt.Errorf("--data: %w", err)}
	}
	hmax := horizons[0]
	for _, h := range horizons {
		hmax = max(hmax, h)
	}
	params, _ := json.Marshal(map[string]any{"services": services, "endpoints": f.endpoints, "metric": f.metric, "window": f.window,
		"until": f.until, "horizons": f.horizons, "budget": f.budget.String(), "seed": f.seed, "no_lstm": f.noLSTM,
		"coordinator": f.coordinator != "", "dry_run": f.dryRun})
	run := &pipeline.StoreRun{
		Store: st, StorePath: f.store, Data: dataDir,
		Source: pipeline.StoreSource{Services: services, Endpoints: f.endpoints, Metric: f.metric, Window: window,
			Until: until, Lookahead: hmax, Step: f.step},
		Horizons: horizons, Budget: f.budget, MinGain: f.minGain,
		Options: forecast.Options{Seed: f.seed, Holidays: f.holidays, NoLSTM: f.noLSTM},
		Tune:    forecast.TuneOptions{GBDTTrials: f.gbdtTrials, LSTMTrials: f.lstmTrials},
		Params:  params, DryRun: f.dryRun, Observe: f.observe, LoadUnit: f.loadUnit,
		Planner: planner.Options{TargetUtilisation: f.targetUtil},
		Printer: pipeline.NewPrinter(cmd.ErrOrStderr(), f.quiet, f.gbdtTrials+f.lstmTrials),
	}
	if coord != nil {
		run.Coordinator = coord
	}
	if f.options != nil {
		f.options(&run.Options)
	}
	start := time.Now()
	summary, res, err := run.Run(ctx, pipeline.NewRunID(start), start)
	if errors.Is(err, pipeline.ErrNoSeries) {
		return usageError{err}
	}
	if err != nil {
		return err
	}
	if f.report != "" {
		if err := pipeline.WriteRunReport(f.report, summary, res); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	if f.format == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(summary)
	}
	_, err = io.WriteString(cmd.OutOrStdout(), summary.Text())
	return err
}

// coordinatorClient returns the Gaia client of --coordinator (nil without
// it), with the token of --token-file, $LBSYS_TOKEN or
// $LBSYS_COORDINATOR_TOKEN.
func coordinatorClient(f pipelineFlags) (*client.Client, error) {
	if f.coordinator == "" {
		if f.tokenFile != "" {
			return nil, usageError{errors.New("--token-file needs --coordinator")}
		}
		return nil, nil
	}
	urls, err := client.ParseURLs(f.coordinator)
	if err != nil {
		return nil, usageError{fmt.Errorf("--coordinator %w", err)}
	}
	if len(urls) == 0 {
		return nil, usageError{errors.New("--coordinator: give at least one URL")}
	}
	token, err := client.Token(f.tokenFile)
	if err != nil {
		return nil, usageError{fmt.Errorf("--token-file: %w", err)}
	}
	if token == "" {
		return nil, usageError{errors.New("--coordinator needs a token with the proposer role: pass --token-file or set LBSYS_TOKEN")}
	}
	return client.New(urls, token), nil
}
