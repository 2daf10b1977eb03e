package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
