// Package steer is the one place where a directive's service section
// becomes changes to a running service: the balancer's weights and
// slow-start ramps, the admission limiter's bounds and seed, the response
// cache's TTL hints and warm list, and the replica floor an autoscaler
// holds. The proxy's agent (internal/proxy)
// and the simulator (internal/sim) both go through it, so a directive
// means the same thing in both (DESIGN.md: "a decision that only exists in
// the simulator, or only live, is a defect").
//
// It is pure decision code: no locks, no clock reads (now is passed in),
// no I/O. Plan checks everything a section asks against what the service
// can do and returns either a complete Change or an error that names every
// problem; nothing is half-applied.
package steer

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
)

// Caps is what a running service can take.
type Caps struct {
	// Policy is the balancing policy's name (for error messages);
	// Directed whether it takes weights and ramps (balance.Directed).
	Policy   string
	Directed bool
	// Limiter is the service's admission limiter, nil when admission is
	// off.
	Limiter *admission.Limiter
	// Endpoints are the service's endpoint IDs; weights and ramps naming
	// any other are refused (a mistyped port must not silently do
	// nothing). Nil: names are not checked.
	Endpoints map[string]bool
}

// Change moves a service from its applied section to the next one.
type Change struct {
	// Weights is the balancer directive to install; ClearWeights removes
	// the current one. Neither: the balancer is left as it is.
	Weights      *balance.Directive
	ClearWeights bool
	// Admission, when set, is applied to the limiter.
	Admission *Bounds
	// Cache, when set, is the service's new cache section: its TTL hints
	// replace the service's and its warm list is fetched once. ClearCache
	// removes the hints. Neither: the cache is left as it is (in
	// particular, an unchanged section is not warmed again). A service
	// that caches nothing takes the change and does nothing with it: the
	// hints are advice, and one proxy that does not cache a service must
	// not NACK a directive the others apply.
	Cache      *directive.Cache
	ClearCache bool
}

// Empty reports whether the change does nothing.
func (c Change) Empty() bool {
	return c.Weights == nil && !c.ClearWeights && c.Admission == nil && c.Cache == nil && !c.ClearCache
}

// Service reports whether the change touches the balancer or the limiter
// (the parts applied under the service's lock), not only the cache.
func (c Change) Service() bool { return c.Weights != nil || c.ClearWeights || c.Admission != nil }

// Bounds are admission bounds and a seed; a zero Min or Max is the
// configured bound, a zero Seed leaves the current limit. A seed only
// raises the limit: it is there so that the limit starts a forecast peak
// where the peak's concurrency needs it instead of learning it during the
// peak; a limit the limiter already holds above it was learned from the
// replicas' answers, and pulling it down (a forecast made on the median
// latency, before a burst) sheds requests the replicas could serve.
type Bounds struct {
	Min, Max, Seed int
}

// Apply sets the bounds, then raises the limit to the seed (clamped to
// them) if it is below.
func (b Bounds) Apply(l *admission.Limiter) error {
	if l == nil {
		return errors.New("admission is off for this service")
	}
	if err := l.SetBounds(b.Min, b.Max); err != nil {
		return err
	}
	if b.Seed > 0 && float64(b.Seed) > l.Limit() {
		l.Seed(float64(b.Seed))
	}
	return nil
}

