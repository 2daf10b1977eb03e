package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pedestrians = "../../internal/forecast/testdata/pedestrians_hourly.csv"

func runForecast(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(lbsysBinary(t), append([]string{"forecast", "eval"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("lbsys forecast eval %v did not finish", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestForecastEvalPrintsEveryModelPerHorizon(t *testing.T) {
	dir := t.TempDir()
	code, out, stderr := runForecast(t, "--trace", pedestrians, "--value-col", "location_41", "--budget", "20s",
		"--gbdt-trials", "3", "--lstm-trials", "2", "--report", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Series   string                                `json:"series"`
		Column   string                                `json:"column"`
		Horizons map[string]map[string]json.RawMessage `json:"horizons"`
		Notes    []string                              `json:"notes"`
		Tuning   map[string]any                        `json:"tuning"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Series != "pedestrians_hourly.csv" || doc.Column != "location_41" || len(doc.Horizons) != 2 {
		t.Fatalf("%+v", doc)
	}
	for _, h := range []string{"30m", "2h"} {
		hr := doc.Horizons[h]
		for _, m := range []string{"seasonal_naive", "ets", "gbdt", "lstm", "ensemble"} {
			var mm struct{ MASE, SMAPE *float64 }
			if err := json.Unmarshal(hr[m], &mm); err != nil || mm.MASE == nil || mm.SMAPE == nil {
				t.Errorf("%s %s: %s", h, m, hr[m])
			}
		}
	}
	if !strings.Contains(strings.Join(doc.Notes, "\n"), "evaluated as 1 step(s)") {
		t.Errorf("no note on rounding 30m to an hourly step: %v", doc.Notes)
	}
	if doc.Tuning["trials"] != float64(5) {
		t.Errorf("tuning %v", doc.Tuning)
	}
	if !strings.Contains(stderr, "Tuner") || !strings.Contains(stderr, "trial 5/5") {
		t.Errorf("no progress on stderr: %s", stderr)
	}
	for _, f := range []string{"report.md", "eval.json", "lineage.json", "forecast_30m.png", "forecast_2h.png"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("report file %s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"| 2h (2 steps) | seasonal_naive |", "Tuning trials", "Lineage", "forecast_2h.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

func TestForecastEvalMarkdownAndEvents(t *testing.T) {
	ics := filepath.Join(t.TempDir(), "events.ics")
	os.WriteFile(ics, []byte(strings.ReplaceAll(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//lbsys//test//EN
BEGIN:VEVENT
UID:1@test
DTSTAMP:20230101T000000Z
DTSTART:20230407T180000
DTEND:20230407T230000
SUMMARY:Footy
CATEGORIES:sport
RRULE:FREQ=WEEKLY;COUNT=4
END:VEVENT
END:VCALENDAR
`, "\n", "\r\n")), 0o644)
	code, out, stderr := runForecast(t, "--trace", pedestrians, "--value-col", "location_4", "--budget", "0",
		"--format", "md", "--events", ics, "--holidays", "au", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"| 30m (1 steps) | ensemble", "| 2h (2 steps) | seasonal_naive | ", "4 calendar event occurrences"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
	if stderr != "" {
		t.Errorf("--quiet printed %q", stderr)
	}
}

func TestForecastEvalRejectsBadUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "--trace is required"},
		{[]string{"--trace", pedestrians, "--format", "xml"}, exitUsage, "--format"},
		{[]string{"--trace", pedestrians, "--horizons", "soon"}, exitUsage, "--horizons"},
		{[]string{"--trace", pedestrians, "--horizons", "1x"}, exitUsage, "such as 30m, 2h, 1d or 2w"},
		{[]string{"--trace", pedestrians, "--horizons", "-1d"}, exitUsage, "positive duration"},
		{[]string{"--trace", pedestrians, "--budget", "1q"}, exitUsage, `"1q" is not a duration`},
		{[]string{"--trace", "no/such.csv"}, exitUsage, "no/such.csv"},
		{[]string{"--trace", pedestrians, "--value-col", "nope"}, exitUsage, "location_4"},
		{[]string{"--trace", pedestrians, "--holidays", "mars"}, exitUsage, "--holidays"},
		// An hour-long arrival log cannot hold out a 2-hour forecast.
		{[]string{"--trace", "../../internal/forecast/testdata/azure_llm_conv_arrivals_head.csv", "--quiet"}, exitFailure, "no horizon fits"},
	}
	for _, c := range cases {
		code, _, stderr := runForecast(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.want)
		}
	}
}

// TestForecastEvalReadsDayAndWeekHorizons: `--horizons 1d,2w` is read
// (issue #16: it was refused as not a duration); 1d of an hourly series is
// 24 steps and evaluated, 2w does not fit 30 days of data and is skipped
// with the reason.
func TestForecastEvalReadsDayAndWeekHorizons(t *testing.T) {
	code, out, stderr := runForecast(t, "--trace", pedestrians, "--value-col", "location_41", "--horizons", "1d,2w",
		"--budget", "0.0001w", "--gbdt-trials", "1", "--lstm-trials", "0", "--no-lstm", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Horizons map[string]struct {
			Steps int `json:"steps"`
		} `json:"horizons"`
		Skipped map[string]string `json:"skipped"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if h, ok := doc.Horizons["24h"]; !ok || h.Steps != 24 || len(doc.Horizons) != 1 {
		t.Errorf("horizons %+v, want 24h of 24 steps", doc.Horizons)
	}
	if why := doc.Skipped["336h"]; !strings.Contains(why, "336 steps") {
		t.Errorf("skipped %v, want 336h skipped for its length", doc.Skipped)
	}
}
