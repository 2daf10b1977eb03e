package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/config"
)

// Validation: the ranges and cross-references of a scenario, after its
// defaults are filled.

func svcPath(s *Service, i int) string {
	if s.Name != "" {
		return "services[" + s.Name + "]"
	}
	return fmt.Sprintf("services[%d]", i)
}

var weekdays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func (sc *Scenario) validate(v *validator) {
	sc.validateCalendar(v)
	if sc.Duration <= 0 {
		v.errf("duration", "required: how much simulated time to run, e.g. 2h")
	} else if sc.Duration > 31*24*time.Hour {
		v.errf("duration", "%v is more than 31 days", sc.Duration)
	}
	if sc.Window < time.Second || sc.Window > time.Hour {
		v.errf("window", "want 1s to 1h, got %v", sc.Window)
	} else if sc.Duration > 0 && sc.Duration/sc.Window > 200000 {
		v.errf("window", "%v makes more than 200000 windows in %v", sc.Window, sc.Duration)
	}
	for i, p := range sc.Policies {
		if _, ok := balance.Lookup(p); !ok {
			v.errf(fmt.Sprintf("policies[%d]", i), "unknown policy %q: use one of %s", p, strings.Join(balance.Names(), ", "))
		}
	}
	for name := range sc.Proxies.PolicyOptions {
		if _, ok := balance.Lookup(name); !ok {
			v.errf("proxies.policy_options."+name, "unknown policy %q: use one of %s", name, strings.Join(balance.Names(), ", "))
		}
	}
	if len(sc.Services) == 0 {
		v.errf("services", "required: at least one service")
	}
	names := map[string]int{}
	for i := range sc.Services {
		s := &sc.Services[i]
		p := svcPath(s, i)
		if s.Name == "" {
			v.errf(p+".name", "required")
		} else if _, dup := names[s.Name]; dup {
			v.errf(p+".name", "service %q defined twice", s.Name)
		}
		names[s.Name] = i
		switch {
		case s.Replicas < 0 || s.Replicas > 100000:
			v.errf(p+".replicas", "want 0 to 100000, got %d", s.Replicas)
		}
		if s.Workers < 1 || s.Workers > 100000 {
			v.errf(p+".workers", "want 1 to 100000, got %d", s.Workers)
		}
		if s.Queue < -1 {
			v.errf(p+".queue", "want -1 (unbounded), 0 (no queue) or more, got %d", s.Queue)
		}
		if s.QueueTimeout < 0 {
			v.errf(p+".queue_timeout", "negative")
		}
		st := s.ServiceTime
		if st.Mean <= 0 {
			v.errf(p+".service_time.mean", "must be > 0")
		}
		switch st.Dist {
		case "lognormal":
			if *st.CV < 0 || *st.CV > 10 {
				v.errf(p+".service_time.cv", "want 0 to 10, got %v", *st.CV)
			}
		case "exponential":
			if sc.set(p+".service_time.cv") && *st.CV != 1 {
				v.errf(p+".service_time.cv", "an exponential distribution has cv 1; remove the line or use dist: lognormal")
			}
		case "constant":
		default:
			v.errf(p+".service_time.dist", "unknown %q: use lognormal, exponential or constant", st.Dist)
		}
		cls := map[string]bool{}
		for j, c := range s.Classes {
			cp := fmt.Sprintf("%s.classes[%s]", p, c.Name)
			if c.Name == "" {
				cp = fmt.Sprintf("%s.classes[%d]", p, j)
				v.errf(cp+".name", "required")
			}
			if cls[c.Name] {
				v.errf(cp+".name", "class %q defined twice", c.Name)
			}
			cls[c.Name] = true
			if !(c.Cost > 0) || c.Cost > 1000 {
				v.errf(cp+".cost", "want a number in (0, 1000], got %v", c.Cost)
			}
			if c.Priority != "" {
				if _, err := admission.ParsePriority(c.Priority); err != nil {
					v.errf(cp+".priority", "%v", err)
				}
			}
			if len(c.Calls) > 16 {
				v.errf(cp+".calls", "at most 16 calls")
			}
		}
		for j, x := range s.Speeds {
			if !(x > 0) || x > 1000 {
				v.errf(fmt.Sprintf("%s.speeds[%d]", p, j), "want a speed in (0, 1000], got %v", x)
			}
		}
		if r := s.SpeedRange; r != nil && (!(r.Min > 0) || r.Max < r.Min || r.Max > 1000) {
			v.errf(p+".speed_range", "want 0 < min <= max <= 1000, got %v..%v", r.Min, r.Max)
		}
		if n := s.NoisyNeighbours; n != nil {
			switch {
			case n.Period <= 0:
				v.errf(p+".noisy_neighbours.period", "required, > 0")
			case n.Duration <= 0 || n.Duration >= n.Period:
				v.errf(p+".noisy_neighbours.duration", "want 0 < duration < period")
			case !(n.Factor > 0 && n.Factor <= 1):
				v.errf(p+".noisy_neighbours.factor", "want a slowdown factor in (0, 1], got %v", n.Factor)
			case n.Share < 0 || n.Share > 1:
				v.errf(p+".noisy_neighbours.share", "want a share in [0, 1], got %v", n.Share)
			}
		}
		if g := s.GC; g != nil && (g.Every <= 0 || g.Pause <= 0 || g.Pause >= g.Every) {
			v.errf(p+".gc", "want 0 < pause < every, got pause %v every %v", g.Pause, g.Every)
		}
		if c := s.ColdStart; c != nil && (!(c.Factor >= 1 && c.Factor <= 1000) || c.Over <= 0) {
			v.errf(p+".cold_start", "want factor >= 1 and over > 0, got factor %v over %v", c.Factor, c.Over)
		}
		if c := s.Cache; c != nil && (c.HitRatio < 0 || c.HitRatio > 1 || !(c.HitCost > 0 && c.HitCost <= 1) || c.WarmRequests <= 0) {
			v.errf(p+".cache", "want hit_ratio in [0, 1], hit_cost in (0, 1], warm_requests > 0")
		}
		if s.ErrorRate < 0 || s.ErrorRate > 1 {
			v.errf(p+".error_rate", "want a share in [0, 1], got %v", s.ErrorRate)
		}
		sc.validateProxyCache(v, s, p)
		if _, err := admission.ParsePriority(s.Priority); err != nil {
			v.errf(p+".priority", "%v", err)
		}
		if s.Affinity != "none" && s.Affinity != "cookie" {
			v.errf(p+".affinity", "want none or cookie, got %q", s.Affinity)
		}
		if s.Timeout != nil && *s.Timeout < 0 {
			v.errf(p+".timeout", "negative")
		}
		if s.SLO.P99 <= 0 || s.SLO.ErrorRate <= 0 || s.SLO.ErrorRate > 1 {
			v.errf(p+".slo", "want p99 > 0 and error_rate in (0, 1]")
		}
		if s.PricePerHour < 0 {
			v.errf(p+".price_per_hour", "negative")
		}
		if a := s.Autoscale; a != nil {
			ap := p + ".autoscale"
			switch {
			case a.Min < 1:
				v.errf(ap+".min", "want at least 1, got %d", a.Min)
			case a.Max < a.Min || a.Max > 100000:
				v.errf(ap+".max", "want min (%d) <= max <= 100000, got %d", a.Min, a.Max)
			case !(a.TargetUtilization > 0 && a.TargetUtilization <= 1):
				v.errf(ap+".target_utilization", "want a share in (0, 1], got %v", a.TargetUtilization)
			case *a.Tolerance < 0 || *a.Tolerance >= 1:
				v.errf(ap+".tolerance", "want [0, 1), got %v", *a.Tolerance)
			case a.SyncPeriod < time.Second:
				v.errf(ap+".sync_period", "want at least 1s")
			case a.PodStart < 0:
				v.errf(ap+".pod_start", "negative")
			case a.MetricLag < 0 || a.MetricLag > time.Duration(maxSnaps-2)*a.SyncPeriod:
				v.errf(ap+".metric_lag", "want 0 to %v (%d sync periods), got %v", time.Duration(maxSnaps-2)*a.SyncPeriod, maxSnaps-2, a.MetricLag)
			}
			for k, r := range []*ScaleRules{a.ScaleUp, a.ScaleDown} {
				rp := ap + "." + [2]string{"scale_up", "scale_down"}[k]
				if *r.Stabilization < 0 || *r.Stabilization > time.Hour {
					v.errf(rp+".stabilization", "want 0 to 1h")
				}
				if r.Select != "max" && r.Select != "min" && r.Select != "disabled" {
					v.errf(rp+".select", "want max, min or disabled, got %q", r.Select)
				}
				for k, pol := range r.Policies {
					pp := fmt.Sprintf("%s.policies[%d]", rp, k)
					if pol.Type != "pods" && pol.Type != "percent" {
						v.errf(pp+".type", "want pods or percent, got %q", pol.Type)
					}
					if pol.Value <= 0 || pol.Period <= 0 || pol.Period > 30*time.Minute {
						v.errf(pp, "want value > 0 and 0 < period <= 30m")
					}
				}
			}
		}
	}
	checkCall := func(path string, c Call) {
		i, ok := names[c.Service]
		if !ok {
			v.errf(path+".service", "unknown service %q", c.Service)
			return
		}
		found := false
		for _, cl := range sc.Services[i].Classes {
			found = found || cl.Name == c.Class
		}
		if !found {
			var cn []string
			for _, cl := range sc.Services[i].Classes {
				cn = append(cn, cl.Name)
			}
			v.errf(path+".class", "service %s has no class %q: use one of %s", c.Service, c.Class, strings.Join(cn, ", "))
		}
		if !(c.P > 0 && c.P <= 1) {
			v.errf(path+".p", "want a probability in (0, 1], got %v", c.P)
		}
	}
	for i := range sc.Services {
		s := &sc.Services[i]
		for _, c := range s.Classes {
			for k, call := range c.Calls {
				checkCall(fmt.Sprintf("%s.classes[%s].calls[%d]", svcPath(s, i), c.Name, k), call)
			}
		}
	}
	sc.validateCallDepth(v)

	l := &sc.Load
	kinds := 0
	if l.Rate != 0 {
		kinds++
		if l.Rate < 0 {
			v.errf("load.rate", "negative")
		}
	}
	if c := l.Curve; c != nil {
		kinds++
		if !(c.Base > 0) {
			v.errf("load.curve.base", "required: the mean rate, > 0")
		}
		if c.Diurnal < 0 || c.Diurnal >= 1 || c.Weekly < 0 || c.Weekly >= 1 {
			v.errf("load.curve", "diurnal and weekly amplitudes are in [0, 1)")
		}
		if c.PeakHour < 0 || c.PeakHour > 24 {
			v.errf("load.curve.peak_hour", "want 0 to 24")
		}
		if !slices.Contains(weekdays, strings.ToLower(c.PeakDay)) {
			v.errf("load.curve.peak_day", "want monday … sunday, got %q", c.PeakDay)
		}
	}
	if t := l.Trace; t != nil {
		kinds++
		if t.File == "" {
			v.errf("load.trace.file", "required: a CSV with timestamp,requests rows")
		}
		if !(t.Speed > 0) || t.Speed > 1e6 {
			v.errf("load.trace.speed", "want (0, 1e6], got %v", t.Speed)
		}
		if t.PeakRPS < 0 {
			v.errf("load.trace.peak_rps", "negative")
		}
		if !t.From.IsZero() && (t.From.Before(traceMinTime) || !t.From.Before(traceMaxTime)) {
			v.errf("load.trace.from", "%s is outside the years 1900 to 2099 a trace may cover", t.From.Format(time.RFC3339))
		}
	}
	if s := l.Steps; s != nil {
		kinds++
		if _, ok := names[s.Service]; !ok {
			v.errf("load.steps.service", "unknown service %q", s.Service)
		}
		if !(s.From >= 0) || !(s.To >= 0) || s.From > 100 || s.To > 100 {
			v.errf("load.steps", "from and to are multiples of capacity in [0, 100]")
		}
		if s.Count < 1 || s.Count > 100000 {
			v.errf("load.steps.count", "want 1 to 100000")
		}
		if s.Each <= 0 {
			v.errf("load.steps.each", "must be > 0")
		}
	}
	if kinds != 1 {
		v.errf("load", "give exactly one of rate, curve, trace or steps (got %d)", kinds)
	}
	if l.Resolution < time.Millisecond || l.Resolution > time.Hour {
		v.errf("load.resolution", "want 1ms to 1h")
	}
	for k, ws := range [][]Window{l.FlashSales, l.Campaigns} {
		name := [2]string{"flash_sales", "campaigns"}[k]
		for i, w := range ws {
			p := fmt.Sprintf("load.%s[%d]", name, i)
			if !(w.X > 0) || w.X > 1000 {
				v.errf(p+".x", "required: the factor at the plateau, in (0, 1000]")
			}
			if w.For <= 0 || w.Rise < 0 || w.Fall < 0 || w.Rise+w.Fall > w.For {
				v.errf(p, "want for > 0 and rise + fall <= for")
			}
			if !w.At.IsZero() && w.After != 0 {
				v.errf(p, "give at (a calendar time) or after (an offset), not both")
			}
		}
	}

	c := &sc.Clients
	switch c.Mode {
	case "requests":
		if len(c.Mix) == 0 {
			v.errf("clients.mix", "required in requests mode")
		}
		total := 0.0
		for i, m := range c.Mix {
			p := fmt.Sprintf("clients.mix[%d]", i)
			checkCall(p, Call{Service: m.Service, Class: m.Class, P: 1})
			if m.Weight < 0 {
				v.errf(p+".weight", "negative")
			}
			total += m.Weight
		}
		if total <= 0 && len(c.Mix) > 0 {
			v.errf("clients.mix", "weights sum to 0")
		}
	case "sessions":
		for i, st := range c.Funnel {
			p := fmt.Sprintf("clients.funnel[%s]", elemName(st.Name, i))
			if len(st.Requests) == 0 {
				v.errf(p+".requests", "required: at least one request")
			}
			if len(st.Requests) > 16 {
				v.errf(p+".requests", "at most 16")
			}
			for k, r := range st.Requests {
				checkCall(fmt.Sprintf("%s.requests[%d]", p, k), r)
			}
			if st.Reach < 0 || st.Reach > 1 {
				v.errf(p+".reach", "want a fraction in [0, 1]")
			}
			if i == 0 && st.Reach != 1 {
				v.errf(p+".reach", "the first step is reached by every session: 1")
			}
			if i > 0 && st.Reach > c.Funnel[i-1].Reach {
				v.errf(p+".reach", "%v is more than the previous step's %v: reach is a fraction of all sessions and cannot grow", st.Reach, c.Funnel[i-1].Reach)
			}
			if st.Retries < 0 || st.Retries > 10 {
				v.errf(p+".retries", "want 0 to 10")
			}
		}
		if len(c.Funnel) == 0 {
			v.errf("clients.funnel", "required in sessions mode")
		}
		if len(c.Funnel) > 32 {
			v.errf("clients.funnel", "at most 32 steps")
		}
	default:
		v.errf("clients.mode", "unknown %q: use sessions or requests", c.Mode)
	}
	if c.Think < 0 {
		v.errf("clients.think", "negative")
	}
	if c.ThinkDist != "lognormal" && c.ThinkDist != "exponential" {
		v.errf("clients.think_dist", "want lognormal or exponential, got %q", c.ThinkDist)
	}
	if c.AbandonAfter <= 0 {
		v.errf("clients.abandon_after", "must be > 0")
	}

	px := &sc.Proxies
	if px.Count < 1 || px.Count > 10000 {
		v.errf("proxies.count", "want 1 to 10000, got %d", px.Count)
	}
	if px.Timeout < 0 {
		v.errf("proxies.timeout", "negative")
	}
	r := px.Retries
	if *r.Attempts < 0 || *r.Attempts > 10 {
		v.errf("proxies.retries.attempts", "want 0 to 10 (the proxy's bounds), got %d", *r.Attempts)
	}
	for i, on := range r.On {
		if !slices.Contains(config.RetryConditions, on) {
			v.errf(fmt.Sprintf("proxies.retries.on[%d]", i), "unknown retry condition %q: use %s", on, strings.Join(config.RetryConditions, ", "))
		}
	}
	if r.BackoffBase < 0 || r.BackoffMax < r.BackoffBase {
		v.errf("proxies.retries", "want 0 <= backoff_base <= backoff_max")
	}
	if *r.BudgetPercent < 0 || *r.BudgetPercent > 100 || *r.MinRetryConcurrency < 0 {
		v.errf("proxies.retries", "want budget_percent in [0, 100] and min_retry_concurrency >= 0")
	}
	if a := px.Admission; a != nil {
		if err := a.LimiterConfig().Validate(); err != nil {
			v.errf("proxies.admission", "%v", err)
		}
	}
	o := px.Health.Outlier
	if *o.Consecutive5xx < 0 || *o.ConsecutiveGatewayFailure < 0 || *o.MaxEjectionPercent < 0 || *o.MaxEjectionPercent > 100 {
		v.errf("proxies.health.outlier", "want counts >= 0 and max_ejection_percent in [0, 100]")
	}
	if o.BaseEjectionTime <= 0 || o.MaxEjectionTime < o.BaseEjectionTime {
		v.errf("proxies.health.outlier", "want 0 < base_ejection_time <= max_ejection_time")
	}
	if p := *px.Health.PanicThreshold; p < 0 || p > 100 {
		v.errf("proxies.health.panic_threshold", "want a percentage in [0, 100]")
	}
	if ss := px.Health.SlowStart; ss != nil && (ss.Window <= 0 || ss.Aggression <= 0 || ss.MinWeightPercent < 0 || ss.MinWeightPercent > 100) {
		v.errf("proxies.health.slow_start", "want window > 0, aggression > 0, min_weight_percent in [0, 100]")
	}
	if a := px.Health.Active; a != nil && (a.Interval < 10*time.Millisecond || a.HealthyThreshold < 1 || a.UnhealthyThreshold < 1) {
		v.errf("proxies.health.active", "want interval >= 10ms and thresholds >= 1")
	}
	if px.Tick < time.Millisecond || px.ProbeTick < 100*time.Microsecond {
		v.errf("proxies", "want tick >= 1ms and probe_tick >= 100us")
	}
	if px.NetworkRTT < 0 || px.NetworkRTT > time.Second {
		v.errf("proxies.network_rtt", "want 0 to 1s")
	}
	cl := sc.Cluster
	if cl.PodsPerNode < 0 || cl.SpareNodes < 0 || cl.NodeProvisioning < 0 {
		v.errf("cluster", "want pods_per_node, spare_nodes and node_provisioning >= 0")
	}
	for i, f := range sc.Failures {
		p := fmt.Sprintf("failures[%d]", i)
		si, ok := names[f.Service]
		if !ok {
			v.errf(p+".service", "unknown service %q", f.Service)
			continue
		}
		if (len(f.Replicas) == 0) == (f.Share == 0) {
			v.errf(p, "give replicas (indices) or share, one of them")
		}
		for k, r := range f.Replicas {
			if r < 0 || r >= sc.Services[si].Replicas {
				v.errf(fmt.Sprintf("%s.replicas[%d]", p, k), "replica %d does not exist at the start (0..%d)", r, sc.Services[si].Replicas-1)
			}
		}
		if f.Share < 0 || f.Share > 1 {
			v.errf(p+".share", "want a share in [0, 1]")
		}
		if f.At < 0 || f.For < 0 {
			v.errf(p, "at and for must be >= 0")
		}
	}
	for i, st := range sc.ScalePlan {
		p := fmt.Sprintf("scale_plan[%d]", i)
		si, ok := names[st.Service]
		if !ok {
			v.errf(p+".service", "unknown service %q", st.Service)
			continue
		}
		if sc.Services[si].Autoscale == nil {
			v.errf(p+".service", "service %s has no autoscale block: a scale plan raises an autoscaler's minimum", st.Service)
		}
		if st.MinReplicas < 1 || st.At < 0 {
			v.errf(p, "want min_replicas >= 1 and at >= 0")
		}
	}
	for name, n := range px.PolicyOptions {
		n := n
		if _, err := balance.New(name, func(into any) error { return strictNodeDecode(&n, into) }); err != nil {
			v.errf("proxies.policy_options."+name, "%v", err)
		}
	}
}

