package fsm

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// The change workflow: the audit trail, state transitions and the
// commands people and pipelines send (propose, approve, reject, cancel,
// roll back).

func (m *Machine) audit(now time.Time, changeID uint64, event string, from, to change.State, who, why string) {
	m.AuditSeq++
	m.Audit = append(m.Audit, change.AuditEntry{Seq: m.AuditSeq, Index: m.Index, At: now, Change: changeID, Event: event, From: from, To: to, Who: who, Why: why})
	// Trim in batches of an eighth of the limit: copying the whole log on
	// every entry made each Apply cost O(AuditLimit).
	if over := len(m.Audit) - m.Policy.AuditLimit; over > max(1, m.Policy.AuditLimit/8) {
		m.Audit = append([]change.AuditEntry(nil), m.Audit[over:]...)
	}
}

// move performs a legal transition, audits it and keeps the indexes.
func (m *Machine) move(c *change.Change, to change.State, now time.Time, who, why string) {
	if !Legal(c.State, to) {
		panic(fmt.Sprintf("illegal transition %s -> %s of change %d", c.State, to, c.ID))
	}
	from := c.State
	c.State = to
	c.UpdatedAt = now
	switch to {
	case change.Authorize, change.Scheduled:
		m.pending[c.ID] = true
	default:
		delete(m.pending, c.ID)
	}
	if to == change.Closed || to == change.Canceled {
		m.ClosedOrder = append(m.ClosedOrder, c.ID)
	}
	m.audit(now, c.ID, "transition", from, to, who, why)
}

