package sim

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/planner"
)

// ControlSetup is what a controller of this run may know: the services
// and their autoscalers' settings, the history before the start (drawn
// with the run's seed), the announced calendar (categories and times, not
// the effects), and — for the oracle only — the true future load.
func (s *Sim) ControlSetup() control.Setup {
	sc := s.sc
	st := control.Setup{Start: sc.Start, Step: time.Minute, Proxies: sc.Proxies.Count, History: sc.HistorySeries(s.seed),
		Future: s.Future, StartupPrior: sc.StatedStartup()}
	st.Forecast.Seed = s.seed
	st.Forecast.Holidays = "none"
	for i := range sc.Services {
		sv := &sc.Services[i]
		ss := control.ServiceSetup{Name: sv.Name, Admission: sc.Proxies.Admission != nil, Weighted: s.policy == "weighted",
			TargetUtilization: 0.6, Tolerance: 0.1}
		if a := sv.Autoscale; a != nil {
			ss.Min, ss.Max, ss.TargetUtilization, ss.Tolerance = a.Min, a.Max, a.TargetUtilization, *a.Tolerance
		} else {
			ss.Min, ss.Max = sv.Replicas, sv.Replicas
		}
		if c := sv.ProxyCache; c != nil {
			// What an operator configures the controller with: the cached
			// route, the proxies' warm rate and the origin's freshness.
			ss.Cache = &control.CacheSetup{Prefixes: []string{c.RouteDir()}, WarmRate: c.Warm.Rate, Freshness: c.TTL, Heuristic: c.Heuristic,
				Options: planner.CacheOptions{MaxWarmPaths: c.Warm.MaxPaths}}
		}
		st.Services = append(st.Services, ss)
	}
	for _, e := range s.events {
		st.Events = append(st.Events, forecast.Event{Start: e.Start, End: e.End, Category: e.Category})
		if len(e.Warm) > 0 {
			st.Featured = append(st.Featured, control.Featured{Name: e.Name, Category: e.Category, Start: e.Start, End: e.End,
				Services: e.Services, Paths: e.Warm})
		}
	}
	return st
}

// StatedStartup is the startup time the platform states for a new
// replica, what an operator configures the controller with: the longest
// pod start of the autoscaled services, plus node provisioning when the
// cluster has to add nodes. Controllers lengthen it with what they
// observe.
func (sc *Scenario) StatedStartup() time.Duration {
	var d time.Duration
	for _, s := range sc.Services {
		if a := s.Autoscale; a != nil {
			d = max(d, a.PodStart)
		}
	}
	if sc.Cluster.PodsPerNode > 0 {
		d += sc.Cluster.NodeProvisioning
	}
	return max(d, time.Minute)
}

// measuredCapacity is a warm replica's rate at full utilisation as this
// run showed it: the median, over the windows whose replicas ran between
// 20% and 90% busy, of the answers per second over the summed
// utilisation (the classes, cache warmth and speeds as they actually
// were). 0 when no window qualifies.
func (s *Sim) measuredCapacity(svc *service) float64 {
	xs := s.met.svcs[svc.idx].capSamples
	if len(xs) == 0 {
		return 0
	}
	return quantileSorted(xs, 0.5)
}

// quantileSorted is the q-quantile of xs (copied and sorted).
func quantileSorted(xs []float64, q float64) float64 {
	v := append([]float64(nil), xs...)
	sort.Float64s(v)
	pos := q * float64(len(v)-1)
	i := int(pos)
	if i >= len(v)-1 {
		return v[len(v)-1]
	}
	return v[i] + (pos-float64(i))*(v[i+1]-v[i])
}

// CPUCapacity is a warm replica's rate at full utilisation of its own
// work (requests per second), from the scenario's service time, the
// classes' costs weighted by how often each is called, the warm cache's
// hit ratio and the replicas' mean speed: the capacity the autoscaler's
// utilisation measures.
func (sc *Scenario) CPUCapacity(service string) float64 {
	var svc *Service
	for i := range sc.Services {
		if sc.Services[i].Name == service {
			svc = &sc.Services[i]
		}
	}
	if svc == nil {
		return 0
	}
	freq := sc.classShares()[service]
	cost, w := 0.0, 0.0
	for _, c := range svc.Classes {
		f := freq[c.Name]
		cost += f * c.Cost
		w += f
	}
	if w > 0 {
		cost /= w
	} else {
		cost = svc.Classes[0].Cost
	}
	if c := svc.Cache; c != nil {
		cost *= c.HitRatio*c.HitCost + (1 - c.HitRatio)
	}
	speed := 1.0
	switch {
	case svc.SpeedRange != nil:
		speed = (svc.SpeedRange.Min + svc.SpeedRange.Max) / 2
	case len(svc.Speeds) > 0:
		speed = 0
		for _, v := range svc.Speeds {
			speed += v
		}
		speed /= float64(len(svc.Speeds))
	}
	return float64(svc.Workers) * speed / (svc.ServiceTime.Mean.Seconds() * cost)
}

// classShares is Shares per class: requests per unit of offered load by
// service and class.
func (sc *Scenario) classShares() map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	bySvc := map[string]*Service{}
	for i := range sc.Services {
		bySvc[sc.Services[i].Name] = &sc.Services[i]
	}
	var add func(svc, class string, w float64, depth int)
	add = func(svc, class string, w float64, depth int) {
		if out[svc] == nil {
			out[svc] = map[string]float64{}
		}
		out[svc][class] += w
		s := bySvc[svc]
		if s == nil || depth > 16 {
			return
		}
		for _, c := range s.Classes {
			if c.Name == class {
				for _, call := range c.Calls {
					add(call.Service, call.Class, w*call.P, depth+1)
				}
			}
		}
	}
	if sc.Clients.Mode == "requests" {
		for _, m := range sc.Clients.Mix {
			add(m.Service, m.Class, m.Weight, 0)
		}
		return out
	}
	for _, st := range sc.Clients.Funnel {
		for _, c := range st.Requests {
			add(c.Service, c.Class, st.Reach*c.P, 0)
		}
	}
	return out
}

