package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const tinyScenario = `name: tiny
duration: 2m
clients: {mode: requests}
load:
  rate: 300
  flash_sales: [{after: 30s, x: 3, rise: 10s, for: 40s}]
services:
  - name: catalog
    replicas: 3
    speeds: [1, 1, 0.5]
`

func runSim(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"sim", "--gc-percent", "0"}, args...)) // leave the test binary's GC alone
	err := root.Execute()
	return out.String(), err
}

// TestSimCommand: the command writes report.md, results.json and the
// plots, prints the results on stdout with --format json, and the same
// seed writes the same bytes.
func TestSimCommand(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(sc, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	stdout, err := runSim(t, "--scenario", sc, "--policies", "round_robin,least_request", "--seed", "3", "--out", out, "--format", "json", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.md", "results.json", "p99.png", "violations.png", "utilisation.png"} {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	written, _ := os.ReadFile(filepath.Join(out, "results.json"))
	if stdout != string(written) {
		t.Error("--format json output differs from results.json")
	}
	var res struct {
		Scenario string
		Seed     uint64
		Policies []struct {
			Policy  string
			Minutes []json.RawMessage
		}
	}
	if err := json.Unmarshal(written, &res); err != nil {
		t.Fatal(err)
	}
	if res.Scenario != "tiny" || res.Seed != 3 || len(res.Policies) != 2 || res.Policies[1].Policy != "least_request" || len(res.Policies[0].Minutes) != 2 {
		t.Errorf("results: %+v", res)
	}
	report, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(report), "| least_request |") || !strings.Contains(string(report), "![p99](p99.png)") {
		t.Errorf("report.md lacks the summary or the plots:\n%s", report)
	}
	out2 := filepath.Join(dir, "out2")
	if _, err := runSim(t, "--scenario", sc, "--policies", "round_robin,least_request", "--seed", "3", "--out", out2, "--quiet", "--parallel", "2"); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(out2, "results.json"))
	if !bytes.Equal(written, again) {
		t.Error("same seed, different results.json")
	}
}

// TestSimUsageErrors: bad input is a usage error (exit 2) naming the
// problem.
func TestSimUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(tinyScenario, "replicas: 3", "replicas: 3\n    wrokers: 2", 1)), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "--scenario is required"},
		{[]string{"--scenario", "no-such"}, `no scenario named "no-such"`},
		{[]string{"--scenario", bad, "--out", dir}, "bad.yaml:10: services[catalog].wrokers: unknown field"},
		{[]string{"--scenario", "steady", "--policies", "fastest", "--out", dir}, `unknown policy "fastest"`},
		{[]string{"--scenario", "steady", "--format", "xml"}, "--format"},
		{[]string{"--scenario", "steady", "--event-confidence", "1"}, "--event-confidence: event confidence 1: want a probability in [0.5, 0.999]"},
		{[]string{"--scenario", "steady", "--event-confidence", "0.3"}, "--event-confidence: event confidence 0.3"},
	}
	for _, tc := range cases {
		_, err := runSim(t, tc.args...)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sim %v: error %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
	out, err := runSim(t, "--list")
	if err != nil || !strings.Contains(out, "flash-sale\n") || !strings.Contains(out, "nasa-replay\n") {
		t.Errorf("--list: %q %v", out, err)
	}
}

const loopScenarioYAML = `
name: tiny-loop
duration: 40m
start: 2026-11-17T10:00:00Z
history: {days: 3}
calendar:
  file: sale.ics
  effects:
    sale: {x: 4, rise: 60s}
clients: {mode: requests}
load: {curve: {base: 100, diurnal: 0.4}}
services:
  - {name: a, replicas: 2, workers: 4, autoscale: {max: 12, pod_start: 30s}}
`

const loopCalendar = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:p1\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261115T140000Z\r\nDTEND:20261115T143000Z\r\nCATEGORIES:sale\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:p2\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261116T090000Z\r\nDTEND:20261116T093000Z\r\nCATEGORIES:sale\r\nEND:VEVENT\r\n" +
	"BEGIN:VEVENT\r\nUID:run\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:20261117T102500Z\r\nDTEND:20261117T103500Z\r\nCATEGORIES:sale\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

// TestSimCommandControls: --control and --seeds run the matrix, write the
// comparison (Markdown and JSON) and the control plot, print the
// comparison; a calendar file is read relative to the scenario.
func TestSimCommandControls(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a forecaster")
	}
	dir := t.TempDir()
	sc := filepath.Join(dir, "loop.yaml")
	os.WriteFile(sc, []byte(loopScenarioYAML), 0o644)
	os.WriteFile(filepath.Join(dir, "sale.ics"), []byte(loopCalendar), 0o644)
	out := filepath.Join(dir, "out")
	stdout, err := runSim(t, "--scenario", sc, "--policies", "peak_ewma", "--control", "predictive,reactive", "--seeds", "1-2", "--out", out, "--quiet", "--parallel", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"comparison.md", "comparison.json", "seed-1/results.json", "seed-2/control.png", "seed-1/report.md"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	for _, want := range []string{"controls × policies over 2 seeds", "| reactive | peak_ewma |", "| predictive | peak_ewma |", "events ready"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// Controls run in the order of sim.Controls whatever the flag's order.
	if strings.Index(stdout, "| reactive |") > strings.Index(stdout, "| predictive |") {
		t.Error("reactive is not listed first")
	}
	if _, err := runSim(t, "--scenario", sc, "--control", "psychic"); err == nil || !strings.Contains(err.Error(), "unknown control") {
		t.Errorf("unknown control: %v", err)
	}
	if _, err := runSim(t, "--scenario", sc, "--seeds", "5-2"); err == nil || !strings.Contains(err.Error(), "--seeds") {
		t.Errorf("bad seeds: %v", err)
	}
}

// TestSimDefaultOut (issue #16): without --out the results go to a new
// directory under the system's temporary directory, not the working
// tree, and its path is printed even with --quiet.
func TestSimDefaultOut(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	sc := filepath.Join(t.TempDir(), "tiny.yaml")
	if err := os.WriteFile(sc, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	before, _ := os.ReadDir(wd)
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs([]string{"sim", "--gc-percent", "0", "--scenario", sc, "--policies", "round_robin", "--quiet"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sim tiny: wrote (\S+)\n`).FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("stderr does not say where the results are: %q", errb.String())
	}
	if filepath.Dir(m[1]) != tmp {
		t.Errorf("results in %s, want a directory in %s", m[1], tmp)
	}
	if _, err := os.Stat(filepath.Join(m[1], "report.md")); err != nil {
		t.Error(err)
	}
	if after, _ := os.ReadDir(wd); len(after) != len(before) {
		t.Errorf("the working directory gained %d entries", len(after)-len(before))
	}
}
