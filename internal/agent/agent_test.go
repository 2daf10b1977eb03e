package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/api/directive"
)

// fakeCoordinator scripts the coordinator's side of the stream.
type fakeCoordinator struct {
	srv *httptest.Server
	mu  sync.Mutex
	// reqs are the watch requests received, in order.
	reqs []directive.WatchRequest
	// offer is the directive the coordinator wants the proxy to run.
	offer *directive.Directive
	// down makes every call fail with 503 (no quorum).
	down atomic.Bool
	// leader, when set, makes every call a 307 to it.
	leader string
	// cluster, when set, is this coordinator's cluster ID: a request of
	// another cluster is refused with 409 (as Gaia does).
	cluster string
	// failNext makes the next n calls fail with 503.
	failNext atomic.Int32
}

func newFake(t *testing.T) *fakeCoordinator {
	f := &fakeCoordinator{}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCoordinator) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer agent-token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req directive.WatchRequest
	b, _ := io.ReadAll(r.Body)
	if err := directive.DecodeStrict(b, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	offer, leader := f.offer, f.leader
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.down.Load() || f.failNext.Add(-1) >= 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(directive.ErrorBody{Error: "no quorum: commit delayed until a majority is reachable"})
		return
	}
	if leader != "" {
		w.Header().Set("Location", leader+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
		json.NewEncoder(w).Encode(directive.ErrorBody{Error: "not the leader", Leader: leader})
		return
	}
	if f.cluster != "" && req.Cluster != "" && req.Cluster != f.cluster {
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(directive.ErrorBody{Error: "proxy runs a version of another cluster", Cluster: f.cluster})
		return
	}
	resp := directive.WatchResponse{Nonce: "n" + time.Now().Format("150405.000000"), Leader: f.srv.URL, Cluster: f.cluster}
	// Like a coordinator that predates cluster IDs, it offers a directive
	// when the version differs, or (when it has one) the cluster does.
	if offer != nil && (offer.Version != req.Version || offer.Cluster != "" && offer.Cluster != req.Cluster) && offer.Version != req.Rejected {
		resp.Version, resp.Directive = offer.Version, offer
	} else {
		time.Sleep(20 * time.Millisecond) // a short long poll
		resp.Version = req.Version
	}
	json.NewEncoder(w).Encode(resp)
}

func (f *fakeCoordinator) set(d *directive.Directive) {
	f.mu.Lock()
	f.offer = d
	f.mu.Unlock()
}

func (f *fakeCoordinator) requests() []directive.WatchRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]directive.WatchRequest(nil), f.reqs...)
}

type recorder struct {
	mu      sync.Mutex
	applied []*directive.Directive
	refuse  error
}

func (r *recorder) Apply(d *directive.Directive) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		return r.refuse
	}
	r.applied = append(r.applied, d)
	return nil
}

func (r *recorder) versions() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var v []uint64
	for _, d := range r.applied {
		v = append(v, d.Version)
	}
	return v
}

func dir(version uint64, w float64) *directive.Directive {
	return &directive.Directive{Schema: 1, Version: version, Change: version, Services: map[string]*directive.Service{
		"catalog": {Weights: map[string]float64{"127.0.0.1:9001": w}},
	}}
}

func run(t *testing.T, o Options) (*Agent, *prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if o.Token == "" {
		o.Token = "agent-token"
	}
	if o.ProxyID == "" {
		o.ProxyID = "p1"
	}
	o.Wait, o.MinBackoff, o.MaxBackoff = time.Second, 5*time.Millisecond, 50*time.Millisecond
	if o.DegradedAfter == 0 {
		o.DegradedAfter = 300 * time.Millisecond
	}
	o.Registerer = reg
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return a, reg, stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestACKPersistsAndRestartsFromDiskWhileCoordinatorDown(t *testing.T) {
	f := newFake(t)
	state := filepath.Join(t.TempDir(), "state", "directive.json")
	f.set(dir(1, 2))
	rec := &recorder{}
	a, _, stop := run(t, Options{Coordinators: []string{f.srv.URL}, StateFile: state, Applier: rec})
	eventually(t, "version 1 applied", func() bool { return a.Status().Version == 1 })
	// The next poll ACKs: version 1 with the nonce of the response.
	eventually(t, "the ACK", func() bool {
		rs := f.requests()
		last := rs[len(rs)-1]
		return last.Version == 1 && last.Nonce != "" && last.Rejected == 0
	})
	stop()
	b, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(b), `"version": 1`) {
		t.Fatalf("persisted: %v %s", err, b)
	}

	// Restart with no coordinator reachable: the proxy starts from disk,
	// serves it, and says it is degraded.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rec2 := &recorder{}
	f.down.Store(true)
	a2, reg, _ := run(t, Options{Coordinators: []string{dead, f.srv.URL}, StateFile: state, Applier: rec2})
	if v := rec2.versions(); len(v) != 1 || v[0] != 1 {
		t.Fatalf("restored %v", v)
	}
	if st := a2.Status(); st.Source != "disk" || st.Version != 1 {
		t.Fatalf("status %+v", st)
	}
	eventually(t, "degraded mode", func() bool { return a2.Status().Degraded })
	if got := gauge(t, reg, MetricDegraded); got != 1 {
		t.Fatalf("degraded metric %v", got)
	}
	// The coordinator comes back with a new version.
	f.set(dir(2, 3))
	f.down.Store(false)
	eventually(t, "version 2 after recovery", func() bool { st := a2.Status(); return st.Version == 2 && !st.Degraded })
	if gauge(t, reg, MetricDegraded) != 0 || gauge(t, reg, MetricVersion) != 2 {
		t.Fatal("metrics not updated")
	}
	if st := a2.Status(); st.Source != "coordinator" || st.Leader != f.srv.URL {
		t.Fatalf("status %+v", st)
	}
}

