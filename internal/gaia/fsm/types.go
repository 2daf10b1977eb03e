package fsm

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// Type is the kind of an ITIL change.
type Type string

// Change types.
const (
	// Standard changes are pre-authorized when inside the policy.
	Standard Type = "standard"
	// Normal changes need an approval.
	Normal Type = "normal"
	// Emergency changes are applied at once and reviewed afterwards.
	Emergency Type = "emergency"
)

// State is a change's place in the workflow.
type State string

// Workflow states.
const (
	New       State = "new"
	Assess    State = "assess"
	Authorize State = "authorize"
	Scheduled State = "scheduled"
	Implement State = "implement"
	Review    State = "review"
	Closed    State = "closed"
	Canceled  State = "canceled"
)

// legal lists every transition the workflow allows.
var legal = map[State][]State{
	New:       {Assess, Canceled},
	Assess:    {Authorize, Canceled},
	Authorize: {Scheduled, Canceled},
	Scheduled: {Implement, Canceled},
	Implement: {Review},
	Review:    {Closed},
}

// Legal reports whether the workflow allows from → to.
func Legal(from, to State) bool {
	for _, s := range legal[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Outcome is how an implemented (or stopped) change ended.
type Outcome string

// Outcomes.
const (
	Success    Outcome = "success"    // live on every active proxy
	Failed     Outcome = "failed"     // canary regression, NACK or timeout: rolled back
	Partial    Outcome = "partial"    // some proxies NACKed a full rollout
	TimedOut   Outcome = "timeout"    // not every proxy applied it in time
	Superseded Outcome = "superseded" // an emergency change replaced it
	Stale      Outcome = "stale"      // the stable version moved away from its if_stable
	Rejected   Outcome = "rejected"   // refused by an approver or the standard policy
	Withdrawn  Outcome = "canceled"   // canceled by its requester or an approver
)

// Roles a token may hold. Admin implies every other role.
const (
	RoleViewer   = "viewer"
	RoleProposer = "proposer"
	RoleApprover = "approver"
	RoleAgent    = "agent"
	RoleAdmin    = "admin"
)

// System is the principal of the coordinator's own actions.
const System = "gaia"

// HasRole reports whether roles grant role.
func HasRole(roles []string, role string) bool {
	for _, r := range roles {
		if r == role || r == RoleAdmin {
			return true
		}
	}
	return false
}

// Op names a command.
type Op string

// Operations.
const (
	OpPropose  Op = "propose"
	OpApprove  Op = "approve"
	OpReject   Op = "reject"
	OpCancel   Op = "cancel"
	OpRollback Op = "rollback"
	OpReport   Op = "report"
	OpTick     Op = "tick"
	OpMember   Op = "member"
	OpPolicy   Op = "policy"
)

// Command is one log entry.
type Command struct {
	Op Op `json:"op"`
	// At is the proposer's clock; the machine's time is the largest At seen.
	At time.Time `json:"at"`
	// By is the principal (token name) asking; Roles its roles.
	By    string   `json:"by,omitempty"`
	Roles []string `json:"roles,omitempty"`

	Propose  *Propose      `json:"propose,omitempty"`
	Decision *Decision     `json:"decision,omitempty"`
	Rollback *Rollback     `json:"rollback,omitempty"`
	Reports  []ProxyReport `json:"reports,omitempty"`
	Member   *Member       `json:"member,omitempty"`
	Policy   *Policy       `json:"policy,omitempty"`
}

// Propose asks for a change that installs Directive.
type Propose struct {
	Type      Type                 `json:"type"`
	Reason    string               `json:"reason"`
	Directive *directive.Directive `json:"directive"`
	// NotBefore schedules the implementation (standard and normal only).
	NotBefore time.Time `json:"not_before,omitzero"`
	// NoCanary skips the canary phase.
	NoCanary bool `json:"no_canary,omitempty"`
	// Key makes the proposal idempotent: a second proposal with the same
	// key returns the first change.
	Key string `json:"key,omitempty"`
	// IfStable makes the change conditional on the stable version: the
	// proposal is refused (conflict) if the stable version is not
	// IfStable, and the change is canceled (outcome stale) if the stable
	// version moves on before it is implemented. A directive planned on
	// version N then never overwrites a version committed after N. 0: no
	// condition.
	IfStable uint64 `json:"if_stable,omitempty"`
}

// Decision approves, rejects or cancels a change.
type Decision struct {
	Change uint64 `json:"change"`
	Reason string `json:"reason"`
}

// Rollback asks for a change restoring an earlier version: ToVersion, or
// the version that was stable before Change was implemented.
type Rollback struct {
	ToVersion uint64 `json:"to_version,omitempty"`
	Change    uint64 `json:"change,omitempty"`
	Type      Type   `json:"type,omitempty"` // default emergency
	Reason    string `json:"reason"`
	Key       string `json:"key,omitempty"`
}

// ProxyReport is what the leader learned from one proxy's watch or report.
type ProxyReport struct {
	Proxy string `json:"proxy"`
	// Version the proxy runs.
	Version uint64 `json:"version"`
	Nonce   string `json:"nonce,omitempty"`
	// Rejected and Error record a NACK.
	Rejected uint64 `json:"rejected,omitempty"`
	Error    string `json:"error,omitempty"`
	// Stats is a canary-window report.
	Stats *directive.Report `json:"stats,omitempty"`
}

// Member records a coordinator's addresses (for leader redirects).
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Policy holds the rules of the workflow and the canary.
type Policy struct {
	// MaxWeightMovePercent bounds how far a standard change may move any
	// endpoint's weight, relative to the stable version. Default 20.
	MaxWeightMovePercent float64 `json:"max_weight_move_percent"`
	// RequireBlessed: a standard change's services must carry why.blessed.
	// Default true.
	RequireBlessed bool `json:"require_blessed"`
	// SelfApproval lets a requester approve their own normal change.
	// Default false (separation of duties).
	SelfApproval bool `json:"self_approval"`
	// CanaryFraction of the active proxies gets a new version first; 0
	// disables canaries. Default 0.25.
	CanaryFraction float64 `json:"canary_fraction"`
	// CanaryWindow is how long the canary runs once every canary proxy
	// applied the version. Default 60s.
	CanaryWindow directive.Duration `json:"canary_window"`
	// MaxErrorRateIncrease: a canary whose error rate exceeds the
	// baseline's by more than this (absolute, 0.02 = 2 points) regresses.
	MaxErrorRateIncrease float64 `json:"max_error_rate_increase"`
	// MaxP99Ratio and P99SlackMs: a canary whose p99 exceeds
	// baseline×ratio + slack regresses. Defaults 1.5 and 10.
	MaxP99Ratio float64 `json:"max_p99_ratio"`
	P99SlackMs  float64 `json:"p99_slack_ms"`
	// MinRequests per service on the canary before it is judged. Default 20.
	MinRequests int64 `json:"min_requests"`
	// RolloutTimeout bounds how long proxies may take to apply a version.
	// Default 5m.
	RolloutTimeout directive.Duration `json:"rollout_timeout"`
	// ProxyTTL: a proxy not heard from for this long no longer counts for
	// rollouts. Default 60s.
	ProxyTTL directive.Duration `json:"proxy_ttl"`
	// AuditLimit and HistoryLimit bound the audit log and the directive
	// versions kept. Defaults 10000 and 1000.
	AuditLimit   int `json:"audit_limit"`
	HistoryLimit int `json:"history_limit"`
}

// DefaultPolicy returns the documented defaults.
func DefaultPolicy() Policy {
	return Policy{
		MaxWeightMovePercent: 20,
		RequireBlessed:       true,
		CanaryFraction:       0.25,
		CanaryWindow:         directive.Duration(60 * time.Second),
		MaxErrorRateIncrease: 0.02,
		MaxP99Ratio:          1.5,
		P99SlackMs:           10,
		MinRequests:          20,
		RolloutTimeout:       directive.Duration(5 * time.Minute),
		ProxyTTL:             directive.Duration(60 * time.Second),
		AuditLimit:           10000,
		HistoryLimit:         1000,
	}
}

// Validate checks the policy's ranges.
func (p Policy) Validate() error {
	fin := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case !fin(p.MaxWeightMovePercent) || p.MaxWeightMovePercent < 0:
		return fmt.Errorf("max_weight_move_percent: want >= 0, got %v", p.MaxWeightMovePercent)
	case !fin(p.CanaryFraction) || p.CanaryFraction < 0 || p.CanaryFraction > 1:
		return fmt.Errorf("canary_fraction: want 0..1, got %v", p.CanaryFraction)
	case p.CanaryWindow <= 0:
		return fmt.Errorf("canary_window: want > 0, got %s", p.CanaryWindow.Std())
	case !fin(p.MaxErrorRateIncrease) || p.MaxErrorRateIncrease < 0 || p.MaxErrorRateIncrease > 1:
		return fmt.Errorf("max_error_rate_increase: want 0..1, got %v", p.MaxErrorRateIncrease)
	case !fin(p.MaxP99Ratio) || p.MaxP99Ratio < 1:
		return fmt.Errorf("max_p99_ratio: want >= 1, got %v", p.MaxP99Ratio)
	case !fin(p.P99SlackMs) || p.P99SlackMs < 0:
		return fmt.Errorf("p99_slack_ms: want >= 0, got %v", p.P99SlackMs)
	case p.MinRequests < 0:
		return fmt.Errorf("min_requests: want >= 0, got %d", p.MinRequests)
	case p.RolloutTimeout <= 0:
		return fmt.Errorf("rollout_timeout: want > 0, got %s", p.RolloutTimeout.Std())
	case p.ProxyTTL <= 0:
		return fmt.Errorf("proxy_ttl: want > 0, got %s", p.ProxyTTL.Std())
	case p.AuditLimit < 100 || p.HistoryLimit < 2:
		return fmt.Errorf("audit_limit >= 100 and history_limit >= 2, got %d and %d", p.AuditLimit, p.HistoryLimit)
	}
	return nil
}

// Change is one ITIL change record.
type Change struct {
	ID        uint64 `json:"id"`
	Type      Type   `json:"type"`
	State     State  `json:"state"`
	Requester string `json:"requester"`
	Reason    string `json:"reason"`
	// Directive is the proposed content (version 0).
	Directive *directive.Directive `json:"directive"`
	// RollbackOf is the version whose content this change restores.
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	// RollbackFor is the change being rolled back, if any.
	RollbackFor uint64    `json:"rollback_for,omitempty"`
	NotBefore   time.Time `json:"not_before,omitzero"`
	Canary      bool      `json:"canary"`
	Key         string    `json:"key,omitempty"`
	// IfStable is the stable version the change was planned on (0: none).
	IfStable  uint64    `json:"if_stable,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	Assessment *Assessment `json:"assessment,omitempty"`
	Approvals  []Approval  `json:"approvals,omitempty"`

	// Version is the directive version created at implement; Base the
	// version that was stable then (what a failure rolls back to).
	Version       uint64    `json:"version,omitempty"`
	Base          uint64    `json:"base,omitempty"`
	ImplementedAt time.Time `json:"implemented_at,omitzero"`
	// Deadline bounds the rollout (and the canary's wait for ACKs).
	Deadline time.Time `json:"deadline,omitzero"`

	Outcome      Outcome `json:"outcome,omitempty"`
	Detail       string  `json:"detail,omitempty"`
	RolledBackBy uint64  `json:"rolled_back_by,omitempty"`
}

// Assessment is the automatic risk assessment of a proposal against the
// stable version.
type Assessment struct {
	Against uint64 `json:"against"`
	Changes int    `json:"changes"`
	// MaxWeightMovePercent is the largest weight move; -1 when an endpoint
	// moves away from weight 0 (an unbounded move).
	MaxWeightMovePercent float64  `json:"max_weight_move_percent"`
	Blessed              bool     `json:"blessed"`
	WithinPolicy         bool     `json:"within_policy"`
	Notes                []string `json:"notes,omitempty"`
}

// Approval records an authorization or a post-implementation review.
type Approval struct {
	Who    string    `json:"who"`
	At     time.Time `json:"at"`
	Stage  State     `json:"stage"` // authorize or review
	Reason string    `json:"reason"`
}

// Proxy is what the coordinator knows about one proxy.
type Proxy struct {
	ID string `json:"id"`
	// Version the proxy runs (last ACKed).
	Version uint64 `json:"version"`
	Nonce   string `json:"nonce,omitempty"`
	// Rejected is the last version it NACKed, with the error.
	Rejected    uint64            `json:"rejected,omitempty"`
	RejectError string            `json:"reject_error,omitempty"`
	SeenAt      time.Time         `json:"seen_at"`
	AckedAt     time.Time         `json:"acked_at,omitzero"`
	Stats       *directive.Report `json:"stats,omitempty"`
}

// Canary is a version running on a subset of the proxies.
type Canary struct {
	Change  uint64   `json:"change"`
	Version uint64   `json:"version"`
	Base    uint64   `json:"base"`
	Proxies []string `json:"proxies"`
	// StartedAt is when every canary proxy had applied the version; the
	// window runs from there. Zero while waiting for ACKs.
	StartedAt time.Time `json:"started_at,omitzero"`
}

// AuditEntry is one line of the audit log: a workflow transition or
// another event on a change (canary start, promotion, NACK) or of the
// coordinator (policy, membership).
type AuditEntry struct {
	Seq    uint64    `json:"seq"`
	Index  uint64    `json:"index"`
	At     time.Time `json:"at"`
	Change uint64    `json:"change,omitempty"`
	Event  string    `json:"event"`
	From   State     `json:"from,omitempty"`
	To     State     `json:"to,omitempty"`
	Who    string    `json:"who"`
	Why    string    `json:"why"`
}

// Error is a refused command.
type Error struct {
	// Code is invalid, forbidden, not_found, conflict or bad_command.
	Code string `json:"code"`
	Msg  string `json:"error"`
}

func (e *Error) Error() string { return e.Msg }

// Error codes.
const (
	CodeInvalid    = "invalid"
	CodeForbidden  = "forbidden"
	CodeNotFound   = "not_found"
	CodeConflict   = "conflict"
	CodeBadCommand = "bad_command"
)

func errf(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Result is what Apply returns to the proposer.
type Result struct {
	Change  *Change `json:"change,omitempty"`
	Version uint64  `json:"version,omitempty"`
	Err     *Error  `json:"err,omitempty"`
}

// Encode serializes a command for the log.
func Encode(c Command) ([]byte, error) { return json.Marshal(c) }

// Decode parses a log entry.
func Decode(b []byte) (Command, error) {
	var c Command
	err := json.Unmarshal(b, &c)
	return c, err
}
