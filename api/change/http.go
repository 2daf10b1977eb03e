package change

import (
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// The bodies of the coordinator's HTTP API (docs/coordinator.md).

// ProposeRequest is the body of POST /v1/changes.
type ProposeRequest struct {
	Type      Type                 `json:"type"`
	Reason    string               `json:"reason"`
	Directive *directive.Directive `json:"directive"`
	NotBefore time.Time            `json:"not_before,omitzero"`
	NoCanary  bool                 `json:"no_canary,omitempty"`
	// IdempotencyKey makes a retried proposal return the first change.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// IfStable: only if the stable version is (and stays, until the change
	// is implemented) this one: a directive planned on version N never
	// overwrites a version committed after N (docs/coordinator.md).
	IfStable uint64 `json:"if_stable,omitempty"`
}

// DecisionRequest is the body of approve, reject and cancel.
type DecisionRequest struct {
	Reason string `json:"reason"`
	// IdempotencyKey makes a retried decision return the change instead of
	// deciding again (or being refused because it was already decided).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// RollbackRequest is the body of POST /v1/rollback: restore ToVersion, or
// the version that was stable before Change.
type RollbackRequest struct {
	ToVersion      uint64 `json:"to_version,omitempty"`
	Change         uint64 `json:"change,omitempty"`
	Type           Type   `json:"type,omitempty"`
	Reason         string `json:"reason"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// JoinRequest is the body of POST /v1/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// KeyID is the ID of the joining node's cluster key ("" if it has
	// none): a cluster that seals its entries refuses a node that could
	// not verify them.
	KeyID string `json:"key_id,omitempty"`
}

// ChangeView is GET /v1/changes/{id}: the change, its audit trail and its
// diff against the version it was implemented on (or the stable version).
type ChangeView struct {
	*Change
	Audit []AuditEntry       `json:"audit"`
	Diff  []directive.Change `json:"diff"`
}

// ChangeSummary is one line of GET /v1/changes.
type ChangeSummary struct {
	ID        uint64    `json:"id"`
	Type      Type      `json:"type"`
	State     State     `json:"state"`
	Requester string    `json:"requester"`
	Reason    string    `json:"reason"`
	Version   uint64    `json:"version,omitempty"`
	Outcome   Outcome   `json:"outcome,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Status is GET /v1/status.
type Status struct {
	ID           string         `json:"id"`
	RaftState    string         `json:"raft_state"`
	Leader       string         `json:"leader"`
	LeaderURL    string         `json:"leader_url,omitempty"`
	Term         uint64         `json:"term"`
	LastIndex    uint64         `json:"last_index"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Members      []Member       `json:"members"`
	Voters       []string       `json:"voters"`
	Stable       uint64         `json:"stable"`
	Latest       uint64         `json:"latest"`
	Live         bool           `json:"live"`
	Active       uint64         `json:"active_change,omitempty"`
	Canary       *Canary        `json:"canary,omitempty"`
	Proxies      []Proxy        `json:"proxies"`
	Policy       Policy         `json:"policy"`
	Now          time.Time      `json:"fsm_time"`
	Pending      map[string]int `json:"changes_by_state"`
	// Cluster is the cluster's ID; KeyID the ID of the key sealing its
	// entries ("" = not sealed); NodeKeyID this member's key ID (a member
	// whose key ID differs halts).
	Cluster   string `json:"cluster,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	NodeKeyID string `json:"node_key_id,omitempty"`
	// RaftTLS is true when this member's Raft transport is mutual TLS.
	RaftTLS bool `json:"raft_tls"`
	// LastGood is the last version the fleet acknowledged; the stable
	// version goes back to it when every proxy refuses a new one.
	LastGood uint64 `json:"last_good"`
	// ClockClamps counts entries whose time was clamped (a leader's clock
	// far ahead of the log time).
	ClockClamps uint64 `json:"clock_clamps,omitempty"`
	// Halted is why this member stopped taking part ("" if it did not).
	Halted string `json:"halted,omitempty"`
}
