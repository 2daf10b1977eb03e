package fsm

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// The fleet and the cluster: proxies' reports (ACKs, NACKs, canary
// statistics), coordinator members, the policy and the cluster's identity.

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
			p = &change.Proxy{ID: r.Proxy}
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

// setCluster records the cluster's ID (once) and the ID of the key that
// seals entries from now on (once, and only by an entry sealed with it).
func (m *Machine) setCluster(c Command, now time.Time, sealedBy string) Result {
	if c.By != System {
		return Result{Err: errf(CodeForbidden, "%s may not set the cluster identity: only the coordinator does, when it first leads", who(c.By))}
	}
	ci := c.Cluster
	if ci == nil {
		return Result{Err: errf(CodeBadCommand, "cluster: missing payload")}
	}
	if !directive.ValidClusterID(ci.ID) {
		return Result{Err: errf(CodeInvalid, "cluster: %q is not a cluster ID", ci.ID)}
	}
	if ci.KeyID != "" && ci.KeyID != sealedBy {
		return Result{Err: errf(CodeUnauthenticated, "cluster: key ID %s can only be recorded by an entry sealed with that key", ci.KeyID)}
	}
	var what []string
	switch {
	case m.Cluster == "":
		m.Cluster = ci.ID
		// Versions created before the cluster had an ID get it too; they
		// are replaced, never mutated (readers may hold them).
		for v, d := range m.Versions {
			if d.Cluster == "" {
				cp := d.Clone()
				cp.Cluster = ci.ID
				m.Versions[v] = cp
			}
		}
		what = append(what, "cluster ID "+ci.ID)
	case m.Cluster != ci.ID:
		return Result{Err: errf(CodeConflict, "cluster: this cluster is %s, not %s", m.Cluster, ci.ID)}
	}
	switch {
	case ci.KeyID == "" || ci.KeyID == m.KeyID:
	case m.KeyID == "":
		m.KeyID = ci.KeyID
		what = append(what, fmt.Sprintf("every entry from index %d on is sealed with cluster key %s", m.Index, ci.KeyID))
	default:
		return Result{Err: errf(CodeConflict, "cluster: entries are sealed with key %s; changing the cluster key is not supported (keep the key, or build a new cluster)", m.KeyID)}
	}
	if len(what) > 0 {
		m.audit(now, 0, "cluster", "", "", c.By, strings.Join(what, "; "))
	}
	return Result{}
}
