package fsm

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// harness drives a Machine the way the coordinator does: every command gets
// the next index and the harness's clock.
type harness struct {
	t     *testing.T
	m     *Machine
	now   time.Time
	index uint64
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, m: NewMachine(), now: t0}
	h.m.Policy.CanaryFraction = 0 // tests that want canaries turn them on
	// Scripts jump the clock by hours; TestClockClamp tests the bound.
	h.m.Policy.MaxClockStep = directive.Duration(1000 * time.Hour)
	return h
}

var (
	alice = []string{RoleProposer}               // requests changes
	bob   = []string{RoleApprover}               // approves
	carol = []string{RoleProposer, RoleApprover} // on-call: emergencies
	agent = []string{RoleAgent}                  // proxies
	admin = []string{RoleAdmin}                  // everything
)

func (h *harness) apply(c Command) Result {
	h.t.Helper()
	h.index++
	c.At = h.now
	return h.m.Apply(h.index, c)
}

func (h *harness) advance(d time.Duration) Result {
	h.now = h.now.Add(d)
	return h.apply(Command{Op: OpTick})
}

func (h *harness) propose(by string, roles []string, t change.Type, d *directive.Directive, mod ...func(*Propose)) Result {
	p := &Propose{Type: t, Reason: "forecast: flash sale at 12:00", Directive: d}
	for _, f := range mod {
		f(p)
	}
	return h.apply(Command{Op: OpPropose, By: by, Roles: roles, Propose: p})
}

func (h *harness) decide(op Op, by string, roles []string, id uint64) Result {
	return h.apply(Command{Op: op, By: by, Roles: roles, Decision: &Decision{Change: id, Reason: "looked at it"}})
}

// report makes proxies report the versions they run (ACKs).
func (h *harness) report(versions map[string]uint64) {
	h.t.Helper()
	var rs []ProxyReport
	for id, v := range versions {
		rs = append(rs, ProxyReport{Proxy: id, Version: v})
	}
	if r := h.apply(Command{Op: OpReport, By: System, Reports: rs}); r.Err != nil {
		h.t.Fatal(r.Err)
	}
}

func (h *harness) ok(r Result) *change.Change {
	h.t.Helper()
	if r.Err != nil {
		h.t.Fatalf("unexpected error: %v", r.Err)
	}
	return r.Change
}

func (h *harness) state(id uint64) change.State { return h.m.Changes[id].State }

func weights(w map[string]float64, blessed bool) *directive.Directive {
	return &directive.Directive{Schema: 1, Services: map[string]*directive.Service{
		"catalog": {Weights: w, Why: &directive.Why{Model: "gbdt@1", Blessed: blessed}},
	}}
}

func w(n float64) *directive.Directive {
	return weights(map[string]float64{"127.0.0.1:9001": n, "127.0.0.1:9002": 1}, true)
}

func TestLegalTable(t *testing.T) {
	all := []change.State{change.New, change.Assess, change.Authorize, change.Scheduled, change.Implement, change.Review, change.Closed, change.Canceled}
	want := map[string]bool{
		"new>assess": true, "new>canceled": true, "assess>authorize": true, "assess>canceled": true,
		"authorize>scheduled": true, "authorize>canceled": true, "scheduled>implement": true,
		"scheduled>canceled": true, "implement>review": true, "review>closed": true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := Legal(from, to); got != want[string(from)+">"+string(to)] {
				t.Errorf("Legal(%s, %s) = %v", from, to, got)
			}
		}
	}
}

// changeIn brings a fresh change into the given resting state.
func changeIn(t *testing.T, s change.State) (*harness, uint64) {
	h := newHarness(t)
	switch s {
	case change.Authorize:
		return h, h.ok(h.propose("alice", alice, change.Normal, w(2), func(p *Propose) { p.NotBefore = t0.Add(time.Hour) })).ID
	case change.Scheduled:
		id := h.ok(h.propose("alice", alice, change.Normal, w(2), func(p *Propose) { p.NotBefore = t0.Add(time.Hour) })).ID
		h.ok(h.decide(OpApprove, "bob", bob, id))
		return h, id
	case change.Implement:
		h.report(map[string]uint64{"p1": 0}) // a proxy that has not applied it yet
		id := h.ok(h.propose("alice", alice, change.Normal, w(2))).ID
		h.ok(h.decide(OpApprove, "bob", bob, id))
		return h, id
	case change.Review:
		return h, h.ok(h.propose("carol", carol, change.Emergency, w(2))).ID
	case change.Closed:
		id := h.ok(h.propose("alice", alice, change.Normal, w(2))).ID
		h.ok(h.decide(OpApprove, "bob", bob, id))
		return h, id
	case change.Canceled:
		id := h.ok(h.propose("alice", alice, change.Normal, w(2))).ID
		h.ok(h.decide(OpReject, "bob", bob, id))
		return h, id
	}
	t.Fatalf("no recipe for %s", s)
	return nil, 0
}

