package shop

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000":         true,
		"127.200.3.4:1":          true,
		"[::1]:8080":             true,
		"[::ffff:127.0.0.1]:80":  true,
		"10.0.0.1:5000":          false,
		"192.168.1.2:80":         false,
		"[2001:db8::1]:443":      false,
		"[::ffff:10.1.1.1]:80":   false,
		"localhost:80":           false, // names are not resolved
		"garbage":                false,
		"":                       false,
		"[fe80::1%eth0]:80":      false,
		"128.0.0.1:80":           false,
		"126.255.255.255:80":     false,
		"[0:0:0:0:0:0:0:1]:8080": true,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A fault request from a non-loopback address is refused, whatever it asks.
func TestFaultForbiddenFromRemote(t *testing.T) {
	g := startGroup(t, testConfig(t, "catalog", 1))
	inc := g.insts[0].inc.Load()
	for _, method := range []string{"GET", "POST"} {
		req := httptest.NewRequest(method, "/_shop/fault", strings.NewReader(`{"crash":true}`))
		req.RemoteAddr = "203.0.113.7:41000"
		rec := httptest.NewRecorder()
		inc.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s from 203.0.113.7: %d, want 403", method, rec.Code)
		}
	}
	if f, _ := g.Fault(0); f.Crash {
		t.Fatal("a remote client crashed the instance")
	}
	// The same from loopback works.
	req := httptest.NewRequest("POST", "/_shop/fault", strings.NewReader(`{"slow":2}`))
	req.RemoteAddr = "127.0.0.1:41000"
	rec := httptest.NewRecorder()
	inc.ServeHTTP(rec, req)
	if f, _ := g.Fault(0); rec.Code != 200 || f.Slow != 2 {
		t.Errorf("loopback POST: %d, fault %+v", rec.Code, f)
	}
}

func TestFaultJSON(t *testing.T) {
	good := map[string]Fault{
		`{}`:                                     {},
		`{"slow": 3.0, "error_rate": 0.2}`:       {Slow: 3, ErrorRate: 0.2},
		`{"hang": true}`:                         {Hang: true},
		`{"crash": true, "restart_after": "5s"}`: {Crash: true, RestartAfter: 5 * time.Second},
		`{"crash": true, "restart_after": "1d"}`: {Crash: true, RestartAfter: 24 * time.Hour}, // as every duration lbsys reads
		`{"slow": 1, "hang": false, "crash": false, "restart_after": ""}`: {Slow: 1},
	}
	for in, want := range good {
		var f Fault
		if err := json.Unmarshal([]byte(in), &f); err != nil || f != want {
			t.Errorf("%s: %+v %v, want %+v", in, f, err, want)
		}
	}
	bad := map[string]string{
		`{"slwo": 2}`:                              "unknown field",
		`{"error_rate": 1.5}`:                      "between 0 and 1",
		`{"slow": -1}`:                             "factor from 0",
		`{"restart_after": "5s"}`:                  "only makes sense with",
		`{"crash": true, "restart_after": "soon"}`: "write a duration",
		`{"crash": true, "restart_after": "-1s"}`:  "negative",
		`[1]`:   "cannot unmarshal",
		`{} {}`: "invalid character", // encoding/json checks the syntax first
	}
	for in, want := range bad {
		var f Fault
		err := json.Unmarshal([]byte(in), &f)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", in, err, want)
		}
	}
	b, _ := json.Marshal(Fault{})
	if string(b) != `{"slow":1,"error_rate":0,"hang":false,"crash":false,"restart_after":""}` {
		t.Errorf("GET shape: %s", b)
	}
}

func postFault(t *testing.T, base, body string) resp {
	t.Helper()
	r := do(t, "POST", base+"/_shop/fault", body, nil)
	if r.status != 200 {
		t.Fatalf("POST /_shop/fault %s: %d %s", body, r.status, r.body)
	}
	return r
}

func TestFaultSlow(t *testing.T) {
	cfg := testConfig(t, "catalog", 1)
	cfg.Latency, cfg.CV = 20*time.Millisecond, 0
	g := startGroup(t, cfg)
	base := g.URLs()[0]
	postFault(t, base, `{"slow": 5}`)
	t0 := time.Now()
	do(t, "GET", base+"/catalog/products/p0001", "", nil)
	if d := time.Since(t0); d < 100*time.Millisecond {
		t.Errorf("slow ×5 of 20ms took %v, want ≥ 100ms", d)
	}
	var f Fault
	do(t, "GET", base+"/_shop/fault", "", nil).json(t, &f)
	if f.Slow != 5 {
		t.Errorf("GET fault %+v", f)
	}
	postFault(t, base, `{}`)
	if f, _ := g.Fault(0); f != (Fault{}) {
		t.Errorf("{} left %+v", f)
	}
}

