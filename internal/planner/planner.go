// Package planner turns a blessed load forecast and what the store observed
// of a service (per-endpoint throughput and latency from the proxy's
// telemetry) into the service's part of a directive: admission bounds from
// Little's law, a replica recommendation, endpoint weights when the data
// supports them, and why (model, forecast, drivers, expected effect).
//
// It is pure decision code (DESIGN.md principle 2): no I/O, no clock, no
// randomness. Every number it writes can be recomputed from its inputs and
// the Options below, and the Plan keeps the intermediate values so that a
// person (or a test) can follow the arithmetic.
package planner

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/scaler"
)

// Defaults of Options. Each says why it has its value.
const (
	// DefaultTargetUtilisation is the share of an endpoint's demonstrated
	// throughput the plan asks of each replica at the upper-band peak.
	// Demonstrated throughput is a lower bound of capacity (a replica
	// never pushed harder shows only the load it got), so 0.8 is not about
	// the replica melting: it leaves the 20% that absorbs one replica in
	// five failing during the peak (N/(N-1) ≤ 1.25 for N ≥ 5).
	DefaultTargetUtilisation = 0.8
	// DefaultSheddableShare is the proxy's default admission
	// sheddable_share (docs/config.md): sheddable requests are refused once
	// in-flight reaches 70% of the limit. A limit that admits the
	// forecast concurrency of every priority class must therefore be the
	// concurrency divided by 0.7 — the seed's headroom.
	DefaultSheddableShare = 0.7
	// DefaultMinLimitFloor is the proxy's default admission min_limit. A
	// planned floor below it would loosen the configured bound rather
	// than protect a peak, so smaller floors are left out.
	DefaultMinLimitFloor = 10
	// DefaultThroughputQuantile picks an endpoint's demonstrated
	// throughput among its per-minute rates: the 95th percentile is the
	// rate it sustained in its busiest 5% of minutes (over a day, 72
	// minutes), not a single one-minute spike.
	DefaultThroughputQuantile = 0.95
	// DefaultMinEndpointMinutes is the fewest minutes with traffic an
	// endpoint needs before its throughput counts as evidence: a 95th
	// percentile of fewer than 30 values is within one or two values of
	// the maximum, i.e. one busy minute.
	DefaultMinEndpointMinutes = 30
	// DefaultActiveWithin: the proxy writes a telemetry record for every
	// configured endpoint every second, idle or not. An endpoint silent for
	// 5 minutes while others of its service report has left the pool.
	DefaultActiveWithin = 5 * time.Minute
	// DefaultMinWeight bounds a planned weight from below, relative to
	// the mean of 1: the planner shifts load between endpoints, it never
	// drains one (health checks and outlier ejection do that, on evidence
	// of failure rather than of low throughput).
	DefaultMinWeight = 0.1
	// DefaultSeedHysteresis: the proxy re-seeds its limiter whenever the
	// seed changes, discarding what the limiter learned. A new seed
	// within 20% of the current one — inside the forecast's own error at
	// typical MASE — keeps the current seed.
	DefaultSeedHysteresis = 0.2
	// DefaultMaxWhyPoints bounds the forecast points a directive carries
	// per service: the directive is streamed to every proxy and should
	// stay a few kilobytes; the full path is in the store's Forecast
	// artifact.
	DefaultMaxWhyPoints = 120
	// DefaultTopFeatures is how many drivers why.features lists.
	DefaultTopFeatures = 5
)

