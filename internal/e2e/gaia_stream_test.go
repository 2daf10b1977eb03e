package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/agent"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// Real proxy agents (internal/agent) against real Gaia coordinators: the
// directive stream's ACK/NACK, canaries and rollbacks, failover, and the
// fleet's last-good and cluster-identity rules. Moved here from
// internal/gaia (issue #16): the coordinator's tests may not import the
// data plane.

func TestStreamACKAndNACK(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	ps := startProxies(t, c.urls(), 3, func(i int, p *fakeProxy) {
		if i == 2 {
			p.refuse = func(d *directive.Directive) error {
				if d.Services["catalog"].Weights["127.0.0.1:9001"] > 5 {
					return fmt.Errorf("services[catalog]: policy round_robin does not take weights; use policy weighted")
				}
				return nil
			}
		}
	})
	eventually(t, "3 proxies registered", func() bool {
		n := 0
		c.nodes[0].Read(func(m *fsm.Machine) { n = len(m.Proxies) })
		return n == 3
	})
	if st, ch := emergency(t, c.url(0), 2); st != http.StatusCreated || ch.Version != 1 {
		t.Fatalf("propose: %d", st)
	}
	waitVersion(t, ps, 1)
	eventually(t, "version 1 live", func() bool {
		live := false
		c.nodes[0].Read(func(m *fsm.Machine) { live = m.Live() && m.Changes[1].Outcome == change.Success })
		return live
	})

	// Proxy 2 refuses version 2: it keeps version 1, NACKs with the error,
	// and the coordinator records it; the others run version 2.
	_, ch := emergency(t, c.url(0), 10)
	waitVersion(t, ps[:2], 2)
	eventually(t, "the NACK recorded", func() bool {
		var p change.Proxy
		c.nodes[0].Read(func(m *fsm.Machine) { p = *m.Proxies["proxy-02"] })
		return p.Rejected == 2 && strings.Contains(p.RejectError, "use policy weighted") && p.Version == 1
	})
	var got *change.Change
	eventually(t, "the change to end partial", func() bool {
		c.nodes[0].Read(func(m *fsm.Machine) { cc := *m.Changes[ch.ID]; got = &cc })
		return got.Outcome == change.Partial
	})
	if !strings.Contains(got.Detail, "refused by proxy-02") {
		t.Errorf("detail %q", got.Detail)
	}
	st := ps[2].agent.Status()
	if st.Version != 1 || st.Rejected != 2 || !strings.Contains(st.RejectError, "policy round_robin") {
		t.Fatalf("agent status %+v", st)
	}
	ps[2].mu.Lock()
	applied := fmt.Sprint(ps[2].applied)
	ps[2].mu.Unlock()
	if applied != "[1]" {
		t.Fatalf("proxy 2 applied %s; a NACKed directive must not be applied", applied)
	}
	// The NACKed version is not sent again; the next one is, and applies.
	emergency(t, c.url(0), 3)
	waitVersion(t, ps, 3)
	if st := ps[2].agent.Status(); st.Rejected != 0 {
		t.Errorf("rejection not cleared: %+v", st)
	}
}

