package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/liveloop"
	"github.com/lbsys/lbsys/internal/scaler"
)

// controllerFlags are the raw flag values of `lbsys controller`.
type controllerFlags struct {
	coordinator, tokenFile string
	proxyAdmin             string
	store, history         string
	window, metric         string
	loadUnit               string
	calendars              string
	eventCats              []string
	services               string
	every                  time.Duration
	control                string
	retrainEvery           time.Duration
	fleet, fleetTokenFile  string
	loadReportPath         string
	minReplicas            int
	maxReplicas            int
	targetUtil, tolerance  float64
	eventConfidence        float64
	startup                time.Duration
	noLSTM                 bool
	seed                   uint64
	holidays               string
	timeFactor             float64
	start                  time.Time
	dryRun                 bool
	logLevel               string
}

// The predictive controllers' risk on announced events, shared by
// `lbsys controller`, `lbsys sim` and `lbsys demo`.
const (
	defaultEventConfidence = forecast.DefaultEventConfidence
	eventConfidenceUsage   = "probability that an announced event is no larger than the floors plan for, learned from the past events of its category: lower plans smaller, cheaper floors that the largest events outgrow (0.5–0.999)"
)

// liveControls are the controllers `lbsys controller --control` runs: the
// oracle needs the future, and reactive control is no controller at all.
var liveControls = []string{"predictive", "holt_winters", "hourly"}

