package gaia

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// The coordinator's HTTP API (docs in docs/coordinator.md). Every call but
// /healthz and /metrics needs `Authorization: Bearer <token>`; writes go to
// the leader (others answer 307 with its URL) and are acknowledged only
// after a quorum committed them.

// The wire types live in api/change (shared with the CLI, the client and
// the pipeline); these aliases keep the handlers short.
type (
	ProposeRequest  = change.ProposeRequest
	DecisionRequest = change.DecisionRequest
	RollbackRequest = change.RollbackRequest
	JoinRequest     = change.JoinRequest
	ChangeView      = change.ChangeView
	ChangeSummary   = change.ChangeSummary
	Status          = change.Status
)

// Handler returns the API.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.opts.Registry, promhttp.HandlerOpts{}))
	h := func(pattern, role string, f func(http.ResponseWriter, *http.Request, Principal)) {
		mux.Handle(pattern, n.auth(role, f))
	}
	h("GET /v1/status", fsm.RoleViewer, n.handleStatus)
	h("GET /v1/directive", fsm.RoleViewer, n.handleGetDirective)
	h("GET /v1/diff", fsm.RoleViewer, n.handleDiff)
	h("GET /v1/changes", fsm.RoleViewer, n.handleListChanges)
	h("GET /v1/changes/{id}", fsm.RoleViewer, n.handleShowChange)
	h("POST /v1/changes", fsm.RoleProposer, n.handlePropose)
	h("POST /v1/changes/{id}/{action}", fsm.RoleViewer, n.handleDecision) // roles checked by the FSM
	h("POST /v1/rollback", fsm.RoleProposer, n.handleRollback)
	h("GET /v1/audit", fsm.RoleViewer, n.handleAudit)
	h("GET /v1/policy", fsm.RoleViewer, n.handleGetPolicy)
	h("PUT /v1/policy", fsm.RoleAdmin, n.handlePutPolicy)
	h("POST /v1/snapshot", fsm.RoleAdmin, n.handleSnapshot)
	h("POST /v1/join", fsm.RoleAdmin, n.handleJoin)
	h("DELETE /v1/members/{id}", fsm.RoleAdmin, n.handleRemove)
	h("POST "+directive.WatchPath, fsm.RoleAgent, n.handleWatch)
	h("POST "+directive.ReportPath, fsm.RoleAgent, n.handleReport)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			// A body must arrive in time, even one no handler reads (an
			// unknown path, a 405): net/http drains it after the answer.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
		}
		if h := n.Halted(); h != "" && r.URL.Path != "/metrics" {
			refuseUnread(w, r)
			writeError(w, http.StatusServiceUnavailable, directive.ErrorBody{Error: "this coordinator stopped taking part in the cluster: " + h + "; fix it and restart it (its data directory is intact)"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// auth checks the bearer token and the role.
func (n *Node) auth(role string, f func(http.ResponseWriter, *http.Request, Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p, found := n.opts.Tokens.Lookup(strings.TrimSpace(tok))
		if !ok || !found {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbsys-coordinator"`)
			msg := "missing or unknown bearer token"
			if n.opts.Tokens.Len() == 0 {
				msg = "no tokens configured on this coordinator: start it with --tokens-file or set LBSYS_COORDINATOR_TOKEN"
			}
			refuseUnread(w, r)
			writeError(w, http.StatusUnauthorized, directive.ErrorBody{Error: msg})
			return
		}
		// Every role may read; the others are checked as named.
		if !fsm.HasRole(p.Roles, role) && !(role == fsm.RoleViewer && len(p.Roles) > 0) {
			refuseUnread(w, r)
			writeError(w, http.StatusForbidden, directive.ErrorBody{Error: fmt.Sprintf("%s lacks the %s role this call needs", p.Name, role)})
			return
		}
		f(w, r, p)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, body directive.ErrorBody) {
	writeJSON(w, status, body)
}

// Request bodies and the connection they come on. The server sets no
// ReadTimeout (the directive stream's long polls need long-lived
// connections), so the deadlines that bound a body are set here, per
// request, through http.ResponseController.
var (
	// bodyReadTimeout bounds reading a JSON body (a directive is at most
	// directive.MaxBytes): a client that announces a body and trickles it
	// cannot hold a handler, and its connection, for longer.
	bodyReadTimeout = 10 * time.Second
	// unreadBodyGrace bounds what net/http reads of a body a handler did
	// not read (it drains up to 256 KiB after the handler returns, so
	// that the connection could serve another request): an answer sent
	// without reading the body closes the connection instead, and this
	// much time is all a client still sending gets.
	unreadBodyGrace = 2 * time.Second
)

// refuseUnread prepares an answer sent before the request's body was read
// (401, 403, 503 while halted, a bad path): the connection closes after
// it, and the server stops waiting for the body after unreadBodyGrace.
// Without this a client that announces a large body and sends it slowly
// keeps the connection — and a goroutine — for as long as it likes, token
// or not. A request without a body keeps its connection.
func refuseUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 {
		return
	}
	w.Header().Set("Connection", "close")
	// An error means the writer cannot set deadlines (a test recorder,
	// HTTP/2); Connection: close still ends the exchange there.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(unreadBodyGrace))
}

// decode reads a JSON body strictly, within bodyReadTimeout.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, directive.MaxBytes+64<<10))
	if err != nil {
		// Whatever is left of the body is still on the wire: the
		// connection cannot carry another request, and the client had
		// its time (net/http would wait for the rest after the answer).
		w.Header().Set("Connection", "close")
		_ = rc.SetReadDeadline(time.Now())
		var tooBig *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &tooBig):
			writeError(w, http.StatusRequestEntityTooLarge, directive.ErrorBody{Error: fmt.Sprintf("request body larger than %d bytes: a directive is at most %d bytes of JSON", tooBig.Limit, directive.MaxBytes)})
		case errors.As(err, &ne) && ne.Timeout():
			writeError(w, http.StatusRequestTimeout, directive.ErrorBody{Error: fmt.Sprintf("the request body did not arrive within %v: send it whole, at once", bodyReadTimeout)})
		default:
			writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: "reading the request body: " + err.Error()})
		}
		return false
	}
	// The body is read: no deadline on what follows (a watch holds the
	// request for up to its wait, and the server's background read of the
	// connection would end it at a deadline).
	_ = rc.SetReadDeadline(time.Time{})
	if err := directive.DecodeStrict(b, v); err != nil {
		writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: err.Error()})
		return false
	}
	return true
}

