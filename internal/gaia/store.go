package gaia

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// replicated adapts the pure fsm.Machine to raft.FSM: it decodes log
// entries, serializes access, and wakes the directive stream's long polls
// when what some proxy should run changes.
type replicated struct {
	mu     sync.RWMutex
	m      *fsm.Machine
	key    string        // what the stream's targets depend on
	notify chan struct{} // closed (and replaced) when key changes
	// onStable, if set, is called under the lock when the stable version
	// changes (benchmarks time propagation from here).
	onStable func(version uint64)
}

func newReplicated() *replicated {
	return &replicated{m: fsm.NewMachine(), notify: make(chan struct{})}
}

// Apply implements raft.FSM. Its return value is the fsm.Result, which
// raft hands to the proposer's ApplyFuture.Response.
func (r *replicated) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := fsm.Decode(l.Data)
	r.mu.Lock()
	var res fsm.Result
	if err != nil {
		// Still advance the index: every replica refuses it identically.
		res = r.m.Apply(l.Index, fsm.Command{Op: "undecodable"})
		res.Err = &fsm.Error{Code: fsm.CodeBadCommand, Msg: "undecodable log entry: " + err.Error()}
	} else {
		stable := r.m.Stable
		res = r.m.Apply(l.Index, cmd)
		if r.onStable != nil && r.m.Stable != stable {
			r.onStable(r.m.Stable)
		}
	}
	r.wakeLocked()
	r.mu.Unlock()
	return res
}

// wakeLocked closes the notify channel when the stream's inputs changed.
func (r *replicated) wakeLocked() {
	k := targetKey(r.m)
	if k == r.key {
		return
	}
	r.key = k
	close(r.notify)
	r.notify = make(chan struct{})
}

func targetKey(m *fsm.Machine) string {
	if m.Canary == nil {
		return fmt.Sprintf("%d", m.Stable)
	}
	return fmt.Sprintf("%d/%d/%v/%v", m.Stable, m.Canary.Version, m.Canary.Proxies, m.Canary.StartedAt.IsZero())
}

// Snapshot implements raft.FSM: the machine's JSON, taken under the lock
// (the machine is small; encoding it is quicker than copying it).
func (r *replicated) Snapshot() (raft.FSMSnapshot, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	b, err := r.m.Marshal()
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// Restore implements raft.FSM.
func (r *replicated) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	m, err := fsm.Unmarshal(b)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.m = m
	r.wakeLocked()
	r.mu.Unlock()
	return nil
}

// read runs f on the machine under the read lock.
func (r *replicated) read(f func(m *fsm.Machine)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f(r.m)
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

var _ raft.FSM = (*replicated)(nil)
