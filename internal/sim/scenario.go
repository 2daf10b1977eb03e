package sim

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/balance"
)

// Scenario is one simulated situation: the shop's services and their
// replicas, the proxies in front, the clients and their load over time, and
// what goes wrong. It is read from YAML (ParseScenario) with strict
// decoding; every field below is documented where it is declared, with its
// default. Durations are written with a unit (30s, 250ms, 2m); calendar
// times as 2026-11-27T09:00:00Z (UTC when no zone is given).
type Scenario struct {
	// Name identifies the scenario in reports. Default: the file name.
	Name string `yaml:"name"`
	// Description is one paragraph for the report.
	Description string `yaml:"description"`
	// Seed is the default seed (the CLI's --seed overrides it). Default 1.
	Seed uint64 `yaml:"seed"`
	// Start is the calendar time of the simulation's first instant; the
	// load curve's daily and weekly cycles and calendar-timed events are
	// relative to it. Default 2026-11-27T00:00:00Z (a Black Friday).
	Start time.Time `yaml:"start"`
	// Duration is how much simulated time to run. Required.
	Duration time.Duration `yaml:"duration"`
	// Window is the length of the metric windows: the "minutes" of the
	// per-minute series, of SLO-violation minutes and incidents. Default
	// 1m; shorter windows suit short runs (the sim-to-real check).
	Window time.Duration `yaml:"window"`
	// Policies are the balancing policies compared when the CLI is not
	// given --policies. Default round_robin, least_request, peak_ewma,
	// prequal.
	Policies []string `yaml:"policies"`
	// Load is the offered load over time.
	Load Load `yaml:"load"`
	// Clients says what the load is made of: independent requests or
	// sessions walking the shop's funnel.
	Clients Clients `yaml:"clients"`
	// Proxies are the lbsys proxy replicas in front of the services.
	Proxies Proxies `yaml:"proxies"`
	// Services are the backend pools. Required.
	Services []Service `yaml:"services"`
	// Cluster is the node pool replicas are scheduled on (for autoscaling).
	Cluster Cluster `yaml:"cluster"`
	// Failures are replica crashes at given times.
	Failures []Failure `yaml:"failures"`
	// ScalePlan raises autoscaled services' minimum replicas at given
	// times: the static form of the scale recommendations a forecast
	// directive will carry (Options.Recommender is the programmatic hook).
	ScalePlan []ScaleStep `yaml:"scale_plan"`

	file  string
	lines map[string]int
	trace *trace // loaded by LoadTrace
}

// Load is the offered load: exactly one of rate, curve, trace or steps,
// optionally multiplied by campaigns and flash sales. The unit is requests
// per second arriving from clients (in sessions mode sessions start at
// this rate divided by a session's expected requests, as `lbsys load` does).
type Load struct {
	// Rate is a constant rate.
	Rate float64 `yaml:"rate"`
	// Curve is a parametric daily and weekly cycle.
	Curve *Curve `yaml:"curve"`
	// Trace replays a demand trace CSV.
	Trace *TraceLoad `yaml:"trace"`
	// Steps ramps the load in steps expressed as multiples of a service's
	// nominal capacity (the Prequal testbed's load ramp).
	Steps *Steps `yaml:"steps"`
	// Campaigns multiply the load in windows (a marketing campaign: slow
	// ramps, moderate factors).
	Campaigns []Window `yaml:"campaigns"`
	// FlashSales multiply the load in windows (fast rise, large factor).
	FlashSales []Window `yaml:"flash_sales"`
	// Resolution is the step of the piecewise-linear rate the arrival
	// process follows. Default 1s.
	Resolution time.Duration `yaml:"resolution"`
}

