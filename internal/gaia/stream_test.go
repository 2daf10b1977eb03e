package gaia

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/agent"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// fakeProxy is an agent with an in-memory "data plane".
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

func (c *cluster) urls() []string {
	var u []string
	for i := range c.http {
		u = append(u, c.url(i))
	}
	return u
}

func waitVersion(t testing.TB, ps []*fakeProxy, v uint64) {
	t.Helper()
	for _, p := range ps {
		eventually(t, fmt.Sprintf("%s to run version %d", p.id, v), func() bool { return p.version() == v })
	}
}

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
		c.nodes[0].Read(func(m *fsm.Machine) { live = m.Live() && m.Changes[1].Outcome == fsm.Success })
		return live
	})

	// Proxy 2 refuses version 2: it keeps version 1, NACKs with the error,
	// and the coordinator records it; the others run version 2.
	_, ch := emergency(t, c.url(0), 10)
	waitVersion(t, ps[:2], 2)
	eventually(t, "the NACK recorded", func() bool {
		var p fsm.Proxy
		c.nodes[0].Read(func(m *fsm.Machine) { p = *m.Proxies["proxy-02"] })
		return p.Rejected == 2 && strings.Contains(p.RejectError, "use policy weighted") && p.Version == 1
	})
	var got *fsm.Change
	eventually(t, "the change to end partial", func() bool {
		c.nodes[0].Read(func(m *fsm.Machine) { cc := *m.Changes[ch.ID]; got = &cc })
		return got.Outcome == fsm.Partial
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
	c := newCluster(t, 1, func(o *Options) {
		o.Policy.CanaryFraction = 0.25
		o.Policy.CanaryWindow = directive.Duration(300 * time.Millisecond)
		o.Policy.MinRequests = 10
	})
	c.leader()
	var cp fsm.Policy
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

	normal := func(w float64) uint64 {
		st, b, _ := call(t, "POST", c.url(0)+"/v1/changes", aliceTok, ProposeRequest{Type: fsm.Normal, Reason: "forecast", Directive: weightsDirective(w)})
		var ch fsm.Change
		if st != http.StatusCreated || json.Unmarshal(b, &ch) != nil || ch.State != fsm.Authorize {
			t.Fatalf("propose: %d %s", st, b)
		}
		st, b, _ = call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", c.url(0), ch.ID), bobTok, DecisionRequest{Reason: "ok"})
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
		var s fsm.State
		c.nodes[0].Read(func(m *fsm.Machine) { s = m.Changes[id].State })
		return s == fsm.Closed
	})

	// A bad change: the canary's error rate jumps; Gaia rolls back.
	id = normal(bad)
	var rb uint64
	eventually(t, "the automatic rollback", func() bool {
		c.nodes[0].Read(func(m *fsm.Machine) { rb = m.Changes[id].RolledBackBy })
		return rb != 0
	})
	var failed, rollback fsm.Change
	c.nodes[0].Read(func(m *fsm.Machine) { failed, rollback = *m.Changes[id], *m.Changes[rb] })
	if failed.Outcome != fsm.Failed || !strings.Contains(failed.Detail, "error rate 50.0% on the canary") || rollback.RollbackOf != 2 || rollback.Version != 4 {
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

func TestAuthAndRoles(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	for _, x := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"GET", "/v1/status", "", nil, http.StatusUnauthorized},
		{"GET", "/v1/status", "wrong-token-0123456789", nil, http.StatusUnauthorized},
		{"GET", "/v1/status", viewerTok, nil, http.StatusOK},
		{"POST", "/v1/changes", viewerTok, ProposeRequest{Type: fsm.Normal, Reason: "x", Directive: weightsDirective(1)}, http.StatusForbidden},
		{"POST", directive.WatchPath, aliceTok, directive.WatchRequest{Proxy: "p"}, http.StatusForbidden},
		{"PUT", "/v1/policy", aliceTok, fsm.DefaultPolicy(), http.StatusForbidden},
		{"GET", "/healthz", "", nil, http.StatusOK},
		{"GET", "/metrics", "", nil, http.StatusOK},
	} {
		if st, b, _ := call(t, x.method, c.url(0)+x.path, x.token, x.body); st != x.want {
			t.Errorf("%s %s with %q: %d %s, want %d", x.method, x.path, x.token, st, b, x.want)
		}
	}
}