// leaderURL is the leader's API URL, if known.
func (n *Node) leaderURL() (string, string) {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return "", ""
	}
	var url string
	n.fsm.read(func(m *fsm.Machine) {
		if mb := m.Members[string(id)]; mb != nil && mb.HTTPAddr != "" {
			url = "http://" + mb.HTTPAddr
		}
	})
	return string(id), url
}

// notLeader answers a call that only the leader can serve: 307 to the
// leader, or 503 when there is none (no quorum).
func (n *Node) notLeader(w http.ResponseWriter, r *http.Request) {
	id, url := n.leaderURL()
	switch {
	case url != "" && id != n.opts.ID:
		w.Header().Set("Location", url+r.URL.RequestURI())
		writeError(w, http.StatusTemporaryRedirect, directive.ErrorBody{Error: "not the leader; the leader is " + id, Leader: url})
	case id == n.opts.ID:
		// Leader by Raft, but not caught up yet (barrier pending).
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, directive.ErrorBody{Error: "leader elected, catching up with the log; retry in a moment"})
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, directive.ErrorBody{Error: errNoQuorum.Error()})
	}
}

// write applies a command on behalf of a client and maps the outcome.
func (n *Node) write(w http.ResponseWriter, r *http.Request, c fsm.Command, okStatus int) (fsm.Result, bool) {
	if !n.IsLeader() {
		n.notLeader(w, r)
		return fsm.Result{}, false
	}
	res, aerr := n.apply(r.Context(), c)
	if aerr != nil {
		if aerr.notLeader && n.raft.State() != raft.Leader {
			n.notLeader(w, r)
			return res, false
		}
		body := directive.ErrorBody{Error: aerr.Error()}
		if aerr.unknown {
			body.Outcome = "unknown"
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, body)
		return res, false
	}
	if res.Err != nil {
		writeError(w, fsmStatus(res.Err.Code), directive.ErrorBody{Error: res.Err.Msg})
		return res, false
	}
	if res.Change != nil {
		writeJSON(w, okStatus, res.Change)
	} else {
		writeJSON(w, okStatus, map[string]any{"result": "ok"})
	}
	return res, true
}

