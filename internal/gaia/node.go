// Package gaia is the coordinator: a Raft-replicated (hashicorp/raft with
// raft-wal) node whose state machine (package fsm) holds directive versions,
// ITIL change records and the audit log; its HTTP API for people and the
// pipeline; and the directive stream to the proxies' agents, with canaries.
//
// Nothing is acknowledged to a client before a quorum committed it: a
// leader that cannot reach a majority answers 503 ("no quorum").
package gaia

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// Options configure a coordinator node.
type Options struct {
	// ID is the node's stable identity in the cluster (e.g. n1).
	ID string
	// RaftAddr is the Raft transport's host:port (bind and advertise).
	RaftAddr string
	// HTTPAddr is the API's host:port. With Listener set it is only
	// advertised (default: the listener's address).
	HTTPAddr string
	// HTTPAdvertise is the host:port other nodes and clients are
	// redirected to, when it differs from HTTPAddr (e.g. binding 0.0.0.0).
	HTTPAdvertise string
	// Listener, when set, serves the API (tests pass 127.0.0.1:0).
	Listener net.Listener
	// DataDir holds the write-ahead log (wal/) and snapshots (snapshots/).
	DataDir string
	// Bootstrap forms a new cluster when DataDir holds no state (ignored
	// when it does): of this node alone, or of Peers when given (then every
	// peer bootstraps with the same Peers).
	Bootstrap bool
	Peers     []Peer
	// Join lists URLs of existing members to ask for membership when
	// DataDir holds no state; JoinToken is a token with the admin role.
	Join      []string
	JoinToken string
	// Transport replaces the TCP transport (tests: raft.NewInmemTransport).
	Transport raft.Transport
	// Credentials authenticate the Raft transport (mutual TLS: a node
	// certificate of the cluster CA on both ends, peers must be members)
	// and seal every log entry with the cluster key, so that the state
	// machine refuses entries a peer without the key wrote. Required when
	// RaftAddr is not a loopback address; see LoadCredentials and
	// InitTLS. With Transport set, only the cluster key is used.
	Credentials *Credentials

	// Raft timing. Defaults: 1s, 1s, 500ms, 50ms (hashicorp/raft's).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// Checkpoints: a snapshot when SnapshotThreshold entries accumulated,
	// checked every SnapshotInterval; TrailingLogs kept after it. Defaults
	// 1024, 10s, 1024.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// WALSegmentSize is raft-wal's segment size (pre-allocated). Default
	// 8 MiB: directives are small.
	WALSegmentSize int

	// Tokens authorize API calls. Without tokens every call but /healthz
	// and /metrics is refused.
	Tokens *Tokens
	// Policy is proposed by the first leader of a cluster whose state has
	// no policy yet; later changes go through PUT /v1/policy.
	Policy *change.Policy

	// WatchWait caps how long a long poll is held. Default 20s.
	WatchWait time.Duration
	// ReportInterval is what agents are asked for during a canary.
	// Default 1s.
	ReportInterval time.Duration
	// TickInterval is how often the leader checks the machine's deadlines.
	// Default 100ms.
	TickInterval time.Duration
	// RequestTimeout bounds a write's wait for its commit. Default 5s.
	RequestTimeout time.Duration

	Logger *slog.Logger
	// RaftLog receives hashicorp/raft's own log (default: discarded
	// unless Logger is at debug level).
	RaftLog   io.Writer
	RaftLevel string
	// Registry receives the metrics (default: a new registry).
	Registry *prometheus.Registry
	// OnStable is called when this replica's stable version changes
	// (benchmarks); it must not block.
	OnStable func(version uint64)
}

