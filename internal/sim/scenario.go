package sim

import (
	"math"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/config"
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
	// Calendar announces events (an iCalendar file) and says what each
	// category does to the load.
	Calendar *Calendar `yaml:"calendar"`
	// History is the load before the start that controllers learn from.
	History History `yaml:"history"`
	// Sources names, per parameter, where its value comes from (a
	// measurement, a vendor's documentation, a published trace): shown in
	// the report so that every number of a scenario can be checked.
	Sources map[string]string `yaml:"sources"`

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
	// Retries is the proxy's retry policy, the proxy configuration's own
	// type and defaults (internal/config Retries: attempts 2, on
	// connect_failure, reset, gateway_error; budget 20% at least 3;
	// backoff 25ms to 250ms), applied through internal/retry as the proxy
	// applies it. per_try_timeout and max_body_bytes are accepted and not
	// modelled.
	Retries config.Retries `yaml:"retries"`
	// Admission turns on adaptive concurrency limits per service (absent:
	// off): the proxy configuration's type (internal/config Admission).
	Admission *config.Admission `yaml:"admission"`
	// Health is outlier ejection, panic threshold, slow start and active
	// checks: the proxy configuration's type (internal/config Health),
	// turned into the health pool's settings by the same
	// Health.PoolConfig. Of active checks, interval and the thresholds
	// count (a crashed replica fails, a live one passes); path, timeout,
	// expected_statuses and host are accepted and not modelled.
	Health config.Health `yaml:"health"`
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
	// ProxyCache is the proxies' response cache for the service's pages
	// (internal/cache, as a model: see proxycache.go); absent: the
	// proxies cache nothing of it. Unrelated to Cache, the replicas' own
	// warmth.
	ProxyCache *ProxyCache `yaml:"proxy_cache"`
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
	// MetricLag is how old the utilisation the autoscaler reads is:
	// metrics-server scrapes every 15s by default and the sample it
	// serves covers the interval before its scrape, so a sync sees CPU
	// usage that ended 15–45s earlier. Default 30s; 0 in YAML: none.
	MetricLag time.Duration `yaml:"metric_lag"`
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
