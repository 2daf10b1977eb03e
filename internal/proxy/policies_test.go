package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

func TestEveryPolicySelectableAndDescribed(t *testing.T) {
	bs := []*testBackend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")}
	for _, name := range balance.Names() {
		t.Run(name, func(t *testing.T) {
			for _, b := range bs {
				b.hits.Store(0)
			}
			px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    policy: `+name+`
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
`, bs...))
			for i := 0; i < 60; i++ {
				if s, _, _ := do(t, "GET", px.url+"/", "", map[string]string{"X-Key": fmt.Sprint(i)}); s != 200 {
					t.Fatalf("status %d", s)
				}
			}
			var total int64
			for _, b := range bs {
				total += b.hits.Load()
			}
			if total != 60 {
				t.Fatalf("backends saw %d requests", total)
			}
			st := status(t, px).Services[0]
			if st.Policy != name || st.PolicyState == nil {
				t.Fatalf("status policy %q state %v", st.Policy, st.PolicyState)
			}
		})
	}
}

// loadBackend answers with a configurable X-Lbsys-Load report.
func loadBackend(t *testing.T, name string, rif *atomic.Int64, healthz *atomic.Int64) *testBackend {
	return newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Lbsys-Load", fmt.Sprintf("rif=%d,util=0.5", rif.Load()))
		if r.URL.Path == "/healthz" {
			healthz.Add(1)
			return
		}
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	}))
}

func TestPrequalProbesAndAvoidsHotReplica(t *testing.T) {
	var rifs [3]atomic.Int64
	var probes [3]atomic.Int64
	rifs[0].Store(50) // replica a reports a deep queue
	rifs[1].Store(1)
	rifs[2].Store(2)
	bs := []*testBackend{loadBackend(t, "a", &rifs[0], &probes[0]), loadBackend(t, "b", &rifs[1], &probes[1]), loadBackend(t, "c", &rifs[2], &probes[2])}
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    policy: {name: prequal, options: {probe_rate: 1, probe_path: /healthz}}
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
`, bs...))
	got := map[string]int{}
	for i := 0; i < 300; i++ {
		_, _, h := do(t, "GET", px.url+"/", "", nil)
		got[h.Get("X-Backend")]++
		if h.Get("X-Lbsys-Load") != "" {
			t.Fatal("the backend's load report leaked to the client")
		}
	}
	if got["a"] > 40 {
		t.Fatalf("hot replica a got %d of 300 requests (%v)", got["a"], got)
	}
	eventually(t, 5*time.Second, "probes sent", func() bool { return probes[0].Load()+probes[1].Load()+probes[2].Load() > 10 })
	st := status(t, px).Services[0]
	b, _ := json.Marshal(st.PolicyState)
	if !strings.Contains(string(b), `"probes"`) || !strings.Contains(string(b), `"rif"`) {
		t.Fatalf("status lacks the probe pool: %s", b)
	}
}

func TestAdmissionShedsByPriority(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int64
	slow := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-release
		io.WriteString(w, "ok")
	}))
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {name: browse, match: {path_prefix: /browse}, service: shop, priority: sheddable}
      - {name: checkout, match: {path_prefix: /checkout}, service: shop, priority: critical}
services:
  - name: shop
    endpoints: [{address: "{{.B0}}"}]
    admission: {min_limit: 1, max_limit: 4, initial_limit: 4}
