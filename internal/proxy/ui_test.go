package proxy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/dashboard/ui"
)

func TestUIOnTheAdminListener(t *testing.T) {
	a := newBackend(t, "a")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, a))
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, "<h1>lbsys proxy</h1>"},
		{"/ui/", 200, "/ui/app.js"},
		{"/ui/app.js", 200, "lbsysUI"},
		{"/api/ui/series", 200, `"window_seconds":600`},
		{"/api/ui/timeline", 200, `"changes":[]`},
		{"/api/ui/state", 200, `"name":"app"`},
		{"/status", 200, `"services"`},
		{"/no-such-page", 404, ""},
	} {
		status, body, _ := do(t, "GET", px.admin+c.path, "", nil)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d, want %d with %q; body %.200s", c.path, status, c.status, c.want, body)
		}
	}
	// The client listener does not serve the UI: it proxies.
	if _, _, h := do(t, "GET", px.url+"/", "", nil); h.Get("X-Backend") != "a" {
		t.Errorf("the client listener's / went to %q, want the backend", h.Get("X-Backend"))
	}
}

// uiDirective is a directive for agentConfig's app service (endpoints a
// and b) with a forecast around the manual clock's start, an event and
// reasons.
func uiDirective(version uint64, a, b string, wa, wb float64, start time.Time) *directive.Directive {
	sale := start.Add(5 * time.Minute)
	return &directive.Directive{Schema: 1, Version: version, Change: 40 + version, Services: map[string]*directive.Service{
		"app": {
			Weights:    map[string]float64{a: wa, b: wb},
			WeightsWhy: &directive.Reason{Text: fmt.Sprintf("%s measured faster", b), Driver: "telemetry"},
			Admission:  &directive.Admission{Seed: 50, Cap: 300, Why: &directive.Reason{Text: "cap 300 = 2 × peak concurrency", Driver: "forecast"}},
			Scale: &directive.Scale{Replicas: 4, By: &sale, Why: &directive.Reason{Text: "floor 4 for the sale",
				Driver: "event", Event: "flash-sale " + sale.Format(time.RFC3339), LoadRPS: 500, PerReplicaRPS: 150,
				ExpectedEffect: "p99 under 200 ms during the sale"}},
			Why: &directive.Why{Model: "ensemble@7", Blessed: true, Forecast: []directive.Point{
				{At: start, RPS: 100, Hi: 150}, {At: start.Add(100 * time.Second), RPS: 300, Hi: 450}}},
		},
		"payments": {Scale: &directive.Scale{Replicas: 3}}, // not on this proxy
	}}
}

// startUIProxy starts agentConfig on a manual clock with the stub
// coordinator offering d.
func startUIProxy(t *testing.T, d func(a, b string) *directive.Directive) (*testProxy, *clock.Manual, *stubCoordinator, *testBackend, *testBackend) {
	t.Helper()
	a, b := newBackend(t, "a"), newBackend(t, "b")
	coord := newStubCoordinator(t)
	dir := t.TempDir()
	coord.set(d(a.addr, b.addr))
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("agent-secret-token\n"), 0o600)
	yaml := renderConfig(t, agentConfig, a, b)
	yaml = strings.NewReplacer("COORD", coord.srv.URL, "TOKEN", tok, "STATE", filepath.Join(dir, "directive.json")).Replace(yaml)
	px, clk := startProxyClock(t, yaml)
	if err := px.StartAgent(nil); err != nil {
		t.Fatal(err)
	}
	return px, clk, coord, a, b
}

// flushSecond moves the manual clock one second and waits until the UI
// has the second that just ended.
func flushSecond(t *testing.T, px *testProxy, clk *clock.Manual) {
	t.Helper()
	waitAggregator(t, clk)
	want := clk.Now().Truncate(time.Second).Unix()
	clk.Advance(time.Second)
	eventually(t, 5*time.Second, "the UI's frame of the second", func() bool {
		var s struct{ Last int64 }
		_, body, _ := do(t, "GET", px.admin+"/api/ui/series?limit=1", "", nil)
		json.Unmarshal([]byte(body), &s)
		return s.Last >= want
	})
}

