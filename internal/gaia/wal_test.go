package gaia

import (
	"testing"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// TestWALSurvivesTailTruncationAndRestart pins the raft-wal fix of
// hashicorp/raft-wal#31 (in v0.4.1): a follower that clears a log suffix
// (entries of a deposed leader) and then restarts must still read its log.
// v0.4.0 marked the truncated tail sealed without writing its index block,
// and raft.NewRaft then panicked with "sealed segment has no index block".
func TestWALSurvivesTailTruncationAndRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*raftwal.WAL, *metadb.BoltMetaDB) {
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(dir, raftwal.WithSegmentSize(1<<20), raftwal.WithMetaStore(meta))
		if err != nil {
			t.Fatal(err)
		}
		return w, meta
	}
	w, meta := open()
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte("x")})
	}
	if err := w.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(8, 10); err != nil { // what raft does on "clearing log suffix"
		t.Fatal(err)
	}
	w.Close()
	meta.Close()

	w, meta = open()
	defer func() { w.Close(); meta.Close() }()
	var l raft.Log
	if err := w.GetLog(5, &l); err != nil {
		t.Fatalf("reading the log after a tail truncation and a restart: %v (raft-wal before v0.4.1, hashicorp/raft-wal#31)", err)
	}
	if last, _ := w.LastIndex(); last != 7 {
		t.Fatalf("last index %d, want 7", last)
	}
}