// Plan derives the change from prev (the section applied now, nil: none)
// to next (nil: the directive no longer speaks for the service). version
// labels the balancer directive; now starts ramps without a start. With
// keepSeed the admission seed is not re-applied (a re-application after a
// reload must not throw away what the limiter learned). The error lists
// every problem found.
func Plan(prev, next *directive.Service, caps Caps, version uint64, now time.Time, keepSeed bool) (Change, error) {
	var ch Change
	var errs []string
	wantsWeights := next != nil && (len(next.Weights) > 0 || len(next.SlowStart) > 0)
	hadWeights := prev != nil && (len(prev.Weights) > 0 || len(prev.SlowStart) > 0)
	if wantsWeights && caps.Endpoints != nil {
		var unknown []string
		for id := range next.Weights {
			if !caps.Endpoints[id] {
				unknown = append(unknown, "weights["+id+"]")
			}
		}
		for i, r := range next.SlowStart {
			if !caps.Endpoints[r.Endpoint] {
				unknown = append(unknown, fmt.Sprintf("slow_start[%d] (%s)", i, r.Endpoint))
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			errs = append(errs, fmt.Sprintf("%s name endpoints the service does not have (it has %s)", strings.Join(unknown, ", "), endpointList(caps.Endpoints)))
		}
	}
	switch {
	case wantsWeights && !caps.Directed:
		errs = append(errs, fmt.Sprintf("policy %s does not take weights or slow_start; set `policy: weighted` for this service in the proxy configuration", caps.Policy))
	case wantsWeights:
		bd := &balance.Directive{Version: fmt.Sprintf("gaia-%d", version), Weights: next.Weights}
		for _, r := range next.SlowStart {
			start := now
			if r.Start != nil {
				start = *r.Start
			}
			bd.Ramps = append(bd.Ramps, balance.Ramp{Endpoint: r.Endpoint, From: r.From, To: r.To, Start: start, Duration: r.Duration.Std()})
		}
		if err := bd.Validate(); err != nil {
			errs = append(errs, err.Error())
		}
		ch.Weights = bd
	case hadWeights && caps.Directed:
		ch.ClearWeights = true
	}
	var prevAdm *directive.Admission
	if prev != nil {
		prevAdm = prev.Admission
	}
	switch {
	case next != nil && next.Admission != nil:
		a := next.Admission
		if caps.Limiter == nil {
			errs = append(errs, "admission: the service has no admission control; add `admission: {}` to it in the proxy configuration")
			break
		}
		cfgMin, cfgMax := caps.Limiter.ConfiguredBounds()
		lo, hi := a.Min, a.Cap
		if lo == 0 {
			lo = cfgMin
		}
		if hi == 0 {
			hi = cfgMax
		}
		if lo > hi {
			errs = append(errs, fmt.Sprintf("admission: min %d would exceed cap %d (a zero field keeps the configured bound: min %d, max %d)", lo, hi, cfgMin, cfgMax))
			break
		}
		b := &Bounds{Min: a.Min, Max: a.Cap}
		// Seed only when the seed itself changed: re-seeding on every
		// version would throw away what the limiter learned.
		if a.Seed > 0 && (prevAdm == nil || prevAdm.Seed != a.Seed) && !keepSeed {
			b.Seed = a.Seed
		}
		ch.Admission = b
	case prevAdm != nil && caps.Limiter != nil:
		ch.Admission = &Bounds{} // back to the configured bounds
	}
	var prevCache *directive.Cache
	if prev != nil {
		prevCache = prev.Cache
	}
	switch {
	case next != nil && next.Cache != nil:
		if err := checkCache(next.Cache); err != "" {
			errs = append(errs, err)
			break
		}
		if !cacheEqual(prevCache, next.Cache) {
			ch.Cache = next.Cache
		}
	case prevCache != nil && len(prevCache.TTLHints) > 0:
		ch.ClearCache = true
	}
	if len(errs) > 0 {
		return Change{}, errors.New(strings.Join(errs, "; "))
	}
	return ch, nil
}

// checkCache checks a cache section with the directive schema's own rules
// (a section may come from POST /directive, which is not a whole
// directive): every problem, as "cache.<field>: <what is wrong>".
func checkCache(c *directive.Cache) string {
	d := &directive.Directive{Schema: directive.SchemaVersion, Services: map[string]*directive.Service{"s": {Cache: c}}}
	err := d.Validate()
	if err == nil {
		return ""
	}
	var ve *directive.ValidationError
	if !errors.As(err, &ve) {
		return "cache: " + err.Error()
	}
	parts := make([]string, 0, len(ve.Errors))
	for _, fe := range ve.Errors {
		parts = append(parts, strings.TrimPrefix(fe.Path, "services[s].")+": "+fe.Msg)
	}
	return strings.Join(parts, "; ")
}

// cacheEqual compares what a cache section asks (its reason aside).
func cacheEqual(a, b *directive.Cache) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Warm) != len(b.Warm) || len(a.TTLHints) != len(b.TTLHints) {
		return false
	}
	for i := range a.Warm {
		if a.Warm[i] != b.Warm[i] {
			return false
		}
	}
	for i := range a.TTLHints {
		if a.TTLHints[i] != b.TTLHints[i] {
			return false
		}
	}
	return true
}

func endpointList(m map[string]bool) string {
	if len(m) == 0 {
		return "none"
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) > 8 {
		return strings.Join(ids[:8], ", ") + fmt.Sprintf(" and %d more", len(ids)-8)
	}
	return strings.Join(ids, ", ")
}

// Floor is the replica minimum a section asks an autoscaler to hold at
// now: its scale recommendation until the recommendation lapses (0: none).
func Floor(sec *directive.Service, now time.Time) int {
	if sec == nil || sec.Scale == nil {
		return 0
	}
	if u := sec.Scale.Until; u != nil && !now.Before(*u) {
		return 0
	}
	return sec.Scale.Replicas
}