func TestAPIWorkflow(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	base := c.url(0)
	// An invalid directive is refused with every problem by field.
	bad := weightsDirective(-1)
	bad.Services["catalog"].Admission = &directive.Admission{Min: 10, Cap: 5}
	st, b, _ := call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: fsm.Normal, Reason: "x", Directive: bad})
	var eb directive.ErrorBody
	json.Unmarshal(b, &eb)
	if st != http.StatusUnprocessableEntity || len(eb.Errors) != 2 || eb.Errors[0].Path != "services[catalog].weights[127.0.0.1:9001]" {
		t.Fatalf("invalid: %d %s", st, b)
	}
	// Unknown fields are errors.
	req, _ := http.NewRequest("POST", base+"/v1/changes", strings.NewReader(`{"type": "normal", "reason": "x", "directive": {"schema": 1, "services": {}}, "colour": "red"}`))
	req.Header.Set("Authorization", "Bearer "+aliceTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", resp.StatusCode)
	}
	// propose -> approve -> (no proxies) closed; reject and illegal moves.
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: fsm.Normal, Reason: "peak", Directive: weightsDirective(2), IdempotencyKey: "k"})
	var ch fsm.Change
	json.Unmarshal(b, &ch)
	if st != http.StatusCreated || ch.State != fsm.Authorize {
		t.Fatalf("propose %d %s", st, b)
	}
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: fsm.Normal, Reason: "peak", Directive: weightsDirective(2), IdempotencyKey: "k"})
	var again fsm.Change
	json.Unmarshal(b, &again)
	if again.ID != ch.ID {
		t.Fatalf("idempotent propose made change %d", again.ID)
	}
	if st, b, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", base, ch.ID), aliceTok, DecisionRequest{Reason: "mine"}); st != http.StatusForbidden || !strings.Contains(string(b), "approver role") {
		t.Fatalf("self approve without role: %d %s", st, b)
	}
	if st, _, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", base, ch.ID), bobTok, DecisionRequest{Reason: "ok"}); st != http.StatusOK {
		t.Fatalf("approve: %d", st)
	}
	if st, b, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/reject", base, ch.ID), bobTok, DecisionRequest{Reason: "late"}); st != http.StatusConflict || !strings.Contains(string(b), "roll it back instead") {
		t.Fatalf("reject after close: %d %s", st, b)
	}
	if st, _, _ := call(t, "POST", base+"/v1/changes/99/approve", bobTok, DecisionRequest{Reason: "x"}); st != http.StatusNotFound {
		t.Fatalf("unknown change: %d", st)
	}
	if st, _, _ := call(t, "POST", base+"/v1/changes/1/explode", bobTok, DecisionRequest{Reason: "x"}); st != http.StatusNotFound {
		t.Fatalf("unknown action: %d", st)
	}
	// show: audit trail and diff.
	st, b, _ = call(t, "GET", fmt.Sprintf("%s/v1/changes/%d", base, ch.ID), viewerTok, nil)
	var view ChangeView
	json.Unmarshal(b, &view)
	if st != 200 || view.State != fsm.Closed || len(view.Audit) != 7 || len(view.Diff) != 4 {
		t.Fatalf("show: %d audit %d diff %d\n%s", st, len(view.Audit), len(view.Diff), b)
	}
	// rollback via the API, list, audit, diff between versions.
	st, b, _ = call(t, "POST", base+"/v1/rollback", carolTok, RollbackRequest{Change: ch.ID, Reason: "undo"})
	if st != http.StatusCreated || !strings.Contains(string(b), `"rollback_for": 1`) {
		t.Fatalf("rollback: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/changes?state=open", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"id": 2`) || strings.Contains(string(b), `"id": 1,`) {
		t.Fatalf("list open: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/diff?from=1&to=2", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"path": "services[catalog]`) {
		t.Fatalf("diff: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/audit?change=2", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"who": "carol"`) {
		t.Fatalf("audit: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/directive?version=9", viewerTok, nil)
	if st != http.StatusNotFound || !strings.Contains(string(b), "does not exist (latest is 2)") {
		t.Fatalf("missing version: %d %s", st, b)
	}
	// policy
	p := fsm.DefaultPolicy()
	p.CanaryFraction = 2
	if st, b, _ := call(t, "PUT", base+"/v1/policy", adminTok, p); st != http.StatusUnprocessableEntity || !strings.Contains(string(b), "canary_fraction") {
		t.Fatalf("bad policy: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/status", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"raft_state": "Leader"`) || !strings.Contains(string(b), `"stable": 2`) {
		t.Fatalf("status: %s", b)
	}
	// Conditional proposals: refused unless planned on the stable version.
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: fsm.Normal, Reason: "planned on 1", Directive: weightsDirective(3), IfStable: 1})
	if st != http.StatusConflict || !strings.Contains(string(b), "stable version is 2, not 1") {
		t.Fatalf("if_stable 1: %d %s", st, b)
	}
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: fsm.Normal, Reason: "planned on 2", Directive: weightsDirective(3), IfStable: 2})
	if st != http.StatusCreated || !strings.Contains(string(b), `"if_stable": 2`) {
		t.Fatalf("if_stable 2: %d %s", st, b)
	}
}
