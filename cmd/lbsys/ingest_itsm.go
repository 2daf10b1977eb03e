package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/ingest"
)

// The operations sources of `lbsys ingest`: ServiceNow (CMDB and
// tickets), Backstage catalogs and iCalendar calendars.

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

Tables: cmdb_ci (the base table: every class, each CI keeps its
sys_class_name; the default) or any cmdb_ci_* class table become CIs,
cmdb_rel_ci relations ("Depends on::Used by" and the like), incident and
change_request tickets. CIs are read first; a relation or ticket that refers
to a CI the store does not have is quarantined as unknown_reference.

Times: the per-table watermark never passes now; an incident opened,
resolved or closed (or a change worked on) more than --max-future ahead of
now is quarantined as future_time, and a record updated that far ahead is
stored but does not move the watermark (noted).

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
			if o.Password, err = ingest.Secret(passwordFile, "SERVICENOW_PASSWORD"); err != nil {
				return usageError{fmt.Errorf("--password-file: %w", err)}
			}
			if o.Token, err = ingest.Secret(tokenFile, "SERVICENOW_TOKEN"); err != nil {
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
	durationVar(f, &o.Overlap, "overlap", 14*time.Hour, "re-read this much before each watermark (date literals are read in the integration user's zone); 1s if that zone is UTC")
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
	var file, calendar, tz, from, to, past, future, horizon string
	var categories []string
	var maxOcc, maxTotal int
	var maxBytes int64
	var maxExpand time.Duration
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
services an event concerns.

An .ics file is untrusted: the import is bounded in bytes (--max-bytes),
occurrences per event (--max-occurrences, the rest noted) and per file
(--max-total: past it the import fails and the stored calendar is left as
it was), horizon (--to at most --max-horizon after now) and time
(--max-expand-time). A rule that cannot be expanded safely (INTERVAL=0,
BYSETPOS with a sub-daily FREQ, …) is quarantined with its line and UID.`,
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
			if o.MaxHorizon, err = parseSpan(horizon); err != nil || o.MaxHorizon == 0 {
				return usageError{fmt.Errorf("--max-horizon %q: want a duration such as 1830d", horizon)}
			}
			if limit := time.Now().Add(o.MaxHorizon); o.To.After(limit) {
				return usageError{fmt.Errorf("--to %s is more than --max-horizon (%s) after now: recurrences are expanded at most that far", o.To.Format(time.RFC3339), horizon)}
			}
			if maxTotal < 1 || maxOcc < 1 || maxExpand <= 0 || maxBytes < 1 || maxBytes > ingest.MaxICSBytes {
				return usageError{fmt.Errorf("--max-total, --max-occurrences and --max-expand-time must be positive, --max-bytes between 1 and %d", ingest.MaxICSBytes)}
			}
			o.MaxTotal, o.MaxExpandTime, o.MaxBytes = maxTotal, maxExpand, maxBytes
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
	f.IntVar(&maxOcc, "max-occurrences", 10000, "bound on one event's expanded instances (the rest is noted)")
	f.IntVar(&maxTotal, "max-total", ingest.DefaultICalMaxTotal, "bound on the file's occurrences in the window (past it nothing is changed)")
	f.StringVar(&horizon, "max-horizon", "1830d", "how far after now --to may be (accepts d and w)")
	durationVar(f, &maxExpand, "max-expand-time", ingest.DefaultICalExpandTime, "bound on the time spent expanding recurrences")
	f.Int64Var(&maxBytes, "max-bytes", ingest.DefaultICalMaxBytes, "bound on the file's size")
	return cmd
}