// TestEveryActionInEveryState tries each person-driven action on a change in
// each resting state: the legal ones move it, the others are refused with
// a conflict and change nothing.
func TestEveryActionInEveryState(t *testing.T) {
	type act struct {
		op    Op
		by    string
		roles []string
	}
	approve := act{OpApprove, "bob", bob}
	reject := act{OpReject, "bob", bob}
	cancel := act{OpCancel, "bob", bob}
	rollback := act{OpRollback, "carol", carol}
	cases := []struct {
		state change.State
		act   act
		want  change.State // "" = refused with a conflict
	}{
		{change.Authorize, approve, change.Scheduled}, {change.Authorize, reject, change.Canceled}, {change.Authorize, cancel, change.Canceled}, {change.Authorize, rollback, ""},
		{change.Scheduled, approve, ""}, {change.Scheduled, reject, ""}, {change.Scheduled, cancel, change.Canceled}, {change.Scheduled, rollback, ""},
		{change.Implement, approve, ""}, {change.Implement, reject, ""}, {change.Implement, cancel, ""}, {change.Implement, rollback, change.Review},
		{change.Review, approve, change.Closed}, {change.Review, reject, ""}, {change.Review, cancel, ""}, {change.Review, rollback, change.Review},
		{change.Closed, approve, ""}, {change.Closed, reject, ""}, {change.Closed, cancel, ""}, {change.Closed, rollback, change.Closed},
		{change.Canceled, approve, ""}, {change.Canceled, reject, ""}, {change.Canceled, cancel, ""}, {change.Canceled, rollback, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s", c.state, c.act.op), func(t *testing.T) {
			h, id := changeIn(t, c.state)
			if got := h.state(id); got != c.state {
				t.Fatalf("recipe left the change in %s", got)
			}
			auditBefore := len(h.m.Audit)
			var r Result
			if c.act.op == OpRollback {
				r = h.apply(Command{Op: OpRollback, By: c.act.by, Roles: c.act.roles, Rollback: &Rollback{Change: id, Reason: "undo"}})
			} else {
				r = h.decide(c.act.op, c.act.by, c.act.roles, id)
			}
			if c.want == "" {
				if r.Err == nil || r.Err.Code != CodeConflict {
					t.Fatalf("want a conflict, got %+v", r)
				}
				if h.state(id) != c.state || len(h.m.Audit) != auditBefore {
					t.Fatalf("a refused action changed the change or the audit log")
				}
				return
			}
			if r.Err != nil {
				t.Fatalf("refused: %v", r.Err)
			}
			if got := h.state(id); got != c.want {
				t.Fatalf("state %s, want %s", got, c.want)
			}
			last := h.m.Audit[len(h.m.Audit)-1]
			if last.Who == "" || last.Why == "" {
				t.Fatalf("audit entry without who or why: %+v", last)
			}
		})
	}
}

