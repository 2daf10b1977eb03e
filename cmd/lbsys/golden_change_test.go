package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// fakeCoordinator answers the change API with fixed changes, so the
// CLI's rendering of them can be pinned byte for byte.
func fakeCoordinator(t *testing.T) string {
	t.Helper()
	at := time.Date(2026, 11, 27, 11, 2, 3, 0, time.UTC)
	d := &directive.Directive{Schema: 1, Services: map[string]*directive.Service{
		"catalog": {Weights: map[string]float64{"127.0.0.1:9001": 2, "127.0.0.1:9002": 1}},
	}}
	ch := &change.Change{ID: 7, Type: change.Normal, State: change.Closed, Requester: "alice", Reason: "flash sale at noon",
		Directive: d, Canary: true, CreatedAt: at, UpdatedAt: at.Add(90 * time.Second),
		Assessment: &change.Assessment{Against: 3, Changes: 2, MaxWeightMovePercent: 100, Blessed: true, WithinPolicy: false,
			Notes: []string{"catalog: weight of 127.0.0.1:9001 moves 100%"}},
		Approvals: []change.Approval{{Who: "bob", At: at.Add(30 * time.Second), Stage: change.Authorize, Reason: "capacity checked"}},
		Version:   4, Base: 3, Outcome: change.Success, Detail: "live on 2 proxies", NotBefore: at.Add(time.Minute)}
	view := &change.ChangeView{Change: ch,
		Audit: []change.AuditEntry{
			{Seq: 1, At: at, Change: 7, Event: "transition", To: change.New, Who: "alice", Why: "flash sale at noon"},
			{Seq: 2, At: at.Add(30 * time.Second), Change: 7, Event: "transition", From: change.Authorize, To: change.Scheduled, Who: "bob", Why: "capacity checked"},
			{Seq: 3, At: at.Add(60 * time.Second), Change: 7, Event: "canary", Who: "gaia", Why: "1 of 2 proxies"},
		},
		Diff: directive.Diff(nil, d)}
	pending := &change.Change{ID: 8, Type: change.Normal, State: change.Authorize, Requester: "alice", Reason: "second wave",
		Directive: d, CreatedAt: at.Add(time.Hour), UpdatedAt: at.Add(time.Hour)}
	rollback := &change.Change{ID: 9, Type: change.Emergency, State: change.Review, Requester: "carol", Reason: "p99 regression",
		RollbackOf: 3, RollbackFor: 7, CreatedAt: at.Add(2 * time.Hour), UpdatedAt: at.Add(2 * time.Hour), Version: 5, Base: 4, Outcome: change.Success}
	list := []change.ChangeSummary{
		{ID: 9, Type: change.Emergency, State: change.Review, Requester: "carol", Reason: "p99 regression", Version: 5, Outcome: change.Success, UpdatedAt: rollback.UpdatedAt},
		{ID: 8, Type: change.Normal, State: change.Authorize, Requester: "alice", Reason: "second wave: a reason long enough to be cut at sixty characters for the table", UpdatedAt: pending.UpdatedAt},
		{ID: 7, Type: change.Normal, State: change.Closed, Requester: "alice", Reason: "flash sale at noon", Version: 4, Outcome: change.Success, UpdatedAt: ch.UpdatedAt},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var v any
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/changes":
			v = map[string]any{"changes": list}
		case r.Method == "GET" && r.URL.Path == "/v1/changes/7":
			v = view
		case r.Method == "POST" && r.URL.Path == "/v1/changes/7/approve":
			v = ch
		case r.Method == "POST" && r.URL.Path == "/v1/changes":
			w.WriteHeader(http.StatusCreated)
			v = pending
		case r.Method == "POST" && r.URL.Path == "/v1/rollback":
			w.WriteHeader(http.StatusCreated)
			v = rollback
		default:
			http.Error(w, `{"error": "not in the fake"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestGoldenChangeOutputs pins what `lbsys change` and `lbsys directive`
// print for a change (list, show, a decision, a proposal, a rollback, a
// diff of two files), so that moving the rendering out of cmd is provably
// behaviour-preserving.
func TestGoldenChangeOutputs(t *testing.T) {
	url := fakeCoordinator(t)
	t.Setenv("LBSYS_TOKEN", "golden-token-0123456789")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	os.WriteFile(a, []byte(`{"schema": 1, "services": {"catalog": {"weights": {"127.0.0.1:9001": 1}}}}`), 0o600)
	os.WriteFile(b, []byte(`{"schema": 1, "services": {"catalog": {"weights": {"127.0.0.1:9001": 2.5}, "cache": {"warm": ["/catalog/top"]}}}}`), 0o600)
	var all strings.Builder
	for _, args := range [][]string{
		{"change", "list"},
		{"change", "show", "7"},
		{"change", "approve", "7", "--reason", "capacity checked"},
		{"directive", "propose", "--file", b, "--reason", "second wave"},
		{"change", "rollback", "7", "--reason", "p99 regression"},
		{"directive", "diff", a, b},
		{"directive", "validate", "--file", b},
	} {
		run := args
		if args[1] != "validate" {
			run = append(append([]string(nil), args...), "--coordinator", url)
		}
		out, _, err := runRoot(t, run...)
		if err != nil {
			t.Fatalf("lbsys %v: %v\n%s", args, err, out)
		}
		all.WriteString("$ lbsys " + strings.Join(args, " ") + "\n" + out)
	}
	golden(t, "change.txt", strings.ReplaceAll(all.String(), dir, "DIR"))
}
