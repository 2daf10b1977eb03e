package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/gaia/gaiatest"
	"github.com/lbsys/lbsys/internal/testnet"
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
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		case <-poll.C:
		}
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
	// The production configuration: mutual TLS between the coordinators
	// and sealed log entries.
	tlsDir := initTLS(t, 3)
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("n%d", i+1), raft: testnet.Addr(t), http: testnet.Addr(t), dir: t.TempDir()}
		n.args = []string{"coordinator", "--id", n.id, "--raft-addr", n.raft, "--http-addr", n.http, "--data-dir", n.dir, "--tls-dir", tlsDir,
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
	status := func(i int) *change.Status {
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
		admins[i] = testnet.Addr(t)
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
`, admins[i], testnet.Addr(t), strings.Join(urls, ", "), i+1, filepath.Join(dir, "directive.json"))
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

	// Clients: propose then read, each against a rotating coordinator,
	// one round per 10ms, for at most 5 minutes (the load stops even if
	// the test hangs).
	h := gaiatest.NewHistory()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	var wg sync.WaitGroup
	// noQuorum counts writes a live coordinator refused with 503 (no
	// leader, or a leader without its majority), as opposed to writes to a
	// dead one (connection refused).
	var noQuorum atomic.Int64
	for cl := 0; cl < 3; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			pace := time.NewTicker(10 * time.Millisecond)
			defer pace.Stop()
			for seq := 1; ctx.Err() == nil && seq < 100000; seq++ {
				k := (cl+1)*100000 + seq
				call := h.Now()
				r := gaiatest.Propose(ctx, url((cl+seq)%3), gaiaToken, k)
				if r.Outcome == gaiatest.Failed && r.Status == http.StatusServiceUnavailable {
					noQuorum.Add(1)
				}
				h.Proposed(cl, k, call, r)
				call = h.Now()
				if v, got, ok := gaiatest.Read(ctx, url((cl+seq+1)%3), gaiaToken); ok {
					h.ReadDone(cl, call, v, got)
				}
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
			}
		}(cl)
	}
	stopClients := func() { cancel(); wg.Wait() }
	defer stopClients()

	waitFor(t, 15*time.Second, "commits before the faults", func() bool { return h.Count("propose acked") >= 10 })
	old := -1
	waitFor(t, 10*time.Second, "a leader", func() bool { old = leader(); return old >= 0 })
	acksBefore := h.Count("propose acked")
	nodes[old].p.kill9(t)
	phase("kill -9 leader %s (%d acked so far)", nodes[old].id, acksBefore)
	nl := -1
	elected := time.Now()
	waitFor(t, 10*time.Second, "a new leader", func() bool { nl = leader(old); return nl >= 0 })
	phase("new leader %s after %s", nodes[nl].id, time.Since(elected).Round(time.Millisecond))
	acksElected := h.Count("propose acked")
	waitFor(t, 15*time.Second, "commits by the new leader", func() bool { return h.Count("propose acked") >= acksElected+5 })

	f := 3 - old - nl // the remaining follower
	failedBefore := h.Count("propose failed") + h.Count("propose unknown")
	ackedBefore := h.Count("propose acked")
	nodes[f].p.cmd.Process.Signal(syscall.SIGSTOP)
	phase("SIGSTOP follower %s: no quorum", nodes[f].id)
	refused := func() int { return h.Count("propose failed") + h.Count("propose unknown") }
	// Once the leader stepped down (its lease ran out without a majority)
	// anything committed before the stop has been acknowledged. From
	// there on, while live coordinators refuse writes for lack of a
	// majority, none may be acknowledged.
	waitFor(t, 15*time.Second, "the leader to step down without a majority", func() bool {
		s := status(nl)
		return s != nil && s.RaftState != "Leader"
	})
	ackedDuring := h.Count("propose acked")
	q0 := noQuorum.Load()
	waitFor(t, 15*time.Second, "three writes refused for lack of a majority", func() bool { return noQuorum.Load() >= q0+3 })
	if got := h.Count("propose acked"); got != ackedDuring {
		t.Errorf("%d proposals acknowledged without a quorum", got-ackedDuring)
	}
	if refused() == failedBefore {
		t.Errorf("no proposal was refused while the quorum was lost")
	}
	phase("without quorum: %d acked before the stop settled, 0 after; refusals %d", ackedDuring-ackedBefore, h.Count("propose failed")+h.Count("propose unknown")-failedBefore)
	start(old) // restarts from its data directory
	nodes[f].p.cmd.Process.Signal(syscall.SIGCONT)
	phase("restarted %s from disk, SIGCONT %s", nodes[old].id, nodes[f].id)
	waitFor(t, 15*time.Second, "a leader after healing", func() bool { return leader() >= 0 })
	acksHealed := h.Count("propose acked")
	waitFor(t, 15*time.Second, "commits after healing", func() bool { return h.Count("propose acked") > acksHealed+5 })
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
	// Every proxy converges to the last committed version. Versions can
	// still be committed after the final read: a proposal whose outcome
	// the clients never learned (a new leader commits its predecessor's
	// entries), or the coordinator's own rollback of a change whose rollout
	// timed out during the faults. So the target is read again on every
	// try: all proxies must run what the cluster says is its latest
	// version, which is never older than final. (The clients' reads are in
	// the history that porcupine checks below.)
	waitFor(t, 20*time.Second, fmt.Sprintf("every proxy to run the latest version (%d or later)", final), func() bool {
		l := leader()
		if l < 0 {
			return false
		}
		v, _, ok := gaiatest.Read(context.Background(), url(l), gaiaToken)
		if !ok || v < final {
			return false
		}
		for i := range proxies {
			if a := proxyAgent(i); a == nil || a.Version != v || a.Degraded {
				return false
			}
		}
		final = v
		return true
	})
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
	httpAddr := testnet.Addr(t)
	startGProc(t, "coordinator", nil, "coordinator", "--id", "n1", "--raft-addr", testnet.Addr(t), "--http-addr", httpAddr,
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
	if out := run(1, "change", "list", "--token-file", alice, "--coordinator", "http://"+testnet.Addr(t)); !strings.Contains(out, "no coordinator reachable") {
		t.Fatal(out)
	}
	for _, args := range [][]string{{"coordinator", "--help"}, {"change", "--help"}, {"directive", "propose", "--help"}, {"proxy", "--help"}} {
		if out := run(0, args...); !strings.Contains(out, "--coordinator") && !strings.Contains(out, "--bootstrap") && !strings.Contains(out, "rollback") {
			t.Errorf("help of %v:\n%s", args, out)
		}
	}
	run(2, "coordinator", "--id", "n1", "--data-dir", dir, "--raft-addr", "127.0.0.1:1", "--bootstrap", "--join", "http://x")
}

// initTLS creates credentials for nodes n1..nN on 127.0.0.1 with the
// binary's own `coordinator init-tls`.
func initTLS(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	args := []string{"coordinator", "init-tls", "--dir", dir}
	for i := 1; i <= n; i++ {
		args = append(args, "--node", fmt.Sprintf("n%d=127.0.0.1", i))
	}
	if out, err := exec.Command(lbsysBinary(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("init-tls: %v\n%s", err, out)
	}
	return dir
}

// gnode is one coordinator process of a test cluster.
type gnode struct {
	id, raft, http, dir string
	args                []string
	p                   *gproc
}

func (n *gnode) url() string { return "http://" + n.http }

// startCluster starts n coordinator processes (n1 bootstraps, the others
// join it) and waits until they are all voters. tlsDir "" runs them in
// loopback development mode.
func startCluster(t *testing.T, n int, tlsDir string, extra ...string) []*gnode {
	t.Helper()
	env := []string{"LBSYS_COORDINATOR_TOKEN=" + gaiaToken}
	nodes := make([]*gnode, n)
	for i := range nodes {
		g := &gnode{id: fmt.Sprintf("n%d", i+1), raft: testnet.Addr(t), http: testnet.Addr(t), dir: t.TempDir()}
		g.args = []string{"coordinator", "--id", g.id, "--raft-addr", g.raft, "--http-addr", g.http, "--data-dir", g.dir,
			"--heartbeat-timeout", "150ms", "--election-timeout", "150ms", "--leader-lease-timeout", "100ms", "--commit-timeout", "5ms",
			"--watch-wait", "1s", "--canary-fraction", "0", "--proxy-ttl", "10s", "--request-timeout", "2s", "--log-level", "warn"}
		if tlsDir != "" {
			g.args = append(g.args, "--tls-dir", tlsDir)
		}
		g.args = append(g.args, extra...)
		if i == 0 {
			g.args = append(g.args, "--bootstrap")
		} else {
			g.args = append(g.args, "--join", nodes[0].url())
		}
		nodes[i] = g
	}
	for i, g := range nodes {
		g.p = startGProc(t, g.id, env, g.args...)
		if i == 0 {
			waitFor(t, 15*time.Second, "n1 to lead", func() bool { s := gstatus(g.url()); return s != nil && s.RaftState == "Leader" })
		}
	}
	waitFor(t, 15*time.Second, fmt.Sprintf("%d voters", n), func() bool {
		s := gstatus(nodes[0].url())
		return s != nil && len(s.Voters) == n && len(s.Members) == n
	})
	return nodes
}

func gstatus(url string) *change.Status {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := client.New([]string{url}, gaiaToken).Status(ctx)
	if err != nil {
		return nil
	}
	return s
}

// leaderOf returns the index of the live node that leads (-1: none).
func leaderOf(nodes []*gnode) int {
	for i, n := range nodes {
		if n.p == nil || !n.p.alive() {
			continue
		}
		if s := gstatus(n.url()); s != nil && s.RaftState == "Leader" {
			return i
		}
	}
	return -1
}

// runCLI runs the binary and returns its output and exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(lbsysBinary(t), args...)
	cmd.Env = append(os.Environ(), "LBSYS_TOKEN=", "LBSYS_COORDINATOR_TOKEN="+gaiaToken)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// changesBy lists the changes whose reason is reason, read from url.
func changesBy(t *testing.T, url, reason string) []change.ChangeSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := client.New([]string{url}, gaiaToken).Changes(ctx, "", 1000)
	if err != nil {
		t.Fatalf("listing changes: %v", err)
	}
	var out []change.ChangeSummary
	for _, c := range cs {
		if c.Reason == reason {
			out = append(out, c)
		}
	}
	return out
}

func writeDirective(t *testing.T, weight float64, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "d.json")
	d := fmt.Sprintf(`{"schema": 1, "services": {"app": {"weights": {"127.0.0.1:1": %v, "127.0.0.1:2": 1}%s, "why": {"model": "manual", "blessed": true}}}}`, weight, extra)
	if err := os.WriteFile(p, []byte(d), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// forgedAppend is the outside probe's attack: one AppendEntries, spoken in
// hashicorp/raft's wire protocol, that appends a made-up user's emergency
// change right after the target's last entry and commits it.
func forgedAppend(t *testing.T, tr raft.Transport, target *gnode) error {
	t.Helper()
	s := gstatus(target.url())
	if s == nil {
		t.Fatalf("%s: no status", target.id)
	}
	cmd, _ := json.Marshal(map[string]any{"op": "propose", "at": time.Now(), "by": "mallory", "roles": []string{"admin"},
		"propose": map[string]any{"type": "emergency", "reason": "forged over the Raft port", "directive": json.RawMessage(`{"schema": 1, "services": {"app": {"weights": {"127.0.0.1:1": 66}}}}`)}})
	req := &raft.AppendEntriesRequest{
		RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte(tr.LocalAddr())},
		Term:         s.Term,
		PrevLogEntry: s.LastIndex, PrevLogTerm: s.Term,
		Entries:           []*raft.Log{{Index: s.LastIndex + 1, Term: s.Term, Type: raft.LogCommand, Data: cmd}},
		LeaderCommitIndex: s.LastIndex + 1,
	}
	var resp raft.AppendEntriesResponse
	err := tr.AppendEntries(raft.ServerID(target.id), raft.ServerAddress(target.raft), req, &resp)
	if err == nil && !resp.Success {
		err = fmt.Errorf("refused by raft: %+v", resp)
	}
	return err
}

// tlsRaftStream dials with an attacker's TLS configuration.
type tlsRaftStream struct {
	net.Listener
	cfg *tls.Config
}

func (s *tlsRaftStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.cfg)
}

func metricValue(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	t.Fatalf("metric %s not found at %s", name, url)
	return 0
}

// TestGaiaRaftRefusesForgedPeers (issue #13 item 2): three coordinator
// processes with the credentials of `lbsys coordinator init-tls` on
// 127.0.0.1. A peer speaking the hashicorp/raft wire protocol in clear
// (what the outside probe did), one with another CA's certificate, and one
// with a stolen member certificate but no cluster key each send a forged
// AppendEntries committing an emergency change by a made-up user: nothing
// commits on any node, the refusals are counted, and the cluster keeps
// committing. A node refuses to start on a non-loopback Raft address
// without --tls-dir.
func TestGaiaRaftRefusesForgedPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	dir := initTLS(t, 3)
	nodes := startCluster(t, 3, dir)
	l := leaderOf(nodes)
	if out, code := runCLI(t, "directive", "propose", "--coordinator", nodes[l].url(), "--file", writeDirective(t, 2, ""), "--type", "emergency", "--reason", "genuine"); code != 0 {
		t.Fatalf("genuine proposal: %d\n%s", code, out)
	}
	target := nodes[(l+1)%3] // a follower: it applies what a "leader" commits
	waitFor(t, 10*time.Second, "the follower to apply version 1", func() bool { s := gstatus(target.url()); return s != nil && s.Latest == 1 })

	foreign := initTLS(t, 3)
	fcert, err := tls.LoadX509KeyPair(filepath.Join(foreign, "n2.crt"), filepath.Join(foreign, "n2.key"))
	if err != nil {
		t.Fatal(err)
	}
	mcert, err := tls.LoadX509KeyPair(filepath.Join(dir, "n2.crt"), filepath.Join(dir, "n2.key"))
	if err != nil {
		t.Fatal(err)
	}
	send := func(c tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	transport := func(cfg *tls.Config) raft.Transport {
		if cfg == nil {
			tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tr.Close() })
			return tr
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr := raft.NewNetworkTransport(&tlsRaftStream{Listener: ln, cfg: cfg}, 1, 2*time.Second, io.Discard)
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	if err := forgedAppend(t, transport(nil), target); err == nil {
		t.Error("the follower answered a forged AppendEntries sent in clear")
	}
	if err := forgedAppend(t, transport(&tls.Config{GetClientCertificate: send(fcert), InsecureSkipVerify: true}), target); err == nil {
		t.Error("the follower answered a peer with another CA's certificate")
	}
	if got := metricValue(t, target.url(), "lbsys_gaia_raft_refused_connections_total"); got < 2 {
		t.Errorf("refused connections counted: %v", got)
	}
	// A stolen member certificate gets through TLS; the entry is not
	// sealed with the cluster key, so the state machine refuses it.
	if err := forgedAppend(t, transport(&tls.Config{GetClientCertificate: send(mcert), InsecureSkipVerify: true}), target); err != nil {
		t.Fatalf("with a member certificate the RPC should reach raft: %v", err)
	}
	waitFor(t, 10*time.Second, "the forged entry to be refused", func() bool {
		return metricValue(t, target.url(), "lbsys_gaia_unauthenticated_entries_total") == 1
	})
	// Every member's own state: still one change (the genuine one) and
	// version 1.
	for _, n := range nodes {
		s := gstatus(n.url())
		total := 0
		if s != nil {
			for _, c := range s.Pending {
				total += c
			}
		}
		if s == nil || s.Latest != 1 || total != 1 || s.KeyID == "" || !s.RaftTLS {
			t.Fatalf("%s after the attacks: %+v", n.id, s)
		}
	}
	// The cluster still commits.
	waitFor(t, 15*time.Second, "a leader", func() bool { l = leaderOf(nodes); return l >= 0 })
	if out, code := runCLI(t, "directive", "propose", "--coordinator", nodes[0].url()+","+nodes[1].url()+","+nodes[2].url(), "--file", writeDirective(t, 3, ""), "--type", "emergency", "--reason", "after the attacks"); code != 0 {
		t.Fatalf("proposal after the attacks: %d\n%s", code, out)
	}
	// Off loopback, no credentials: refused at start, naming the flag.
	out, code := runCLI(t, "coordinator", "--id", "n9", "--raft-addr", "192.0.2.1:7001", "--http-addr", testnet.Addr(t), "--data-dir", t.TempDir(), "--bootstrap")
	if code != 2 || !strings.Contains(out, "--tls-dir") || !strings.Contains(out, "init-tls") {
		t.Fatalf("non-loopback without credentials: exit %d\n%s", code, out)
	}
}

// droppingProxy forwards HTTP requests to upstream and, for the first
// drop requests (all when drop < 0), closes the client's connection
// instead of answering: the coordinator acted, the answer is lost.
func droppingProxy(t *testing.T, upstream string, drop int) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen atomic.Int32
	tr := &http.Transport{}
	t.Cleanup(func() { ln.Close(); tr.CloseIdleConnections() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.URL.Scheme, req.URL.Host, req.RequestURI = "http", upstream, ""
					resp, err := tr.RoundTrip(req)
					if err != nil {
						return
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if n := seen.Add(1); drop < 0 || int(n) <= drop {
						return // the answer is lost
					}
					resp.Body = io.NopCloser(bytes.NewReader(body))
					resp.Write(c)
				}
			}(c)
		}
	}()
	return "http://" + ln.Addr().String(), &seen
}

// TestGaiaCLIRetriesSafely (issue #13 item 11): the CLI against three
// coordinator processes.
//   - The answer to a proposal is lost after the leader made the change:
//     the CLI sends it again with the same idempotency key and one change
//     exists (it used to resend it, keyless, to the next coordinator: two).
//   - Every answer is lost: the CLI ends at --timeout with "outcome
//     unknown", the key and how to check; rerun with that key it gets the
//     same change.
//   - The leader is killed and the only coordinator given still redirects
//     to it: the CLI keeps asking until a new leader is elected (it used to
//     fail at once although a majority was up).
func TestGaiaCLIRetriesSafely(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	// Slower timeouts, so that followers name the dead leader for a while.
	nodes := startCluster(t, 3, "", "--heartbeat-timeout", "1s", "--election-timeout", "1s", "--leader-lease-timeout", "500ms")
	l := leaderOf(nodes)
	f1, f2 := (l+1)%3, (l+2)%3

	lossy, seen := droppingProxy(t, nodes[l].http, 1)
	out, code := runCLI(t, "directive", "propose", "--coordinator", lossy+","+nodes[f1].url(), "--file", writeDirective(t, 2, ""), "--type", "normal", "--reason", "lost answer", "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "(normal): authorize") {
		t.Fatalf("propose through a lossy path: exit %d\n%s", code, out)
	}
	if got := changesBy(t, nodes[l].url(), "lost answer"); len(got) != 1 || seen.Load() < 1 {
		t.Fatalf("%d changes made by one CLI run (%d requests through the lossy path); want 1", len(got), seen.Load())
	}

	black, _ := droppingProxy(t, nodes[l].http, -1)
	out, code = runCLI(t, "directive", "propose", "--coordinator", black, "--file", writeDirective(t, 3, ""), "--type", "normal", "--reason", "no answer", "--timeout", "2s")
	if code != 1 || !strings.Contains(out, "outcome unknown") || !strings.Contains(out, "idempotency key:") || !strings.Contains(out, "lbsys change list") {
		t.Fatalf("no answer: exit %d\n%s", code, out)
	}
	key := out[strings.Index(out, "idempotency key: ")+len("idempotency key: "):]
	key = strings.Fields(key)[0]
	made := changesBy(t, nodes[l].url(), "no answer")
	if len(made) != 1 {
		t.Fatalf("%d changes for one unanswered CLI run", len(made))
	}
	out, code = runCLI(t, "directive", "propose", "--coordinator", nodes[f1].url(), "--file", writeDirective(t, 3, ""), "--type", "normal", "--reason", "no answer", "--idempotency-key", key)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("change %d (normal)", made[0].ID)) || len(changesBy(t, nodes[l].url(), "no answer")) != 1 {
		t.Fatalf("retry with the key: exit %d\n%s", code, out)
	}

	nodes[l].p.kill9(t)
	s := gstatus(nodes[f2].url())
	out, code = runCLI(t, "directive", "propose", "--coordinator", nodes[f2].url(), "--file", writeDirective(t, 4, ""), "--type", "normal", "--reason", "leader killed", "--timeout", "20s")
	if code != 0 || !strings.Contains(out, "(normal): authorize") {
		t.Fatalf("propose while the leader is dead (the follower named %q as leader): exit %d\n%s", s.Leader, code, out)
	}
	nl := leaderOf(nodes)
	if nl < 0 || len(changesBy(t, nodes[nl].url(), "leader killed")) != 1 || len(changesBy(t, nodes[nl].url(), "no answer")) != 1 {
		t.Fatal("no leader, or the changes are not there once each")
	}
}

type proxyCoordinator struct {
	Version         uint64 `json:"version"`
	Cluster         string `json:"cluster"`
	ClusterMismatch string `json:"cluster_mismatch"`
	Rejected        uint64 `json:"rejected"`
	RejectError     string `json:"reject_error"`
	Services        map[string]struct {
		Weights map[string]float64 `json:"weights"`
	} `json:"services"`
}

// startProxy runs `lbsys proxy` with the agent pointed at urls; admission
// "" leaves admission control off (a directive with admission bounds is
// then refused).
func startProxy(t *testing.T, name string, urls []string, state, admission string) (admin string, p *gproc, args []string) {
	t.Helper()
	admin = testnet.Addr(t)
	cfg := fmt.Sprintf(`admin: {listen: %s}
listeners:
  - {name: main, listen: %s, routes: [{service: app}]}
services:
  - name: app
    policy: weighted
    endpoints: [{address: "127.0.0.1:1"}, {address: "127.0.0.1:2"}]
    health: {outlier: {disabled: true}}
%s
coordinator:
  urls: [%s]
  proxy_id: %s
  state_file: %s
  wait: 1s
`, admin, testnet.Addr(t), admission, strings.Join(urls, ", "), name, state)
	path := filepath.Join(t.TempDir(), "lbsys.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args = []string{"proxy", "--config", path, "--log-level", "info"}
	p = startGProc(t, name, []string{"LBSYS_COORDINATOR_TOKEN=" + gaiaToken}, args...)
	return admin, p, args
}

func proxyState(admin string) *proxyCoordinator {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + admin + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		Coordinator *proxyCoordinator `json:"coordinator"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return st.Coordinator
}

// TestGaiaFleetNACKKeepsLastGood (issue #13 item 8): every proxy refuses an
// emergency change (it sets admission bounds they do not have): it does
// not become stable, and a proxy started afterwards runs the last version
// the fleet acknowledged; it used to get the refused version, refuse it
// too, and run without a directive.
func TestGaiaFleetNACKKeepsLastGood(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	nodes := startCluster(t, 1, "")
	urls := []string{nodes[0].url()}
	a1, _, _ := startProxy(t, "p1", urls, filepath.Join(t.TempDir(), "s.json"), "")
	a2, _, _ := startProxy(t, "p2", urls, filepath.Join(t.TempDir(), "s.json"), "")
	waitFor(t, 15*time.Second, "2 proxies known", func() bool { s := gstatus(urls[0]); return s != nil && len(s.Proxies) == 2 })
	if out, code := runCLI(t, "directive", "propose", "--coordinator", urls[0], "--file", writeDirective(t, 2, ""), "--type", "emergency", "--reason", "v1"); code != 0 {
		t.Fatalf("v1: %s", out)
	}
	for _, a := range []string{a1, a2} {
		waitFor(t, 15*time.Second, "version 1 on "+a, func() bool { s := proxyState(a); return s != nil && s.Version == 1 })
	}
	out, code := runCLI(t, "directive", "propose", "--coordinator", urls[0], "--file", writeDirective(t, 3, `, "admission": {"cap": 50}`), "--type", "emergency", "--reason", "refused by all")
	if code != 0 {
		t.Fatalf("v2: %s", out)
	}
	for _, a := range []string{a1, a2} {
		waitFor(t, 15*time.Second, "the NACK of version 2 on "+a, func() bool { s := proxyState(a); return s != nil && s.Rejected == 2 && s.Version == 1 })
	}
	waitFor(t, 15*time.Second, "the change to fail", func() bool {
		cs := changesBy(t, urls[0], "refused by all")
		return len(cs) == 1 && cs[0].Outcome == "failed"
	})
	if s := gstatus(urls[0]); s.Stable != 1 || s.Latest != 2 {
		t.Fatalf("stable %d latest %d; want stable 1", s.Stable, s.Latest)
	}
	a3, _, _ := startProxy(t, "p3-late", urls, filepath.Join(t.TempDir(), "s.json"), "")
	var st *proxyCoordinator
	waitFor(t, 15*time.Second, "the late proxy to run a directive", func() bool { st = proxyState(a3); return st != nil && st.Version != 0 })
	if st.Version != 1 || st.Rejected != 0 || st.Services["app"].Weights["127.0.0.1:1"] != 2 {
		t.Fatalf("the late proxy runs %+v; want the fleet-acknowledged version 1", st)
	}
}

// TestGaiaRebuiltClusterAndProxyReset (issue #13 item 10): a proxy runs
// version 1 of a coordinator cluster; the coordinator is rebuilt (new data
// directory, same address) and commits its own version 1 with other
// content. The proxy keeps the old content and says why, and the new
// cluster does not count it as running its version 1 (it did, reporting it
// live on content it did not run). After `lbsys coordinator reset-agent`
// and a restart it runs the new cluster's version.
func TestGaiaRebuiltClusterAndProxyReset(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	old := startCluster(t, 1, "")
	url := old[0].url()
	state := filepath.Join(t.TempDir(), "state.json")
	admin, p, args := startProxy(t, "edge-1", []string{url}, state, "")
	if out, code := runCLI(t, "directive", "propose", "--coordinator", url, "--file", writeDirective(t, 2, ""), "--type", "emergency", "--reason", "old cluster"); code != 0 {
		t.Fatal(out)
	}
	var st *proxyCoordinator
	waitFor(t, 15*time.Second, "version 1 of the old cluster", func() bool { st = proxyState(admin); return st != nil && st.Version == 1 && st.Cluster != "" })
	oldCluster := st.Cluster

	old[0].p.kill9(t)
	rebuilt := old[0].args
	for i, a := range rebuilt {
		if a == "--data-dir" {
			rebuilt[i+1] = t.TempDir() // a fresh cluster
		}
	}
	old[0].p = startGProc(t, "n1 (rebuilt)", []string{"LBSYS_COORDINATOR_TOKEN=" + gaiaToken}, rebuilt...)
	waitFor(t, 15*time.Second, "the rebuilt coordinator to lead", func() bool { s := gstatus(url); return s != nil && s.RaftState == "Leader" && s.Cluster != "" })
	if out, code := runCLI(t, "directive", "propose", "--coordinator", url, "--file", writeDirective(t, 7, ""), "--type", "emergency", "--reason", "new cluster"); code != 0 {
		t.Fatal(out)
	}
	s := gstatus(url)
	if s.Cluster == oldCluster || s.Latest != 1 {
		t.Fatalf("rebuilt cluster %s latest %d", s.Cluster, s.Latest)
	}
	waitFor(t, 15*time.Second, "the proxy to report the mismatch", func() bool { st = proxyState(admin); return st != nil && st.ClusterMismatch != "" })
	if st.Version != 1 || st.Cluster != oldCluster || st.Services["app"].Weights["127.0.0.1:1"] != 2 {
		t.Fatalf("the proxy after the rebuild: %+v", st)
	}
	if s := gstatus(url); len(s.Proxies) != 0 {
		t.Fatalf("the rebuilt cluster counts the proxy: %+v", s.Proxies)
	}

	p.kill9(t)
	out, code := runCLI(t, "coordinator", "reset-agent", "--state-file", state)
	if code != 0 || !strings.Contains(out, "version 1 of cluster "+oldCluster) {
		t.Fatalf("reset-agent: exit %d\n%s", code, out)
	}
	startGProc(t, "edge-1 (reset)", []string{"LBSYS_COORDINATOR_TOKEN=" + gaiaToken}, args...)
	waitFor(t, 15*time.Second, "the new cluster's version 1", func() bool {
		st = proxyState(admin)
		return st != nil && st.Cluster == s.Cluster && st.Version == 1 && st.ClusterMismatch == ""
	})
	if st.Services["app"].Weights["127.0.0.1:1"] != 7 {
		t.Fatalf("after the reset: %+v", st)
	}
	waitFor(t, 15*time.Second, "the new cluster to count it live", func() bool { s := gstatus(url); return s != nil && len(s.Proxies) == 1 && s.Live })
}
