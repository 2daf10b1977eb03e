package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/textutil"
)

// newIngestCmd is `lbsys ingest`: one subcommand per source, plus status,
// compact and graph over the store.
func newIngestCmd() *cobra.Command {
	var storePath string
	var maxFuture time.Duration
	cmd := &cobra.Command{
		Use:   "ingest SOURCE [flags]",
		Short: "Load telemetry, traces, Prometheus, CMDB, tickets and calendars into the store",
		Long: `Bring what the operations team already has into lbsys's embedded store (one
SQLite file, --store): the proxy's per-second telemetry, CSV traces,
Prometheus range queries, ServiceNow CIs, relations, incidents and changes,
Backstage catalogs and iCalendar event calendars. The forecasting pipeline
learns from it.

Every source validates at the door: a bad row is quarantined with its reason
(missing_field, not_a_number, negative_count, not_finite, duplicate_timestamp,
out_of_order, unparseable_time, ambiguous_time, unknown_time_zone,
unknown_reference, duplicate_id, malformed, invalid_value, too_old,
future_time), never dropped silently; the summary names the first row of
each reason and 'lbsys ingest status' shows the counts and the latest
reasons. A time more than --max-future ahead of now (a typo year, a broken
clock) is future_time: it is never stored. Re-running an import is
idempotent: what is already stored counts as unchanged. See docs/ingest.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("name a source: telemetry, csv, prometheus, servicenow, backstage, ical (or status, compact, graph); see --help")}
		},
	}
	def := os.Getenv("LBSYS_STORE")
	if def == "" {
		def = "lbsys.db"
	}
	cmd.PersistentFlags().StringVar(&storePath, "store", def, "store file (created when missing); default $LBSYS_STORE or lbsys.db")
	durationVar(cmd.PersistentFlags(), &maxFuture, "max-future", ingest.DefaultMaxFuture,
		"refuse (quarantine as future_time) times further than this ahead of now")
	cmd.AddCommand(newIngestTelemetryCmd(&storePath), newIngestCSVCmd(&storePath), newIngestPrometheusCmd(&storePath),
		newIngestServiceNowCmd(&storePath), newIngestBackstageCmd(&storePath), newIngestICalCmd(&storePath),
		newIngestStatusCmd(&storePath), newIngestCompactCmd(&storePath), newIngestGraphCmd(&storePath))
	return cmd
}

// maxFutureFlag reads the --max-future of cmd's parent.
func maxFutureFlag(cmd *cobra.Command) (time.Duration, error) {
	d, err := cmd.Flags().GetDuration("max-future")
	if err != nil {
		return ingest.DefaultMaxFuture, nil
	}
	if d < 0 {
		return 0, usageError{fmt.Errorf("--max-future %v: want a duration of zero or more, such as 24h", d)}
	}
	return d, nil
}

func openStore(ctx context.Context, path string) (*store.Store, error) {
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return nil, usageError{err}
	}
	return st, nil
}

// flagArgs renders the flags the user set, for the run record.
func flagArgs(cmd *cobra.Command) string {
	var parts []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		parts = append(parts, "--"+f.Name+"="+f.Value.String())
	})
	return strings.Join(parts, " ")
}

// runSource opens the store, runs fn as one ingest run with a progress line
// every two seconds on stderr, prints the report, and compacts the store
// when compact is set. Ctrl-C stops cleanly: what was read so far stays
// stored and the run is recorded as interrupted (exit 0 for a --follow
// source, which only ends that way).
func runSource(cmd *cobra.Command, storePath, source string, compact, follow bool, fn func(ctx context.Context, run *ingest.Run) error) error {
	maxFuture, err := maxFutureFlag(cmd)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := openStore(ctx, storePath)
	if err != nil {
		return err
	}
	defer st.Close()
	run, err := ingest.Begin(ctx, st, source, flagArgs(cmd))
	if err != nil {
		return err
	}
	run.SetMaxFuture(maxFuture)
	rep, err := ingest.RunWithProgress(ctx, run, cmd.ErrOrStderr(), 2*time.Second, fn)
	ingest.WriteReport(cmd.OutOrStdout(), rep, storePath)
	interrupted := err != nil && errors.Is(err, context.Canceled)
	if interrupted && follow {
		err = nil
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return err
		}
		if errors.Is(err, ingest.ErrNeedZone) {
			return usageError{err}
		}
		return err
	}
	if compact {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if _, err := st.Compact(cctx); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
	}
	return nil
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func ingestZone(name string) (*time.Location, error) {
	if name == "" {
		return nil, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("--tz %q is not an IANA time zone (for example UTC, Europe/Paris, America/New_York)", name)
	}
	return loc, nil
}

// parseSpan reads a span of zero or more that may be written in days and
// weeks ("400d", "2w", "1d12h"; textutil.ParseDuration, as every duration
// flag). It used to scale a float of days itself, and a span past what a
// time.Duration holds ("1e300d", "999999999999d") came out as a
// meaningless, even negative, duration instead of an error.
func parseSpan(s string) (time.Duration, error) {
	v, err := textutil.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, err // names s and the forms it reads
	}
	if v < 0 {
		return 0, fmt.Errorf("%q: want a duration of zero or more, such as 36h, 7d or 2w", s)
	}
	return v, nil
}

// parseInstant reads RFC 3339, a date, or "now".
func parseInstant(s string, now time.Time) (time.Time, error) {
	switch s {
	case "", "now":
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-11-27T10:00:00Z), a date (2026-11-27) or now", s)
}

// printRetry reports a source's retries on standard error.
func printRetry(cmd *cobra.Command) func(n int, wait time.Duration, why string) {
	return func(n int, wait time.Duration, why string) {
		fmt.Fprintf(cmd.ErrOrStderr(), "retry %d in %v: %s\n", n, wait.Round(time.Millisecond), why)
	}
}