// Curve is base × (1 + diurnal·cos(2π(h − peak_hour)/24)) × (1 +
// weekly·cos(2π(d − peak_day − ½)/7)), with h the hour of the day and d
// the day of the week in days since Sunday 00:00 (fractional) of the
// simulated calendar time (UTC), peak_day counted the same way: the daily
// cycle peaks at peak_hour, the weekly one at noon of peak_day, which is
// the busiest day of the week.
type Curve struct {
	// Base is the mean rate in requests per second. Required.
	Base float64 `yaml:"base"`
	// Diurnal is the daily amplitude in [0, 1). Default 0.
	Diurnal float64 `yaml:"diurnal"`
	// PeakHour is the hour of the daily peak, 0 to 24. Default 20.
	PeakHour float64 `yaml:"peak_hour"`
	// Weekly is the weekly amplitude in [0, 1). Default 0.
	Weekly float64 `yaml:"weekly"`
	// PeakDay is the day of the weekly peak (monday … sunday). Default
	// sunday.
	PeakDay string `yaml:"peak_day"`
}

// Window multiplies the load by X during a window: the factor rises
// linearly from 1 to X over Rise, holds, and falls back over Fall at the
// window's end (the shape of `lbsys load --flash-sale`).
type Window struct {
	// At is the calendar time the window opens; or give After.
	At time.Time `yaml:"at"`
	// After is the window's opening as an offset from the start.
	After time.Duration `yaml:"after"`
	// For is the window's length, rise and fall included. Default 20m.
	For time.Duration `yaml:"for"`
	// X is the factor at the plateau. Required (> 0).
	X float64 `yaml:"x"`
	// Rise is how long the factor takes to reach X. Default 2m for flash
	// sales, 30m for campaigns.
	Rise time.Duration `yaml:"rise"`
	// Fall is how long it takes to go back to 1 at the end. Default 0 for
	// flash sales (the sale closes), 30m for campaigns.
	Fall time.Duration `yaml:"fall"`
}

// TraceLoad replays a CSV of demand per time step (the format of
// testdata/traces: timestamp,requests).
type TraceLoad struct {
	// File is the CSV path, relative to the scenario file's directory.
	File string `yaml:"file"`
	// TimeCol and ValueCol name the columns. Defaults timestamp, requests.
	TimeCol  string `yaml:"time_col"`
	ValueCol string `yaml:"value_col"`
	// From is the trace time replayed at the simulation's start. Default
	// the first row.
	From time.Time `yaml:"from"`
	// Speed is trace time per simulated time (60: a trace hour in a
	// simulated minute). Default 1.
	Speed float64 `yaml:"speed"`
	// PeakRPS scales the trace so its maximum over the replayed span is
	// this rate. Default 0: a row's count is spread over its step (counts
	// per minute become a per-second rate).
	PeakRPS float64 `yaml:"peak_rps"`
}

// Steps is a staircase of load levels from From to To times the nominal
// capacity of Service (replicas × workers ÷ mean service time, at speed 1).
type Steps struct {
	// Service whose capacity is the unit. Default the first service.
	Service string `yaml:"service"`
	// From and To are the first and last level. Required.
	From float64 `yaml:"from"`
	To   float64 `yaml:"to"`
	// Count is the number of levels. Default 10.
	Count int `yaml:"count"`
	// Each is how long one level lasts. Default duration / count.
	Each time.Duration `yaml:"each"`
}

// Clients is the client population.
type Clients struct {
	// Mode is sessions (arrivals start sessions walking the funnel) or
	// requests (each arrival is one request from Mix). Default sessions.
	Mode string `yaml:"mode"`
	// Mix weighs the requests of requests mode. Default: one entry per
	// service's first class, equal weights.
	Mix []MixEntry `yaml:"mix"`
	// Funnel is the sessions' path. Default the shop funnel of `lbsys
	// load`: browse (catalog list, a search in 25%) → product (catalog
	// product, inventory stock) 60% → cart (cart get, cart add) 30% →
	// checkout 10% (2 retries), checkout calling cart, inventory and
	// payment.
	Funnel []Step `yaml:"funnel"`
	// Think is the mean think time between steps. Default 1s.
	Think time.Duration `yaml:"think"`
	// ThinkDist is lognormal (σ = 1) or exponential. Default lognormal.
	ThinkDist string `yaml:"think_dist"`
	// AbandonAfter: a session that waits longer than this for a response
	// leaves (a drop-off). Default 5s.
	AbandonAfter time.Duration `yaml:"abandon_after"`
}

