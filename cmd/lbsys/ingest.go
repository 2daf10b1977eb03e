package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/store"
)

// newIngestCmd is `lbsys ingest`: one subcommand per source, plus status,
// compact and graph over the store.
func newIngestCmd() *cobra.Command {
	var storePath string
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
unknown_reference, duplicate_id, malformed, invalid_value, too_old), never
dropped silently; 'lbsys ingest status' shows the counts and the latest
reasons. Re-running an import is idempotent: what is already stored counts as
unchanged. See docs/ingest.md.`,
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
	cmd.AddCommand(newIngestTelemetryCmd(&storePath), newIngestCSVCmd(&storePath), newIngestPrometheusCmd(&storePath),
		newIngestServiceNowCmd(&storePath), newIngestBackstageCmd(&storePath), newIngestICalCmd(&storePath),
		newIngestStatusCmd(&storePath), newIngestCompactCmd(&storePath), newIngestGraphCmd(&storePath))
	return cmd
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
	stderr := cmd.ErrOrStderr()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		notes := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rep := run.Report()
				for ; notes < len(rep.Notes); notes++ {
					fmt.Fprintln(stderr, "note:", rep.Notes[notes])
				}
				fmt.Fprintln(stderr, "…", rep.String())
			}
		}
	}()
	runErr := fn(ctx, run)
	close(done)
	wg.Wait()
	rep, err := run.Finish(ctx, runErr)
	out := cmd.OutOrStdout()
	fmt.Fprintln(out, rep.String())
	for _, n := range rep.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	if rep.Quarantined > 0 {
		for _, p := range run.FirstProblems() {
			fmt.Fprintln(out, "quarantined:", p.Error())
		}
		fmt.Fprintf(out, "(lbsys ingest status --store %s shows all reasons)\n", storePath)
	}
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

func newIngestTelemetryCmd(storePath *string) *cobra.Command {
	var admin, file, service string
	var follow, fromStart bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "telemetry (--admin URL | --file records.jsonl) [--follow]",
		Short: "Ingest the proxy's per-second telemetry records (admin API or JSON-lines file)",
		Long: `Read the proxy's per-second service/endpoint records into time series
(service, endpoint, metric) for the metrics requests, errors, in_flight,
bytes_in, bytes_out, p50_ms, p90_ms and p99_ms (latencies only for seconds
that had requests: a second without requests has no latency, not zero).

--admin polls GET /telemetry on the proxy's admin listener with since=, so
each poll reads only new seconds; --file reads the JSON lines written to the
proxy's telemetry.jsonl_path, whole lines only, following rotation and
truncation. Either way the position is saved in the store: a restarted
importer continues where it stopped, and a second read twice changes nothing.
With --follow it keeps going (and applies the retention every 10 minutes)
until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (admin == "") == (file == "") {
				return usageError{errors.New("give exactly one of --admin http://127.0.0.1:9901 or --file records.jsonl")}
			}
			return runSource(cmd, *storePath, "telemetry", true, follow, func(ctx context.Context, run *ingest.Run) error {
				if admin != "" {
					return ingest.ImportTelemetryAdmin(ctx, run, ingest.TelemetryAdminOptions{URL: admin, Service: service, Follow: follow, Interval: interval})
				}
				return ingest.ImportTelemetryFile(ctx, run, ingest.TelemetryFileOptions{Path: file, Follow: follow, Interval: interval, FromStart: fromStart})
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&admin, "admin", "", "proxy admin base URL, e.g. http://127.0.0.1:9901")
	f.StringVar(&file, "file", "", "the proxy's telemetry JSON-lines file (telemetry.jsonl_path)")
	f.StringVar(&service, "service", "", "with --admin: only this service's records")
	f.BoolVar(&follow, "follow", false, "keep reading new records until interrupted")
	f.DurationVar(&interval, "interval", time.Second, "poll interval with --follow")
	f.BoolVar(&fromStart, "from-start", false, "with --file: ignore the saved offset and read the whole file again")
	return cmd
}

