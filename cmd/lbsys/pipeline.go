package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/pipeline"
	"github.com/lbsys/lbsys/internal/planner"
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
	fl.StringVar(&f.window, "window", "14d", "history to learn from, ending at the newest point (e.g. 14d, 72h)")
	fl.StringVar(&f.until, "until", "", "end the window here instead (RFC 3339 or a date)")
	fl.DurationVar(&f.step, "step", 0, "grid step (default: the coarsest native step of the series read, at least 1m)")
	fl.StringVar(&f.horizons, "horizons", "15m,1h", "comma-separated forecast horizons")
	fl.DurationVar(&f.budget, "budget", 30*time.Second, "wall-clock budget of hyperparameter tuning (0: no tuning)")
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
	fl.DurationVar(&f.observe, "observe", pipeline.DefaultObserve, "telemetry the planner reads, back from its newest point")
	fl.Float64Var(&f.targetUtil, "target-utilisation", planner.DefaultTargetUtilisation,
		"share of each replica's demonstrated throughput the replica recommendation plans for at the upper-band peak (0 < u <= 1)")
	fl.StringVar(&f.loadUnit, "load-unit", pipeline.UnitAuto, "what the forecast metric's values are: auto (by the series' source), rps, or per-sample (requests per native sample)")
	return cmd
}