// Options are the planner's knobs; a zero field takes its default.
type Options struct {
	TargetUtilisation  float64       `json:"target_utilisation"`
	Headroom           float64       `json:"headroom"` // default 1/DefaultSheddableShare
	MinLimitFloor      int           `json:"min_limit_floor"`
	ThroughputQuantile float64       `json:"throughput_quantile"`
	MinEndpointMinutes int           `json:"min_endpoint_minutes"`
	ActiveWithin       time.Duration `json:"active_within"`
	MinWeight          float64       `json:"min_weight"`
	SeedHysteresis     float64       `json:"seed_hysteresis"` // < 0: none
	MaxWhyPoints       int           `json:"max_why_points"`
	TopFeatures        int           `json:"top_features"`
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.TargetUtilisation <= 0 || o.TargetUtilisation > 1 {
		o.TargetUtilisation = DefaultTargetUtilisation
	}
	if o.Headroom < 1 {
		o.Headroom = 1 / DefaultSheddableShare
	}
	if o.MinLimitFloor <= 0 {
		o.MinLimitFloor = DefaultMinLimitFloor
	}
	if o.ThroughputQuantile <= 0 || o.ThroughputQuantile > 1 {
		o.ThroughputQuantile = DefaultThroughputQuantile
	}
	if o.MinEndpointMinutes <= 0 {
		o.MinEndpointMinutes = DefaultMinEndpointMinutes
	}
	if o.ActiveWithin <= 0 {
		o.ActiveWithin = DefaultActiveWithin
	}
	if o.MinWeight <= 0 {
		o.MinWeight = DefaultMinWeight
	}
	if o.SeedHysteresis == 0 {
		o.SeedHysteresis = DefaultSeedHysteresis
	}
	if o.MaxWhyPoints <= 0 {
		o.MaxWhyPoints = DefaultMaxWhyPoints
	}
	if o.TopFeatures <= 0 {
		o.TopFeatures = DefaultTopFeatures
	}
	return o
}

// Minute is one minute of observed telemetry (the store's 1-minute
// rollup). NaN marks no data: the store never stores missing as zero.
type Minute struct {
	T time.Time
	// RPS is the mean request rate over the minute.
	RPS float64
	// P50ms is the mean of the minute's per-second median latencies.
	P50ms float64
}

// Endpoint is one endpoint's observed minutes, oldest first.
type Endpoint struct {
	// Address is the endpoint as written in the proxy configuration
	// (host:port), the key of directive weights.
	Address string
	Minutes []Minute
}

// Observed is what the store holds of a service's traffic over the
// observation window.
type Observed struct {
	From, To time.Time
	// Service is the service-level latency (RPS may be NaN throughout
	// when the service-level load is not telemetry); used only when no
	// endpoint has latency.
	Service   []Minute
	Endpoints []Endpoint
}

// Input is everything the planner knows about one service.
type Input struct {
	Service       string
	Forecast      forecast.Forecast
	HorizonLabels []string
	// RPSPerUnit turns the forecast's values into requests per second
	// (1 when the series is a per-second rate; 1/300 for counts per
	// 5-minute sample), and Unit says how it was decided.
	RPSPerUnit float64
	Unit       string
	Observed   Observed
	// Current is the service's section of the coordinator's stable
	// directive (nil: none), committed at CurrentCommittedAt, version
	// CurrentVersion.
	Current            *directive.Service
	CurrentCommittedAt time.Time
	CurrentVersion     uint64
	// Proxies is the number of proxies sharing the service's load (each
	// runs its own limiter, so admission is planned for a proxy's share).
	// 0 counts as 1.
	Proxies int
	// Scale is the predictive scaler's decision for the service
	// (internal/scaler): when set it is the section's scale
	// recommendation, a floor with its reason and lapse time. When nil the
	// planner falls back to the replicas the demonstrated throughput asks
	// for.
	Scale *scaler.Decision
	// EndpointCapacity is each endpoint's learned capacity (its rate at
	// full utilisation, from load reports); when given, weights follow it
	// instead of the demonstrated throughput.
	EndpointCapacity map[string]float64
	// Cache is what the planner knows of the service's response cache
	// (see cache.go); nil: the proxies do not cache the service and the
	// section's cache part is kept as it is.
	Cache *CacheInput
}

// Model identifies the model behind a forecast.
type Model struct {
	Name    string `json:"name"` // e.g. "ensemble"
	RunID   string `json:"run"`
	ModelID int64  `json:"model_artifact"`
}