func TestRolesAndSeparationOfDuties(t *testing.T) {
	h := newHarness(t)
	if r := h.propose("eve", []string{RoleViewer}, change.Normal, w(2)); r.Err == nil || r.Err.Code != CodeForbidden {
		t.Errorf("viewer proposed: %+v", r)
	}
	if r := h.propose("alice", alice, change.Emergency, w(2)); r.Err == nil || !strings.Contains(r.Err.Msg, "proposer and approver roles") {
		t.Errorf("emergency without approver role: %+v", r)
	}
	id := h.ok(h.propose("carol", carol, change.Normal, w(2))).ID
	if r := h.decide(OpApprove, "alice", alice, id); r.Err == nil || r.Err.Code != CodeForbidden {
		t.Errorf("approval without the role: %+v", r)
	}
	if r := h.decide(OpApprove, "carol", carol, id); r.Err == nil || !strings.Contains(r.Err.Msg, "separation of duties") {
		t.Errorf("self-approval: %+v", r)
	}
	if r := h.decide(OpCancel, "dave", alice, id); r.Err == nil || r.Err.Code != CodeForbidden {
		t.Errorf("a stranger canceled: %+v", r)
	}
	if r := h.decide(OpApprove, "bob", bob, 99); r.Err == nil || r.Err.Code != CodeNotFound {
		t.Errorf("unknown change: %+v", r)
	}
	other := h.ok(h.propose("alice", alice, change.Normal, w(3))).ID
	if r := h.decide(OpCancel, "alice", alice, other); r.Err != nil || r.Change.State != change.Canceled || r.Change.Outcome != change.Withdrawn {
		t.Errorf("requester cancel: %+v", r)
	}
	h.m.Policy.SelfApproval = true
	if r := h.decide(OpApprove, "carol", carol, id); r.Err != nil {
		t.Errorf("self-approval allowed by policy: %v", r.Err)
	}
	c := h.m.Changes[id]
	if len(c.Approvals) != 1 || c.Approvals[0].Who != "carol" || c.Approvals[0].Stage != change.Authorize {
		t.Errorf("approvals %+v", c.Approvals)
	}
}

func TestProposalValidation(t *testing.T) {
	h := newHarness(t)
	bad := w(2)
	bad.Services["catalog"].Weights["127.0.0.1:9001"] = -1
	if r := h.propose("alice", alice, change.Normal, bad); r.Err == nil || r.Err.Code != CodeInvalid || !strings.Contains(r.Err.Msg, "weights[127.0.0.1:9001]") {
		t.Errorf("invalid directive: %+v", r)
	}
	if r := h.propose("alice", alice, "minor", w(2)); r.Err == nil || !strings.Contains(r.Err.Msg, "not a change type") {
		t.Errorf("bad type: %+v", r)
	}
	if r := h.propose("alice", alice, change.Normal, w(2), func(p *Propose) { p.Reason = " " }); r.Err == nil || !strings.Contains(r.Err.Msg, "reason") {
		t.Errorf("no reason: %+v", r)
	}
	if r := h.propose("carol", carol, change.Emergency, w(2), func(p *Propose) { p.NotBefore = t0.Add(time.Hour) }); r.Err == nil {
		t.Errorf("scheduled emergency accepted")
	}
	if len(h.m.Changes) != 0 || h.m.LastChange != 0 {
		t.Errorf("refused proposals left records")
	}
	// Garbage never panics.
	if r := h.apply(Command{Op: "explode"}); r.Err == nil || r.Err.Code != CodeBadCommand {
		t.Errorf("unknown op: %+v", r)
	}
	if r := h.apply(Command{Op: OpApprove, By: "bob", Roles: bob}); r.Err == nil {
		t.Errorf("approve without payload")
	}
}

func TestStandardChangePolicy(t *testing.T) {
	h := newHarness(t)
	// No stable version yet: weights are measured against 1.
	c := h.ok(h.propose("alice", alice, change.Standard, w(1.1)))
	if c.State != change.Closed || c.Version != 1 || c.Outcome != change.Success || h.m.Stable != 1 {
		t.Fatalf("standard change inside the policy: %+v", c)
	}
	// 1.1 -> 1.5 is a 36% move: outside the 20% policy.
	c = h.ok(h.propose("alice", alice, change.Standard, w(1.5)))
	if c.State != change.Canceled || c.Outcome != change.Rejected || !strings.Contains(c.Detail, "36.4% > 20%") || !strings.Contains(c.Detail, "propose it as a normal change") {
		t.Fatalf("outside the policy: %+v", c)
	}
	// Not blessed.
	c = h.ok(h.propose("alice", alice, change.Standard, weights(map[string]float64{"127.0.0.1:9001": 1.2}, false)))
	if c.State != change.Canceled || !strings.Contains(c.Detail, "not blessed") {
		t.Fatalf("unblessed: %+v", c)
	}
	// From weight 0 is unbounded.
	h.ok(h.propose("carol", carol, change.Emergency, w(0)))
	c = h.ok(h.propose("alice", alice, change.Standard, w(0.1)))
	if c.State != change.Canceled || c.Assessment.MaxWeightMovePercent != -1 || !strings.Contains(c.Detail, "unbounded") {
		t.Fatalf("from zero: %+v %+v", c, c.Assessment)
	}
	// The audit log tells the whole story of change 1.
	var story []string
	for _, a := range h.m.Audit {
		if a.Change == 1 {
			story = append(story, fmt.Sprintf("%s>%s by %s", a.From, a.To, a.Who))
		}
	}
	want := ">new by alice, new>assess by gaia, assess>authorize by gaia, authorize>scheduled by gaia, scheduled>implement by gaia, implement>review by gaia, review>closed by gaia"
	if got := strings.Join(story, ", "); got != want {
		t.Fatalf("audit of change 1:\n%s\nwant\n%s", got, want)
	}
}

