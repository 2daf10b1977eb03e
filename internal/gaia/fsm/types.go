package fsm

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// legal lists every transition the workflow allows.
var legal = map[change.State][]change.State{
	change.New:       {change.Assess, change.Canceled},
	change.Assess:    {change.Authorize, change.Canceled},
	change.Authorize: {change.Scheduled, change.Canceled},
	change.Scheduled: {change.Implement, change.Canceled},
	change.Implement: {change.Review},
	change.Review:    {change.Closed},
}

// Legal reports whether the workflow allows from → to.
func Legal(from, to change.State) bool {
	for _, s := range legal[from] {
		if s == to {
			return true
		}
	}
	return false
}

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
	// OpCluster records the cluster's identity: its random ID and the ID of
	// the key that seals every later entry (see Seal).
	OpCluster Op = "cluster"
)

// Command is one log entry.
type Command struct {
	Op Op `json:"op"`
	// At is the proposer's clock. The machine's time is the largest At
	// seen, and moves at most Policy.MaxClockStep per entry: a leader whose
	// clock is far off cannot make canary windows, rollouts or schedules
	// pass in one entry.
	At time.Time `json:"at"`
	// By is the principal (token name) asking; Roles its roles. Only the
	// leader's HTTP layer sets them, from an authenticated bearer token,
	// and the entry is sealed (Seal) so that a peer without the cluster key
	// cannot claim a principal.
	By    string   `json:"by,omitempty"`
	Roles []string `json:"roles,omitempty"`

	Propose  *Propose       `json:"propose,omitempty"`
	Decision *Decision      `json:"decision,omitempty"`
	Rollback *Rollback      `json:"rollback,omitempty"`
	Reports  []ProxyReport  `json:"reports,omitempty"`
	Member   *change.Member `json:"member,omitempty"`
	Policy   *change.Policy `json:"policy,omitempty"`
	Cluster  *ClusterInfo   `json:"cluster,omitempty"`
}

// ClusterInfo is the payload of OpCluster.
type ClusterInfo struct {
	// ID is the cluster's random identity, stamped on every directive
	// version (directive.Directive.Cluster). Set once.
	ID string `json:"id"`
	// KeyID identifies the cluster key (KeyID) that seals entries from
	// this entry on; only an entry sealed with that key can record it.
	// Empty: entries are not sealed (a loopback development cluster).
	KeyID string `json:"key_id,omitempty"`
}

// Propose asks for a change that installs Directive.
type Propose struct {
	Type      change.Type          `json:"type"`
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
	// Key makes the decision idempotent: a second decision with the same
	// key by the same principal returns the change as it is instead of
	// deciding again (a retried "approve" is not refused as a conflict).
	Key string `json:"key,omitempty"`
}

// Rollback asks for a change restoring an earlier version: ToVersion, or
// the version that was stable before Change was implemented.
type Rollback struct {
	ToVersion uint64      `json:"to_version,omitempty"`
	Change    uint64      `json:"change,omitempty"`
	Type      change.Type `json:"type,omitempty"` // default emergency
	Reason    string      `json:"reason"`
	Key       string      `json:"key,omitempty"`
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
	// CodeUnauthenticated: the entry is not sealed with the cluster key
	// although the cluster requires it, or its seal does not verify (a
	// forged entry). Nothing changed.
	CodeUnauthenticated = "unauthenticated"
	// CodeKeyMismatch: the entry is sealed with a key this replica does not
	// hold (its cluster key differs from the cluster's, or it has none).
	// Nothing changed; the replica must stop rather than diverge.
	CodeKeyMismatch = "key_mismatch"
)

func errf(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Result is what Apply returns to the proposer.
type Result struct {
	Change  *change.Change `json:"change,omitempty"`
	Version uint64         `json:"version,omitempty"`
	Err     *Error         `json:"err,omitempty"`
	// Clamped is how far the command's time was ahead of what the clock
	// bound allowed (0: not clamped).
	Clamped time.Duration `json:"clamped,omitempty"`
}

// Encode serializes a command for the log.
func Encode(c Command) ([]byte, error) { return json.Marshal(c) }

// Decode parses a log entry.
func Decode(b []byte) (Command, error) {
	var c Command
	err := json.Unmarshal(b, &c)
	return c, err
}
