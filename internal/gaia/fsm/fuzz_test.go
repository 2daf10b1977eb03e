package fsm

import (
	"bytes"
	"encoding/json"
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
	seed(Command{Op: OpPropose, By: "carol", Roles: carol, Propose: &Propose{Type: Emergency, Reason: "r", Directive: w(2)}})
	seed(Command{Op: OpPropose, By: "alice", Roles: alice, Propose: &Propose{Type: Normal, Reason: "r", Directive: w(3), NotBefore: t0.Add(time.Minute)}})
	seed(Command{Op: OpPropose, By: "alice", Roles: alice, Propose: &Propose{Type: Standard, Reason: "r", Directive: weights(map[string]float64{"127.0.0.1:9001": 1}, true), IfStable: 1}})
	seed(Command{Op: OpApprove, By: "bob", Roles: bob, Decision: &Decision{Change: 1, Reason: "ok"}})
	seed(Command{Op: OpRollback, By: "carol", Roles: carol, Rollback: &Rollback{ToVersion: 1, Reason: "x"}})
	seed(Command{Op: OpReport, By: System, Reports: []ProxyReport{{Proxy: "p", Version: 1, Rejected: 2, Error: "e"}}})
	p := DefaultPolicy()
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
			m.Apply(2, Command{Op: OpPropose, At: t0, By: "carol", Roles: carol, Propose: &Propose{Type: Emergency, Reason: "r", Directive: w(2)}})
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
