package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// TestFleetNACKAfterAnUnreportedVersion: an emergency change follows the
// last one before any proxy reported on it, and every proxy refuses it.
// Their reports (running version 1, refusing 2) come only then: version 1
// is what the fleet runs, so the stable version goes back to 1, not to the
// 0 of before version 1 (which would send new proxies no directive). Local
// CI's TestFleetNACKNewProxyGetsLastGood met this order once.
func TestFleetNACKAfterAnUnreportedVersion(t *testing.T) {
	h := newHarness(t)
	h.report(map[string]uint64{"p1": 0, "p2": 0})
	h.ok(h.propose("carol", carol, change.Emergency, w(2)))
	bad := h.ok(h.propose("carol", carol, change.Emergency, w(3)))
	if h.m.Stable != 2 || h.m.LastGood != 0 {
		t.Fatalf("before any report: stable %d last good %d", h.m.Stable, h.m.LastGood)
	}
	h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{
		{Proxy: "p1", Version: 1, Rejected: 2, Error: "no"}, {Proxy: "p2", Version: 1, Rejected: 2, Error: "no"}}})
	got := h.m.Changes[bad.ID]
	if got.Outcome != change.Failed || !strings.Contains(got.Detail, "goes back to 1") {
		t.Fatalf("fleet NACK: %+v", got)
	}
	if h.m.Stable != 1 || h.m.LastGood != 1 {
		t.Fatalf("after the fleet NACK: stable %d last good %d, want 1 and 1", h.m.Stable, h.m.LastGood)
	}
	if v, _ := h.m.Target("p3-new"); v != 1 {
		t.Fatalf("a new proxy's target is %d, want 1", v)
	}
}

// TestFleetNACKKeepsTheStableVersion (issue #13 item 8): when every
// active proxy refuses a version, the stable version goes back to the last
// version the fleet acknowledged, so a proxy that starts afterwards gets
// one that works instead of the refused one (which it would refuse too,
// and run without a directive).
func TestFleetNACKKeepsTheStableVersion(t *testing.T) {
	h := newHarness(t)
	h.report(map[string]uint64{"p1": 0, "p2": 0})
	h.ok(h.propose("carol", carol, change.Emergency, w(2)))
	h.report(map[string]uint64{"p1": 1, "p2": 1})
	if h.m.Stable != 1 || h.m.LastGood != 1 || !h.m.Live() {
		t.Fatalf("version 1: stable %d last good %d live %v", h.m.Stable, h.m.LastGood, h.m.Live())
	}
	bad := h.ok(h.propose("carol", carol, change.Emergency, w(3)))
	if h.m.Stable != 2 || h.m.LastGood != 1 {
		t.Fatalf("during the rollout: stable %d last good %d", h.m.Stable, h.m.LastGood)
	}
	nack := func(p string) {
		h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: p, Version: 1, Rejected: 2, Error: "services[catalog]: policy round_robin does not take weights"}}})
	}
	nack("p1")
	nack("p2")
	got := h.m.Changes[bad.ID]
	if got.State != change.Review || got.Outcome != change.Failed || !strings.Contains(got.Detail, "refused by every active proxy") || !strings.Contains(got.Detail, "goes back to 1") {
		t.Fatalf("fleet NACK: %+v", got)
	}
	if h.m.Stable != 1 || h.m.LastGood != 1 || h.m.Latest != 2 {
		t.Fatalf("after the fleet NACK: stable %d last good %d latest %d", h.m.Stable, h.m.LastGood, h.m.Latest)
	}
	// A new proxy gets version 1, and the fleet is live on it.
	if v, _ := h.m.Target("p3-new"); v != 1 {
		t.Fatalf("a new proxy's target is %d, want the fleet-acknowledged 1", v)
	}
	h.report(map[string]uint64{"p3-new": 1})
	if !h.m.Live() {
		t.Fatal("not live on version 1")
	}

	// One ACK is enough for a version to count as acknowledged; a partial
	// rollout keeps it stable.
	part := h.ok(h.propose("carol", carol, change.Emergency, w(4)))
	h.report(map[string]uint64{"p1": 3})
	if h.m.Stable != 3 || h.m.LastGood != 3 {
		t.Fatalf("after one ACK: stable %d last good %d", h.m.Stable, h.m.LastGood)
	}
	h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: "p2", Version: 1, Rejected: 3, Error: "no"}, {Proxy: "p3-new", Version: 1, Rejected: 3, Error: "no"}}})
	if got := h.m.Changes[part.ID]; got.Outcome != change.Partial || h.m.Stable != 3 {
		t.Fatalf("partial: %+v stable %d", got, h.m.Stable)
	}
	// The last good version is kept however old it gets.
	h.m.Policy.HistoryLimit = 2
	for i := 0; i < 3; i++ {
		h.ok(h.propose("carol", carol, change.Emergency, w(float64(5+i))))
		h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: "p1", Version: 3, Rejected: h.m.Latest, Error: "no"}, {Proxy: "p2", Version: 1, Rejected: h.m.Latest, Error: "no"}, {Proxy: "p3-new", Version: 1, Rejected: h.m.Latest, Error: "no"}}})
	}
	if h.m.Stable != 3 || h.m.Versions[3] == nil {
		t.Fatalf("stable %d, version 3 kept: %v", h.m.Stable, h.m.Versions[3] != nil)
	}
}

