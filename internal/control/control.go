// Package control is lbsys's closed loop, the same code in the simulator
// and live: each minute it takes the telemetry of the services (load,
// replicas, utilisation, pod startups), and on its planning interval it
// turns the forecaster's paths, the announced calendar and what it has
// learned (per-replica capacity, startup time, event uplifts) into a
// directive: a replica floor per service from internal/scaler and the
// planner's admission bounds and weights, each field with its reason.
//
// Controllers are pure (DESIGN.md principle 2): they read no clock (the
// caller passes the time), do no I/O and draw no random numbers; training
// the forecaster is a function call. The simulator calls them on simulated
// time; the live controller (`lbsys controller`, the demo) on wall time
// from its own goroutine.
//
// Four controllers share the interface so that they can be compared on
// the same runs: Predictive (ours: forecaster + learned event uplift +
// scaler + planner), Oracle (the same scaler fed the true future load: the
// bound on what prediction can give), and two peers built from their
// public descriptions, HoltWinters (the predictive-horizontal-pod-
// autoscaler) and Hourly (AWS-predictive-scaling style). Reactive control
// is no controller at all: the autoscaler alone.
package control

import (
	"math"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/scaler"
)

// ServiceMinute is one service's telemetry over one minute.
type ServiceMinute struct {
	Service string
	// RPS is the rate of requests that reached the proxies for the
	// service; ServedRPS the rate that reached a replica and was answered
	// by it (sheds and proxy errors excluded).
	RPS, ServedRPS float64
	// Answered is how many answers ServedRPS counts (0: ServedRPS × 60).
	// Rates are per second of whatever clock their readers compare them
	// with; the count is what says whether a minute is enough to judge
	// a replica's capacity on.
	Answered float64
	// Ready, Starting and Pending are the replicas serving, starting and
	// waiting for a node at the minute's end.
	Ready, Starting, Pending int
	// Util is the ready replicas' mean utilisation (NaN: unknown).
	Util float64
	// P50Ms and P99Ms are the proxies' latency; ErrorRate the share of
	// failed answers.
	P50Ms, P99Ms, ErrorRate float64
	// Startups are the times the replicas that became ready in the minute
	// took from being asked for.
	Startups []time.Duration
	// Endpoints are per replica (optional): what it served and its
	// utilisation, for capacity-proportional weights.
	Endpoints []EndpointMinute
	// HotKeys are the proxies' response cache's most requested paths of
	// the service over the minute, most requested first (empty: the
	// service is not cached, or the cache does not tell): what the
	// planner warms before a forecast peak.
	HotKeys []string
}

// EndpointMinute is one endpoint's minute.
type EndpointMinute struct {
	ID        string
	ServedRPS float64
	Answered  float64 // 0: ServedRPS × 60
	Util      float64
}

// Minute is the telemetry of every service for the minute ending At.
type Minute struct {
	At       time.Time
	Services []ServiceMinute
}

// Plan is a controller's answer at one planning instant.
type Plan struct {
	// Directive is the whole desired state to apply (nil: keep the
	// running one).
	Directive *directive.Directive
	// Decisions are the scaler's per-service decisions behind it.
	Decisions []scaler.Decision
	// Expected is, per service, the load the controller expected for the
	// coming minute (rps; NaN or absent: none), and ExpectedUpper its
	// upper band: the forecast line of a report.
	Expected, ExpectedUpper map[string]float64
	// Notes are remarks worth a log line (model trained, surprise, ...).
	Notes []string
}

// Controller is a control plane in the loop.
type Controller interface {
	// Name is the control's name in reports (predictive, oracle, ...).
	Name() string
	// Observe records one minute of telemetry; minutes arrive in order.
	Observe(m Minute)
	// Decide plans at now (on the planning interval).
	Decide(now time.Time) Plan
}

// ServiceSetup is what the operators know of a service.
type ServiceSetup struct {
	Name string
	// Min and Max bound its autoscaler (Max 0: none); TargetUtilization
	// and Tolerance are the autoscaler's.
	Min, Max          int
	TargetUtilization float64
	Tolerance         float64
	// Admission is set when the proxies run admission control for it.
	Admission bool
	// Weighted is set when its policy takes weights.
	Weighted bool
	// Cache is set when the proxies cache the service's responses: what
	// the planner needs to warm them (nil: not cached, no warm lists).
	Cache *CacheSetup
}

// CacheSetup is how the proxies cache a service.
type CacheSetup struct {
	// Prefixes are the cached routes' path prefixes (empty: every path).
	Prefixes []string
	// WarmRate is the proxies' warm fetches per second
	// (cache.warm.rate; 0: the proxy's default, 10).
	WarmRate float64
	// Freshness is how long the origin keeps the responses fresh (its
	// s-maxage or max-age; 0: unknown), on the controller's clock.
	Freshness time.Duration
	// Heuristic: the origin sends no explicit freshness, so TTL hints
	// apply (see planner.CacheInput).
	Heuristic bool
	// Options tune the warm lists.
	Options planner.CacheOptions
}

// Featured is what an announced event features: the paths a campaign
// promotes (the calendar's X-LBSYS-WARM), cold before it and hot from its
// start.
type Featured struct {
	// Name is the event's title (SUMMARY), Category its category.
	Name, Category string
	// Start and End bound the event.
	Start, End time.Time
	// Services are the services it concerns (X-LBSYS-SERVICES; empty:
	// every service whose cached routes hold the paths).
	Services []string
	// Paths are the request paths it features, headline first.
	Paths []string
}

func nan() float64 { return math.NaN() }