// pendingChanges returns the changes waiting for approval or their turn,
// by ID (few: the rest of the state is never scanned per entry).
func (m *Machine) pendingChanges() []*change.Change {
	out := make([]*change.Change, 0, len(m.pending))
	for id := range m.pending {
		if ch := m.Changes[id]; ch != nil {
			out = append(out, ch)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *Machine) propose(c Command, now time.Time) Result {
	p := c.Propose
	if p == nil {
		return Result{Err: errf(CodeBadCommand, "propose: missing payload")}
	}
	if err := m.checkProposer(c, p.Type); err != nil {
		return Result{Err: err}
	}
	if err := checkKey(p.Key); err != nil {
		return Result{Err: err}
	}
	if ch, err, ok := m.keyed(c.By, p.Key); ok {
		return Result{Change: ch, Err: err}
	}
	if p.Directive == nil {
		return Result{Err: errf(CodeInvalid, "directive: required")}
	}
	if err := p.Directive.Validate(); err != nil {
		return Result{Err: errf(CodeInvalid, "%v", err)}
	}
	if strings.TrimSpace(p.Reason) == "" {
		return Result{Err: errf(CodeInvalid, "reason: required; say why the change is needed (it goes into the audit log)")}
	}
	if p.Type == change.Emergency && !p.NotBefore.IsZero() {
		return Result{Err: errf(CodeInvalid, "not_before: emergency changes are implemented at once; propose a normal change to schedule it")}
	}
	if p.IfStable != 0 && p.IfStable != m.Stable {
		return Result{Err: errf(CodeConflict, "if_stable: the stable version is %d, not %d: the directive was planned on an older state; plan it again on version %d", m.Stable, p.IfStable, m.Stable)}
	}
	ch := m.newChange(c.By, p.Type, p.Reason, p.Directive.Content(), now)
	ch.NotBefore = p.NotBefore
	ch.IfStable = p.IfStable
	ch.Canary = !p.NoCanary && p.Type != change.Emergency
	ch.Key = p.Key
	m.assessAndAuthorize(ch, c.By, now)
	return Result{Change: ch}
}

// checkProposer enforces the roles of proposals: the proposer role, plus
// the approver role for emergency changes (their requester authorizes
// them).
func (m *Machine) checkProposer(c Command, t change.Type) *Error {
	switch t {
	case change.Standard, change.Normal:
		if !HasRole(c.Roles, RoleProposer) {
			return errf(CodeForbidden, "%s may not propose changes: the token needs the proposer role", who(c.By))
		}
	case change.Emergency:
		if !HasRole(c.Roles, RoleProposer) || !HasRole(c.Roles, RoleApprover) {
			return errf(CodeForbidden, "%s may not propose an emergency change: it is authorized by its requester, whose token needs the proposer and approver roles", who(c.By))
		}
	default:
		return errf(CodeInvalid, "type: %q is not a change type; use standard, normal or emergency", t)
	}
	return nil
}

func who(by string) string {
	if by == "" {
		return "an anonymous caller"
	}
	return strconv.Quote(by)
}

func (m *Machine) newChange(by string, t change.Type, reason string, d *directive.Directive, now time.Time) *change.Change {
	m.LastChange++
	ch := &change.Change{ID: m.LastChange, Type: t, State: change.New, Requester: by, Reason: reason, Directive: d, CreatedAt: now, UpdatedAt: now}
	m.Changes[ch.ID] = ch
	m.audit(now, ch.ID, "transition", "", change.New, by, reason)
	return ch
}

// assessAndAuthorize runs the automatic part of the workflow after new.
func (m *Machine) assessAndAuthorize(ch *change.Change, by string, now time.Time) {
	m.recordKey(ch.Requester, ch.Key, ch.ID, now)
	a := m.assess(ch.Directive)
	ch.Assessment = a
	m.move(ch, change.Assess, now, System, fmt.Sprintf("directive valid; %d difference(s) from version %d; largest weight move %s", a.Changes, a.Against, pct(a.MaxWeightMovePercent)))
	switch ch.Type {
	case change.Standard:
		if !a.WithinPolicy {
			ch.Outcome, ch.Detail = change.Rejected, "outside the standard-change policy: "+strings.Join(a.Notes, "; ")+"; propose it as a normal change"
			m.move(ch, change.Canceled, now, System, ch.Detail)
			return
		}
		m.move(ch, change.Authorize, now, System, "standard change inside the policy: pre-authorized")
		m.move(ch, change.Scheduled, now, System, m.scheduleWhy(ch))
	case change.Normal:
		m.move(ch, change.Authorize, now, System, "awaiting approval by a holder of the approver role")
	case change.Emergency:
		ch.Approvals = append(ch.Approvals, change.Approval{Who: by, At: now, Stage: change.Authorize, Reason: "emergency: authorized by its requester"})
		m.move(ch, change.Authorize, now, by, "emergency change: authorized by its requester; a post-implementation review is required")
		m.move(ch, change.Scheduled, now, by, "emergency change: implement at once")
	}
}

func (m *Machine) scheduleWhy(ch *change.Change) string {
	if !ch.NotBefore.IsZero() {
		return "scheduled for " + ch.NotBefore.UTC().Format(time.RFC3339)
	}
	return "scheduled: implement as soon as no other change is in progress"
}

func pct(p float64) string {
	if p < 0 {
		return "unbounded (from weight 0)"
	}
	return strconv.FormatFloat(p, 'f', 1, 64) + "%"
}

func (m *Machine) assess(d *directive.Directive) *change.Assessment {
	base := m.Versions[m.Stable]
	a := &change.Assessment{Against: m.Stable, Changes: len(directive.Diff(base, d)), Blessed: true}
	for _, mv := range directive.WeightMoves(base, d) {
		p := mv.Percent
		if math.IsInf(p, 1) {
			p = -1
		}
		if a.MaxWeightMovePercent >= 0 && (p < 0 || p > a.MaxWeightMovePercent) {
			a.MaxWeightMovePercent = p
		}
		if p < 0 || p > m.Policy.MaxWeightMovePercent {
			a.Notes = append(a.Notes, fmt.Sprintf("services[%s].weights[%s] moves %v -> %v (%s > %v%%)", mv.Service, mv.Endpoint, mv.From, mv.To, pct(p), m.Policy.MaxWeightMovePercent))
		}
	}
	for _, name := range d.ServiceNames() {
		s := d.Services[name]
		if base != nil && directive.SectionEqual(base.Services[name], s) {
			continue // unchanged services need no fresh evidence
		}
		if s.Why == nil || !s.Why.Blessed {
			a.Blessed = false
			if m.Policy.RequireBlessed {
				a.Notes = append(a.Notes, fmt.Sprintf("services[%s]: the model behind it is not blessed (why.blessed)", name))
			}
		}
	}
	if len(a.Notes) > 5 {
		a.Notes = append(a.Notes[:5], fmt.Sprintf("and %d more", len(a.Notes)-5))
	}
	a.WithinPolicy = len(a.Notes) == 0
	return a
}

func (m *Machine) change(id uint64) (*change.Change, *Error) {
	ch := m.Changes[id]
	if ch == nil {
		return nil, errf(CodeNotFound, "no change %d", id)
	}
	return ch, nil
}

// openDecision runs what approve, reject and cancel check first, in this
// order: the payload; its idempotency key (a key used before answers with
// that decision's result); the change; whether the caller may decide
// (may); the reason. done is non-nil when the command ends there.
func (m *Machine) openDecision(c Command, verb string, may func(*change.Change) *Error) (d *Decision, ch *change.Change, done *Result) {
	d = c.Decision
	if d == nil {
		return nil, nil, &Result{Err: errf(CodeBadCommand, "%s: missing payload", verb)}
	}
	if err := checkKey(d.Key); err != nil {
		return nil, nil, &Result{Err: err}
	}
	if ch, err, ok := m.keyed(c.By, d.Key); ok {
		if err == nil && ch.ID != d.Change {
			err = errf(CodeConflict, "idempotency key %q was used for a decision on change %d, not %d; use a new key", d.Key, ch.ID, d.Change)
		}
		return nil, nil, &Result{Change: ch, Err: err}
	}
	ch, err := m.change(d.Change)
	if err != nil {
		return nil, nil, &Result{Err: err}
	}
	if err := may(ch); err != nil {
		return nil, nil, &Result{Err: err}
	}
	if strings.TrimSpace(d.Reason) == "" {
		return nil, nil, &Result{Err: errf(CodeInvalid, "reason: required; it goes into the audit log")}
	}
	return d, ch, nil
}

// approverOnly is openDecision's check for the decisions only an approver
// may take (verb: approve, reject).
func approverOnly(c Command, verb string) func(*change.Change) *Error {
	return func(*change.Change) *Error {
		if !HasRole(c.Roles, RoleApprover) {
			return errf(CodeForbidden, "%s may not %s: the token needs the approver role", who(c.By), verb)
		}
		return nil
	}
}

func (m *Machine) approve(c Command, now time.Time) Result {
	d, ch, done := m.openDecision(c, "approve", approverOnly(c, "approve"))
	if done != nil {
		return *done
	}
	switch ch.State {
	case change.Authorize:
		if c.By == ch.Requester && !m.Policy.SelfApproval {
			return Result{Err: errf(CodeForbidden, "%s requested change %d and may not approve it too (separation of duties); ask another approver", who(c.By), ch.ID)}
		}
		ch.Approvals = append(ch.Approvals, change.Approval{Who: c.By, At: now, Stage: change.Authorize, Reason: d.Reason})
		m.move(ch, change.Scheduled, now, c.By, "approved: "+d.Reason+"; "+m.scheduleWhy(ch))
	case change.Review:
		ch.Approvals = append(ch.Approvals, change.Approval{Who: c.By, At: now, Stage: change.Review, Reason: d.Reason})
		m.move(ch, change.Closed, now, c.By, "post-implementation review: "+d.Reason)
	default:
		return Result{Err: errf(CodeConflict, "change %d is in state %s; approve applies to changes in authorize (approval) or review (post-implementation review)", ch.ID, ch.State)}
	}
	m.recordKey(c.By, d.Key, ch.ID, now)
	return Result{Change: ch}
}

func (m *Machine) reject(c Command, now time.Time) Result {
	d, ch, done := m.openDecision(c, "reject", approverOnly(c, "reject"))
	if done != nil {
		return *done
	}
	if ch.State != change.Authorize {
		return Result{Err: errf(CodeConflict, "change %d is in state %s; only a change awaiting approval (authorize) can be rejected%s", ch.ID, ch.State, afterHint(ch))}
	}
	ch.Outcome, ch.Detail = change.Rejected, d.Reason
	m.move(ch, change.Canceled, now, c.By, "rejected: "+d.Reason)
	m.recordKey(c.By, d.Key, ch.ID, now)
	return Result{Change: ch}
}

func afterHint(ch *change.Change) string {
	switch ch.State {
	case change.Scheduled:
		return "; cancel it instead"
	case change.Implement, change.Review, change.Closed:
		return "; roll it back instead"
	}
	return ""
}

func (m *Machine) cancel(c Command, now time.Time) Result {
	d, ch, done := m.openDecision(c, "cancel", func(ch *change.Change) *Error {
		if !(c.By == ch.Requester && HasRole(c.Roles, RoleProposer)) && !HasRole(c.Roles, RoleApprover) {
			return errf(CodeForbidden, "%s may not cancel change %d: only its requester or an approver can", who(c.By), ch.ID)
		}
		return nil
	})
	if done != nil {
		return *done
	}
	if !Legal(ch.State, change.Canceled) {
		return Result{Err: errf(CodeConflict, "change %d is in state %s and can no longer be canceled%s", ch.ID, ch.State, afterHint(ch))}
	}
	ch.Outcome, ch.Detail = change.Withdrawn, d.Reason
	m.move(ch, change.Canceled, now, c.By, "canceled: "+d.Reason)
	m.recordKey(c.By, d.Key, ch.ID, now)
	return Result{Change: ch}
}

func (m *Machine) rollback(c Command, now time.Time) Result {
	r := c.Rollback
	if r == nil {
		return Result{Err: errf(CodeBadCommand, "rollback: missing payload")}
	}
	t := r.Type
	if t == "" {
		t = change.Emergency
	}
	if err := m.checkProposer(c, t); err != nil {
		return Result{Err: err}
	}
	if err := checkKey(r.Key); err != nil {
		return Result{Err: err}
	}
	if ch, err, ok := m.keyed(c.By, r.Key); ok {
		return Result{Change: ch, Err: err}
	}
	if strings.TrimSpace(r.Reason) == "" {
		return Result{Err: errf(CodeInvalid, "reason: required; it goes into the audit log")}
	}
	target, forChange := r.ToVersion, r.Change
	switch {
	case r.ToVersion != 0 && r.Change != 0:
		return Result{Err: errf(CodeInvalid, "give either to_version or change, not both")}
	case r.Change != 0:
		ch, err := m.change(r.Change)
		if err != nil {
			return Result{Err: err}
		}
		if ch.Version == 0 {
			return Result{Err: errf(CodeConflict, "change %d was never implemented (state %s); there is nothing to roll back%s", ch.ID, ch.State, cancelHint(ch))}
		}
		target = ch.Base
	case r.ToVersion == 0:
		return Result{Err: errf(CodeInvalid, "give to_version (a version to restore) or change (a change to undo)")}
	}
	content, err := m.content(target)
	if err != nil {
		return Result{Err: err}
	}
	ch := m.newChange(c.By, t, r.Reason, content, now)
	ch.RollbackOf, ch.RollbackFor = target, forChange
	ch.Canary = t != change.Emergency
	ch.Key = r.Key
	m.assessAndAuthorize(ch, c.By, now)
	return Result{Change: ch}
}

func cancelHint(ch *change.Change) string {
	if Legal(ch.State, change.Canceled) {
		return "; cancel it instead"
	}
	return ""
}

// content returns the content of version v (0: the empty directive).
func (m *Machine) content(v uint64) (*directive.Directive, *Error) {
	if v == 0 {
		return &directive.Directive{Schema: directive.SchemaVersion, Services: map[string]*directive.Service{}}, nil
	}
	d := m.Versions[v]
	if d == nil {
		if v > m.Latest {
			return nil, errf(CodeNotFound, "version %d does not exist (latest is %d)", v, m.Latest)
		}
		return nil, errf(CodeNotFound, "version %d is no longer kept (the history keeps the last %d versions)", v, m.Policy.HistoryLimit)
	}
	return d.Content(), nil
}
