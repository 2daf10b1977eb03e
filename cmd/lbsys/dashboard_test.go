package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/dashboard/grafana"
	"github.com/lbsys/lbsys/internal/telemetry"
	"github.com/lbsys/lbsys/internal/testnet"
)

// TestDashboardCommandWritesTheDeployFiles: `lbsys dashboard --out DIR`
// with the default flags writes exactly the files committed under deploy/
// (which the generator's golden test pins), and refuses bad usage with
// exit code 2 and a message saying what to fix.
func TestDashboardCommandWritesTheDeployFiles(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(lbsysBinary(t), "dashboard", "--out", out)
	stdout, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("lbsys dashboard: %v\n%s", err, stdout)
	}
	files, _ := grafana.Files(grafana.DefaultOptions())
	if len(files) < 7 {
		t.Fatalf("only %d generated files", len(files))
	}
	for rel := range files {
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("%s not written: %v", rel, err)
			continue
		}
		want, err := os.ReadFile(filepath.Join("..", "..", "deploy", filepath.FromSlash(rel)))
		if err != nil {
			t.Errorf("deploy/%s: %v", rel, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from deploy/%s", rel, rel)
		}
		if !strings.Contains(string(stdout), filepath.Join(out, filepath.FromSlash(rel))) {
			t.Errorf("output does not list %s:\n%s", rel, stdout)
		}
	}

	file := filepath.Join(t.TempDir(), "plain-file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dashboard"}, "--out is required"},
		{[]string{"dashboard", "--out", file}, "is a file; give a directory"},
		{[]string{"dashboard", "--out", out, "--proxy", "localhost"}, `proxy target "localhost": want host:port`},
		{[]string{"dashboard", "--out", out, "--prometheus-url", "prometheus:9090"}, "want http://host:port"},
		{[]string{"dashboard", "--out", out, "--dashboards-path", "dash"}, "absolute directory"},
		{[]string{"dashboard", "--out", out, "--scrape-interval", "1500ms"}, "whole seconds"},
		{[]string{"dashboard", "--out", out, "extra"}, "unknown command"},
	} {
		b, err := exec.Command(lbsysBinary(t), tc.args...).CombinedOutput()
		if code := processExit(err); code != 2 || !strings.Contains(string(b), tc.want) {
			t.Errorf("lbsys %s: exit %d, output %q; want exit 2 and %q", strings.Join(tc.args, " "), code, b, tc.want)
		}
	}
}

// processExit is a finished process's exit code (-1 when it did not run).
func processExit(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return -1
}

// dashPrometheus finds the Prometheus server like internal/ingest's
// real-Prometheus test: LBSYS_PROMETHEUS, PATH, /usr/bin; missing fails
// unless LBSYS_SKIP_PROMETHEUS=1 (CI installs the Debian package).
func dashPrometheus(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LBSYS_PROMETHEUS"); p != "" {
		return p
	}
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	if os.Getenv("LBSYS_SKIP_PROMETHEUS") == "1" {
		t.Skip("no prometheus binary and LBSYS_SKIP_PROMETHEUS=1: skipping the dashboard queries against a real Prometheus")
	}
	t.Fatal("the dashboard query test needs the prometheus server: apt-get install prometheus (or set LBSYS_PROMETHEUS=/path/to/prometheus); set LBSYS_SKIP_PROMETHEUS=1 to skip it on this machine")
	return ""
}

var promClient = &http.Client{Timeout: 10 * time.Second}

// promAPI calls a Prometheus query API and returns its data.
func promAPI(base, path string, q url.Values) (json.RawMessage, error) {
	resp, err := promClient.Get(base + path + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%s: %v: %.200s", path, err, b)
	}
	if env.Status != "success" {
		return nil, errors.New(env.Error)
	}
	return env.Data, nil
}

// promResult counts the series of a query result and their samples.
type promResult struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  []any             `json:"value"`
		Values [][]any           `json:"values"`
	} `json:"result"`
}

func (r promResult) samples() int {
	n := 0
	for _, s := range r.Result {
		if len(s.Value) > 0 {
			n++
		}
		n += len(s.Values)
	}
	return n
}

