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

func TestReadICSExpandsRecurrences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cal.ics")
	os.WriteFile(path, []byte(strings.ReplaceAll(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//lbsys//test//EN
BEGIN:VEVENT
UID:a@test
DTSTAMP:20240101T000000Z
DTSTART;TZID=America/New_York:20240105T200000
DTEND;TZID=America/New_York:20240105T220000
SUMMARY:TV Premiere
RRULE:FREQ=WEEKLY;BYDAY=FR
END:VEVENT
BEGIN:VEVENT
UID:b@test
DTSTAMP:20240101T000000Z
DTSTART;VALUE=DATE:20240126
SUMMARY:Sale
CATEGORIES:black friday,sale
END:VEVENT
BEGIN:VEVENT
UID:c@test
DTSTAMP:20240101T000000Z
DTSTART:20231201T100000Z
DTEND:20231201T110000Z
SUMMARY:Outside
END:VEVENT
END:VCALENDAR
`, "\n", "\r\n")), 0o644)
	ny, _ := time.LoadLocation("America/New_York")
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ev, err := readICS(path, ny, from, from.Add(28*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var prem, sale, outside int
	for _, e := range ev {
		switch e.Category {
		case "tv_premiere":
			prem++
			// Wall-clock New York time, made naive.
			if e.Start.Hour() != 20 || e.End.Sub(e.Start) != 2*time.Hour || e.Start.Weekday() != time.Friday {
				t.Errorf("premiere at %v", e.Start)
			}
		case "black_friday":
			sale++
			if e.End.Sub(e.Start) != 24*time.Hour {
				t.Errorf("all-day sale lasts %v", e.End.Sub(e.Start))
			}
		default:
			outside++
		}
	}
	if prem != 4 || sale != 1 || outside != 1 {
		t.Errorf("premieres %d sales %d others %d: %+v", prem, sale, outside, ev)
	}
	if _, err := readICS(filepath.Join(t.TempDir(), "missing.ics"), ny, from, from); err == nil {
		t.Error("missing file accepted")
	}
}