func TestCanaryPromoteAndAutomaticRollbackThroughTheStream(t *testing.T) {
	c := newCluster(t, 1, func(o *gaia.Options) {
		o.Policy.CanaryFraction = 0.25
		o.Policy.CanaryWindow = directive.Duration(300 * time.Millisecond)
		o.Policy.MinRequests = 10
	})
	c.leader()
	var cp change.Policy
	c.nodes[0].Read(func(m *fsm.Machine) { cp = m.Policy })
	if cp.CanaryFraction != 0.25 {
		t.Fatalf("policy %+v", cp)
	}
	bad := 7.0
	ps := startProxies(t, c.urls(), 4, func(i int, p *fakeProxy) {
		p.stats = func(cur *directive.Directive) directive.ServiceStats {
			if cur != nil && cur.Services["catalog"].Weights["127.0.0.1:9001"] == bad {
				return directive.ServiceStats{Requests: 200, Errors: 100, P99Ms: 30}
			}
			return directive.ServiceStats{Requests: 200, Errors: 1, P99Ms: 30}
		}
	})
	eventually(t, "4 proxies registered", func() bool {
		n := 0
		c.nodes[0].Read(func(m *fsm.Machine) { n = len(m.ActiveProxies()) })
		return n == 4
	})
	emergency(t, c.url(0), 1) // baseline, no canary
	waitVersion(t, ps, 1)
	// The proxies run version 1 before the coordinator has heard all their
	// ACKs. Until it has, change 1 is still active and an approved change
	// waits its turn with no canary yet: wait for the rollout to finish.
	eventually(t, "the baseline's rollout to finish", func() bool {
		done := false
		c.nodes[0].Read(func(m *fsm.Machine) { done = m.Active == 0 && m.Live() })
		return done
	})

	normal := func(w float64) uint64 {
		st, b, _ := call(t, "POST", c.url(0)+"/v1/changes", aliceTok, gaia.ProposeRequest{Type: change.Normal, Reason: "forecast", Directive: weightsDirective(w)})
		var ch change.Change
		if st != http.StatusCreated || json.Unmarshal(b, &ch) != nil || ch.State != change.Authorize {
			t.Fatalf("propose: %d %s", st, b)
		}
		st, b, _ = call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", c.url(0), ch.ID), bobTok, gaia.DecisionRequest{Reason: "ok"})
		if st != http.StatusOK {
			t.Fatalf("approve: %d %s", st, b)
		}
		return ch.ID
	}

	// A good change: canary on one proxy, promoted, closed.
	id := normal(1.1)
	var canary []string
	c.nodes[0].Read(func(m *fsm.Machine) {
		if m.Canary != nil {
			canary = append(canary, m.Canary.Proxies...)
		}
	})
	if len(canary) != 1 {
		t.Fatalf("canary %v", canary)
	}
	waitVersion(t, ps, 2)
	eventually(t, "the change to close", func() bool {
		var s change.State
		c.nodes[0].Read(func(m *fsm.Machine) { s = m.Changes[id].State })
		return s == change.Closed
	})

	// A bad change: the canary's error rate jumps; Gaia rolls back.
	id = normal(bad)
	var rb uint64
	eventually(t, "the automatic rollback", func() bool {
		c.nodes[0].Read(func(m *fsm.Machine) { rb = m.Changes[id].RolledBackBy })
		return rb != 0
	})
	var failed, rollback change.Change
	c.nodes[0].Read(func(m *fsm.Machine) { failed, rollback = *m.Changes[id], *m.Changes[rb] })
	if failed.Outcome != change.Failed || !strings.Contains(failed.Detail, "error rate 50.0% on the canary") || rollback.RollbackOf != 2 || rollback.Version != 4 {
		t.Fatalf("failed %+v\nrollback %+v", failed, rollback)
	}
	waitVersion(t, ps, 4)
	for _, p := range ps {
		if w := p.agent.Directive().Services["catalog"].Weights["127.0.0.1:9001"]; w != 1.1 {
			t.Errorf("%s runs weight %v after the rollback", p.id, w)
		}
	}
	// Only the canary proxy ever ran version 3.
	ran3 := 0
	for _, p := range ps {
		p.mu.Lock()
		for _, v := range p.applied {
			if v == 3 {
				ran3++
			}
		}
		p.mu.Unlock()
	}
	if ran3 != 1 {
		t.Errorf("%d proxies ran the bad version; want only the canary", ran3)
	}
}

func TestAgentsFollowLeaderAcrossFailover(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	ps := startProxies(t, c.urls(), 3, nil)
	emergency(t, c.url(l), 1)
	waitVersion(t, ps, 1)
	c.stop(l)
	nl := c.leader(l)
	if st, _ := emergency(t, c.url(nl), 2); st != http.StatusCreated {
		t.Fatalf("propose on the new leader: %d", st)
	}
	waitVersion(t, ps, 2)
	eventually(t, "version 2 live on the new leader", func() bool {
		live, n := false, 0
		c.nodes[nl].Read(func(m *fsm.Machine) { live, n = m.Live(), len(m.ActiveProxies()) })
		return live && n == 3
	})
	for _, p := range ps {
		if st := p.agent.Status(); st.Leader != c.url(nl) || st.Degraded {
			t.Errorf("%s: %+v", p.id, st)
		}
	}
}

// refuseHeavy refuses weights above 5 (as a proxy whose policy does not
// take such weights would).
func refuseHeavy(d *directive.Directive) error {
	if s := d.Services["catalog"]; s != nil && s.Weights["127.0.0.1:9001"] > 5 {
		return fmt.Errorf("services[catalog]: weight %v does not fit this proxy", s.Weights["127.0.0.1:9001"])
	}
	return nil
}

