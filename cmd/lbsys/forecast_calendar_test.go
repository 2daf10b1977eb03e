package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/pipeline"
	"github.com/lbsys/lbsys/internal/store"
)

// TestForecastReadsCalendarsLikeTheIngester: `lbsys forecast eval
// --events F` and `lbsys ingest ical --file F` followed by `lbsys pipeline
// run` give the forecaster the same events from the same file: the same
// occurrences (time zones, recurrences, overrides, cancellations, all-day
// dates, floating times) under the same categories, and the same events
// left out of a file with bad ones (issue #16: the CLI had a reader of its
// own, which read some calendars differently).
func TestForecastReadsCalendarsLikeTheIngester(t *testing.T) {
	ctx := context.Background()
	// The pipeline reads events around its window: [until − window − 8 d,
	// until + 8 d). Every occurrence of the fixtures in it lies well
	// inside, so the window's edges (overlap for the store, start for the
	// reader) do not matter.
	until := time.Date(2027, 5, 24, 0, 0, 0, 0, time.UTC)
	window := 227 * 24 * time.Hour
	from, to := until.Add(-window-8*24*time.Hour), until.Add(8*24*time.Hour)
	for _, tc := range []struct {
		file, tz string
		min      int // events at least: the comparison is not of two empty lists
	}{
		{"campaigns.ics", "", 15},
		{"campaigns.ics", "America/New_York", 15},
		{"campaigns-bad.ics", "", 2},
	} {
		t.Run(tc.file+"/"+tc.tz, func(t *testing.T) {
			file := filepath.Join("../../testdata/ingest", tc.file)
			db := filepath.Join(t.TempDir(), "lbsys.db")
			// A load series for the pipeline to read events for.
			st, err := store.Open(ctx, db, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			id, err := st.EnsureSeries(ctx, store.SeriesKey{Service: "checkout", Metric: "requests"}, "test")
			if err != nil {
				t.Fatal(err)
			}
			var pts []store.Sample
			for i := range 60 {
				pts = append(pts, store.Sample{Series: id, T: until.Add(-time.Duration(i+1) * time.Minute).UnixMilli(), V: 10})
			}
			if _, err := st.WritePoints(ctx, pts); err != nil {
				t.Fatal(err)
			}
			st.Close()

			args := []string{"ingest", "ical", "--store", db, "--file", file, "--calendar", "marketing", "--from", "2026-01-01", "--to", "2028-01-01"}
			if tc.tz != "" {
				args = append(args, "--tz", tc.tz)
			}
			if out, err := exec.Command(lbsysBinary(t), args...).CombinedOutput(); err != nil {
				t.Fatalf("lbsys %v: %v\n%s", args, err, out)
			}
			st, err = store.Open(ctx, db, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ex, err := (&pipeline.StoreSource{Store: st, Services: []string{"checkout"}, Until: until, Window: window}).Examples(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Events of every service and those naming checkout (the
			// fixture's release names checkout and payment); the CLI's trace
			// is one series, to which every event applies.
			ingested := slices.Concat(ex.Events, ex.Series[0].Events)

			tz := time.UTC
			if tc.tz != "" {
				if tz, err = time.LoadLocation(tc.tz); err != nil {
					t.Fatal(err)
				}
			}
			naive := func(t time.Time) time.Time {
				t = t.In(tz)
				return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
			}
			read, notes, err := readEvents(file, tz, tc.tz != "", nil, naive(from), naive(to))
			if err != nil {
				t.Fatal(err)
			}
			// The CLI's events are on the trace's clock: naive times in tz.
			for i := range read {
				read[i].Start = absolute(read[i].Start, tz)
				read[i].End = absolute(read[i].End, tz)
			}
			if got, want := eventSet(read), eventSet(ingested); !slices.Equal(got, want) || len(want) < tc.min {
				t.Errorf("lbsys forecast eval reads %d events:\n  %s\nthe ingester and the pipeline %d:\n  %s",
					len(got), strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
			}
			if tc.file == "campaigns-bad.ics" && len(notes) < 9 {
				t.Errorf("the 9 events the ingester quarantines are not all named: %q", notes)
			}
		})
	}
}

// absolute reads a naive time as a wall-clock time in tz.
func absolute(t time.Time, tz *time.Location) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), tz).UTC()
}

// eventSet writes events as sorted lines, to compare as sets.
func eventSet(evs []forecast.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s %s .. %s", e.Category, e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339)))
	}
	slices.Sort(out)
	return out
}