// TestTimeoutAfterRefusalsKeepsStable: refused by some, applied by none,
// silent others at the deadline: back to the last good version too.
func TestTimeoutAfterRefusalsKeepsStable(t *testing.T) {
	h := newHarness(t)
	h.m.Policy.ProxyTTL = directive.Duration(time.Hour)
	h.report(map[string]uint64{"p1": 0, "p2": 0})
	c := h.ok(h.propose("carol", carol, change.Emergency, w(2)))
	h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: "p1", Rejected: 1, Error: "no"}}})
	h.advance(h.m.Policy.RolloutTimeout.Std())
	if got := h.m.Changes[c.ID]; got.Outcome != change.TimedOut || !strings.Contains(got.Detail, "applied by none") || h.m.Stable != 0 {
		t.Fatalf("%+v stable %d", got, h.m.Stable)
	}
}

// TestClosedChangesAreArchived (item 12): the state keeps open changes and
// the newest ClosedChangeLimit closed ones; older records leave it (for the
// caller's archive) in the order they closed, survive no snapshot, and an
// idempotency key of an archived change is refused with a clear error.
func TestClosedChangesAreArchived(t *testing.T) {
	h := newHarness(t)
	h.m.Policy.ClosedChangeLimit = 10
	open := h.ok(h.propose("alice", alice, change.Normal, w(9), func(p *Propose) { p.Key = "open" })) // waits for approval
	var archived []*change.Change
	for i := 0; i < 25; i++ {
		c := h.ok(h.propose("alice", alice, change.Normal, w(float64(2+i%3)), func(p *Propose) { p.Key = fmt.Sprintf("k%d", i) }))
		h.ok(h.decide(OpApprove, "bob", bob, c.ID))
		archived = append(archived, h.m.TakeArchived()...)
	}
	if len(h.m.Changes) != 11 || len(h.m.ClosedOrder) != 10 || h.m.Changes[open.ID] == nil {
		t.Fatalf("%d changes kept (closed order %d); want 10 closed + 1 open", len(h.m.Changes), len(h.m.ClosedOrder))
	}
	if len(archived) != 15 || archived[0].ID != 2 || archived[14].ID != 16 || archived[0].State != change.Closed {
		t.Fatalf("archived %d records, first %+v", len(archived), archived[0])
	}
	if h.m.TakeArchived() != nil {
		t.Fatal("TakeArchived did not forget")
	}
	r := h.propose("alice", alice, change.Normal, w(2), func(p *Propose) { p.Key = "k0" })
	if r.Err == nil || r.Err.Code != CodeConflict || !strings.Contains(r.Err.Msg, "archived") {
		t.Fatalf("key of an archived change: %+v", r)
	}
	// The snapshot holds only what is kept, and restores the indexes.
	b, _ := h.m.Marshal()
	m, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Changes) != 11 || len(m.pending) != 1 || !m.pending[open.ID] {
		t.Fatalf("restored %d changes, pending %v", len(m.Changes), m.pending)
	}
}

// TestSnapshotSizeIsBounded: the snapshot stops growing with the number of
// changes (it was 9.5 MB at 10,000 changes and grew linearly).
func TestSnapshotSizeIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 15,000 changes")
	}
	size := func(n int) int {
		// 10 s apart, so that keys older than their 24 h TTL expire.
		m, _, _ := machineWithChanges(t, n, 10*time.Second)
		b, _ := m.Marshal()
		if len(m.Changes) > m.Policy.ClosedChangeLimit+1 {
			t.Fatalf("%d changes kept after %d", len(m.Changes), n)
		}
		return len(b)
	}
	s5, s10 := size(5000), size(10000)
	if float64(s10) > 1.05*float64(s5) {
		t.Fatalf("snapshot %d bytes after 5,000 changes, %d after 10,000: still growing", s5, s10)
	}
	t.Logf("snapshot: %.2f MB after 5,000 changes, %.2f MB after 10,000", float64(s5)/1e6, float64(s10)/1e6)
}