func (o *Options) defaults() error {
	if o.ID == "" {
		return errors.New("id: required (e.g. --id n1)")
	}
	if o.DataDir == "" {
		return errors.New("data-dir: required; it holds the write-ahead log and the snapshots")
	}
	if o.Transport == nil && o.RaftAddr == "" {
		return errors.New("raft-addr: required (e.g. 127.0.0.1:7001)")
	}
	if o.Bootstrap && len(o.Join) > 0 {
		return errors.New("--bootstrap and --join exclude each other: bootstrap the first node, join the others to it")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatTimeout, time.Second)
	def(&o.ElectionTimeout, time.Second)
	def(&o.LeaderLeaseTimeout, o.HeartbeatTimeout/2)
	def(&o.CommitTimeout, 50*time.Millisecond)
	def(&o.SnapshotInterval, 10*time.Second)
	def(&o.WatchWait, 20*time.Second)
	def(&o.ReportInterval, time.Second)
	def(&o.TickInterval, 100*time.Millisecond)
	def(&o.RequestTimeout, 5*time.Second)
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 1024
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 1024
	}
	if o.WALSegmentSize <= 0 {
		o.WALSegmentSize = 8 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.RaftLevel == "" {
		o.RaftLevel = "warn"
	}
	if o.RaftLog == nil {
		o.RaftLog = io.Discard
	}
	return nil
}

// Peer is a voter of a statically configured cluster.
type Peer struct {
	ID       string
	RaftAddr string
}

