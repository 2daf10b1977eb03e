// Package examples_test checks that the files of examples/ fit together
// and fit the code: the proxy configuration routes every request the load
// generator and the shop's checkout send, to the service that answers it,
// and examples/shop.sh starts the shop where the configuration looks for
// it (issue #16: the example had no /inventory route, so `lbsys load`
// against it failed a quarter of its requests).
package examples_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/loadgen"
	"github.com/lbsys/lbsys/internal/proxy"
	"github.com/lbsys/lbsys/internal/shop"
)

const configFile = "lbsys.yaml"

// request is a request the shop's clients send: by the load generator or
// by checkout to the other services.
type request struct {
	from, method, path, key string
	body                    []byte
}

func requestsSent() []request {
	var out []request
	for _, r := range loadgen.SampleRequests() {
		out = append(out, request{"lbsys load", r.Method, r.Path, r.IdempotencyKey, r.Body})
	}
	for _, c := range shop.UpstreamCalls() {
		out = append(out, request{"checkout", c.Method, c.Path, "k1", nil})
	}
	return out
}

// serviceOf is the shop service that answers a path: its first segment
// (docs/shop-api.md: every path starts with the service's name).
func serviceOf(path string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	seg, _, _ = strings.Cut(seg, "?")
	return seg
}

// TestExampleConfigRoutesEveryRequest runs the real proxy on
// examples/lbsys.yaml, with its endpoints moved to backends that name
// their service, and sends it every kind of request the shop gets: each
// must reach its own service.
func TestExampleConfigRoutesEveryRequest(t *testing.T) {
	data, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	// Every endpoint moves to a fresh loopback backend of its service, the
	// listener and the admin API to free ports: the test runs beside
	// anything else on the machine.
	text := string(data)
	for _, s := range cfg.Services {
		for _, e := range s.Endpoints {
			text = strings.ReplaceAll(text, e.Address, backend(t, s.Name))
		}
	}
	text = strings.ReplaceAll(text, cfg.Admin.Listen, "127.0.0.1:0")
	listen := cfg.Listeners[0].Listen
	text = strings.ReplaceAll(text, listen, "127.0.0.1:0")
	moved, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("%s with moved addresses: %v", configFile, err)
	}
	px, err := proxy.New(moved, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	base := "http://" + px.Addr("127.0.0.1:0")

	client := &http.Client{Timeout: 10 * time.Second}
	for _, r := range requestsSent() {
		req, err := http.NewRequest(r.method, base+r.path, bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.key != "" {
			req.Header.Set("Idempotency-Key", r.key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := serviceOf(r.path)
		if got := resp.Header.Get("X-Service"); resp.StatusCode != 200 || got != want {
			t.Errorf("%s sends %s %s: %d %s, answered by %q; want 200 from %s: add a route for it to %s",
				r.from, r.method, r.path, resp.StatusCode, resp.Header.Get("X-Lbsys-Error"), got, want, configFile)
		}
	}
}

// backend starts a loopback server for one service: 200 on every path,
// naming the service in X-Service.
func backend(t *testing.T, service string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Service", service)
		w.Write([]byte("ok\n"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// TestShopScriptMatchesConfig: examples/shop.sh starts every service of
// the shop, three instances from a base port, exactly where
// examples/lbsys.yaml sends its traffic, and points checkout at the
// configuration's listener.
func TestShopScriptMatchesConfig(t *testing.T) {
	cfg, err := config.Load(configFile)
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("shop.sh")
	if err != nil {
		t.Fatal(err)
	}
	started := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?m)^start (\S+) (\d+)`).FindAllStringSubmatch(string(script), -1) {
		base, _ := strconv.Atoi(m[2])
		for i := range 3 {
			started[m[1]] = append(started[m[1]], "127.0.0.1:"+strconv.Itoa(base+i))
		}
	}
	for _, name := range shop.Services {
		if _, ok := started[name]; !ok {
			t.Errorf("shop.sh does not start %s", name)
		}
	}
	for _, s := range cfg.Services {
		var addrs []string
		for _, e := range s.Endpoints {
			addrs = append(addrs, e.Address)
		}
		if !slices.Equal(addrs, started[s.Name]) {
			t.Errorf("%s balances %s over %v; shop.sh starts it on %v", configFile, s.Name, addrs, started[s.Name])
		}
	}
	if len(cfg.Services) != len(started) {
		t.Errorf("%s has %d services; shop.sh starts %d", configFile, len(cfg.Services), len(started))
	}
	proxyURL := "http://" + cfg.Listeners[0].Listen
	if !strings.Contains(string(script), "PROXY=${PROXY:-"+proxyURL+"}") {
		t.Errorf("shop.sh's default upstream for checkout is not the listener %s", proxyURL)
	}
}
