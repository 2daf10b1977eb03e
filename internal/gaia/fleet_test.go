package gaia

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// TestClosedChangesArchivedToDisk (item 12): records beyond the bound leave
// the replicated state and land, once each, in the data directory's
// archive, also across a restart that replays the log; the API says where
// an archived change went.
func TestClosedChangesArchivedToDisk(t *testing.T) {
	c := newCluster(t, 1, func(o *Options) { o.Policy.ClosedChangeLimit = 10 })
	c.leader()
	for i := 0; i < 15; i++ {
		st, b, _ := call(t, "POST", c.url(0)+"/v1/changes", aliceTok, ProposeRequest{Type: change.Normal, Reason: "r", Directive: weightsDirective(float64(2 + i%2))})
		var ch change.Change
		if st != http.StatusCreated || json.Unmarshal(b, &ch) != nil {
			t.Fatalf("propose: %d %s", st, b)
		}
		if st, b, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", c.url(0), ch.ID), bobTok, DecisionRequest{Reason: "ok"}); st != 200 {
			t.Fatalf("approve: %d %s", st, b)
		}
	}
	path := filepath.Join(c.dirs[0], "archive", "changes.jsonl")
	ids := func() []uint64 {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		var out []uint64
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l struct {
				Index  uint64         `json:"index"`
				Change *change.Change `json:"change"`
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Index == 0 || l.Change == nil {
				t.Fatalf("archive line %q: %v", sc.Text(), err)
			}
			out = append(out, l.Change.ID)
		}
		return out
	}
	if got := fmt.Sprint(ids()); got != "[1 2 3 4 5]" {
		t.Fatalf("archived %s", got)
	}
	var kept int
	c.nodes[0].Read(func(m *fsm.Machine) { kept = len(m.Changes) })
	if kept != 10 {
		t.Fatalf("%d changes kept", kept)
	}
	st, b, _ := call(t, "GET", c.url(0)+"/v1/changes/2", viewerTok, nil)
	if st != http.StatusNotFound || !strings.Contains(string(b), "archive/changes.jsonl") {
		t.Fatalf("archived change: %d %s", st, b)
	}
	c.restart(0) // replays the whole log (no snapshot yet)
	c.leader()
	eventually(t, "the replay", func() bool {
		var n int
		c.nodes[0].Read(func(m *fsm.Machine) { n = int(m.LastChange) })
		return n == 15
	})
	if got := fmt.Sprint(ids()); got != "[1 2 3 4 5]" {
		t.Fatalf("after the restart the archive holds %s", got)
	}
}

// TestIdleClusterKeepsItsClock (item 12): the leader proposes a tick when
// the log time lags its clock by half of max_clock_step, so an idle
// cluster's next entry is not clamped.
func TestIdleClusterKeepsItsClock(t *testing.T) {
	c := newCluster(t, 1, func(o *Options) { o.Policy.MaxClockStep = directive.Duration(time.Second) })
	c.leader()
	emergency(t, c.url(0), 2)
	var first time.Time
	c.nodes[0].Read(func(m *fsm.Machine) { first = m.Now })
	eventually(t, "the log time to move on while idle", func() bool {
		var now time.Time
		c.nodes[0].Read(func(m *fsm.Machine) { now = m.Now })
		return now.Sub(first) >= time.Second
	})
	c.nodes[0].Read(func(m *fsm.Machine) {
		if m.ClockClamps != 0 {
			t.Errorf("%d entries clamped in an idle cluster", m.ClockClamps)
		}
	})
}
