package gaia

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// FuzzChangeRequests: the coordinator parses these bodies from every
// client (POST /v1/changes, approve/reject/cancel, rollback, join, PUT
// /v1/policy). Whatever decodes strictly and passes the handler's checks
// becomes a command that the state machine applies without panicking, on
// two replicas identically.
func FuzzChangeRequests(f *testing.F) {
	for _, v := range []any{
		ProposeRequest{Type: change.Normal, Reason: "r", Directive: weightsDirective(2), IdempotencyKey: "k", IfStable: 1, NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		DecisionRequest{Reason: "ok", IdempotencyKey: "k2"},
		RollbackRequest{ToVersion: 1, Type: change.Emergency, Reason: "undo", IdempotencyKey: "k3"},
		JoinRequest{ID: "n2", RaftAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:7102", KeyID: "0123456789abcdef"},
		change.DefaultPolicy(),
	} {
		b, _ := json.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte(`{"type": "emergency", "reason": "x", "directive": {"schema": 1, "services": {}}, "idempotency_key": "` + strings.Repeat("k", 300) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cmds []fsm.Command
		var p ProposeRequest
		if directive.DecodeStrict(data, &p) == nil && p.Directive != nil && p.Directive.Validate() == nil {
			cmds = append(cmds, fsm.Command{Op: fsm.OpPropose, By: "carol", Roles: []string{fsm.RoleProposer, fsm.RoleApprover}, Propose: &fsm.Propose{
				Type: p.Type, Reason: p.Reason, Directive: p.Directive, NotBefore: p.NotBefore, NoCanary: p.NoCanary, Key: p.IdempotencyKey, IfStable: p.IfStable}})
		}
		var d DecisionRequest
		if directive.DecodeStrict(data, &d) == nil {
			cmds = append(cmds, fsm.Command{Op: fsm.OpApprove, By: "bob", Roles: []string{fsm.RoleApprover}, Decision: &fsm.Decision{Change: 1, Reason: d.Reason, Key: d.IdempotencyKey}})
		}
		var r RollbackRequest
		if directive.DecodeStrict(data, &r) == nil {
			cmds = append(cmds, fsm.Command{Op: fsm.OpRollback, By: "carol", Roles: []string{fsm.RoleProposer, fsm.RoleApprover}, Rollback: &fsm.Rollback{
				ToVersion: r.ToVersion, Change: r.Change, Type: r.Type, Reason: r.Reason, Key: r.IdempotencyKey}})
		}
		var j JoinRequest
		if directive.DecodeStrict(data, &j) == nil && j.ID != "" {
			cmds = append(cmds, fsm.Command{Op: fsm.OpMember, By: fsm.System, Member: &change.Member{ID: j.ID, RaftAddr: j.RaftAddr, HTTPAddr: j.HTTPAddr}})
		}
		pol := change.DefaultPolicy()
		if directive.DecodeStrict(data, &pol) == nil && pol.Validate() == nil {
			cmds = append(cmds, fsm.Command{Op: fsm.OpPolicy, By: "admin", Roles: []string{fsm.RoleAdmin}, Policy: &pol})
		}
		var out [2][]byte
		for i := range out {
			m := fsm.NewMachine()
			at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
			m.Apply(1, fsm.Command{Op: fsm.OpPropose, At: at, By: "carol", Roles: []string{fsm.RoleProposer, fsm.RoleApprover}, Propose: &fsm.Propose{Type: change.Emergency, Reason: "r", Directive: weightsDirective(2)}})
			for k, c := range cmds {
				c.At = at.Add(time.Duration(k+1) * time.Second)
				m.Apply(uint64(k+2), c)
			}
			b, err := m.Marshal()
			if err != nil {
				t.Fatalf("state does not encode: %v", err)
			}
			out[i] = b
		}
		if !bytes.Equal(out[0], out[1]) {
			t.Fatal("replicas diverged")
		}
	})
}

// FuzzParseTokens: the tokens file.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("# principals\nalice-token-0123456789 alice proposer\nbob-token-0123456789ab bob approver,agent\n"))
	f.Add([]byte("short x viewer\n"))
	f.Add([]byte("tok-tok-tok-tok-tok gaia admin\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := ParseTokens(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) != 3 || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			p, ok := tk.Lookup(fields[0])
			if !ok || p.Name == "" || p.Name == fsm.System || len(p.Roles) == 0 || len(fields[0]) < 16 {
				t.Fatalf("accepted line %q as %+v (found %v)", line, p, ok)
			}
		}
	})
}

// FuzzCredentialFiles: what a node reads from --tls-dir and init-tls from
// its flags: the cluster key, PEM certificates and keys, --node specs.
// Nothing panics; an accepted key is at least fsm.MinKeyBytes and what
// init-tls writes is accepted.
func FuzzCredentialFiles(f *testing.F) {
	dir := f.TempDir()
	if _, err := InitTLS(dir, []NodeSpec{{ID: "n1", Hosts: []string{"127.0.0.1", "gaia-1.example"}}}, time.Hour); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{ClusterKeyFile, CAFile, "n1.crt", "n1.key"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("n1=10.0.0.1,gaia-1.example"))
	f.Add([]byte(strings.Repeat("ab", 31) + "\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if k, err := ParseClusterKey(data); err == nil {
			if len(k) < fsm.MinKeyBytes {
				t.Fatalf("accepted a %d-byte key", len(k))
			}
			if k2, err := ParseClusterKey([]byte(hex.EncodeToString(k) + "\n")); err != nil || !bytes.Equal(k, k2) {
				t.Fatalf("key does not round-trip: %v", err)
			}
		}
		if certs, err := parseCertsPEM(data, "fuzz"); err == nil {
			for _, c := range certs {
				_ = NodeIDFromCert(c)
			}
		}
		_, _ = parseKeyPEM(data, "fuzz")
		if spec, err := ParseNodeSpec(string(data)); err == nil && (!validNodeID(spec.ID) || len(spec.Hosts) == 0) {
			t.Fatalf("accepted node spec %+v", spec)
		}
	})
}

// FuzzArchiveLastIndex: the archive's tail is parsed at start to skip
// records already written; any content gives an index, never a panic.
func FuzzArchiveLastIndex(f *testing.F) {
	f.Add([]byte(`{"index": 12, "change": {"id": 1}}` + "\n" + `{"index": 40, "change": {"id": 2}}` + "\n"))
	f.Add([]byte(`{"index": 7, "chan`))
	f.Add([]byte(`{"index": -1}` + "\n" + `{"index": 1e30}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := parseLastIndex(data)
		var max uint64
		for _, l := range bytes.Split(data, []byte("\n")) {
			var x struct {
				Index uint64 `json:"index"`
			}
			if json.Unmarshal(l, &x) == nil && x.Index > max && len(l) <= len(data) {
				max = x.Index
			}
		}
		if got > max {
			t.Fatalf("last index %d above every line's (%d)", got, max)
		}
	})
}