// String is what why.model says: "ensemble@<run>/model-<artifact id>".
func (m Model) String() string {
	name := m.Name
	if name == "" {
		name = forecast.Ensemble
	}
	return fmt.Sprintf("%s@%s/model-%d", name, m.RunID, m.ModelID)
}

// Plan is the planner's answer for one service, with the arithmetic.
type Plan struct {
	Service string `json:"service"`
	// Section is the service's new directive section: the current one
	// with what the planner could plan replaced. Nil when nothing could be
	// planned (see Notes).
	Section *directive.Service `json:"section,omitempty"`

	PeakRPS      float64   `json:"peak_rps"`
	PeakAt       time.Time `json:"peak_at"`
	UpperPeakRPS float64   `json:"upper_peak_rps"`
	UpperPeakAt  time.Time `json:"upper_peak_at"`
	// P50ms is the request-weighted observed median latency (0: none).
	P50ms float64 `json:"p50_ms,omitempty"`
	// Concurrency is Little's law at the upper-band peak: UpperPeakRPS ×
	// P50ms / 1000.
	Concurrency float64 `json:"concurrency,omitempty"`
	// Capacity is each current endpoint's demonstrated throughput (rps)
	// where it has enough minutes with traffic.
	Capacity map[string]float64 `json:"capacity,omitempty"`
	// PerReplicaRPS is the mean of Capacity.
	PerReplicaRPS float64 `json:"per_replica_rps,omitempty"`
	// Current is the number of endpoints reporting at the end of the
	// window; Replicas the recommendation (0: none).
	Current  int `json:"current"`
	Replicas int `json:"replicas,omitempty"`
	// Planned lists what the planner set: admission, scale, weights,
	// cache.
	Planned []string `json:"planned,omitempty"`
	// Cache is the cache part the planner decided when Input.Cache was
	// given (nil: nothing to warm now; the section's cache is then
	// cleared), whether or not a Section was planned.
	Cache *directive.Cache `json:"cache,omitempty"`
	Notes []string         `json:"notes,omitempty"`
}

// ceil rounds up, forgiving float error just above an integer (7.0000001
// from 0.1 × 70 is 7, not 8).
func ceil(x float64) int {
	return int(math.Ceil(x - 1e-9))
}

// round2 rounds to two decimals: finer weight differences are below what
// minutes of telemetry can tell apart and would only make needless diffs.
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// round3 keeps three significant digits of a rate for display and why.
func round3(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 3, 64), 64)
	return v
}

// pathPoint is one step of the merged forecast path, in rps.
type pathPoint struct {
	at        time.Time
	rps, high float64
}

// mergePath joins the horizons' paths into one: at each time the point
// and upper band of the shortest horizon that covers it (a shorter
// horizon was trained and blessed for those leads), converted to rps. A
// negative forecast means no load; an upper band below the point forecast
// (the quantile model crossing the point model) is raised to it.
func mergePath(f forecast.Forecast, k float64) ([]pathPoint, []string) {
	var notes []string
	order := make([]int, len(f.Horizons))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return f.Horizons[order[a]].Steps < f.Horizons[order[b]].Steps })
	byTime := map[int64]pathPoint{}
	bad := 0
	for _, hi := range order {
		h := f.Horizons[hi]
		for i, ts := range h.Times {
			if i >= len(h.Point) || i >= len(h.Upper) {
				break
			}
			t, err := time.Parse(time.RFC3339, ts)
			p, u := h.Point[i], h.Upper[i]
			if err != nil || math.IsNaN(p) || math.IsInf(p, 0) {
				bad++
				continue
			}
			if _, seen := byTime[t.UnixMilli()]; seen {
				continue
			}
			if math.IsNaN(u) || math.IsInf(u, 0) {
				u = p
			}
			p, u = math.Max(p, 0)*k, math.Max(u, 0)*k
			byTime[t.UnixMilli()] = pathPoint{at: t.UTC(), rps: p, high: math.Max(u, p)}
		}
	}
	if bad > 0 {
		notes = append(notes, fmt.Sprintf("%d forecast points without a finite value or a readable time were skipped", bad))
	}
	out := make([]pathPoint, 0, len(byTime))
	for _, p := range byTime {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out, notes
}

