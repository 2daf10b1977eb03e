package fsm

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// Canary judgement: a version on a fraction of the proxies is compared
// with the baseline, and promoted, failed early or rolled back.

func (m *Machine) stepCanary(ch *change.Change, now time.Time) bool {
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
		// Do not wait for the end of the window to stop an egregious
		// regression: every second of it hurts the canary's users.
		if reg := m.egregious(now); reg != "" {
			m.failCanary(ch, now, "canary aborted before the end of its window: "+reg)
			return true
		}
		return false
	}
	if reg := m.regression(now); reg != "" {
		m.failCanary(ch, now, "canary regression: "+reg)
		return true
	}
	m.Stable = cn.Version
	m.LastGood = cn.Version // the canary proxies run it, and it passed
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

// egregious describes the first service whose canary is so much worse
// than the baseline that the window need not end: an error rate of at
// least AbortErrorRate (and MaxErrorRateIncrease above the baseline's), or
// a p99 above baseline × AbortP99Ratio + P99SlackMs, with MinRequests on
// the canary (and on the baseline, for p99). "" if none.
func (m *Machine) egregious(now time.Time) string {
	pol := m.Policy
	if pol.AbortErrorRate <= 0 && pol.AbortP99Ratio <= 0 {
		return ""
	}
	names, canary, base := m.canaryStats(now)
	for _, n := range names {
		c, b := *canary[n], agg{}
		if base[n] != nil {
			b = *base[n]
		}
		if c.requests < max(pol.MinRequests, 1) {
			continue
		}
		if pol.AbortErrorRate > 0 && c.rate() >= pol.AbortErrorRate && c.rate()-b.rate() > pol.MaxErrorRateIncrease {
			return fmt.Sprintf("service %s: error rate %.1f%% on the canary (%d requests) vs %.1f%% on the baseline (abort at %.0f%%)", n, 100*c.rate(), c.requests, 100*b.rate(), 100*pol.AbortErrorRate)
		}
		if pol.AbortP99Ratio > 0 && b.requests >= max(pol.MinRequests, 1) && c.p99() > b.p99()*pol.AbortP99Ratio+pol.P99SlackMs {
			return fmt.Sprintf("service %s: p99 %.0f ms on the canary vs %.0f ms on the baseline (abort above x%.1f + %.0f ms)", n, c.p99(), b.p99(), pol.AbortP99Ratio, pol.P99SlackMs)
		}
	}
	return ""
}

// canaryStats aggregates the reports of the canary proxies (running the
// canary version) and of the baseline (the other active proxies, running
// the base version) per service; names are the canary's services, sorted.
func (m *Machine) canaryStats(now time.Time) (names []string, canary, base map[string]*agg) {
	cn := m.Canary
	inCanary := map[string]bool{}
	for _, id := range cn.Proxies {
		inCanary[id] = true
	}
	canary, base = map[string]*agg{}, map[string]*agg{}
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
	names = make([]string, 0, len(canary))
	for n := range canary {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, canary, base
}

// regression compares the canary proxies' reports with the other active
// proxies' (the baseline) per service and describes the first service
// beyond the thresholds ("" if none).
func (m *Machine) regression(now time.Time) string {
	names, canary, base := m.canaryStats(now)
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
func (m *Machine) failCanary(ch *change.Change, now time.Time, detail string) {
	base := m.Canary.Base
	m.Canary = nil
	m.Active = 0
	ch.Outcome, ch.Detail = change.Failed, detail
	m.move(ch, change.Review, now, System, detail+"; rolling back to version "+strconv.FormatUint(base, 10))
	content, err := m.content(base)
	if err != nil {
		// The base is always kept (pruneVersions), so this is a bug; leave
		// the stable version as it is, which is the base anyway.
		m.audit(now, ch.ID, "rollback", "", "", System, "automatic rollback impossible: "+err.Msg)
		return
	}
	rb := m.newChange(System, change.Emergency, fmt.Sprintf("automatic rollback of change %d: %s", ch.ID, detail), content, now)
	rb.RollbackOf, rb.RollbackFor = base, ch.ID
	ch.RolledBackBy = rb.ID
	m.assessAndAuthorize(rb, System, now)
}