func newIngestCSVCmd(storePath *string) *cobra.Command {
	var o ingest.CSVOptions
	var file, tz, layout string
	var allowNegative bool
	cmd := &cobra.Command{
		Use:   "csv --file F --service S --metric M [--time-col ts] [--value-col v] [--tz ZONE]",
		Short: "Ingest a CSV trace (one time column, one value column) as a time series",
		Long: `Read a headed CSV file into the series (--service, --endpoint, --metric).

Times: RFC 3339, "2006-01-02 15:04:05[.frac]", dates, or Unix seconds or
milliseconds are recognized (--time-format takes a Go layout, "unix" or
"unix_ms"). Times without a UTC offset are read in --tz; without --tz the
import stops before writing anything. A local time repeated or skipped by a
daylight-saving change is quarantined as ambiguous_time, never guessed.

Values: an empty cell is a gap (quarantined as missing_field, never stored as
zero), a non-number is not_a_number, NaN/Inf not_finite, a negative value
negative_count (unless --allow-negative), a repeated time
duplicate_timestamp, a step back out_of_order.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" || o.Service == "" || o.Metric == "" {
				return usageError{errors.New("--file, --service and --metric are required")}
			}
			loc, err := ingestZone(tz)
			if err != nil {
				return usageError{err}
			}
			o.Time = ingest.TimeFormat{Layout: layout, Loc: loc}
			f, err := os.Open(file)
			if err != nil {
				return usageError{fmt.Errorf("--file: %w", err)}
			}
			defer f.Close()
			o.Name = filepath.Base(file)
			err = runSource(cmd, *storePath, "csv", true, false, func(ctx context.Context, run *ingest.Run) error {
				return ingest.ImportCSV(ctx, run, f, o, allowNegative)
			})
			if err != nil && strings.Contains(err.Error(), "column") {
				return usageError{err}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "CSV file with a header row (required)")
	f.StringVar(&o.Service, "service", "", "service of the series (required)")
	f.StringVar(&o.Endpoint, "endpoint", "", "endpoint of the series (default: service level)")
	f.StringVar(&o.Metric, "metric", "", "metric of the series, e.g. requests (required)")
	f.StringVar(&o.TimeCol, "time-col", "timestamp", "name of the time column")
	f.StringVar(&o.ValueCol, "value-col", "", "name of the value column (default: the other column of a two-column file)")
	f.StringVar(&tz, "tz", "", "IANA zone of times written without a UTC offset, e.g. UTC or America/New_York")
	f.StringVar(&layout, "time-format", "", `time layout: a Go layout such as "02/01/2006 15:04", or unix, unix_ms (default: detect)`)
	f.BoolVar(&allowNegative, "allow-negative", false, "accept negative values (a signed metric)")
	return cmd
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

// parseSpan reads a duration that may be written in days ("400d").
func parseSpan(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a duration such as 36h or 7d", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 36h or 7d", s)
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

func newIngestPrometheusCmd(storePath *string) *cobra.Command {
	var o ingest.PrometheusOptions
	var since, until, start, step string
	cmd := &cobra.Command{
		Use:   "prometheus --url URL --query Q [--service S] --step 1m --since 24h",
		Short: "Ingest a Prometheus range query (query_range API) as time series",
		Long: `Run --query over a range through /api/v1/query_range, in chunks of at most
--chunk-points steps (Prometheus refuses more than 11,000 points per series),
retrying network errors, 429 and 5xx with backoff (honouring Retry-After).

Each result series becomes the store series (service, endpoint, metric):
service is --service, else the result's --service-label label (default
"service"); endpoint is the --endpoint-label label when present; metric is
--metric, else the result's __name__, else "query_" + 8 hex digits of the
query's SHA-256. The range start is aligned to a multiple of --step, so
running the same import again asks for the same instants and changes nothing.

  lbsys ingest prometheus --url http://127.0.0.1:9090 \
    --query 'sum(rate(lbsys_requests_total[1m])) by (service)' --metric requests --step 1m --since 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.URL == "" || o.Query == "" {
				return usageError{errors.New("--url and --query are required")}
			}
			d, err := time.ParseDuration(step)
			if err != nil || d < time.Second || d%time.Second != 0 {
				return usageError{fmt.Errorf("--step %q: want whole seconds such as 15s or 1m", step)}
			}
			o.Step = d
			now := time.Now()
			if o.End, err = parseInstant(until, now); err != nil {
				return usageError{fmt.Errorf("--until %w", err)}
			}
			if start != "" {
				if o.Start, err = parseInstant(start, now); err != nil {
					return usageError{fmt.Errorf("--start %w", err)}
				}
			} else {
				span, err := parseSpan(since)
				if err != nil {
					return usageError{fmt.Errorf("--since %w", err)}
				}
				o.Start = o.End.Add(-span)
			}
			if !o.End.After(o.Start) {
				return usageError{errors.New("the range is empty: --start/--since must be before --until")}
			}
			o.Retry.OnRetry = printRetry(cmd)
			return runSource(cmd, *storePath, "prometheus", true, false, func(ctx context.Context, run *ingest.Run) error {
				return ingest.ImportPrometheus(ctx, run, o)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "", "Prometheus base URL, e.g. http://127.0.0.1:9090 (required)")
	f.StringVar(&o.Query, "query", "", "PromQL expression (required)")
	f.StringVar(&o.Service, "service", "", "service of every result series (default: the --service-label label)")
	f.StringVar(&o.ServiceLabel, "service-label", "service", "label naming the service")
	f.StringVar(&o.EndpointLabel, "endpoint-label", "endpoint", "label naming the endpoint")
	f.StringVar(&o.Metric, "metric", "", "stored metric name (default: __name__ or query_<hash>)")
	f.StringVar(&step, "step", "1m", "query resolution step")
	f.StringVar(&since, "since", "24h", "range length back from --until (accepts d for days)")
	f.StringVar(&start, "start", "", "range start (RFC 3339 or date), instead of --since")
	f.StringVar(&until, "until", "now", "range end (RFC 3339, date or now)")
	f.IntVar(&o.ChunkPoints, "chunk-points", 10000, "steps per request (at most 11000)")
	f.BoolVar(&o.AllowNegative, "allow-negative", false, "accept negative values (a signed metric)")
	return cmd
}

// secretFrom reads a secret from a file (its first line, surrounding white
// space and the line end removed) or, when no file is named, from an
// environment variable; secrets are never flags, so they stay out of ps and
// shell history. A named file wins over the variable. A file whose first
// line is empty is an error rather than "no secret": a secret that was not
// mounted must not make the command fall back, silently, to another
// credential from the environment. The file's mode is not checked (a
// Kubernetes secret volume is 0644 by default).
func secretFrom(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		line, _, _ := strings.Cut(string(b), "\n")
		if s := strings.TrimSpace(line); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("%s: the first line is empty: write the secret on the first line", file)
	}
	return os.Getenv(env), nil
}

