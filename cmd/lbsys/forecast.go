package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/forecast/evalreport"
	"github.com/lbsys/lbsys/internal/textutil"
)

func newForecastCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forecast",
		Short: "Evaluate the load forecasters on a trace",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newForecastEvalCmd())
	return cmd
}

// evalFlags are the flags of `lbsys forecast eval`.
type evalFlags struct {
	trace, timeCol, valueCol, mode, horizons, events, format, report, holidays, tz string
	step, budget                                                                   time.Duration
	seed                                                                           uint64
	gbdtTrials, lstmTrials                                                         int
	noLSTM, quiet                                                                  bool
	// tzGiven: --tz was set, so it also reads the calendar's floating times.
	tzGiven   bool
	eventCats []string
}

func newForecastEvalCmd() *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "eval --trace FILE.csv [flags]",
		Short: "Run the forecasting pipeline on one CSV and print MASE and sMAPE per horizon and model",
		Long: `Run the whole forecasting pipeline (ExampleGen → StatisticsGen → SchemaGen →
ExampleValidator → Transform → Tuner → Trainer → Evaluator → Pusher) on one
trace CSV, and print for every horizon and every model (seasonal naive, ETS,
GBDT, LSTM, the stacking ensemble) the MASE and sMAPE of a rolling-origin
evaluation on the last 20% of the series (never seen by training, tuning or
the ensemble weights), with the upper band's coverage.

The CSV needs a header row. --time-col defaults to the first column holding
timestamps; --value-col to the first other column. A missing row or an empty
value is a gap, never zero; timestamps must lie on the series' own step.
Per-request arrival logs (no interval between rows covers half of them) are
aggregated first: the count of arrivals (or the sum of --value-col) per
--step, 1 min by default or finer for logs shorter than 5 h; the partial
first and last steps are dropped.

A horizon is rounded up to whole steps (30m of an hourly series is its next
hour); a horizon that does not fit the series is skipped with the reason.
Durations take Go's units and days and weeks: 90m, 2h, 1d (24h), 2w, 1d12h.
--events FILE.ics adds calendar features (in-event flags, time to and since
events per category; RRULEs are expanded over the series' window). The file
is read as lbsys ingest ical reads it: an occurrence counts under each of
its CATEGORIES (lower-cased, spaces as _), or, without any, under
--event-category (default "event"); floating times are read in --tz if
given, else the calendar's X-WR-TIMEZONE, else UTC; an event that cannot
be read is left out and named in the notes.

Tuning (goptuna TPE) runs until --gbdt-trials/--lstm-trials or --budget,
whichever comes first. With the same seed, trial counts and data the output
is identical; if the budget cut tuning short, "stopped_by_budget" says so.

Examples:
  lbsys forecast eval --trace nasa_http_1995_07_5min.csv
  lbsys forecast eval --trace pedestrians_hourly.csv --value-col location_41 --format md
  lbsys forecast eval --trace azure_llm_conv_arrivals.csv --horizons 1m,5m --step 10s
  lbsys forecast eval --trace nyc_taxi_30min.csv --events holidays.ics --report out/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.tzGiven = cmd.Flags().Changed("tz")
			return runForecastEval(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.trace, "trace", "", "trace CSV file (required)")
	fl.StringVar(&f.timeCol, "time-col", "", "timestamp column (default: the first column holding timestamps)")
	fl.StringVar(&f.valueCol, "value-col", "", "value column (default: the first other column; for arrivals: count rows)")
	fl.StringVar(&f.mode, "mode", "auto", "auto, series or arrivals (per-request log to aggregate)")
	durationVar(fl, &f.step, "step", 0, "aggregation step for arrivals (default: 1m, finer for logs shorter than 5h)")
	fl.StringVar(&f.horizons, "horizons", "30m,2h", "comma-separated forecast horizons, e.g. 30m,2h,1d (units s, m, h, d = 24h, w = 7d)")
	fl.StringVar(&f.events, "events", "", "iCalendar file of events (sales, premieres, holidays)")
	fl.StringSliceVar(&f.eventCats, "event-category", nil, "with --events: categories of events without CATEGORIES (as lbsys ingest ical --category; default: event)")
	fl.StringVar(&f.tz, "tz", "UTC", "time zone of the trace's naive timestamps (to place calendar events; also reads the calendar's floating times)")
	fl.StringVar(&f.holidays, "holidays", "us", "public holiday calendar: us, au or none")
	fl.StringVar(&f.format, "format", "json", "output format: json or md")
	durationVar(fl, &f.budget, "budget", 30*time.Second, "wall-clock budget of hyperparameter tuning (0: no tuning)")
	fl.IntVar(&f.gbdtTrials, "gbdt-trials", 16, "GBDT tuning trials")
	fl.IntVar(&f.lstmTrials, "lstm-trials", 6, "LSTM tuning trials")
	fl.Uint64Var(&f.seed, "seed", 1, "random seed (same seed, same forecast)")
	fl.BoolVar(&f.noLSTM, "no-lstm", false, "leave the LSTM out (faster)")
	fl.StringVar(&f.report, "report", "", "write report.md, eval.json, PNG plots and the pipeline's artifacts to this directory")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	return cmd
}

func runForecastEval(cmd *cobra.Command, f evalFlags) error {
	if f.trace == "" {
		return usageError{errors.New("--trace is required (a CSV file with a header row)")}
	}
	if f.format != "json" && f.format != "md" {
		return usageError{fmt.Errorf("--format %q: expected json or md", f.format)}
	}
	if _, err := forecast.HolidaysByName(f.holidays); err != nil {
		return usageError{fmt.Errorf("--holidays: %w", err)}
	}
	loc, err := time.LoadLocation(f.tz)
	if err != nil {
		return usageError{fmt.Errorf("--tz: %w", err)}
	}
	var horizons []time.Duration
	for _, h := range strings.Split(f.horizons, ",") {
		d, err := textutil.ParseDuration(strings.TrimSpace(h))
		if err != nil || d <= 0 {
			return usageError{fmt.Errorf("--horizons: %q is not a positive duration such as 30m, 2h, 1d or 2w", h)}
		}
		horizons = append(horizons, d)
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out, err := evalreport.Run(ctx, evalreport.Options{
		Trace: f.trace, CSV: forecast.CSVOptions{TimeCol: f.timeCol, ValueCol: f.valueCol, Mode: f.mode, Step: f.step},
		Horizons: horizons, Events: f.events, EventCategories: f.eventCats, TZ: loc, TZGiven: f.tzGiven,
		Seed: f.seed, Holidays: f.holidays, NoLSTM: f.noLSTM,
		Budget: f.budget, GBDTTrials: f.gbdtTrials, LSTMTrials: f.lstmTrials,
		Report: f.report, Progress: cmd.ErrOrStderr(), Quiet: f.quiet,
	})
	var input *evalreport.InputError
	switch {
	case errors.As(err, &input):
		return usageError{err}
	case out != nil && err != nil:
		// No horizon fits: the output says why each was skipped.
		evalreport.Write(cmd.OutOrStdout(), out, f.format)
		return err
	case err != nil:
		return err
	}
	return evalreport.Write(cmd.OutOrStdout(), out, f.format)
}

// readEvents is the calendar reader of --events, shared with the
// controller's --calendar: a calendar means the same events everywhere.
var readEvents = evalreport.ReadEvents
