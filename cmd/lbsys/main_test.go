package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/testnet"
)

// These tests run the real binary: signals, exit codes and flags are the
// contract with operators and scripts.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func lbsysBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lbsys-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "lbsys")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// testBackend is an HTTP backend on 127.0.0.1 that answers every path at
// once but /slow, which it holds until Release: a test knows when a
// request is in flight (Arrived) and decides when it ends, instead of
// sleeping and hoping.
type testBackend struct {
	addr    string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func startBackend(t *testing.T) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{addr: ln.Addr().String(), arrived: make(chan struct{}, 16), release: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case b.arrived <- struct{}{}:
			default:
			}
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "done "+r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { b.Release(); srv.Close() })
	return b
}

// Arrived waits for a /slow request to reach the backend.
func (b *testBackend) Arrived(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-b.arrived:
	case <-time.After(timeout):
		t.Fatalf("no request reached the backend within %v", timeout)
	}
}

// Release lets every held /slow request, and every later one, answer.
func (b *testBackend) Release() { b.once.Do(func() { close(b.release) }) }

type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startLbsys(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(lbsysBinary(t), args...), stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	p.cmd.Stdout = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("lbsys output:\n%s", p.stderr.String())
		}
	})
	return p
}

// waitHTTP polls url until it answers, for at most 10s.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	waitFor(t, 10*time.Second, url+" to come up", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
}

func writeCfg(t *testing.T, listen, admin, backend string, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lbsys.yaml")
	cfg := fmt.Sprintf(`admin: {listen: %s}
server: {drain_timeout: 10s}
listeners:
  - {name: main, listen: %s, routes: [{service: app}]}
services:
  - name: app
    endpoints: [{address: %s}]
%s`, admin, listen, backend, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	backend := startBackend(t)
	listen, admin := testnet.Addr(t), testnet.Addr(t)
	p := startLbsys(t, "proxy", "--config", writeCfg(t, listen, admin, backend.addr, ""))
	waitHTTP(t, "http://"+admin+"/healthz")

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	backend.Arrived(t, 10*time.Second) // the request is in flight, held by the backend
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once draining started, while the
	// request is still held.
	waitFor(t, 5*time.Second, "the listener to refuse connections while draining", func() bool {
		c, err := net.DialTimeout("tcp", listen, 500*time.Millisecond)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case r := <-res:
		t.Fatalf("the in-flight request ended before the backend answered: status %d body %q err %v", r.status, r.body, r.err)
	default:
	}
	backend.Release()
	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not finish within 10s of the backend's answer")
	}
	if r.err != nil || r.status != 200 || r.body != "done /slow" {
		t.Fatalf("in-flight request: status %d body %q err %v", r.status, r.body, r.err)
	}
	p.waitExit(t, 10*time.Second)
	if !strings.Contains(p.stderr.String(), "drained") {
		t.Errorf("no drain message in output")
	}
}

// waitExit waits for the process to exit 0 within timeout.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup's wait
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("lbsys did not exit within %v", timeout)
	}
}

func TestSIGHUPReloads(t *testing.T) {
	backend := startBackend(t)
	listen, admin := testnet.Addr(t), testnet.Addr(t)
	cfgPath := writeCfg(t, listen, admin, backend.addr, "")
	p := startLbsys(t, "proxy", "--config", cfgPath)
	waitHTTP(t, "http://"+admin+"/healthz")
	version := func() string {
		resp, err := http.Get("http://" + admin + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		s := string(b)
		i := strings.Index(s, `"config_version": "`)
		return s[i+19 : i+31]
	}
	before := version()
	os.WriteFile(cfgPath, []byte(strings.Replace(mustRead(t, cfgPath), "name: app\n", "name: app\n    priority: critical\n", 1)), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "SIGHUP to reload the new config", func() bool { return version() != before })
	// A broken file on SIGHUP keeps the running config and the process:
	// once the failure is logged, the reload is over.
	after := version()
	failed := strings.Count(p.stderr.String(), "reload failed")
	os.WriteFile(cfgPath, []byte("services: [{name: app, endpoints: []}]\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 5*time.Second, "the broken config's reload to fail (\"reload failed\" logged)", func() bool {
		return strings.Count(p.stderr.String(), "reload failed") > failed
	})
	if version() != after {
		t.Fatal("a broken config replaced the running one")
	}
	if !p.alive() {
		t.Fatal("a broken config on SIGHUP ended the process")
	}
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case err := <-p.done:
		p.done <- err // for waitExit and the cleanup
		return false
	default:
		return true
	}
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExitCodesAndHelp(t *testing.T) {
	bin := lbsysBinary(t)
	good := writeCfg(t, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("listeners: []\nservicez: []\n"), 0o600)
	cases := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"--help"}, 0, "proxy"},
		{[]string{"proxy", "--help"}, 0, "--config"},
		{[]string{"proxy", "--help"}, 0, "--stub-backends"},
		{[]string{"proxy", "--config", good, "--check"}, 0, "valid"},
		{[]string{"proxy", "--config", bad, "--check"}, 2, "servicez"},
		{[]string{"proxy"}, 2, "--config is required"},
		{[]string{"proxy", "--config", "/nonexistent.yaml"}, 2, "nonexistent"},
		{[]string{"nosuchcommand"}, 2, "unknown command"},
		{[]string{"proxy", "--no-such-flag"}, 2, "unknown flag"},
	}
	for _, c := range cases {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.wantCode || !strings.Contains(string(out), c.wantOut) {
			t.Errorf("lbsys %v: exit %d, output %q; want exit %d containing %q", c.args, code, out, c.wantCode, c.wantOut)
		}
	}
}

func TestStubBackendsServeTheExample(t *testing.T) {
	listen, admin := testnet.Addr(t), testnet.Addr(t)
	be := testnet.Addr(t)
	p := startLbsys(t, "proxy", "--stub-backends", "--config", writeCfg(t, listen, admin, be, ""))
	_ = p
	waitHTTP(t, "http://"+admin+"/healthz")
	resp, err := http.Get("http://" + listen + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), be) {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
}
