package gaia

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// tcpCluster is n nodes on Raft's TCP transport over loopback with real
// write-ahead logs: the production path, for benchmarks.
type tcpCluster struct {
	b     testing.TB
	nodes []*Node
	opts  []Options
}

func newTCPCluster(b testing.TB, n int, onStable func(node int, v uint64)) *tcpCluster {
	c := &tcpCluster{b: b, nodes: make([]*Node, n)}
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
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
	for try := 0; try < 50; try++ {
		if c.nodes[i], err = Start(c.opts[i]); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // ports of a node just stopped
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

// BenchmarkCommitToAllApplied: 3 coordinators (TCP on loopback, raft-wal)
// and 20 agents; each iteration commits one emergency directive and waits
// until every agent applied it. Reported: commit (first replica's apply of
// the entry) to the last agent's apply, p50/p99; and the proposer's
// round trip.
//
//	go test -run XXX -bench CommitToAllApplied -benchtime 300x ./internal/gaia/
func BenchmarkCommitToAllApplied(b *testing.B) {
	const agents = 20
	var mu sync.Mutex
	committed := map[uint64]time.Time{}
	c := newTCPCluster(b, 3, func(_ int, v uint64) {
		mu.Lock()
		if _, ok := committed[v]; !ok {
			committed[v] = time.Now()
		}
		mu.Unlock()
	})
	l, _ := c.leader(-1)
	var urls []string
	for _, o := range c.opts {
		urls = append(urls, "http://"+o.HTTPAddr)
	}
	type applied struct {
		v  uint64
		at time.Time
	}
	appliedCh := make(chan applied, 1<<16)
	ps := startProxies(b, urls, agents, func(i int, p *fakeProxy) {
		p.refuse = func(d *directive.Directive) error {
			appliedCh <- applied{d.Version, time.Now()}
			return nil
		}
	})
	// Warm up: every agent connected and on version 1.
	emergency(b, urls[l], 1)
	waitVersion(b, ps, 1)
	for len(appliedCh) > 0 {
		<-appliedCh
	}
	var prop2all, commit2all, roundTrip []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		st, ch := emergency(b, urls[l], float64(i+2))
		if st != http.StatusCreated {
			b.Fatalf("propose: %d", st)
		}
		roundTrip = append(roundTrip, time.Since(start))
		var last time.Time
		for n := 0; n < agents; {
			a := <-appliedCh
			if a.v == ch.Version {
				n++
				last = a.at
			}
		}
		mu.Lock()
		cat := committed[ch.Version]
		mu.Unlock()
		commit2all = append(commit2all, last.Sub(cat))
		prop2all = append(prop2all, last.Sub(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(commit2all, 0.5).Microseconds())/1000, "commit-to-all-p50-ms")
	b.ReportMetric(float64(percentile(commit2all, 0.99).Microseconds())/1000, "commit-to-all-p99-ms")
	b.ReportMetric(float64(percentile(prop2all, 0.5).Microseconds())/1000, "propose-to-all-p50-ms")
	b.ReportMetric(float64(percentile(prop2all, 0.99).Microseconds())/1000, "propose-to-all-p99-ms")
	b.ReportMetric(float64(percentile(roundTrip, 0.5).Microseconds())/1000, "propose-ack-p50-ms")
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
		time.Sleep(200 * time.Millisecond)
	}
	b.ReportMetric(float64(percentile(took, 0.5).Milliseconds()), "election-p50-ms")
	b.ReportMetric(float64(percentile(took, 1).Milliseconds()), "election-max-ms")
}