// Node is one running coordinator.
type Node struct {
	opts      Options
	log       *slog.Logger
	raft      *raft.Raft
	fsm       *replicated
	wal       *raftwal.WAL
	transport raft.Transport
	stream    *tlsStream // nil without TLS
	httpSrv   *http.Server
	ln        net.Listener
	advertise string
	metrics   *metrics
	archive   *archiveWriter
	// sealKey seals the entries this node proposes (nil: not sealed);
	// keyID is its public ID.
	sealKey []byte
	keyID   string
	// raftRef is raft once started (read by callbacks that may run before
	// Start assigned n.raft); halted is why this node stopped Raft.
	raftRef atomic.Pointer[raft.Raft]
	halted  atomic.Pointer[string]

	// ready is true once this node, as leader, applied every entry of
	// earlier terms (a barrier): only then are its reads linearizable.
	ready    atomic.Bool
	leaderMu sync.Mutex
	leaderCh chan struct{} // closed when leadership is lost

	reports chan fsm.ProxyReport
	nonce   atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start opens the stores, starts Raft and serves the API.
func Start(opts Options) (*Node, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	n := &Node{opts: opts, log: opts.Logger.With("node", opts.ID), fsm: newReplicated(),
		reports: make(chan fsm.ProxyReport, 4096), leaderCh: make(chan struct{})}
	close(n.leaderCh) // not leader yet
	n.fsm.onStable = opts.OnStable
	n.fsm.onHalt = n.halt
	n.fsm.onRefused = func(index uint64, e *fsm.Error) {
		n.log.Warn("refused an unauthenticated log entry: it changed nothing", "index", index, "err", e.Msg)
	}
	n.fsm.onClamped = func(index uint64, by time.Duration) {
		n.log.Warn("a log entry's time was ahead of the log time by more than max_clock_step and was clamped: check the leader's clock (NTP)", "index", index, "ahead_by_more_than_allowed", by.Round(time.Millisecond))
	}
	if c := opts.Credentials; c != nil {
		for _, w := range c.Warnings {
			n.log.Warn("credentials: " + w)
		}
		if c.ClusterKey != nil {
			if err := n.fsm.setKey(c.ClusterKey); err != nil {
				return nil, fmt.Errorf("--tls-dir: %w", err)
			}
			n.sealKey, n.keyID = c.ClusterKey, fsm.KeyID(c.ClusterKey)
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()

	walDir := filepath.Join(opts.DataDir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft." + opts.ID, Level: hclog.LevelFromString(opts.RaftLevel), Output: opts.RaftLog})
	// raft-wal v0.4.1 or later: v0.4.0's Close left its meta store (and
	// its file lock) open, and a truncated log tail made the next start
	// panic (hashicorp/raft-wal#31; see wal_test.go).
	wal, err := raftwal.Open(walDir, raftwal.WithSegmentSize(opts.WALSegmentSize), raftwal.WithLogger(hl.Named("wal")))
	if err != nil {
		return nil, fmt.Errorf("opening the write-ahead log in %s: %w", walDir, err)
	}
	n.wal = wal
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opts.DataDir, 2, hl.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store in %s: %w", opts.DataDir, err)
	}
	n.transport = opts.Transport
	if n.transport == nil {
		addr, err := net.ResolveTCPAddr("tcp", opts.RaftAddr)
		if err != nil {
			return nil, fmt.Errorf("raft-addr %s: %w", opts.RaftAddr, err)
		}
		if addr.IP == nil || addr.IP.IsUnspecified() {
			return nil, fmt.Errorf("raft-addr %s: give the address other nodes reach this one at, not a wildcard", opts.RaftAddr)
		}
		creds := opts.Credentials
		switch {
		case creds != nil && creds.Cert != nil:
			if err := creds.Cert.Leaf.VerifyHostname(addr.IP.String()); err != nil {
				return nil, fmt.Errorf("raft-addr %s: the certificate %s/%s.crt is not valid for %s (%v): peers would refuse it; issue one with `lbsys coordinator init-tls --dir %s --node %s=%s`", opts.RaftAddr, creds.Dir, opts.ID, addr.IP, err, creds.Dir, opts.ID, addr.IP)
			}
			if creds.NodeID != opts.ID {
				return nil, fmt.Errorf("--tls-dir: the certificate is node %s's, not --id %s's", creds.NodeID, opts.ID)
			}
			st, err := newTLSStream(opts.RaftAddr, addr, creds, n.raftMembers, n.log)
			if err != nil {
				return nil, fmt.Errorf("raft-addr %s: %w", opts.RaftAddr, err)
			}
			n.stream = st
			n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: st, MaxPool: 3, Timeout: 2 * time.Second, Logger: hl.Named("transport")})
		case addr.IP.IsLoopback():
			n.log.Warn("the Raft transport is NOT authenticated (loopback development mode): any process on this host can join the cluster or forge log entries; use --tls-dir (lbsys coordinator init-tls) for anything but development", "raft", opts.RaftAddr)
			t, err := raft.NewTCPTransportWithLogger(opts.RaftAddr, addr, 3, 2*time.Second, hl.Named("transport"))
			if err != nil {
				return nil, fmt.Errorf("raft-addr %s: %w", opts.RaftAddr, err)
			}
			n.transport = t
		default:
			return nil, fmt.Errorf("raft-addr %s is not a loopback address, so the Raft transport must be authenticated: pass --tls-dir DIR with the cluster's credentials (create them once with `lbsys coordinator init-tls --dir DIR --node %s=%s --node ...`, then copy ca.crt, cluster.key and each node's .crt/.key to it)", opts.RaftAddr, opts.ID, addr.IP)
		}
	}
	if n.sealKey == nil {
		n.log.Warn("log entries are not sealed (no cluster key): a peer that reaches the Raft port can write entries as any principal; use --tls-dir")
	}
	n.archive = newArchiveWriter(filepath.Join(opts.DataDir, "archive", "changes.jsonl"), n.log)
	n.fsm.onArchive = n.archive.write

	notify := make(chan bool, 8)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(opts.ID)
	rc.HeartbeatTimeout = opts.HeartbeatTimeout
	rc.ElectionTimeout = opts.ElectionTimeout
	rc.LeaderLeaseTimeout = opts.LeaderLeaseTimeout
	rc.CommitTimeout = opts.CommitTimeout
	rc.SnapshotThreshold = opts.SnapshotThreshold
	rc.SnapshotInterval = opts.SnapshotInterval
	rc.TrailingLogs = opts.TrailingLogs
	rc.NotifyCh = notify
	rc.Logger = hl
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raft timing: %w", err)
	}

	existing, err := raft.HasExistingState(wal, wal, snaps)
	if err != nil {
		return nil, err
	}
	if opts.Bootstrap && !existing {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.transport.LocalAddr()}}}
		if len(opts.Peers) > 0 {
			cfg.Servers = nil
			for _, p := range opts.Peers {
				cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
			}
		}
		if err := raft.BootstrapCluster(rc, wal, wal, snaps, n.transport, cfg); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, wal, wal, snaps, n.transport)
	if err != nil {
		return nil, err
	}
	n.raft = r
	n.raftRef.Store(r)
	if n.halted.Load() != nil {
		// The restore already met an entry this node cannot verify.
		go r.Shutdown()
	}

	n.ln = opts.Listener
	if n.ln == nil {
		if opts.HTTPAddr == "" {
			return nil, errors.New("http-addr: required (e.g. 127.0.0.1:7101)")
		}
		ln, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("http-addr %s: %w", opts.HTTPAddr, err)
		}
		n.ln = ln
	}
	n.advertise = opts.HTTPAdvertise
	if n.advertise == "" {
		n.advertise = opts.HTTPAddr
	}
	if n.advertise == "" {
		n.advertise = n.ln.Addr().String()
	}
	if host, _, err := net.SplitHostPort(n.advertise); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		return nil, fmt.Errorf("http-addr %s is a wildcard: give --http-advertise, the address clients and other nodes reach this node at", n.advertise)
	}
	n.metrics = newMetrics(n, opts.Registry)
	n.httpSrv = &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn)}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		if err := n.httpSrv.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("coordinator API stopped", "err", err)
		}
	}()
	go func() { defer n.wg.Done(); n.watchLeadership(notify) }()
	go func() { defer n.wg.Done(); n.batchReports() }()
	if len(opts.Join) > 0 && !existing {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.join() }()
	}
	n.log.Info("coordinator started", "raft", n.transport.LocalAddr(), "http", n.advertise, "existing_state", existing, "bootstrap", opts.Bootstrap && !existing,
		"raft_tls", n.stream != nil, "entries_sealed", n.sealKey != nil, "key_id", n.keyID)
	ok = true
	return n, nil
}

