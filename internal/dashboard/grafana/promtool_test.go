package grafana

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// promtool finds Prometheus's promtool (Debian package "prometheus",
// installed by .ci/run). Like the real-Prometheus tests, a missing binary
// fails the test, because CI must run it; LBSYS_SKIP_PROMETHEUS=1 is the
// explicit opt-out on a machine without the package.
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LBSYS_PROMTOOL"); p != "" {
		return p
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/promtool"); err == nil {
		return "/usr/bin/promtool"
	}
	if os.Getenv("LBSYS_SKIP_PROMETHEUS") == "1" {
		t.Skip("no promtool and LBSYS_SKIP_PROMETHEUS=1: skipping the promtool checks")
	}
	t.Fatal("the rule checks need promtool: apt-get install prometheus (or set LBSYS_PROMTOOL=/path/to/promtool); set LBSYS_SKIP_PROMETHEUS=1 to skip them on this machine")
	return ""
}

func writeGenerated(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := Write(dir, DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runPromtool(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPromtoolChecksGeneratedFiles: `promtool check config` accepts the
// scrape configuration (it loads the rule files it names too) and `promtool
// check rules` accepts both rule files.
func TestPromtoolChecksGeneratedFiles(t *testing.T) {
	bin := promtool(t)
	dir := filepath.Join(writeGenerated(t), "prometheus")
	out := runPromtool(t, bin, dir, "check", "config", "prometheus.yml")
	if !strings.Contains(out, "2 rule files found") {
		t.Errorf("check config did not load both rule files:\n%s", out)
	}
	out = runPromtool(t, bin, dir, "check", "rules", filepath.FromSlash("rules/lbsys-recording.yml"), filepath.FromSlash("rules/lbsys-alerts.yml"))
	t.Log(out)
}

// TestPromtoolRuleUnitTests runs testdata/rules_test.yml (synthetic series,
// expected alerts and recorded values) against the generated rules.
func TestPromtoolRuleUnitTests(t *testing.T) {
	bin := promtool(t)
	rules := filepath.Join(writeGenerated(t), "prometheus", "rules")
	b, err := os.ReadFile(filepath.Join("testdata", "rules_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rules, "rules_test.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, bin, rules, "test", "rules", "rules_test.yml")
}
