// Package change holds the wire types of the Gaia coordinator's change API
// (docs/coordinator.md): the ITIL change record and its workflow's states,
// the bodies of the HTTP calls that propose, decide and roll back changes,
// and what the coordinator reports about itself.
//
// It is the contract between the coordinator and its clients — the CLI,
// the pipeline and the live controller — as api/directive is the contract
// between the coordinator and the proxies: the clients import this package
// and internal/gaia/client, never the coordinator's state machine
// (internal/gaia/fsm), which records these same types in its replicated
// log and snapshots. The JSON of every type here is pinned byte for byte by
// testdata/wire.golden: coordinators, CLIs and pipelines of different
// versions talk through it.
package change

import (
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

// Member records a coordinator's addresses (for leader redirects).
type Member struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}