// Close stops the node: the API, Raft, the transport and the log.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	n.cancel()
	if n.httpSrv != nil {
		n.httpSrv.Close()
	} else if n.ln != nil {
		n.ln.Close()
	}
	var err error
	if n.raft != nil {
		// Not `defer r.Shutdown().Error()`: the future must be waited for
		// here, after everything that uses raft stopped taking requests.
		err = n.raft.Shutdown().Error()
	}
	n.wg.Wait()
	if c, ok := n.transport.(io.Closer); ok && n.opts.Transport == nil {
		c.Close()
	}
	if n.wal != nil {
		n.wal.Close()
	}
	if n.archive != nil {
		n.archive.close()
	}
	return err
}

// raftMembers is the Raft configuration as node ID -> address (nil before
// Raft started). The TLS stream layer asks it for every connection; raft
// keeps a copy of the latest configuration, so this does not block.
func (n *Node) raftMembers() map[string]string {
	r := n.raftRef.Load()
	if r == nil {
		return nil
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	out := map[string]string{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = string(s.Address)
	}
	return out
}

// halt stops this node's Raft when the log holds an entry sealed with a
// key it does not hold: applying on would make its state diverge from the
// cluster's. The API keeps answering, with 503 and the reason; restarted
// with the right key, the node replays the log from its last snapshot.
func (n *Node) halt(reason string) {
	if !n.halted.CompareAndSwap(nil, &reason) {
		return
	}
	n.log.Error("this coordinator stopped taking part in the cluster: "+reason, "key_id", n.keyID)
	if r := n.raftRef.Load(); r != nil {
		go r.Shutdown()
	}
}

// Halted returns why this node stopped taking part in the cluster ("" if
// it did not).
func (n *Node) Halted() string {
	if h := n.halted.Load(); h != nil {
		return *h
	}
	return ""
}

// Raft exposes the Raft instance (tests, status).
func (n *Node) Raft() *raft.Raft { return n.raft }

// Addr is the API's advertised host:port.
func (n *Node) Addr() string { return n.advertise }

// URL is the API's base URL.
func (n *Node) URL() string { return "http://" + n.advertise }

// IsLeader reports whether this node leads and has caught up with the log.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader && n.ready.Load() }

// Read runs f on the replicated machine under its read lock (tests,
// status). f must not keep references into the machine.
func (n *Node) Read(f func(m *fsm.Machine)) { n.fsm.read(f) }

// Checkpoint takes a Raft snapshot now.
func (n *Node) Checkpoint() (uint64, error) {
	f := n.raft.Snapshot()
	if err := f.Error(); errors.Is(err, raft.ErrNothingNewToSnapshot) {
		idx, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
		return idx, nil // the latest checkpoint is current
	} else if err != nil {
		return 0, err
	}
	meta, _, err := f.Open()
	if err != nil {
		return 0, err
	}
	return meta.Index, nil
}

// watchLeadership runs the leader's duties while this node leads.
func (n *Node) watchLeadership(notify <-chan bool) {
	var stop context.CancelFunc
	for {
		select {
		case <-n.ctx.Done():
			if stop != nil {
				stop()
			}
			return
		case leader := <-notify:
			if stop != nil {
				stop()
				stop = nil
			}
			n.ready.Store(false)
			n.leaderMu.Lock()
			select {
			case <-n.leaderCh:
			default:
				close(n.leaderCh)
			}
			if leader {
				n.leaderCh = make(chan struct{})
			}
			n.leaderMu.Unlock()
			if leader {
				n.metrics.elections.Inc()
				ctx, cancel := context.WithCancel(n.ctx)
				stop = cancel
				n.wg.Add(1)
				go func() { defer n.wg.Done(); n.lead(ctx) }()
			}
		}
	}
}

// leaderDone returns a channel closed when the current leadership ends.
func (n *Node) leaderDone() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderCh
}