func TestNACKNeverApplies(t *testing.T) {
	f := newFake(t)
	state := filepath.Join(t.TempDir(), "directive.json")
	rec := &recorder{}
	f.set(dir(1, 1))
	a, reg, _ := run(t, Options{Coordinators: []string{f.srv.URL}, StateFile: state, Applier: rec})
	eventually(t, "version 1", func() bool { return a.Status().Version == 1 })

	// An invalid directive (a schema this build does not know) is refused
	// before the proxy sees it.
	bad := dir(2, 1)
	bad.Schema = 2
	f.set(bad)
	eventually(t, "the NACK", func() bool {
		rs := f.requests()
		last := rs[len(rs)-1]
		return last.Rejected == 2 && strings.Contains(last.Error, "unsupported schema 2") && last.Version == 1
	})
	// A directive the proxy refuses (it does not fit its configuration).
	rec.mu.Lock()
	rec.refuse = errors.New("services[catalog]: policy round_robin does not take weights")
	rec.mu.Unlock()
	f.set(dir(3, 5))
	eventually(t, "the second NACK", func() bool {
		last := f.requests()[len(f.requests())-1]
		return last.Rejected == 3 && strings.Contains(last.Error, "round_robin")
	})
	if v := rec.versions(); len(v) != 1 {
		t.Fatalf("applied %v; NACKed directives must not be applied", v)
	}
	st := a.Status()
	if st.Version != 1 || st.Rejected != 3 {
		t.Fatalf("status %+v", st)
	}
	if gauge(t, reg, MetricApplies, "nack") != 2 {
		t.Fatal("nack counter")
	}
	// The last good directive is still the one on disk.
	d, err := load(state)
	if err != nil || d.Version != 1 {
		t.Fatalf("persisted %v %v", d, err)
	}
}

func TestFollowsTheLeader(t *testing.T) {
	leader := newFake(t)
	follower := newFake(t)
	follower.leader = leader.srv.URL
	leader.set(dir(4, 2))
	rec := &recorder{}
	a, _, _ := run(t, Options{Coordinators: []string{follower.srv.URL}, Applier: rec})
	eventually(t, "version 4 from the leader", func() bool { return a.Status().Version == 4 })
	if st := a.Status(); st.Leader != leader.srv.URL || st.Degraded {
		t.Fatalf("status %+v", st)
	}
}

func TestBadPersistedFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "directive.json")
	os.WriteFile(state, []byte(`{"schema": 1, "services": {"x": {"weights": {"h:1": -1}}}, "version": 3}`), 0o600)
	a, err := New(Options{Coordinators: []string{"http://127.0.0.1:1"}, ProxyID: "p", StateFile: state, Applier: &recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Restore(); err == nil || !strings.Contains(err.Error(), "weights[h:1]") {
		t.Fatalf("restore of a bad file: %v", err)
	}
	if a.Status().Version != 0 {
		t.Fatal("bad file applied")
	}
	if _, err := New(Options{Coordinators: []string{"127.0.0.1:7101"}, ProxyID: "p", Applier: &recorder{}}); err == nil {
		t.Fatal("URL without scheme accepted")
	}
}

// gauge reads one metric's value from a registry (label value optional).
func gauge(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(label) > 0 && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != label[0]) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s%v not found", name, label)
	return 0
}

func inCluster(d *directive.Directive, cluster string) *directive.Directive {
	d.Cluster = cluster
	return d
}

