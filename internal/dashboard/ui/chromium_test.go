package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/dashboard/ui/cdp"
	"github.com/lbsys/lbsys/internal/proxy"
	"github.com/lbsys/lbsys/internal/shop"
)

// TestUIInChromium loads the page in headless Chromium against a running
// system on 127.0.0.1 — demo shop services, an lbsys proxy in front of
// them, a coordinator stand-in streaming directives to the proxy's agent,
// and a bounded load — and checks what a person would see: every service
// has its three charts drawn from non-empty series (the forecast too),
// the endpoint table, the directive timeline with its reasons; the page
// draws its data (how fast is logged: issue #14's goal is under a second),
// updates every second, and with a small window its series and heap stay
// flat. It keeps a screenshot:
//
//	go test -run TestUIInChromium ./internal/dashboard/ui
//
// writes it to $LBSYS_ARTIFACTS/ui.png, by default
// lbsys-artifacts/ui.png under the system's temporary directory (the test
// logs the path).
func TestUIInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser, shops and a proxy: not in -short")
	}
	bin := cdp.Require(t, "the web UI's browser test")
	sys := startSystem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	br, err := cdp.Start(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	pg, err := br.NewPage(ctx, 1400, 1000)
	if err != nil {
		t.Fatal(err)
	}

	// First load: wait for data, then for a few more polls.
	if err := pg.Navigate(ctx, sys.admin+"/"); err != nil {
		t.Fatal(err)
	}
	if err := pg.WaitFor(ctx, "the first data", `window.lbsysUI && lbsysUI.ready`); err != nil {
		t.Fatalf("%v; console: %q", err, br.Problems())
	}
	var timing struct {
		DOMContentLoaded float64 `json:"dcl"`
		Load             float64 `json:"load"`
		FirstData        float64 `json:"first"`
	}
	loadTiming := `(() => { const n = performance.getEntriesByType('navigation')[0];
		return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, first: lbsysUI.firstDataMs}; })()`
	if err := pg.Eval(ctx, loadTiming, &timing); err != nil {
		t.Fatal(err)
	}
	t.Logf("first load: DOM ready %.0f ms, load %.0f ms, first data drawn %.0f ms", timing.DOMContentLoaded, timing.Load, timing.FirstData)
	// The load times are measurements, logged above (issue #14's goal is
	// under a second; on a quiet machine the page draws in about 0.2 s).
	// The test asserts that the page drew its data and did not hang: the
	// bound is loose because this test shares two cores with the race
	// detector's suite, which can stall the browser for a second.
	const hung = 10000
	if timing.FirstData <= 0 || timing.FirstData >= hung {
		t.Errorf("a cold browser drew the first data %.0f ms after navigation, want a time under %d ms", timing.FirstData, hung)
	}

	// A new directive while the page is open reaches the timeline.
	sys.coord.set(sys.directive(2))
	if err := pg.WaitFor(ctx, "version 2 in the timeline", `lbsysUI.changes.some(c => c.version === 2)`); err != nil {
		t.Fatal(err)
	}
	var polls int
	pg.Eval(ctx, `lbsysUI.polls`, &polls)
	start := time.Now()
	if err := pg.WaitFor(ctx, "three more polls", fmt.Sprintf(`lbsysUI.polls >= %d`, polls+3)); err != nil {
		t.Fatal(err)
	}
	// Once a second: not faster (a busy loop), and not much slower even
	// on a loaded machine.
	if d := time.Since(start); d < 1500*time.Millisecond || d > 12*time.Second {
		var diag any
		pg.Eval(ctx, `({fetchMs: lbsysUI.fetchMs, pollMs: lbsysUI.pollMs, vis: document.visibilityState})`, &diag)
		t.Errorf("three polls took %v: the page should poll once a second (%v)", d, diag)
	}

	var sum struct {
		Polls, Failures, Canvases, Changes, Events int
		LastError                                  string
		Window                                     int
		Services                                   map[string]map[string]json.RawMessage
	}
	if err := pg.Eval(ctx, `lbsysUI.summary()`, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Failures != 0 || sum.LastError != "" {
		t.Errorf("polls failed: %d, %s", sum.Failures, sum.LastError)
	}
	if len(sum.Services) != 2 || sum.Canvases < 6 {
		t.Errorf("%d services and %d canvases drawn, want 2 services with 3 charts each", len(sum.Services), sum.Canvases)
	}
	for name, s := range sum.Services {
		var charts int
		json.Unmarshal(s["charts"], &charts)
		if charts != 3 {
			t.Errorf("%s: %d charts", name, charts)
		}
		for _, f := range []string{"rps", "forecast", "forecast_hi", "endpoints", "admission_limit", "p99_ms"} {
			var v struct {
				Values, Length int
				Max            *float64
			}
			json.Unmarshal(s[f], &v)
			if v.Values == 0 || v.Max == nil || *v.Max <= 0 {
				t.Errorf("%s: series %s has %d values (of %d), max %v: want data", name, f, v.Values, v.Length, v.Max)
			}
		}
	}
	if sum.Changes != 2 || sum.Events != 1 {
		t.Errorf("timeline: %d changes, %d events; want 2 and 1", sum.Changes, sum.Events)
	}
	// Ahead of now: the directive's forecast (ten minutes of it) on both
	// request charts, catalog's floor on its capacity chart, and the sale
	// three minutes ahead drawn on catalog's charts.
	for name, s := range sum.Services {
		var ahead struct{ Points, Forecast, Floor int }
		var drawn []string
		json.Unmarshal(s["ahead"], &ahead)
		json.Unmarshal(s["drawnEvents"], &drawn)
		if ahead.Points == 0 || ahead.Forecast == 0 || (name == "catalog") != (ahead.Floor > 0) {
			t.Errorf("%s: ahead of now the charts hold %+v: want the forecast, and the floor on catalog's only", name, ahead)
		}
		if (name == "catalog") != (len(drawn) == 1 && strings.HasPrefix(drawn[0], "flash-sale ")) {
			t.Errorf("%s: events drawn %q: want the sale on catalog's charts only", name, drawn)
		}
	}

	// What is on the page, as text and markup.
	var dom struct {
		Headings  []string `json:"h"`
		Rows      int      `json:"rows"`
		TH        int      `json:"th"`
		Timeline  string   `json:"timeline"`
		Summary   string   `json:"summary"`
		Status    string   `json:"status"`
		AriaChart int      `json:"aria"`
	}
	if err := pg.Eval(ctx, `({
		h: [...document.querySelectorAll('h1,h2')].map(e => e.textContent),
		rows: document.querySelectorAll('section.service table.endpoints tbody tr').length,
		th: document.querySelectorAll('section.service table.endpoints thead th[scope=col]').length,
		timeline: document.getElementById('changes').innerText,
		summary: document.querySelector('section[data-service=catalog] .summary').textContent,
		status: document.getElementById('status').textContent,
		aria: [...document.querySelectorAll('.chart[role=img]')].filter(e => (e.getAttribute('aria-label')||'').length > 10).length,
	})`, &dom); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"lbsys proxy", "catalog", "inventory", "Directive timeline", "Incidents", "Events"} {
		if !strings.Contains(strings.Join(dom.Headings, "|"), h) {
			t.Errorf("no heading %q in %q", h, dom.Headings)
		}
	}
	if dom.Rows != 5 || dom.TH != 22 {
		t.Errorf("endpoint tables: %d rows (want 3 + 2), %d column headers (want 2 × 11)", dom.Rows, dom.TH)
	}
	for _, want := range []string{"Version 2", "Version 1", "floor 3 for the sale", "expected effect: p99 under 200 ms", "weights: "} {
		if !strings.Contains(dom.Timeline, want) {
			t.Errorf("the timeline lacks %q:\n%s", want, dom.Timeline)
		}
	}
	for _, want := range []string{"req/s", "endpoints in rotation", "admission limit", "policy weighted"} {
		if !strings.Contains(dom.Summary, want) {
			t.Errorf("catalog's summary lacks %q: %s", want, dom.Summary)
		}
	}
	if !strings.Contains(dom.Status, "directive v2") || !strings.Contains(dom.Status, "coordinator connected") {
		t.Errorf("status line: %s", dom.Status)
	}
	if dom.AriaChart != 6 {
		t.Errorf("%d charts have a text alternative, want 6", dom.AriaChart)
	}

	// The screenshot and the page's markup, kept after the test (see
	// cdp.ArtifactPath).
	keepScreenshot(ctx, t, pg, "ui.png")

	// Second load (cached assets revalidated), with a window of 5 points:
	// the page draws again (its time logged), and after many polls its
	// series hold 5 points and its heap has not grown.
	if err := pg.Navigate(ctx, sys.admin+"/?window=5"); err != nil {
		t.Fatal(err)
	}
	if err := pg.WaitFor(ctx, "the first data again", `window.lbsysUI && lbsysUI.ready && lbsysUI.window === 5`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Eval(ctx, loadTiming, &timing); err != nil {
		t.Fatal(err)
	}
	t.Logf("second load: DOM ready %.0f ms, load %.0f ms, first data drawn %.0f ms", timing.DOMContentLoaded, timing.Load, timing.FirstData)
	if timing.FirstData <= 0 || timing.FirstData >= hung {
		t.Errorf("the page drew its first data %.0f ms after navigation, want a time under %d ms", timing.FirstData, hung)
	}
	if err := pg.WaitFor(ctx, "6 polls", `lbsysUI.polls >= 6`); err != nil {
		t.Fatal(err)
	}
	heap1, err := pg.JSHeap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var nodes1, nodes2 int
	countNodes := `document.getElementsByTagName('*').length`
	pg.Eval(ctx, countNodes, &nodes1)
	if err := pg.WaitFor(ctx, "12 polls", `lbsysUI.polls >= 12`); err != nil {
		t.Fatal(err)
	}
	heap2, _ := pg.JSHeap(ctx)
	pg.Eval(ctx, countNodes, &nodes2)
	var lengths []int
	pg.Eval(ctx, `Object.values(lbsysUI.services).flatMap(s => Object.values(s.data).map(a => a.length))`, &lengths)
	for _, n := range lengths {
		if n != 5 {
			t.Errorf("a series holds %d points with ?window=5: %v", n, lengths)
			break
		}
	}
	t.Logf("JS heap %.0f KiB after 6 polls, %.0f KiB after 12; DOM elements %d then %d", heap1/1024, heap2/1024, nodes1, nodes2)
	if heap2 > heap1+512*1024 {
		t.Errorf("the page's heap grew from %.0f to %.0f KiB in 6 polls", heap1/1024, heap2/1024)
	}
	if nodes2 > nodes1+5 {
		t.Errorf("the page grew from %d to %d elements in 6 polls", nodes1, nodes2)
	}
	if p := br.Problems(); len(p) > 0 {
		t.Errorf("console errors (a CSP violation shows here too):\n%s", strings.Join(p, "\n"))
	}
}

// keepScreenshot keeps the page (cdp.KeepScreenshot) and logs where.
func keepScreenshot(ctx context.Context, t *testing.T, pg *cdp.Page, name string) {
	t.Helper()
	path, size := cdp.KeepScreenshot(ctx, t, pg, name)
	t.Logf("screenshot: %s (%d KiB)", path, size>>10)
}

// system is what the page is tested against.
type system struct {
	admin     string
	coord     *stubCoordinator
	directive func(version uint64) *directive.Directive
}

// startSystem starts catalog (3 instances) and inventory (2) shop
// services, a proxy in front of them whose agent follows a coordinator
// stand-in offering version 1, and a bounded load of about 40 req/s per
// service until the test ends (at most 90 s or 10,000 requests).
func startSystem(t *testing.T) *system {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	groups := map[string]*shop.Group{}
	for i, svc := range []struct {
		name string
		n    int
	}{{"catalog", 3}, {"inventory", 2}} {
		sc := shop.DefaultConfig()
		sc.Service = svc.name
		sc.Addrs = make([]string, svc.n)
		sc.Speeds = make([]float64, svc.n)
		for k := range sc.Addrs {
			sc.Addrs[k], sc.Speeds[k] = "127.0.0.1:0", 1
		}
		sc.Latency = 5 * time.Millisecond
		sc.Warmup = time.Second
		sc.Seed = uint64(i + 1)
		sc.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		g, err := shop.Start(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		groups[svc.name] = g
	}

	now := time.Now().UTC().Truncate(time.Second)
	cat := groups["catalog"].Addrs()
	mk := func(version uint64) *directive.Directive {
		sale := now.Add(3 * time.Minute)
		var fc []directive.Point
		for m := -5; m <= 10; m++ {
			rps := 40 + 4*float64(m+5)
			fc = append(fc, directive.Point{At: now.Add(time.Duration(m) * time.Minute), RPS: rps, Lo: rps * 0.7, Hi: rps * 1.5})
		}
		why := &directive.Why{Model: "ensemble@3", Blessed: true, Forecast: fc, ExpectedEffect: "no shedding during the sale"}
		weights := map[string]float64{cat[0]: 1, cat[1]: 1, cat[2]: 1}
		if version > 1 {
			weights[cat[2]] = 0.5
		}
		return &directive.Directive{Schema: 1, Version: version, Change: 100 + version, CommittedAt: now, Services: map[string]*directive.Service{
			"catalog": {
				Weights:    weights,
				WeightsWhy: &directive.Reason{Text: fmt.Sprintf("%s answers slower: half its share", cat[2]), Driver: "telemetry"},
				Admission:  &directive.Admission{Seed: 64, Cap: 512, Why: &directive.Reason{Text: "cap 512 = 2 × the upper band's concurrency (Little's law)", Driver: "forecast"}},
				Scale: &directive.Scale{Replicas: 3, By: &sale, Why: &directive.Reason{Text: "floor 3 for the sale", Driver: "event",
					Event: "flash-sale " + sale.Format(time.RFC3339), LoadRPS: 120, PerReplicaRPS: 60, ExpectedEffect: "p99 under 200 ms during the sale"}},
				Why: why,
			},
			"inventory": {Admission: &directive.Admission{Seed: 32, Why: &directive.Reason{Text: "seed from last week's peak", Driver: "telemetry"}}, Why: why},
		}}
	}
	coord := newStubCoordinator(t)
	coord.set(mk(1))

	dir := t.TempDir()
	tok := filepath.Join(dir, "agent.token")
	os.WriteFile(tok, []byte(coord.token+"\n"), 0o600)
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: 127.0.0.1:0}\nlisteners:\n  - name: shop\n    listen: 127.0.0.1:0\n    routes:\n")
	b.WriteString("      - {match: {path_prefix: /catalog}, service: catalog}\n      - {match: {path_prefix: /inventory}, service: inventory}\n")
	b.WriteString("services:\n")
	for _, s := range []struct{ name, policy string }{{"catalog", "weighted"}, {"inventory", "prequal"}} {
		fmt.Fprintf(&b, "  - name: %s\n    policy: %s\n    endpoints:\n", s.name, s.policy)
		for _, a := range groups[s.name].Addrs() {
			fmt.Fprintf(&b, "      - {address: %q}\n", a)
		}
		b.WriteString("    health: {active: {path: /healthz, interval: 1s, timeout: 500ms}}\n    admission: {initial_limit: 64, max_limit: 1024}\n")
	}
	fmt.Fprintf(&b, "coordinator: {urls: [%q], token_file: %q, proxy_id: ui-test, state_file: %q, wait: 1s}\n", coord.url, tok, filepath.Join(dir, "state.json"))
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	px, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	if err := px.StartAgent(nil); err != nil {
		t.Fatal(err)
	}
	base := "http://" + px.Addr(cfg.Listeners[0].Listen)

	// The load: two paced loops, bounded in count and time.
	var sent atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for _, path := range []string{"/catalog/products/p0001", "/inventory/stock/p0002"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for sent.Add(1) <= 10000 && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if resp, err := client.Get(base + path); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &system{admin: "http://" + px.AdminAddr(), coord: coord, directive: mk}
}

// stubCoordinator plays the coordinator's side of the directive stream
// (POST /v1/agent/watch) for the proxy's agent: it offers one directive,
// holding a poll a moment when there is nothing new.
type stubCoordinator struct {
	url   string
	token string
	mu    sync.Mutex
	offer *directive.Directive
}

func newStubCoordinator(t *testing.T) *stubCoordinator {
	t.Helper()
	c := &stubCoordinator{token: "ui-test-agent-token"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+directive.WatchPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+c.token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req directive.WatchRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		offer := c.offer
		c.mu.Unlock()
		resp := directive.WatchResponse{Nonce: fmt.Sprint(time.Now().UnixNano()), Version: req.Version}
		if offer != nil && offer.Version != req.Version && offer.Version != req.Rejected {
			resp.Version, resp.Directive = offer.Version, offer
		} else {
			select { // a short long-poll: the agent asks again at once
			case <-r.Context().Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("POST "+directive.ReportPath, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := &http.Server{Handler: mux}
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c.url = "http://" + ln.Addr().String()
	return c
}

func (c *stubCoordinator) set(d *directive.Directive) {
	c.mu.Lock()
	c.offer = d
	c.mu.Unlock()
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