func TestFaultErrorRate(t *testing.T) {
	g := startGroup(t, testConfig(t, "catalog", 1))
	base := g.URLs()[0]
	postFault(t, base, `{"error_rate": 1}`)
	r := do(t, "GET", base+"/catalog/products", "", nil)
	if r.status != 500 || r.header.Get("X-Shop-Error") != "injected" || !loadHeader.MatchString(r.header.Get("X-Lbsys-Load")) {
		t.Errorf("error_rate 1: %d %v", r.status, r.header)
	}
	// Health and stats stay reachable: they are not service requests.
	if r := do(t, "GET", base+"/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz under error_rate: %d", r.status)
	}
	postFault(t, base, `{"error_rate": 0.5}`)
	fails := 0
	const n = 400
	for range n {
		if do(t, "GET", base+"/catalog/products", "", nil).status == 500 {
			fails++
		}
	}
	if share := float64(fails) / n; share < 0.4 || share > 0.6 {
		t.Errorf("error_rate 0.5 failed %d of %d", fails, n)
	}
	postFault(t, base, `{}`)
	if r := do(t, "GET", base+"/catalog/products", "", nil); r.status != 200 {
		t.Errorf("after clearing: %d", r.status)
	}
	if st := stats(t, g, 0); st.InjectedErrors != int64(fails)+1 {
		t.Errorf("injected_errors %d, want %d", st.InjectedErrors, fails+1)
	}
}

func TestFaultHang(t *testing.T) {
	g := startGroup(t, testConfig(t, "catalog", 1))
	base := g.URLs()[0]
	postFault(t, base, `{"hang": true}`)
	done := make(chan resp, 1)
	go func() { done <- try(t, "GET", base+"/catalog/products", "", nil) }()
	eventually(t, 5*time.Second, "a request held", func() bool { return stats(t, g, 0).InFlight == 1 })
	select {
	case r := <-done:
		t.Fatalf("hung request answered %d", r.status)
	default:
	}
	// A client that gives up frees the instance.
	short := &http.Client{Timeout: 100 * time.Millisecond, Transport: &http.Transport{Proxy: nil}}
	if _, err := send(short, "GET", base+"/catalog/products", "", nil); err == nil {
		t.Error("hang answered a request")
	}
	eventually(t, 5*time.Second, "the abandoned request to leave", func() bool { return stats(t, g, 0).InFlight == 1 })
	// Changing the fault to something else (here: slow) keeps it hanging
	// only if hang stays set.
	postFault(t, base, `{"hang": true, "slow": 1}`)
	postFault(t, base, `{}`)
	if r := <-done; r.status != 200 {
		t.Errorf("after clearing hang: %d", r.status)
	}
}

// Crash resets open connections and refuses new ones; restart_after brings
// the instance back, fresh.
func TestFaultCrashAndRestart(t *testing.T) {
	cfg := testConfig(t, "catalog", 2)
	g := startGroup(t, cfg)
	base := g.URLs()[0]
	addr := g.Addrs()[0]

	// An idle keep-alive connection, and a request held in flight.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	br := bufio.NewReader(idle)
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v", err)
	} else {
		r.Body.Close()
	}
	if err := g.SetFault(1, Fault{Hang: true}); err != nil { // unrelated instance: must be untouched
		t.Fatal(err)
	}
	postFault(t, base, `{"hang": true}`)
	held := make(chan error, 1)
	go func() {
		r, err := send(testClient, "GET", base+"/catalog/products", "", nil)
		if err == nil {
			t.Logf("answered %d %s", r.status, r.body)
		}
		held <- err
	}()
	eventually(t, 5*time.Second, "a request in flight", func() bool { return stats(t, g, 0).InFlight == 1 })

	r := postFault(t, base, `{"crash": true, "restart_after": "300ms"}`)
	var f Fault
	r.json(t, &f)
	if !f.Crash || f.RestartAfter != 300*time.Millisecond {
		t.Errorf("crash answer %+v", f)
	}
	if err := <-held; err == nil {
		t.Error("the in-flight request got an answer from a crashed instance")
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("idle keep-alive connection survived the crash: %v", err)
	}
	if st := stats(t, g, 0); !st.Crashed || st.Crashes != 1 {
		t.Errorf("stats after crash: crashed %v crashes %d", st.Crashed, st.Crashes)
	}
	eventually(t, 10*time.Second, "the instance to restart", func() bool {
		r, err := send(testClient, "GET", base+"/healthz", "", nil)
		return err == nil && r.status == 200
	})
	if f, _ := g.Fault(0); f != (Fault{}) {
		t.Errorf("restarted with fault %+v, want none (a fresh process)", f)
	}
	if r := do(t, "GET", base+"/catalog/products", "", nil); r.status != 200 {
		t.Errorf("after restart: %d", r.status)
	}
	if f, _ := g.Fault(1); !f.Hang {
		t.Error("the other instance's fault changed")
	}
	g.SetFault(1, Fault{})
}

