package fsm

import (
	"fmt"
	"github.com/lbsys/lbsys/api/change"
	"testing"
	"time"
)

// machineWithChanges returns a machine that has gone through n normal
// changes (proposed with an idempotency key, approved, implemented, closed),
// entries step of log time apart.
func machineWithChanges(tb testing.TB, n int, step time.Duration) (*Machine, uint64, time.Time) {
	tb.Helper()
	m := NewMachine()
	m.Policy.CanaryFraction = 0
	var idx uint64
	at := t0
	apply := func(c Command) Result {
		idx++
		at = at.Add(step)
		c.At = at
		return m.Apply(idx, c)
	}
	for i := 0; i < n; i++ {
		r := apply(Command{Op: OpPropose, By: "alice", Roles: alice, Propose: &Propose{Type: change.Normal, Reason: "bench", Directive: w(float64(1 + i%50)), Key: fmt.Sprintf("key-%d", i)}})
		if r.Err != nil {
			tb.Fatal(r.Err)
		}
		if r := apply(Command{Op: OpApprove, By: "bob", Roles: bob, Decision: &Decision{Change: r.Change.ID, Reason: "ok"}}); r.Err != nil {
			tb.Fatal(r.Err)
		}
	}
	return m, idx, at
}

// BenchmarkApplyAt10kChanges measures Apply on a machine holding the
// history of 10,000 changes: a proxy report (the most frequent entry) and a
// propose + approve cycle. It reports the snapshot size too.
//
//	go test -run XXX -bench ApplyAt10kChanges ./internal/gaia/fsm/
func BenchmarkApplyAt10kChanges(b *testing.B) {
	m, idx, at := machineWithChanges(b, 10000, time.Second)
	snap, err := m.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("snapshot of %d changes: %.2f MB", len(m.Changes), float64(len(snap))/1e6)
	seq := 0
	b.Run("propose-approve", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			seq++
			idx++
			at = at.Add(time.Millisecond)
			r := m.Apply(idx, Command{Op: OpPropose, At: at, By: "alice", Roles: alice, Propose: &Propose{Type: change.Normal, Reason: "bench", Directive: w(float64(1 + i%50)), Key: fmt.Sprintf("bench-%d", seq)}})
			if r.Err != nil {
				b.Fatal(r.Err)
			}
			idx++
			if r := m.Apply(idx, Command{Op: OpApprove, At: at, By: "bob", Roles: bob, Decision: &Decision{Change: r.Change.ID, Reason: "ok"}}); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
	b.Run("report", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			idx++
			at = at.Add(time.Millisecond)
			if r := m.Apply(idx, Command{Op: OpReport, At: at, By: System, Reports: []ProxyReport{{Proxy: "p1", Version: m.Stable}}}); r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	})
}