func newIngestServiceNowCmd(storePath *string) *cobra.Command {
	var o ingest.ServiceNowOptions
	var passwordFile, tokenFile, tables string
	cmd := &cobra.Command{
		Use:   "servicenow --instance https://acme.service-now.com [--tables ...]",
		Short: "Sync CIs, relations, incidents and changes from the ServiceNow Table API",
		Long: `Read ServiceNow tables through the Table API (/api/now/table/{table}) with
sysparm_display_value=all, paging with sysparm_limit/sysparm_offset and the
Link header, ordered by sys_updated_on: the newest sys_updated_on seen per
table is saved, so the next sync reads only what changed (--full reads
everything again). 429 and 5xx answers are retried with backoff, honouring
Retry-After.

Tables: cmdb_ci_service (and cmdb_ci or any cmdb_ci_* class) become CIs,
cmdb_rel_ci relations ("Depends on::Used by" and the like), incident and
change_request tickets. CIs are read first; a relation or ticket that refers
to a CI the store does not have is quarantined as unknown_reference.

Credentials (never on the command line): SERVICENOW_USER (or --user) with
SERVICENOW_PASSWORD or --password-file for basic authentication, or
SERVICENOW_TOKEN or --token-file for an OAuth bearer token. A file holds the
secret on its first line (surrounding spaces and the line end are removed)
and wins over the environment variable; a missing or empty file is an error.
When both a token and a password are available, the token is used.

Deletions: a record deleted in ServiceNow stays in the store, even after
--full (which re-reads and updates, but removes nothing); see docs/ingest.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Instance == "" {
				return usageError{errors.New("--instance is required, e.g. https://acme.service-now.com")}
			}
			if o.User == "" {
				o.User = os.Getenv("SERVICENOW_USER")
			}
			var err error
			if o.Password, err = secretFrom(passwordFile, "SERVICENOW_PASSWORD"); err != nil {
				return usageError{fmt.Errorf("--password-file: %w", err)}
			}
			if o.Token, err = secretFrom(tokenFile, "SERVICENOW_TOKEN"); err != nil {
				return usageError{fmt.Errorf("--token-file: %w", err)}
			}
			if o.Token == "" && (o.User == "" || o.Password == "") {
				return usageError{errors.New("no credentials: set SERVICENOW_USER and SERVICENOW_PASSWORD (or --password-file), or SERVICENOW_TOKEN (or --token-file)")}
			}
			if tables != "" {
				o.Tables = strings.Split(tables, ",")
			}
			o.Retry.OnRetry = printRetry(cmd)
			return runSource(cmd, *storePath, "servicenow", false, false, func(ctx context.Context, run *ingest.Run) error {
				return ingest.ImportServiceNow(ctx, run, o)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Instance, "instance", "", "instance base URL (https; required)")
	f.StringVar(&o.User, "user", "", "user for basic authentication (default $SERVICENOW_USER)")
	f.StringVar(&passwordFile, "password-file", "", "file whose first line is the password (default $SERVICENOW_PASSWORD)")
	f.StringVar(&tokenFile, "token-file", "", "file whose first line is a bearer token (default $SERVICENOW_TOKEN)")
	f.StringVar(&tables, "tables", strings.Join(ingest.DefaultServiceNowTables, ","), "comma-separated tables")
	f.StringVar(&o.Query, "query", "", "extra encoded query ANDed to every table's, e.g. operational_status=1")
	f.IntVar(&o.PageSize, "page-size", 1000, "records per page (sysparm_limit)")
	f.BoolVar(&o.Full, "full", false, "ignore the saved watermarks and read everything again (records deleted in ServiceNow stay in the store)")
	f.DurationVar(&o.Overlap, "overlap", 14*time.Hour, "re-read this much before each watermark (date literals are read in the integration user's zone); 1s if that zone is UTC")
	return cmd
}

func newIngestBackstageCmd(storePath *string) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "backstage --file catalog-info.yaml [--file other.yaml]",
		Short: "Ingest Backstage catalog entities and their relations as CIs",
		Long: `Read multi-document Backstage catalog files. Component, API, Resource, System
and Domain entities become CIs (a Component is the lbsys service of its name,
or of its lbsys.io/service annotation); dependsOn, dependencyOf, providesApis,
consumesApis, system, subcomponentOf and domain become relations. Group, User,
Location and Template entities are skipped (counted). References resolve
across all the files given and what the store already has; one that does not
is quarantined as unknown_reference. Re-importing an entity replaces the
relations it declares (a removed dependsOn disappears).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageError{errors.New("--file is required (repeatable)")}
			}
			readers := map[string]io.Reader{}
			for _, name := range files {
				b, err := os.ReadFile(name)
				if err != nil {
					return usageError{fmt.Errorf("--file: %w", err)}
				}
				readers[filepath.Base(name)] = strings.NewReader(string(b))
			}
			return runSource(cmd, *storePath, "backstage", false, false, func(ctx context.Context, run *ingest.Run) error {
				return ingest.ImportBackstage(ctx, run, readers)
			})
		},
	}
	cmd.Flags().StringArrayVar(&files, "file", nil, "catalog file (repeatable; references may cross files)")
	return cmd
}

