package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/liveloop"
	"github.com/lbsys/lbsys/internal/proxy"
)

// The controller's sources (internal/liveloop) against real proxies
// (internal/proxy, in process): a test of both planes together, so it
// lives here, in the package that wires them (internal/deptest's
// control-plane rule).

var ctlQuiet = slog.New(slog.DiscardHandler)

// ctlRecorder is a controller that keeps the minutes it observed.
type ctlRecorder struct{ seen []control.Minute }

func (r *ctlRecorder) Name() string                  { return "recorder" }
func (r *ctlRecorder) Observe(m control.Minute)      { r.seen = append(r.seen, m) }
func (r *ctlRecorder) Decide(time.Time) control.Plan { return control.Plan{} }

// ctlBackend is a replica on 127.0.0.1: it answers traffic, and its load
// report (busy_seconds, workers) when report is set.
type ctlBackend struct {
	addr    string
	busy    atomic.Int64 // milliseconds
	workers int
	report  bool
}

func startCtlBackend(t *testing.T, workers int, report bool) *ctlBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &ctlBackend{addr: ln.Addr().String(), workers: workers, report: report}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == liveloop.DefaultLoadReportPath {
			if !b.report {
				http.NotFound(w, r)
				return
			}
			fmt.Fprintf(w, `{"instance":"x","busy_seconds":%g,"workers":%d,"requests":1}`, float64(b.busy.Load())/1000, b.workers)
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// ctlProxy is a real lbsys proxy on 127.0.0.1 (internal/proxy, as `lbsys
// proxy` runs it) with one service per entry of services.
type ctlProxy struct {
	url, admin string
}

type ctlService struct {
	name      string
	policy    string
	admission bool
	endpoints []string
}

func startCtlProxy(t *testing.T, services ...ctlService) *ctlProxy {
	t.Helper()
	var b strings.Builder
	b.WriteString("admin: {listen: 127.0.0.1:0}\nlisteners:\n  - name: main\n    listen: 127.0.0.1:0\n    routes:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "      - {match: {path_prefix: /%s}, service: %s}\n", s.name, s.name)
	}
	b.WriteString("services:\n")
	for _, s := range services {
		fmt.Fprintf(&b, "  - name: %s\n    policy: %s\n    endpoints:\n", s.name, s.policy)
		for _, e := range s.endpoints {
			fmt.Fprintf(&b, "      - {address: %q}\n", e)
		}
		if s.admission {
			b.WriteString("    admission: {}\n")
		}
	}
	cfg, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	px, err := proxy.New(cfg, proxy.Options{Logger: ctlQuiet, TickInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	return &ctlProxy{url: "http://" + px.Addr(cfg.Listeners[0].Listen), admin: "http://" + px.AdminAddr()}
}

var ctlClient = &http.Client{Timeout: 10 * time.Second}

// send makes n requests to path through the proxy.
func (p *ctlProxy) send(t *testing.T, path string, n int) {
	t.Helper()
	for range n {
		resp, err := ctlClient.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
}

// closedCtlURL is an admin URL nothing listens on.
func closedCtlURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

// ctlEventually polls cond every 20 ms for at most 10 s.
func ctlEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProxiesSumTelemetryAndMergeViews: two real proxies in front of the
// same replicas. The telemetry the controller reads is both proxies'
// records (the loop's minute sums them); a proxy that does not answer is
// reported and left out; the services' views keep the capabilities every
// proxy has (admission and weights only where all run them) and the
// endpoints any finds available.
func TestProxiesSumTelemetryAndMergeViews(t *testing.T) {
	b1, b2 := startCtlBackend(t, 1, false), startCtlBackend(t, 1, false)
	eps := []string{b1.addr, b2.addr}
	pa := startCtlProxy(t, ctlService{"catalog", "weighted", true, eps}, ctlService{"cart", "round_robin", true, eps[:1]})
	pb := startCtlProxy(t, ctlService{"catalog", "weighted", true, eps}, ctlService{"cart", "round_robin", false, eps[:1]})
	start := time.Now().UTC().Truncate(time.Second)
	pa.send(t, "/catalog/x", 30)
	pb.send(t, "/catalog/x", 20)
	pb.send(t, "/cart/x", 5)

	p := &liveloop.Proxies{URLs: []string{pa.admin, pb.admin}, Log: ctlQuiet}
	sum := func(service string) (n, served int64) {
		recs, errs := p.ReadTelemetry(context.Background(), start.Add(-time.Second), "")
		if len(errs) > 0 {
			t.Fatalf("errors: %v", errs)
		}
		for _, r := range recs {
			if r.Service != service || r.Time.Before(start) {
				continue
			}
			if r.Endpoint == "" {
				n += r.Requests
			} else {
				served += r.Requests
			}
		}
		return
	}
	ctlEventually(t, "50 catalog and 5 cart requests in the proxies' telemetry", func() bool {
		c, cs := sum("catalog")
		k, _ := sum("cart")
		return c == 50 && cs == 50 && k == 5
	})

	// The loop's minute over both proxies: every request, per second of
	// the minute's span.
	rec := &ctlRecorder{}
	l := &liveloop.Loop{Controller: rec, Telemetry: p, Services: []string{"catalog", "cart"}, Log: ctlQuiet}
	end := start.Truncate(time.Minute).Add(time.Minute)
	if time.Now().After(end) || end.Sub(start) < 5*time.Second {
		end = time.Now().Truncate(time.Second).Add(2 * time.Second) // a span that holds the requests
	}
	l.Step = end.Sub(start.Add(-time.Second))
	l.Tick(context.Background(), end)
	if len(rec.seen) != 1 {
		t.Fatalf("observed %d minutes", len(rec.seen))
	}
	span := l.Step.Seconds()
	for _, sm := range rec.seen[0].Services {
		want := map[string]float64{"catalog": 50, "cart": 5}[sm.Service]
		if math.Abs(sm.RPS*span-want) > 1e-6 || sm.Answered != want {
			t.Errorf("%s: %.3f rps over %.0f s (%.1f requests), %v answered; want %v of both proxies", sm.Service, sm.RPS, span, sm.RPS*span, sm.Answered, want)
		}
	}

	// The views.
	views, errs := p.Services(context.Background())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if v := views["catalog"]; v.Proxies != 2 || !v.Admission || !v.Weighted || len(v.Available) != 2 {
		t.Errorf("catalog view %+v: want 2 proxies, admission, weighted, 2 available", v)
	}
	if v := views["cart"]; v.Proxies != 2 || v.Admission || v.Weighted || len(v.Endpoints) != 1 {
		t.Errorf("cart view %+v: want no admission (one proxy runs none), not weighted, 1 endpoint", v)
	}
	if _, err := p.CheckServices(context.Background(), []string{"catalog", "cart"}); err != nil {
		t.Errorf("CheckServices: %v", err)
	}
	_, err := p.CheckServices(context.Background(), []string{"catalog", "checkout"})
	if err == nil || !strings.Contains(err.Error(), "service checkout is not configured on every proxy (all of them have: cart, catalog)") {
		t.Errorf("CheckServices with an unknown service: %v", err)
	}

	// A proxy that does not answer: the others' records still come, and
	// it is named.
	down := closedCtlURL(t)
	p.URLs = append(p.URLs, down)
	recs, errs := p.ReadTelemetry(context.Background(), start.Add(-time.Second), "catalog")
	if len(recs) == 0 || errs[down] == nil || len(errs) != 1 {
		t.Errorf("with %s down: %d records, errors %v", down, len(recs), errs)
	}
	if _, err := p.CheckServices(context.Background(), []string{"catalog"}); err == nil || !strings.Contains(err.Error(), down) {
		t.Errorf("CheckServices with a proxy down: %v, want it named", err)
	}
}

// TestProxyFleetReadyAndUtilisation: without an autoscaler source, ready
// replicas are the endpoints the proxies find available, and the
// utilisation is the mean of the replicas' load reports between two reads
// (busy time over elapsed time × workers); a replica without a report
// leaves the service's utilisation unknown when it is most of them.
func TestProxyFleetReadyAndUtilisation(t *testing.T) {
	b1, b2, b3 := startCtlBackend(t, 2, true), startCtlBackend(t, 4, true), startCtlBackend(t, 1, false)
	pa := startCtlProxy(t, ctlService{"catalog", "round_robin", false, []string{b1.addr, b2.addr}}, ctlService{"cart", "round_robin", false, []string{b3.addr}})
	now := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	f := &liveloop.ProxyFleet{Proxies: &liveloop.Proxies{URLs: []string{pa.admin}, Log: ctlQuiet}, Services: []string{"catalog", "cart", "gone"},
		LoadReportPath: liveloop.DefaultLoadReportPath, Log: ctlQuiet,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	states := f.Snapshot()
	if len(states) != 3 || states[0].Ready != 2 || states[1].Ready != 1 || states[2].Ready != 0 {
		t.Fatalf("states %+v: want catalog 2 ready, cart 1, gone 0", states)
	}
	for _, s := range states {
		if !math.IsNaN(s.Util) {
			t.Errorf("%s: utilisation %v at the first read, want unknown", s.Service, s.Util)
		}
	}
	// A minute later: b1 (2 workers) was busy 60 s, b2 (4 workers) 48 s.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	b1.busy.Add(60_000)
	b2.busy.Add(48_000)
	states = f.Snapshot()
	if got, want := states[0].Util, (0.5+0.2)/2; math.Abs(got-want) > 1e-9 {
		t.Errorf("catalog utilisation %v, want %v", got, want)
	}
	if !math.IsNaN(states[1].Util) {
		t.Errorf("cart utilisation %v: its replica serves no load report, want unknown", states[1].Util)
	}
	if f.Startups() != nil {
		t.Error("the proxies cannot see startups")
	}
	// A replica that restarted (its busy time went back) is not compared.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	b1.busy.Store(1000)
	b2.busy.Add(24_000)
	if got := f.Snapshot()[0].Util; math.Abs(got-0.1) > 1e-9 {
		t.Errorf("after b1 restarted: utilisation %v, want b2's 0.1 alone", got)
	}
}

// TestParseStatusOfARealProxy: the fields the controller reads are where
// a real proxy's GET /status puts them.
func TestParseStatusOfARealProxy(t *testing.T) {
	b := startCtlBackend(t, 1, false)
	pa := startCtlProxy(t, ctlService{"catalog", "weighted", true, []string{b.addr}})
	resp, err := ctlClient.Get(pa.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	views, err := liveloop.ParseStatus(body)
	if err != nil {
		t.Fatal(err)
	}
	v := views["catalog"]
	if !v.Admission || !v.Weighted || len(v.Endpoints) != 1 || v.Endpoints[0] != b.addr {
		var pretty map[string]any
		json.Unmarshal(body, &pretty)
		t.Errorf("view %+v from %v", v, pretty)
	}
}
