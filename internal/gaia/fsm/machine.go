package fsm

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// Machine is the whole replicated state. Its exported fields are its
// snapshot format.
type Machine struct {
	// Now is the largest command time seen; Index the last applied entry.
	Now   time.Time `json:"now"`
	Index uint64    `json:"index"`

	Policy    Policy `json:"policy"`
	PolicySet bool   `json:"policy_set"`

	LastChange uint64             `json:"last_change"`
	Changes    map[uint64]*Change `json:"changes"`
	Keys       map[string]uint64  `json:"keys"`

	// Versions keeps the most recent directive versions (HistoryLimit).
	Versions map[uint64]*directive.Directive `json:"versions"`
	// Latest is the highest version ever created; Stable the version every
	// proxy outside a canary should run (0: none).
	Latest uint64 `json:"latest"`
	Stable uint64 `json:"stable"`
	// Active is the change in implement (0: none); Canary its canary.
	Active uint64  `json:"active"`
	Canary *Canary `json:"canary,omitempty"`

	Proxies map[string]*Proxy  `json:"proxies"`
	Members map[string]*Member `json:"members"`

	Audit    []AuditEntry `json:"audit"`
	AuditSeq uint64       `json:"audit_seq"`
}

// NewMachine returns an empty machine with the default policy.
func NewMachine() *Machine {
	return &Machine{
		Policy:   DefaultPolicy(),
		Changes:  map[uint64]*Change{},
		Keys:     map[string]uint64{},
		Versions: map[uint64]*directive.Directive{},
		Proxies:  map[string]*Proxy{},
		Members:  map[string]*Member{},
	}
}

// Marshal encodes the machine for a snapshot.
func (m *Machine) Marshal() ([]byte, error) { return json.Marshal(m) }

// Unmarshal restores a machine from a snapshot.
func Unmarshal(b []byte) (*Machine, error) {
	m := NewMachine()
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("gaia snapshot: %w", err)
	}
	if m.Changes == nil {
		m.Changes = map[uint64]*Change{}
	}
	if m.Keys == nil {
		m.Keys = map[string]uint64{}
	}
	if m.Versions == nil {
		m.Versions = map[uint64]*directive.Directive{}
	}
	if m.Proxies == nil {
		m.Proxies = map[string]*Proxy{}
	}
	if m.Members == nil {
		m.Members = map[string]*Member{}
	}
	return m, nil
}

// Apply applies one committed command (see the package documentation).
func (m *Machine) Apply(index uint64, c Command) (res Result) {
	defer func() {
		// A bug must not stop the replica: refuse the command instead.
		// State may be partly changed, but identically on every replica.
		if r := recover(); r != nil {
			res = Result{Err: errf(CodeBadCommand, "internal error applying %s: %v", c.Op, r)}
		}
	}()
	if index > m.Index {
		m.Index = index
	}
	if c.At.After(m.Now) {
		m.Now = c.At
	}
	now := m.Now
	switch c.Op {
	case OpPropose:
		res = m.propose(c, now)
	case OpApprove:
		res = m.approve(c, now)
	case OpReject:
		res = m.reject(c, now)
	case OpCancel:
		res = m.cancel(c, now)
	case OpRollback:
		res = m.rollback(c, now)
	case OpReport:
		res = m.report(c, now)
	case OpTick:
	case OpMember:
		res = m.member(c, now)
	case OpPolicy:
		res = m.setPolicy(c, now)
	default:
		res = Result{Err: errf(CodeBadCommand, "unknown operation %q", c.Op)}
	}
	m.advance(now)
	if res.Change != nil {
		// Return the change as it stands after the cascade.
		res.Change = m.Changes[res.Change.ID].copy()
		res.Version = res.Change.Version
	}
	return res
}

func (c *Change) copy() *Change {
	if c == nil {
		return nil
	}
	cc := *c
	cc.Approvals = append([]Approval(nil), c.Approvals...)
	return &cc
}

// ---- audit and transitions ----

