package fsm

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// The Raft log and the snapshots are JSON written by one version of lbsys
// and read by the next: a rename or a moved type that changed a byte would
// make a coordinator misread its own log. These goldens pin the encoding;
// regenerate them only for a deliberate format change (-update).
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoding of %s changed:\n got %s\nwant %s\nthe log and snapshots of running coordinators are in the old form: keep it, or add a migration and run -update", name, got, want)
	}
}

// goldenCommands is one log entry of every operation, every payload field set.
func goldenCommands() []Command {
	d := w(3)
	return []Command{
		{Op: OpCluster, At: t0, By: System, Cluster: &ClusterInfo{ID: "c-1", KeyID: "k-1"}},
		{Op: OpPropose, At: t0, By: "alice", Roles: []string{RoleProposer}, Propose: &Propose{
			Type: change.Normal, Reason: "flash sale", Directive: d, NotBefore: t0.Add(time.Hour), NoCanary: true, Key: "p-1", IfStable: 4}},
		{Op: OpApprove, At: t0, By: "bob", Roles: []string{RoleApprover}, Decision: &Decision{Change: 7, Reason: "ok", Key: "d-1"}},
		{Op: OpRollback, At: t0, By: "carol", Roles: []string{RoleProposer, RoleApprover}, Rollback: &Rollback{
			ToVersion: 3, Change: 7, Type: change.Emergency, Reason: "errors", Key: "r-1"}},
		{Op: OpReport, At: t0, By: System, Reports: []ProxyReport{{Proxy: "p1", Version: 5, Nonce: "n", Rejected: 6, Error: "bad weight",
			Stats: &directive.Report{Version: 5, Services: map[string]directive.ServiceStats{"catalog": {Requests: 100, Errors: 2, P99Ms: 40}}}}}},
		{Op: OpMember, At: t0, By: System, Member: &change.Member{ID: "g1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8000"}},
		{Op: OpPolicy, At: t0, By: "admin", Roles: []string{RoleAdmin}, Policy: func() *change.Policy { p := change.DefaultPolicy(); return &p }()},
		{Op: OpTick, At: t0},
	}
}

func TestGoldenCommandEncoding(t *testing.T) {
	var buf bytes.Buffer
	for _, c := range goldenCommands() {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		// Decoding and encoding again must give the same entry back: a
		// field that lost its tag would not survive the round trip.
		back, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := Encode(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Errorf("round trip changed the entry:\n%s\n%s", b, b2)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	golden(t, "commands.golden", buf.Bytes())
}

// TestGoldenSnapshotEncoding drives a machine through a canary, a normal
// change, an emergency, a rollback and a rejection, then pins its snapshot
// and the results the proposers saw.
func TestGoldenSnapshotEncoding(t *testing.T) {
	h := newHarness(t)
	h.m.Policy.CanaryFraction = 0.5
	var results bytes.Buffer
	keep := func(r Result) {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		results.Write(b)
		results.WriteByte('\n')
	}
	keep(h.apply(Command{Op: OpMember, By: System, Member: &change.Member{ID: "g1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8000"}}))
	h.report(map[string]uint64{"p1": 0, "p2": 0})
	r := h.propose("alice", alice, change.Standard, w(1.1), func(p *Propose) { p.Key = "k1" })
	keep(r)
	h.report(map[string]uint64{"p1": r.Change.Version, "p2": 0})
	h.apply(Command{Op: OpReport, By: System, Reports: []ProxyReport{
		{Proxy: "p1", Version: r.Change.Version, Stats: &directive.Report{Version: r.Change.Version, Services: map[string]directive.ServiceStats{"catalog": {Requests: 500, Errors: 1, P99Ms: 20}}}},
		{Proxy: "p2", Version: 0, Stats: &directive.Report{Services: map[string]directive.ServiceStats{"catalog": {Requests: 500, Errors: 1, P99Ms: 21}}}},
	}})
	keep(h.advance(2 * time.Minute))
	h.report(map[string]uint64{"p1": r.Change.Version, "p2": r.Change.Version})
	n := h.propose("alice", alice, change.Normal, w(2), func(p *Propose) { p.NotBefore = h.now.Add(time.Hour) })
	keep(n)
	keep(h.decide(OpApprove, "bob", bob, n.Change.ID))
	keep(h.propose("alice", alice, change.Normal, w(5)))
	keep(h.decide(OpReject, "bob", bob, h.m.LastChange))
	e := h.propose("carol", carol, change.Emergency, w(4))
	keep(e)
	keep(h.apply(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{Change: e.Change.ID, Reason: "undo"}}))
	keep(h.apply(Command{Op: OpApprove, By: "nobody", Roles: []string{RoleViewer}, Decision: &Decision{Change: 999, Reason: "x"}}))
	keep(h.advance(2 * time.Hour))
	snap, err := h.m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// A restored machine must encode to the same bytes (what a follower
	// installing the snapshot holds).
	back, err := Unmarshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, again) {
		t.Errorf("snapshot changed through Unmarshal/Marshal")
	}
	golden(t, "snapshot.golden", append(snap, '\n'))
	golden(t, "results.golden", results.Bytes())
}
