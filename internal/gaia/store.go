package gaia

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// replicated adapts the pure fsm.Machine to raft.FSM: it hands log entries
// to the machine (which verifies their seal), serializes access, writes out
// archived change records, stops the node on a key mismatch, and wakes the
// directive stream's long polls when what some proxy should run changes.
type replicated struct {
	mu     sync.RWMutex
	m      *fsm.Machine
	key    string        // what the stream's targets depend on
	notify chan struct{} // closed (and replaced) when key changes
	// sealKey is this node's cluster key (nil: none), given to every
	// machine restored from a snapshot.
	sealKey []byte
	// halted is set (and Apply stops) when an entry is sealed with a key
	// this node does not hold.
	halted string
	// unauthenticated counts entries refused as not (validly) sealed.
	unauthenticated uint64
	// Callbacks, set before Raft starts; called under the lock, so they
	// must be quick. onStable: the stable version changed (benchmarks);
	// onHalt: key mismatch; onRefused: an unauthenticated entry;
	// onClamped: an entry's time was clamped; onArchive: closed changes
	// left the state.
	onStable  func(version uint64)
	onHalt    func(reason string)
	onRefused func(index uint64, err *fsm.Error)
	onClamped func(index uint64, by time.Duration)
	onArchive func(index uint64, changes []*change.Change)
}

// setKey gives the machine (and every machine restored later) the cluster
// key.
func (r *replicated) setKey(key []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.m.SetKey(key); err != nil {
		return err
	}
	r.sealKey = append([]byte(nil), key...)
	return nil
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.halted != "" {
		return fsm.Result{Err: &fsm.Error{Code: fsm.CodeKeyMismatch, Msg: r.halted}}
	}
	stable := r.m.Stable
	res := r.m.ApplyEntry(l.Index, l.Data)
	if res.Err != nil {
		switch res.Err.Code {
		case fsm.CodeKeyMismatch:
			r.halted = res.Err.Msg
			if r.onHalt != nil {
				r.onHalt(res.Err.Msg)
			}
			return res
		case fsm.CodeUnauthenticated:
			r.unauthenticated++
			if r.onRefused != nil {
				r.onRefused(l.Index, res.Err)
			}
		}
	}
	if res.Clamped > 0 && r.onClamped != nil {
		r.onClamped(l.Index, res.Clamped)
	}
	if a := r.m.TakeArchived(); len(a) > 0 && r.onArchive != nil {
		r.onArchive(l.Index, a)
	}
	if r.onStable != nil && r.m.Stable != stable {
		r.onStable(r.m.Stable)
	}
	r.wakeLocked()
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
// (the machine is small; encoding it is quicker than copying it). A halted
// node takes none: its state lacks the entries it could not verify, and a
// snapshot of it would outlive the fix.
func (r *replicated) Snapshot() (raft.FSMSnapshot, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.halted != "" {
		return nil, errors.New("no snapshot: this coordinator halted: " + r.halted)
	}
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
	if r.sealKey != nil {
		if err := m.SetKey(r.sealKey); err != nil {
			return err
		}
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