// TestFleetNACKNewProxyGetsLastGood (issue #13 item 8, through the stream):
// an emergency change every proxy refuses does not become stable; a proxy
// started afterwards runs the last version the fleet acknowledged instead
// of refusing the new one and running with no directive.
func TestFleetNACKNewProxyGetsLastGood(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	ps := startProxies(t, c.urls(), 2, func(i int, p *fakeProxy) { p.refuse = refuseHeavy })
	eventually(t, "2 proxies registered", func() bool {
		n := 0
		c.nodes[0].Read(func(m *fsm.Machine) { n = len(m.ActiveProxies()) })
		return n == 2
	})
	emergency(t, c.url(0), 2)
	waitVersion(t, ps, 1)
	_, bad := emergency(t, c.url(0), 10)
	var got change.Change
	eventually(t, "the fleet NACK to end the change", func() bool {
		c.nodes[0].Read(func(m *fsm.Machine) { got = *m.Changes[bad.ID] })
		return got.State == change.Review
	})
	var stable uint64
	c.nodes[0].Read(func(m *fsm.Machine) { stable = m.Stable })
	if got.Outcome != change.Failed || stable != 1 {
		t.Fatalf("fleet NACK: outcome %s, stable %d (%s)", got.Outcome, stable, got.Detail)
	}
	late := startProxies(t, c.urls(), 1, func(i int, p *fakeProxy) { p.id = "late-proxy"; p.refuse = refuseHeavy })
	waitVersion(t, late, 1)
	if st := late[0].agent.Status(); st.Rejected != 0 {
		t.Fatalf("the new proxy was offered the refused version: %+v", st)
	}
}

// TestRebuiltClusterDoesNotClaimProxies (item 10, through the stream): a
// proxy running version 1 of cluster A meets a rebuilt cluster B whose
// version 1 has other content. B does not count it (it would report it
// live on content it does not run), the proxy keeps A's content, and after
// its operator resets it (state file removed) it takes B's.
func TestRebuiltClusterDoesNotClaimProxies(t *testing.T) {
	a := newCluster(t, 1, nil)
	a.leader()
	b := newCluster(t, 1, nil)
	b.leader()
	state := filepath.Join(t.TempDir(), "directive.json")
	run := func(urls []string) (*agent.Agent, *fakeProxy, func()) {
		p := &fakeProxy{id: "edge-1"}
		ag, err := agent.New(agent.Options{Coordinators: urls, Token: agentTok, ProxyID: p.id, StateFile: state, Applier: p,
			Wait: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := ag.Restore(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); ag.Run(ctx) }()
		stop := func() { cancel(); wg.Wait() }
		t.Cleanup(stop)
		return ag, p, stop
	}
	emergency(t, a.url(0), 2)
	ag, _, stop := run([]string{a.url(0)})
	eventually(t, "version 1 of cluster A", func() bool { return ag.Status().Version == 1 })
	stop()
	a.stop(0) // the old cluster is gone

	emergency(t, b.url(0), 7) // B's version 1: other content
	ag, p, stop := run([]string{b.url(0)})
	eventually(t, "the cluster mismatch", func() bool { return ag.Status().ClusterMismatch != "" })
	b.nodes[0].Read(func(m *fsm.Machine) {
		if px := m.Proxies["edge-1"]; px != nil {
			t.Errorf("cluster B recorded the proxy as running its version %d", px.Version)
		}
	})
	if w := p.weight(); w != 2 {
		t.Fatalf("the proxy runs weight %v; it must keep cluster A's 2", w)
	}
	stop()

	os.Remove(state) // the reset
	ag, p, _ = run([]string{b.url(0)})
	eventually(t, "cluster B's version 1", func() bool { return p.version() == 1 && ag.Status().ClusterMismatch == "" })
	var live bool
	eventually(t, "B live on its version 1", func() bool {
		b.nodes[0].Read(func(m *fsm.Machine) { live = m.Live() && len(m.ActiveProxies()) == 1 })
		return live
	})
	if w := p.weight(); w != 7 {
		t.Fatalf("after the reset the proxy runs weight %v, want B's 7", w)
	}
}