// MixEntry is one kind of request in requests mode.
type MixEntry struct {
	// Service and Class name the request; Class defaults to the
	// service's first class.
	Service string `yaml:"service"`
	Class   string `yaml:"class"`
	// Weight is the entry's relative share. Default 1.
	Weight float64 `yaml:"weight"`
}

// Step is one funnel step: the requests it sends, in order, and the share
// of all sessions that reach it.
type Step struct {
	// Name labels the step in reports.
	Name string `yaml:"name"`
	// Reach is the fraction of sessions reaching the step; 1 for the
	// first, never growing along the funnel.
	Reach float64 `yaml:"reach"`
	// Requests are sent one after the other.
	Requests []Call `yaml:"requests"`
	// Retries of a failed request of this step (5xx, timeout), with the
	// same idempotency key; then the session drops off. Default 0.
	Retries int `yaml:"retries"`
	// RetryBackoff: the n-th retry waits n × this. Default 100ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// Completes marks the step whose success is a completed checkout.
	// Default: the last step.
	Completes bool `yaml:"completes"`
}

// Call is one request to a service's class.
type Call struct {
	// Service is the called service. Required.
	Service string `yaml:"service"`
	// Class of the request; default the service's first class.
	Class string `yaml:"class"`
	// P is the probability the call is made. Default 1.
	P float64 `yaml:"p"`
}

// Proxies configures the lbsys proxy replicas. Each runs the production
// policy, health and admission code over all services.
type Proxies struct {
	// Count is the number of proxy replicas; clients spread over them at
	// random, so several proxies share the backends without sharing
	// state (herding). Default 1.
	Count int `yaml:"count"`
	// PolicyOptions holds options per policy name, as in the proxy's
	// configuration (e.g. prequal: {probe_rate: 1}).
	PolicyOptions map[string]yaml.Node `yaml:"policy_options"`
	// Timeout is the request deadline (the proxy's timeouts.request).
	// Default 30s. 0 in YAML means none.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is the proxy's retry policy (on connect failure, reset,
	// 502/503/504; idempotent classes only).
	Retries Retries `yaml:"retries"`
	// Admission turns on adaptive concurrency limits per service (absent:
	// off).
	Admission *Admission `yaml:"admission"`
	// Health is outlier ejection, panic threshold, slow start and active
	// checks.
	Health Health `yaml:"health"`
	// Tick is how often health timers run (ejections expire, slow start
	// moves). Default 200ms, the proxy's.
	Tick time.Duration `yaml:"tick"`
	// ProbeTick is how often the prequal probe driver sends the probes
	// queries have earned. Default 5ms, the proxy's.
	ProbeTick time.Duration `yaml:"probe_tick"`
	// NetworkRTT is the round trip between a proxy and a replica (probes
	// and requests). Default 0.
	NetworkRTT time.Duration `yaml:"network_rtt"`
}

// Retries is the proxy's retry policy.
type Retries struct {
	// Attempts is the number of retries after the first try. Default 2.
	Attempts *int `yaml:"attempts"`
	// BackoffBase and BackoffMax bound the full-jitter backoff. Defaults
	// 25ms and 250ms.
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// BudgetPercent caps concurrent retries at this share of active
	// requests, at least MinConcurrency. Defaults 20 and 3.
	BudgetPercent  float64 `yaml:"budget_percent"`
	MinConcurrency int     `yaml:"min_concurrency"`
}