// quantile is the q-quantile of xs by linear interpolation between order
// statistics (Hyndman & Fan type 7, numpy's default); xs is sorted in
// place.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	sort.Float64s(xs)
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	return xs[lo] + (pos-float64(lo))*(xs[hi]-xs[lo])
}

// hostPort reports whether s looks like the host:port a directive weight
// needs (the same textual check api/directive makes).
func hostPort(s string) bool {
	i := strings.LastIndex(s, ":")
	if i <= 0 || strings.ContainsAny(s, " \t\r\n/") {
		return false
	}
	n, err := strconv.Atoi(s[i+1:])
	return err == nil && n >= 1 && n <= 65535
}

// endpointStats is what one endpoint's minutes say.
type endpointStats struct {
	address     string
	last        time.Time // newest minute with a rate
	busyMinutes int       // minutes with traffic
	demonstrate float64   // quantile of per-minute rates
}

func statsOf(e Endpoint, q float64) endpointStats {
	s := endpointStats{address: e.Address}
	var rates []float64
	for _, m := range e.Minutes {
		if math.IsNaN(m.RPS) || math.IsInf(m.RPS, 0) || m.RPS < 0 {
			continue
		}
		rates = append(rates, m.RPS)
		if m.T.After(s.last) {
			s.last = m.T
		}
		if m.RPS > 0 {
			s.busyMinutes++
		}
	}
	s.demonstrate = quantile(rates, q)
	return s
}

// latency is the request-weighted mean of the endpoints' per-minute
// medians (each minute weighs its request rate), or, when no endpoint has
// latency, the service's own minutes (weighted by their rate where known).
func latency(o Observed) float64 {
	var sum, w float64
	for _, e := range o.Endpoints {
		for _, m := range e.Minutes {
			if m.P50ms > 0 && !math.IsInf(m.P50ms, 0) && m.RPS > 0 && !math.IsInf(m.RPS, 0) {
				sum += m.P50ms * m.RPS
				w += m.RPS
			}
		}
	}
	if w > 0 {
		return sum / w
	}
	for _, m := range o.Service {
		if !(m.P50ms > 0) || math.IsInf(m.P50ms, 0) {
			continue
		}
		wt := 1.0
		if m.RPS > 0 && !math.IsInf(m.RPS, 0) {
			wt = m.RPS
		}
		sum += m.P50ms * wt
		w += wt
	}
	if w > 0 {
		return sum / w
	}
	return 0
}