// TestIdempotencyKeysExpireAndAreScoped (items 11 and 12): a key answers
// retries for IdempotencyKeyTTL of log time, then is forgotten; keys are
// per principal.
func TestIdempotencyKeysExpireAndAreScoped(t *testing.T) {
	h := newHarness(t)
	a := h.ok(h.propose("carol", carol, change.Emergency, w(2), func(p *Propose) { p.Key = "k" }))
	h.advance(23 * time.Hour)
	if b := h.ok(h.propose("carol", carol, change.Emergency, w(3), func(p *Propose) { p.Key = "k" })); b.ID != a.ID {
		t.Fatalf("retry within the TTL made change %d", b.ID)
	}
	other := h.ok(h.propose("dave", carol, change.Emergency, w(3), func(p *Propose) { p.Key = "k" }))
	if other.ID == a.ID {
		t.Fatal("another principal's key answered dave's proposal")
	}
	h.advance(2 * time.Hour)
	if _, ok := h.m.Keys[scopedKey("carol", "k")]; ok {
		t.Fatal("key not expired after 25h")
	}
	if c := h.ok(h.propose("carol", carol, change.Emergency, w(3), func(p *Propose) { p.Key = "k" })); c.ID == a.ID {
		t.Fatal("an expired key still answered")
	}
	if r := h.propose("carol", carol, change.Emergency, w(3), func(p *Propose) { p.Key = strings.Repeat("x", 200) }); r.Err == nil || r.Err.Code != CodeInvalid {
		t.Fatalf("a 200-byte key: %+v", r.Err)
	}
}

// TestDecisionsAreIdempotent (item 11): a retried approve with the same key
// answers with the change instead of a conflict, and decides once.
func TestDecisionsAreIdempotent(t *testing.T) {
	h := newHarness(t)
	c := h.ok(h.propose("alice", alice, change.Normal, w(2)))
	approve := func(id uint64) Result {
		return h.apply(Command{Op: OpApprove, By: "bob", Roles: bob, Decision: &Decision{Change: id, Reason: "ok", Key: "approve-1"}})
	}
	first := h.ok(approve(c.ID))
	again := h.ok(approve(c.ID))
	if first.State != change.Closed || again.ID != c.ID || again.State != change.Closed || len(again.Approvals) != 1 {
		t.Fatalf("first %+v again %+v", first, again)
	}
	if r := h.decide(OpApprove, "bob", bob, c.ID); r.Err == nil || r.Err.Code != CodeConflict {
		t.Fatalf("approve without a key after close: %+v", r.Err)
	}
	d := h.ok(h.propose("alice", alice, change.Normal, w(3)))
	if r := approve(d.ID); r.Err == nil || !strings.Contains(r.Err.Msg, "not 2") {
		t.Fatalf("the same key on another change: %+v", r.Err)
	}
}

// TestClockClamp (item 12): one entry cannot move the clock more than
// MaxClockStep ahead, so a leader with a clock a year ahead cannot time a
// rollout out; the clock never goes back; the first clamp of a run is
// audited.
func TestClockClamp(t *testing.T) {
	h := newHarness(t)
	h.m.Policy.MaxClockStep = directive.Duration(time.Minute)
	h.m.Policy.ProxyTTL = directive.Duration(time.Hour)
	h.report(map[string]uint64{"p1": 0})
	c := h.ok(h.propose("carol", carol, change.Emergency, w(2)))
	h.now = t0.Add(365 * 24 * time.Hour)
	r := h.apply(Command{Op: OpTick})
	if !h.m.Now.Equal(t0.Add(time.Minute)) || r.Clamped <= 0 {
		t.Fatalf("clock %v after a far-future entry (clamped %v)", h.m.Now, r.Clamped)
	}
	if got := h.m.Changes[c.ID]; got.State != change.Implement {
		t.Fatalf("one far-future entry ended the rollout: %+v", got)
	}
	h.apply(Command{Op: OpTick})
	clocks := 0
	for _, a := range h.m.Audit {
		if a.Event == "clock" {
			clocks++
			if !strings.Contains(a.Why, "check the leader's clock") {
				t.Errorf("audit: %s", a.Why)
			}
		}
	}
	if clocks != 1 || h.m.ClockClamps != 2 || !h.m.Now.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("%d clock audits, %d clamps, clock %v", clocks, h.m.ClockClamps, h.m.Now)
	}
	h.now = t0
	h.apply(Command{Op: OpTick})
	if !h.m.Now.Equal(t0.Add(2*time.Minute)) || h.m.Clamping {
		t.Fatalf("clock %v clamping %v", h.m.Now, h.m.Clamping)
	}
	if h.m.KeepAliveDue(t0.Add(2*time.Minute+20*time.Second)) || !h.m.KeepAliveDue(t0.Add(2*time.Minute+30*time.Second)) {
		t.Fatal("keep-alive tick due at half the clock step")
	}
}

