package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// TestRefusedDirectiveChangesNothing: a directive whose admission part does
// not fit the limiter's effective bounds, or whose weights name endpoints
// the proxy lacks, is refused whole through both doors (the coordinator's
// stream: NACK; POST /directive: 422), and its weights do not take effect
// at the next rebuild either (they used to be installed before the
// admission step failed).
func TestRefusedDirectiveChangesNothing(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	coord := newStubCoordinator(t)
	coord.set(appDirective(1, a.addr, b.addr, 1, 0))
	px := startAgentProxy(t, coord.srv.URL, t.TempDir(), a, b)
	eventually(t, 5*time.Second, "version 1", func() bool { return status(t, px).Coordinator.Version == 1 })
	onlyTo(t, px, "a")
	rebuild := func() {
		t.Helper()
		if _, err := px.ReloadFile(); err != nil { // rebuilds every picker
			t.Fatal(err)
		}
	}

	for v, mod := range map[uint64]func(*directive.Service){
		2: func(s *directive.Service) { s.Admission = &directive.Admission{Min: 2000} }, // above the default max_limit 1000
		3: func(s *directive.Service) { s.Weights["127.0.0.1:1"] = 1 },                  // a mistyped endpoint
	} {
		bad := appDirective(v, a.addr, b.addr, 0, 1) // would send everything to b
		mod(bad.Services["app"])
		coord.set(bad)
		eventually(t, 5*time.Second, fmt.Sprintf("the NACK of version %d", v), func() bool {
			r := coord.lastRequest()
			return r.Rejected == v && r.Version == 1
		})
		if r := coord.lastRequest(); !strings.Contains(r.Error, "min 2000 would exceed cap 1000") && !strings.Contains(r.Error, "weights[127.0.0.1:1] name endpoints the service does not have") {
			t.Errorf("version %d NACKed with %q", v, r.Error)
		}
		rebuild()
		onlyTo(t, px, "a")
		st := status(t, px)
		if st.Coordinator.Version != 1 || st.Services[0].Admission.Max != 300 || st.Services[0].Admission.Min != 10 {
			t.Fatalf("after the NACK of version %d: coordinator %+v admission %+v", v, st.Coordinator, st.Services[0].Admission)
		}
	}

	// The admin API: same checks, same result.
	token := "tok"
	t.Setenv("TEST_ADMIN_TOKEN", token)
	px2 := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0, token_env: TEST_ADMIN_TOKEN}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - name: app
    policy: weighted
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    admission: {}
`, a, b))
	for _, body := range []string{
		fmt.Sprintf(`{"service":"app","weights":{%q:1,%q:0},"admission":{"min":2000}}`, a.addr, b.addr),
		fmt.Sprintf(`{"service":"app","weights":{%q:1,%q:0,"127.0.0.1:1":1}}`, a.addr, b.addr),
		fmt.Sprintf(`{"service":"app","weights":{%q:1},"ramps":[{"endpoint":"127.0.0.1:2","from":0,"to":1,"duration":"1m"}]}`, a.addr),
	} {
		s, resp := postJSON(t, px2.admin+"/directive", token, body)
		if s != 422 || !(strings.Contains(resp, "min 2000 would exceed cap 1000") || strings.Contains(resp, "name endpoints the service does not have")) {
			t.Errorf("%s: %d %s, want 422 naming the problem", body, s, resp)
		}
		if _, err := px2.ReloadFile(); err != nil {
			t.Fatal(err)
		}
		// The policy's own view: no directive installed.
		if ps, _ := status(t, px2).Services[0].PolicyState.(map[string]any); ps == nil || ps["directive"] != nil {
			t.Fatalf("after a refused directive (%s) the policy holds %v", body, ps["directive"])
		}
	}
	if adm := status(t, px2).Services[0].Admission; adm.Min != 10 || adm.Max != 1000 {
		t.Errorf("admission bounds changed by refused directives: %+v", adm)
	}
}