// startDashPrometheus runs Prometheus on a free loopback port with cfg and
// its TSDB in a temporary directory, until the test ends.
func startDashPrometheus(t *testing.T, bin, cfg string) string {
	t.Helper()
	for attempt := 1; attempt <= 3; attempt++ {
		addr := testnet.Addr(t)
		out := &syncBuffer{}
		cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(t.TempDir(), "data"),
			"--web.listen-address="+addr, "--storage.tsdb.retention.time=1h", "--log.level=warn")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		base := "http://" + addr
		deadline := time.Now().Add(30 * time.Second)
		for ready := false; !ready; {
			select {
			case err := <-exited:
				t.Logf("prometheus exited (attempt %d): %v\n%s", attempt, err, out)
				ready = true // leave the loop, try another port
				continue
			case <-time.After(50 * time.Millisecond):
			}
			if resp, err := promClient.Get(base + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Cleanup(func() {
						stop()
						if t.Failed() {
							t.Logf("prometheus output:\n%s", out)
						}
					})
					return base
				}
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("prometheus not ready after 30s:\n%s", out)
			}
		}
	}
	t.Fatal("prometheus exited three times")
	return ""
}

// expand substitutes Grafana's variables the way a dashboard showing all
// services would.
func expand(expr string) string {
	keys := make([]string, 0, len(grafana.TestVariables))
	for k := range grafana.TestVariables {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) }) // $__rate_interval before $__interval
	for _, k := range keys {
		expr = strings.ReplaceAll(expr, k, grafana.TestVariables[k])
	}
	return expr
}

// eventOnly are counters with no series until their first event (the
// proxy creates a child per label set when it counts): a quiet demo may
// have none, so the panels fall back to 0 for them (see orZero).
var eventOnly = map[string]bool{
	telemetry.RetriesTotal:         true,
	telemetry.RetryBudgetExhausted: true,
}

var (
	recordingName = regexp.MustCompile(`\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b`)
	lbsysMetric   = regexp.MustCompile(`\blbsys_[a-z0-9_]+\b`)
)

