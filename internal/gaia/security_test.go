package gaia

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
	"github.com/lbsys/lbsys/internal/testnet"
)

// tlsDir creates a credentials directory for nodes n1..nN on 127.0.0.1.
func tlsDir(t testing.TB, n int, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	var specs []NodeSpec
	for i := 1; i <= n; i++ {
		specs = append(specs, NodeSpec{ID: fmt.Sprintf("n%d", i), Hosts: []string{"127.0.0.1"}})
	}
	for _, id := range extra {
		specs = append(specs, NodeSpec{ID: id, Hosts: []string{"127.0.0.1"}})
	}
	if _, err := InitTLS(dir, specs, time.Hour); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustCreds(t testing.TB, dir, id string) *Credentials {
	t.Helper()
	c, err := LoadCredentials(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTLSCluster is n nodes on the production transport: mutual TLS over
// TCP on 127.0.0.1, entries sealed with the cluster key.
func newTLSCluster(t testing.TB, n int) (*tcpCluster, string) {
	dir := tlsDir(t, n, "n9")
	c := newTCPCluster(t, n, nil, func(i int, o *Options) {
		o.Credentials = mustCreds(t, dir, o.ID)
		pol := change.DefaultPolicy()
		pol.CanaryFraction = 0
		o.Policy = &pol
	})
	return c, dir
}

// attackerStream dials the Raft port with whatever TLS configuration the
// attacker has (nil: plain TCP, the hashicorp/raft wire protocol in clear).
type attackerStream struct {
	net.Listener
	cfg *tls.Config
}

func (s *attackerStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.cfg == nil {
		return net.DialTimeout("tcp", string(addr), timeout)
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), s.cfg)
}

func attacker(t testing.TB, cfg *tls.Config) *raft.NetworkTransport {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &attackerStream{Listener: ln, cfg: cfg}, MaxPool: 1, Timeout: 2 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
	})
	t.Cleanup(func() { tr.Close() })
	return tr
}

// forgedEntry is what the outside probe committed: an emergency change by
// a made-up user holding every role.
func forgedEntry() []byte {
	b, _ := fsm.Encode(fsm.Command{Op: fsm.OpPropose, At: time.Now(), By: "mallory", Roles: []string{fsm.RoleAdmin},
		Propose: &fsm.Propose{Type: change.Emergency, Reason: "forged over the Raft port", Directive: weightsDirective(66)}})
	return b
}

// forgeAppend sends one AppendEntries that, if the follower accepts it,
// appends data right after its last entry and commits it at once.
func forgeAppend(tr raft.Transport, target *Node, id, addr string, data []byte) (*raft.AppendEntriesResponse, error) {
	st := target.Raft().Stats()
	last, _ := strconv.ParseUint(st["last_log_index"], 10, 64)
	lastTerm, _ := strconv.ParseUint(st["last_log_term"], 10, 64)
	term := target.Raft().CurrentTerm()
	req := &raft.AppendEntriesRequest{
		RPCHeader:         raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("mallory"), Addr: []byte(tr.LocalAddr())},
		Term:              term,
		PrevLogEntry:      last,
		PrevLogTerm:       lastTerm,
		Entries:           []*raft.Log{{Index: last + 1, Term: term, Type: raft.LogCommand, Data: data}},
		LeaderCommitIndex: last + 1,
	}
	var resp raft.AppendEntriesResponse
	err := tr.AppendEntries(raft.ServerID(id), raft.ServerAddress(addr), req, &resp)
	return &resp, err
}

// mallorys counts change records by the forger on a node.
func mallorys(n *Node) (count int, latest uint64) {
	n.Read(func(m *fsm.Machine) {
		latest = m.Latest
		for _, c := range m.Changes {
			if c.Requester == "mallory" {
				count++
			}
		}
	})
	return
}