// TestRefusesAnotherClustersDirective (issue #13 item 10): after the
// coordinators were rebuilt (a new cluster, versions from 1 again), the
// proxy keeps the directive it runs and takes nothing from the new
// cluster, even under the same version number, until its operator resets
// it (removes the state file); a coordinator that checks refuses the
// proxy's polls with 409 and the agent says why.
func TestRefusesAnotherClustersDirective(t *testing.T) {
	old := newFake(t)
	old.cluster = "cluster-a"
	state := filepath.Join(t.TempDir(), "directive.json")
	old.set(inCluster(dir(1, 2), "cluster-a"))
	rec := &recorder{}
	a, _, stop := run(t, Options{Coordinators: []string{old.srv.URL}, StateFile: state, Applier: rec})
	eventually(t, "version 1 of cluster a", func() bool { st := a.Status(); return st.Version == 1 && st.Cluster == "cluster-a" })
	stop()

	// A rebuilt cluster that does not check (or predates the check): it
	// offers its own version 1, other content.
	legacy := newFake(t)
	legacy.set(inCluster(dir(1, 7), "cluster-b"))
	rec2 := &recorder{}
	a2, _, stop2 := run(t, Options{Coordinators: []string{legacy.srv.URL}, StateFile: state, Applier: rec2})
	eventually(t, "the directive offered and refused", func() bool {
		st := a2.Status()
		return strings.Contains(st.LastError, `of cluster "cluster-b"`) && st.ClusterMismatch != ""
	})
	if v := rec2.versions(); len(v) != 1 || rec2.applied[0].Services["catalog"].Weights["127.0.0.1:9001"] != 2 {
		t.Fatalf("applied %v; only the persisted version 1 of cluster a may run", v)
	}
	for _, r := range legacy.requests() {
		if r.Rejected != 0 || r.Cluster != "cluster-a" {
			t.Fatalf("the agent answered the other cluster's directive: %+v", r)
		}
	}
	eventually(t, "degraded: no directive can come from there", func() bool { return a2.Status().Degraded })
	stop2()

	// A rebuilt Gaia checks the cluster: 409, nothing applied.
	checking := newFake(t)
	checking.cluster = "cluster-b"
	checking.set(inCluster(dir(1, 7), "cluster-b"))
	rec3 := &recorder{}
	a3, _, stop3 := run(t, Options{Coordinators: []string{checking.srv.URL}, StateFile: state, Applier: rec3})
	eventually(t, "the 409", func() bool {
		return strings.Contains(a3.Status().ClusterMismatch, "cluster cluster-a; the coordinator is cluster cluster-b")
	})
	if len(rec3.versions()) != 1 {
		t.Fatalf("applied %v", rec3.versions())
	}
	stop3()

	// The operator resets the agent: it takes the new cluster's version.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	rec4 := &recorder{}
	a4, _, _ := run(t, Options{Coordinators: []string{checking.srv.URL}, StateFile: state, Applier: rec4})
	eventually(t, "version 1 of cluster b", func() bool {
		st := a4.Status()
		return st.Version == 1 && st.Cluster == "cluster-b" && st.ClusterMismatch == ""
	})
	if d, err := load(state); err != nil || d.Cluster != "cluster-b" || d.Services["catalog"].Weights["127.0.0.1:9001"] != 7 {
		t.Fatalf("persisted %+v %v", d, err)
	}
}

// TestRefusesAnOlderVersionOfItsCluster: versions only grow within a
// cluster; an older one (a coordinator restored from an old backup) is
// NACKed, not applied.
func TestRefusesAnOlderVersionOfItsCluster(t *testing.T) {
	f := newFake(t)
	f.set(inCluster(dir(5, 2), "c1"))
	rec := &recorder{}
	a, _, _ := run(t, Options{Coordinators: []string{f.srv.URL}, Applier: rec})
	eventually(t, "version 5", func() bool { return a.Status().Version == 5 })
	f.set(inCluster(dir(3, 9), "c1"))
	eventually(t, "the NACK of version 3", func() bool {
		rs := f.requests()
		last := rs[len(rs)-1]
		return last.Rejected == 3 && strings.Contains(last.Error, "older than version 5") && last.Version == 5
	})
	if v := rec.versions(); len(v) != 1 || v[0] != 5 {
		t.Fatalf("applied %v", v)
	}
}

// TestDegradedNeedsRoundsAndTime (Low): one failed round (an election) does
// not flap lbsys_agent_degraded; failures for DegradedRounds rounds and
// DegradedAfter do.
func TestDegradedNeedsRoundsAndTime(t *testing.T) {
	f := newFake(t)
	f.set(dir(1, 1))
	a, reg, _ := run(t, Options{Coordinators: []string{f.srv.URL}, Applier: &recorder{}, DegradedAfter: 400 * time.Millisecond, DegradedRounds: 3})
	eventually(t, "version 1", func() bool { return a.Status().Version == 1 })
	f.failNext.Store(2) // two failed rounds, then back
	eventually(t, "the failures consumed", func() bool { return f.failNext.Load() < 0 && a.Status().Connected })
	if a.Status().Degraded || gauge(t, reg, MetricWatchErrors) < 2 {
		t.Fatalf("degraded after two quick failed rounds: %+v", a.Status())
	}
	f.down.Store(true)
	start := time.Now()
	eventually(t, "degraded", func() bool { return a.Status().Degraded })
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("degraded after %s, before DegradedAfter", took)
	}
	if gauge(t, reg, MetricDegraded) != 1 {
		t.Fatal("metric")
	}
}
