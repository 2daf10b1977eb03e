package shop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy"
)

// testLogger is silent unless -v.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testConfig is a fast default: no service time, no warm-up.
func testConfig(t testing.TB, service string, instances int) Config {
	cfg := DefaultConfig()
	cfg.Service = service
	cfg.Addrs = make([]string, instances)
	for i := range cfg.Addrs {
		cfg.Addrs[i] = "127.0.0.1:0"
	}
	cfg.Latency = 0
	cfg.Warmup = 0
	cfg.FaultAPI = true // the fault tests use it; TestFaultAPIOffTheProxiedPath checks the default
	cfg.Logger = testLogger(t)
	return cfg
}

func startGroup(t testing.TB, cfg Config) *Group {
	t.Helper()
	g, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Service, err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

var testClient = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 128},
}

type resp struct {
	status int
	body   string
	header http.Header
}

func (r resp) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// send makes one request; err is a transport error.
func send(client *http.Client, method, url, body string, hdr map[string]string) (resp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return resp{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{status: r.StatusCode, body: string(b), header: r.Header}, nil
}

func do(t testing.TB, method, url, body string, hdr map[string]string) resp {
	t.Helper()
	r, err := send(testClient, method, url, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// try is do for goroutines other than the test's: it reports a transport
// error with Errorf and returns a zero resp.
func try(t testing.TB, method, url, body string, hdr map[string]string) resp {
	r, err := send(testClient, method, url, body, hdr)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
	}
	return r
}

// eventually polls cond until it holds or the timeout passes: used where
// the event is a state change visible only by asking.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func stats(t testing.TB, g *Group, i int) Stats {
	t.Helper()
	st, err := g.Stats(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// stack is the whole shop behind a real lbsys proxy.
type stack struct {
	proxyURL string
	groups   map[string]*Group
	px       *proxy.Proxy
}

type stackOptions struct {
	instances map[string]int // per service; default 2
	tune      func(*Config)  // applied to every service's config
	dataPath  string         // SQLite file shared by all services; "" = memory
	retries   string         // the services' retries block
	cache     bool           // the proxy caches the catalog route
	engine    string         // the proxy's server.engine; "" = default
}

func startStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	// The proxy's port is bound now and handed to the proxy when it starts:
	// the services must know it first, and a port merely reserved could be
	// taken by one of their listeners or connections meanwhile (CI saw
	// "bind: address already in use").
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	proxyAddr := held.Addr().String()
	st := &stack{proxyURL: "http://" + proxyAddr, groups: map[string]*Group{}}
	var svcYAML strings.Builder
	for _, name := range Services {
		n := o.instances[name]
		if n == 0 {
			n = 2
		}
		cfg := testConfig(t, name, n)
		cfg.Upstream = st.proxyURL
		cfg.DataPath = o.dataPath
		if o.tune != nil {
			o.tune(&cfg)
		}
		g := startGroup(t, cfg)
		st.groups[name] = g
		fmt.Fprintf(&svcYAML, "  - name: %s\n    endpoints: [", name)
		for i, a := range g.Addrs() {
			if i > 0 {
				svcYAML.WriteString(", ")
			}
			fmt.Fprintf(&svcYAML, "{address: %q}", a)
		}
		svcYAML.WriteString("]\n")
		if o.retries != "" {
			fmt.Fprintf(&svcYAML, "    retries: %s\n", o.retries)
		}
		if o.cache && name == "catalog" {
			svcYAML.WriteString("    cache: {enabled: true}\n")
		}
	}
	engine := o.engine
	if engine == "" {
		engine = config.EngineLbsys
	}
	yaml := fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
server: {engine: %s}
listeners:
  - name: main
    listen: %s
    routes:
      - {match: {path_prefix: /catalog}, service: catalog}
      - {match: {path_prefix: /inventory}, service: inventory}
      - {match: {path_prefix: /cart}, service: cart}
      - {match: {path_prefix: /checkout}, service: checkout}
      - {match: {path_prefix: /payment}, service: payment}
services:
%s`, engine, proxyAddr, svcYAML.String())
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("proxy config: %v\n%s", err, yaml)
	}
	listen := func(network, address string) (net.Listener, error) {
		if address == proxyAddr {
			return held, nil
		}
		return net.Listen(network, address)
	}
	px, err := proxy.New(cfg, proxy.Options{Logger: testLogger(t), TickInterval: 20 * time.Millisecond, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	st.px = px
	return st
}