// TestDashboardQueriesAgainstRealPrometheus starts `lbsys demo` and a real
// Prometheus scraping its proxy every second with the generated recording
// rules, waits (bounded) for data, and runs every query of every generated
// dashboard: each panel query a proxy serving traffic can answer must
// return at least one series; queries that need the closed loop, a
// coordinator or a cache are evaluated (so a syntax error still fails) and
// then skipped with the reason; annotation queries must evaluate.
func TestDashboardQueriesAgainstRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo and Prometheus for a minute or two")
	}
	bin := dashPrometheus(t)
	// Only flags every version of the demo has: it is being extended into
	// the closed loop while this test exists.
	demo := startLbsys(t, "demo", "--duration", "6m", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--peak-rps", "100", "--seed", "7")
	// Stop it as Ctrl-C would, so that whatever it started stops too
	// (runs before startLbsys's kill: cleanups run last-registered first).
	t.Cleanup(func() {
		demo.cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-demo.done:
			demo.done <- err
		case <-time.After(30 * time.Second):
			t.Log("lbsys demo still running 30 s after Ctrl-C: killing it")
		}
	})
	metricsLine := regexp.MustCompile(`metrics\s+http://(127\.0\.0\.1:\d+)/metrics`)
	gaiaLine := regexp.MustCompile(`gaia\s+http://(127\.0\.0\.1:\d+)\s`)
	var admin string
	coordinators := []string{}
	for deadline := time.Now().Add(60 * time.Second); admin == ""; {
		if m := metricsLine.FindStringSubmatch(demo.stderr.String()); m != nil {
			admin = m[1]
			// A demo running the closed loop prints its coordinator:
			// scraping it gives the coordinator panels their data.
			if g := gaiaLine.FindStringSubmatch(demo.stderr.String()); g != nil {
				coordinators = append(coordinators, g[1])
			}
			break
		}
		select {
		case err := <-demo.done:
			demo.done <- err
			t.Fatalf("lbsys demo ended before printing its admin address: %v\n%s", err, demo.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lbsys demo printed no admin address within 60s:\n%s", demo.stderr.String())
		}
	}

	dir := t.TempDir()
	files, err := grafana.Files(grafana.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var ruleFiles []string
	for _, rel := range []string{grafana.RecordingRulesFile, grafana.AlertingRulesFile} {
		p := filepath.Join(dir, filepath.Base(rel))
		if err := os.WriteFile(p, files[rel], 0o644); err != nil {
			t.Fatal(err)
		}
		ruleFiles = append(ruleFiles, p)
	}
	cfg, err := grafana.PrometheusConfigYAML(grafana.Options{ProxyTargets: []string{admin}, CoordinatorTargets: coordinators, ScrapeInterval: time.Second}, ruleFiles)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfgPath, cfg, 0o644)
	base := startDashPrometheus(t, bin, cfgPath)

	// Data for every service, and enough history for the 20s rate windows
	// and the 1m rules: bounded at 150 s (a closed-loop demo trains its
	// forecaster before the load starts).
	start := time.Now()
	ready := func() (bool, string) {
		for _, q := range []string{grafana.RuleRequestRate, grafana.RuleLatencyP99, grafana.RuleUpstreamP99, grafana.RuleBurnRate("6h")} {
			data, err := promAPI(base, "/api/v1/query", url.Values{"query": {q}})
			if err != nil {
				return false, err.Error()
			}
			var r promResult
			json.Unmarshal(data, &r)
			if len(r.Result) < 5 {
				return false, fmt.Sprintf("%s: %d series", q, len(r.Result))
			}
		}
		return time.Since(start) > 25*time.Second, "history"
	}
	for deadline := time.Now().Add(150 * time.Second); ; {
		ok, why := ready()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no data for every service after 150s (%s); demo output:\n%s", why, demo.stderr.String())
		}
		select {
		case err := <-demo.done:
			demo.done <- err
			t.Fatalf("lbsys demo ended early: %v\n%s", err, demo.stderr.String())
		case <-time.After(time.Second):
		}
	}

	// Every lbsys metric a query that must have data reads is exported by
	// the demo's proxy (or is a counter that appears with its first event):
	// a misspelt name in the first operand of an `or` fallback would
	// otherwise go unnoticed.
	namesData, err := promAPI(base, "/api/v1/label/__name__/values", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	json.Unmarshal(namesData, &names)
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}

	now := time.Now()
	var skipped []string
	for _, q := range grafana.Queries() {
		q := q
		name := fmt.Sprintf("%s/%s/%s", q.Dashboard, q.Panel, q.RefID)
		t.Run(name, func(t *testing.T) {
			expr := expand(q.Expr)
			if strings.Contains(expr, "$") {
				t.Fatalf("unexpanded variable in %s", expr)
			}
			var data json.RawMessage
			var err error
			if q.Instant {
				data, err = promAPI(base, "/api/v1/query", url.Values{"query": {expr}, "time": {fmt.Sprint(now.Unix())}})
			} else {
				data, err = promAPI(base, "/api/v1/query_range", url.Values{"query": {expr},
					"start": {fmt.Sprint(now.Add(-20 * time.Second).Unix())}, "end": {fmt.Sprint(now.Unix())}, "step": {"2"}})
			}
			if err != nil {
				t.Fatalf("query fails: %v\n%s", err, expr)
			}
			var r promResult
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
			if q.Annotation {
				t.Logf("annotation query evaluates (%d series now)", len(r.Result))
				return
			}
			if q.Need != grafana.NeedNone {
				if r.samples() > 0 {
					t.Logf("has data (%d series): this run provides what it %s", len(r.Result), q.Need.Reason())
					return
				}
				skipped = append(skipped, name)
				t.Skipf("%s; the query evaluates (no series in this run)", q.Need.Reason())
			}
			if len(r.Result) == 0 || r.samples() == 0 {
				t.Errorf("no data for\n%s", expr)
			}
			for _, m := range lbsysMetric.FindAllString(recordingName.ReplaceAllString(expr, ""), -1) {
				if !have[m] && !eventOnly[m] {
					t.Errorf("reads %s, which the demo's proxy does not export", m)
				}
			}
		})
	}
	t.Logf("%d queries skipped until a closed-loop demo run produces their data:\n%s", len(skipped), strings.Join(skipped, "\n"))
}
