package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy"
)

// TestExplainFromProxyAdmin runs `lbsys explain --admin URL` against a
// real proxy's /explain: the proxy restores a directive from its agent's
// state file (its coordinator is down), and the command prints what the
// directive asks and why, then what the picks read now.
func TestExplainFromProxyAdmin(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	addr := strings.TrimPrefix(backend.URL, "http://")
	dir := t.TempDir()
	sale := time.Date(2031, 11, 27, 10, 0, 0, 0, time.UTC)
	d := &directive.Directive{Schema: 1, Version: 5, Change: 9, Services: map[string]*directive.Service{
		"app": {
			Weights:    map[string]float64{addr: 2},
			WeightsWhy: &directive.Reason{Text: "the only endpoint", Driver: "manual"},
			Scale: &directive.Scale{Replicas: 12, By: &sale, Why: &directive.Reason{Text: "floor 12 = ⌈1800 rps / 150⌉ for the sale",
				Driver: "event", Event: "flash-sale " + sale.Format(time.RFC3339), LoadRPS: 1800, PerReplicaRPS: 150}},
		},
	}}
	state, _ := json.Marshal(d)
	os.WriteFile(filepath.Join(dir, "state.json"), state, 0o600)
	os.WriteFile(filepath.Join(dir, "token"), []byte("agent-token\n"), 0o600)
	// A coordinator that is not there: a loopback port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	yaml := fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
listeners: [{name: main, listen: 127.0.0.1:0, routes: [{service: app}]}]
services:
  - {name: app, policy: weighted, endpoints: [{address: %q}], admission: {}}
coordinator: {urls: [%q], token_file: %q, proxy_id: cli-test, state_file: %q}
`, addr, dead, filepath.Join(dir, "token"), filepath.Join(dir, "state.json"))
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	if err := px.StartAgent(nil); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + px.AdminAddr()

	run := func(args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"explain", "--admin", admin, "--timeout", "10s"}, args...))
		err := root.Execute()
		return out.String(), err
	}
	for _, args := range [][]string{{"--service", "app"}, nil} {
		out, err := run(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		for _, want := range []string{
			"directive version 5 (change 9)",
			"scale: at least 12 replicas by 2031-11-27T10:00:00Z",
			"why: floor 12 = ⌈1800 rps / 150⌉ for the sale",
			"from: driver event; event flash-sale 2031-11-27T10:00:00Z; load 1800 rps; capacity 150 rps per replica",
			"weights: " + addr + " 2; 0 slow-start ramps",
			"== What the picks read now",
			"service app: policy weighted",
			"admission: limit",
			addr + "  in rotation",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: the output lacks %q:\n%s", args, want, out)
			}
		}
	}
	if out, err := run("--service", "cart"); err == nil || !strings.Contains(err.Error(), `no service "cart" on this proxy; it has app`) {
		t.Errorf("unknown service: %v\n%s", err, out)
	}
}
