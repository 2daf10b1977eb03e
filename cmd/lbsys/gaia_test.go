package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/gaia/gaiatest"
)

// gproc is one lbsys process of the multi-process test.
type gproc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startGProc starts the binary with extra environment; the cleanup sends
// SIGCONT (a stopped process ignores SIGKILL until continued on some
// systems' process accounting, and must not stay stopped), then SIGKILL,
// and waits a bounded time.
func startGProc(t *testing.T, name string, env []string, args ...string) *gproc {
	t.Helper()
	p := &gproc{name: name, cmd: exec.Command(lbsysBinary(t), args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
		}
		if t.Failed() || os.Getenv("GAIA_DEBUG") != "" {
			out := p.out.String()
			if len(out) > 4000 {
				out = "…" + out[len(out)-4000:]
			}
			t.Logf("--- %s output:\n%s", p.name, out)
		}
	})
	return p
}

func (p *gproc) kill9(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not die", p.name)
	}
}

func (p *gproc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// waitFor polls cond every 20ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const gaiaToken = "multi-process-admin-token-0123"

// TestGaiaMultiProcessFaults: 3 coordinator processes and 3 proxies on
// 127.0.0.1. While clients propose directives and read them back, the
// leader is killed with SIGKILL and a surviving follower is stopped with
// SIGSTOP (no quorum: commits must be refused, never acknowledged); then
// the killed node restarts from its data directory and the follower
// continues. Every acknowledged directive must survive, the history must be
// linearizable (porcupine), and every proxy must converge to the last
// committed version.
func TestGaiaMultiProcessFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	lbsysBinary(t)
	env := []string{"LBSYS_COORDINATOR_TOKEN=" + gaiaToken}
	type node struct {
		id, raft, http, dir string
		args                []string
		p                   *gproc
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("n%d", i+1), raft: freePort(t), http: freePort(t), dir: t.TempDir()}
		n.args = []string{"coordinator", "--id", n.id, "--raft-addr", n.raft, "--http-addr", n.http, "--data-dir", n.dir,
			"--heartbeat-timeout", "150ms", "--election-timeout", "150ms", "--leader-lease-timeout", "100ms", "--commit-timeout", "5ms",
			"--snapshot-threshold", "32", "--snapshot-interval", "200ms", "--trailing-logs", "16", "--wal-segment-size", "1048576",
			"--watch-wait", "2s", "--canary-fraction", "0", "--proxy-ttl", "10s", "--request-timeout", "2s", "--log-level", "warn"}
		if i == 0 {
			n.args = append(n.args, "--bootstrap")
		}
		nodes[i] = n
	}
	for i := 1; i < 3; i++ {
		nodes[i].args = append(nodes[i].args, "--join", "http://"+nodes[0].http)
	}
	url := func(i int) string { return "http://" + nodes[i].http }
	var urls []string
	for i := range nodes {
		urls = append(urls, url(i))
	}
	start := func(i int) { nodes[i].p = startGProc(t, nodes[i].id, env, nodes[i].args...) }
	status := func(i int) *client.Status {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := client.New([]string{url(i)}, gaiaToken).Status(ctx)
		if err != nil {
			return nil
		}
		return s
	}
	// leader returns the index of a live node that leads and serves
	// linearizable reads, or -1.
	leader := func(exclude ...int) int {
		for i, n := range nodes {
			skip := n.p == nil || !n.p.alive()
			for _, x := range exclude {
				skip = skip || x == i
			}
			if skip {
				continue
			}
			if s := status(i); s != nil && s.RaftState == "Leader" {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, _, ok := gaiatest.Read(ctx, url(i), gaiaToken)
				cancel()
				if ok {
					return i
				}
			}
		}
		return -1
	}
	t0 := time.Now()
	phase := func(format string, args ...any) {
		t.Logf("%6.2fs  %s", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}

	start(0)
	waitFor(t, 15*time.Second, "n1 to lead", func() bool { return leader() == 0 })
	start(1)
	start(2)
	waitFor(t, 15*time.Second, "3 voters", func() bool {
		s := status(0)
		return s != nil && len(s.Voters) == 3 && len(s.Members) == 3
	})
	phase("3 coordinators up")

	proxies := make([]*gproc, 3)
	admins := make([]string, 3)
	for i := range proxies {
		dir := t.TempDir()
		admins[i] = freePort(t)
		cfg := fmt.Sprintf(`admin: {listen: %s}
listeners:
  - {name: main, listen: %s, routes: [{service: app}]}
services:
  - name: app
    policy: weighted
    endpoints: [{address: "127.0.0.1:1"}, {address: "127.0.0.1:2"}]
    health: {outlier: {disabled: true}}
coordinator:
  urls: [%s]
  proxy_id: p%d
  state_file: %s
  wait: 1s
`, admins[i], freePort(t), strings.Join(urls, ", "), i+1, filepath.Join(dir, "directive.json"))
		path := filepath.Join(dir, "lbsys.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		proxies[i] = startGProc(t, fmt.Sprintf("proxy-%d", i+1), env, "proxy", "--config", path, "--log-level", "info")
	}
	type agentView struct {
		Version   uint64 `json:"version"`
		Degraded  bool   `json:"degraded"`
		Leader    string `json:"leader"`
		LastError string `json:"last_error"`
	}
	proxyAgent := func(i int) *agentView {
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + admins[i] + "/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var st struct {
			Coordinator *agentView `json:"coordinator"`
		}
		if json.NewDecoder(resp.Body).Decode(&st) != nil {
			return nil
		}
		return st.Coordinator
	}
	for i := range proxies {
		waitFor(t, 15*time.Second, fmt.Sprintf("proxy %d up", i+1), func() bool { return proxyAgent(i) != nil })
	}
	phase("3 proxies up")

	// Clients: propose then read, each against a rotating coordinator.
	h := gaiatest.NewHistory()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for cl := 0; cl < 3; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			for seq := 1; ctx.Err() == nil; seq++ {
				k := (cl+1)*100000 + seq
				call := h.Now()
				h.Proposed(cl, k, call, gaiatest.Propose(ctx, url((cl+seq)%3), gaiaToken, k))
				call = h.Now()
				if v, got, ok := gaiatest.Read(ctx, url((cl+seq+1)%3), gaiaToken); ok {
					h.ReadDone(cl, call, v, got)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}(cl)
	}
	stopClients := func() { cancel(); wg.Wait() }
	defer stopClients()

	time.Sleep(1500 * time.Millisecond)
	old := -1
	waitFor(t, 10*time.Second, "a leader", func() bool { old = leader(); return old >= 0 })
	acksBefore := h.Count("propose acked")
	nodes[old].p.kill9(t)
	phase("kill -9 leader %s (%d acked so far)", nodes[old].id, acksBefore)
	nl := -1
	elected := time.Now()
	waitFor(t, 10*time.Second, "a new leader", func() bool { nl = leader(old); return nl >= 0 })
	phase("new leader %s after %s", nodes[nl].id, time.Since(elected).Round(time.Millisecond))
	time.Sleep(time.Second)

	f := 3 - old - nl // the remaining follower
	failedBefore := h.Count("propose failed") + h.Count("propose unknown")
	ackedBefore := h.Count("propose acked")
	nodes[f].p.cmd.Process.Signal(syscall.SIGSTOP)
	phase("SIGSTOP follower %s: no quorum", nodes[f].id)
	time.Sleep(400 * time.Millisecond) // let in-flight commits drain
	ackedDuring := h.Count("propose acked")
	time.Sleep(1200 * time.Millisecond)
	if got := h.Count("propose acked"); got != ackedDuring {
		t.Errorf("%d proposals acknowledged without a quorum", got-ackedDuring)
	}
	if h.Count("propose failed")+h.Count("propose unknown") == failedBefore {
		t.Errorf("no proposal was refused while the quorum was lost")
	}
	phase("without quorum: %d acked before the stop settled, 0 after; refusals %d", ackedDuring-ackedBefore, h.Count("propose failed")+h.Count("propose unknown")-failedBefore)
	start(old) // restarts from its data directory
	nodes[f].p.cmd.Process.Signal(syscall.SIGCONT)
	phase("restarted %s from disk, SIGCONT %s", nodes[old].id, nodes[f].id)
	waitFor(t, 15*time.Second, "a leader after healing", func() bool { return leader() >= 0 })
	acksHealed := h.Count("propose acked")
	waitFor(t, 15*time.Second, "commits after healing", func() bool { return h.Count("propose acked") > acksHealed+5 })
	time.Sleep(time.Second)
	stopClients()
	phase("clients stopped: %s", h.Summary())

	// The last committed version, read linearizably.
	var final uint64
	waitFor(t, 15*time.Second, "a final read", func() bool {
		l := leader()
		if l < 0 {
			return false
		}
		v, _, ok := gaiatest.Read(context.Background(), url(l), gaiaToken)
		final = v
		return ok
	})
	// Every acknowledged directive survives on every coordinator.
	for i := range nodes {
		waitFor(t, 15*time.Second, nodes[i].id+" to catch up", func() bool { s := status(i); return s != nil && s.Latest >= final })
		c := client.New([]string{url(i)}, gaiaToken)
		for v, k := range h.Acked {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			d, err := c.Directive(ctx, v, true)
			cancel()
			if err != nil || gaiatest.Marker(d) != k {
				t.Errorf("%s: acknowledged version %d: marker %d, err %v; want %d", nodes[i].id, v, gaiatest.Marker(d), err, k)
			}
		}
	}
	// Every proxy converges to the last committed version.
	for i := range proxies {
		var last *agentView
		waitFor(t, 20*time.Second, fmt.Sprintf("proxy %d to run version %d", i+1, final), func() bool {
			last = proxyAgent(i)
			return last != nil && last.Version == final && !last.Degraded
		})
	}
	phase("every proxy runs version %d; %d acknowledged versions verified on 3 coordinators", final, len(h.Acked))
	if err := h.Check(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	phase("history linearizable (porcupine)")

	// With every coordinator gone, a restarted proxy starts from its
	// persisted directive and says it is degraded.
	for _, n := range nodes {
		n.p.kill9(t)
	}
	proxies[0].kill9(t)
	proxies[0] = startGProc(t, "proxy-1 (restarted)", env, proxies[0].cmd.Args[1:]...)
	var last *agentView
	waitFor(t, 15*time.Second, "the restarted proxy in degraded mode", func() bool {
		last = proxyAgent(0)
		return last != nil && last.Degraded
	})
	if last.Version != final {
		t.Fatalf("restarted proxy runs version %d, want the persisted %d", last.Version, final)
	}
	phase("coordinators gone: restarted proxy 1 serves persisted version %d, degraded", last.Version)
}

// TestGaiaCLI drives one coordinator with the CLI the way an operator does:
// validate, propose, list, show, approve, reject, rollback, get, diff; and
// checks exit codes.
func TestGaiaCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	bin := lbsysBinary(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte(`alice-token-0123456789 alice proposer
bob-token-0123456789ab bob approver
carol-token-0123456789 carol proposer,approver
`), 0o600)
	tok := func(name, value string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(value+"\n"), 0o600)
		return p
	}
	alice, bob, carol := tok("alice", "alice-token-0123456789"), tok("bob", "bob-token-0123456789ab"), tok("carol", "carol-token-0123456789")
	httpAddr := freePort(t)
	startGProc(t, "coordinator", nil, "coordinator", "--id", "n1", "--raft-addr", freePort(t), "--http-addr", httpAddr,
		"--data-dir", filepath.Join(dir, "data"), "--bootstrap", "--tokens-file", tokens,
		"--heartbeat-timeout", "150ms", "--election-timeout", "150ms", "--leader-lease-timeout", "100ms", "--log-level", "warn")
	coord := "http://" + httpAddr
	run := func(want int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "LBSYS_COORDINATOR="+coord, "LBSYS_TOKEN=", "LBSYS_COORDINATOR_TOKEN=")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Fatalf("lbsys %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		return string(out)
	}
	waitFor(t, 15*time.Second, "the coordinator to lead", func() bool {
		cmd := exec.Command(bin, "change", "list", "--token-file", alice)
		cmd.Env = append(os.Environ(), "LBSYS_COORDINATOR="+coord)
		return cmd.Run() == nil
	})
	good := filepath.Join(dir, "d1.json")
	os.WriteFile(good, []byte(`{"schema": 1, "services": {"catalog": {
  "weights": {"127.0.0.1:9001": 2, "127.0.0.1:9002": 1},
  "cache": {"warm": ["/catalog/top"]},
  "why": {"model": "gbdt@1", "blessed": true}}}}`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"schema": 1, "services": {"catalog": {"weights": {"127.0.0.1:9001": -2}}}}`), 0o600)

	if out := run(0, "directive", "validate", "--file", good); !strings.Contains(out, "valid (schema 1, 1 services)") {
		t.Fatal(out)
	}
	if out := run(2, "directive", "validate", "--file", bad); !strings.Contains(out, "services[catalog].weights[127.0.0.1:9001]: must be a finite number between 0") {
		t.Fatal(out)
	}
	run(2, "directive", "propose", "--file", bad, "--reason", "x", "--token-file", alice)
	run(2, "directive", "propose", "--file", good, "--token-file", alice) // no reason
	out := run(0, "directive", "propose", "--file", good, "--type", "normal", "--reason", "flash sale at noon", "--token-file", alice)
	if !strings.Contains(out, "change 1 (normal): authorize") || !strings.Contains(out, "lbsys change approve 1") {
		t.Fatal(out)
	}
	if out := run(1, "change", "approve", "1", "--reason", "mine", "--token-file", alice); !strings.Contains(out, "403") || !strings.Contains(out, "approver role") {
		t.Fatal(out)
	}
	if out := run(0, "change", "approve", "1", "--reason", "capacity checked", "--token-file", bob); !strings.Contains(out, "change 1 (normal): closed, success") {
		t.Fatal(out)
	}
	if out := run(1, "change", "reject", "1", "--reason", "late", "--token-file", bob); !strings.Contains(out, "409") {
		t.Fatal(out)
	}
	out = run(0, "change", "list", "--token-file", alice)
	if !strings.Contains(out, "ID  TYPE") || !strings.Contains(out, "flash sale at noon") {
		t.Fatal(out)
	}
	out = run(0, "change", "show", "1", "--token-file", alice)
	for _, want := range []string{"version 1 (on top of 0)", "approval (authorize): bob", "services[catalog].weights[127.0.0.1:9001]: (none) -> 2", "authorize -> scheduled", "bob"} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	if out := run(0, "directive", "get", "--token-file", alice); !strings.Contains(out, `"version": 1`) || !strings.Contains(out, "/catalog/top") {
		t.Fatal(out)
	}
	// A standard change outside the policy is refused (exit 2).
	big := filepath.Join(dir, "big.json")
	os.WriteFile(big, []byte(`{"schema": 1, "services": {"catalog": {"weights": {"127.0.0.1:9001": 8, "127.0.0.1:9002": 1}, "why": {"model": "gbdt@1", "blessed": true}}}}`), 0o600)
	if out := run(2, "directive", "propose", "--file", big, "--type", "standard", "--reason", "x", "--token-file", alice); !strings.Contains(out, "outside the standard-change policy") {
		t.Fatal(out)
	}
	if out := run(0, "change", "rollback", "1", "--reason", "p99 regression", "--token-file", carol); !strings.Contains(out, "(emergency): review") || !strings.Contains(out, "restoring version 0") {
		t.Fatal(out)
	}
	if out := run(0, "directive", "diff", "1", "2", "--token-file", alice); !strings.Contains(out, "services[catalog].weights[127.0.0.1:9001]: 2 -> (none)") {
		t.Fatal(out)
	}
	if out := run(0, "directive", "diff", "0", good); !strings.Contains(out, "cache.warm") {
		t.Fatal(out)
	}
	run(2, "change", "rollback", "--reason", "x", "--token-file", carol) // neither change nor version
	run(2, "change", "show", "abc", "--token-file", alice)
	run(2, "change", "list") // no token
	if out := run(1, "change", "list", "--token-file", alice, "--coordinator", "http://"+freePort(t)); !strings.Contains(out, "no coordinator reachable") {
		t.Fatal(out)
	}
	for _, args := range [][]string{{"coordinator", "--help"}, {"change", "--help"}, {"directive", "propose", "--help"}, {"proxy", "--help"}} {
		if out := run(0, args...); !strings.Contains(out, "--coordinator") && !strings.Contains(out, "--bootstrap") && !strings.Contains(out, "rollback") {
			t.Errorf("help of %v:\n%s", args, out)
		}
	}
	run(2, "coordinator", "--id", "n1", "--data-dir", dir, "--raft-addr", "127.0.0.1:1", "--bootstrap", "--join", "http://x")
}