func newIngestICalCmd(storePath *string) *cobra.Command {
	var file, calendar, tz, from, to, past, future string
	var categories []string
	var maxOcc int
	cmd := &cobra.Command{
		Use:   "ical --file campaigns.ics --calendar marketing [--tz ZONE]",
		Short: "Ingest an iCalendar file (campaigns, holidays, releases, sports) as events",
		Long: `Read the VEVENTs of an .ics file, expand recurrences (RRULE, RDATE, EXDATE,
RECURRENCE-ID overrides, cancellations) over a window, and replace the
calendar's stored occurrences in that window with them: an event removed
from the file disappears from the store. Times keep their TZID (IANA, the
file's VTIMEZONE X-LIC-LOCATION, or a Windows zone name); floating times and
all-day dates are read in --tz (default: the calendar's X-WR-TIMEZONE, else
UTC). CATEGORIES are stored lower-case (campaign, holiday, release, sports,
…); --category applies to events without any. X-LBSYS-SERVICES lists the
services an event concerns.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" || calendar == "" {
				return usageError{errors.New("--file and --calendar are required")}
			}
			loc, err := ingestZone(tz)
			if err != nil {
				return usageError{err}
			}
			now := time.Now().UTC().Truncate(24 * time.Hour)
			o := ingest.ICalOptions{Calendar: calendar, Loc: loc, DefaultCategories: categories, MaxOccurrences: maxOcc, Name: filepath.Base(file)}
			if from != "" {
				if o.From, err = parseInstant(from, now); err != nil {
					return usageError{fmt.Errorf("--from %w", err)}
				}
			} else {
				d, err := parseSpan(past)
				if err != nil {
					return usageError{fmt.Errorf("--past %w", err)}
				}
				o.From = now.Add(-d)
			}
			if to != "" {
				if o.To, err = parseInstant(to, now); err != nil {
					return usageError{fmt.Errorf("--to %w", err)}
				}
			} else {
				d, err := parseSpan(future)
				if err != nil {
					return usageError{fmt.Errorf("--future %w", err)}
				}
				o.To = now.Add(d)
			}
			if !o.To.After(o.From) {
				return usageError{errors.New("the window is empty: --from must be before --to")}
			}
			for i := range o.DefaultCategories {
				o.DefaultCategories[i] = strings.ToLower(strings.TrimSpace(o.DefaultCategories[i]))
			}
			fh, err := os.Open(file)
			if err != nil {
				return usageError{fmt.Errorf("--file: %w", err)}
			}
			defer fh.Close()
			return runSource(cmd, *storePath, "ical", false, false, func(ctx context.Context, run *ingest.Run) error {
				return ingest.ImportICal(ctx, run, fh, o)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", ".ics file (required)")
	f.StringVar(&calendar, "calendar", "", "calendar name, e.g. marketing (required)")
	f.StringVar(&tz, "tz", "", "IANA zone for floating times and all-day dates")
	f.StringVar(&from, "from", "", "window start (RFC 3339 or date; default today - --past)")
	f.StringVar(&to, "to", "", "window end (RFC 3339 or date; default today + --future)")
	f.StringVar(&past, "past", "400d", "window length before today when --from is not given")
	f.StringVar(&future, "future", "400d", "window length after today when --to is not given")
	f.StringSliceVar(&categories, "category", nil, "categories for events without CATEGORIES (repeatable)")
	f.IntVar(&maxOcc, "max-occurrences", 10000, "bound on one event's expanded instances")
	return cmd
}

// statusJSON is `lbsys ingest status --json`.
type statusJSON struct {
	Store      string                  `json:"store"`
	Stats      store.Stats             `json:"stats"`
	Quarantine []store.QuarantineCount `json:"quarantine_counts"`
	Latest     []store.Quarantined     `json:"latest_quarantined"`
	Runs       []store.IngestRun       `json:"runs"`
}

func newIngestStatusCmd(storePath *string) *cobra.Command {
	var n int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the store's counts, recent runs and the latest quarantine reasons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			if _, err := os.Stat(*storePath); err != nil {
				return usageError{fmt.Errorf("--store %s: %w (nothing ingested yet?)", *storePath, err)}
			}
			st, err := openStore(ctx, *storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			var s statusJSON
			s.Store = *storePath
			if s.Stats, err = st.Stats(ctx); err != nil {
				return err
			}
			if s.Quarantine, err = st.QuarantineCounts(ctx); err != nil {
				return err
			}
			if s.Latest, err = st.LatestQuarantined(ctx, n); err != nil {
				return err
			}
			if s.Runs, err = st.IngestRuns(ctx, n); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(out, s)
			return nil
		},
	}
	cmd.Flags().IntVarP(&n, "last", "n", 10, "how many recent runs and quarantined rows to show")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(out io.Writer, s statusJSON) {
	st := s.Stats
	fmt.Fprintf(out, "store %s (schema %d, %.1f MB)\n", s.Store, st.SchemaVersion, float64(st.FileBytes)/1e6)
	fmt.Fprintf(out, "series %d: raw points %d, 1m buckets %d, 1h buckets %d\n", st.Series, st.RawPoints, st.MinutePoints, st.HourPoints)
	fmt.Fprintf(out, "CIs %d, relations %d, incidents %d, changes %d, events %d, pipeline runs %d, artifacts %d\n",
		st.CIs, st.Relations, st.Incidents, st.Changes, st.Events, st.PipelineRuns, st.Artifacts)
	fmt.Fprintf(out, "quarantined %d\n", st.Quarantined)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	if len(s.Quarantine) > 0 {
		fmt.Fprintln(tw, "\tSOURCE\tREASON\tROWS")
		counts := append([]store.QuarantineCount(nil), s.Quarantine...)
		sort.SliceStable(counts, func(i, j int) bool { return counts[i].Count > counts[j].Count })
		for _, c := range counts {
			fmt.Fprintf(tw, "\t%s\t%s\t%d\n", c.Source, c.Reason, c.Count)
		}
		tw.Flush()
	}
	if len(s.Runs) > 0 {
		fmt.Fprintln(out, "recent runs:")
		fmt.Fprintln(tw, "\tRUN\tSOURCE\tSTATUS\tSTARTED\tTOOK\tINSERTED\tUPDATED\tUNCHANGED\tQUARANTINED")
		for _, r := range s.Runs {
			took := "-"
			if !r.Finished.IsZero() {
				took = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "\t#%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", r.ID, r.Source, r.Status,
				r.Started.Format(time.RFC3339), took, r.Inserted, r.Updated, r.Unchanged, r.Quarantined)
		}
		tw.Flush()
		for _, r := range s.Runs {
			if r.Error != "" {
				fmt.Fprintf(out, "  #%d %s: %s\n", r.ID, r.Status, r.Error)
			}
		}
	}
	if len(s.Latest) > 0 {
		fmt.Fprintln(out, "latest quarantine reasons:")
		for _, q := range s.Latest {
			fmt.Fprintf(out, "  %s %s %s: %s: %s\n", q.At.Format(time.RFC3339), q.Source, q.Location, q.Reason, q.Detail)
		}
	}
}

func newIngestCompactCmd(storePath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "compact",
		Short: "Apply the store's retention now (raw → 1m → 1h) and trim the quarantine",
		Long: `Delete raw points older than 48 h before each series' newest point (their
1-minute buckets stay), 1-minute buckets older than 35 days (their 1-hour
buckets stay) and 1-hour buckets older than about three years; trim the
quarantine to its newest 100,000 rows. Every time-series import does this at
its end, and a --follow telemetry import every 10 minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			st, err := openStore(ctx, *storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := st.Compact(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted raw points %d, 1m buckets %d, 1h buckets %d, quarantine rows %d, runs %d\n",
				res.RawDeleted, res.MinuteDeleted, res.HourDeleted, res.QuarantineDeleted, res.RunsDeleted)
			return nil
		},
	}
}

