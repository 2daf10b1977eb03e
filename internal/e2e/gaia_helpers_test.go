package e2e

import (
	"bytes"
	"context"
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
	"github.com/lbsys/lbsys/internal/agent"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/testnet"
)

// Tokens of the test principals.
const (
	aliceTok    = "alice-token-0123456789" // proposer
	bobTok      = "bob-token-0123456789ab" // approver
	carolTok    = "carol-token-0123456789" // proposer + approver (on call)
	agentTok    = "agent-token-0123456789"
	testTimeout = 10 * time.Second
)

func testTokens(t testing.TB) *gaia.Tokens {
	tk, err := gaia.ParseTokens(strings.NewReader(fmt.Sprintf(`# test principals
%s alice proposer
%s bob approver
%s carol proposer,approver
%s agents agent
`, aliceTok, bobTok, carolTok, agentTok)), "test")
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// cluster is n coordinator nodes on raft's in-memory transport, each with
// a real write-ahead log in a temporary directory and an HTTP API on
// 127.0.0.1 (as internal/gaia's own tests run them).
type cluster struct {
	t      testing.TB
	nodes  []*gaia.Node
	trans  []*raft.InmemTransport
	addrs  []raft.ServerAddress
	dirs   []string
	http   []string // host:port of each API
	tokens *gaia.Tokens
	policy change.Policy
	tweak  func(*gaia.Options)
}

func newCluster(t testing.TB, n int, tweak func(*gaia.Options)) *cluster {
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
	for i := range c.trans {
		for j := range c.trans {
			if i != j {
				c.trans[i].Connect(c.addrs[j], c.trans[j])
			}
		}
	}
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(c.close)
	return c
}

func (c *cluster) start(i int) {
	c.t.Helper()
	var peers []gaia.Peer
	for j := range c.addrs {
		peers = append(peers, gaia.Peer{ID: fmt.Sprintf("n%d", j+1), RaftAddr: string(c.addrs[j])})
	}
	ln, err := net.Listen("tcp", c.http[i])
	if err != nil {
		c.t.Fatal(err)
	}
	pol := c.policy
	o := gaia.Options{
		ID: fmt.Sprintf("n%d", i+1), DataDir: c.dirs[i], Bootstrap: true, Peers: peers, Transport: c.trans[i], Listener: ln,
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
	n, err := gaia.Start(o)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = n
}

// stop shuts node i down.
func (c *cluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func(i int) { defer wg.Done(); c.stop(i) }(i)
	}
	wg.Wait()
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

func (c *cluster) urls() []string {
	var u []string
	for i := range c.http {
		u = append(u, c.url(i))
	}
	return u
}

// eventually polls cond until it holds or the test timeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	within(t, testTimeout, what, cond)
}

// within polls cond every 10 ms until it holds (the event being awaited
// happens in another process or goroutine with no channel to wait on), or
// fails the test after timeout.
func within(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
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
	st, b, _ := call(t, "POST", base+"/v1/changes", carolTok, gaia.ProposeRequest{Type: change.Emergency, Reason: "test", Directive: weightsDirective(n)})
	if st != http.StatusCreated {
		return st, nil
	}
	var c change.Change
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return st, &c
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("GAIA_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fakeProxy is a real agent with an in-memory "data plane".
type fakeProxy struct {
	id    string
	agent *agent.Agent

	mu      sync.Mutex
	applied []uint64             // versions applied, in order
	current *directive.Directive // what the data plane runs
	refuse  func(d *directive.Directive) error
	stats   func(current *directive.Directive) directive.ServiceStats
}

func (p *fakeProxy) Apply(d *directive.Directive) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse != nil {
		if err := p.refuse(d); err != nil {
			return err
		}
	}
	p.applied = append(p.applied, d.Version)
	p.current = d
	return nil
}

func (p *fakeProxy) version() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil {
		return 0
	}
	return p.current.Version
}

// weight is the marker weight the fake data plane runs (0: none).
func (p *fakeProxy) weight() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.current == nil || p.current.Services["catalog"] == nil {
		return 0
	}
	return p.current.Services["catalog"].Weights["127.0.0.1:9001"]
}

// startProxies runs n agents against the cluster's URLs.
func startProxies(t testing.TB, urls []string, n int, setup func(i int, p *fakeProxy)) []*fakeProxy {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var out []*fakeProxy
	for i := 0; i < n; i++ {
		p := &fakeProxy{id: fmt.Sprintf("proxy-%02d", i)}
		if setup != nil {
			setup(i, p)
		}
		a, err := agent.New(agent.Options{
			Coordinators: append([]string(nil), urls...), Token: agentTok, ProxyID: p.id, Applier: p,
			Wait: 2 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			Logger: testLogger(t),
			Stats: func(since time.Time) map[string]directive.ServiceStats {
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.stats == nil {
					return map[string]directive.ServiceStats{"catalog": {Requests: 100, Errors: 0, P99Ms: 20}}
				}
				return map[string]directive.ServiceStats{"catalog": p.stats(p.current)}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		p.agent = a
		out = append(out, p)
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func waitVersion(t testing.TB, ps []*fakeProxy, v uint64) {
	t.Helper()
	for _, p := range ps {
		eventually(t, fmt.Sprintf("%s to run version %d", p.id, v), func() bool { return p.version() == v })
	}
}