// PlanService plans one service.
func PlanService(in Input, m Model, o Options) Plan {
	o = o.WithDefaults()
	p := Plan{Service: in.Service}
	note := func(format string, args ...any) { p.Notes = append(p.Notes, fmt.Sprintf(format, args...)) }
	k := in.RPSPerUnit
	if !(k > 0) || math.IsInf(k, 0) {
		k = 1
		note("no conversion of the forecast to requests per second was given; its values are read as rps")
	}
	path, pn := mergePath(in.Forecast, k)
	p.Notes = append(p.Notes, pn...)
	if len(path) == 0 {
		note("nothing to plan: the forecast has no usable points")
		return p
	}
	for _, pt := range path {
		if pt.rps > p.PeakRPS || p.PeakAt.IsZero() {
			p.PeakRPS, p.PeakAt = pt.rps, pt.at
		}
		if pt.high > p.UpperPeakRPS || p.UpperPeakAt.IsZero() {
			p.UpperPeakRPS, p.UpperPeakAt = pt.high, pt.at
		}
	}

	// What the telemetry says: latency, the current endpoints and what
	// each has demonstrated.
	p.P50ms = latency(in.Observed)
	var stats []endpointStats
	var newest time.Time
	for _, e := range in.Observed.Endpoints {
		s := statsOf(e, o.ThroughputQuantile)
		if s.last.IsZero() {
			continue
		}
		stats = append(stats, s)
		if s.last.After(newest) {
			newest = s.last
		}
	}
	var current []endpointStats
	for _, s := range stats {
		if !s.last.Before(newest.Add(-o.ActiveWithin)) {
			current = append(current, s)
		} else {
			note("endpoint %s last reported at %s, more than %s before the others: not counted as running", s.address,
				s.last.Format(time.RFC3339), o.ActiveWithin)
		}
	}
	p.Current = len(current)
	var thin []string
	for _, s := range current {
		if s.busyMinutes >= o.MinEndpointMinutes && s.demonstrate > 0 {
			if p.Capacity == nil {
				p.Capacity = map[string]float64{}
			}
			p.Capacity[s.address] = s.demonstrate
			p.PerReplicaRPS += s.demonstrate
		} else {
			thin = append(thin, fmt.Sprintf("%s (%d)", s.address, s.busyMinutes))
		}
	}
	if len(p.Capacity) > 0 {
		p.PerReplicaRPS /= float64(len(p.Capacity))
	}
	if len(thin) > 0 {
		note("too few minutes with traffic (< %d) to judge the throughput of %s", o.MinEndpointMinutes, strings.Join(thin, ", "))
	}

	sec := &directive.Service{}
	if in.Current != nil {
		sec = cloneSection(in.Current)
	}
	var effect []string

	// Admission: Little's law at the upper-band peak.
	switch {
	case p.P50ms <= 0:
		note("admission not planned: no observed latency (p50_ms) for the service")
	case p.UpperPeakRPS <= 0:
		note("admission not planned: the forecast's upper band is zero")
	default:
		lat := p.P50ms / 1000
		nproxies := max(1, in.Proxies)
		p.Concurrency = p.UpperPeakRPS / float64(nproxies) * lat
		seed := max(1, ceil(p.Concurrency*o.Headroom))
		if seed <= o.MinLimitFloor {
			// The limiter never goes below its floor, and a seed only
			// raises the limit: a seed this small would change nothing
			// but the directive's version.
			note("admission not planned: the forecast concurrency needs a limit of %d, within the limiter's floor %d", seed, o.MinLimitFloor)
			break
		}
		floor := ceil(p.PeakRPS / float64(nproxies) * lat)
		share := ""
		if nproxies > 1 {
			share = fmt.Sprintf(" / %d proxies", nproxies)
		}
		why := fmt.Sprintf("admission seed %d = ⌈%.4g rps%s × %.4g s p50 × %.3g headroom⌉", seed, round3(p.UpperPeakRPS), share, round3(lat), o.Headroom)
		if floor < o.MinLimitFloor {
			floor = 0 // the configured floor stays; see DefaultMinLimitFloor
		} else {
			why += fmt.Sprintf(", min %d = ⌈%.4g rps point peak%s × p50⌉", floor, round3(p.PeakRPS), share)
		}
		var cur *directive.Admission
		if in.Current != nil {
			cur = in.Current.Admission
		}
		if o.SeedHysteresis > 0 && cur != nil && cur.Seed > 0 && math.Abs(float64(seed-cur.Seed)) <= o.SeedHysteresis*float64(cur.Seed) {
			why += fmt.Sprintf("; kept the current seed %d (within %.0f%%: re-seeding discards what the limiter learned)", cur.Seed, o.SeedHysteresis*100)
			seed = cur.Seed
		}
		seed = max(seed, floor)
		at := p.UpperPeakAt
		adm := &directive.Admission{Seed: seed, Min: floor}
		if cur != nil && cur.Cap > 0 {
			adm.Cap = cur.Cap
			if adm.Seed > cur.Cap || adm.Min > cur.Cap {
				why += fmt.Sprintf("; clamped to the cap %d set by version %d", cur.Cap, in.CurrentVersion)
				adm.Seed, adm.Min = min(adm.Seed, cur.Cap), min(adm.Min, cur.Cap)
				note("the forecast concurrency needs a limit above the directive's cap %d; raising a cap is left to a person", cur.Cap)
			}
		}
		adm.Why = &directive.Reason{Text: why, Driver: "forecast", LoadRPS: round3(p.UpperPeakRPS), At: &at,
			ExpectedEffect: "the limit starts where the forecast concurrency needs it instead of learning it during the peak"}
		sec.Admission = adm
		p.Planned = append(p.Planned, "admission")
		effect = append(effect, why)
	}

	// Scale: the predictive scaler's floor when one was decided (see
	// internal/scaler), else replicas for the upper-band peak at the
	// target utilisation of the per-replica throughput the endpoints
	// demonstrated.
	switch d := in.Scale; {
	case d != nil && d.Floor > 0:
		p.Replicas = d.Floor
		sc := &directive.Scale{Replicas: d.Floor, Current: p.Current}
		if !d.ReadyBy.IsZero() {
			by := d.ReadyBy.UTC()
			sc.By = &by
		}
		if !d.Until.IsZero() {
			u := d.Until.UTC()
			sc.Until = &u
		}
		r := &directive.Reason{Text: clip(d.Why), Driver: d.Driver, LoadRPS: round3(d.LoadRPS), PerReplicaRPS: round3(d.PerReplicaRPS),
			ExpectedEffect: "the autoscaler holds at least this many replicas, so the capacity is ready before the load arrives"}
		if !d.NeededAt.IsZero() {
			na := d.NeededAt.UTC()
			r.At = &na
		}
		if d.Event != nil {
			r.Event = d.Event.Category + " " + d.Event.Start.UTC().Format(time.RFC3339)
		}
		sc.Why = r
		sec.Scale = sc
		p.Planned = append(p.Planned, "scale")
		effect = append(effect, d.Why)
	case d != nil:
		sec.Scale = nil
		note("scale: %s", d.Why)
	case p.Current == 0:
		note("scale not planned: no endpoint of the service reports telemetry")
	case p.PerReplicaRPS <= 0:
		note("scale not planned: no endpoint has enough traffic to show its throughput")
	default:
		per := o.TargetUtilisation * p.PerReplicaRPS
		p.Replicas = max(1, ceil(p.UpperPeakRPS/per)) // never zero: the proxy needs an endpoint to answer anything
		sc := &directive.Scale{Replicas: p.Replicas, Current: p.Current}
		why := fmt.Sprintf("%d replicas (%d now) = ⌈%.4g rps / (%.2g × %.4g rps demonstrated per replica)⌉", p.Replicas, p.Current,
			round3(p.UpperPeakRPS), o.TargetUtilisation, round3(p.PerReplicaRPS))
		if p.Replicas > p.Current {
			// Ready by the first step whose upper band the current
			// replicas cannot carry at the target utilisation.
			limit := float64(p.Current) * per
			for _, pt := range path {
				if pt.high > limit {
					by := pt.at
					sc.By = &by
					why += " by " + by.Format(time.RFC3339)
					break
				}
			}
		}
		sc.Why = &directive.Reason{Text: clip(why), Driver: "telemetry", LoadRPS: round3(p.UpperPeakRPS), PerReplicaRPS: round3(p.PerReplicaRPS)}
		sec.Scale = sc
		p.Planned = append(p.Planned, "scale")
		effect = append(effect, why)
	}

	// Weights: proportional to demonstrated throughput, only when every
	// endpoint in rotation has shown its own.
	capacity, basis := p.Capacity, fmt.Sprintf("demonstrated throughput (p%.0f of per-minute rates)", o.ThroughputQuantile*100)
	if len(in.EndpointCapacity) > 0 {
		capacity, basis = in.EndpointCapacity, "learned capacity (rate at full utilisation, from load reports)"
	}
	if w, why := weights(in.Current, current, capacity, basis, o); w != nil {
		if sec.Weights == nil {
			sec.Weights = map[string]float64{}
		}
		for ep, v := range w {
			sec.Weights[ep] = v
		}
		sec.WeightsWhy = &directive.Reason{Text: clip(why), Driver: "capacity",
			ExpectedEffect: "each endpoint gets load in proportion to what it can serve"}
		p.Planned = append(p.Planned, "weights")
		effect = append(effect, why)
	} else if why != "" {
		note("weights not planned: %s", why)
	}

	// Cache: warm lists before announced events and forecast peaks, TTL
	// hints where the origin leaves freshness to the cache.
	if in.Cache != nil {
		var cur *directive.Cache
		if in.Current != nil {
			cur = in.Current.Cache
		}
		cp := planCache(in.Cache, path, cur)
		p.Notes = append(p.Notes, cp.notes...)
		p.Cache, sec.Cache = cp.section, cp.section
		switch {
		case cp.section != nil:
			p.Planned = append(p.Planned, "cache")
			effect = append(effect, cp.section.Why.Text)
		case cur != nil:
			// Dropping a list whose event is over is a plan too: the
			// proxies clear the hints it carried.
			p.Planned = append(p.Planned, "cache")
			effect = append(effect, fmt.Sprintf("cache warm list of version %d dropped: no announced event or forecast peak ahead to warm for", in.CurrentVersion))
		}
	}

	if len(p.Planned) == 0 {
		note("nothing to plan for %s: no telemetry the plan could rest on (ingest the proxy's telemetry: lbsys ingest telemetry)", in.Service)
		return p
	}
	for _, what := range []string{"admission", "scale", "weights"} {
		if !contains(p.Planned, what) && in.Current != nil && hasPart(in.Current, what) {
			effect = append(effect, fmt.Sprintf("%s kept from version %d", what, in.CurrentVersion))
		}
	}
	// Ramps without a start begin when a proxy applies a changed section;
	// pinning them to when their version was committed keeps a finished
	// ramp finished instead of ramping the endpoint down again.
	if !in.CurrentCommittedAt.IsZero() {
		for i := range sec.SlowStart {
			if sec.SlowStart[i].Start == nil {
				t := in.CurrentCommittedAt.UTC()
				sec.SlowStart[i].Start = &t
			}
		}
	}

	sec.Why = evidence(in, m, p, path, o, effect)
	p.Section = sec
	return p
}

