package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/store"
	"github.com/lbsys/lbsys/internal/testnet"
)

// controllerScenario writes the controller's inputs: three days of history
// per minute (catalog 40 rps, cart 10 rps, in requests per wall second)
// ending at start, with a flash sale at 10:00 on each of the last two
// days that tripled the load, and a calendar with those two sales and a
// third one at 10:00 on the run's day (20 minutes after start).
func controllerScenario(t *testing.T, dir string, start time.Time) (history, calendar string) {
	t.Helper()
	day := start.Truncate(24 * time.Hour)
	sales := []time.Time{day.Add(-48*time.Hour + 10*time.Hour), day.Add(-24*time.Hour + 10*time.Hour), day.Add(10 * time.Hour)}
	var h strings.Builder
	h.WriteString("timestamp,catalog,cart\n")
	for ts := start.Add(-72 * time.Hour); ts.Before(start); ts = ts.Add(time.Minute) {
		x := 1.0
		for _, s := range sales[:2] {
			if !ts.Before(s) && ts.Before(s.Add(30*time.Minute)) {
				x = 3
			}
		}
		fmt.Fprintf(&h, "%s,%g,%g\n", ts.Format(time.RFC3339), 40*x, 10*x)
	}
	var c strings.Builder
	c.WriteString("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//lbsys test//EN\r\n")
	for i, s := range sales {
		fmt.Fprintf(&c, "BEGIN:VEVENT\r\nUID:sale-%d\r\nDTSTAMP:20260301T000000Z\r\nDTSTART:%s\r\nDTEND:%s\r\nSUMMARY:Flash sale\r\nCATEGORIES:FLASH_SALE\r\nEND:VEVENT\r\n",
			i, s.Format("20060102T150405Z"), s.Add(30*time.Minute).Format("20060102T150405Z"))
	}
	c.WriteString("END:VCALENDAR\r\n")
	history, calendar = filepath.Join(dir, "history.csv"), filepath.Join(dir, "sales.ics")
	if err := os.WriteFile(history, []byte(h.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(calendar, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return history, calendar
}

// TestControllerProposesAFloorBeforeTheEvent: real `lbsys shop` backends
// (two catalog instances, one cart), a real `lbsys proxy` with its agent,
// a real single-node `lbsys coordinator`, `lbsys load` sending traffic,
// and `lbsys controller` on compressed time (60×: a virtual minute per
// second) with three days of history and a flash sale announced 20
// virtual minutes after its start. The controller learns a replica's
// capacity from the shops' load reports and the sale's uplift from the
// past ones, and the coordinator receives a standard change whose
// directive holds a catalog replica floor above the two instances
// running, proposed before the sale begins; the proxy applies it. A
// token without the proposer role, or an unknown one, stops the
// controller with exit 2 and says which role it needs; SIGTERM stops it
// with exit 0.
func TestControllerProposesAFloorBeforeTheEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	bin := lbsysBinary(t)
	dir := t.TempDir()
	const (
		ctrlTok  = "controller-token-0123456789"
		agentTok = "agent-token-0123456789abcd"
		viewTok  = "viewer-token-0123456789abc"
	)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokens := write("tokens", fmt.Sprintf("%s controller proposer\n%s proxy agent\n%s viewer viewer\n", ctrlTok, agentTok, viewTok))
	ctrlTokFile, viewTokFile := write("controller.token", ctrlTok+"\n"), write("viewer.token", viewTok+"\n")
	badTokFile := write("bad.token", "unknown-token-0123456789abc\n")
	agentTokFile := write("agent.token", agentTok+"\n")

	// The coordinator.
	coordHTTP := testnet.Addr(t)
	startGProc(t, "coordinator", nil, "coordinator", "--id", "c1", "--raft-addr", testnet.Addr(t), "--http-addr", coordHTTP,
		"--data-dir", filepath.Join(dir, "gaia"), "--bootstrap", "--tokens-file", tokens, "--heartbeat-timeout", "150ms",
		"--election-timeout", "150ms", "--leader-lease-timeout", "100ms", "--commit-timeout", "5ms", "--canary-fraction", "0",
		"--watch-wait", "2s", "--log-level", "warn")
	coordURL := "http://" + coordHTTP
	viewer := client.New([]string{coordURL}, viewTok)
	waitFor(t, 20*time.Second, "the coordinator to lead", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := viewer.Status(ctx)
		return err == nil && s.RaftState == "Leader"
	})

	// The shops: one worker each, 20 ms a request, so a replica's
	// capacity is about 50 rps.
	shop := func(service string) string {
		addr := testnet.Addr(t)
		startGProc(t, service+"@"+addr, nil, "shop", "--service", service, "--listen", addr, "--workers", "1", "--latency", "20ms",
			"--cv", "0", "--warmup", "0s", "--log-level", "warn")
		return addr
	}
	cat1, cat2, cart := shop("catalog"), shop("catalog"), shop("cart")
	for _, a := range []string{cat1, cat2, cart} {
		waitHTTP(t, "http://"+a+"/healthz")
	}

	// The proxy, with its agent.
	listen, admin := testnet.Addr(t), testnet.Addr(t)
	cfg := write("lbsys.yaml", fmt.Sprintf(`admin: {listen: %s}
coordinator: {urls: [%q], token_file: %q, proxy_id: p1, state_file: %q}
listeners:
  - name: shop
    listen: %s
    routes:
      - {match: {path_prefix: /catalog}, service: catalog}
      - {match: {path_prefix: /cart}, service: cart}
services:
  - name: catalog
    policy: peak_ewma
    endpoints: [{address: %q}, {address: %q}]
    health: {active: {path: /healthz, interval: 1s, timeout: 500ms}}
    admission: {initial_limit: 64, max_limit: 1024}
  - name: cart
    policy: peak_ewma
    endpoints: [{address: %q}]
`, admin, coordURL, agentTokFile, filepath.Join(dir, "agent-state.json"), listen, cat1, cat2, cart))
	startGProc(t, "proxy", nil, "proxy", "--config", cfg, "--log-level", "warn")
	adminURL := "http://" + admin
	waitHTTP(t, adminURL+"/healthz")

	// Traffic: 40 rps to catalog, 10 to cart, as in the history.
	startGProc(t, "load", nil, "load", "--target", "http://"+listen, "--mode", "requests", "--mix", "catalog=2,product=2,cart=1",
		"--rate", "50", "--duration", "150s", "--quiet", "--max-error-rate", "0")

	start := time.Date(2026, 3, 4, 9, 40, 0, 0, time.UTC)
	history, calendar := controllerScenario(t, dir, start)
	args := func(tokenFile string) []string {
		return []string{"controller", "--coordinator", coordURL, "--token-file", tokenFile, "--proxy-admin", adminURL,
			"--history", history, "--load-unit", "rps", "--calendar", calendar, "--services", "catalog,cart",
			"--time-factor", "60", "--start", start.Format(time.RFC3339), "--no-lstm", "--holidays", "none"}
	}

	// Tokens that cannot propose: exit 2, saying what is needed.
	for _, tc := range []struct{ name, file, want string }{
		{"unknown token", badTokFile, "the token was refused"},
		{"viewer token", viewTokFile, "needs the proposer role"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, bin, args(tc.file)...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %v, want exit 2 with %q; output:\n%s", tc.name, err, tc.want, tail(string(out), 2000))
		}
	}

	ctrl := startGProc(t, "controller", nil, args(ctrlTokFile)...)
	t0 := time.Now()

	// The coordinator's stable directive gets a catalog floor above the
	// two instances, for the announced sale.
	var (
		d     *directive.Directive
		scale *directive.Scale
	)
	waitFor(t, 120*time.Second, "a directive with a catalog floor for the flash sale", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		if d, err = viewer.Directive(ctx, 0, false); err != nil || d == nil {
			return false
		}
		s := d.Services["catalog"]
		if s == nil || s.Scale == nil || s.Scale.Why == nil {
			return false
		}
		scale = s.Scale
		return scale.Replicas > 2 && scale.Why.Driver == "event"
	})
	t.Logf("%.1fs: version %d: catalog floor %d: %s", time.Since(t0).Seconds(), d.Version, scale.Replicas, scale.Why.Text)

	// Proposed as a standard change, before the sale (the directive's
	// times are wall-clock times).
	cat, ev, ok := strings.Cut(scale.Why.Event, " ")
	saleStart, err := time.Parse(time.RFC3339, ev)
	if !ok || cat != "flash_sale" || err != nil {
		t.Fatalf("scale.why.event %q: want \"flash_sale <RFC 3339 start>\"", scale.Why.Event)
	}
	var list struct {
		Changes []change.ChangeSummary `json:"changes"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := viewer.Do(ctx, http.MethodGet, "/v1/changes?limit=100", nil, &list); err != nil {
		t.Fatal(err)
	}
	var view change.ChangeView
	for _, c := range list.Changes {
		if c.Version == d.Version {
			if err := viewer.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/changes/%d", c.ID), nil, &view); err != nil {
				t.Fatal(err)
			}
		}
	}
	if view.Change == nil || view.Type != change.Standard || view.Requester != "controller" {
		t.Fatalf("the change of version %d: %+v; want a standard change by the controller's principal", d.Version, view.Change)
	}
	if !view.CreatedAt.Before(saleStart) || scale.By == nil || scale.By.After(saleStart) {
		t.Errorf("change created at %v, floor ready by %v: want both before the sale at %v", view.CreatedAt, scale.By, saleStart)
	}

	// The proxy applies it.
	waitFor(t, 20*time.Second, "the proxy to apply the floor", func() bool {
		resp, err := http.Get(adminURL + "/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			Coordinator *struct {
				Version  uint64 `json:"version"`
				Services map[string]struct {
					Scale *directive.Scale `json:"scale"`
				} `json:"services"`
			} `json:"coordinator"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st) != nil || st.Coordinator == nil {
			return false
		}
		s := st.Coordinator.Services["catalog"].Scale
		return st.Coordinator.Version >= d.Version && s != nil && s.Replicas > 2
	})

	// SIGTERM: a clean stop, exit 0; the decisions were logged with why.
	ctrl.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ctrl.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the controller did not stop within 15s of SIGTERM")
	}
	if code := ctrl.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	out := ctrl.out.String()
	for _, want := range []string{"msg=decision", "service=catalog", "driver=event", `why="floor`, "controller proposed a directive", `msg="controller stopped"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the controller's log lacks %q:\n%s", want, tail(out, 3000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestControllerUsageErrors: bad flags exit 2 with what to fix, before
// anything is read; a proxy that does not answer exits 1 naming it.
func TestControllerUsageErrors(t *testing.T) {
	bin := lbsysBinary(t)
	dir := t.TempDir()
	hist := filepath.Join(dir, "h.csv")
	if err := os.WriteFile(hist, []byte("timestamp,catalog\n2026-03-04T10:00:00Z,1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down := "http://" + testnet.Addr(t)
	base := []string{"controller", "--dry-run", "--proxy-admin", down, "--history", hist, "--services", "catalog"}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"controller"}, exitUsage, "--coordinator is required"},
		{[]string{"controller", "--dry-run"}, exitUsage, "--proxy-admin is required"},
		{[]string{"controller", "--dry-run", "--proxy-admin", down}, exitUsage, "--services is required"},
		{[]string{"controller", "--dry-run", "--proxy-admin", down, "--services", "a"}, exitUsage, "--store lbsys.db (filled by lbsys ingest) or --history"},
		{append(base, "--every", "90s"), exitUsage, "--every 1m30s: want whole minutes"},
		{append(base, "--every", "1d"), exitFailure, "did not answer"}, // days are read; then the proxy is down
		{append(base, "--control", "oracle"), exitUsage, "lbsys sim only"},
		{append(base, "--start", "2026-03-04T10:00:00Z"), exitUsage, "--start needs --time-factor"},
		{append(base, "--target-utilisation", "1.5"), exitUsage, "--target-utilisation 1.5"},
		{append(base, "--event-confidence", "1"), exitUsage, "--event-confidence: event confidence 1: want a probability"},
		{append(base, "--proxy-admin", "127.0.0.1:9901"), exitUsage, "want http://host:port"},
		{append(base, "--load-unit", "rpm"), exitUsage, "--load-unit \"rpm\""},
		{append(base, "--coordinator", "http://127.0.0.1:1"), exitUsage, "--dry-run proposes nothing"},
		{[]string{"controller", "--coordinator", "http://127.0.0.1:1", "--proxy-admin", down, "--history", hist, "--services", "catalog"}, exitUsage, "needs a token with the proposer role"},
		{base, exitFailure, down},
	} {
		cmd := exec.Command(bin, tc.args...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "LBSYS_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("lbsys %s: %v, want exit %d with %q; output:\n%s", strings.Join(tc.args, " "), err, tc.code, tc.want, tail(string(out), 1500))
		}
	}
}

// TestControllerDryRunFromTheStore: the history from a store (telemetry
// series, as lbsys ingest telemetry writes them) and its ingested
// calendar; --dry-run plans without a coordinator, logs each decision and
// stops on SIGTERM with exit 0.
func TestControllerDryRunFromTheStore(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	lbsysBinary(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "lbsys.db")
	start := time.Date(2026, 3, 4, 9, 40, 0, 0, time.UTC)
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	id, err := st.EnsureSeries(ctx, store.SeriesKey{Service: "catalog", Metric: "requests"}, "telemetry")
	if err != nil {
		t.Fatal(err)
	}
	var ss []store.Sample
	for ts := start.Add(-48 * time.Hour); ts.Before(start); ts = ts.Add(time.Minute) {
		ss = append(ss, store.Sample{Series: id, T: ts.UnixMilli(), V: 20})
	}
	if _, err := st.WritePoints(ctx, ss); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReplaceEvents(ctx, "marketing", start.Add(-72*time.Hour), start.Add(72*time.Hour), []store.Event{
		{Calendar: "marketing", UID: "s1", Start: start.Add(20 * time.Minute), End: start.Add(50 * time.Minute), Categories: []string{"flash_sale"}},
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	backend := ln.Addr().String()
	admin := testnet.Addr(t)
	cfg := filepath.Join(dir, "lbsys.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`admin: {listen: %s}
listeners:
  - {name: main, listen: %s, routes: [{match: {path_prefix: /catalog}, service: catalog}]}
services:
  - name: catalog
    endpoints: [{address: %s}]
    admission: {}
`, admin, testnet.Addr(t), backend)), 0o600); err != nil {
		t.Fatal(err)
	}
	startGProc(t, "proxy", nil, "proxy", "--config", cfg, "--log-level", "warn")
	waitHTTP(t, "http://"+admin+"/healthz")

	ctrl := startGProc(t, "controller", nil, "controller", "--dry-run", "--proxy-admin", "http://"+admin, "--store", db, "--window", "2d",
		"--services", "catalog", "--time-factor", "60", "--no-lstm", "--holidays", "none", "--load-report-path", "")
	waitFor(t, 60*time.Second, "two minutes planned", func() bool { return strings.Count(ctrl.out.String(), "msg=decision") >= 2 })
	ctrl.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ctrl.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the controller did not stop within 15s of SIGTERM")
	}
	out := ctrl.out.String()
	if code := ctrl.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0:\n%s", code, tail(out, 3000))
	}
	for _, want := range []string{"telemetry series: requests per second", "upcoming_events=1", "virtual_start=2026-03-04T09:40:00Z",
		"no floor: a replica's capacity is not learned yet", "dry_run=true"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, tail(out, 3000))
		}
	}
}