`, slow))
	// Three critical requests in flight: 3 >= floor(0.7×4) = 2, so
	// sheddable traffic is refused while critical still fits (3 < 4).
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(t, "POST", px.url+"/checkout", "x", map[string]string{"Idempotency-Key": fmt.Sprint(i)})
		}()
	}
	eventually(t, 5*time.Second, "3 requests at the backend", func() bool { return started.Load() == 3 })
	s, _, h := do(t, "GET", px.url+"/browse", "", nil)
	if s != 503 || h.Get("X-Lbsys-Error") != "overloaded" || h.Get("Retry-After") == "" {
		t.Fatalf("sheddable: %d %q retry-after %q", s, h.Get("X-Lbsys-Error"), h.Get("Retry-After"))
	}
	// Critical is admitted (the 4th slot).
	wg.Add(1)
	var crit int
	go func() {
		defer wg.Done()
		crit, _, _ = do(t, "POST", px.url+"/checkout", "x", map[string]string{"Idempotency-Key": "k4"})
	}()
	eventually(t, 5*time.Second, "4th at the backend", func() bool { return started.Load() == 4 })
	// Now even critical is refused.
	if s, _, h := do(t, "POST", px.url+"/checkout", "x", map[string]string{"Idempotency-Key": "k5"}); s != 503 || h.Get("X-Lbsys-Error") != "overloaded" {
		t.Fatalf("critical over the limit: %d", s)
	}
	close(release)
	wg.Wait()
	if crit != 200 {
		t.Fatalf("admitted critical request got %d", crit)
	}
	st := status(t, px).Services[0]
	if st.Admission == nil || st.Admission.Rejected["sheddable"] != 1 || st.Admission.Rejected["critical"] != 1 || st.Admission.InFlight != 0 {
		t.Fatalf("admission status %+v", st.Admission)
	}
	m := metricsText(t, px)
	for _, want := range []string{`lbsys_admission_rejected_total{priority="sheddable",service="shop"} 1`, `lbsys_admission_limit{service="shop"}`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func postJSON(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDirectiveSteersWeightedPolicy(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	t.Setenv("TEST_ADMIN_TOKEN", "tok")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0, token_env: TEST_ADMIN_TOKEN}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - name: app
    policy: weighted
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    admission: {}
`, a, b))
	dir := fmt.Sprintf(`{"service":"app","version":"v7","weights":{%q:1,%q:0},"admission":{"min":20,"max":300,"seed":120}}`, a.addr, b.addr)
	if s, _ := postJSON(t, px.admin+"/directive", "", dir); s != 401 {
		t.Fatalf("directive without token: %d", s)
	}
	if s, body := postJSON(t, px.admin+"/directive", "tok", dir); s != 200 {
		t.Fatalf("directive: %d %s", s, body)
	}
	for i := 0; i < 30; i++ {
		if _, _, h := do(t, "GET", px.url+"/", "", nil); h.Get("X-Backend") != "a" {
			t.Fatalf("request %d went to %q despite weight 0 on b", i, h.Get("X-Backend"))
		}
	}
	st := status(t, px).Services[0]
	if st.Admission.Limit != 120 || st.Admission.Max != 300 {
		t.Fatalf("admission after directive: %+v", st.Admission)
	}
	// Bad directives change nothing.
	for _, bad := range []string{
		`{"service":"app","weights":{"x":-1}}`,
		`{"service":"app","admission":{"min":500,"max":10}}`,
		`{"service":"nope","weights":{}}`,
		`{"service":"app","wieghts":{}}`,
	} {
		if s, _ := postJSON(t, px.admin+"/directive", "tok", bad); s == 200 {
			t.Errorf("bad directive accepted: %s", bad)
		}
	}
	if _, _, h := do(t, "GET", px.url+"/", "", nil); h.Get("X-Backend") != "a" {
		t.Fatal("a rejected directive changed routing")
	}
	// Clearing the directive spreads traffic again.
	if s, body := postJSON(t, px.admin+"/directive", "tok", `{"service":"app","clear":true}`); s != 200 {
		t.Fatalf("clear: %d %s", s, body)
	}
	b0 := b.hits.Load()
	for i := 0; i < 40; i++ {
		do(t, "GET", px.url+"/", "", nil)
	}
	if b.hits.Load() == b0 {
		t.Fatal("b gets no traffic after the directive was cleared")
	}
	// A directive for a policy that cannot take one is refused clearly.
	px2 := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0, token_env: TEST_ADMIN_TOKEN}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - {name: app, policy: round_robin, endpoints: [{address: "{{.B0}}"}]}
`, a))
	if s, body := postJSON(t, px2.admin+"/directive", "tok", `{"service":"app","weights":{}}`); s != 422 || !strings.Contains(body, "policy: weighted") {
		t.Fatalf("round_robin directive: %d %s", s, body)
	}
}
