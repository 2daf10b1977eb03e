package proxy

import (
	"net"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/config"
)

// TestFailedReloadKeepsOldConfig: a reload whose new listen address cannot
// be bound is refused whole (issue #13 item 7): the old routes, services
// and version stay in effect, /status lists no listener that is not
// running, and the error is reported. It used to publish the new routes
// before binding.
func TestFailedReloadKeepsOldConfig(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	old := renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, a, b)
	px := startProxy(t, old)
	version := px.Version()
	next := renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: other}]}
  - {name: extra, listen: "`+busy.Addr().String()+`", routes: [{service: other}]}
services:
  - {name: app, endpoints: [{address: "{{.B1}}"}]}
  - {name: other, endpoints: [{address: "{{.B1}}"}]}
`, a, b)
	writeFile(px.path, next)
	_, err = px.ReloadFile()
	if err == nil || !strings.Contains(err.Error(), "listeners[extra].listen") {
		t.Fatalf("reload onto a busy address: err %v, want the bind error", err)
	}
	if px.Version() != version {
		t.Errorf("version %s after the failed reload, want %s", px.Version(), version)
	}
	for i := 0; i < 5; i++ {
		if s, body, h := do(t, "GET", px.url+"/x", "", nil); s != 200 || h.Get("X-Backend") != "a" {
			t.Fatalf("after the failed reload: %d %q from %q, want the old route to a", s, body, h.Get("X-Backend"))
		}
	}
	st := status(t, px)
	if len(st.Listeners) != 1 || st.Listeners[0].Name != "main" || st.Listeners[0].Addr == "" {
		t.Errorf("/status lists %+v, want only the running listener main", st.Listeners)
	}
	if len(st.Services) != 1 || st.Services[0].Endpoints[0].ID != a.addr {
		t.Errorf("services changed by the failed reload: %+v", st.Services)
	}
	if m := metricsText(t, px); !strings.Contains(m, `lbsys_config_reloads_total{result="failure"} 1`) {
		t.Errorf("the failure is not counted")
	}
	// Once the address is free, the same file applies whole.
	busy.Close()
	if _, err := px.ReloadFile(); err != nil {
		t.Fatalf("reload after freeing the address: %v", err)
	}
	if _, _, h := do(t, "GET", px.url+"/x", "", nil); h.Get("X-Backend") != "b" {
		t.Errorf("new routes not in effect after a good reload")
	}
	if st := status(t, px); len(st.Listeners) != 2 || st.Listeners[1].Addr == "" {
		t.Errorf("/status after the good reload: %+v", st.Listeners)
	}
}

// TestRemoteAdminWithoutTokenRefused: if the token source a remote admin
// API was validated with yields nothing when the proxy starts (or
// reloads), the proxy refuses the configuration.
func TestRemoteAdminWithoutTokenRefused(t *testing.T) {
	b := newBackend(t, "b")
	t.Setenv("LBSYS_TEST_REMOTE_TOKEN", "tok")
	path := writeConfig(t, renderConfig(t, `
admin: {listen: "0.0.0.0:0", allow_remote: true, token_env: LBSYS_TEST_REMOTE_TOKEN}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LBSYS_TEST_REMOTE_TOKEN", "")
	if px, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "admin.allow_remote: true needs a token") {
		if px != nil {
			px.Close()
		}
		t.Fatalf("New: %v, want the missing-token error", err)
	}
}