// TestForgedRaftPeersCannotCommit (issue #13 item 2): a peer that reaches
// a follower's Raft port and speaks the hashicorp/raft wire protocol cannot
// commit a change: without a certificate of the cluster CA, or with one of
// another CA, or of a node that is not a member, the TLS handshake is
// refused; with a stolen member certificate but without the cluster key,
// the follower appends the entry and its state machine refuses it. On every
// node nothing changes, and the cluster keeps working.
func TestForgedRaftPeersCannotCommit(t *testing.T) {
	c, dir := newTLSCluster(t, 3)
	l, _ := c.leader(-1)
	if st, ch := emergency(t, "http://"+c.opts[l].HTTPAddr, 2); st != http.StatusCreated || ch.Version != 1 {
		t.Fatalf("genuine commit: %d", st)
	}
	f := (l + 1) % 3
	target, id, addr := c.nodes[f], c.opts[f].ID, c.opts[f].RaftAddr
	if target.stream == nil {
		t.Fatal("the node runs Raft without TLS although it has credentials")
	}
	eventually(t, "the follower to apply version 1", func() bool { _, v := mallorys(target); return v == 1 })

	foreign := tlsDir(t, 3) // another cluster's CA, same node names
	foreignCert := mustCreds(t, foreign, "n2").Cert
	member := mustCreds(t, dir, "n2").Cert
	outsider := mustCreds(t, dir, "n9").Cert // the cluster CA's, not a member
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, CAFile))
	pool.AppendCertsFromPEM(caPEM)

	// An attacker sends its certificate whatever CAs the server asks for
	// (Go's client would otherwise withhold a certificate of another CA).
	force := func(c *tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c, nil }
	}
	for _, a := range []struct {
		name string
		cfg  *tls.Config
		// transport: the connection must be refused before any RPC.
		transport bool
	}{
		{"plain TCP (no TLS)", nil, true},
		{"certificate of another CA", &tls.Config{GetClientCertificate: force(foreignCert), InsecureSkipVerify: true}, true},
		{"no client certificate", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, true},
		{"cluster CA, not a member", &tls.Config{GetClientCertificate: force(outsider), RootCAs: pool, ServerName: "127.0.0.1"}, true},
		{"stolen member certificate, no cluster key", &tls.Config{GetClientCertificate: force(member), RootCAs: pool, ServerName: "127.0.0.1"}, false},
	} {
		t.Run(a.name, func(t *testing.T) {
			refusedBefore := target.stream.refused.Load()
			target.fsm.mu.RLock()
			unauthBefore := target.fsm.unauthenticated
			target.fsm.mu.RUnlock()
			resp, err := forgeAppend(attacker(t, a.cfg), target, id, addr, forgedEntry())
			if a.transport {
				if err == nil {
					t.Fatalf("the follower answered the forged AppendEntries: %+v", resp)
				}
				eventually(t, "the refusal to be counted", func() bool { return target.stream.refused.Load() > refusedBefore })
			} else {
				if err != nil || !resp.Success {
					t.Fatalf("with a member certificate the transport should let the RPC through (the state machine is the line here): %v %+v", err, resp)
				}
				eventually(t, "the state machine to refuse the entry", func() bool {
					target.fsm.mu.RLock()
					defer target.fsm.mu.RUnlock()
					return target.fsm.unauthenticated > unauthBefore
				})
			}
			for i, n := range c.nodes {
				if cnt, v := mallorys(n); cnt != 0 || v != 1 {
					t.Fatalf("node %s: %d forged changes, latest version %d", c.opts[i].ID, cnt, v)
				}
			}
		})
	}
	// The cluster still commits, and a follower that met the forged
	// entry kept its state.
	l, _ = c.leader(-1)
	if st, ch := emergency(t, "http://"+c.opts[l].HTTPAddr, 3); st != http.StatusCreated || ch.Version != 2 {
		t.Fatalf("commit after the attacks: %d", st)
	}
	st, b, _ := call(t, "GET", "http://"+c.opts[l].HTTPAddr+"/v1/status", viewerTok, nil)
	var s Status
	json.Unmarshal(b, &s)
	if st != 200 || !s.RaftTLS || s.KeyID == "" || s.KeyID != s.NodeKeyID || s.Cluster == "" {
		t.Fatalf("status: %s", b)
	}
	st, b, _ = call(t, "GET", "http://"+c.opts[f].HTTPAddr+"/metrics", "", nil)
	if st != 200 || !strings.Contains(string(b), MetricRaftRefused) || !strings.Contains(string(b), MetricUnauthenticated+" 1") {
		t.Fatalf("metrics:\n%s", b)
	}
}

