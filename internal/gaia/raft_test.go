package gaia

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

func TestMajorityElectsAndCommits(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	st, ch := emergency(t, c.url(l), 2)
	if st != http.StatusCreated || ch.Version != 1 || ch.State != change.Review {
		t.Fatalf("propose: %d %+v", st, ch)
	}
	// Followers redirect writes and linearizable reads to the leader.
	f := (l + 1) % 3
	var st2 int
	var b []byte
	var h http.Header
	eventually(t, "the follower to learn the leader's address", func() bool {
		st2, b, h = call(t, "GET", c.url(f)+"/v1/directive", viewerTok, nil)
		return st2 != http.StatusServiceUnavailable
	})
	if st2 != http.StatusTemporaryRedirect || h.Get("Location") != c.url(l)+"/v1/directive" || !strings.Contains(string(b), `"leader": "`+c.url(l)) {
		t.Fatalf("follower read: %d %s %v", st2, b, h)
	}
	if st, _ := emergency(t, c.url(f), 3); st != http.StatusTemporaryRedirect {
		t.Fatalf("follower write: %d", st)
	}
	// Every replica applies it.
	for i := range c.nodes {
		eventually(t, "replica "+c.id(i)+" applies version 1", func() bool { v, _ := c.latest(i); return v == 1 })
	}
	st, b, _ = call(t, "GET", c.url(f)+"/v1/directive?stale=1", viewerTok, nil)
	var d directive.Directive
	if st != 200 || json.Unmarshal(b, &d) != nil || d.Version != 1 || d.Services["catalog"].Weights["127.0.0.1:9001"] != 2 {
		t.Fatalf("stale read: %d %s", st, b)
	}
}

func TestMinorityLeaderRefusesCommits(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	if st, _ := emergency(t, c.url(old), 1); st != http.StatusCreated {
		t.Fatal("first commit", st)
	}
	c.isolate(old)
	// The old leader cannot commit: it refuses with 503, whether it still
	// believes it leads (VerifyLeader fails) or already stepped down.
	st, b, _ := call(t, "POST", c.url(old)+"/v1/changes", carolTok, ProposeRequest{Type: change.Emergency, Reason: "minority", Directive: weightsDirective(99)})
	if st != http.StatusServiceUnavailable || !strings.Contains(string(b), "no quorum: commit delayed until a majority is reachable") {
		t.Fatalf("minority write: %d %s", st, b)
	}
	// Its linearizable reads are refused too.
	if st, _, _ := call(t, "GET", c.url(old)+"/v1/directive", viewerTok, nil); st != http.StatusServiceUnavailable {
		t.Fatalf("minority read: %d", st)
	}
	// The majority elects a new leader and commits.
	nl := c.leader(old)
	st, ch := emergency(t, c.url(nl), 2)
	if st != http.StatusCreated || ch.Version != 2 {
		t.Fatalf("majority commit: %d %+v", st, ch)
	}
	// The refused proposal never took effect anywhere.
	c.connectAll()
	eventually(t, "old leader catches up", func() bool { v, _ := c.latest(old); return v == 2 })
	for i := range c.nodes {
		c.nodes[i].Read(func(m *fsm.Machine) {
			for _, v := range m.Versions {
				if v.Services["catalog"].Weights["127.0.0.1:9001"] == 99 {
					t.Errorf("%s applied the refused directive", c.id(i))
				}
			}
		})
	}
}

// TestHealedNodeCatchesUpThroughASnapshot: a follower partitioned while
// the others commit and compact their logs comes back and installs a
// snapshot, then follows the log.
func TestHealedNodeCatchesUpThroughASnapshot(t *testing.T) {
	c := newCluster(t, 3, func(o *Options) { o.SnapshotThreshold, o.TrailingLogs = 4, 2 })
	l := c.leader()
	f := (l + 1) % 3
	c.isolate(f)
	for i := 0; i < 12; i++ {
		if ch := c.mustCommit(fmt.Sprintf("heal-%d", i), float64(i+1), f); ch.Version != uint64(i+1) {
			t.Fatalf("commit %d made version %d", i, ch.Version)
		}
	}
	l = c.leader(f)
	eventually(t, "the leader to compact its log", func() bool {
		idx, _ := strconv.Atoi(c.nodes[l].Raft().Stats()["last_snapshot_index"])
		return idx > 0
	})
	c.connectAll()
	eventually(t, "the healed follower to catch up", func() bool { v, _ := c.latest(f); return v == 12 })
	var a, b []byte
	c.nodes[l].Read(func(m *fsm.Machine) { b, _ = json.Marshal(m.Versions[12]) })
	c.nodes[f].Read(func(m *fsm.Machine) { a, _ = json.Marshal(m.Versions[12]) })
	if string(a) != string(b) {
		t.Fatalf("follower's version 12 differs:\n%s\n%s", a, b)
	}
	c.mustCommit("heal-13", 13)
	eventually(t, "the follower to follow the log", func() bool { v, _ := c.latest(f); return v == 13 })
}