// EventReadiness is when capacity was ready for one announced event.
type EventReadiness struct {
	Category string    `json:"category"`
	Start    time.Time `json:"start"`
	// X is the factor the world gave the event (hidden from controllers).
	X float64 `json:"x"`
	// LeadS is how long before the start every service had the replicas
	// the event's peak needs (negative: after the start), in seconds;
	// Never is set when some service never had them during the event.
	LeadS float64 `json:"lead_s"`
	Never bool    `json:"never,omitempty"`
	// Services are the per-service figures: replicas needed and when
	// they were there.
	Services []ServiceReadiness `json:"services"`
}

// ServiceReadiness is one service's readiness for an event.
type ServiceReadiness struct {
	Service string `json:"service"`
	// Needed is ⌈peak load at the replicas / (capacity × target
	// utilisation × (1 + tolerance))⌉, capped at the autoscaler's max:
	// the fewest replicas the autoscaling policy would accept at the
	// event's true peak (it does not scale within its tolerance), with
	// the capacity a replica showed in this run. The peak at the replicas
	// is the event's true peak of the service's load times the share the
	// proxies' caches did not answer during the event in this run
	// (OriginShare; 1 for a service without a cache): a replica's
	// capacity is measured in the requests that reach it.
	Needed int `json:"needed"`
	// OriginShare is 1 − cache hits ÷ requests over the event's windows.
	OriginShare float64 `json:"origin_share,omitempty"`
	LeadS       float64 `json:"lead_s"`
	Never       bool    `json:"never,omitempty"`
}

// readiness measures, for every announced event with an effect inside
// the run, when each autoscaled service first had (and kept until the
// start) the replicas the event's peak needs, from the per-window ready
// counts.
func (s *Sim) readiness(minutes []Minute) []EventReadiness {
	var out []EventReadiness
	win := int64(s.sc.Window)
	for _, e := range s.events {
		if e.effect == nil {
			continue
		}
		from, to := int64(e.Start.Sub(s.sc.Start)), int64(e.End.Sub(s.sc.Start))
		if from < 0 || from >= s.end {
			continue
		}
		to = min(to, s.end)
		er := EventReadiness{Category: e.Category, Start: e.Start, X: round(e.X, 3), LeadS: math.Inf(1)}
		for i, svc := range s.services {
			a := svc.spec.Autoscale
			if a == nil {
				continue
			}
			peak := 0.0
			for t := from; t < to; t += int64(time.Second) {
				peak = math.Max(peak, s.rc.at(t)*s.shares[svc.name])
			}
			cap := s.measuredCapacity(svc)
			if !(cap > 0) {
				continue
			}
			// Window k ends at (k+1)·win; Replicas is the ready count then.
			startIdx := int(from / win) // the window containing the start
			share := originShare(minutes, i, startIdx, int((to+win-1)/win))
			need := min(int(math.Ceil(peak*share/(cap*a.TargetUtilization*(1+*a.Tolerance))-1e-9)), a.Max)
			sr := ServiceReadiness{Service: svc.name, Needed: need}
			if share < 1 {
				sr.OriginShare = round(share, 4)
			}
			ok := func(k int) bool { return k >= 0 && k < len(minutes) && minutes[k].Services[i].Replicas >= need }
			switch {
			case ok(startIdx - 1):
				k := startIdx - 1
				for k > 0 && ok(k-1) {
					k--
				}
				// Counts are read at window ends: ready by the end of
				// window k (the one before had too few), or from the
				// run's start when it always had them.
				readyAt := int64(k+1) * win
				if k == 0 {
					readyAt = 0
				}
				sr.LeadS = float64(from-readyAt) / 1e9
			default:
				sr.Never = true
				for k := startIdx; k < len(minutes) && int64(k)*win < to; k++ {
					if ok(k) {
						sr.Never = false
						sr.LeadS = -float64(int64(k+1)*win-from) / 1e9
						break
					}
				}
			}
			er.Services = append(er.Services, sr)
			if sr.Never {
				er.Never = true
			} else {
				er.LeadS = math.Min(er.LeadS, sr.LeadS)
			}
		}
		if er.Never || math.IsInf(er.LeadS, 1) {
			er.LeadS = 0
			er.Never = er.Never || len(er.Services) > 0
		}
		out = append(out, er)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// originShare is the share of service i's requests in windows [from, to)
// that the proxies' caches did not answer: 1 − hits ÷ requests, 1 when the
// service had no request or no cache there.
func originShare(minutes []Minute, i, from, to int) float64 {
	var req, hits int64
	for k := max(from, 0); k < min(to, len(minutes)); k++ {
		req += minutes[k].Services[i].Requests
		hits += minutes[k].Services[i].CacheHits
	}
	if req <= 0 || hits <= 0 {
		return 1
	}
	return max(0, 1-float64(hits)/float64(req))
}

// describeReadiness is "ready 12m before" / "ready 3m after" / "never".
func describeReadiness(e EventReadiness) string {
	switch {
	case e.Never:
		return "never"
	case e.LeadS >= 0:
		return fmt.Sprintf("%s before", time.Duration(e.LeadS*1e9).Round(time.Second))
	default:
		return fmt.Sprintf("%s after", time.Duration(-e.LeadS*1e9).Round(time.Second))
	}
}
