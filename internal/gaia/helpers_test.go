package gaia

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
	"github.com/lbsys/lbsys/internal/testnet"
)

// Tokens of the test principals.
const (
	adminTok    = "admin-token-0123456789"
	aliceTok    = "alice-token-0123456789" // proposer
	bobTok      = "bob-token-0123456789ab" // approver
	carolTok    = "carol-token-0123456789" // proposer + approver (on call)
	agentTok    = "agent-token-0123456789"
	viewerTok   = "viewer-token-012345678"
	testTimeout = 10 * time.Second
)

func testTokens(t testing.TB) *Tokens {
	tk, err := ParseTokens(strings.NewReader(fmt.Sprintf(`# test principals
%s admin admin
%s alice proposer
%s bob approver
%s carol proposer,approver
%s agents agent
%s viewer viewer
`, adminTok, aliceTok, bobTok, carolTok, agentTok, viewerTok)), "test")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// cluster is n coordinator nodes on raft's in-memory transport, each with
// a real write-ahead log in a temporary directory and an HTTP API on
// 127.0.0.1.
type cluster struct {
	t      testing.TB
	nodes  []*Node
	trans  []*raft.InmemTransport
	addrs  []raft.ServerAddress
	dirs   []string
	http   []string // host:port of each API, stable across restarts
	tokens *Tokens
	policy change.Policy
	tweak  func(*Options)
}

func newCluster(t testing.TB, n int, tweak func(*Options)) *cluster {
	c := &cluster{t: t, tokens: testTokens(t), tweak: tweak, policy: change.DefaultPolicy()}
	c.policy.CanaryFraction = 0
	for i := 0; i < n; i++ {
		addr, tr := raft.NewInmemTransport("")
		c.addrs = append(c.addrs, addr)
		c.trans = append(c.trans, tr)
		c.dirs = append(c.dirs, t.TempDir())
		c.nodes = append(c.nodes, nil)
		c.http = append(c.http, testnet.Addr(t))
	}
	c.connectAll()
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) id(i int) string { return fmt.Sprintf("n%d", i+1) }

func (c *cluster) start(i int) {
	c.t.Helper()
	var peers []Peer
	for j := range c.addrs {
		peers = append(peers, Peer{ID: c.id(j), RaftAddr: string(c.addrs[j])})
	}
	var ln net.Listener
	var err error
	// The port may linger briefly after a restart: poll, with a deadline.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ln, err = net.Listen("tcp", c.http[i]); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		c.t.Fatal(err)
	}
	pol := c.policy
	o := Options{
		ID: c.id(i), DataDir: c.dirs[i], Bootstrap: true, Peers: peers, Transport: c.trans[i], Listener: ln,
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		SnapshotInterval: 100 * time.Millisecond, WALSegmentSize: 1 << 20,
		Tokens: c.tokens, Policy: &pol, TickInterval: 20 * time.Millisecond,
		WatchWait: 2 * time.Second, ReportInterval: 50 * time.Millisecond, RequestTimeout: 3 * time.Second,
		Logger: testLogger(c.t),
	}
	if os.Getenv("GAIA_RAFT_LOG") != "" {
		o.RaftLog, o.RaftLevel = os.Stderr, "debug"
	}
	if c.tweak != nil {
		c.tweak(&o)
	}
	n, err := Start(o)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = n
}

// stop shuts node i down (its data stays for a restart).
func (c *cluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

// restart brings node i back on its data directory with a fresh transport
// at the same address.
func (c *cluster) restart(i int) {
	c.stop(i)
	_, tr := raft.NewInmemTransport(c.addrs[i])
	c.trans[i] = tr
	c.connectAll()
	c.start(i)
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func(i int) { defer wg.Done(); c.stop(i) }(i)
	}
	wg.Wait()
}

func (c *cluster) connectAll() {
	for i := range c.trans {
		for j := range c.trans {
			if i != j {
				c.trans[i].Connect(c.addrs[j], c.trans[j])
			}
		}
	}
}

// isolate cuts node i off from every other node (both directions).
func (c *cluster) isolate(i int) {
	c.trans[i].DisconnectAll()
	for j := range c.trans {
		if j != i {
			c.trans[j].Disconnect(c.addrs[i])
		}
	}
}

// leader waits for a caught-up leader among the running nodes, excluding
// those listed.
func (c *cluster) leader(exclude ...int) int {
	c.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			skip := n == nil
			for _, x := range exclude {
				skip = skip || x == i
			}
			if !skip && n.IsLeader() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %s", testTimeout)
	return -1
}

func (c *cluster) url(i int) string { return "http://" + c.http[i] }

// eventually polls cond until it holds or the test timeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// call sends one API request without following redirects.
func call(t testing.TB, method, url, token string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: testTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func weightsDirective(n float64) *directive.Directive {
	return &directive.Directive{Schema: 1, Services: map[string]*directive.Service{
		"catalog": {Weights: map[string]float64{"127.0.0.1:9001": n, "127.0.0.1:9002": 1}, Why: &directive.Why{Model: "gbdt@1", Blessed: true}},
	}}
}

// emergency proposes an emergency change (implemented at once) and returns
// the HTTP status and the change.
func emergency(t testing.TB, base string, n float64) (int, *change.Change) {
	t.Helper()
	st, b, _ := call(t, "POST", base+"/v1/changes", carolTok, ProposeRequest{Type: change.Emergency, Reason: "test", Directive: weightsDirective(n)})
	if st != http.StatusCreated {
		return st, nil
	}
	var c change.Change
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return st, &c
}

// mustCommit commits an emergency directive through whichever node leads
// (excluding those listed), retrying with one idempotency key while the
// cluster answers 503 or redirects: on a loaded machine a majority can
// miss a heartbeat and refuse a write for a moment, which is correct
// behaviour, not the failure a test looks for. The key makes the retries
// commit the change once.
func (c *cluster) mustCommit(key string, n float64, exclude ...int) *change.Change {
	c.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		l := c.leader(exclude...)
		st, b, _ := call(c.t, "POST", c.url(l)+"/v1/changes", carolTok, ProposeRequest{Type: change.Emergency, Reason: "test", Directive: weightsDirective(n), IdempotencyKey: key})
		if st == http.StatusCreated {
			var ch change.Change
			if err := json.Unmarshal(b, &ch); err != nil {
				c.t.Fatal(err)
			}
			return &ch
		}
		if (st != http.StatusServiceUnavailable && st != http.StatusTemporaryRedirect) || time.Now().After(deadline) {
			c.t.Fatalf("commit %s: %d %s", key, st, b)
		}
		time.Sleep(20 * time.Millisecond) // poll interval of a retry loop bounded by the deadline
	}
}

func (c *cluster) latest(i int) (latest, stable uint64) {
	c.nodes[i].Read(func(m *fsm.Machine) { latest, stable = m.Latest, m.Stable })
	return
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GAIA_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