// TestCheckpointRestoreRoundTrip: an on-demand checkpoint, more entries,
// a restart from disk: the state is the same, restored from the snapshot
// plus the log after it.
func TestCheckpointRestoreRoundTrip(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	for i := 0; i < 3; i++ {
		emergency(t, c.url(0), float64(i+1))
	}
	st, b, _ := call(t, "POST", c.url(0)+"/v1/snapshot", adminTok, nil)
	if st != 200 || !strings.Contains(string(b), `"checkpointed"`) {
		t.Fatalf("checkpoint: %d %s", st, b)
	}
	if st, b, _ := call(t, "POST", c.url(0)+"/v1/snapshot", adminTok, nil); st != 200 || !strings.Contains(string(b), `"checkpointed"`) {
		t.Fatalf("checkpoint with nothing new: %d %s", st, b)
	}
	if st, _, _ := call(t, "POST", c.url(0)+"/v1/snapshot", aliceTok, nil); st != http.StatusForbidden {
		t.Fatalf("checkpoint by a proposer: %d", st)
	}
	emergency(t, c.url(0), 4)
	var before []byte
	c.nodes[0].Read(func(m *fsm.Machine) { before, _ = m.Marshal() })

	c.restart(0)
	c.leader()
	eventually(t, "restore", func() bool { v, _ := c.latest(0); return v == 4 })
	if idx, _ := strconv.Atoi(c.nodes[0].Raft().Stats()["last_snapshot_index"]); idx == 0 {
		t.Fatal("restarted without the snapshot")
	}
	var after []byte
	var idx uint64
	c.nodes[0].Read(func(m *fsm.Machine) {
		idx = m.Index
		// The new leadership adds its own entries (barrier, membership);
		// compare the state as of the last entry before the restart.
		m2, _ := fsm.Unmarshal(before)
		if m2.Latest != m.Latest || len(m2.Changes) != len(m.Changes) || len(m2.Audit) > len(m.Audit) {
			t.Errorf("restored %d versions and %d changes, had %d and %d", m.Latest, len(m.Changes), m2.Latest, len(m2.Changes))
		}
		for i := range m2.Audit {
			if m2.Audit[i] != m.Audit[i] {
				t.Errorf("audit %d differs: %+v vs %+v", i, m2.Audit[i], m.Audit[i])
				break
			}
		}
		after, _ = json.Marshal(m.Versions[4])
	})
	if idx == 0 || !strings.Contains(string(after), `"version":4`) {
		t.Fatalf("restored version 4: %s", after)
	}
	if st, ch := emergency(t, c.url(0), 5); st != http.StatusCreated || ch.Version != 5 {
		t.Fatalf("commit after restart: %d", st)
	}
}

func TestLeaderLossElectsAnother(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	emergency(t, c.url(l), 1)
	start := time.Now()
	c.stop(l)
	nl := c.leader(l)
	t.Logf("new leader %s after %s", c.id(nl), time.Since(start))
	if st, ch := emergency(t, c.url(nl), 2); st != http.StatusCreated || ch.Version != 2 {
		t.Fatalf("commit after failover: %d", st)
	}
	// The stopped node comes back from disk and catches up.
	c.restart(l)
	eventually(t, "restarted node catches up", func() bool { v, _ := c.latest(l); return v == 2 })
}

func TestRemoveMember(t *testing.T) {
	c := newCluster(t, 3, nil)
	l := c.leader()
	f := (l + 1) % 3
	if st, b, _ := call(t, "DELETE", c.url(l)+"/v1/members/"+c.id(f), adminTok, nil); st != http.StatusOK {
		t.Fatalf("remove: %d %s", st, b)
	}
	if st, _, _ := call(t, "DELETE", c.url(l)+"/v1/members/"+c.id(l), adminTok, nil); st != http.StatusConflict {
		t.Fatalf("removing the leader itself: %d", st)
	}
	st, b, _ := call(t, "GET", c.url(l)+"/v1/status", viewerTok, nil)
	var s Status
	json.Unmarshal(b, &s)
	if st != 200 || len(s.Voters) != 2 {
		t.Fatalf("voters after removal: %v", s.Voters)
	}
	// Two voters still commit (both are needed now).
	if st, _ := emergency(t, c.url(l), 1); st != http.StatusCreated {
		t.Fatalf("commit with 2 voters: %d", st)
	}
}