func newControllerCmd() *cobra.Command {
	var f controllerFlags
	cmd := &cobra.Command{
		Use:   "controller --coordinator URL --proxy-admin URL[,URL...] (--store lbsys.db | --history history.csv) --services a,b [flags]",
		Short: "Run the forecast-driven controller: every minute, plan replica floors and admission bounds and propose them to the coordinator",
		Long: `Run lbsys's controller as its own process, for a real deployment (the demo
runs the same loop in process).

At start it trains the forecaster on the history of each --services service
(the store as lbsys pipeline run reads it, --window back from its newest
point; or a CSV with a timestamp column and one column per service) and
learns each announced event category's uplift from the past events of the
calendars (--calendar .ics files, and those ingested into the store). Then,
every --every (one minute), it reads each proxy's per-second telemetry from
its admin listener (GET /telemetry on every --proxy-admin, summed), the
fleet's state, and plans: replica floors ready before announced events and
forecast peaks (internal/scaler), admission bounds and weights
(internal/planner). A plan that changes what proxies or autoscalers would do
is proposed to the coordinator as a standard change (no canary, planned on
the stable version it saw); each service's decision and its reason are
logged at info. The forecaster is retrained on everything seen every
--retrain-every.

Fleet: with --fleet URL|FILE the replicas ready, starting and waiting, their
utilisation and startups come from a JSON document the autoscaler's side
publishes (docs/controller.md). Without it, ready replicas are the
endpoints the proxies find available, utilisation comes from each
endpoint's load report (GET --load-report-path, lbsys shop's
/_shop/stats), and nothing is known of starting replicas or startups
(--startup is assumed). Without utilisation no replica capacity is learned
and no floor is set: the decisions say so.

Tokens: the coordinator token (--token-file, else $LBSYS_TOKEN, else
$LBSYS_COORDINATOR_TOKEN) needs the proposer role.

--time-factor runs on compressed time (rehearsals, tests): the history and
the calendar are on a virtual clock that starts at --start and runs that
many times faster than the wall clock; rates stay per wall second.

SIGINT or SIGTERM stops it after the current plan. Exit codes: 0 stopped by
a signal, 1 a failure (a proxy or the coordinator unreachable at start), 2
bad flags, files or tokens.

Examples:
  lbsys controller --coordinator http://127.0.0.1:7101 --token-file controller.token \
    --proxy-admin http://127.0.0.1:9901 --store lbsys.db --calendar marketing.ics \
    --services catalog,cart,checkout,payment,inventory
  lbsys controller --dry-run --proxy-admin http://127.0.0.1:9901 --history history.csv \
    --load-unit rps --calendar sales.ics --services catalog`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runController(cmd, f)
		},
	}
	def := os.Getenv("LBSYS_STORE")
	fl := cmd.Flags()
	fl.StringVar(&f.coordinator, "coordinator", "", "the Gaia coordinator, URL[,URL] (any member); required unless --dry-run")
	fl.StringVar(&f.tokenFile, "token-file", "", "file whose first line is the coordinator token, with the proposer role (default: $LBSYS_TOKEN, then $LBSYS_COORDINATOR_TOKEN)")
	fl.StringVar(&f.proxyAdmin, "proxy-admin", "", "every proxy's admin listener, URL[,URL...] (e.g. http://127.0.0.1:9901); required")
	fl.StringVar(&f.store, "store", def, "the store to train on (lbsys ingest fills it); default $LBSYS_STORE")
	fl.StringVar(&f.history, "history", "", "a CSV to train on instead of the store: a timestamp column and one column per service")
	fl.StringVar(&f.window, "window", "14d", "with --store: history to train on, back from its newest point (e.g. 2w, 14d, 72h)")
	fl.StringVar(&f.metric, "metric", "requests", "with --store: the load metric")
	fl.StringVar(&f.loadUnit, "load-unit", liveloop.UnitAuto, "what the history's values are: auto (store: by the series' source; CSV: per row), rps, or per-sample (requests per native sample)")
	fl.StringVar(&f.calendars, "calendar", "", "iCalendar files of announced events (sales, launches), comma-separated")
	fl.StringSliceVar(&f.eventCats, "event-category", nil, "category of calendar events without CATEGORIES (default \"event\"; repeatable)")
	fl.StringVar(&f.services, "services", "", "comma-separated services to control, as the proxies name them (required)")
	durationVar(fl, &f.every, "every", time.Minute, "the controller's step: how often it observes and plans (whole minutes)")
	fl.StringVar(&f.control, "control", "predictive", "controller: "+strings.Join(liveControls, ", "))
	durationVar(fl, &f.retrainEvery, "retrain-every", 24*time.Hour, "retrain the forecaster on everything seen this often (0: never)")
	fl.StringVar(&f.fleet, "fleet", "", "the fleet's state: URL or file of the fleet document (docs/controller.md); default: the proxies' available endpoints and the replicas' load reports")
	fl.StringVar(&f.fleetTokenFile, "fleet-token-file", "", "file whose first line is a bearer token sent with a --fleet URL")
	fl.StringVar(&f.loadReportPath, "load-report-path", liveloop.DefaultLoadReportPath, "path of each endpoint's load report (busy_seconds, workers) read for utilisation; \"\" reads none")
	fl.IntVar(&f.minReplicas, "min-replicas", 1, "the autoscaler's minimum replicas per service (a floor below it is not set)")
	fl.IntVar(&f.maxReplicas, "max-replicas", 0, "the autoscaler's maximum replicas per service (0: none); floors are capped at it")
	fl.Float64Var(&f.targetUtil, "target-utilisation", 0.6, "the autoscaler's target utilisation, which floors plan for (0 < u <= 1)")
	fl.Float64Var(&f.tolerance, "tolerance", 0.1, "the autoscaler's tolerance around its target")
	fl.Float64Var(&f.eventConfidence, "event-confidence", defaultEventConfidence, eventConfidenceUsage)
	durationVar(fl, &f.startup, "startup", 3*time.Minute, "how long a new replica takes to become ready, until startups are observed")
	fl.BoolVar(&f.noLSTM, "no-lstm", false, "leave the LSTM out of the forecaster (faster training)")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed of the training")
	fl.StringVar(&f.holidays, "holidays", "us", "public holiday calendar: us, au or none")
	fl.Float64Var(&f.timeFactor, "time-factor", 1, "compressed time: virtual seconds per wall second (1: real time)")
	fl.Var(&timeFlag{&f.start}, "start", "with --time-factor: the virtual time the run starts at (default: the end of the history)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "propose nothing: print each planned directive as JSON on stdout")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// check validates the flags that need no I/O.
func (f *controllerFlags) check() error {
	switch {
	case f.coordinator == "" && !f.dryRun:
		return errors.New("--coordinator is required: the Gaia coordinator's URL (e.g. http://127.0.0.1:7101); or --dry-run to print the plans instead")
	case f.coordinator != "" && f.dryRun:
		return errors.New("--dry-run proposes nothing: leave --coordinator out")
	case len(splitList(f.proxyAdmin)) == 0:
		return errors.New("--proxy-admin is required: each proxy's admin listener, e.g. http://127.0.0.1:9901 (admin.listen in its configuration)")
	case len(splitList(f.services)) == 0:
		return errors.New("--services is required: the services to control, comma-separated, as the proxies name them")
	case (f.store == "") == (f.history == ""):
		return errors.New("give the history to train on: --store lbsys.db (filled by lbsys ingest) or --history file.csv, not both")
	case f.every < time.Minute || f.every%time.Minute != 0:
		return fmt.Errorf("--every %v: want whole minutes such as 1m or 5m", f.every)
	case !(f.targetUtil > 0 && f.targetUtil <= 1):
		return fmt.Errorf("--target-utilisation %v: want a share in (0, 1], e.g. 0.6", f.targetUtil)
	case !(f.tolerance >= 0 && f.tolerance < 1):
		return fmt.Errorf("--tolerance %v: want a share in [0, 1), e.g. 0.1", f.tolerance)
	case f.minReplicas < 0 || f.maxReplicas < 0 || (f.maxReplicas > 0 && f.maxReplicas < f.minReplicas):
		return fmt.Errorf("--min-replicas %d --max-replicas %d: want 0 <= min <= max (max 0: none)", f.minReplicas, f.maxReplicas)
	case f.startup <= 0:
		return fmt.Errorf("--startup %v: want a positive duration such as 3m", f.startup)
	case !(f.timeFactor > 0) || math.IsInf(f.timeFactor, 0):
		return fmt.Errorf("--time-factor %v: want a positive number (1: real time)", f.timeFactor)
	case !f.start.IsZero() && f.timeFactor == 1:
		return errors.New("--start needs --time-factor: in real time the run starts now")
	case f.fleetTokenFile != "" && !strings.HasPrefix(f.fleet, "http://") && !strings.HasPrefix(f.fleet, "https://"):
		return errors.New("--fleet-token-file needs a --fleet URL (http:// or https://)")
	}
	if err := forecast.CheckEventConfidence(f.eventConfidence); err != nil {
		return fmt.Errorf("--event-confidence: %w", err)
	}
	if _, err := forecast.HolidaysByName(f.holidays); err != nil {
		return fmt.Errorf("--holidays: %w", err)
	}
	switch f.loadUnit {
	case liveloop.UnitAuto, liveloop.UnitRPS, liveloop.UnitPerSample:
	default:
		return fmt.Errorf("--load-unit %q: want auto, rps or per-sample", f.loadUnit)
	}
	known := false
	for _, c := range liveControls {
		known = known || c == f.control
	}
	if !known {
		hint := ""
		switch f.control {
		case "oracle":
			hint = " (the oracle reads the future: lbsys sim only)"
		case "reactive":
			hint = " (reactive control is the autoscaler alone: run no controller)"
		}
		return fmt.Errorf("--control %q: use one of %s%s", f.control, strings.Join(liveControls, ", "), hint)
	}
	for _, u := range splitList(f.proxyAdmin) {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("--proxy-admin %q: want http://host:port", u)
		}
	}
	return nil
}