// TestCanaryAbortsEarly (Low): an egregious regression stops the canary at
// the next report, without waiting for the window to end; a moderate one
// waits for the end of the window.
func TestCanaryAbortsEarly(t *testing.T) {
	for _, c := range []struct {
		name      string
		canary    ProxyReport
		wantEarly string
	}{
		{"error rate", stats("", 2, 100, 80, 40), "error rate 80.0% on the canary (100 requests)"},
		{"p99", stats("", 2, 100, 0, 900), "p99 900 ms on the canary vs 38 ms"},
		{"moderate", stats("", 2, 100, 30, 40), ""},
		{"too few requests", stats("", 2, 10, 10, 40), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := canaryFleet(t)
			h.m.Policy.CanaryWindow = directive.Duration(time.Hour)
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
			h.now = h.now.Add(time.Second)
			h.apply(Command{Op: OpReport, By: System, Reports: rs})
			got := h.m.Changes[ch.ID]
			if c.wantEarly == "" {
				if got.State != change.Implement {
					t.Fatalf("aborted: %+v", got)
				}
				return
			}
			if got.Outcome != change.Failed || !strings.Contains(got.Detail, "aborted before the end of its window") || !strings.Contains(got.Detail, c.wantEarly) || got.RolledBackBy == 0 {
				t.Fatalf("not aborted early: %+v", got)
			}
		})
	}
}

var (
	clusterKey = []byte("0123456789abcdef0123456789abcdef")
	otherKey   = []byte("fedcba9876543210fedcba9876543210")
)

func sealed(t testing.TB, key []byte, c Command) []byte {
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return Seal(key, b)
}