// Admission is the adaptive concurrency limit (Gradient2) per service and
// proxy; zero fields take internal/admission's defaults.
type Admission struct {
	// InitialLimit, MinLimit, MaxLimit bound and seed the concurrency
	// limit; Tolerance, Smoothing and Window tune Gradient2; the shares are
	// the fractions of the limit sheddable and normal requests may fill.
	InitialLimit   int           `yaml:"initial_limit"`
	MinLimit       int           `yaml:"min_limit"`
	MaxLimit       int           `yaml:"max_limit"`
	Tolerance      float64       `yaml:"tolerance"`
	Smoothing      float64       `yaml:"smoothing"`
	Window         time.Duration `yaml:"window"`
	SheddableShare float64       `yaml:"sheddable_share"`
	NormalShare    float64       `yaml:"normal_share"`
}

// Health mirrors the proxy's health configuration.
type Health struct {
	// Outlier is passive outlier ejection (on by default).
	Outlier Outlier `yaml:"outlier"`
	// PanicThreshold in percent. Default 50.
	PanicThreshold *float64 `yaml:"panic_threshold"`
	// SlowStart ramps new and returning replicas (absent: off).
	SlowStart *SlowStart `yaml:"slow_start"`
	// Active checks (absent: off): every Interval each proxy checks each
	// replica; a crashed replica fails, a live one passes.
	Active *Active `yaml:"active"`
}

// Outlier is passive outlier ejection (Envoy's consecutive failure
// detectors).
type Outlier struct {
	// Disabled turns ejection off.
	Disabled                  bool          `yaml:"disabled"`
	Consecutive5xx            *int          `yaml:"consecutive_5xx"`             // default 5
	ConsecutiveGatewayFailure *int          `yaml:"consecutive_gateway_failure"` // default 3
	BaseEjectionTime          time.Duration `yaml:"base_ejection_time"`          // default 30s
	MaxEjectionTime           time.Duration `yaml:"max_ejection_time"`           // default 300s
	MaxEjectionPercent        *float64      `yaml:"max_ejection_percent"`        // default 50
}

// SlowStart is Envoy's slow start.
type SlowStart struct {
	// Window is the ramp's length. Required.
	Window           time.Duration `yaml:"window"`
	Aggression       float64       `yaml:"aggression"`         // default 1
	MinWeightPercent float64       `yaml:"min_weight_percent"` // default 10
}

// Active is active health checking.
type Active struct {
	Interval           time.Duration `yaml:"interval"`            // default 5s
	HealthyThreshold   int           `yaml:"healthy_threshold"`   // default 2
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"` // default 3
}

// Service is one backend pool.
type Service struct {
	// Name is the service's name (catalog, checkout, ...). Required.
	Name string `yaml:"name"`
	// Replicas at the start. Default 1.
	Replicas int `yaml:"replicas"`
	// Workers is the number of requests a replica serves at once. Default 8.
	Workers int `yaml:"workers"`
	// Queue is how many more may wait (FIFO); a full queue answers 503 at
	// once. -1: unbounded. Default 64.
	Queue int `yaml:"queue"`
	// QueueTimeout: a request waiting longer is answered 503. 0 in YAML:
	// no limit. Default 500ms.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	// ServiceTime is a cost-1 request's service time on a warm replica of
	// speed 1. Default log-normal, mean 20ms, cv 0.5 (the shop's).
	ServiceTime Dist `yaml:"service_time"`
	// Classes are the kinds of request the service answers. Default one
	// class "default" of cost 1.
	Classes []Class `yaml:"classes"`
	// Speeds are per-replica speed factors (service time is divided by
	// the speed), cycled over the replicas. Default 1.
	Speeds []float64 `yaml:"speeds"`
	// SpeedRange draws each replica's speed uniformly in [min, max]
	// instead (overrides Speeds).
	SpeedRange *Range `yaml:"speed_range"`
	// NoisyNeighbours periodically slow a share of the replicas.
	NoisyNeighbours *Noise `yaml:"noisy_neighbours"`
	// GC adds stop-the-world pauses.
	GC *GC `yaml:"gc"`
	// ColdStart makes a started or restarted replica slower for a while.
	ColdStart *Cold `yaml:"cold_start"`
	// Cache makes requests cheaper as a replica's cache warms with traffic.
	Cache *Cache `yaml:"cache"`
	// ErrorRate is the share of requests failing with 500 after service.
	ErrorRate float64 `yaml:"error_rate"`
	// Priority is the admission class: critical, normal or sheddable.
	// Default normal.
	Priority string `yaml:"priority"`
	// Timeout overrides the proxies' request deadline for this service.
	Timeout *time.Duration `yaml:"timeout"`
	// Affinity is none or cookie: with cookie, a session keeps going to
	// the replica that first answered it (the cart lives in its memory),
	// as the proxy's signed affinity cookie does. Default none.
	Affinity string `yaml:"affinity"`
	// SLO is the service's objective; a minute breaking it is a
	// violation minute.
	SLO SLO `yaml:"slo"`
	// Autoscale turns on the HPA model (absent: fixed replicas).
	Autoscale *Autoscale `yaml:"autoscale"`
	// PricePerHour is the cost of one replica-hour. Default 0.
	PricePerHour float64 `yaml:"price_per_hour"`
}