func TestNormalChangeWaitsForApprovalScheduleAndSlot(t *testing.T) {
	h := newHarness(t)
	h.report(map[string]uint64{"p1": 0, "p2": 0})
	a := h.ok(h.propose("alice", alice, change.Normal, w(2)))
	b := h.ok(h.propose("alice", alice, change.Normal, w(3), func(p *Propose) { p.NotBefore = t0.Add(10 * time.Second) }))
	if a.State != change.Authorize || b.State != change.Authorize {
		t.Fatalf("states %s %s", a.State, b.State)
	}
	h.ok(h.decide(OpApprove, "bob", bob, b.ID))
	h.ok(h.decide(OpApprove, "bob", bob, a.ID))
	if h.state(a.ID) != change.Implement || h.state(b.ID) != change.Scheduled || h.m.Stable != 1 {
		t.Fatalf("a %s b %s stable %d", h.state(a.ID), h.state(b.ID), h.m.Stable)
	}
	if dl := h.m.NextDeadline(); !dl.Equal(h.m.Changes[a.ID].Deadline) && !dl.Before(h.m.Changes[a.ID].Deadline) {
		t.Fatalf("next deadline %v", dl)
	}
	// The proxies apply version 1: a is live and closes; b is not due yet.
	h.report(map[string]uint64{"p1": 1, "p2": 1})
	if h.state(a.ID) != change.Closed || h.state(b.ID) != change.Scheduled {
		t.Fatalf("a %s b %s", h.state(a.ID), h.state(b.ID))
	}
	if !h.m.Live() {
		t.Fatal("version 1 not live")
	}
	if dl := h.m.NextDeadline(); !dl.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("next deadline %v, want b's not_before", dl)
	}
	h.advance(5 * time.Second)
	if h.state(b.ID) != change.Scheduled {
		t.Fatal("b implemented before not_before")
	}
	h.advance(5 * time.Second)
	if h.state(b.ID) != change.Implement || h.m.Stable != 2 || h.m.Latest != 2 {
		t.Fatalf("b %s stable %d", h.state(b.ID), h.m.Stable)
	}
	if tv, canary := h.m.Target("p1"); tv != 2 || canary {
		t.Fatalf("target %d %v", tv, canary)
	}
}