// TestSealedEntries (item 2): once the cluster recorded its key ID, only
// entries sealed with the cluster key apply; a bare or forged entry, by
// whatever principal it claims, changes nothing (not even the clock); an
// entry sealed with another key makes the replica report a key mismatch.
func TestSealedEntries(t *testing.T) {
	m := NewMachine()
	m.Policy.CanaryFraction = 0
	if err := m.SetKey(clusterKey); err != nil {
		t.Fatal(err)
	}
	// Before the key ID is recorded, bare entries apply (a development
	// cluster, or entries from before sealing); versions get the cluster.
	if r := m.ApplyEntry(1, mustEncode(t, Command{Op: OpPropose, At: t0, By: "carol", Roles: carol, Propose: &Propose{Type: change.Emergency, Reason: "r", Directive: w(2)}})); r.Err != nil {
		t.Fatal(r.Err)
	}
	// A bare OpCluster cannot record a key ID.
	if r := m.ApplyEntry(2, mustEncode(t, Command{Op: OpCluster, At: t0, By: System, Cluster: &ClusterInfo{ID: "c1", KeyID: KeyID(otherKey)}})); r.Err == nil || r.Err.Code != CodeUnauthenticated {
		t.Fatalf("bare key ID: %+v", r.Err)
	}
	if r := m.ApplyEntry(3, sealed(t, clusterKey, Command{Op: OpCluster, At: t0, By: System, Cluster: &ClusterInfo{ID: "c1", KeyID: KeyID(clusterKey)}})); r.Err != nil {
		t.Fatal(r.Err)
	}
	if m.Cluster != "c1" || m.KeyID != KeyID(clusterKey) || m.Versions[1].Cluster != "c1" {
		t.Fatalf("cluster %q key %q version 1's cluster %q", m.Cluster, m.KeyID, m.Versions[1].Cluster)
	}
	before, _ := m.Marshal()
	forged := Command{Op: OpPropose, At: t0.Add(time.Hour), By: "mallory", Roles: []string{RoleAdmin}, Propose: &Propose{Type: change.Emergency, Reason: "pwned", Directive: w(99)}}
	bad := sealed(t, clusterKey, forged)
	bad[len(bad)-3] ^= 1 // tampered after sealing
	fake := Seal(otherKey, mustEncode(t, forged))
	copy(fake[len(sealMagic):], KeyID(clusterKey)) // claims the right key ID
	for i, c := range []struct {
		name  string
		entry []byte
		code  string
	}{
		{"bare", mustEncode(t, forged), CodeUnauthenticated},
		{"tampered", bad, CodeUnauthenticated},
		{"wrong MAC", fake, CodeUnauthenticated},
		{"other key", Seal(otherKey, mustEncode(t, forged)), CodeKeyMismatch},
		{"garbage header", []byte(sealMagic + "zz\n{}"), CodeUnauthenticated},
	} {
		r := m.ApplyEntry(uint64(10+i), c.entry)
		if r.Err == nil || r.Err.Code != c.code {
			t.Errorf("%s: %+v, want %s", c.name, r.Err, c.code)
		}
	}
	after, _ := m.Marshal()
	if !bytes.Equal(before, after) {
		t.Fatalf("refused entries changed the state:\n%s\n%s", before, after)
	}
	// The same command, sealed with the key, applies.
	if r := m.ApplyEntry(20, sealed(t, clusterKey, Command{Op: OpPropose, At: t0, By: "carol", Roles: carol, Propose: &Propose{Type: change.Emergency, Reason: "r", Directive: w(3)}})); r.Err != nil || r.Version != 2 || m.Versions[2].Cluster != "c1" {
		t.Fatalf("sealed proposal: %+v", r)
	}
	// The identity is set once; the key cannot be swapped.
	if r := m.ApplyEntry(21, sealed(t, clusterKey, Command{Op: OpCluster, At: t0, By: System, Cluster: &ClusterInfo{ID: "c2"}})); r.Err == nil || r.Err.Code != CodeConflict {
		t.Fatalf("second cluster ID: %+v", r.Err)
	}
	if r := m.ApplyEntry(22, sealed(t, clusterKey, Command{Op: OpCluster, At: t0, By: "admin", Roles: admin, Cluster: &ClusterInfo{ID: "c1"}})); r.Err == nil || r.Err.Code != CodeForbidden {
		t.Fatalf("cluster by a person: %+v", r.Err)
	}
	// A replica without the key cannot verify: key mismatch, not a silent
	// divergence.
	keyless := NewMachine()
	if r := keyless.ApplyEntry(1, sealed(t, clusterKey, Command{Op: OpTick, At: t0, By: System})); r.Err == nil || r.Err.Code != CodeKeyMismatch {
		t.Fatalf("keyless replica: %+v", r.Err)
	}
	if err := m.SetKey([]byte("short")); err == nil {
		t.Fatal("a 5-byte key accepted")
	}
}

func mustEncode(t testing.TB, c Command) []byte {
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOldSnapshotsRestore: snapshots from before the archive and key
// expiry get those fields rebuilt.
func TestOldSnapshotsRestore(t *testing.T) {
	h := newHarness(t)
	c := h.ok(h.propose("alice", alice, change.Normal, w(2), func(p *Propose) { p.Key = "k" }))
	h.ok(h.decide(OpApprove, "bob", bob, c.ID))
	pending := h.ok(h.propose("alice", alice, change.Normal, w(3), func(p *Propose) { p.NotBefore = t0.Add(time.Hour) }))
	h.ok(h.decide(OpApprove, "bob", bob, pending.ID))
	b, _ := h.m.Marshal()
	var raw map[string]json.RawMessage
	json.Unmarshal(b, &raw)
	delete(raw, "closed_order")
	delete(raw, "key_log")
	delete(raw, "cluster")
	delete(raw, "last_good")
	old, _ := json.Marshal(raw)
	m, err := Unmarshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ClosedOrder) != 1 || m.ClosedOrder[0] != c.ID || len(m.KeyLog) != 1 || !m.pending[pending.ID] || m.LastGood != 1 {
		t.Fatalf("closed order %v key log %v pending %v last good %d", m.ClosedOrder, m.KeyLog, m.pending, m.LastGood)
	}
	// The scheduled change still runs from the rebuilt index.
	m.Apply(100, Command{Op: OpTick, At: t0.Add(time.Hour)})
	if got := m.Changes[pending.ID]; got.Version != 2 {
		t.Fatalf("scheduled change after restore: %s, version %d", got.State, got.Version)
	}
}