// Dist is a service-time distribution.
type Dist struct {
	// Mean service time. Default 20ms.
	Mean time.Duration `yaml:"mean"`
	// CV is the coefficient of variation (log-normal). Default 0.5.
	CV *float64 `yaml:"cv"`
	// Dist is lognormal, exponential or constant. Default lognormal.
	Dist string `yaml:"dist"`
}

// Class is one kind of request a service answers.
type Class struct {
	// Name of the class. Required.
	Name string `yaml:"name"`
	// Cost multiplies the service time. Default 1.
	Cost float64 `yaml:"cost"`
	// Idempotent: the proxy may retry it (GET, or POST with an
	// Idempotency-Key). Default true.
	Idempotent *bool `yaml:"idempotent"`
	// Priority overrides the service's admission priority.
	Priority string `yaml:"priority"`
	// Calls are downstream requests made, one after the other through the
	// proxies, after the class's own work, holding the worker (checkout
	// calling inventory and payment). A failed call fails the request
	// with 503.
	Calls []Call `yaml:"calls"`
}

// Range is a closed interval.
type Range struct {
	// Min and Max are the interval's ends.
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// Noise is a noisy neighbour: during Duration out of every Period the
// affected replicas run at Factor of their speed; each has its own phase.
type Noise struct {
	Share    float64       `yaml:"share"`    // share of replicas affected; default 1
	Period   time.Duration `yaml:"period"`   // required
	Duration time.Duration `yaml:"duration"` // required, < period
	Factor   float64       `yaml:"factor"`   // in (0, 1); required
}

// GC is stop-the-world pauses: Poisson with mean interval Every, each
// freezing every worker of the replica for Pause.
type GC struct {
	// Every is the mean interval between pauses; Pause their length.
	Every time.Duration `yaml:"every"`
	Pause time.Duration `yaml:"pause"`
}

// Cold is the cold-start multiplier: Factor right after start, falling
// linearly to 1 over Over (as `lbsys shop --warmup`).
type Cold struct {
	// Factor multiplies the service time right after start (>= 1).
	Factor float64 `yaml:"factor"`
	// Over is the warm-up's length.
	Over time.Duration `yaml:"over"`
}

// Cache: a hit costs HitCost of the service time; the hit probability is
// HitRatio × (1 − exp(−served/WarmRequests)), so a replica's cache warms
// with the traffic it gets and is empty after a (re)start.
type Cache struct {
	// HitRatio is the hit probability of a warm cache, in [0, 1].
	HitRatio     float64 `yaml:"hit_ratio"`
	HitCost      float64 `yaml:"hit_cost"`      // default 0.1
	WarmRequests float64 `yaml:"warm_requests"` // default 1000
}

// SLO is a service level objective per minute.
type SLO struct {
	// P99 is the latency objective. Default 500ms.
	P99 time.Duration `yaml:"p99"`
	// ErrorRate is the largest acceptable share of failed requests
	// (errors, sheds and timeouts). Default 0.01.
	ErrorRate float64 `yaml:"error_rate"`
}

// Autoscale is a HorizontalPodAutoscaler (autoscaling/v2) on average CPU
// utilisation, with the Kubernetes defaults unless overridden.
type Autoscale struct {
	Min int `yaml:"min"` // default the initial replicas
	Max int `yaml:"max"` // required
	// TargetUtilization is the CPU utilisation target, in (0, 1]. Default 0.6.
	TargetUtilization float64 `yaml:"target_utilization"`
	// SyncPeriod is the controller's period. Default 15s
	// (--horizontal-pod-autoscaler-sync-period). CPU usage is averaged over
	// the last period, the resolution metrics-server reports at by default.
	SyncPeriod time.Duration `yaml:"sync_period"`
	// Tolerance on the usage ratio. Default 0.1.
	Tolerance *float64 `yaml:"tolerance"`
	// ScaleUp and ScaleDown are the HPA behavior rules.
	ScaleUp *ScaleRules `yaml:"scale_up"`
	// ScaleDown: see ScaleUp.
	ScaleDown *ScaleRules `yaml:"scale_down"`
	// PodStart is from scheduling to ready (image, start, readiness).
	// Default 20s.
	PodStart time.Duration `yaml:"pod_start"`
}

// ScaleRules are an HPA direction's behavior (HPAScalingRules).
type ScaleRules struct {
	// Stabilization window. Defaults: up 0s, down 300s.
	Stabilization *time.Duration `yaml:"stabilization"`
	// Select is max, min or disabled. Default max.
	Select string `yaml:"select"`
	// Policies: defaults up [{pods 4 per 15s}, {percent 100 per 15s}],
	// down [{percent 100 per 15s}].
	Policies []ScalePolicy `yaml:"policies"`
}

// ScalePolicy is one HPAScalingPolicy.
type ScalePolicy struct {
	// Type is pods or percent.
	Type string `yaml:"type"`
	// Value is the change allowed per Period (pods, or percent).
	Value  int           `yaml:"value"`
	Period time.Duration `yaml:"period"`
}

// Cluster is where new replicas go. With PodsPerNode 0 there is always
// room; otherwise replicas beyond the nodes' slots wait for a node, which
// takes NodeProvisioning (the cluster autoscaler adding a VM).
type Cluster struct {
	// PodsPerNode is the node size in pods; 0: unlimited room.
	PodsPerNode      int           `yaml:"pods_per_node"`
	SpareNodes       int           `yaml:"spare_nodes"`       // empty nodes at the start
	NodeProvisioning time.Duration `yaml:"node_provisioning"` // default 3m
}

// Failure crashes replicas at a time and, unless For is 0, restarts them
// (cold) after For.
type Failure struct {
	// Service whose replicas crash. Required.
	Service string `yaml:"service"`
	// Replicas are replica indices; or Share of the service's replicas at
	// that time (the first ones).
	Replicas []int   `yaml:"replicas"`
	Share    float64 `yaml:"share"`
	// At is when they crash, as an offset from the start.
	At time.Duration `yaml:"at"`
	// For is how long they stay down; 0: for good.
	For time.Duration `yaml:"for"`
}

// ScaleStep sets an autoscaled service's minimum replicas from At on.
type ScaleStep struct {
	// Service is an autoscaled service.
	Service string `yaml:"service"`
	// At is an offset from the start.
	At time.Duration `yaml:"at"`
	// MinReplicas is the new floor.
	MinReplicas int `yaml:"min_replicas"`
}

// DefaultStart is the default calendar start: Black Friday 2026.
var DefaultStart = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// DefaultPolicies are compared when neither the CLI nor the scenario says.
var DefaultPolicies = []string{"round_robin", "least_request", "peak_ewma", "prequal"}

// ParseScenario decodes and validates a scenario. name labels errors
// (usually the file name).
func ParseScenario(data []byte, name string) (*Scenario, error) {
	sc := &Scenario{}
	lines, errs := decodeYAML(data, sc)
	if len(errs) > 0 {
		for _, e := range errs {
			e.File = name
		}
		return nil, errs
	}
	sc.file = name
	sc.lines = lines
	if sc.Name == "" {
		base := name[strings.LastIndexAny(name, `/\`)+1:]
		sc.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	v := &validator{sc: sc}
	sc.defaults(v)
	sc.validate(v)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool {
			a, b := v.errs[i], v.errs[j]
			return a.Line < b.Line || (a.Line == b.Line && a.Path < b.Path)
		})
		return nil, v.errs
	}
	return sc, nil
}

// set reports whether path was written in the file.
func (sc *Scenario) set(path string) bool {
	_, ok := sc.lines[path]
	return ok
}

type validator struct {
	sc   *Scenario
	errs ScenarioErrors
}

func (v *validator) errf(path, format string, args ...any) {
	line := v.sc.lines[path]
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = v.sc.lines[p]
	}
	v.errs = append(v.errs, &ScenarioError{File: v.sc.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func svcPath(s *Service, i int) string {
	if s.Name != "" {
		return "services[" + s.Name + "]"
	}
	return fmt.Sprintf("services[%d]", i)
}

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
	r := &px.Retries
	if r.Attempts == nil {
		n := 2
		r.Attempts = &n
	}
	defDur(&r.BackoffBase, sc.set("proxies.retries.backoff_base"), 25*time.Millisecond)
	defDur(&r.BackoffMax, sc.set("proxies.retries.backoff_max"), 250*time.Millisecond)
	if r.BudgetPercent == 0 {
		r.BudgetPercent = 20
	}
	if r.MinConcurrency == 0 {
		r.MinConcurrency = 3
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

var weekdays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func (sc *Scenario) validate(v *validator) {
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
	if *r.Attempts < 0 || *r.Attempts > 5 {
		v.errf("proxies.retries.attempts", "want 0 to 5")
	}
	if r.BackoffBase < 0 || r.BackoffMax < r.BackoffBase {
		v.errf("proxies.retries", "want 0 <= backoff_base <= backoff_max")
	}
	if r.BudgetPercent < 0 || r.BudgetPercent > 100 || r.MinConcurrency < 0 {
		v.errf("proxies.retries", "want budget_percent in [0, 100] and min_concurrency >= 0")
	}
	if a := px.Admission; a != nil {
		if err := a.limiterConfig().Validate(); err != nil {
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

func (a *Admission) limiterConfig() admission.Config {
	return admission.Config{MinLimit: a.MinLimit, MaxLimit: a.MaxLimit, InitialLimit: a.InitialLimit,
		Tolerance: a.Tolerance, Smoothing: a.Smoothing, Window: a.Window,
		SheddableShare: a.SheddableShare, NormalShare: a.NormalShare}
}

// Capacity returns a service's nominal capacity in requests per second of
// its first class: initial replicas × workers ÷ (mean service time × cost),
// at speed 1, warm, without cache. It is the unit of load.steps.
func (sc *Scenario) Capacity(service string) float64 {
	for _, s := range sc.Services {
		if s.Name == service {
			cost := 1.0
			if len(s.Classes) > 0 {
				cost = s.Classes[0].Cost
			}
			return float64(s.Replicas*s.Workers) / (s.ServiceTime.Mean.Seconds() * cost)
		}
	}
	return math.NaN()
}

// File returns the name the scenario was parsed under.
func (sc *Scenario) File() string { return sc.file }
