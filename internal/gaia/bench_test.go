package gaia

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/testnet"
)

// tcpCluster is n nodes on Raft's TCP transport over loopback with real
// write-ahead logs: the production path, for benchmarks.
type tcpCluster struct {
	b     testing.TB
	nodes []*Node
	opts  []Options
}

func newTCPCluster(b testing.TB, n int, onStable func(node int, v uint64), tweak ...func(i int, o *Options)) *tcpCluster {
	c := &tcpCluster{b: b, nodes: make([]*Node, n)}
	free := func() string { return testnet.Addr(b) }
	var peers []Peer
	for i := 0; i < n; i++ {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: free()})
	}
	tokens := testTokens(b)
	for i := 0; i < n; i++ {
		i := i
		c.opts = append(c.opts, Options{
			ID: peers[i].ID, RaftAddr: peers[i].RaftAddr, HTTPAddr: free(), DataDir: b.TempDir(),
			Bootstrap: true, Peers: peers, Tokens: tokens,
			HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
			LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
			WALSegmentSize: 4 << 20, WatchWait: 20 * time.Second, Logger: testLogger(b),
			OnStable: func(v uint64) {
				if onStable != nil {
					onStable(i, v)
				}
			},
		})
		for _, f := range tweak {
			f(i, &c.opts[i])
		}
		c.start(i)
	}
	b.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *tcpCluster) start(i int) {
	var err error
	// Ports of a node just stopped may linger: poll, with a deadline.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c.nodes[i], err = Start(c.opts[i]); err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	c.b.Fatal(err)
}

func (c *tcpCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

func (c *tcpCluster) leader(exclude int) (int, time.Time) {
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && i != exclude && n.IsLeader() {
				return i, time.Now()
			}
		}
		time.Sleep(time.Millisecond)
	}
	c.b.Fatal("no leader")
	return -1, time.Time{}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkElectionAfterLeaderLoss: 3 coordinators (TCP on loopback); each
// iteration stops the leader and measures until another node leads and
// serves (barrier done, membership recorded), then restarts the stopped
// node from disk.
//
//	go test -run XXX -bench ElectionAfterLeaderLoss -benchtime 20x ./internal/gaia/
func BenchmarkElectionAfterLeaderLoss(b *testing.B) {
	c := newTCPCluster(b, 3, nil)
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		l, _ := c.leader(-1)
		emergency(b, "http://"+c.opts[l].HTTPAddr, float64(i+1))
		start := time.Now()
		c.stop(l)
		_, at := c.leader(l)
		took = append(took, at.Sub(start))
		c.start(l)
		// Let it rejoin and catch up before the next round, so each round
		// starts from a healthy cluster.
		nl, _ := c.leader(-1)
		want := c.nodes[nl].Raft().CommitIndex()
		eventually(b, "the restarted node to catch up", func() bool { return c.nodes[l].Raft().AppliedIndex() >= want })
		eventually(b, "the restarted node to hear from the leader", func() bool { return c.nodes[l].Raft().Leader() != "" })
	}
	b.ReportMetric(float64(percentile(took, 0.5).Milliseconds()), "election-p50-ms")
	b.ReportMetric(float64(percentile(took, 1).Milliseconds()), "election-max-ms")
}