func TestRolloutOutcomes(t *testing.T) {
	t.Run("nack makes it partial", func(t *testing.T) {
		h := newHarness(t)
		h.report(map[string]uint64{"p1": 0, "p2": 0})
		c := h.ok(h.propose("carol", carol, change.Emergency, w(2)))
		h.report(map[string]uint64{"p1": 1})
		h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: "p2", Rejected: 1, Error: "services[catalog]: policy round_robin does not take weights"}}})
		c = h.m.Changes[c.ID]
		if c.State != change.Review || c.Outcome != change.Partial || !strings.Contains(c.Detail, "p2 (services[catalog]: policy round_robin") {
			t.Fatalf("%+v", c)
		}
		if h.m.Audit[len(h.m.Audit)-2].Event != "nack" {
			t.Errorf("NACK not audited: %+v", h.m.Audit[len(h.m.Audit)-2])
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t)
		h.m.Policy.ProxyTTL = directive.Duration(time.Hour)
		h.report(map[string]uint64{"p1": 0})
		c := h.ok(h.propose("carol", carol, change.Emergency, w(2)))
		h.advance(h.m.Policy.RolloutTimeout.Std())
		if c = h.m.Changes[c.ID]; c.Outcome != change.TimedOut || !strings.Contains(c.Detail, "p1 did not apply version 1") {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("a silent proxy drops out", func(t *testing.T) {
		h := newHarness(t)
		h.report(map[string]uint64{"p1": 0, "p2": 0})
		c := h.ok(h.propose("alice", alice, change.Normal, w(2)))
		h.ok(h.decide(OpApprove, "bob", bob, c.ID))
		h.now = h.now.Add(30 * time.Second)
		h.report(map[string]uint64{"p1": 1})
		if h.state(c.ID) != change.Implement {
			t.Fatal("closed while p2 is still active")
		}
		if dl := h.m.NextDeadline(); !dl.Equal(t0.Add(60*time.Second + time.Millisecond)) {
			t.Fatalf("deadline %v: p2's TTL", dl)
		}
		h.advance(31 * time.Second)
		if c = h.m.Changes[c.ID]; c.State != change.Closed || !strings.Contains(c.Detail, "every active proxy (1)") {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("emergency supersedes", func(t *testing.T) {
		h, id := changeIn(t, change.Implement)
		e := h.ok(h.propose("carol", carol, change.Emergency, w(5)))
		old := h.m.Changes[id]
		if old.State != change.Review || old.Outcome != change.Superseded || e.State != change.Implement || h.m.Stable != e.Version || e.Version != 2 {
			t.Fatalf("old %+v new %+v", old, e)
		}
	})
}

func TestRollback(t *testing.T) {
	h := newHarness(t)
	v1 := h.ok(h.propose("carol", carol, change.Emergency, w(2)))
	v2 := h.ok(h.propose("carol", carol, change.Emergency, w(3)))
	if v1.Version != 1 || v2.Version != 2 {
		t.Fatal(v1.Version, v2.Version)
	}
	rb := h.ok(h.apply(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{Change: v2.ID, Reason: "p99 up"}}))
	if rb.Version != 3 || rb.RollbackOf != 1 || rb.RollbackFor != v2.ID || !directive.Equal(h.m.Versions[3], h.m.Versions[1]) || h.m.Versions[3].RollbackOf != 1 {
		t.Fatalf("rollback %+v", rb)
	}
	// To the empty directive (before the first version).
	rb = h.ok(h.apply(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{Change: v1.ID, Reason: "all of it"}}))
	if len(h.m.Versions[rb.Version].Services) != 0 {
		t.Fatalf("rollback to nothing: %+v", h.m.Versions[rb.Version])
	}
	for _, c := range []struct {
		rb   Rollback
		code string
		want string
	}{
		{Rollback{ToVersion: 99, Reason: "x"}, CodeNotFound, "does not exist"},
		{Rollback{Reason: "x"}, CodeInvalid, "give to_version"},
		{Rollback{ToVersion: 1, Change: 1, Reason: "x"}, CodeInvalid, "not both"},
	} {
		if r := h.apply(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &c.rb}); r.Err == nil || r.Err.Code != c.code || !strings.Contains(r.Err.Msg, c.want) {
			t.Errorf("%+v: %+v", c.rb, r.Err)
		}
	}
	// A normal rollback waits for approval like any change.
	r := h.ok(h.apply(Command{Op: OpRollback, By: "alice", Roles: alice, Rollback: &Rollback{ToVersion: 2, Type: change.Normal, Reason: "again"}}))
	if r.State != change.Authorize {
		t.Fatalf("normal rollback %s", r.State)
	}
	// History pruning keeps the rollback target range honest.
	h.m.Policy.HistoryLimit = 2
	for i := 0; i < 3; i++ {
		h.ok(h.propose("carol", carol, change.Emergency, w(float64(i+4))))
	}
	if r := h.apply(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{ToVersion: 1, Reason: "x"}}); r.Err == nil || !strings.Contains(r.Err.Msg, "no longer kept") {
		t.Errorf("pruned version: %+v", r.Err)
	}
}

func TestIdempotencyKeyAndClock(t *testing.T) {
	h := newHarness(t)
	a := h.ok(h.propose("carol", carol, change.Emergency, w(2), func(p *Propose) { p.Key = "k1" }))
	b := h.ok(h.propose("carol", carol, change.Emergency, w(3), func(p *Propose) { p.Key = "k1" }))
	if a.ID != b.ID || h.m.Latest != 1 {
		t.Fatalf("duplicate key made a second change: %d %d", a.ID, b.ID)
	}
	// A command stamped earlier (a new leader with a slow clock) does not
	// move time backwards.
	h.now = t0.Add(-time.Hour)
	h.apply(Command{Op: OpTick})
	if !h.m.Now.Equal(t0) {
		t.Fatalf("clock went back to %v", h.m.Now)
	}
}

