package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// stubCoordinator plays the coordinator's side of the directive stream.
type stubCoordinator struct {
	srv   *httptest.Server
	mu    sync.Mutex
	offer *directive.Directive
	last  directive.WatchRequest
	down  atomic.Bool
}

func newStubCoordinator(t *testing.T) *stubCoordinator {
	c := &stubCoordinator{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer agent-secret-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if c.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error": "no quorum: commit delayed until a majority is reachable"}`)
			return
		}
		if r.URL.Path != directive.WatchPath {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var req directive.WatchRequest
		json.NewDecoder(r.Body).Decode(&req)
		c.mu.Lock()
		c.last = req
		offer := c.offer
		c.mu.Unlock()
		resp := directive.WatchResponse{Nonce: fmt.Sprint(time.Now().UnixNano()), Version: req.Version}
		if offer != nil && offer.Version != req.Version && offer.Version != req.Rejected {
			resp.Version, resp.Directive = offer.Version, offer
		} else {
			time.Sleep(20 * time.Millisecond)
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *stubCoordinator) set(d *directive.Directive) {
	c.mu.Lock()
	c.offer = d
	c.mu.Unlock()
}

func (c *stubCoordinator) lastRequest() directive.WatchRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

const agentConfig = `
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{match: {path_prefix: /web}, service: web}, {service: app}]}
services:
  - name: app
    policy: weighted
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    admission: {}
  - {name: web, policy: round_robin, endpoints: [{address: "{{.B0}}"}]}
coordinator:
  urls: [COORD]
  token_file: TOKEN
  proxy_id: edge-1
  state_file: STATE
  wait: 1s
`

func startAgentProxy(t *testing.T, coord, dir string, a, b *testBackend) *testProxy {
	t.Helper()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("agent-secret-token\n"), 0o600)
	yaml := renderConfig(t, agentConfig, a, b)
	yaml = strings.NewReplacer("COORD", coord, "TOKEN", tok, "STATE", filepath.Join(dir, "directive.json")).Replace(yaml)
	px := startProxy(t, yaml)
	if err := px.StartAgent(nil); err != nil {
		t.Fatal(err)
	}
	return px
}

func appDirective(version uint64, a, b string, wa, wb float64) *directive.Directive {
	return &directive.Directive{Schema: 1, Version: version, Services: map[string]*directive.Service{
		"app": {
			Weights:   map[string]float64{a: wa, b: wb},
			Admission: &directive.Admission{Seed: 100, Cap: 300},
			Cache:     &directive.Cache{Warm: []string{"/catalog/top"}, TTLHints: []directive.TTLHint{{PathPrefix: "/catalog/", TTL: directive.Duration(30 * time.Second)}}},
			Scale:     &directive.Scale{Replicas: 6, Current: 4},
			Why:       &directive.Why{Model: "gbdt@1", Blessed: true, ExpectedEffect: "p99 < 200ms"},
		},
		"payments": {Scale: &directive.Scale{Replicas: 3}}, // not on this proxy
	}}
}

func onlyTo(t *testing.T, px *testProxy, want string) {
	t.Helper()
	for i := 0; i < 20; i++ {
		if _, _, h := do(t, "GET", px.url+"/", "", nil); h.Get("X-Backend") != want {
			t.Fatalf("request %d went to %q, want only %s", i, h.Get("X-Backend"), want)
		}
	}
}

func TestCoordinatorDirectivesThroughTheAgent(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	coord := newStubCoordinator(t)
	dir := t.TempDir()
	coord.set(appDirective(1, a.addr, b.addr, 1, 0))
	px := startAgentProxy(t, coord.srv.URL, dir, a, b)
	eventually(t, 5*time.Second, "version 1 applied", func() bool {
		c := status(t, px).Coordinator
		return c != nil && c.Version == 1
	})
	onlyTo(t, px, "a")
	st := status(t, px)
	c := st.Coordinator
	app := c.Services["app"]
	if c.ProxyID != "edge-1" || c.Source != "coordinator" || app.Version != 1 || app.Cache == nil || app.Cache.Warm[0] != "/catalog/top" ||
		app.Scale.Replicas != 6 || app.Why.ExpectedEffect != "p99 < 200ms" || len(c.Ignored) != 1 || c.Ignored[0] != "payments" {
		t.Fatalf("coordinator status %+v", c)
	}
	if adm := st.Services[0].Admission; adm.Limit != 100 || adm.Max != 300 {
		t.Fatalf("admission %+v", adm)
	}
	eventually(t, 5*time.Second, "the ACK", func() bool { return coord.lastRequest().Version == 1 })

	// Version 2 puts weights on a round_robin service: the proxy NACKs it
	// and keeps version 1 whole (app's weights included).
	bad := appDirective(2, a.addr, b.addr, 0, 1)
	bad.Services["web"] = &directive.Service{Weights: map[string]float64{a.addr: 2}}
	coord.set(bad)
	eventually(t, 5*time.Second, "the NACK", func() bool {
		r := coord.lastRequest()
		return r.Rejected == 2 && strings.Contains(r.Error, "services[web]: policy round_robin does not take weights") && r.Version == 1
	})
	onlyTo(t, px, "a")
	if c := status(t, px).Coordinator; c.Version != 1 || c.Rejected != 2 || c.Services["app"].Weights[b.addr] != 0 {
		t.Fatalf("after NACK: %+v", c)
	}

	// Version 3 drops app's part: its weights clear, traffic spreads again,
	// admission goes back to the configured bounds.
	coord.set(&directive.Directive{Schema: 1, Version: 3, Services: map[string]*directive.Service{}})
	eventually(t, 5*time.Second, "version 3", func() bool { return status(t, px).Coordinator.Version == 3 })
	hitsB := b.hits.Load()
	for i := 0; i < 40; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	if b.hits.Load() == hitsB {
		t.Fatal("b gets no traffic after the directive dropped its weights")
	}
	if adm := status(t, px).Services[0].Admission; adm.Max != 1000 {
		t.Fatalf("admission bounds not restored: %+v", adm)
	}
}

func TestProxyRestartsFromPersistedDirectiveWhileCoordinatorDown(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	coord := newStubCoordinator(t)
	dir := t.TempDir()
	coord.set(appDirective(5, a.addr, b.addr, 0, 1))
	px := startAgentProxy(t, coord.srv.URL, dir, a, b)
	eventually(t, 5*time.Second, "version 5", func() bool { return status(t, px).Coordinator.Version == 5 })
	px.Close()

	coord.down.Store(true)
	px2 := startAgentProxy(t, coord.srv.URL, dir, a, b)
	// The persisted directive is in force before the first request.
	onlyTo(t, px2, "b")
	// The agent reports degraded mode only after two failed rounds and 5s
	// (agent.Options.DegradedAfter) without a good poll.
	eventually(t, 15*time.Second, "degraded mode", func() bool {
		c := status(t, px2).Coordinator
		return c.Degraded && c.Source == "disk" && c.Version == 5
	})
	_, metrics, _ := do(t, "GET", px2.admin+"/metrics", "", nil)
	if !strings.Contains(metrics, "lbsys_agent_degraded 1") || !strings.Contains(metrics, "lbsys_agent_directive_version 5") {
		t.Fatalf("metrics:\n%s", grepLines(metrics, "lbsys_agent"))
	}
	coord.down.Store(false)
	eventually(t, 5*time.Second, "back to normal", func() bool { return !status(t, px2).Coordinator.Degraded })
}

func TestDirectiveSurvivesReload(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	coord := newStubCoordinator(t)
	coord.set(appDirective(1, a.addr, b.addr, 1, 0))
	px := startAgentProxy(t, coord.srv.URL, t.TempDir(), a, b)
	eventually(t, 5*time.Second, "version 1", func() bool { return status(t, px).Coordinator.Version == 1 })
	// A reload that changes app's admission settings replaces its limiter:
	// the directive's bounds are put back on it.
	raw, _ := os.ReadFile(px.path)
	os.WriteFile(px.path, []byte(strings.Replace(string(raw), "admission: {}", "admission: {tolerance: 2}", 1)), 0o600)
	if _, err := px.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "bounds restored after reload", func() bool { return status(t, px).Services[0].Admission.Max == 300 })
	onlyTo(t, px, "a")
}

func TestStartAgentErrors(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]}
`, a, b))
	if err := px.StartAgent(nil); err != nil {
		t.Fatalf("no coordinator configured: %v", err)
	}
	if st := status(t, px); st.Coordinator != nil {
		t.Fatal("status shows a coordinator that is not configured")
	}
	if err := px.StartAgent([]string{"127.0.0.1:7101"}); err == nil || !strings.Contains(err.Error(), "http://host:port") {
		t.Fatalf("bad URL: %v", err)
	}
	t.Setenv("LBSYS_COORDINATOR_TOKEN", "")
	if err := px.StartAgent([]string{"http://127.0.0.1:7101"}); err == nil || !strings.Contains(err.Error(), "LBSYS_COORDINATOR_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
	// The default state file sits next to the configuration.
	t.Setenv("LBSYS_COORDINATOR_TOKEN", "agent-secret-token")
	coord := newStubCoordinator(t)
	coord.set(&directive.Directive{Schema: 1, Version: 1, Services: map[string]*directive.Service{}})
	if err := px.StartAgent([]string{coord.srv.URL}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "state file", func() bool {
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(px.path), "lbsys-directive-*.json"))
		return len(m) == 1
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
