package gaia

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/gaia/fsm"
	"github.com/lbsys/lbsys/internal/gaia/gaiatest"
)

// TestLinearizableUnderPartitions runs concurrent proposals and
// linearizable reads against every node while the leader is partitioned
// away, a follower is partitioned, and a node restarts from disk; the
// history must be linearizable and every acknowledged version must survive
// with its content on every replica.
func TestLinearizableUnderPartitions(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.leader()
	h := gaiatest.NewHistory()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for cl := 0; cl < 3; cl++ {
		wg.Add(1)
		go func(cl int) {
			defer wg.Done()
			for seq := 1; ctx.Err() == nil && seq < 100000; seq++ {
				base := c.url((cl + seq) % 3)
				k := cl*100000 + seq
				call := h.Now()
				h.Proposed(cl, k, call, gaiatest.Propose(ctx, base, adminTok, k))
				call = h.Now()
				if v, got, ok := gaiatest.Read(ctx, c.url((cl+seq+1)%3), adminTok); ok {
					h.ReadDone(cl, call, v, got)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(cl)
	}
	// Each phase lasts until the clients saw what it is about (polling
	// the history, with a deadline), not for a fixed time.
	step := func(what string, acked, refused int) {
		t.Helper()
		a0, r0 := h.Count("propose acked"), h.Count("propose failed")+h.Count("propose unknown")
		eventually(t, fmt.Sprintf("%s: %d more acknowledged and %d more refused proposals", what, acked, refused), func() bool {
			return h.Count("propose acked") >= a0+acked && h.Count("propose failed")+h.Count("propose unknown") >= r0+refused
		})
		t.Logf("%s: %s", what, h.Summary())
	}
	step("steady", 5, 0)
	l := c.leader()
	c.isolate(l)
	// The isolated leader refuses (or leaves unknown) at least one write;
	// the majority elects another leader and commits.
	step("leader "+c.id(l)+" isolated", 5, 1)
	c.connectAll()
	l = c.leader()
	f := (l + 1) % 3
	c.isolate(f)
	step("follower "+c.id(f)+" isolated", 5, 0)
	c.connectAll()
	c.restart((l + 2) % 3)
	step("node "+c.id((l+2)%3)+" restarted from disk", 5, 0)
	cancel()
	wg.Wait()

	t.Logf("history: %s", h.Summary())
	if h.Count("propose acked") < 10 {
		t.Fatalf("too few acknowledged proposals to mean anything: %s", h.Summary())
	}
	if err := h.Check(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Every acknowledged version survives, with its content, everywhere.
	l = c.leader()
	var latest uint64
	c.nodes[l].Read(func(m *fsm.Machine) { latest = m.Latest })
	for i := range c.nodes {
		eventually(t, "replica "+c.id(i)+" catches up", func() bool { v, _ := c.latest(i); return v >= latest })
		c.nodes[i].Read(func(m *fsm.Machine) {
			for v, k := range h.Acked {
				if got := gaiatest.Marker(m.Versions[v]); got != k {
					t.Errorf("%s: acknowledged version %d has marker %d, want %d", c.id(i), v, got, k)
				}
			}
		})
	}
}
