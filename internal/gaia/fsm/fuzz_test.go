package fsm

import (
	"bytes"
	"encoding/json"
	"github.com/lbsys/lbsys/api/change"
	"strings"
	"testing"
	"time"
)

// FuzzApply feeds arbitrary log entries to two replicas: none may panic
// out of Apply, both must stay byte-identical, and the state must still
// encode (a snapshot is always possible).
func FuzzApply(f *testing.F) {
	seed := func(c Command) {
		b, _ := json.Marshal(c)
		f.Add(b)
	}
	seed(Command{Op: OpPropose, By: "carol", Roles: carol, Propose: &Propose{Type: change.Emergency, Reason: "r", Directive: w(2)}})
	seed(Command{Op: OpPropose, By: "alice", Roles: alice, Propose: &Propose{Type: change.Normal, Reason: "r", Directive: w(3), NotBefore: t0.Add(time.Minute)}})
	seed(Command{Op: OpPropose, By: "alice", Roles: alice, Propose: &Propose{Type: change.Standard, Reason: "r", Directive: weights(map[string]float64{"127.0.0.1:9001": 1}, true), IfStable: 1}})
	seed(Command{Op: OpApprove, By: "bob", Roles: bob, Decision: &Decision{Change: 1, Reason: "ok"}})
	seed(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{ToVersion: 1, Reason: "x"}})
	seed(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: "p", Version: 1, Rejected: 2, Error: "e"}}})
	p := change.DefaultPolicy()
	seed(Command{Op: OpPolicy, By: System, Policy: &p})
	f.Add([]byte(`{"op": "tick", "at": "2026-11-27T13:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		var out [2][]byte
		for i := range out {
			m := NewMachine()
			m.Apply(1, Command{Op: OpReport, At: t0, By: System, Reports: []ProxyReport{{Proxy: "p1"}, {Proxy: "p2"}}})
			m.Apply(2, Command{Op: OpPropose, At: t0, By: "carol", Roles: carol, Propose: &Propose{Type: change.Emergency, Reason: "r", Directive: w(2)}})
			m.Apply(3, c)
			m.Apply(4, Command{Op: OpTick, At: t0.Add(time.Hour)})
			b, err := m.Marshal()
			if err != nil {
				t.Fatalf("state does not encode after %s: %v", data, err)
			}
			out[i] = b
		}
		if !bytes.Equal(out[0], out[1]) {
			t.Fatalf("replicas diverged on %s", data)
		}
	})
}

// FuzzApplyEntry feeds arbitrary raw log entries (sealed envelopes, bare
// commands, garbage) to two replicas holding the cluster key: no panic,
// both stay byte-identical, and once the cluster recorded its key ID no
// entry that is not sealed with the key changes anything.
func FuzzApplyEntry(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	enc := func(c Command) []byte { b, _ := json.Marshal(c); return b }
	prop := Command{Op: OpPropose, At: t0, By: "mallory", Roles: []string{RoleAdmin}, Propose: &Propose{Type: change.Emergency, Reason: "r", Directive: w(2)}}
	f.Add(enc(prop))
	f.Add(Seal(key, enc(prop)))
	f.Add(Seal([]byte("fedcba9876543210fedcba9876543210"), enc(prop)))
	f.Add([]byte(sealMagic + "0123456789abcdef " + strings.Repeat("0", 64) + "\n{}"))
	f.Add([]byte(sealMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out [2][]byte
		for i := range out {
			m := NewMachine()
			if err := m.SetKey(key); err != nil {
				t.Fatal(err)
			}
			m.ApplyEntry(1, Seal(key, enc(Command{Op: OpCluster, At: t0, By: System, Cluster: &ClusterInfo{ID: "c1", KeyID: KeyID(key)}})))
			before, _ := m.Marshal()
			r := m.ApplyEntry(2, data)
			after, err := m.Marshal()
			if err != nil {
				t.Fatalf("state does not encode: %v", err)
			}
			if env, perr := openEntry(data); (perr != nil || !env.sealed || env.keyID != KeyID(key) || !bytes.Equal(env.mac, entryMAC(key, env.cmd))) && !bytes.Equal(before, after) {
				t.Fatalf("an entry not sealed with the key changed the state (result %+v)", r)
			}
			out[i] = after
		}
		if !bytes.Equal(out[0], out[1]) {
			t.Fatalf("replicas diverged on %q", data)
		}
	})
}