// pipelineOutput is what `pipeline run` prints (--format json).
type pipelineOutput struct {
	Run        string             `json:"run"`
	Status     string             `json:"status"`
	Store      string             `json:"store"`
	Data       string             `json:"data"`
	From       time.Time          `json:"from"`
	To         time.Time          `json:"to"`
	Step       string             `json:"step"`
	Horizons   []string           `json:"horizons"`
	Series     []seriesOutput     `json:"series"`
	Executions []execOutput       `json:"executions"`
	Cached     int                `json:"cached"`
	Pushed     int                `json:"pushed"`
	Anomalies  []pipeline.Anomaly `json:"anomalies,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
	Seconds    float64            `json:"seconds"`
	// DryRun: nothing was written, pushed or proposed.
	DryRun bool `json:"dry_run,omitempty"`
	// Directive is what the directive planner did (with --coordinator or
	// --dry-run, when forecasts were pushed).
	Directive *pipeline.DirectiveResult `json:"directive,omitempty"`
}

type seriesOutput struct {
	Name     string `json:"name"`
	Service  string `json:"service"`
	Endpoint string `json:"endpoint,omitempty"`
	// Inputs are the exogenous inputs found in the store.
	Inputs   map[string]any `json:"inputs,omitempty"`
	Pushed   bool           `json:"pushed"`
	Reason   string         `json:"reason,omitempty"`
	Serving  string         `json:"serving_run,omitempty"`
	Artifact int64          `json:"forecast_artifact,omitempty"`
	// Horizons has the forecast (when pushed) and the test scores.
	Horizons []horizonOutput `json:"horizons,omitempty"`
}

type horizonOutput struct {
	Horizon string            `json:"horizon"`
	Steps   int               `json:"steps"`
	MASE    any               `json:"mase"`
	SNMASE  any               `json:"seasonal_naive_mase"`
	Origin  string            `json:"origin,omitempty"`
	Next    any               `json:"next,omitempty"`
	Peak    any               `json:"peak,omitempty"`
	Upper   any               `json:"upper_peak,omitempty"`
	Drivers []forecast.Driver `json:"drivers,omitempty"`
}

type execOutput struct {
	Component string  `json:"component"`
	State     string  `json:"state"` // ran, cached, failed
	Seconds   float64 `json:"seconds"`
}

func parseHorizons(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, h := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(h))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("--horizons: %q is not a positive duration such as 15m or 1h", h)
		}
		out = append(out, d)
	}
	return out, nil
}

func newRunID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
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
	src := &pipeline.StoreSource{Store: st, Services: services, Endpoints: f.endpoints, Metric: f.metric, Window: window,
		Until: until, Lookahead: hmax, Step: f.step}
	arts := &pipeline.Store{Dir: dataDir}
	params, _ := json.Marshal(map[string]any{"services": services, "endpoints": f.endpoints, "metric": f.metric, "window": f.window,
		"until": f.until, "horizons": f.horizons, "budget": f.budget.String(), "seed": f.seed, "no_lstm": f.noLSTM,
		"coordinator": f.coordinator != "", "dry_run": f.dryRun})
	md := &pipeline.StoreMetadata{Store: st, Payloads: arts, RunParams: params}
	arts.Fallback = md.Payload
	sink := &pipeline.StoreSink{Store: st, Source: src}
	// The store keeps the forecasts; with a coordinator they also become
	// a proposed directive (store first: see pipeline.FanOut). A dry run
	// only plans.
	var dsink *pipeline.DirectiveSink
	var out pipeline.Sink = sink
	if coord != nil || f.dryRun {
		dsink = &pipeline.DirectiveSink{Store: st, Source: src, DryRun: f.dryRun, Observe: f.observe, LoadUnit: f.loadUnit,
			Planner: planner.Options{TargetUtilisation: f.targetUtil}}
		if coord != nil {
			dsink.Coordinator = coord
		}
		out = pipeline.FanOut{sink, dsink}
		if f.dryRun {
			out = dsink
		}
	}
	prog := newProgress(cmd.ErrOrStderr(), f.quiet, f.gbdtTrials+f.lstmTrials)
	cfg := pipeline.Config{
		Source: src, Horizons: horizons, Budget: f.budget, MinGain: f.minGain, Sink: out,
		Options: forecast.Options{Seed: f.seed, Holidays: f.holidays, NoLSTM: f.noLSTM},
		Tune:    forecast.TuneOptions{GBDTTrials: f.gbdtTrials, LSTMTrials: f.lstmTrials},
		OnTrial: prog.trial,
	}
	if f.options != nil {
		f.options(&cfg.Options)
	}
	runner := &pipeline.Runner{Pipeline: "forecast", Store: arts, Metadata: md, Progress: prog.event}
	start := time.Now()
	runID := newRunID(start)
	comps := pipeline.Standard(cfg, arts, md)
	if f.dryRun {
		for i, c := range comps {
			if p, ok := c.(*pipeline.Pusher); ok {
				comps[i] = dryRunPusher{p}
			}
		}
	}
	res, err := runner.Run(ctx, runID, comps)
	prog.done()
	if err != nil {
		if errors.Is(err, pipeline.ErrNoSeries) {
			return usageError{err}
		}
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("run %s interrupted (recorded as failed): %w", runID, err)
		}
		return fmt.Errorf("run %s: %w", runID, err)
	}
	summary, err := pipelineSummary(ctx, res, src, sink, md)
	if err != nil {
		return err
	}
	summary.Store, summary.Data, summary.DryRun = f.store, dataDir, f.dryRun
	if dsink != nil {
		summary.Directive = dsink.Result()
	}
	return printPipeline(cmd, f, summary, res, start)
}

// printPipeline writes the report (if asked) and the summary.
func printPipeline(cmd *cobra.Command, f pipelineFlags, out *pipelineOutput, res *pipeline.Result, start time.Time) error {
	out.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	if f.report != "" {
		if err := writePipelineReport(f.report, out, res); err != nil {
			return fmt.Errorf("--report: %w", err)
		}
	}
	if f.format == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	_, err := io.WriteString(cmd.OutOrStdout(), pipelineText(out))
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
	var urls []string
	for _, u := range strings.Split(f.coordinator, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return nil, usageError{fmt.Errorf("--coordinator %q: want http://host:port", u)}
			}
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		return nil, usageError{errors.New("--coordinator: give at least one URL")}
	}
	token := ""
	switch {
	case f.tokenFile != "":
		t, err := readTokenFile(f.tokenFile)
		if err != nil {
			return nil, usageError{fmt.Errorf("--token-file: %w", err)}
		}
		token = t
	case os.Getenv("LBSYS_TOKEN") != "":
		token = strings.TrimSpace(os.Getenv("LBSYS_TOKEN"))
	default:
		token = strings.TrimSpace(os.Getenv("LBSYS_COORDINATOR_TOKEN"))
	}
	if token == "" {
		return nil, usageError{errors.New("--coordinator needs a token with the proposer role: pass --token-file or set LBSYS_TOKEN")}
	}
	return client.New(urls, token), nil
}

// dryRunPusher is the Pusher of a dry run: it hands the forecasts to the
// sink (which only plans) but records nothing as pushed, and its distinct
// parameters keep its execution from being reused by a real run (the
// runner would otherwise skip the real Pusher as cached).
type dryRunPusher struct{ *pipeline.Pusher }

// Params implements pipeline.Parameterized.
func (dryRunPusher) Params() any { return map[string]bool{"dry_run": true} }

// Uncached implements pipeline.Uncached: every dry run prints its plan.
func (dryRunPusher) Uncached() {}

// Commit implements pipeline.Committer.
func (p dryRunPusher) Commit(ctx context.Context, md pipeline.Metadata, runID string, in pipeline.Inputs, out map[string]*pipeline.Artifact) error {
	return p.Pusher.Commit(ctx, noPushRecord{md}, runID, in, out)
}

// noPushRecord is metadata that does not record pushes.
type noPushRecord struct{ pipeline.Metadata }

func (noPushRecord) SetPushed(context.Context, *pipeline.Pushed) error { return nil }

// pipelineSummary collects, per series, where it came from, whether it
// was pushed (or why not), its forecast and its test scores.
func pipelineSummary(ctx context.Context, res *pipeline.Result, src *pipeline.StoreSource, sink *pipeline.StoreSink,
	md pipeline.Metadata) (*pipelineOutput, error) {
	out := &pipelineOutput{Run: res.Run.ID, Status: res.Run.Status}
	for _, e := range res.Executions {
		state := "ran"
		switch {
		case e.Cached:
			state = "cached"
			out.Cached++
		case e.Status != "succeeded":
			state = "failed"
		}
		out.Executions = append(out.Executions, execOutput{Component: e.Component, State: state, Seconds: math.Round(e.Seconds*100) / 100})
	}
	g, err := pipeline.As[*pipeline.TransformGraph](res.Artifacts["transform"])
	if err != nil {
		return nil, err
	}
	out.Horizons = g.HorizonLabels
	out.Notes = append(out.Notes, g.Notes...)
	if an, err := pipeline.As[*pipeline.Anomalies](res.Artifacts["anomalies"]); err == nil {
		out.Anomalies = an.Items
	}
	fc, err := pipeline.As[*pipeline.Forecasts](res.Artifacts["forecasts"])
	if err != nil {
		return nil, err
	}
	ev, _ := pipeline.As[*pipeline.Evaluation](res.Artifacts["evaluation"])
	evals := map[string]forecast.SeriesEval{}
	if ev != nil {
		for _, s := range ev.Series {
			evals[s.Series] = s
		}
	}
	bl := &pipeline.Blessing{}
	if a := res.Artifacts["blessing"]; a != nil {
		if bl, err = pipeline.As[*pipeline.Blessing](a); err != nil {
			return nil, err
		}
	}
	model := res.Artifacts["model"]
	pushed := map[string]forecast.Forecast{}
	for _, x := range fc.Forecasts {
		pushed[x.Series] = x
	}
	arts := map[string]int64{}
	for _, d := range sink.Delivered() {
		arts[d.Series] = d.Artifact
	}
	for _, o := range src.Origins() {
		if out.From.IsZero() {
			out.From, out.To, out.Step = o.From, o.To, o.Step.String()
		}
		so := seriesOutput{Name: o.Name, Service: o.Service, Endpoint: o.Endpoint, Inputs: map[string]any{}}
		if len(o.Upstream) > 0 {
			so.Inputs["upstream"] = o.Upstream
		}
		if len(o.Transactions) > 0 {
			so.Inputs["transactions"] = o.Transactions
		}
		if len(o.Funnel) > 0 {
			so.Inputs["funnel"] = o.Funnel
		}
		for k, v := range map[string]int{"incidents": o.Incidents, "changes": o.Changes, "events": o.Events} {
			if v > 0 {
				so.Inputs[k] = v
			}
		}
		f, ok := pushed[o.Name]
		so.Pushed, so.Artifact = ok, arts[o.Name]
		if ok {
			out.Pushed++
		}
		serving, err := md.LatestPushed(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		if serving != nil {
			so.Serving = serving.RunID
		}
		b, blessed := bl.Series[o.Name]
		switch why, dropped := g.Dropped[o.Name]; {
		case dropped:
			so.Reason = "left out: " + why
		case ok:
		case serving != nil && model != nil && serving.ModelID == model.ID:
			so.Reason = "unchanged: this model serves it already"
		case blessed && !b.Blessed:
			so.Reason = "not blessed: " + strings.Join(b.Reasons, "; ")
		default:
			so.Reason = fc.NotPushed[o.Name]
		}
		se := evals[o.Name]
		for hi, l := range g.HorizonLabels {
			ho := horizonOutput{Horizon: l}
			if hi < len(se.Horizons) {
				he := se.Horizons[hi]
				ho.Steps = he.Steps
				ho.MASE, ho.SNMASE = num(he.Models[forecast.Ensemble].MASE), num(he.Models[forecast.SeasonalNaive].MASE)
			}
			if ok && hi < len(f.Horizons) {
				hf := f.Horizons[hi]
				ho.Steps, ho.Origin, ho.Drivers = hf.Steps, f.Origin.UTC().Format(time.RFC3339), hf.Drivers
				if len(hf.Point) > 0 {
					peak, upper := math.Inf(-1), math.Inf(-1)
					for i := range hf.Point {
						peak, upper = math.Max(peak, hf.Point[i]), math.Max(upper, hf.Upper[i])
					}
					ho.Next, ho.Peak, ho.Upper = num(hf.Point[0]), num(peak), num(upper)
				}
			}
			so.Horizons = append(so.Horizons, ho)
		}
		if len(so.Inputs) == 0 {
			so.Inputs = nil
		}
		out.Series = append(out.Series, so)
	}
	return out, nil
}

func fmtNum(v any) string {
	if x, ok := v.(float64); ok {
		return fmt.Sprintf("%.4g", x)
	}
	return "-"
}

func pipelineText(out *pipelineOutput) string {
	var b strings.Builder
	pushed := "pushed"
	if out.DryRun {
		pushed = "would be pushed (dry run)"
	}
	fmt.Fprintf(&b, "run %s %s in %.1fs: %d of %d components cached; %d of %d series %s\n", out.Run, out.Status, out.Seconds,
		out.Cached, len(out.Executions), out.Pushed, len(out.Series), pushed)
	fmt.Fprintf(&b, "window %s .. %s, step %s; store %s, artifacts %s\n", out.From.Format(time.DateTime), out.To.Format(time.DateTime),
		out.Step, out.Store, out.Data)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIES\tHORIZON\tMASE (SEASONAL NAIVE)\tNEXT\tPEAK\tUPPER PEAK\tTOP DRIVERS")
	for _, s := range out.Series {
		for _, h := range s.Horizons {
			var ds []string
			for _, d := range h.Drivers[:min(3, len(h.Drivers))] {
				ds = append(ds, fmt.Sprintf("%s %+.3g", d.Feature, d.Effect))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s\t%s\t%s\t%s\n", s.Name, h.Horizon, fmtNum(h.MASE), fmtNum(h.SNMASE), fmtNum(h.Next),
				fmtNum(h.Peak), fmtNum(h.Upper), strings.Join(ds, ", "))
		}
	}
	tw.Flush()
	for _, s := range out.Series {
		var in []string
		for _, k := range []string{"upstream", "transactions", "funnel", "incidents", "changes", "events"} {
			if v, ok := s.Inputs[k]; ok {
				in = append(in, fmt.Sprintf("%s %v", k, v))
			}
		}
		if len(in) == 0 {
			in = []string{"none"}
		}
		line := fmt.Sprintf("%s: inputs: %s", s.Name, strings.Join(in, "; "))
		switch {
		case s.Pushed && out.DryRun:
			line += "; blessed: would be pushed (dry run)"
		case s.Pushed:
			line += fmt.Sprintf("; pushed (forecast artifact %d)", s.Artifact)
		case s.Reason != "":
			line += "; not pushed: " + s.Reason
		}
		if s.Serving != "" && !s.Pushed {
			line += "; serving: the model of " + s.Serving
		}
		fmt.Fprintln(&b, line)
	}
	for _, a := range out.Anomalies {
		if a.Severity != "warning" {
			fmt.Fprintf(&b, "anomaly (%s): %s %s: %s\n", a.Severity, a.Series, a.Kind, a.Detail)
		}
	}
	for _, n := range out.Notes {
		fmt.Fprintln(&b, "note:", n)
	}
	if out.DryRun {
		fmt.Fprintln(&b, "dry run: no forecast written, nothing recorded as pushed, nothing proposed")
	}
	if out.Directive != nil {
		b.WriteString(directiveText(out.Directive))
	}
	return b.String()
}

// directiveText says what the directive planner planned and what the
// coordinator made of it; a dry run prints the directive.
func directiveText(r *pipeline.DirectiveResult) string {
	var b strings.Builder
	for _, p := range r.Plans {
		line := fmt.Sprintf("plan %s: upper-band peak %.4g rps at %s (point %.4g)", p.Service, p.UpperPeakRPS,
			p.UpperPeakAt.Format(time.RFC3339), p.PeakRPS)
		if p.P50ms > 0 {
			line += fmt.Sprintf(", p50 %.4g ms", p.P50ms)
		}
		if len(p.Planned) > 0 {
			line += "; planned " + strings.Join(p.Planned, ", ")
		} else {
			line += "; nothing planned"
		}
		fmt.Fprintln(&b, line)
		if p.Section != nil && p.Section.Why != nil {
			fmt.Fprintf(&b, "  why: %s\n", p.Section.Why.ExpectedEffect)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(&b, "  note: %s\n", n)
		}
	}
	switch {
	case r.Standard != nil && r.Normal != nil:
		fmt.Fprintf(&b, "directive: standard change %d was outside the coordinator's policy (%s); proposed as normal change %d, %s: approve with `lbsys change approve %d --reason ...`\n",
			r.Standard.ID, strings.Join(r.Standard.Policy, "; "), r.Normal.ID, r.Normal.State, r.Normal.ID)
	case r.Standard != nil:
		fmt.Fprintf(&b, "directive: standard change %d %s (%s) against version %d\n", r.Standard.ID, r.Outcome, r.Standard.State, r.Base)
		if r.Standard.Detail != "" {
			fmt.Fprintf(&b, "  %s\n", r.Standard.Detail)
		}
	default:
		fmt.Fprintf(&b, "directive: %s (against version %d)\n", r.Outcome, r.Base)
	}
	if len(r.Withdrawn) > 0 {
		fmt.Fprintf(&b, "directive: withdrew stale pipeline changes %v\n", r.Withdrawn)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "directive note: %s\n", n)
	}
	if r.DryRun && r.Directive != nil {
		j, _ := json.MarshalIndent(r.Directive, "", "  ")
		b.Write(j)
		b.WriteString("\n")
	}
	return b.String()
}

// writePipelineReport writes report.md, run.json, lineage.json and, per
// pushed series, a PNG of its recent load with the forecast paths.
func writePipelineReport(dir string, out *pipelineOutput, res *pipeline.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Pipeline run " + out.Run + "\n\n```\n" + pipelineText(out) + "```\n\n")
	b.WriteString("## Executions\n\n| component | state | seconds |\n|---|---|---|\n")
	for _, e := range out.Executions {
		fmt.Fprintf(&b, "| %s | %s | %.2f |\n", e.Component, e.State, e.Seconds)
	}
	fc, _ := pipeline.As[*pipeline.Forecasts](res.Artifacts["forecasts"])
	tx, _ := pipeline.As[*pipeline.Transformed](res.Artifacts["transformed"])
	if fc != nil && tx != nil && len(fc.Forecasts) > 0 {
		b.WriteString("\n## Forecasts\n\nThe last day of load and the pushed forecast paths (dashed: upper band).\n")
		for _, f := range fc.Forecasts {
			var s *forecast.Series
			for _, in := range tx.Inputs {
				if in.Series.Name == f.Series {
					s = in.Series
				}
			}
			if s == nil {
				continue
			}
			name := "forecast_" + strings.NewReplacer("/", "_", ":", "_").Replace(f.Series) + ".png"
			if err := plotForecast(filepath.Join(dir, name), s, f, fc.HorizonLabels); err != nil {
				return err
			}
			fmt.Fprintf(&b, "\n### %s\n\n![%s](%s)\n", f.Series, f.Series, name)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := writeJSONFile(filepath.Join(dir, "run.json"), out); err != nil {
		return err
	}
	return writeJSONFile(filepath.Join(dir, "lineage.json"), res.Executions)
}

// plotForecast draws the series' last day and each horizon's point
// forecast and upper band against hours from the plot's start.
func plotForecast(path string, s *forecast.Series, f forecast.Forecast, labels []string) error {
	p := plot.New()
	p.Title.Text = f.Series + ": forecast from " + f.Origin.UTC().Format("2006-01-02 15:04") + " UTC"
	n := min(s.Len(), max(1, int(24*time.Hour/s.Step)))
	from := s.Len() - n
	start := s.Time(from)
	p.X.Label.Text = "hours after " + start.Format("2006-01-02 15:04")
	p.Y.Label.Text = "load per step"
	hours := func(t time.Time) float64 { return t.Sub(start).Hours() }
	add := func(pts plotter.XYs, c color.Color, dashed bool, name string) error {
		if len(pts) == 0 {
			return nil
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = c, vg.Points(1)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	var actual plotter.XYs
	for i := from; i < s.Len(); i++ {
		if v := s.Values[i]; !math.IsNaN(v) {
			actual = append(actual, plotter.XY{X: hours(s.Time(i)), Y: v})
		}
	}
	if err := add(actual, color.RGBA{60, 60, 60, 255}, false, "actual"); err != nil {
		return err
	}
	palette := []color.RGBA{{20, 100, 220, 255}, {220, 60, 40, 255}, {30, 150, 70, 255}, {150, 60, 180, 255}}
	// Longest horizon first, so the shorter paths are drawn over it.
	order := make([]int, len(f.Horizons))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.Horizons[order[a]].Steps > f.Horizons[order[b]].Steps })
	for _, hi := range order {
		hf := f.Horizons[hi]
		var pt, up plotter.XYs
		for i, ts := range hf.Times {
			t, err := time.Parse(time.RFC3339, ts)
			if err != nil {
				return err
			}
			pt = append(pt, plotter.XY{X: hours(t), Y: hf.Point[i]})
			up = append(up, plotter.XY{X: hours(t), Y: hf.Upper[i]})
		}
		l := fmt.Sprint(hf.Steps, " steps")
		if hi < len(labels) {
			l = labels[hi]
		}
		c := palette[hi%len(palette)]
		if err := add(pt, c, false, "forecast "+l); err != nil {
			return err
		}
		if err := add(up, c, true, "upper "+l); err != nil {
			return err
		}
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	return p.Save(12*vg.Inch, 4*vg.Inch, path)
}
