package sim

import (
	"fmt"
	"slices"
	"time"
)

// Defaults: what a field left out of the file means (documented on the
// field in scenario.go).

// DefaultStart is the default calendar start: Black Friday 2026.
var DefaultStart = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// DefaultPolicies are compared when neither the CLI nor the scenario says.
var DefaultPolicies = []string{"round_robin", "least_request", "peak_ewma", "prequal"}

func defDur(p *time.Duration, set bool, def time.Duration) {
	if *p == 0 && !set {
		*p = def
	}
}

func (sc *Scenario) defaults(v *validator) {
	if sc.Seed == 0 && !sc.set("seed") {
		sc.Seed = 1
	}
	if sc.Start.IsZero() {
		sc.Start = DefaultStart
	}
	defDur(&sc.Window, false, time.Minute)
	if len(sc.Policies) == 0 {
		sc.Policies = slices.Clone(DefaultPolicies)
	}
	l := &sc.Load
	defDur(&l.Resolution, false, time.Second)
	for i := range l.FlashSales {
		w := &l.FlashSales[i]
		defDur(&w.For, false, 20*time.Minute)
		defDur(&w.Rise, sc.set(fmt.Sprintf("load.flash_sales[%d].rise", i)), 2*time.Minute)
	}
	for i := range l.Campaigns {
		w := &l.Campaigns[i]
		defDur(&w.For, false, 6*time.Hour)
		defDur(&w.Rise, sc.set(fmt.Sprintf("load.campaigns[%d].rise", i)), 30*time.Minute)
		defDur(&w.Fall, sc.set(fmt.Sprintf("load.campaigns[%d].fall", i)), 30*time.Minute)
	}
	if c := l.Curve; c != nil {
		if !sc.set("load.curve.peak_hour") {
			c.PeakHour = 20
		}
		if c.PeakDay == "" {
			c.PeakDay = "sunday"
		}
	}
	if t := l.Trace; t != nil {
		if t.TimeCol == "" {
			t.TimeCol = "timestamp"
		}
		if t.ValueCol == "" {
			t.ValueCol = "requests"
		}
		if t.Speed == 0 {
			t.Speed = 1
		}
	}
	if s := l.Steps; s != nil {
		if s.Count == 0 {
			s.Count = 10
		}
		if s.Service == "" && len(sc.Services) > 0 {
			s.Service = sc.Services[0].Name
		}
		if s.Each == 0 && s.Count > 0 {
			s.Each = sc.Duration / time.Duration(s.Count)
		}
	}

	for i := range sc.Services {
		s := &sc.Services[i]
		p := svcPath(s, i)
		if s.Replicas == 0 && !sc.set(p+".replicas") {
			s.Replicas = 1
		}
		if s.Workers == 0 {
			s.Workers = 8
		}
		if s.Queue == 0 && !sc.set(p+".queue") {
			s.Queue = 64
		}
		defDur(&s.QueueTimeout, sc.set(p+".queue_timeout"), 500*time.Millisecond)
		defDur(&s.ServiceTime.Mean, false, 20*time.Millisecond)
		if s.ServiceTime.Dist == "" {
			s.ServiceTime.Dist = "lognormal"
		}
		if s.ServiceTime.CV == nil {
			cv := 0.5
			if s.ServiceTime.Dist == "exponential" {
				cv = 1
			} else if s.ServiceTime.Dist == "constant" {
				cv = 0
			}
			s.ServiceTime.CV = &cv
		}
		if len(s.Classes) == 0 {
			s.Classes = []Class{{Name: "default"}}
		}
		for j := range s.Classes {
			c := &s.Classes[j]
			if c.Cost == 0 {
				c.Cost = 1
			}
			if c.Idempotent == nil {
				t := true
				c.Idempotent = &t
			}
			for k := range c.Calls {
				if c.Calls[k].P == 0 {
					c.Calls[k].P = 1
				}
			}
		}
		if s.Priority == "" {
			s.Priority = "normal"
		}
		if s.Affinity == "" {
			s.Affinity = "none"
		}
		defDur(&s.SLO.P99, false, 500*time.Millisecond)
		if s.SLO.ErrorRate == 0 {
			s.SLO.ErrorRate = 0.01
		}
		if n := s.NoisyNeighbours; n != nil && n.Share == 0 && !sc.set(p+".noisy_neighbours.share") {
			n.Share = 1
		}
		sc.proxyCacheDefaults(s, p)
		if c := s.Cache; c != nil {
			if c.HitCost == 0 {
				c.HitCost = 0.1
			}
			if c.WarmRequests == 0 {
				c.WarmRequests = 1000
			}
		}
		if a := s.Autoscale; a != nil {
			if a.Min == 0 {
				a.Min = s.Replicas
			}
			if a.TargetUtilization == 0 {
				a.TargetUtilization = 0.6
			}
			defDur(&a.SyncPeriod, false, 15*time.Second)
			defDur(&a.PodStart, false, 20*time.Second)
			defDur(&a.MetricLag, sc.set(p+".autoscale.metric_lag"), 30*time.Second)
			if a.Tolerance == nil {
				t := 0.1
				a.Tolerance = &t
			}
			// The autoscaling/v2 defaults (HPAScalingRules docs; pkg/apis/
			// autoscaling/v2/defaults.go): up, no stabilisation, the larger
			// of +4 pods and +100% per 15s; down, a 300s window, -100% per
			// 15s.
			if a.ScaleUp == nil {
				a.ScaleUp = &ScaleRules{}
			}
			if a.ScaleUp.Stabilization == nil {
				z := time.Duration(0)
				a.ScaleUp.Stabilization = &z
			}
			if len(a.ScaleUp.Policies) == 0 {
				a.ScaleUp.Policies = []ScalePolicy{{"pods", 4, 15 * time.Second}, {"percent", 100, 15 * time.Second}}
			}
			if a.ScaleDown == nil {
				a.ScaleDown = &ScaleRules{}
			}
			if a.ScaleDown.Stabilization == nil {
				w := 300 * time.Second
				a.ScaleDown.Stabilization = &w
			}
			if len(a.ScaleDown.Policies) == 0 {
				a.ScaleDown.Policies = []ScalePolicy{{"percent", 100, 15 * time.Second}}
			}
			for _, r := range []*ScaleRules{a.ScaleUp, a.ScaleDown} {
				if r.Select == "" {
					r.Select = "max"
				}
			}
		}
	}

	c := &sc.Clients
	if c.Mode == "" {
		c.Mode = "sessions"
	}
	defDur(&c.Think, sc.set("clients.think"), time.Second)
	if c.ThinkDist == "" {
		c.ThinkDist = "lognormal"
	}
	defDur(&c.AbandonAfter, false, 5*time.Second)
	if c.Mode == "requests" && len(c.Mix) == 0 {
		for _, s := range sc.Services {
			c.Mix = append(c.Mix, MixEntry{Service: s.Name, Weight: 1})
		}
	}
	for i := range c.Mix {
		m := &c.Mix[i]
		if m.Weight == 0 && !sc.set(fmt.Sprintf("clients.mix[%d].weight", i)) {
			m.Weight = 1
		}
	}
	if c.Mode == "sessions" && len(c.Funnel) == 0 {
		c.Funnel = DefaultFunnel()
	}
	for i := range c.Funnel {
		st := &c.Funnel[i]
		defDur(&st.RetryBackoff, false, 100*time.Millisecond)
		for j := range st.Requests {
			if st.Requests[j].P == 0 {
				st.Requests[j].P = 1
			}
		}
	}
	completes := false
	for _, st := range c.Funnel {
		completes = completes || st.Completes
	}
	if !completes && len(c.Funnel) > 0 {
		c.Funnel[len(c.Funnel)-1].Completes = true
	}
	for i := range sc.Services {
		s := &sc.Services[i]
		for j := range s.Classes {
			for k := range s.Classes[j].Calls {
				fillClass(sc, &s.Classes[j].Calls[k])
			}
		}
	}
	for i := range c.Funnel {
		for j := range c.Funnel[i].Requests {
			fillClass(sc, &c.Funnel[i].Requests[j])
		}
	}
	for i := range c.Mix {
		cl := Call{Service: c.Mix[i].Service, Class: c.Mix[i].Class}
		fillClass(sc, &cl)
		c.Mix[i].Class = cl.Class
	}

	px := &sc.Proxies
	if px.Count == 0 {
		px.Count = 1
	}
	defDur(&px.Timeout, sc.set("proxies.timeout"), 30*time.Second)
	// The proxy configuration's defaults (internal/config defaults.go).
	r := &px.Retries
	if r.Attempts == nil {
		n := 2
		r.Attempts = &n
	}
	if len(r.On) == 0 && !sc.set("proxies.retries.on") {
		r.On = []string{"connect_failure", "reset", "gateway_error"}
	}
	defDur(&r.BackoffBase, sc.set("proxies.retries.backoff_base"), 25*time.Millisecond)
	defDur(&r.BackoffMax, sc.set("proxies.retries.backoff_max"), 250*time.Millisecond)
	if r.BudgetPercent == nil {
		f := 20.0
		r.BudgetPercent = &f
	}
	if r.MinRetryConcurrency == nil {
		n := 3
		r.MinRetryConcurrency = &n
	}
	h := &px.Health
	o := &h.Outlier
	if o.Consecutive5xx == nil {
		n := 5
		o.Consecutive5xx = &n
	}
	if o.ConsecutiveGatewayFailure == nil {
		n := 3
		o.ConsecutiveGatewayFailure = &n
	}
	defDur(&o.BaseEjectionTime, false, 30*time.Second)
	defDur(&o.MaxEjectionTime, false, 300*time.Second)
	if o.MaxEjectionPercent == nil {
		f := 50.0
		o.MaxEjectionPercent = &f
	}
	if h.PanicThreshold == nil {
		f := 50.0
		h.PanicThreshold = &f
	}
	if ss := h.SlowStart; ss != nil {
		if ss.Aggression == 0 {
			ss.Aggression = 1
		}
		if ss.MinWeightPercent == 0 && !sc.set("proxies.health.slow_start.min_weight_percent") {
			ss.MinWeightPercent = 10
		}
	}
	if a := h.Active; a != nil {
		defDur(&a.Interval, false, 5*time.Second)
		if a.HealthyThreshold == 0 {
			a.HealthyThreshold = 2
		}
		if a.UnhealthyThreshold == 0 {
			a.UnhealthyThreshold = 3
		}
	}
	defDur(&px.Tick, false, 200*time.Millisecond)
	defDur(&px.ProbeTick, false, 5*time.Millisecond)
	defDur(&sc.Cluster.NodeProvisioning, false, 3*time.Minute)
	sc.calendarDefaults()
}

// fillClass defaults a call's class to its service's first class.
func fillClass(sc *Scenario, c *Call) {
	if c.Class != "" {
		return
	}
	for _, s := range sc.Services {
		if s.Name == c.Service && len(s.Classes) > 0 {
			c.Class = s.Classes[0].Name
		}
	}
}

// DefaultFunnel is the shop funnel of `lbsys load --mode sessions`.
func DefaultFunnel() []Step {
	return []Step{
		{Name: "browse", Reach: 1, Requests: []Call{{Service: "catalog", Class: "list", P: 1}, {Service: "catalog", Class: "search", P: 0.25}}},
		{Name: "product", Reach: 0.6, Requests: []Call{{Service: "catalog", Class: "product", P: 1}, {Service: "inventory", Class: "stock", P: 1}}},
		{Name: "cart", Reach: 0.3, Requests: []Call{{Service: "cart", Class: "get", P: 1}, {Service: "cart", Class: "add", P: 1}}},
		{Name: "checkout", Reach: 0.1, Retries: 2, Requests: []Call{{Service: "checkout", Class: "checkout", P: 1}}},
	}
}