// canaryFleet sets up 4 proxies running version 1 and a canary policy.
func canaryFleet(t *testing.T) *harness {
	h := newHarness(t)
	h.m.Policy.CanaryFraction = 0.25
	h.m.Policy.CanaryWindow = directive.Duration(10 * time.Second)
	h.report(map[string]uint64{"p1": 0, "p2": 0, "p3": 0, "p4": 0})
	h.ok(h.propose("carol", carol, change.Emergency, w(1)))
	h.report(map[string]uint64{"p1": 1, "p2": 1, "p3": 1, "p4": 1})
	h.ok(h.decide(OpApprove, "bob", bob, 1)) // review of the emergency
	return h
}

func stats(proxy string, version uint64, reqs, errs int64, p99 float64) ProxyReport {
	return ProxyReport{Proxy: proxy, Version: version, Stats: &directive.Report{Proxy: proxy, Version: version,
		Services: map[string]directive.ServiceStats{"catalog": {Requests: reqs, Errors: errs, P99Ms: p99}}}}
}

func TestCanaryPromote(t *testing.T) {
	h := canaryFleet(t)
	c := h.ok(h.propose("alice", alice, change.Normal, w(1.5)))
	h.ok(h.decide(OpApprove, "bob", bob, c.ID))
	cn := h.m.Canary
	if cn == nil || len(cn.Proxies) != 1 || cn.Version != 2 || cn.Base != 1 || h.m.Stable != 1 {
		t.Fatalf("canary %+v stable %d", cn, h.m.Stable)
	}
	cp := cn.Proxies[0]
	if v, canary := h.m.Target(cp); v != 2 || !canary {
		t.Fatalf("canary proxy target %d %v", v, canary)
	}
	other := map[string]bool{"p1": true, "p2": true, "p3": true, "p4": true}
	delete(other, cp)
	for id := range other {
		if v, canary := h.m.Target(id); v != 1 || canary {
			t.Fatalf("baseline proxy %s target %d %v", id, v, canary)
		}
	}
	h.now = h.now.Add(time.Second)
	h.report(map[string]uint64{cp: 2})
	if cn.StartedAt.IsZero() || !h.m.NextDeadline().Equal(cn.StartedAt.Add(10*time.Second)) {
		t.Fatalf("window not started: %+v, next %v", cn, h.m.NextDeadline())
	}
	var rs []ProxyReport
	rs = append(rs, stats(cp, 2, 500, 2, 40))
	for id := range other {
		rs = append(rs, stats(id, 1, 500, 1, 38))
	}
	h.apply(Command{Op: OpReport, By: System, Reports: rs})
	h.advance(9 * time.Second)
	if h.m.Canary == nil {
		t.Fatal("promoted before the window ended")
	}
	h.advance(time.Second)
	if h.m.Canary != nil || h.m.Stable != 2 || h.state(c.ID) != change.Implement {
		t.Fatalf("not promoted: stable %d state %s", h.m.Stable, h.state(c.ID))
	}
	h.report(map[string]uint64{"p1": 2, "p2": 2, "p3": 2, "p4": 2})
	if c := h.m.Changes[c.ID]; c.State != change.Closed || c.Outcome != change.Success {
		t.Fatalf("%+v", c)
	}
	var events []string
	for _, a := range h.m.Audit {
		if a.Change == c.ID && a.Event != "transition" {
			events = append(events, a.Event)
		}
	}
	if strings.Join(events, ",") != "canary,promote" {
		t.Errorf("events %v", events)
	}
}

