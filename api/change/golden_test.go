package change

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// The change API's bodies are read by CLIs, pipelines and scripts built
// from other versions of lbsys: the golden file pins their JSON byte for
// byte. Regenerate it (-update) only for a deliberate change of the API.
var update = flag.Bool("update", false, "rewrite testdata/wire.golden")

var wt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// wireValues is every body of the change API: once with every field set,
// once empty (what the omitempty and omitzero tags leave out).
func wireValues() []struct {
	name string
	v    any
} {
	d := &directive.Directive{Schema: 1, Version: 5, Cluster: "c-1", Services: map[string]*directive.Service{
		"catalog": {Weights: map[string]float64{"127.0.0.1:9001": 2}, Why: &directive.Why{Model: "gbdt@1", Blessed: true}}}}
	ch := &Change{ID: 7, Type: Normal, State: Review, Requester: "alice", Reason: "flash sale", Directive: d,
		RollbackOf: 3, RollbackFor: 6, NotBefore: wt.Add(time.Hour), Canary: true, Key: "k", IfStable: 4,
		CreatedAt: wt, UpdatedAt: wt.Add(time.Minute),
		Assessment: &Assessment{Against: 4, Changes: 2, MaxWeightMovePercent: 12.5, Blessed: true, WithinPolicy: true, Notes: []string{"n"}},
		Approvals:  []Approval{{Who: "bob", At: wt, Stage: Authorize, Reason: "ok"}},
		Version:    5, Base: 4, ImplementedAt: wt.Add(2 * time.Minute), Deadline: wt.Add(7 * time.Minute),
		Outcome: Partial, Detail: "p2 nacked", RolledBackBy: 8}
	audit := AuditEntry{Seq: 1, Index: 9, At: wt, Change: 7, Event: "transition", From: Scheduled, To: Implement, Who: "gaia", Why: "due"}
	return []struct {
		name string
		v    any
	}{
		{"ProposeRequest", ProposeRequest{Type: Standard, Reason: "r", Directive: d, NotBefore: wt, NoCanary: true, IdempotencyKey: "k", IfStable: 4}},
		{"ProposeRequest/empty", ProposeRequest{}},
		{"DecisionRequest", DecisionRequest{Reason: "r", IdempotencyKey: "k"}},
		{"DecisionRequest/empty", DecisionRequest{}},
		{"RollbackRequest", RollbackRequest{ToVersion: 3, Change: 7, Type: Emergency, Reason: "r", IdempotencyKey: "k"}},
		{"RollbackRequest/empty", RollbackRequest{}},
		{"JoinRequest", JoinRequest{ID: "g2", RaftAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:8001", KeyID: "k-1"}},
		{"JoinRequest/empty", JoinRequest{}},
		{"Change", ch},
		{"Change/empty", Change{}},
		{"ChangeView", ChangeView{Change: ch, Audit: []AuditEntry{audit}, Diff: []directive.Change{{Path: "services[catalog]", From: "1", To: "2"}}}},
		{"ChangeView/empty", ChangeView{Change: &Change{}}},
		{"ChangeSummary", ChangeSummary{ID: 7, Type: Normal, State: Closed, Requester: "alice", Reason: "r", Version: 5, Outcome: Success, UpdatedAt: wt}},
		{"ChangeSummary/empty", ChangeSummary{}},
		{"AuditEntry", audit},
		{"AuditEntry/empty", AuditEntry{}},
		{"Policy", DefaultPolicy()},
		{"Status", Status{ID: "g1", RaftState: "Leader", Leader: "g1", LeaderURL: "http://127.0.0.1:8000", Term: 2, LastIndex: 30, CommitIndex: 30, AppliedIndex: 29,
			Members: []Member{{ID: "g1", RaftAddr: "127.0.0.1:7000", HTTPAddr: "127.0.0.1:8000"}}, Voters: []string{"g1"},
			Stable: 4, Latest: 5, Live: true, Active: 7,
			Canary:  &Canary{Change: 7, Version: 5, Base: 4, Proxies: []string{"p1"}, StartedAt: wt},
			Proxies: []Proxy{{ID: "p1", Version: 5, Nonce: "n", Rejected: 6, RejectError: "bad", SeenAt: wt, AckedAt: wt, Stats: &directive.Report{Proxy: "p1", Version: 5, Since: wt, Services: map[string]directive.ServiceStats{"catalog": {Requests: 10, Errors: 1, P99Ms: 30}}}}},
			Policy:  DefaultPolicy(), Now: wt, Pending: map[string]int{"authorize": 1},
			Cluster: "c-1", KeyID: "k-1", NodeKeyID: "k-1", RaftTLS: true, LastGood: 4, ClockClamps: 2, Halted: "key mismatch"}},
		{"Status/empty", Status{}},
	}
}

func TestWireGolden(t *testing.T) {
	var buf bytes.Buffer
	for _, c := range wireValues() {
		b, err := json.Marshal(c.v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		buf.WriteString(c.name + " " + string(b) + "\n")
	}
	path := filepath.Join("testdata", "wire.golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestWireGolden -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("the change API's JSON changed; clients of other versions read the old form:\n got %s\nwant %s", buf.Bytes(), want)
	}
}
