package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/shop"
	"github.com/lbsys/lbsys/internal/testnet"
)

// runShopCmd runs `lbsys shop args…` in-process with a run function that
// only captures the configuration.
func runShopCmd(args ...string) (shop.Config, error) {
	var got shop.Config
	root := newRootCmd()
	for _, c := range root.Commands() {
		if c.Name() == "shop" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(newShopCmdRunning(func(_ context.Context, cfg shop.Config, _ *slog.Logger) error {
		got = cfg
		return nil
	}))
	root.SetArgs(append([]string{"shop"}, args...))
	root.SetOut(new(strings.Builder))
	root.SetErr(new(strings.Builder))
	err := root.Execute()
	return got, err
}

func TestShopFlags(t *testing.T) {
	cfg, err := runShopCmd("--service", "catalog", "--instances", "3", "--base-port", "9001", "--speeds", "1,1,0.5",
		"--workers", "4", "--queue", "0", "--queue-timeout", "250ms", "--latency", "5ms", "--cv", "0", "--warmup", "0s",
		"--cold-factor", "2", "--products", "10", "--stock", "7", "--seed", "9", "--data", "/tmp/x.db")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	if strings.Join(cfg.Addrs, ",") != strings.Join(want, ",") || len(cfg.Speeds) != 3 || cfg.Speeds[2] != 0.5 ||
		cfg.Workers != 4 || cfg.Queue != 0 || cfg.QueueTimeout != 250*time.Millisecond || cfg.Latency != 5*time.Millisecond ||
		cfg.CV != 0 || cfg.Warmup != 0 || cfg.ColdFactor != 2 || cfg.Products != 10 || cfg.Stock != 7 || cfg.Seed != 9 ||
		cfg.DataPath != "/tmp/x.db" || cfg.Service != "catalog" {
		t.Errorf("config %+v", cfg)
	}
	// Defaults.
	cfg, err = runShopCmd("--service", "payment", "--listen", "127.0.0.1:9050", "--decline-rate", "0.1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 8 || cfg.Queue != 64 || cfg.QueueTimeout != 500*time.Millisecond || cfg.Latency != 20*time.Millisecond ||
		cfg.CV != 0.5 || cfg.Warmup != 30*time.Second || cfg.ColdFactor != 3 || cfg.Products != 200 || cfg.Stock != 1000 ||
		cfg.DeclineRate != 0.1 || len(cfg.Addrs) != 1 || cfg.Addrs[0] != "127.0.0.1:9050" || cfg.Speeds[0] != 1 {
		t.Errorf("defaults %+v", cfg)
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{}, "--service is required"},
		{[]string{"--service", "shoes"}, `service "shoes"`},
		{[]string{"--service", "checkout"}, "checkout needs an upstream"},
		{[]string{"--service", "checkout", "--upstream", "127.0.0.1:8080"}, "base URL"},
		{[]string{"--service", "catalog", "--listen", "9001"}, "host:port"},
		{[]string{"--service", "catalog", "--listen", "127.0.0.1:1", "--instances", "2"}, "--base-port"},
		{[]string{"--service", "catalog", "--listen", "127.0.0.1:1", "--base-port", "2"}, "both given"},
		{[]string{"--service", "catalog", "--instances", "2", "--speeds", "1,2,3"}, "3 values for 2 instances"},
		{[]string{"--service", "catalog", "--speeds", "fast"}, "not a number"},
		{[]string{"--service", "catalog", "--speed", "2", "--speeds", "1"}, "both given"},
		{[]string{"--service", "catalog", "--speed", "0"}, "speed 0"},
		{[]string{"--service", "catalog", "--workers", "0"}, "--workers 0"},
		{[]string{"--service", "catalog", "--cv", "-1"}, "cv -1"},
		{[]string{"--service", "catalog", "--cold-factor", "0.5"}, "--cold-factor 0.5"},
		{[]string{"--service", "payment", "--decline-rate", "2"}, "--decline-rate 2"},
		{[]string{"--service", "catalog", "--base-port", "65535", "--instances", "2"}, "65535"},
		{[]string{"--service", "catalog", "--latency", "fast"}, "invalid argument"},
		{[]string{"--service", "catalog", "--no-such-flag"}, "unknown flag"},
	}
	for _, c := range bad {
		_, err := runShopCmd(c.args...)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("shop %v: error %v (usage error %v), want a usage error containing %q", c.args, err, errors.As(err, &ue), c.want)
		}
	}
}

// The real binary: exit codes, help, the URL log line, and a drain on
// SIGTERM.
func TestShopBinary(t *testing.T) {
	bin := lbsysBinary(t)
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"shop", "--help"}, 0, "--queue-timeout"},
		{[]string{"--help"}, 0, "shop"},
		{[]string{"shop"}, 2, "--service is required"},
		{[]string{"shop", "--service", "catalog", "--workers", "x"}, 2, "invalid argument"},
		{[]string{"shop", "--service", "checkout"}, 2, "upstream"},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(string(out), c.out) {
			t.Errorf("lbsys %v: exit %d, output %q; want exit %d containing %q", c.args, code, out, c.code, c.out)
		}
	}

	addr := testnet.Addr(t)
	p := startLbsys(t, "shop", "--service", "catalog", "--listen", addr, "--latency", "300ms", "--cv", "0", "--warmup", "0s")
	waitHTTP(t, "http://"+addr+"/healthz")
	if !strings.Contains(p.stderr.String(), "url=http://"+addr) {
		t.Errorf("instance URL not logged:\n%s", p.stderr.String())
	}
	// A request in flight when SIGTERM arrives still gets its answer.
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		r, err := testHTTPGet("http://" + addr + "/catalog/products/p0001")
		res <- result{r, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for { // until the request holds its worker (300ms of service time)
		resp, err := http.Get("http://" + addr + "/_shop/stats")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), `"busy":1,`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the request never reached a worker")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if r := <-res; r.err != nil || r.status != 200 {
		t.Errorf("in-flight request during drain: %d %v", r.status, r.err)
	}
	p.waitExit(t, 15*time.Second)
	if !strings.Contains(p.stderr.String(), "drained") {
		t.Errorf("no drain message:\n%s", p.stderr.String())
	}
}

func testHTTPGet(url string) (int, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
