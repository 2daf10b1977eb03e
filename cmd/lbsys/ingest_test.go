package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/store"
)

// runIngest runs `lbsys ingest ARGS…` in process and returns its output.
func runIngest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"ingest"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func testdataPath(parts ...string) string {
	return filepath.Join(append([]string{"..", "..", "testdata"}, parts...)...)
}

func TestIngestCSVAndStatus(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lbsys.db")
	out, err := runIngest(t, "--store", db, "csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"),
		"--service", "nasa", "--metric", "requests", "--tz", "America/New_York")
	if err != nil || !strings.Contains(out, "csv: 7776 inserted, 0 updated, 0 unchanged, 0 quarantined") {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	out, err = runIngest(t, "--store", db, "csv", "--file", testdataPath("ingest", "trace-bad.csv"),
		"--service", "shop", "--metric", "requests", "--time-col", "ts", "--value-col", "v", "--tz", "America/New_York")
	if err != nil || !strings.Contains(out, "14 quarantined") || !strings.Contains(out, "quarantined: 3 missing_field, the first: trace-bad.csv:3: missing_field") ||
		!strings.Contains(out, "quarantined: 2 malformed, the first: trace-bad.csv:18: malformed") {
		t.Fatalf("bad csv: %v\n%s", err, out)
	}
	out, err = runIngest(t, "--store", db, "status", "-n", "3")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"series 2:", "quarantined 14", "csv     ambiguous_time", "recent runs:", "latest quarantine reasons:", "trace-bad.csv:19: malformed"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, err = runIngest(t, "--store", db, "status", "--json")
	var s ingest.Status
	if err != nil || json.Unmarshal([]byte(out), &s) != nil || s.Stats.Series != 2 || len(s.Runs) != 2 || s.Runs[0].Quarantined != 14 {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	out, err = runIngest(t, "--store", db, "compact")
	if err != nil || !strings.Contains(out, "deleted raw points") {
		t.Fatalf("compact: %v %s", err, out)
	}
}

func TestIngestUsageErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lbsys.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "name a source"},
		{[]string{"csv", "--file", "x.csv"}, "--service and --metric are required"},
		{[]string{"csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"), "--service", "s", "--metric", "m"}, "pass --tz"},
		{[]string{"csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"), "--service", "s", "--metric", "m", "--tz", "Mars/Base"}, "not an IANA time zone"},
		{[]string{"csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"), "--service", "s", "--metric", "m", "--time-col", "ts"}, `no time column "ts"`},
		{[]string{"telemetry"}, "exactly one of --admin"},
		{[]string{"prometheus", "--url", "http://127.0.0.1:1"}, "--query"},
		{[]string{"prometheus", "--url", "http://127.0.0.1:1", "--query", "up", "--step", "0.5s"}, "whole seconds"},
		{[]string{"prometheus", "--url", "http://127.0.0.1:1", "--query", "up", "--since", "soon"}, "--since"},
		{[]string{"servicenow", "--instance", "https://x.service-now.com"}, "no credentials"},
		{[]string{"backstage"}, "--file is required"},
		{[]string{"ical", "--file", "x.ics"}, "--calendar"},
		{[]string{"ical", "--file", "x.ics", "--calendar", "m", "--from", "2027-01-01", "--to", "2026-01-01"}, "window is empty"},
		{[]string{"ical", "--file", "x.ics", "--calendar", "m", "--future", "3000d"}, "more than --max-horizon"},
		{[]string{"ical", "--file", "x.ics", "--calendar", "m", "--max-total", "0"}, "must be positive"},
		{[]string{"ical", "--file", "x.ics", "--calendar", "m", "--max-horizon", "soon"}, "--max-horizon"},
		{[]string{"--max-future", "-1h", "csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"), "--service", "s", "--metric", "m", "--tz", "UTC"}, "--max-future"},
		{[]string{"csv", "--file", testdataPath("traces", "nasa_http_1995_07_5min.csv"), "--service", "s", "--metric", "m", "--tz", "UTC", "--retention", "forever"}, "--retention"},
		{[]string{"csv", "--bogus"}, "unknown flag"},
	} {
		for _, k := range []string{"SERVICENOW_USER", "SERVICENOW_TOKEN", "SERVICENOW_PASSWORD"} {
			t.Setenv(k, "") // the runner's own credentials must not leak in
			os.Unsetenv(k)
		}
		_, err := runIngest(t, append([]string{"--store", db}, tc.args...)...)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || (!errors.As(err, &ue) && tc.want != "unknown flag") {
			t.Errorf("%v: err = %v (usage: %v), want a usage error mentioning %q", tc.args, err, errors.As(err, &ue), tc.want)
		}
	}
	// A store file in a directory that does not exist is a usage error too.
	_, err := runIngest(t, "--store", "/nonexistent/dir/x.db", "compact")
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("store in a missing directory: %v", err)
	}
}