// waitAggregator waits until the telemetry aggregator has set its timer
// for the next second (its only timer on the manual clock in these
// tests), so that moving the clock fires it.
func waitAggregator(t *testing.T, clk *clock.Manual) {
	t.Helper()
	eventually(t, 5*time.Second, "the aggregator waiting for its second", func() bool { return clk.Pending() > 0 })
}

func TestUIFromTelemetryAndDirective(t *testing.T) {
	px, clk, coord, a, b := startUIProxy(t, func(a, b string) *directive.Directive {
		return uiDirective(1, a, b, 1, 3, time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC))
	})
	start := clk.Now()
	eventually(t, 5*time.Second, "the directive applied", func() bool { return px.appliedDirective() != nil })
	for i := 0; i < 12; i++ {
		if status, _, _ := do(t, "GET", px.url+"/", "", nil); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	flushSecond(t, px, clk) // 12:00:00 with 12 requests
	waitAggregator(t, clk)
	clk.Advance(9 * time.Second)
	flushSecond(t, px, clk) // 12:00:10

	_, body, _ := do(t, "GET", px.admin+"/api/ui/series?service=app", "", nil)
	var s struct {
		T        []int64
		Services []map[string]any
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil || len(s.Services) != 1 {
		t.Fatalf("series: %v %s", err, body)
	}
	app := s.Services[0]
	at := func(k string, i int) string {
		a, _ := app[k].([]any)
		if i < 0 {
			i += len(a)
		}
		if i < 0 || i >= len(a) {
			return "missing"
		}
		if a[i] == nil {
			return "null"
		}
		return fmt.Sprint(a[i])
	}
	first := func(k string) string { return at(k, 0) }
	lastOf := func(k string) string { return at(k, -1) }
	if s.T[0] != start.Unix() {
		t.Errorf("first second %d, want %d", s.T[0], start.Unix())
	}
	for _, c := range []struct{ name, got, want string }{
		{"rps", first("rps"), "12"},
		{"error rate", first("error_rate"), "0"},
		{"forecast at the start", first("forecast"), "100"},
		{"upper band at the start", first("forecast_hi"), "150"},
		{"forecast 10 s later (interpolated)", lastOf("forecast"), "120"},
		{"endpoints in rotation", first("endpoints"), "2"},
		{"endpoints configured", first("endpoints_total"), "2"},
		{"replica floor", first("replica_floor"), "4"},
		{"no traffic later: p99 null", lastOf("p99_ms"), "null"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
	if v := first("admission_limit"); v == "null" || v == "0" {
		t.Errorf("admission limit %v, want the limiter's", v)
	}

	_, body, _ = do(t, "GET", px.admin+"/api/ui/timeline", "", nil)
	var tl ui.Timeline
	if err := json.Unmarshal([]byte(body), &tl); err != nil {
		t.Fatal(err)
	}
	if tl.Seq != 1 || len(tl.Changes) != 1 || tl.Changes[0].Version != 1 || !tl.Changes[0].Initial {
		t.Fatalf("timeline: %s", body)
	}
	if f := tl.Changes[0].Services[0].Fields; len(f) != 3 || f[0].Field != "scale" || f[0].Why.Text != "floor 4 for the sale" {
		t.Errorf("fields: %+v", f)
	}
	if len(tl.Events) != 1 || !tl.Events[0].At.Equal(start.Add(5*time.Minute)) {
		t.Errorf("events: %+v", tl.Events)
	}

	_, body, _ = do(t, "GET", px.admin+"/api/ui/state", "", nil)
	var st ui.StateView
	json.Unmarshal([]byte(body), &st)
	if st.DirectiveVersion != 1 || st.Coordinator == nil || st.Coordinator.Version != 1 {
		t.Errorf("state: %s", body)
	}
	for _, sv := range st.Services {
		if sv.Name != "app" {
			continue
		}
		got := map[string]string{}
		for _, e := range sv.Endpoints {
			got[e.ID] = fmt.Sprintf("rps %d directive %v", e.RPS, *e.DirectiveWeight)
		}
		// 12:00:10's second had no traffic; the directive weights show.
		if got[a.addr] != "rps 0 directive 1" || got[b.addr] != "rps 0 directive 3" {
			t.Errorf("endpoints: %v", got)
		}
	}

	// A new version shows in the timeline, with its diff.
	coord.set(uiDirective(2, a.addr, b.addr, 2, 2, start))
	eventually(t, 5*time.Second, "version 2 applied", func() bool { d := px.appliedDirective(); return d != nil && d.Version == 2 })
	flushSecond(t, px, clk)
	_, body, _ = do(t, "GET", px.admin+"/api/ui/timeline?after=1", "", nil)
	tl = ui.Timeline{}
	json.Unmarshal([]byte(body), &tl)
	if len(tl.Changes) != 1 || tl.Changes[0].Version != 2 || len(tl.Changes[0].Diff) == 0 || !strings.Contains(tl.Changes[0].Diff[0].Path, "weights") && !strings.Contains(body, "weights[") {
		t.Errorf("version 2: %s", body)
	}
}

func TestUITimeMap(t *testing.T) {
	a := newBackend(t, "a")
	px, clk := startProxyClock(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, a))
	origin := time.Date(1995, 7, 12, 6, 30, 0, 0, time.UTC)
	start := clk.Now()
	px.SetUITime(func(r time.Time) time.Time { return origin.Add(r.Sub(start) * 60) })
	waitAggregator(t, clk)
	clk.Advance(time.Second)
	eventually(t, 5*time.Second, "a frame in the demo's time", func() bool {
		_, body, _ := do(t, "GET", px.admin+"/api/ui/series", "", nil)
		return strings.Contains(body, fmt.Sprintf(`"last":%d`, origin.Unix()))
	})
}

// TestUIAnnouncementsAndReplay: the proxy passes a calendar's events and
// a replay's mapping to its UI, which shows them at once; invalid ones
// are refused with the UI's error.
func TestUIAnnouncementsAndReplay(t *testing.T) {
	a := newBackend(t, "a")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, a))
	sale := time.Date(2031, 3, 1, 12, 1, 15, 0, time.UTC)
	name := ui.EventName("flash-sale", sale)
	if err := px.AnnounceUIEvents([]ui.Announcement{{Name: name, Title: "Summer sale", Start: sale}}); err != nil {
		t.Fatal(err)
	}
	if err := px.AnnounceUIEvents([]ui.Announcement{{Name: "", Start: sale}}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("a nameless event: %v", err)
	}
	_, body, _ := do(t, "GET", px.admin+"/api/ui/timeline", "", nil)
	if !strings.Contains(body, `"name":"`+name+`"`) || !strings.Contains(body, `"source":"calendar"`) {
		t.Errorf("timeline: %s", body)
	}
	if err := px.SetUIReplay(&ui.Replay{WallStart: sale, VirtualStart: time.Date(1995, 7, 12, 6, 30, 0, 0, time.UTC), Factor: 60}); err != nil {
		t.Fatal(err)
	}
	if err := px.SetUIReplay(&ui.Replay{WallStart: sale}); err == nil {
		t.Error("a replay without its virtual start was accepted")
	}
	_, body, _ = do(t, "GET", px.admin+"/api/ui/state", "", nil)
	if !strings.Contains(body, `"replay":{"wall_start":"2031-03-01T12:01:15Z","virtual_start":"1995-07-12T06:30:00Z","factor":60}`) {
		t.Errorf("state: %s", body)
	}
}