func fsmStatus(code string) int {
	switch code {
	case fsm.CodeInvalid:
		return http.StatusUnprocessableEntity
	case fsm.CodeForbidden:
		return http.StatusForbidden
	case fsm.CodeNotFound:
		return http.StatusNotFound
	case fsm.CodeConflict:
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// readable decides whether this node may serve a read: `?stale=1` reads
// the local replica; otherwise the read is linearizable, served by a
// caught-up leader that just confirmed it still has its majority.
func (n *Node) readable(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Query().Get("stale") == "1" {
		return true
	}
	if !n.IsLeader() {
		n.notLeader(w, r)
		return false
	}
	if err := n.wait(r.Context(), n.raft.VerifyLeader(), n.verifyTimeout()); err != nil {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, directive.ErrorBody{Error: errNoQuorum.Error()})
		return false
	}
	return true
}

func pathID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		refuseUnread(w, r)
		writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: fmt.Sprintf("change id %q: want a positive integer", r.PathValue("id"))})
		return 0, false
	}
	return id, true
}

func queryUint(w http.ResponseWriter, r *http.Request, name string) (uint64, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, true
	}
	x, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: fmt.Sprintf("%s=%q: want a non-negative integer", name, v)})
		return 0, false
	}
	return x, true
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request, _ Principal) {
	id, url := n.leaderURL()
	st := Status{ID: n.opts.ID, RaftState: n.raft.State().String(), Leader: id, LeaderURL: url,
		Term: n.raft.CurrentTerm(), LastIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
		Pending: map[string]int{}}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Voters = append(st.Voters, string(s.ID))
		}
	}
	st.NodeKeyID, st.RaftTLS, st.Halted = n.keyID, n.stream != nil, n.Halted()
	n.fsm.read(func(m *fsm.Machine) {
		for _, mb := range m.Members {
			st.Members = append(st.Members, *mb)
		}
		st.Stable, st.Latest, st.Live, st.Active, st.Policy, st.Now = m.Stable, m.Latest, m.Live(), m.Active, m.Policy, m.Now
		st.Cluster, st.KeyID, st.LastGood, st.ClockClamps = m.Cluster, m.KeyID, m.LastGood, m.ClockClamps
		if m.Canary != nil {
			c := *m.Canary
			st.Canary = &c
		}
		st.Proxies = m.ActiveProxies()
		for _, c := range m.Changes {
			st.Pending[string(c.State)]++
		}
	})
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].ID < st.Members[j].ID })
	writeJSON(w, http.StatusOK, st)
}

func (n *Node) handleGetDirective(w http.ResponseWriter, r *http.Request, _ Principal) {
	v, ok := queryUint(w, r, "version")
	if !ok || !n.readable(w, r) {
		return
	}
	var d *directive.Directive
	var stable, latest uint64
	n.fsm.read(func(m *fsm.Machine) {
		stable, latest = m.Stable, m.Latest
		if v == 0 {
			v = m.Stable
		}
		d = m.Versions[v] // never mutated once created
	})
	switch {
	case d != nil:
		writeJSON(w, http.StatusOK, d)
	case stable == 0 && v == 0:
		writeError(w, http.StatusNotFound, directive.ErrorBody{Error: "no directive has been committed yet"})
	case v > latest:
		writeError(w, http.StatusNotFound, directive.ErrorBody{Error: fmt.Sprintf("version %d does not exist (latest is %d)", v, latest)})
	default:
		writeError(w, http.StatusNotFound, directive.ErrorBody{Error: fmt.Sprintf("version %d is no longer kept", v)})
	}
}

func (n *Node) handleDiff(w http.ResponseWriter, r *http.Request, _ Principal) {
	from, ok1 := queryUint(w, r, "from")
	if !ok1 {
		return
	}
	to, ok2 := queryUint(w, r, "to")
	if !ok2 || !n.readable(w, r) {
		return
	}
	var a, b *directive.Directive
	var missing uint64
	n.fsm.read(func(m *fsm.Machine) {
		if to == 0 {
			to = m.Stable
		}
		a, b = m.Versions[from], m.Versions[to]
		if from != 0 && a == nil {
			missing = from
		}
		if to != 0 && b == nil {
			missing = to
		}
	})
	if missing != 0 {
		writeError(w, http.StatusNotFound, directive.ErrorBody{Error: fmt.Sprintf("version %d is not kept or does not exist", missing)})
		return
	}
	diff := directive.Diff(a, b)
	if diff == nil {
		diff = []directive.Change{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "diff": diff})
}