// lead: catch up (barrier), record this node's addresses and the initial
// policy, then propose ticks when the machine has a deadline due.
func (n *Node) lead(ctx context.Context) {
	for {
		if err := n.raft.Barrier(n.opts.RequestTimeout).Error(); err == nil {
			break
		} else if ctx.Err() != nil {
			return
		} else {
			n.log.Warn("leader barrier failed; retrying", "err", err)
		}
	}
	// Record this node's addresses (followers redirect to them) and the
	// initial policy before serving as leader.
	me := change.Member{ID: n.opts.ID, RaftAddr: string(n.transport.LocalAddr()), HTTPAddr: n.advertise}
	for ctx.Err() == nil {
		var cmd *fsm.Command
		n.fsm.read(func(m *fsm.Machine) {
			if m.Cluster == "" || n.keyID != "" && m.KeyID == "" {
				// The cluster's identity first: a random ID (kept if the
				// cluster has one) and the key that seals entries from
				// here on.
				id := m.Cluster
				if id == "" {
					id = newClusterID()
				}
				cmd = &fsm.Command{Op: fsm.OpCluster, By: fsm.System, Cluster: &fsm.ClusterInfo{ID: id, KeyID: n.keyID}}
			} else if old := m.Members[n.opts.ID]; old == nil || *old != me {
				cmd = &fsm.Command{Op: fsm.OpMember, By: fsm.System, Member: &me}
			} else if !m.PolicySet && n.opts.Policy != nil {
				p := *n.opts.Policy
				cmd = &fsm.Command{Op: fsm.OpPolicy, By: fsm.System, Policy: &p}
			}
		})
		if cmd == nil {
			break
		}
		if res, err := n.apply(ctx, *cmd); err != nil || res.Err != nil {
			n.log.Warn("recording the cluster identity, membership or policy failed; retrying", "err", err, "refused", res.Err)
			select {
			case <-ctx.Done():
			case <-time.After(n.opts.TickInterval):
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	n.ready.Store(true)
	n.log.Info("leading", "term", n.raft.CurrentTerm())
	t := time.NewTicker(n.opts.TickInterval)
	defer t.Stop()
	warnedClock := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var due, behind bool
		now := time.Now()
		n.fsm.read(func(m *fsm.Machine) {
			dl := m.NextDeadline()
			due = !dl.IsZero() && !now.Before(dl) || m.KeepAliveDue(now)
			behind = m.Now.Sub(now) > m.Policy.MaxClockStep.Std()
		})
		if behind && !warnedClock {
			warnedClock = true
			n.log.Warn("this leader's clock is behind the log time by more than max_clock_step: its entries do not move the clock until it catches up; check its clock (NTP)")
		}
		if due {
			n.apply(ctx, fsm.Command{Op: fsm.OpTick, By: fsm.System})
		}
	}
}

// newClusterID returns a random cluster ID (32 hex digits).
func newClusterID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b)
}

// errNoQuorum is the refusal of a leader that cannot reach a majority, or
// of a follower that knows no leader.
var errNoQuorum = errors.New("no quorum: commit delayed until a majority is reachable")

// applyError describes why a write was not acknowledged.
type applyError struct {
	err error
	// notLeader: the write never entered the log (safe to retry elsewhere).
	notLeader bool
	// unknown: it entered the log and may still commit.
	unknown bool
}

func (e *applyError) Error() string { return e.err.Error() }

