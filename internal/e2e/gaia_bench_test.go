package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/testnet"
)

// newTCPCluster starts n nodes on Raft's TCP transport over loopback with
// real write-ahead logs (the production path, for benchmarks) and returns
// their API base URLs; onStable(node, v) is each node's OnStable hook.
func newTCPCluster(b testing.TB, n int, onStable func(node int, v uint64)) ([]*gaia.Node, []string) {
	var peers []gaia.Peer
	for i := 0; i < n; i++ {
		peers = append(peers, gaia.Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: testnet.Addr(b)})
	}
	tokens := testTokens(b)
	nodes := make([]*gaia.Node, n)
	var urls []string
	b.Cleanup(func() {
		for _, nd := range nodes {
			if nd != nil {
				nd.Close()
			}
		}
	})
	for i := 0; i < n; i++ {
		addr := testnet.Addr(b)
		urls = append(urls, "http://"+addr)
		nd, err := gaia.Start(gaia.Options{
			ID: peers[i].ID, RaftAddr: peers[i].RaftAddr, HTTPAddr: addr, DataDir: b.TempDir(),
			Bootstrap: true, Peers: peers, Tokens: tokens,
			HeartbeatTimeout: 150 * time.Millisecond, ElectionTimeout: 150 * time.Millisecond,
			LeaderLeaseTimeout: 100 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
			WALSegmentSize: 4 << 20, WatchWait: 20 * time.Second, Logger: testLogger(b),
			OnStable: func(v uint64) { onStable(i, v) },
		})
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = nd
	}
	return nodes, urls
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
//	go test -run XXX -bench CommitToAllApplied -benchtime 300x ./internal/e2e/
func BenchmarkCommitToAllApplied(b *testing.B) {
	const agents = 20
	var mu sync.Mutex
	committed := map[uint64]time.Time{}
	nodes, urls := newTCPCluster(b, 3, func(_ int, v uint64) {
		mu.Lock()
		if _, ok := committed[v]; !ok {
			committed[v] = time.Now()
		}
		mu.Unlock()
	})
	l := -1
	within(b, testTimeout, "a leader", func() bool {
		for i, nd := range nodes {
			if nd.IsLeader() {
				l = i
			}
		}
		return l >= 0
	})
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