func (n *Node) handleListChanges(w http.ResponseWriter, r *http.Request, _ Principal) {
	state := change.State(r.URL.Query().Get("state"))
	limit, ok := queryUint(w, r, "limit")
	if !ok || !n.readable(w, r) {
		return
	}
	if limit == 0 {
		limit = 100
	}
	out := []ChangeSummary{}
	n.fsm.read(func(m *fsm.Machine) {
		ids := make([]uint64, 0, len(m.Changes))
		for id, c := range m.Changes {
			if state == "" || c.State == state || (state == "open" && c.State != change.Closed && c.State != change.Canceled) {
				ids = append(ids, id)
			}
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
		for _, id := range ids {
			if uint64(len(out)) >= limit {
				break
			}
			c := m.Changes[id]
			out = append(out, ChangeSummary{ID: c.ID, Type: c.Type, State: c.State, Requester: c.Requester, Reason: c.Reason, Version: c.Version, Outcome: c.Outcome, UpdatedAt: c.UpdatedAt})
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"changes": out})
}

func (n *Node) handleShowChange(w http.ResponseWriter, r *http.Request, _ Principal) {
	id, ok := pathID(w, r)
	if !ok || !n.readable(w, r) {
		return
	}
	var view *ChangeView
	var last uint64
	n.fsm.read(func(m *fsm.Machine) {
		last = m.LastChange
		c := m.Changes[id]
		if c == nil {
			return
		}
		cc := *c
		cc.Approvals = append([]change.Approval(nil), c.Approvals...)
		view = &ChangeView{Change: &cc, Audit: []change.AuditEntry{}}
		for _, a := range m.Audit {
			if a.Change == id {
				view.Audit = append(view.Audit, a)
			}
		}
		base := m.Versions[m.Stable]
		if c.Version != 0 {
			base = m.Versions[c.Base]
		}
		view.Diff = directive.Diff(base, c.Directive)
	})
	if view == nil {
		msg := fmt.Sprintf("no change %d (the last change is %d)", id, last)
		if id <= last {
			msg = fmt.Sprintf("change %d is closed and archived: the state keeps the newest closed changes (closed_change_limit); its record is in archive/changes.jsonl in a coordinator's data directory", id)
		}
		writeError(w, http.StatusNotFound, directive.ErrorBody{Error: msg})
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (n *Node) handlePropose(w http.ResponseWriter, r *http.Request, p Principal) {
	var req ProposeRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Directive == nil {
		writeError(w, http.StatusUnprocessableEntity, directive.ErrorBody{Error: "directive: required"})
		return
	}
	// Refuse an invalid directive here, with every problem listed, before
	// it costs a log entry.
	if err := req.Directive.Validate(); err != nil {
		var ve *directive.ValidationError
		errors.As(err, &ve)
		body := directive.ErrorBody{Error: err.Error()}
		if ve != nil {
			body.Errors = ve.Errors
		}
		writeError(w, http.StatusUnprocessableEntity, body)
		return
	}
	n.write(w, r, fsm.Command{Op: fsm.OpPropose, By: p.Name, Roles: p.Roles, Propose: &fsm.Propose{
		Type: req.Type, Reason: req.Reason, Directive: req.Directive, NotBefore: req.NotBefore, NoCanary: req.NoCanary, Key: req.IdempotencyKey,
		IfStable: req.IfStable,
	}}, http.StatusCreated)
}

func (n *Node) handleDecision(w http.ResponseWriter, r *http.Request, p Principal) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	ops := map[string]fsm.Op{"approve": fsm.OpApprove, "reject": fsm.OpReject, "cancel": fsm.OpCancel}
	op, ok := ops[r.PathValue("action")]
	if !ok {
		refuseUnread(w, r)
		writeError(w, http.StatusNotFound, directive.ErrorBody{Error: fmt.Sprintf("unknown action %q: use approve, reject or cancel", r.PathValue("action"))})
		return
	}
	var req DecisionRequest
	if !decode(w, r, &req) {
		return
	}
	n.write(w, r, fsm.Command{Op: op, By: p.Name, Roles: p.Roles, Decision: &fsm.Decision{Change: id, Reason: req.Reason, Key: req.IdempotencyKey}}, http.StatusOK)
}

func (n *Node) handleRollback(w http.ResponseWriter, r *http.Request, p Principal) {
	var req RollbackRequest
	if !decode(w, r, &req) {
		return
	}
	n.write(w, r, fsm.Command{Op: fsm.OpRollback, By: p.Name, Roles: p.Roles, Rollback: &fsm.Rollback{
		ToVersion: req.ToVersion, Change: req.Change, Type: req.Type, Reason: req.Reason, Key: req.IdempotencyKey,
	}}, http.StatusCreated)
}

func (n *Node) handleAudit(w http.ResponseWriter, r *http.Request, _ Principal) {
	changeID, ok := queryUint(w, r, "change")
	if !ok {
		return
	}
	since, ok := queryUint(w, r, "since")
	if !ok || !n.readable(w, r) {
		return
	}
	out := []change.AuditEntry{}
	n.fsm.read(func(m *fsm.Machine) {
		for _, a := range m.Audit {
			if a.Seq > since && (changeID == 0 || a.Change == changeID) {
				out = append(out, a)
			}
		}
	})
	writeJSON(w, http.StatusOK, map[string]any{"audit": out})
}

func (n *Node) handleGetPolicy(w http.ResponseWriter, r *http.Request, _ Principal) {
	if !n.readable(w, r) {
		return
	}
	var p change.Policy
	n.fsm.read(func(m *fsm.Machine) { p = m.Policy })
	writeJSON(w, http.StatusOK, p)
}

func (n *Node) handlePutPolicy(w http.ResponseWriter, r *http.Request, p Principal) {
	// Fields left out keep their documented defaults (a policy written
	// before a field existed must not set it to 0).
	pol := change.DefaultPolicy()
	if !decode(w, r, &pol) {
		return
	}
	if err := pol.Validate(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, directive.ErrorBody{Error: err.Error()})
		return
	}
	n.write(w, r, fsm.Command{Op: fsm.OpPolicy, By: p.Name, Roles: p.Roles, Policy: &pol}, http.StatusOK)
}

func (n *Node) handleSnapshot(w http.ResponseWriter, r *http.Request, _ Principal) {
	idx, err := n.Checkpoint()
	if err != nil {
		writeError(w, http.StatusInternalServerError, directive.ErrorBody{Error: "snapshot: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": "checkpointed", "index": idx})
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request, p Principal) {
	var req JoinRequest
	if !decode(w, r, &req) {
		return
	}
	if req.ID == "" || req.RaftAddr == "" || req.HTTPAddr == "" {
		writeError(w, http.StatusBadRequest, directive.ErrorBody{Error: "id, raft_addr and http_addr are required"})
		return
	}
	if !n.IsLeader() {
		n.notLeader(w, r)
		return
	}
	var keyID string
	n.fsm.read(func(m *fsm.Machine) { keyID = m.KeyID })
	if keyID != "" && req.KeyID != keyID {
		have := "no cluster key"
		if req.KeyID != "" {
			have = "cluster key " + req.KeyID
		}
		writeError(w, http.StatusConflict, directive.ErrorBody{Error: fmt.Sprintf("node %s has %s, and this cluster seals its entries with key %s: it could not verify them; start it with the cluster's cluster.key (--tls-dir)", req.ID, have, keyID)})
		return
	}
	if err := n.wait(r.Context(), n.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, n.opts.RequestTimeout), n.opts.RequestTimeout); err != nil {
		writeError(w, http.StatusServiceUnavailable, directive.ErrorBody{Error: "adding voter " + req.ID + ": " + err.Error()})
		return
	}
	n.log.Info("voter added", "id", req.ID, "raft", req.RaftAddr, "http", req.HTTPAddr, "by", p.Name)
	n.write(w, r, fsm.Command{Op: fsm.OpMember, By: fsm.System, Member: &change.Member{ID: req.ID, RaftAddr: req.RaftAddr, HTTPAddr: req.HTTPAddr}}, http.StatusOK)
}

// handleRemove takes a voter out of the cluster (to replace a node, or
// shrink 5 to 3).
func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request, p Principal) {
	id := r.PathValue("id")
	if !n.IsLeader() {
		n.notLeader(w, r)
		return
	}
	if id == n.opts.ID {
		writeError(w, http.StatusConflict, directive.ErrorBody{Error: "this node leads; remove another node, or stop this one and remove it through the next leader"})
		return
	}
	if err := n.wait(r.Context(), n.raft.RemoveServer(raft.ServerID(id), 0, n.opts.RequestTimeout), n.opts.RequestTimeout); err != nil {
		writeError(w, http.StatusServiceUnavailable, directive.ErrorBody{Error: "removing " + id + ": " + err.Error()})
		return
	}
	n.log.Info("voter removed", "id", id, "by", p.Name)
	writeJSON(w, http.StatusOK, map[string]any{"result": "removed", "id": id})
}

// joinCluster asks the coordinator at base (following leader redirects) to
// add this node.
func joinCluster(ctx context.Context, base, token string, req JoinRequest) error {
	return client.New([]string{base}, token).Do(ctx, http.MethodPost, "/v1/join", req, nil)
}