func TestCanaryRegressionRollsBack(t *testing.T) {
	for _, c := range []struct {
		name       string
		canary     ProxyReport
		wantDetail string
	}{
		{"errors", stats("", 2, 500, 150, 40), "error rate 30.0% on the canary vs 0.2% on the baseline"},
		{"latency", stats("", 2, 500, 1, 400), "p99 400 ms on the canary vs 38 ms on the baseline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := canaryFleet(t)
			ch := h.ok(h.propose("alice", alice, change.Normal, w(1.5)))
			h.ok(h.decide(OpApprove, "bob", bob, ch.ID))
			cp := h.m.Canary.Proxies[0]
			h.report(map[string]uint64{cp: 2})
			rep := c.canary
			rep.Proxy, rep.Stats.Proxy = cp, cp
			rs := []ProxyReport{rep}
			for _, id := range []string{"p1", "p2", "p3", "p4"} {
				if id != cp {
					rs = append(rs, stats(id, 1, 500, 1, 38))
				}
			}
			h.apply(Command{Op: OpReport, By: System, Reports: rs})
			h.advance(10 * time.Second)
			got := h.m.Changes[ch.ID]
			if got.State != change.Review || got.Outcome != change.Failed || !strings.Contains(got.Detail, c.wantDetail) {
				t.Fatalf("change %+v", got)
			}
			rb := h.m.Changes[got.RolledBackBy]
			if rb == nil || rb.Type != change.Emergency || rb.Requester != System || rb.State != change.Implement || rb.RollbackOf != 1 || rb.RollbackFor != ch.ID {
				t.Fatalf("rollback %+v", rb)
			}
			if h.m.Stable != 3 || h.m.Canary != nil || !directive.Equal(h.m.Versions[3], h.m.Versions[1]) {
				t.Fatalf("stable %d", h.m.Stable)
			}
			for _, id := range []string{"p1", "p2", "p3", "p4"} {
				if v, _ := h.m.Target(id); v != 3 {
					t.Fatalf("%s target %d", id, v)
				}
			}
			h.report(map[string]uint64{"p1": 3, "p2": 3, "p3": 3, "p4": 3})
			if rb := h.m.Changes[rb.ID]; rb.State != change.Review || rb.Outcome != change.Success {
				t.Fatalf("rollback should wait for its review: %+v", rb)
			}
		})
	}
}

func TestCanaryNACKAndTimeoutRollBack(t *testing.T) {
	h := canaryFleet(t)
	ch := h.ok(h.propose("alice", alice, change.Normal, w(1.5)))
	h.ok(h.decide(OpApprove, "bob", bob, ch.ID))
	cp := h.m.Canary.Proxies[0]
	h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: cp, Version: 1, Rejected: 2, Error: "admission: no admission control"}}})
	if got := h.m.Changes[ch.ID]; got.Outcome != change.Failed || !strings.Contains(got.Detail, "refused version 2: admission") || h.m.Stable != 3 {
		t.Fatalf("NACK: %+v", got)
	}

	h = canaryFleet(t)
	h.m.Policy.ProxyTTL = directive.Duration(time.Hour)
	ch = h.ok(h.propose("alice", alice, change.Normal, w(1.5)))
	h.ok(h.decide(OpApprove, "bob", bob, ch.ID))
	h.advance(h.m.Policy.RolloutTimeout.Std())
	if got := h.m.Changes[ch.ID]; got.Outcome != change.Failed || !strings.Contains(got.Detail, "did not apply version 2") {
		t.Fatalf("timeout: %+v", got)
	}
}

func TestCanaryNotEnoughTraffic(t *testing.T) {
	h := canaryFleet(t)
	ch := h.ok(h.propose("alice", alice, change.Normal, w(1.5)))
	h.ok(h.decide(OpApprove, "bob", bob, ch.ID))
	cp := h.m.Canary.Proxies[0]
	h.report(map[string]uint64{cp: 2})
	h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{stats(cp, 2, 5, 5, 999)}})
	h.advance(10 * time.Second)
	if h.m.Stable != 2 {
		t.Fatal("too few requests to judge should promote (no evidence of regression)")
	}
}

// TestDeterminismAndSnapshot applies one script to two machines, one of
// which is snapshotted and restored half way: both end byte-identical.
func TestDeterminismAndSnapshot(t *testing.T) {
	script := func(h *harness, mid func()) {
		h.m.Policy.CanaryFraction = 0.5
		h.report(map[string]uint64{"a": 0, "b": 0, "c": 0})
		h.ok(h.propose("alice", alice, change.Standard, w(1.1)))
		h.report(map[string]uint64{"a": 1, "b": 1, "c": 1})
		id := h.ok(h.propose("alice", alice, change.Normal, w(1.3))).ID
		mid()
		h.ok(h.decide(OpApprove, "bob", bob, id))
		h.advance(time.Second)
		h.apply(Command{Op: OpMember, By: System, Member: &change.Member{ID: "n1", RaftAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:7101"}})
		h.ok(h.propose("carol", carol, change.Emergency, w(0.5)))
		h.advance(time.Minute)
	}
	h1 := newHarness(t)
	script(h1, func() {})
	h2 := newHarness(t)
	script(h2, func() {
		b, err := h2.m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := m.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatal("snapshot round trip is not byte-identical")
		}
		h2.m = m
	})
	b1, _ := h1.m.Marshal()
	b2, _ := h2.m.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Fatalf("replicas diverged:\n%s\n%s", b1, b2)
	}
	if h1.m.Latest != 3 {
		t.Fatalf("latest %d", h1.m.Latest)
	}
}

// TestVersionsOnlyGrow: whatever happens, every implemented change gets a
// version above all earlier ones.
func TestVersionsOnlyGrow(t *testing.T) {
	h := canaryFleet(t)
	last := h.m.Latest
	for i := 0; i < 20; i++ {
		var r Result
		switch i % 4 {
		case 0:
			r = h.propose("carol", carol, change.Emergency, w(float64(i)+1))
		case 1:
			r = h.apply(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{ToVersion: 1, Reason: "x"}})
		case 2:
			id := h.ok(h.propose("alice", alice, change.Normal, w(float64(i)+2))).ID
			r = h.decide(OpApprove, "bob", bob, id)
		case 3:
			r = h.advance(time.Hour)
		}
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if h.m.Latest < last || h.m.Stable > h.m.Latest {
			t.Fatalf("latest %d after %d, stable %d", h.m.Latest, last, h.m.Stable)
		}
		last = h.m.Latest
	}
}