// clip keeps a reason within the schema's 4096 bytes.
func clip(s string) string {
	if len(s) > 4000 {
		return s[:3990] + " …"
	}
	return s
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func hasPart(s *directive.Service, what string) bool {
	switch what {
	case "admission":
		return s.Admission != nil
	case "scale":
		return s.Scale != nil
	case "weights":
		return len(s.Weights) > 0
	}
	return false
}

func cloneSection(s *directive.Service) *directive.Service {
	d := (&directive.Directive{Schema: directive.SchemaVersion, Services: map[string]*directive.Service{"x": s}}).Clone()
	return d.Services["x"]
}

// Directive returns the whole directive to propose: the current one (nil:
// none) with the section of every service the plans could plan replaced,
// the others unchanged (a directive is the whole desired state, and the
// planner only speaks for the services it forecast). It is validated.
func Directive(current *directive.Directive, plans []Plan) (*directive.Directive, error) {
	var out *directive.Directive
	if current != nil {
		out = current.Content()
	} else {
		out = &directive.Directive{}
	}
	out.Schema = directive.SchemaVersion
	if out.Services == nil {
		out.Services = map[string]*directive.Service{}
	}
	for _, p := range plans {
		if p.Section != nil {
			out.Services[p.Service] = p.Section
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("planned directive: %w", err)
	}
	return out, nil
}
