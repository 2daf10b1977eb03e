package fsm

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// Machine is the whole replicated state. Its exported fields are its
// snapshot format.
type Machine struct {
	// Now is the largest command time seen; Index the last applied entry.
	Now   time.Time `json:"now"`
	Index uint64    `json:"index"`

	Policy    change.Policy `json:"policy"`
	PolicySet bool          `json:"policy_set"`

	// Cluster is the cluster's random ID (OpCluster), stamped on every
	// version; KeyID the ID of the key that seals entries ("" = entries
	// are not sealed).
	Cluster string `json:"cluster,omitempty"`
	KeyID   string `json:"key_id,omitempty"`
	// Clamping is true while consecutive entries have their time clamped
	// (only the first of a run is audited); ClockClamps counts them.
	Clamping    bool   `json:"clamping,omitempty"`
	ClockClamps uint64 `json:"clock_clamps,omitempty"`

	// Changes holds every open change and the newest ClosedChangeLimit
	// closed or canceled ones; ClosedOrder lists the latter in the order
	// they ended (the oldest is archived first). LastChange is the highest
	// ID ever given.
	LastChange  uint64                    `json:"last_change"`
	Changes     map[uint64]*change.Change `json:"changes"`
	ClosedOrder []uint64                  `json:"closed_order"`
	// Keys maps idempotency keys, scoped by principal (see scopedKey), to
	// the change they produced; KeyLog lists them in the order they were
	// recorded, so they expire after IdempotencyKeyTTL without a scan.
	Keys   map[string]uint64 `json:"keys"`
	KeyLog []KeyStamp        `json:"key_log"`

	// Versions keeps the most recent directive versions (HistoryLimit).
	Versions map[uint64]*directive.Directive `json:"versions"`
	// Latest is the highest version ever created; Stable the version every
	// proxy outside a canary should run (0: none). LastGood is the last
	// version the fleet acknowledged: an active proxy applied it while it
	// was stable (its report may come after the next change began: then it
	// runs that change's Base), or it became stable when no proxy was
	// active to ask.
	// When every active proxy refuses a new stable version (a fleet NACK)
	// the stable version goes back to LastGood, so the fleet, and proxies
	// that start later, run a version that works instead of none.
	Latest   uint64 `json:"latest"`
	Stable   uint64 `json:"stable"`
	LastGood uint64 `json:"last_good"`
	// Active is the change in implement (0: none); Canary its canary.
	Active uint64         `json:"active"`
	Canary *change.Canary `json:"canary,omitempty"`

	Proxies map[string]*change.Proxy  `json:"proxies"`
	Members map[string]*change.Member `json:"members"`

	Audit    []change.AuditEntry `json:"audit"`
	AuditSeq uint64              `json:"audit_seq"`

	// Local, not replicated: this replica's cluster key (SetKey); the
	// changes waiting for approval or their turn (an index, rebuilt from
	// Changes on Unmarshal, so that Apply never scans every change); and
	// changes archived by the last Apply, for the caller to write out.
	key      []byte
	keyID    string
	pending  map[uint64]bool
	archived []*change.Change
	// pruned: every version up to it was examined by pruneVersions, and
	// those still kept are in retained (0 and nil after a restore: the
	// first prune looks at every old version once).
	pruned   uint64
	retained []uint64
}

// KeyStamp records when an idempotency key was first used.
type KeyStamp struct {
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// NewMachine returns an empty machine with the default policy.
func NewMachine() *Machine {
	return &Machine{
		Policy:   change.DefaultPolicy(),
		Changes:  map[uint64]*change.Change{},
		Keys:     map[string]uint64{},
		Versions: map[uint64]*directive.Directive{},
		Proxies:  map[string]*change.Proxy{},
		Members:  map[string]*change.Member{},
		pending:  map[uint64]bool{},
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
		m.Changes = map[uint64]*change.Change{}
	}
	if m.Keys == nil {
		m.Keys = map[string]uint64{}
	}
	if m.Versions == nil {
		m.Versions = map[uint64]*directive.Directive{}
	}
	if m.Proxies == nil {
		m.Proxies = map[string]*change.Proxy{}
	}
	if m.Members == nil {
		m.Members = map[string]*change.Member{}
	}
	// Rebuild the local index, and the fields older snapshots lack.
	var closed []*change.Change
	for id, c := range m.Changes {
		if c == nil {
			return nil, fmt.Errorf("gaia snapshot: change %d is null", id)
		}
		switch c.State {
		case change.Authorize, change.Scheduled:
			m.pending[id] = true
		case change.Closed, change.Canceled:
			closed = append(closed, c)
		}
	}
	if m.ClosedOrder == nil && len(closed) > 0 {
		sort.Slice(closed, func(i, j int) bool {
			if !closed[i].UpdatedAt.Equal(closed[j].UpdatedAt) {
				return closed[i].UpdatedAt.Before(closed[j].UpdatedAt)
			}
			return closed[i].ID < closed[j].ID
		})
		for _, c := range closed {
			m.ClosedOrder = append(m.ClosedOrder, c.ID)
		}
	}
	var aux struct {
		LastGood *uint64 `json:"last_good"`
	}
	if json.Unmarshal(b, &aux) == nil && aux.LastGood == nil {
		// A snapshot from before last_good: its stable version was
		// running, or a fleet NACK would now fall back to no directive.
		m.LastGood = m.Stable
	}
	if m.KeyLog == nil && len(m.Keys) > 0 {
		keys := make([]string, 0, len(m.Keys))
		for k := range m.Keys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			m.KeyLog = append(m.KeyLog, KeyStamp{Key: k, At: m.Now})
		}
	}
	return m, nil
}

