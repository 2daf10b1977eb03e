package fsm

import (
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/change"
)

// Time-driven work: scheduled changes start, rollouts finish or time out,
// versions are pruned. It runs only when a command arrives (doc.go, step 5).

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
	if m.Active != 0 && next != nil && next.Type == change.Emergency {
		// An emergency change does not wait: the change in progress stops
		// where it is and goes to review.
		old := m.Changes[m.Active]
		m.Canary = nil
		m.finish(old, now, change.Superseded, fmt.Sprintf("superseded by emergency change %d", next.ID))
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
// whose if_stable is no longer the stable version. Implementing such a
// change would overwrite what was committed after it was planned. (The
// stable version grows, except when a fleet NACK sends it back to the last
// version the fleet acknowledged: a change planned on the refused version
// is stale then too.)
// Several are canceled in order of ID: every replica writes the same audit
// log.
func (m *Machine) cancelStale(now time.Time) {
	var stale []*change.Change
	for _, ch := range m.pendingChanges() {
		if ch.IfStable != 0 && ch.IfStable != m.Stable {
			stale = append(stale, ch)
		}
	}
	for _, ch := range stale {
		ch.Outcome = change.Stale
		ch.Detail = fmt.Sprintf("the stable version moved from %d to %d after this change was proposed; its directive was planned on version %d and would overwrite the newer one: plan it again", ch.IfStable, m.Stable, ch.IfStable)
		m.move(ch, change.Canceled, now, System, ch.Detail)
	}
}

// nextDue is the scheduled change to implement next: emergencies first,
// then in order of ID.
func (m *Machine) nextDue(now time.Time) *change.Change {
	var next *change.Change
	for _, ch := range m.pendingChanges() {
		if ch.State != change.Scheduled || (!ch.NotBefore.IsZero() && now.Before(ch.NotBefore)) {
			continue
		}
		if next == nil {
			next = ch
			continue
		}
		ce, ne := ch.Type == change.Emergency, next.Type == change.Emergency
		if ce && !ne || ce == ne && ch.ID < next.ID {
			next = ch
		}
	}
	return next
}

// activeProxies returns the proxies heard from within the TTL, sorted.
func (m *Machine) activeProxies(now time.Time) []*change.Proxy {
	var out []*change.Proxy
	for _, p := range m.Proxies {
		if now.Sub(p.SeenAt) <= m.Policy.ProxyTTL.Std() {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *Machine) implement(ch *change.Change, now time.Time) {
	m.Latest++
	v := m.Latest
	d := ch.Directive.Content()
	d.Version, d.Change, d.CommittedAt, d.RollbackOf, d.Cluster = v, ch.ID, now, ch.RollbackOf, m.Cluster
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
		m.Canary = &change.Canary{Change: ch.ID, Version: v, Base: m.Stable, Proxies: pickCanary(active, ch.ID, k)}
		why += fmt.Sprintf("; canary on %d of %d proxies: %s", k, len(active), strings.Join(m.Canary.Proxies, ", "))
	} else {
		m.Stable = v
		if len(active) == 0 {
			m.LastGood = v // nobody to ask
		}
		switch {
		case ch.Type == change.Emergency:
			why += "; emergency: rolled out to every proxy at once"
		case !ch.Canary || m.Policy.CanaryFraction == 0:
			why += "; no canary: rolled out to every proxy"
		default:
			why += "; no active proxy to canary on: rolled out to every proxy"
		}
	}
	m.move(ch, change.Implement, now, System, why)
	m.pruneVersions()
}

// pickCanary chooses k proxies by a hash of (change, proxy): deterministic,
// and a different subset for each change so no proxy always goes first.
func pickCanary(active []*change.Proxy, change uint64, k int) []string {
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

// pruneVersions drops the versions HistoryLimit or more behind the latest,
// except the stable version, the one being rolled out and a canary's base.
// It looks only at versions that became old since the last call and at the
// old ones it kept then (retained), not at every version kept.
func (m *Machine) pruneVersions() {
	limit := uint64(m.Policy.HistoryLimit)
	if m.Latest <= limit {
		return
	}
	keep := func(v uint64) bool {
		return v == m.Stable || v == m.LastGood || (m.Canary != nil && v == m.Canary.Base)
	}
	var still []uint64
	for _, v := range m.retained {
		if keep(v) {
			still = append(still, v)
		} else {
			delete(m.Versions, v)
		}
	}
	for v := m.pruned + 1; v+limit <= m.Latest; v++ {
		if _, ok := m.Versions[v]; !ok {
			continue
		}
		if keep(v) {
			still = append(still, v)
		} else {
			delete(m.Versions, v)
		}
	}
	m.pruned = max(m.pruned, m.Latest-limit)
	m.retained = still
}

func (m *Machine) stepRollout(ch *change.Change, now time.Time) bool {
	var waiting, refused []string
	acked, onBase := 0, 0
	active := m.activeProxies(now)
	for _, p := range active {
		if p.Version == ch.Base {
			onBase++
		}
		switch {
		case p.Version == ch.Version:
			acked++
		case p.Rejected == ch.Version:
			refused = append(refused, fmt.Sprintf("%s (%s)", p.ID, p.RejectError))
		default:
			waiting = append(waiting, p.ID)
		}
	}
	progressed := false
	if onBase > 0 && ch.Base > m.LastGood {
		// A proxy runs the version this change replaced, which was stable
		// when it applied it: the fleet acknowledged it, even if the report
		// came only now (an emergency change that followed the last one
		// before any proxy had reported on it).
		m.LastGood = ch.Base
		progressed = true
	}
	if acked > 0 && ch.Version == m.Stable && ch.Version > m.LastGood {
		m.LastGood = ch.Version // a proxy runs it: the fleet can
		progressed = true
	}
	// back returns the stable version to the last one the fleet
	// acknowledged, when no active proxy applied this one and some refused
	// it: otherwise proxies started later would be sent a version they
	// refuse too, and run without a directive.
	back := func() string {
		if ch.Version != m.Stable || m.LastGood == m.Stable {
			return ""
		}
		m.Stable = m.LastGood
		m.audit(now, ch.ID, "stable", "", "", System, fmt.Sprintf("no active proxy applied version %d: the stable version goes back to %d, the last version the fleet acknowledged", ch.Version, m.Stable))
		return fmt.Sprintf("; the stable version goes back to %d, the last version the fleet acknowledged, which they keep running and new proxies get", m.Stable)
	}
	switch {
	case len(waiting) == 0 && len(refused) == 0:
		m.finish(ch, now, change.Success, fmt.Sprintf("version %d live on every active proxy (%d)", ch.Version, len(active)))
	case len(waiting) == 0 && acked > 0:
		m.finish(ch, now, change.Partial, fmt.Sprintf("version %d refused by %s; those proxies keep their last good version", ch.Version, strings.Join(refused, ", ")))
	case len(waiting) == 0:
		m.finish(ch, now, change.Failed, fmt.Sprintf("version %d refused by every active proxy: %s", ch.Version, strings.Join(refused, ", "))+back())
	case !now.Before(ch.Deadline):
		detail := fmt.Sprintf("proxies %s did not apply version %d within %s", strings.Join(waiting, ", "), ch.Version, m.Policy.RolloutTimeout.Std())
		if acked == 0 && len(refused) > 0 {
			detail += fmt.Sprintf("; refused by %s and applied by none", strings.Join(refused, ", ")) + back()
		}
		m.finish(ch, now, change.TimedOut, detail)
	default:
		return progressed
	}
	return true
}

// finish moves an implemented change to review, and on to closed when it
// succeeded and is not an emergency (whose review a person must do).
func (m *Machine) finish(ch *change.Change, now time.Time, o change.Outcome, detail string) {
	m.Active = 0
	ch.Outcome, ch.Detail = o, detail
	m.move(ch, change.Review, now, System, detail)
	if o == change.Success && ch.Type != change.Emergency {
		m.move(ch, change.Closed, now, System, "review: implemented as planned")
	}
}