func elemName(name string, i int) string {
	if name != "" {
		return name
	}
	return fmt.Sprint(i)
}

// validateCallDepth rejects call cycles (checkout calling itself through
// another service) and chains deeper than 4, with a depth-first search
// that visits each class once.
func (sc *Scenario) validateCallDepth(v *validator) {
	type key struct{ svc, class string }
	calls := map[key][]key{}
	var order []key
	for _, s := range sc.Services {
		for _, c := range s.Classes {
			k := key{s.Name, c.Name}
			if _, dup := calls[k]; dup {
				continue
			}
			order = append(order, k)
			calls[k] = nil
			for _, call := range c.Calls {
				calls[k] = append(calls[k], key{call.Service, call.Class})
			}
		}
	}
	const (
		unseen = iota
		active
		done
	)
	state := map[key]int{}
	depth := map[key]int{} // longest chain below k
	var visit func(k key) bool
	visit = func(k key) bool {
		switch state[k] {
		case active:
			return false // a cycle
		case done:
			return true
		}
		state[k] = active
		d := 0
		for _, c := range calls[k] {
			if !visit(c) {
				return false
			}
			d = max(d, depth[c]+1)
		}
		state[k] = done
		depth[k] = d
		return true
	}
	for _, k := range order {
		if !visit(k) || depth[k] > 4 {
			idx := 0
			for j, s := range sc.Services {
				if s.Name == k.svc {
					idx = j
				}
			}
			v.errf(svcPath(&sc.Services[idx], idx)+".classes["+k.class+"].calls", "downstream calls nest deeper than 4 (or form a cycle) through %s.%s", k.svc, k.class)
			return
		}
	}
}
