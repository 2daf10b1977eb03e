package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/textutil"
)

// The time-series sources of `lbsys ingest`: the proxy's telemetry, CSV
// traces and Prometheus range queries.

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
	durationVar(f, &interval, "interval", time.Second, "poll interval with --follow")
	f.BoolVar(&fromStart, "from-start", false, "with --file: ignore the saved offset and read the whole file again")
	return cmd
}

func newIngestCSVCmd(storePath *string) *cobra.Command {
	var o ingest.CSVOptions
	var file, tz, layout, retention string
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
duplicate_timestamp, a step back out_of_order, a time more than --max-future
ahead of now future_time. Each line is a row: a line with a broken quote is
quarantined (malformed) alone.

Retention: a trace is history, so a new series is an archive (kept whole,
whatever its age); --retention window gives it the store's sliding window
(48 h raw, 35 days of minutes, ~3 years of hours, back from now), for a
recurring export of live data.`,
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
			if retention != "" {
				if o.Retention, err = store.ParseRetentionMode(retention); err != nil {
					return usageError{fmt.Errorf("--retention: %w", err)}
				}
			}
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
	f.StringVar(&retention, "retention", "", "archive (keep everything) or window (sliding window back from now); default: archive for a new series, unchanged for an existing one")
	return cmd
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
			d, err := textutil.ParseDuration(step)
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
	f.StringVar(&since, "since", "24h", "range length back from --until (accepts d and w: 7d, 2w)")
	f.StringVar(&start, "start", "", "range start (RFC 3339 or date), instead of --since")
	f.StringVar(&until, "until", "now", "range end (RFC 3339, date or now)")
	f.IntVar(&o.ChunkPoints, "chunk-points", 10000, "steps per request (at most 11000)")
	f.BoolVar(&o.AllowNegative, "allow-negative", false, "accept negative values (a signed metric)")
	return cmd
}