// TestRaftNeedsCredentialsOffLoopback: without credentials a node refuses
// a non-loopback Raft address, naming the flag; with them, its certificate
// must be valid for that address.
func TestRaftNeedsCredentialsOffLoopback(t *testing.T) {
	ifaces, _ := net.InterfaceAddrs()
	var public string
	for _, a := range ifaces {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			public = ipn.IP.String()
			break
		}
	}
	if public == "" {
		public = "192.0.2.1" // refused before binding anyway
	}
	_, err := Start(Options{ID: "n1", DataDir: t.TempDir(), RaftAddr: public + ":0", HTTPAddr: "127.0.0.1:0", Bootstrap: true, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "--tls-dir") || !strings.Contains(err.Error(), "init-tls") {
		t.Fatalf("non-loopback without credentials: %v", err)
	}
	dir := tlsDir(t, 1) // issued for 127.0.0.1 only
	_, err = Start(Options{ID: "n1", DataDir: t.TempDir(), RaftAddr: public + ":0", HTTPAddr: "127.0.0.1:0", Bootstrap: true, Logger: testLogger(t), Credentials: mustCreds(t, dir, "n1")})
	if err == nil || !strings.Contains(err.Error(), "not valid for "+public) {
		t.Fatalf("certificate for another address: %v", err)
	}
	if _, err := LoadCredentials(dir, "n2"); err == nil || !strings.Contains(err.Error(), "n2.crt is missing") {
		t.Fatalf("missing node certificate: %v", err)
	}
	os.Rename(filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n7.crt"))
	os.Rename(filepath.Join(dir, "n1.key"), filepath.Join(dir, "n7.key"))
	if _, err := LoadCredentials(dir, "n7"); err == nil || !strings.Contains(err.Error(), `certificate of node "n1"`) {
		t.Fatalf("another node's certificate: %v", err)
	}
	if _, err := InitTLS(dir, []NodeSpec{{ID: "n7", Hosts: []string{"127.0.0.1"}}}, time.Hour); err == nil || !strings.Contains(err.Error(), "to reissue") {
		t.Fatalf("init-tls over existing credentials: %v", err)
	}
}

// TestKeyMismatchHaltsTheNode: a node whose cluster key differs from the
// cluster's cannot verify its entries; it stops taking part (and says why)
// instead of applying some and diverging. The join check refuses it up
// front.
func TestKeyMismatchHaltsTheNode(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	c := newCluster(t, 1, func(o *Options) { o.Credentials = &Credentials{ClusterKey: key} })
	c.leader()
	if st, _ := emergency(t, c.url(0), 2); st != http.StatusCreated {
		t.Fatal("commit", st)
	}
	st, b, _ := call(t, "POST", c.url(0)+"/v1/join", adminTok, JoinRequest{ID: "n2", RaftAddr: "x:1", HTTPAddr: "127.0.0.1:1", KeyID: fsm.KeyID([]byte(strings.Repeat("w", 32)))})
	if st != http.StatusConflict || !strings.Contains(string(b), "seals its entries with key "+fsm.KeyID(key)) {
		t.Fatalf("join with another key: %d %s", st, b)
	}
	// Bypass the join check (a static peer list with the wrong key).
	addr, tr := raft.NewInmemTransport("")
	c.trans[0].Connect(addr, tr)
	tr.Connect(c.addrs[0], c.trans[0])
	httpAddr := testnet.Addr(t)
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := Start(Options{ID: "n2", DataDir: t.TempDir(), Transport: tr, Listener: ln, Logger: testLogger(t),
		HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond, LeaderLeaseTimeout: 100 * time.Millisecond,
		Credentials: &Credentials{ClusterKey: []byte(strings.Repeat("w", 32))}, Tokens: c.tokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wrong.Close() })
	if err := c.nodes[0].Raft().AddVoter("n2", addr, 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node with the wrong key to halt", func() bool { return wrong.Halted() != "" })
	if h := wrong.Halted(); !strings.Contains(h, "sealed with cluster key "+fsm.KeyID(key)) {
		t.Fatalf("halt reason %q", h)
	}
	st, b, _ = call(t, "GET", "http://"+httpAddr+"/healthz", "", nil)
	if st != http.StatusServiceUnavailable || !strings.Contains(string(b), "stopped taking part") {
		t.Fatalf("healthz of a halted node: %d %s", st, b)
	}
	var latest uint64
	wrong.Read(func(m *fsm.Machine) { latest = m.Latest })
	if latest != 0 {
		t.Fatalf("the halted node applied version %d it could not verify", latest)
	}
}

// TestWatchOfAnotherClusterIsRefused (item 10): a proxy that runs a version
// of another cluster is answered 409 with this cluster's ID and is not
// recorded; the directive carries the cluster ID.
func TestWatchOfAnotherClusterIsRefused(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	emergency(t, c.url(0), 2)
	var cluster string
	c.nodes[0].Read(func(m *fsm.Machine) { cluster = m.Cluster })
	if len(cluster) != 32 {
		t.Fatalf("cluster ID %q", cluster)
	}
	st, b, _ := call(t, "POST", c.url(0)+directive.WatchPath, agentTok, directive.WatchRequest{Proxy: "p1", Version: 1, Cluster: "0ther-c1uster", WaitMs: 10})
	var eb directive.ErrorBody
	json.Unmarshal(b, &eb)
	if st != http.StatusConflict || eb.Cluster != cluster || !strings.Contains(eb.Error, "reset-agent") {
		t.Fatalf("watch from another cluster: %d %s", st, b)
	}
	c.nodes[0].Read(func(m *fsm.Machine) {
		if len(m.Proxies) != 0 {
			t.Errorf("a proxy of another cluster was recorded: %+v", m.Proxies)
		}
	})
	st, b, _ = call(t, "POST", c.url(0)+directive.WatchPath, agentTok, directive.WatchRequest{Proxy: "p1", WaitMs: 10})
	var resp directive.WatchResponse
	json.Unmarshal(b, &resp)
	if st != 200 || resp.Cluster != cluster || resp.Directive == nil || resp.Directive.Cluster != cluster {
		t.Fatalf("watch: %d %s", st, b)
	}
}