func (m *Machine) audit(now time.Time, change uint64, event string, from, to State, who, why string) {
	m.AuditSeq++
	m.Audit = append(m.Audit, AuditEntry{Seq: m.AuditSeq, Index: m.Index, At: now, Change: change, Event: event, From: from, To: to, Who: who, Why: why})
	if over := len(m.Audit) - m.Policy.AuditLimit; over > 0 {
		m.Audit = append([]AuditEntry(nil), m.Audit[over:]...)
	}
}

// move performs a legal transition and audits it.
func (m *Machine) move(c *Change, to State, now time.Time, who, why string) {
	if !Legal(c.State, to) {
		panic(fmt.Sprintf("illegal transition %s -> %s of change %d", c.State, to, c.ID))
	}
	from := c.State
	c.State = to
	c.UpdatedAt = now
	m.audit(now, c.ID, "transition", from, to, who, why)
}

// ---- commands ----

func (m *Machine) propose(c Command, now time.Time) Result {
	p := c.Propose
	if p == nil {
		return Result{Err: errf(CodeBadCommand, "propose: missing payload")}
	}
	if err := m.checkProposer(c, p.Type); err != nil {
		return Result{Err: err}
	}
	if p.Key != "" {
		if id, ok := m.Keys[p.Key]; ok {
			return Result{Change: m.Changes[id]}
		}
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
	if p.Type == Emergency && !p.NotBefore.IsZero() {
		return Result{Err: errf(CodeInvalid, "not_before: emergency changes are implemented at once; propose a normal change to schedule it")}
	}
	if p.IfStable != 0 && p.IfStable != m.Stable {
		return Result{Err: errf(CodeConflict, "if_stable: the stable version is %d, not %d: the directive was planned on an older state; plan it again on version %d", m.Stable, p.IfStable, m.Stable)}
	}
	ch := m.newChange(c.By, p.Type, p.Reason, p.Directive.Content(), now)
	ch.NotBefore = p.NotBefore
	ch.IfStable = p.IfStable
	ch.Canary = !p.NoCanary && p.Type != Emergency
	ch.Key = p.Key
	m.assessAndAuthorize(ch, c.By, now)
	return Result{Change: ch}
}

// checkProposer enforces the roles of proposals: the proposer role, plus
// the approver role for emergency changes (their requester authorizes
// them).
func (m *Machine) checkProposer(c Command, t Type) *Error {
	switch t {
	case Standard, Normal:
		if !HasRole(c.Roles, RoleProposer) {
			return errf(CodeForbidden, "%s may not propose changes: the token needs the proposer role", who(c.By))
		}
	case Emergency:
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

func (m *Machine) newChange(by string, t Type, reason string, d *directive.Directive, now time.Time) *Change {
	m.LastChange++
	ch := &Change{ID: m.LastChange, Type: t, State: New, Requester: by, Reason: reason, Directive: d, CreatedAt: now, UpdatedAt: now}
	m.Changes[ch.ID] = ch
	m.audit(now, ch.ID, "transition", "", New, by, reason)
	return ch
}

// assessAndAuthorize runs the automatic part of the workflow after new.
func (m *Machine) assessAndAuthorize(ch *Change, by string, now time.Time) {
	if ch.Key != "" {
		m.Keys[ch.Key] = ch.ID
	}
	a := m.assess(ch.Directive)
	ch.Assessment = a
	m.move(ch, Assess, now, System, fmt.Sprintf("directive valid; %d difference(s) from version %d; largest weight move %s", a.Changes, a.Against, pct(a.MaxWeightMovePercent)))
	switch ch.Type {
	case Standard:
		if !a.WithinPolicy {
			ch.Outcome, ch.Detail = Rejected, "outside the standard-change policy: "+strings.Join(a.Notes, "; ")+"; propose it as a normal change"
			m.move(ch, Canceled, now, System, ch.Detail)
			return
		}
		m.move(ch, Authorize, now, System, "standard change inside the policy: pre-authorized")
		m.move(ch, Scheduled, now, System, m.scheduleWhy(ch))
	case Normal:
		m.move(ch, Authorize, now, System, "awaiting approval by a holder of the approver role")
	case Emergency:
		ch.Approvals = append(ch.Approvals, Approval{Who: by, At: now, Stage: Authorize, Reason: "emergency: authorized by its requester"})
		m.move(ch, Authorize, now, by, "emergency change: authorized by its requester; a post-implementation review is required")
		m.move(ch, Scheduled, now, by, "emergency change: implement at once")
	}
}

func (m *Machine) scheduleWhy(ch *Change) string {
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

func (m *Machine) assess(d *directive.Directive) *Assessment {
	base := m.Versions[m.Stable]
	a := &Assessment{Against: m.Stable, Changes: len(directive.Diff(base, d)), Blessed: true}
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

func (m *Machine) change(id uint64) (*Change, *Error) {
	ch := m.Changes[id]
	if ch == nil {
		return nil, errf(CodeNotFound, "no change %d", id)
	}
	return ch, nil
}

func (m *Machine) approve(c Command, now time.Time) Result {
	d := c.Decision
	if d == nil {
		return Result{Err: errf(CodeBadCommand, "approve: missing payload")}
	}
	ch, err := m.change(d.Change)
	if err != nil {
		return Result{Err: err}
	}
	if !HasRole(c.Roles, RoleApprover) {
		return Result{Err: errf(CodeForbidden, "%s may not approve: the token needs the approver role", who(c.By))}
	}
	if strings.TrimSpace(d.Reason) == "" {
		return Result{Err: errf(CodeInvalid, "reason: required; it goes into the audit log")}
	}
	switch ch.State {
	case Authorize:
		if c.By == ch.Requester && !m.Policy.SelfApproval {
			return Result{Err: errf(CodeForbidden, "%s requested change %d and may not approve it too (separation of duties); ask another approver", who(c.By), ch.ID)}
		}
		ch.Approvals = append(ch.Approvals, Approval{Who: c.By, At: now, Stage: Authorize, Reason: d.Reason})
		m.move(ch, Scheduled, now, c.By, "approved: "+d.Reason+"; "+m.scheduleWhy(ch))
	case Review:
		ch.Approvals = append(ch.Approvals, Approval{Who: c.By, At: now, Stage: Review, Reason: d.Reason})
		m.move(ch, Closed, now, c.By, "post-implementation review: "+d.Reason)
	default:
		return Result{Err: errf(CodeConflict, "change %d is in state %s; approve applies to changes in authorize (approval) or review (post-implementation review)", ch.ID, ch.State)}
	}
	return Result{Change: ch}
}

func (m *Machine) reject(c Command, now time.Time) Result {
	d := c.Decision
	if d == nil {
		return Result{Err: errf(CodeBadCommand, "reject: missing payload")}
	}
	ch, err := m.change(d.Change)
	if err != nil {
		return Result{Err: err}
	}
	if !HasRole(c.Roles, RoleApprover) {
		return Result{Err: errf(CodeForbidden, "%s may not reject: the token needs the approver role", who(c.By))}
	}
	if strings.TrimSpace(d.Reason) == "" {
		return Result{Err: errf(CodeInvalid, "reason: required; it goes into the audit log")}
	}
	if ch.State != Authorize {
		return Result{Err: errf(CodeConflict, "change %d is in state %s; only a change awaiting approval (authorize) can be rejected%s", ch.ID, ch.State, afterHint(ch))}
	}
	ch.Outcome, ch.Detail = Rejected, d.Reason
	m.move(ch, Canceled, now, c.By, "rejected: "+d.Reason)
	return Result{Change: ch}
}

func afterHint(ch *Change) string {
	switch ch.State {
	case Scheduled:
		return "; cancel it instead"
	case Implement, Review, Closed:
		return "; roll it back instead"
	}
	return ""
}

func (m *Machine) cancel(c Command, now time.Time) Result {
	d := c.Decision
	if d == nil {
		return Result{Err: errf(CodeBadCommand, "cancel: missing payload")}
	}
	ch, err := m.change(d.Change)
	if err != nil {
		return Result{Err: err}
	}
	if !(c.By == ch.Requester && HasRole(c.Roles, RoleProposer)) && !HasRole(c.Roles, RoleApprover) {
		return Result{Err: errf(CodeForbidden, "%s may not cancel change %d: only its requester or an approver can", who(c.By), ch.ID)}
	}
	if strings.TrimSpace(d.Reason) == "" {
		return Result{Err: errf(CodeInvalid, "reason: required; it goes into the audit log")}
	}
	if !Legal(ch.State, Canceled) {
		return Result{Err: errf(CodeConflict, "change %d is in state %s and can no longer be canceled%s", ch.ID, ch.State, afterHint(ch))}
	}
	ch.Outcome, ch.Detail = Withdrawn, d.Reason
	m.move(ch, Canceled, now, c.By, "canceled: "+d.Reason)
	return Result{Change: ch}
}

func (m *Machine) rollback(c Command, now time.Time) Result {
	r := c.Rollback
	if r == nil {
		return Result{Err: errf(CodeBadCommand, "rollback: missing payload")}
	}
	t := r.Type
	if t == "" {
		t = Emergency
	}
	if err := m.checkProposer(c, t); err != nil {
		return Result{Err: err}
	}
	if r.Key != "" {
		if id, ok := m.Keys[r.Key]; ok {
			return Result{Change: m.Changes[id]}
		}
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
	ch.Canary = t != Emergency
	ch.Key = r.Key
	m.assessAndAuthorize(ch, c.By, now)
	return Result{Change: ch}
}

func cancelHint(ch *Change) string {
	if Legal(ch.State, Canceled) {
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

func (m *Machine) report(c Command, now time.Time) Result {
	if !HasRole(c.Roles, RoleAgent) && c.By != System {
		return Result{Err: errf(CodeForbidden, "%s may not report for proxies: the token needs the agent role", who(c.By))}
	}
	for _, r := range c.Reports {
		if r.Proxy == "" {
			continue
		}
		p := m.Proxies[r.Proxy]
		if p == nil {
			p = &Proxy{ID: r.Proxy}
			m.Proxies[r.Proxy] = p
		}
		p.SeenAt = now
		if r.Version != p.Version {
			p.AckedAt = now
		}
		p.Version = r.Version
		if r.Nonce != "" {
			p.Nonce = r.Nonce
		}
		if r.Rejected != 0 && (r.Rejected != p.Rejected || r.Error != p.RejectError) {
			p.Rejected, p.RejectError = r.Rejected, r.Error
			change := uint64(0)
			if d := m.Versions[r.Rejected]; d != nil {
				change = d.Change
			}
			m.audit(now, change, "nack", "", "", r.Proxy, fmt.Sprintf("proxy %s refused version %d: %s", r.Proxy, r.Rejected, r.Error))
		}
		if r.Stats != nil {
			s := *r.Stats
			p.Stats = &s
		}
	}
	// Forget proxies silent for much longer than the TTL, so the state
	// does not grow with every proxy that ever existed.
	for id, p := range m.Proxies {
		if now.Sub(p.SeenAt) > 10*m.Policy.ProxyTTL.Std() {
			delete(m.Proxies, id)
		}
	}
	return Result{}
}

func (m *Machine) member(c Command, now time.Time) Result {
	if !HasRole(c.Roles, RoleAdmin) && c.By != System {
		return Result{Err: errf(CodeForbidden, "%s may not change membership: the token needs the admin role", who(c.By))}
	}
	mb := c.Member
	if mb == nil || mb.ID == "" {
		return Result{Err: errf(CodeInvalid, "member: id required")}
	}
	if old := m.Members[mb.ID]; old != nil && *old == *mb {
		return Result{}
	}
	cp := *mb
	m.Members[mb.ID] = &cp
	m.audit(now, 0, "member", "", "", c.By, fmt.Sprintf("coordinator %s: raft %s, http %s", mb.ID, mb.RaftAddr, mb.HTTPAddr))
	return Result{}
}

func (m *Machine) setPolicy(c Command, now time.Time) Result {
	if !HasRole(c.Roles, RoleAdmin) && c.By != System {
		return Result{Err: errf(CodeForbidden, "%s may not change the policy: the token needs the admin role", who(c.By))}
	}
	if c.Policy == nil {
		return Result{Err: errf(CodeBadCommand, "policy: missing payload")}
	}
	if err := c.Policy.Validate(); err != nil {
		return Result{Err: errf(CodeInvalid, "policy: %v", err)}
	}
	m.Policy = *c.Policy
	m.PolicySet = true
	b, _ := json.Marshal(c.Policy)
	m.audit(now, 0, "policy", "", "", c.By, "policy set: "+string(b))
	return Result{}
}

// ---- time-driven work ----

// advance runs every consequence of the current state at now: rollout and
// canary progress, then the next scheduled change. It loops because one
// step can enable another (a failed canary schedules a rollback, which is
// then implemented).
func (m *Machine) advance(now time.Time) {
	for i := 0; i < 16; i++ {
		if !m.step(now) {
			return
		}
	}
}

func (m *Machine) step(now time.Time) bool {
	m.cancelStale(now)
	next := m.nextDue(now)
	if m.Active != 0 && next != nil && next.Type == Emergency {
		// An emergency change does not wait: the change in progress stops
		// where it is and goes to review.
		old := m.Changes[m.Active]
		m.Canary = nil
		m.finish(old, now, Superseded, fmt.Sprintf("superseded by emergency change %d", next.ID))
	}
	if m.Active != 0 {
		ch := m.Changes[m.Active]
		if m.Canary != nil {
			return m.stepCanary(ch, now)
		}
		return m.stepRollout(ch, now)
	}
	if next == nil {
		return false
	}
	m.implement(next, now)
	return true
}

// cancelStale cancels the changes waiting for approval or for their turn
// whose if_stable is no longer the stable version. The stable version only
// grows (a rollback is a new version), so such a change could never become
// current again; implementing it would overwrite what was committed after
// it was planned.
// Several are canceled in order of ID: every replica writes the same audit
// log.
func (m *Machine) cancelStale(now time.Time) {
	var stale []*Change
	for _, ch := range m.Changes {
		if ch.IfStable != 0 && ch.IfStable != m.Stable && (ch.State == Authorize || ch.State == Scheduled) {
			stale = append(stale, ch)
		}
	}
	sort.Slice(stale, func(i, j int) bool { return stale[i].ID < stale[j].ID })
	for _, ch := range stale {
		ch.Outcome = Stale
		ch.Detail = fmt.Sprintf("the stable version moved from %d to %d after this change was proposed; its directive was planned on version %d and would overwrite the newer one: plan it again", ch.IfStable, m.Stable, ch.IfStable)
		m.move(ch, Canceled, now, System, ch.Detail)
	}
}

// nextDue is the scheduled change to implement next: emergencies first,
// then in order of ID.
func (m *Machine) nextDue(now time.Time) *Change {
	var next *Change
	for _, ch := range m.Changes {
		if ch.State != Scheduled || (!ch.NotBefore.IsZero() && now.Before(ch.NotBefore)) {
			continue
		}
		if next == nil {
			next = ch
			continue
		}
		ce, ne := ch.Type == Emergency, next.Type == Emergency
		if ce && !ne || ce == ne && ch.ID < next.ID {
			next = ch
		}
	}
	return next
}

// activeProxies returns the proxies heard from within the TTL, sorted.
func (m *Machine) activeProxies(now time.Time) []*Proxy {
	var out []*Proxy
	for _, p := range m.Proxies {
		if now.Sub(p.SeenAt) <= m.Policy.ProxyTTL.Std() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *Machine) implement(ch *Change, now time.Time) {
	m.Latest++
	v := m.Latest
	d := ch.Directive.Content()
	d.Version, d.Change, d.CommittedAt, d.RollbackOf = v, ch.ID, now, ch.RollbackOf
	m.Versions[v] = d
	ch.Version, ch.Base, ch.ImplementedAt = v, m.Stable, now
	ch.Deadline = now.Add(m.Policy.RolloutTimeout.Std())
	m.Active = ch.ID

	active := m.activeProxies(now)
	why := fmt.Sprintf("version %d created", v)
	if ch.RollbackOf != 0 || ch.RollbackFor != 0 {
		why += fmt.Sprintf(" (restores the content of version %d)", ch.RollbackOf)
	}
	if ch.Canary && m.Policy.CanaryFraction > 0 && len(active) > 0 {
		k := int(math.Ceil(m.Policy.CanaryFraction * float64(len(active))))
		if k >= len(active) && len(active) > 1 {
			k = len(active) - 1 // keep a baseline to compare against
		}
		m.Canary = &Canary{Change: ch.ID, Version: v, Base: m.Stable, Proxies: pickCanary(active, ch.ID, k)}
		why += fmt.Sprintf("; canary on %d of %d proxies: %s", k, len(active), strings.Join(m.Canary.Proxies, ", "))
	} else {
		m.Stable = v
		switch {
		case ch.Type == Emergency:
			why += "; emergency: rolled out to every proxy at once"
		case !ch.Canary || m.Policy.CanaryFraction == 0:
			why += "; no canary: rolled out to every proxy"
		default:
			why += "; no active proxy to canary on: rolled out to every proxy"
		}
	}
	m.move(ch, Implement, now, System, why)
	m.pruneVersions()
}

// pickCanary chooses k proxies by a hash of (change, proxy): deterministic,
// and a different subset for each change so no proxy always goes first.
func pickCanary(active []*Proxy, change uint64, k int) []string {
	type hp struct {
		h  uint64
		id string
	}
	hs := make([]hp, len(active))
	for i, p := range active {
		f := fnv.New64a()
		fmt.Fprintf(f, "%d/%s", change, p.ID)
		hs[i] = hp{f.Sum64(), p.ID}
	}
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].h != hs[j].h {
			return hs[i].h < hs[j].h
		}
		return hs[i].id < hs[j].id
	})
	out := make([]string, 0, k)
	for _, x := range hs[:k] {
		out = append(out, x.id)
	}
	sort.Strings(out)
	return out
}

func (m *Machine) pruneVersions() {
	limit := uint64(m.Policy.HistoryLimit)
	if m.Latest <= limit {
		return
	}
	for v := range m.Versions {
		if v+limit <= m.Latest && v != m.Stable && (m.Canary == nil || v != m.Canary.Base) {
			delete(m.Versions, v)
		}
	}
}

func (m *Machine) stepCanary(ch *Change, now time.Time) bool {
	cn := m.Canary
	for _, id := range cn.Proxies {
		if p := m.Proxies[id]; p != nil && p.Rejected == cn.Version {
			m.failCanary(ch, now, fmt.Sprintf("canary proxy %s refused version %d: %s", id, cn.Version, p.RejectError))
			return true
		}
	}
	if cn.StartedAt.IsZero() {
		var waiting []string
		for _, id := range cn.Proxies {
			if p := m.Proxies[id]; p == nil || p.Version != cn.Version {
				waiting = append(waiting, id)
			}
		}
		if len(waiting) == 0 {
			cn.StartedAt = now
			m.audit(now, ch.ID, "canary", "", "", System, fmt.Sprintf("every canary proxy runs version %d; window of %s starts", cn.Version, m.Policy.CanaryWindow.Std()))
			return true
		}
		if !now.Before(ch.Deadline) {
			m.failCanary(ch, now, fmt.Sprintf("canary proxies %s did not apply version %d within %s", strings.Join(waiting, ", "), cn.Version, m.Policy.RolloutTimeout.Std()))
			return true
		}
		return false
	}
	if now.Before(cn.StartedAt.Add(m.Policy.CanaryWindow.Std())) {
		return false
	}
	if reg := m.regression(now); reg != "" {
		m.failCanary(ch, now, "canary regression: "+reg)
		return true
	}
	m.Stable = cn.Version
	m.Canary = nil
	ch.Deadline = now.Add(m.Policy.RolloutTimeout.Std())
	m.audit(now, ch.ID, "promote", "", "", System, fmt.Sprintf("canary window passed without regression: version %d promoted to every proxy", cn.Version))
	return true
}

type agg struct {
	requests, errors int64
	p99w             float64 // sum of p99 × requests
}

func (a *agg) add(s directive.ServiceStats) {
	a.requests += s.Requests
	a.errors += s.Errors
	a.p99w += s.P99Ms * float64(s.Requests)
}

func (a agg) rate() float64 {
	if a.requests == 0 {
		return 0
	}
	return float64(a.errors) / float64(a.requests)
}

func (a agg) p99() float64 {
	if a.requests == 0 {
		return 0
	}
	return a.p99w / float64(a.requests)
}

// regression compares the canary proxies' reports with the other active
// proxies' (the baseline) per service and describes the first service
// beyond the thresholds ("" if none).
func (m *Machine) regression(now time.Time) string {
	cn := m.Canary
	inCanary := map[string]bool{}
	for _, id := range cn.Proxies {
		inCanary[id] = true
	}
	canary, base := map[string]*agg{}, map[string]*agg{}
	for _, p := range m.activeProxies(now) {
		if p.Stats == nil {
			continue
		}
		var into map[string]*agg
		switch {
		case inCanary[p.ID] && p.Stats.Version == cn.Version:
			into = canary
		case !inCanary[p.ID] && p.Stats.Version == cn.Base:
			into = base
		default:
			continue
		}
		for svc, s := range p.Stats.Services {
			if into[svc] == nil {
				into[svc] = &agg{}
			}
			into[svc].add(s)
		}
	}
	names := make([]string, 0, len(canary))
	for n := range canary {
		names = append(names, n)
	}
	sort.Strings(names)
	pol := m.Policy
	for _, n := range names {
		c := *canary[n]
		if c.requests < pol.MinRequests || c.requests == 0 {
			continue
		}
		b := agg{}
		if base[n] != nil {
			b = *base[n]
		}
		if c.rate()-b.rate() > pol.MaxErrorRateIncrease {
			return fmt.Sprintf("service %s: error rate %.1f%% on the canary vs %.1f%% on the baseline (allowed +%.1f points)", n, 100*c.rate(), 100*b.rate(), 100*pol.MaxErrorRateIncrease)
		}
		if b.requests >= pol.MinRequests && b.requests > 0 && c.p99() > b.p99()*pol.MaxP99Ratio+pol.P99SlackMs {
			return fmt.Sprintf("service %s: p99 %.0f ms on the canary vs %.0f ms on the baseline (allowed x%.2f + %.0f ms)", n, c.p99(), b.p99(), pol.MaxP99Ratio, pol.P99SlackMs)
		}
	}
	return ""
}

// failCanary ends a canary: the change goes to review as failed, and an
// automatic emergency rollback restores the base version's content on every
// proxy.
func (m *Machine) failCanary(ch *Change, now time.Time, detail string) {
	base := m.Canary.Base
	m.Canary = nil
	m.Active = 0
	ch.Outcome, ch.Detail = Failed, detail
	m.move(ch, Review, now, System, detail+"; rolling back to version "+strconv.FormatUint(base, 10))
	content, err := m.content(base)
	if err != nil {
		// The base is always kept (pruneVersions), so this is a bug; leave
		// the stable version as it is, which is the base anyway.
		m.audit(now, ch.ID, "rollback", "", "", System, "automatic rollback impossible: "+err.Msg)
		return
	}
	rb := m.newChange(System, Emergency, fmt.Sprintf("automatic rollback of change %d: %s", ch.ID, detail), content, now)
	rb.RollbackOf, rb.RollbackFor = base, ch.ID
	ch.RolledBackBy = rb.ID
	m.assessAndAuthorize(rb, System, now)
}

func (m *Machine) stepRollout(ch *Change, now time.Time) bool {
	var waiting, refused []string
	active := m.activeProxies(now)
	for _, p := range active {
		switch {
		case p.Version == ch.Version:
		case p.Rejected == ch.Version:
			refused = append(refused, fmt.Sprintf("%s (%s)", p.ID, p.RejectError))
		default:
			waiting = append(waiting, p.ID)
		}
	}
	switch {
	case len(waiting) == 0 && len(refused) == 0:
		m.finish(ch, now, Success, fmt.Sprintf("version %d live on every active proxy (%d)", ch.Version, len(active)))
	case len(waiting) == 0:
		m.finish(ch, now, Partial, fmt.Sprintf("version %d refused by %s; those proxies keep their last good version", ch.Version, strings.Join(refused, ", ")))
	case !now.Before(ch.Deadline):
		m.finish(ch, now, TimedOut, fmt.Sprintf("proxies %s did not apply version %d within %s", strings.Join(waiting, ", "), ch.Version, m.Policy.RolloutTimeout.Std()))
	default:
		return false
	}
	return true
}

// finish moves an implemented change to review, and on to closed when it
// succeeded and is not an emergency (whose review a person must do).
func (m *Machine) finish(ch *Change, now time.Time, o Outcome, detail string) {
	m.Active = 0
	ch.Outcome, ch.Detail = o, detail
	m.move(ch, Review, now, System, detail)
	if o == Success && ch.Type != Emergency {
		m.move(ch, Closed, now, System, "review: implemented as planned")
	}
}

// NextDeadline is the earliest time at which the machine would act without
// a new command (zero: none). The leader proposes OpTick then.
func (m *Machine) NextDeadline() time.Time {
	var t time.Time
	min := func(x time.Time) {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	if m.Active != 0 {
		ch := m.Changes[m.Active]
		if cn := m.Canary; cn != nil && !cn.StartedAt.IsZero() {
			min(cn.StartedAt.Add(m.Policy.CanaryWindow.Std()))
		} else {
			min(ch.Deadline)
			if cn == nil {
				// A silent proxy dropping out may complete the rollout.
				for _, p := range m.activeProxies(m.Now) {
					if p.Version != ch.Version {
						min(p.SeenAt.Add(m.Policy.ProxyTTL.Std() + time.Millisecond))
					}
				}
			}
		}
		return t
	}
	for _, ch := range m.Changes {
		if ch.State == Scheduled {
			min(ch.NotBefore)
			if ch.NotBefore.IsZero() {
				min(m.Now)
			}
		}
	}
	return t
}

// Target is the version proxy should run and whether it is a canary.
func (m *Machine) Target(proxy string) (uint64, bool) {
	if cn := m.Canary; cn != nil {
		i := sort.SearchStrings(cn.Proxies, proxy)
		if i < len(cn.Proxies) && cn.Proxies[i] == proxy {
			return cn.Version, true
		}
	}
	return m.Stable, false
}

// Live reports whether the stable version runs on every active proxy and
// no canary or rollout is in progress.
func (m *Machine) Live() bool {
	if m.Canary != nil {
		return false
	}
	for _, p := range m.activeProxies(m.Now) {
		if p.Version != m.Stable {
			return false
		}
	}
	return true
}

// ActiveProxies returns copies of the proxies heard from within the TTL.
func (m *Machine) ActiveProxies() []Proxy {
	var out []Proxy
	for _, p := range m.activeProxies(m.Now) {
		out = append(out, *p)
	}
	return out
}