// readHistory reads the history the controller trains on, ending where the
// run starts at the latest.
func (f *controllerFlags) readHistory(ctx context.Context, services []string) (*liveloop.History, error) {
	if f.history != "" {
		h, err := liveloop.CSVHistory{Path: f.history, Services: services, Step: f.every, Unit: f.loadUnit}.Read()
		if err != nil {
			return nil, usageError{fmt.Errorf("--history %s: %w", f.history, err)}
		}
		return h, nil
	}
	if _, err := os.Stat(f.store); err != nil {
		return nil, usageError{fmt.Errorf("--store %s: %w (fill it with lbsys ingest first)", f.store, err)}
	}
	window, err := parseSpan(f.window)
	if err != nil || window <= 0 {
		return nil, usageError{fmt.Errorf("--window %q: want a positive duration such as 14d, 2w or 72h", f.window)}
	}
	st, err := openStore(ctx, f.store)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	h, err := liveloop.StoreHistory{Store: st, Services: services, Metric: f.metric, Window: window, Step: f.every, Unit: f.loadUnit}.Read(ctx)
	if err != nil {
		return nil, usageError{fmt.Errorf("--store %s: %w", f.store, err)}
	}
	return h, nil
}

func runController(cmd *cobra.Command, f controllerFlags) error {
	if f.history != "" && !cmd.Flags().Changed("store") {
		f.store = "" // $LBSYS_STORE is only a default
	}
	if err := f.check(); err != nil {
		return usageError{err}
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		return usageError{err}
	}
	services := splitList(f.services)
	proxyURLs := splitList(f.proxyAdmin)
	var coord *client.Client
	if !f.dryRun {
		if coord, err = coordinatorClient(pipelineFlags{coordinator: f.coordinator, tokenFile: f.tokenFile}); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The proxies first: what they run each service with decides what
	// the plans may contain.
	proxies := &liveloop.Proxies{URLs: proxyURLs, Log: log}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	views, err := proxies.CheckServices(cctx, services)
	cancel()
	if err != nil {
		if strings.Contains(err.Error(), "not configured on every proxy") {
			return usageError{fmt.Errorf("--services: %w", err)}
		}
		return err
	}
	if coord != nil {
		if err := checkCoordinator(ctx, coord); err != nil {
			return err
		}
	}

	// The fleet.
	var fl liveloop.Fleet
	pf := &liveloop.ProxyFleet{Proxies: proxies, Services: services, LoadReportPath: f.loadReportPath, Log: log}
	if f.fleet != "" {
		ff := &liveloop.FleetFile{Source: f.fleet, Services: services, Fallback: pf, Factor: f.timeFactor, Log: log}
		if f.fleetTokenFile != "" {
			if ff.Token, err = readTokenFile(f.fleetTokenFile); err != nil {
				return usageError{fmt.Errorf("--fleet-token-file: %w", err)}
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := ff.Read(rctx)
		cancel()
		if err != nil {
			// Not fatal: the autoscaler's side may publish it later; each
			// minute without it is logged.
			log.Warn("the fleet document cannot be read yet; minutes without it have no fleet state", "fleet", f.fleet, "err", err)
		}
		fl = ff
	} else {
		fl = pf
		log.Info("no --fleet: ready replicas are the proxies' available endpoints; utilisation from their load reports", "path", f.loadReportPath,
			"startup_assumed", f.startup.String())
	}

	// The history and the calendar.
	hist, err := f.readHistory(ctx, services)
	if err != nil {
		return err
	}
	for _, n := range hist.Notes {
		log.Info("history", "note", n)
	}
	start := time.Now().UTC().Truncate(f.every)
	if f.timeFactor != 1 {
		start = f.start
		if start.IsZero() {
			start = hist.End()
		}
		start = start.Truncate(f.every)
	} else if end := hist.End(); start.Sub(end) > 24*time.Hour {
		log.Warn("the history ends long before now: the forecaster starts with a gap; keep the store current with lbsys ingest telemetry --follow",
			"history_end", end.Format(time.RFC3339), "gap", start.Sub(end).Round(time.Minute).String())
	}
	events := hist.Events
	for _, path := range splitList(f.calendars) {
		var first time.Time
		for _, s := range hist.Series {
			if first.IsZero() || s.Start.Before(first) {
				first = s.Start
			}
		}
		evs, notes, err := readEvents(path, time.UTC, false, f.eventCats, first.Add(-8*24*time.Hour), start.Add(400*24*time.Hour))
		if err != nil {
			return usageError{fmt.Errorf("--calendar %s: %w", path, err)}
		}
		for _, n := range notes {
			log.Warn("calendar", "file", path, "note", n)
		}
		log.Info("calendar", "file", path, "occurrences", len(evs))
		events = liveloop.MergeEvents(events, evs)
	}
	upcoming := 0
	for _, e := range events {
		if !e.Start.Before(start) {
			upcoming++
		}
	}

	// The controller.
	setup := control.Setup{Start: start, Step: f.every, Proxies: len(proxyURLs), History: hist.Series, Events: events,
		StartupPrior: f.startup, RetrainEvery: f.retrainEvery,
		Forecast: forecast.Options{Seed: f.seed, NoLSTM: f.noLSTM, Holidays: f.holidays},
		Uplift:   forecast.UpliftOptions{Upper: f.eventConfidence}}
	if f.retrainEvery <= 0 {
		setup.RetrainEvery = -1
	}
	for _, s := range services {
		v := views[s]
		setup.Services = append(setup.Services, control.ServiceSetup{Name: s, Min: f.minReplicas, Max: f.maxReplicas,
			TargetUtilization: f.targetUtil, Tolerance: f.tolerance, Admission: v.Admission, Weighted: v.Weighted})
		log.Info("service", "name", s, "proxies", v.Proxies, "endpoints", len(v.Endpoints), "available", len(v.Available),
			"admission", v.Admission, "weighted", v.Weighted, "history_steps", seriesLen(hist.Series[s]))
	}
	log.Info("training the forecaster", "control", f.control, "services", len(services), "events", len(events), "upcoming_events", upcoming,
		"start", start.Format(time.RFC3339), "step", f.every.String())
	t0 := time.Now()
	var ctrl control.Controller
	switch f.control {
	case "predictive":
		p, err := control.NewPredictive(ctx, setup)
		if err != nil {
			return fmt.Errorf("training the forecaster: %w", err)
		}
		ctrl = p
	case "holt_winters":
		ctrl = control.NewHoltWinters(setup)
	case "hourly":
		ctrl = control.NewHourly(setup)
	}
	if ctx.Err() != nil {
		log.Info("stopped before the first plan", "signal", "interrupt")
		return nil
	}
	log.Info("trained", "took", time.Since(t0).Round(100*time.Millisecond).String())

	// The loop.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var (
		fatalMu sync.Mutex
		fatal   error
	)
	var co liveloop.Coordinator = coord
	if f.dryRun {
		co = &dryRunCoordinator{out: cmd.OutOrStdout()}
	}
	loop := &liveloop.Loop{Step: f.every, Controller: ctrl, Telemetry: proxies, Fleet: fl, Coordinator: co, Services: services,
		Requester: "lbsys-controller", Log: log}
	loop.OnPlan = func(at time.Time, p control.Plan, ch *change.Change, err error) {
		logDecisions(log, at, p.Decisions)
		var ce *client.Error
		if errors.As(err, &ce) && (ce.Status == http.StatusUnauthorized || ce.Status == http.StatusForbidden) {
			fatalMu.Lock()
			fatal = usageError{fmt.Errorf("the coordinator refused the proposal (%d): %s; the controller's token needs the proposer role (a line \"<token> <name> proposer\" in the coordinator's --tokens-file)", ce.Status, ce.Body.Error)}
			fatalMu.Unlock()
			stopRun()
		}
	}
	if f.timeFactor != 1 {
		vc := clock.NewScaled(nil, start, f.timeFactor)
		loop.Clock, loop.Scaled = vc, vc
		log.Info("compressed time", "factor", f.timeFactor, "virtual_start", start.Format(time.RFC3339))
	}
	log.Info("controller running", "every", f.every.String(), "proxies", len(proxyURLs), "coordinator", f.coordinator, "dry_run", f.dryRun)
	loop.Run(runCtx)
	fatalMu.Lock()
	defer fatalMu.Unlock()
	if fatal != nil {
		return fatal
	}
	log.Info("controller stopped")
	return nil
}

func seriesLen(s *forecast.Series) int {
	if s == nil {
		return 0
	}
	return s.Len()
}

// logDecisions logs every service's decision and its reason at info: the
// why of each floor (or of none) is what an operator reads first.
func logDecisions(log *slog.Logger, at time.Time, ds []scaler.Decision) {
	for _, d := range ds {
		attrs := []any{"at", at.UTC().Format(time.RFC3339), "service", d.Service, "floor", d.Floor}
		if d.Driver != "" {
			attrs = append(attrs, "driver", d.Driver)
		}
		if !d.ReadyBy.IsZero() {
			attrs = append(attrs, "ready_by", d.ReadyBy.UTC().Format(time.RFC3339))
		}
		attrs = append(attrs, "why", d.Why)
		log.Info("decision", attrs...)
	}
}

// checkCoordinator reads the coordinator's status: a refused token is a
// usage error (exit 2), an unreachable coordinator a failure (exit 1).
func checkCoordinator(ctx context.Context, c *client.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := c.Status(cctx)
	var ce *client.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce) && ce.Status == http.StatusUnauthorized:
		return usageError{fmt.Errorf("--coordinator: the token was refused (%s): give --token-file a token from the coordinator's --tokens-file, with the proposer role", ce.Body.Error)}
	default:
		return fmt.Errorf("--coordinator: cannot read its status: %w (is it running, and is the URL its --http-addr?)", err)
	}
}

// dryRunCoordinator prints the directives instead of proposing them.
type dryRunCoordinator struct {
	mu  sync.Mutex
	out io.Writer
	n   uint64
}

func (d *dryRunCoordinator) Directive(context.Context, uint64, bool) (*directive.Directive, error) {
	return &directive.Directive{}, nil
}

func (d *dryRunCoordinator) Propose(_ context.Context, r change.ProposeRequest) (*change.Change, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	b, err := json.Marshal(map[string]any{"reason": r.Reason, "directive": r.Directive})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(d.out, "%s\n", b)
	return &change.Change{ID: d.n, Type: r.Type, State: "dry-run", Reason: r.Reason}, nil
}