func TestCrashWithoutRestartUntilCleared(t *testing.T) {
	g := startGroup(t, testConfig(t, "catalog", 1))
	addr := g.Addrs()[0]
	if err := g.SetFault(0, Fault{Crash: true}); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a crashed instance accepted a connection")
	}
	if err := g.SetFault(0, Fault{}); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "GET", "http://"+addr+"/healthz", "", nil); r.status != 200 {
		t.Errorf("after clearing the crash: %d", r.status)
	}
	if g.Addrs()[0] != addr {
		t.Errorf("restarted on %s, want the same address %s", g.Addrs()[0], addr)
	}
}

func TestDrain(t *testing.T) {
	cfg := testConfig(t, "catalog", 1)
	cfg.Latency, cfg.CV = 300*time.Millisecond, 0
	g := startGroup(t, cfg)
	base := g.URLs()[0]
	done := make(chan resp, 1)
	go func() { done <- try(t, "GET", base+"/catalog/products", "", nil) }()
	eventually(t, 5*time.Second, "a request in flight", func() bool { return stats(t, g, 0).Busy == 1 })
	shut := make(chan error, 1)
	go func() { shut <- g.Shutdown(t.Context()) }()
	if r := <-done; r.status != 200 {
		t.Errorf("in-flight request during drain: %d", r.status)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := send(testClient, "GET", base+"/healthz", "", nil); err == nil {
		t.Error("a drained group still answers")
	}
}

// FuzzFaultJSON: any body either is refused with an error or gives a valid
// fault that survives a round trip through its GET form.
func FuzzFaultJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"slow": 3.0, "error_rate": 0.2, "hang": false, "crash": false, "restart_after": "5s"}`,
		`{"crash": true, "restart_after": "1h2m"}`, `{"error_rate": 1e309}`, `{"slow": null}`, `[]`, `{"restart_after": 5}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var fl Fault
		if err := json.Unmarshal([]byte(body), &fl); err != nil {
			return
		}
		if err := fl.Validate(); err != nil {
			t.Fatalf("%q parsed into an invalid fault %+v: %v", body, fl, err)
		}
		b, err := json.Marshal(fl)
		if err != nil {
			t.Fatal(err)
		}
		var back Fault
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("GET form %s does not parse: %v", b, err)
		}
		if back.slowFactor() != fl.slowFactor() || back.ErrorRate != fl.ErrorRate || back.Hang != fl.Hang || back.Crash != fl.Crash || back.RestartAfter != fl.RestartAfter {
			t.Fatalf("round trip %+v → %s → %+v", fl, b, back)
		}
	})
}

// TestFaultAPIOffTheProxiedPath: /_shop/fault is not reachable through a
// proxy whose route catches every path (issue #13: anyone who reached the
// demo's proxy could crash the shop). Off by default; on, it still refuses
// requests that came through a proxy; direct loopback calls work.
func TestFaultAPIOffTheProxiedPath(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := testConfig(t, "catalog", 1)
		cfg.FaultAPI = on
		g := startGroup(t, cfg)
		ycfg, err := config.Parse([]byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: catalog}]}
services:
  - {name: catalog, endpoints: [{address: %q}]}
`, g.Addrs()[0])))
		if err != nil {
			t.Fatal(err)
		}
		px, err := proxy.New(ycfg, proxy.Options{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := px.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(px.Close)
		through := "http://" + px.Addr("127.0.0.1:0")
		want := http.StatusNotFound
		if on {
			want = http.StatusForbidden
		}
		for _, method := range []string{"GET", "POST"} {
			if r := do(t, method, through+"/_shop/fault", `{"crash":true}`, nil); r.status != want {
				t.Errorf("FaultAPI %v: %s through the proxy: %d %s, want %d", on, method, r.status, r.body, want)
			}
		}
		if f, _ := g.Fault(0); f.Crash {
			t.Fatalf("FaultAPI %v: a request through the proxy crashed the instance", on)
		}
		// Through the proxy the service itself still answers.
		if r := do(t, "GET", through+"/catalog/products", "", nil); r.status != 200 {
			t.Errorf("catalog through the proxy: %d", r.status)
		}
		// Directly from loopback: only when on.
		r := do(t, "POST", g.URLs()[0]+"/_shop/fault", `{"slow":2}`, nil)
		if f, _ := g.Fault(0); on && (r.status != 200 || f.Slow != 2) || !on && (r.status != 404 || f.Slow == 2) {
			t.Errorf("FaultAPI %v: direct POST: %d %s, fault %+v", on, r.status, r.body, f)
		}
	}
}