// A change proposed with if_stable N is refused when the stable version is
// not N, and canceled as stale, waiting for approval or for its turn, once
// another change makes a later version stable; with the condition still
// true it goes through as usual.
func TestIfStable(t *testing.T) {
	h := newHarness(t)
	h.ok(h.propose("carol", carol, change.Emergency, w(2)))
	if h.m.Stable != 1 {
		t.Fatalf("stable %d, want 1", h.m.Stable)
	}
	before := h.m.LastChange
	r := h.propose("alice", alice, change.Standard, w(2.1), func(p *Propose) { p.IfStable = 7 })
	if r.Err == nil || r.Err.Code != CodeConflict || !strings.Contains(r.Err.Msg, "stable version is 1, not 7") {
		t.Fatalf("want a conflict naming both versions, got %+v", r.Err)
	}
	if h.m.LastChange != before {
		t.Fatal("a refused proposal created a change")
	}

	a := h.ok(h.propose("alice", alice, change.Normal, w(3), func(p *Propose) { p.IfStable = 1 }))
	b := h.ok(h.propose("alice", alice, change.Normal, w(4), func(p *Propose) {
		p.IfStable = 1
		p.NotBefore = t0.Add(time.Minute)
	}))
	h.ok(h.decide(OpApprove, "bob", bob, b.ID))
	if h.state(a.ID) != change.Authorize || h.state(b.ID) != change.Scheduled || a.IfStable != 1 {
		t.Fatalf("a %s b %s if_stable %d", h.state(a.ID), h.state(b.ID), a.IfStable)
	}
	// Someone else's change becomes stable first.
	c := h.ok(h.propose("carol", carol, change.Emergency, w(5)))
	if h.m.Stable != 2 || c.Version != 2 {
		t.Fatalf("stable %d, c version %d", h.m.Stable, c.Version)
	}
	for _, id := range []uint64{a.ID, b.ID} {
		ch := h.m.Changes[id]
		if ch.State != change.Canceled || ch.Outcome != change.Stale || !strings.Contains(ch.Detail, "from 1 to 2") {
			t.Fatalf("change %d: %s %s %q, want canceled as stale", id, ch.State, ch.Outcome, ch.Detail)
		}
	}
	// The stale ones are canceled in order of ID, by the system.
	var order []uint64
	for _, e := range h.m.Audit {
		if e.To == change.Canceled {
			order = append(order, e.Change)
			if e.Who != System {
				t.Fatalf("stale cancel by %q", e.Who)
			}
		}
	}
	if fmt.Sprint(order) != fmt.Sprint([]uint64{a.ID, b.ID}) {
		t.Fatalf("cancel order %v", order)
	}
	h.advance(2 * time.Minute)
	if h.m.Latest != 2 {
		t.Fatalf("a stale change was implemented: latest %d", h.m.Latest)
	}
	// Planned on the current stable version: implemented.
	d := h.ok(h.propose("alice", alice, change.Normal, w(6), func(p *Propose) { p.IfStable = 2 }))
	h.ok(h.decide(OpApprove, "bob", bob, d.ID))
	if dc := h.m.Changes[d.ID]; dc.Version != 3 || h.m.Stable != 3 || dc.Outcome != change.Success {
		t.Fatalf("d %s version %d outcome %s, stable %d", dc.State, dc.Version, dc.Outcome, h.m.Stable)
	}
}