func newIngestGraphCmd(storePath *string) *cobra.Command {
	var service string
	cmd := &cobra.Command{
		Use:   "graph [--service S]",
		Short: "Show the dependency graph: fan-out/fan-in per node, upstream/downstream of one, cycles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			st, err := openStore(ctx, *storePath)
			if err != nil {
				return err
			}
			defer st.Close()
			g, err := st.Graph(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if service != "" {
				key, ok := g.Resolve(service)
				if !ok {
					return usageError{fmt.Errorf("--service %q is not in the graph (lbsys ingest graph lists the nodes)", service)}
				}
				fmt.Fprintf(out, "%s\n  depends on:  %s\n  upstream:    %s\n  dependents:  %s\n  downstream:  %s\n", key,
					strings.Join(g.DependsOn(key), ", "), strings.Join(g.Upstream(key), ", "),
					strings.Join(g.DependedOnBy(key), ", "), strings.Join(g.Downstream(key), ", "))
				return nil
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tFAN-OUT\tFAN-IN\tUPSTREAM\tDOWNSTREAM")
			for _, k := range g.Nodes() {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", k, g.FanOut(k), g.FanIn(k), len(g.Upstream(k)), len(g.Downstream(k)))
			}
			tw.Flush()
			for _, c := range g.Cycles() {
				fmt.Fprintf(out, "cycle: %s\n", strings.Join(c, " ⇄ "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "", "show one node's dependencies and dependents (service name, CI ID or CI name)")
	return cmd
}

// printRetry reports a source's retries on standard error.
func printRetry(cmd *cobra.Command) func(n int, wait time.Duration, why string) {
	return func(n int, wait time.Duration, why string) {
		fmt.Fprintf(cmd.ErrOrStderr(), "retry %d in %v: %s\n", n, wait.Round(time.Millisecond), why)
	}
}