func TestIngestCatalogCalendarAndGraph(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lbsys.db")
	out, err := runIngest(t, "--store", db, "backstage", "--file", testdataPath("ingest", "catalog-info.yaml"),
		"--file", testdataPath("ingest", "catalog-payments.yaml"))
	if err != nil || !strings.Contains(out, "backstage: 35 inserted") || !strings.Contains(out, "2 skipped") {
		t.Fatalf("backstage: %v\n%s", err, out)
	}
	out, err = runIngest(t, "--store", db, "graph", "--service", "checkout")
	if err != nil || !strings.Contains(out, "depends on:  bs:api:default/inventory-api, cart, payment") {
		t.Fatalf("graph: %v\n%s", err, out)
	}
	out, err = runIngest(t, "--store", db, "graph")
	if err != nil || !strings.Contains(out, "NODE") || !strings.Contains(out, "checkout") {
		t.Fatalf("graph: %v\n%s", err, out)
	}
	out, err = runIngest(t, "--store", db, "ical", "--file", testdataPath("ingest", "campaigns.ics"), "--calendar", "marketing",
		"--from", "2026-11-01", "--to", "2027-12-31", "--category", "Misc")
	if err != nil || !strings.Contains(out, "ical: 19 inserted") || !strings.Contains(out, "note: floating times") {
		t.Fatalf("ical: %v\n%s", err, out)
	}
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	evs, _ := st.Events(context.Background(), store.EventQuery{From: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC), Categories: []string{"misc"}})
	if len(evs) != 1 || evs[0].UID != "flash-sale@shop.example" {
		t.Errorf("--category on an event without CATEGORIES: %+v", evs)
	}
}

// TestIngestTelemetryFollowInterrupt runs the real binary following a
// telemetry file and stops it with SIGINT: it exits 0 with its summary and
// the run is recorded as interrupted.
func TestIngestTelemetryFollowInterrupt(t *testing.T) {
	dir := t.TempDir()
	db, jsonl := filepath.Join(dir, "lbsys.db"), filepath.Join(dir, "records.jsonl")
	var lines strings.Builder
	for s := range 5 {
		fmt.Fprintf(&lines, `{"ts":"2026-11-27T10:00:0%dZ","service":"app","requests":%d,"errors":0,"p50_ms":1,"p90_ms":2,"p99_ms":3,"in_flight":0,"bytes_in":1,"bytes_out":2}`+"\n", s, s+1)
	}
	os.WriteFile(jsonl, []byte(lines.String()), 0o644)
	p := startLbsys(t, "ingest", "--store", db, "telemetry", "--file", jsonl, "--follow", "--interval", "50ms")
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pts, err := st.RangeByKey(context.Background(), store.SeriesKey{Service: "app", Metric: "requests"},
			time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), store.Raw)
		if err == nil && len(pts) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower did not store the 5 seconds: %v %d\n%s", err, len(pts), p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t, 10*time.Second)
	if out := p.stderr.String(); !strings.Contains(out, "telemetry: 40 inserted") {
		t.Errorf("summary missing:\n%s", out)
	}
	runs, _ := st.IngestRuns(context.Background(), 1)
	if len(runs) != 1 || runs[0].Status != "interrupted" {
		t.Errorf("runs %+v", runs)
	}
	// A usage error exits 2 from the real binary.
	err = exec.Command(lbsysBinary(t), "ingest", "--store", db, "csv").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Errorf("usage error exit: %v", err)
	}
}

// TestIngestCSVTypoYearAndStrayQuote: through the CLI, a trace with a
// 2126 typo and a stray quote keeps every other row; the summary names the
// first row of each reason; the run exits 0. --max-future moves the bound.
func TestIngestCSVTypoYearAndStrayQuote(t *testing.T) {
	dir := t.TempDir()
	db, file := filepath.Join(dir, "lbsys.db"), filepath.Join(dir, "last.csv")
	now := time.Now().UTC().Truncate(time.Minute)
	var b strings.Builder
	b.WriteString("timestamp,requests\n")
	for i := 120; i > 0; i-- {
		at := now.Add(-time.Duration(i) * time.Minute).Format(time.RFC3339)
		switch i {
		case 100:
			at = "2126" + at[4:]
		case 50:
			fmt.Fprintf(&b, "%s,\"5\n", at)
			continue
		}
		fmt.Fprintf(&b, "%s,%d\n", at, i)
	}
	fmt.Fprintf(&b, "%s,7\n", now.Add(3*time.Hour).Format(time.RFC3339))
	os.WriteFile(file, []byte(b.String()), 0o644)
	out, err := runIngest(t, "--store", db, "csv", "--file", file, "--service", "shop", "--metric", "requests")
	if err != nil || !strings.Contains(out, "csv: 119 inserted, 0 updated, 0 unchanged, 2 quarantined (future_time 1, malformed 1)") ||
		!strings.Contains(out, "quarantined: 1 future_time, the first: last.csv:22: future_time: shop/requests at 2126-") ||
		!strings.Contains(out, "quarantined: 1 malformed, the first: last.csv:72: malformed: field 2: the quote") {
		t.Fatalf("%v\n%s", err, out)
	}
	// With --max-future 1h the row three hours ahead is refused too.
	out, err = runIngest(t, "--store", filepath.Join(dir, "strict.db"), "--max-future", "1h", "csv", "--file", file, "--service", "shop", "--metric", "requests")
	if err != nil || !strings.Contains(out, "118 inserted") || !strings.Contains(out, "future_time 2") || !strings.Contains(out, "more than the 1h0m0s allowed") {
		t.Fatalf("--max-future 1h: %v\n%s", err, out)
	}
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ser, _ := st.ListSeries(context.Background(), store.SeriesFilter{Service: "shop"})
	if len(ser) != 1 || ser[0].Retention != store.RetainArchive || ser[0].Last.After(now.Add(4*time.Hour)) {
		t.Errorf("series %+v", ser)
	}
}
