package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/ingest"
	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/testnet"
)

// prometheusBinary finds a real Prometheus server (Debian package
// "prometheus", installed by .ci/run). The test must run in CI, and .ci/run
// sets no variable that tells CI from a laptop, so a missing binary fails
// the test rather than skipping it silently; LBSYS_SKIP_PROMETHEUS=1 is the
// explicit opt-out for a machine without the package.
func prometheusBinary(t *testing.T) string {
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
		t.Skip("no prometheus binary and LBSYS_SKIP_PROMETHEUS=1: skipping the real-Prometheus integration test")
	}
	t.Fatal("the real-Prometheus integration test needs the prometheus server: apt-get install prometheus " +
		"(or set LBSYS_PROMETHEUS=/path/to/prometheus); set LBSYS_SKIP_PROMETHEUS=1 to skip it on this machine")
	return ""
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPrometheus runs our own Prometheus on a free loopback port scraping
// target every second, with its TSDB in a temporary directory. It returns
// the base URL once /-/ready answers.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lbsys
    scrape_interval: 1s
    scrape_timeout: 900ms
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target)), 0o644)
	for attempt := 1; ; attempt++ {
		base, out, ok := tryPrometheus(t, bin, cfg, filepath.Join(dir, fmt.Sprint("data", attempt)))
		if ok {
			return base
		}
		// Most likely the port was taken between testnet.Addr and the bind.
		if attempt == 3 {
			t.Fatalf("prometheus exited three times:\n%s", out)
		}
		t.Logf("prometheus exited, retrying on another port:\n%s", out)
	}
}

// tryPrometheus starts one Prometheus; ok is false if it exited before
// being ready.
func tryPrometheus(t *testing.T, bin, cfg, data string) (string, string, bool) {
	addr := testnet.Addr(t)
	out := &syncBuffer{}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+data,
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
	for {
		select {
		case err := <-exited:
			return "", fmt.Sprintf("%v\n%s", err, out), false
		default:
		}
		if resp, err := liveClient.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(func() {
					stop()
					if t.Failed() {
						t.Logf("prometheus output:\n%s", out)
					}
				})
				return base, "", true
			}
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("prometheus not ready after 30s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// promQuery runs an instant or range query for the test's own checks.
func promQuery(base, path string, q url.Values) (json.RawMessage, error) {
	resp, err := liveClient.Get(base + path + "?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	if env.Status != "success" {
		return nil, errors.New(env.Error)
	}
	return env.Data, nil
}

// TestPrometheusRealServer (moved here from internal/ingest, issue #16:
// ingestion's tests may not import the data plane) scrapes a real lbsys proxy with a real
// Prometheus (1 s scrape interval), sends traffic through the proxy and
// ingests sum(rate(lbsys_requests_total[5s])) by (service) through
// query_range, in small chunks.
func TestPrometheusRealServer(t *testing.T) {
	bin := prometheusBinary(t)
	px := startLiveProxy(t, "")
	admin := strings.TrimPrefix(px.admin, "http://")
	base := startPrometheus(t, bin, admin)

	// Traffic for as long as the test needs it.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				for range 5 {
					resp, err := liveClient.Get(px.url + "/")
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	const query = `sum(rate(lbsys_requests_total[5s])) by (service)`
	// Wait until Prometheus has scraped enough for the rate: several
	// seconds with a positive value for the proxy's service.
	within(t, 45*time.Second, "Prometheus to have a few seconds of the proxy's request rate", func() bool {
		now := time.Now()
		data, err := promQuery(base, "/api/v1/query_range", url.Values{"query": {query},
			"start": {fmt.Sprint(now.Add(-30 * time.Second).Unix())}, "end": {fmt.Sprint(now.Unix())}, "step": {"1"}})
		if err != nil {
			return false
		}
		series, _, err := ingest.ParsePromMatrix([]byte(`{"status":"success","data":` + string(data) + `}`))
		if err != nil || len(series) != 1 || series[0].Labels["service"] != "app" {
			return false
		}
		positive := 0
		for _, v := range series[0].Values {
			if v.Problem == nil && v.Value > 0 {
				positive++
			}
		}
		return positive >= 6
	})

	st := testStore(t)
	// Stop a few seconds back: the newest scrape may still be landing, and
	// the second import below must see the same data.
	end := time.Now().Add(-3 * time.Second).Truncate(time.Second)
	o := ingest.PrometheusOptions{URL: base, Query: query, Metric: "requests_rate", Start: end.Add(-40 * time.Second), End: end,
		Step: time.Second, ChunkPoints: 10}
	rep, err := runSource(t, st, "prometheus", func(ctx context.Context, run *ingest.Run) error { return ingest.ImportPrometheus(ctx, run, o) })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Quarantined != 0 || rep.Inserted < 3 {
		t.Fatalf("report: %s", rep)
	}
	pts := points(t, st, store.SeriesKey{Service: "app", Metric: "requests_rate"}, store.Raw)
	if len(pts) != int(rep.Inserted) || len(pts) > 41 {
		t.Fatalf("%d points stored, report %s", len(pts), rep)
	}
	var maxRate float64
	for i, p := range pts {
		if i > 0 && p.T-pts[i-1].T < 1000 {
			t.Fatalf("points closer than the 1 s step: %v", pts)
		}
		maxRate = max(maxRate, p.V)
	}
	// The generator sends about 5 requests every 20 ms: 250/s at most.
	if maxRate <= 0 || maxRate > 1000 {
		t.Errorf("request rate %v/s", maxRate)
	}
	// Re-running the same range is idempotent against a real server too.
	rep, err = runSource(t, st, "prometheus", func(ctx context.Context, run *ingest.Run) error { return ingest.ImportPrometheus(ctx, run, o) })
	if err != nil || rep.Inserted != 0 || rep.Updated != 0 || rep.Unchanged != int64(len(pts)) {
		t.Errorf("re-import: %s %v", rep, err)
	}
	// A query Prometheus refuses comes back with its own message.
	bad := o
	bad.Query = "sum(rate(lbsys_requests_total[5s]"
	_, err = runSource(t, st, "prometheus", func(ctx context.Context, run *ingest.Run) error { return ingest.ImportPrometheus(ctx, run, bad) })
	if err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("bad query: %v", err)
	}
}
