package gaia

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lbsys/lbsys/api/change"
)

// archiveWriter appends the change records the state machine archives
// (closed changes beyond closed_change_limit) to a JSON-lines file in the
// data directory, one record per line:
//
//	{"index": 5123, "change": {...the change.Change...}}
//
// index is the Raft log index of the entry that archived it. After a
// restart Raft replays entries since the last snapshot; lines at or below
// the last index written are not written again, so each record appears
// once. A node that caught up through a snapshot sent by the leader lacks
// the records archived before it (they never passed through its state
// machine): keep the archive of a long-lived member. Writes are not
// fsynced: the archive is an audit aid, the replicated state is not in it.
type archiveWriter struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File
	last    uint64 // highest index written
	opened  bool
	written uint64
	failed  uint64
}

func newArchiveWriter(path string, log *slog.Logger) *archiveWriter {
	return &archiveWriter{path: path, log: log}
}

// open reads the last index written (the last complete line) and opens the
// file for appending.
func (a *archiveWriter) open() error {
	a.opened = true
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(a.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	a.f = f
	a.last = lastArchivedIndex(f)
	return nil
}

// lastArchivedIndex returns the index of the last complete line of an
// archive file (0 if none). Only the tail is read.
func lastArchivedIndex(f *os.File) uint64 {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0
	}
	const tail = 1 << 20
	off := max(fi.Size()-tail, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return 0
	}
	return parseLastIndex(b)
}

// parseLastIndex finds the largest "index" among the complete lines of b.
func parseLastIndex(b []byte) uint64 {
	var last uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), len(b)+1)
	for sc.Scan() {
		var l struct {
			Index uint64 `json:"index"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Index > last {
			last = l.Index
		}
	}
	return last
}

// write appends the records archived by the entry at index.
func (a *archiveWriter) write(index uint64, changes []*change.Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.opened {
		if err := a.open(); err != nil {
			a.log.Error("change archive unavailable: archived change records are dropped", "file", a.path, "err", err)
		}
	}
	if a.f == nil || index <= a.last {
		return
	}
	var buf bytes.Buffer
	for _, ch := range changes {
		line, err := json.Marshal(struct {
			Index      uint64         `json:"index"`
			ArchivedAt time.Time      `json:"archived_at"`
			Change     *change.Change `json:"change"`
		}{index, ch.UpdatedAt, ch})
		if err != nil {
			continue
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if _, err := a.f.Write(buf.Bytes()); err != nil {
		a.failed += uint64(len(changes))
		a.log.Error("writing the change archive failed", "file", a.path, "err", err)
		return
	}
	a.last = index
	a.written += uint64(len(changes))
}

func (a *archiveWriter) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
}