// apply proposes a command and waits until it is committed and applied.
// It verifies leadership first, so a leader cut off from its majority
// refuses at once instead of appending an entry it cannot commit.
func (n *Node) apply(ctx context.Context, c fsm.Command) (fsm.Result, *applyError) {
	start := time.Now()
	if n.raft.State() != raft.Leader {
		return fsm.Result{}, &applyError{err: raft.ErrNotLeader, notLeader: true}
	}
	if err := n.wait(ctx, n.raft.VerifyLeader(), n.verifyTimeout()); err != nil {
		n.metrics.commits.WithLabelValues(string(c.Op), "no_quorum").Inc()
		return fsm.Result{}, &applyError{err: errNoQuorum, notLeader: true}
	}
	if c.At.IsZero() {
		c.At = time.Now()
	}
	b, err := fsm.Encode(c)
	if err != nil {
		return fsm.Result{}, &applyError{err: err, notLeader: true}
	}
	if n.sealKey != nil {
		b = fsm.Seal(n.sealKey, b)
	}
	f := n.raft.Apply(b, n.opts.RequestTimeout)
	if err := n.wait(ctx, f, n.opts.RequestTimeout); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrEnqueueTimeout) {
			n.metrics.commits.WithLabelValues(string(c.Op), "not_leader").Inc()
			return fsm.Result{}, &applyError{err: errNoQuorum, notLeader: true}
		}
		n.metrics.commits.WithLabelValues(string(c.Op), "unknown").Inc()
		return fsm.Result{}, &applyError{err: fmt.Errorf("%w (%v)", errNoQuorum, err), unknown: true}
	}
	res, _ := f.Response().(fsm.Result)
	result := "ok"
	if res.Err != nil {
		result = "refused"
	}
	n.metrics.commits.WithLabelValues(string(c.Op), result).Inc()
	n.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	return res, nil
}

func (n *Node) verifyTimeout() time.Duration {
	return 2*n.opts.HeartbeatTimeout + n.opts.LeaderLeaseTimeout
}

// wait waits for a raft future with a deadline: raft's futures have none
// once the entry is in the log, and a leader without quorum holds them
// until it steps down.
func (n *Node) wait(ctx context.Context, f raft.Future, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("timed out waiting for a majority")
	case <-ctx.Done():
		return ctx.Err()
	case <-n.ctx.Done():
		return errors.New("coordinator shutting down")
	}
}

// batchReports proposes what agents told the leader, many per entry: each
// apply carries everything that queued while the previous one committed.
func (n *Node) batchReports() {
	for {
		var first fsm.ProxyReport
		select {
		case <-n.ctx.Done():
			return
		case first = <-n.reports:
		}
		batch := []fsm.ProxyReport{first}
	drain:
		for len(batch) < 512 {
			select {
			case r := <-n.reports:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if n.raft.State() != raft.Leader {
			continue // agents re-send what the next leader lacks
		}
		if _, err := n.apply(n.ctx, fsm.Command{Op: fsm.OpReport, By: fsm.System, Reports: batch}); err != nil {
			n.log.Debug("proxy reports not committed", "count", len(batch), "err", err)
		}
	}
}

func (n *Node) enqueueReport(r fsm.ProxyReport) {
	select {
	case n.reports <- r:
	default:
		n.metrics.reportsDropped.Inc() // the agent's next poll repeats it
	}
}

// join asks the members in Options.Join to add this node, until one does.
func (n *Node) join() {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		for _, u := range n.opts.Join {
			err := joinCluster(n.ctx, u, n.opts.JoinToken, JoinRequest{ID: n.opts.ID, RaftAddr: string(n.transport.LocalAddr()), HTTPAddr: n.advertise, KeyID: n.keyID})
			if err == nil {
				n.log.Info("joined the cluster", "via", u)
				return
			}
			var ce *client.Error
			if errors.As(err, &ce) && (ce.Status == http.StatusBadRequest || ce.Status == http.StatusUnauthorized || ce.Status == http.StatusForbidden || ce.Status == http.StatusConflict) {
				// Refused for good (wrong token, another cluster key):
				// retrying would not change the answer.
				n.log.Error("the cluster refused to add this node; fix the cause and restart it", "via", u, "err", err)
				return
			}
			if attempt%10 == 0 {
				n.log.Warn("joining the cluster failed; retrying", "via", u, "err", err)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
