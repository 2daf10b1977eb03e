package gaia

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

func TestAuthAndRoles(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	for _, x := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		{"GET", "/v1/status", "", nil, http.StatusUnauthorized},
		{"GET", "/v1/status", "wrong-token-0123456789", nil, http.StatusUnauthorized},
		{"GET", "/v1/status", viewerTok, nil, http.StatusOK},
		{"POST", "/v1/changes", viewerTok, ProposeRequest{Type: change.Normal, Reason: "x", Directive: weightsDirective(1)}, http.StatusForbidden},
		{"POST", directive.WatchPath, aliceTok, directive.WatchRequest{Proxy: "p"}, http.StatusForbidden},
		{"PUT", "/v1/policy", aliceTok, change.DefaultPolicy(), http.StatusForbidden},
		{"GET", "/healthz", "", nil, http.StatusOK},
		{"GET", "/metrics", "", nil, http.StatusOK},
	} {
		if st, b, _ := call(t, x.method, c.url(0)+x.path, x.token, x.body); st != x.want {
			t.Errorf("%s %s with %q: %d %s, want %d", x.method, x.path, x.token, st, b, x.want)
		}
	}
}

func TestAPIWorkflow(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	base := c.url(0)
	// An invalid directive is refused with every problem by field.
	bad := weightsDirective(-1)
	bad.Services["catalog"].Admission = &directive.Admission{Min: 10, Cap: 5}
	st, b, _ := call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: change.Normal, Reason: "x", Directive: bad})
	var eb directive.ErrorBody
	json.Unmarshal(b, &eb)
	if st != http.StatusUnprocessableEntity || len(eb.Errors) != 2 || eb.Errors[0].Path != "services[catalog].weights[127.0.0.1:9001]" {
		t.Fatalf("invalid: %d %s", st, b)
	}
	// Unknown fields are errors.
	req, _ := http.NewRequest("POST", base+"/v1/changes", strings.NewReader(`{"type": "normal", "reason": "x", "directive": {"schema": 1, "services": {}}, "colour": "red"}`))
	req.Header.Set("Authorization", "Bearer "+aliceTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field: %d", resp.StatusCode)
	}
	// propose -> approve -> (no proxies) closed; reject and illegal moves.
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: change.Normal, Reason: "peak", Directive: weightsDirective(2), IdempotencyKey: "k"})
	var ch change.Change
	json.Unmarshal(b, &ch)
	if st != http.StatusCreated || ch.State != change.Authorize {
		t.Fatalf("propose %d %s", st, b)
	}
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: change.Normal, Reason: "peak", Directive: weightsDirective(2), IdempotencyKey: "k"})
	var again change.Change
	json.Unmarshal(b, &again)
	if again.ID != ch.ID {
		t.Fatalf("idempotent propose made change %d", again.ID)
	}
	if st, b, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", base, ch.ID), aliceTok, DecisionRequest{Reason: "mine"}); st != http.StatusForbidden || !strings.Contains(string(b), "approver role") {
		t.Fatalf("self approve without role: %d %s", st, b)
	}
	if st, _, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/approve", base, ch.ID), bobTok, DecisionRequest{Reason: "ok"}); st != http.StatusOK {
		t.Fatalf("approve: %d", st)
	}
	if st, b, _ := call(t, "POST", fmt.Sprintf("%s/v1/changes/%d/reject", base, ch.ID), bobTok, DecisionRequest{Reason: "late"}); st != http.StatusConflict || !strings.Contains(string(b), "roll it back instead") {
		t.Fatalf("reject after close: %d %s", st, b)
	}
	if st, _, _ := call(t, "POST", base+"/v1/changes/99/approve", bobTok, DecisionRequest{Reason: "x"}); st != http.StatusNotFound {
		t.Fatalf("unknown change: %d", st)
	}
	if st, _, _ := call(t, "POST", base+"/v1/changes/1/explode", bobTok, DecisionRequest{Reason: "x"}); st != http.StatusNotFound {
		t.Fatalf("unknown action: %d", st)
	}
	// show: audit trail and diff.
	st, b, _ = call(t, "GET", fmt.Sprintf("%s/v1/changes/%d", base, ch.ID), viewerTok, nil)
	var view ChangeView
	json.Unmarshal(b, &view)
	if st != 200 || view.State != change.Closed || len(view.Audit) != 7 || len(view.Diff) != 4 {
		t.Fatalf("show: %d audit %d diff %d\n%s", st, len(view.Audit), len(view.Diff), b)
	}
	// rollback via the API, list, audit, diff between versions.
	st, b, _ = call(t, "POST", base+"/v1/rollback", carolTok, RollbackRequest{Change: ch.ID, Reason: "undo"})
	if st != http.StatusCreated || !strings.Contains(string(b), `"rollback_for": 1`) {
		t.Fatalf("rollback: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/changes?state=open", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"id": 2`) || strings.Contains(string(b), `"id": 1,`) {
		t.Fatalf("list open: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/diff?from=1&to=2", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"path": "services[catalog]`) {
		t.Fatalf("diff: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/audit?change=2", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"who": "carol"`) {
		t.Fatalf("audit: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/directive?version=9", viewerTok, nil)
	if st != http.StatusNotFound || !strings.Contains(string(b), "does not exist (latest is 2)") {
		t.Fatalf("missing version: %d %s", st, b)
	}
	// policy
	p := change.DefaultPolicy()
	p.CanaryFraction = 2
	if st, b, _ := call(t, "PUT", base+"/v1/policy", adminTok, p); st != http.StatusUnprocessableEntity || !strings.Contains(string(b), "canary_fraction") {
		t.Fatalf("bad policy: %d %s", st, b)
	}
	st, b, _ = call(t, "GET", base+"/v1/status", viewerTok, nil)
	if st != 200 || !strings.Contains(string(b), `"raft_state": "Leader"`) || !strings.Contains(string(b), `"stable": 2`) {
		t.Fatalf("status: %s", b)
	}
	// Conditional proposals: refused unless planned on the stable version.
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: change.Normal, Reason: "planned on 1", Directive: weightsDirective(3), IfStable: 1})
	if st != http.StatusConflict || !strings.Contains(string(b), "stable version is 2, not 1") {
		t.Fatalf("if_stable 1: %d %s", st, b)
	}
	st, b, _ = call(t, "POST", base+"/v1/changes", aliceTok, ProposeRequest{Type: change.Normal, Reason: "planned on 2", Directive: weightsDirective(3), IfStable: 2})
	if st != http.StatusCreated || !strings.Contains(string(b), `"if_stable": 2`) {
		t.Fatalf("if_stable 2: %d %s", st, b)
	}
}