// TakeArchived returns the change records the last Apply archived (closed
// changes beyond Policy.ClosedChangeLimit, oldest first) and forgets them.
// The caller writes them out of the state (internal/gaia appends them to
// the data directory's archive).
func (m *Machine) TakeArchived() []*change.Change {
	a := m.archived
	m.archived = nil
	return a
}

// Apply applies one committed command that is trusted as it is (tests,
// tools): it is treated as an unsealed entry, so OpCluster cannot record a
// key ID through it. Replicas apply log entries with ApplyEntry.
func (m *Machine) Apply(index uint64, c Command) Result {
	return m.apply(index, c, "")
}

// apply applies a decoded command; sealedBy is the key ID the entry was
// verifiably sealed with ("" if not sealed).
func (m *Machine) apply(index uint64, c Command, sealedBy string) (res Result) {
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
	clamped := m.tick(c.At)
	now := m.Now
	m.expireKeys(now)
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
	case OpCluster:
		res = m.setCluster(c, now, sealedBy)
	default:
		res = Result{Err: errf(CodeBadCommand, "unknown operation %q", c.Op)}
	}
	m.advance(now)
	if res.Change != nil {
		// Return the change as it stands after the cascade.
		if cur := m.Changes[res.Change.ID]; cur != nil {
			res.Change = copyChange(cur)
		}
		res.Version = res.Change.Version
	}
	m.archiveClosed()
	res.Clamped = clamped
	return res
}

// tick moves the machine's clock to at: never backwards, and at most
// MaxClockStep forward per entry, so that one entry from a leader whose
// clock is far ahead cannot end canary windows, rollouts and schedules at
// once, or expire every idempotency key. The first clamp of a run is
// audited. It returns how much was cut off.
func (m *Machine) tick(at time.Time) time.Duration {
	var clamped time.Duration
	if step := m.Policy.MaxClockStep.Std(); !m.Now.IsZero() && step > 0 && at.Sub(m.Now) > step {
		clamped = at.Sub(m.Now) - step
		limit := m.Now.Add(step)
		if !m.Clamping {
			m.audit(limit, 0, "clock", "", "", System, fmt.Sprintf("entry time %s is %s ahead of the log time %s; clamped to +%s (max_clock_step): check the leader's clock",
				at.UTC().Format(time.RFC3339Nano), at.Sub(m.Now).Round(time.Millisecond), m.Now.UTC().Format(time.RFC3339Nano), step))
		}
		at = limit
		m.ClockClamps++
	}
	m.Clamping = clamped > 0
	if at.After(m.Now) {
		m.Now = at
	}
	return clamped
}

// archiveClosed moves the oldest closed or canceled changes beyond
// ClosedChangeLimit out of the state (into m.archived).
func (m *Machine) archiveClosed() {
	for len(m.ClosedOrder) > m.Policy.ClosedChangeLimit {
		id := m.ClosedOrder[0]
		m.ClosedOrder = m.ClosedOrder[1:]
		if ch := m.Changes[id]; ch != nil && (ch.State == change.Closed || ch.State == change.Canceled) {
			delete(m.Changes, id)
			m.archived = append(m.archived, ch)
		}
	}
}

// copyChange returns a copy of c that shares nothing the machine mutates
// later (its approvals grow in place).
func copyChange(c *change.Change) *change.Change {
	if c == nil {
		return nil
	}
	cc := *c
	cc.Approvals = append([]change.Approval(nil), c.Approvals...)
	return &cc
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
	for _, ch := range m.pendingChanges() {
		if ch.State == change.Scheduled {
			min(ch.NotBefore)
			if ch.NotBefore.IsZero() {
				min(m.Now)
			}
		}
	}
	return t
}

// KeepAliveDue reports whether the leader should propose a tick because the
// log time lags wall (its clock) by half of MaxClockStep or more: then an
// idle cluster's next real entry is not clamped, and a cluster restarted
// after a long stop catches up with the time in bounded steps.
func (m *Machine) KeepAliveDue(wall time.Time) bool {
	return !m.Now.IsZero() && wall.Sub(m.Now) >= m.Policy.MaxClockStep.Std()/2
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
func (m *Machine) ActiveProxies() []change.Proxy {
	var out []change.Proxy
	for _, p := range m.activeProxies(m.Now) {
		out = append(out, *p)
	}
	return out
}
