// Package ui is the proxy's built-in web UI: one page, served by the admin
// listener at / and /ui/, that shows per service the request rate against
// the directive's forecast and its upper band, the endpoints in rotation
// against the directive's replica floor, the admission limit, the error
// rate and p99 over time; the directive timeline with each field's reason;
// SLO incidents computed from telemetry and announced events as markers;
// and a table of endpoints (health, weights, in-flight).
//
// The charts look ahead too: past "now" they carry the running
// directive's forecast, upper band and replica floor for the coming
// seconds (the series answer's "ahead"), and the markers of the events
// announced for them, so that a coming sale's rise, the capacity readied
// for it and the sale itself are on screen before it starts. Events are
// announced ahead of time through Collector.Announce (the demo announces
// its calendar's) or learnt from the directives' reasons; one named by both
// is one entry. Under a compressed replay (Collector.SetReplay) the time
// axis is labelled in the replayed day's time; the data stays on the wall
// clock.
//
// The page is plain JavaScript and uPlot (vendored from the npm registry
// under assets/vendor/uplot, embedded with go:embed: nothing is loaded from
// elsewhere). It polls three JSON endpoints once a second:
//
//	GET /api/ui/series?since=UNIX&limit=N  per-second samples after since, and the seconds ahead
//	GET /api/ui/timeline?after=SEQ         directive changes after SEQ, incidents, events
//	GET /api/ui/state                      services and endpoints now
//
// Everything is bounded: a Collector keeps a ring of Options.Window
// per-second frames, the last Options.Versions directive changes and the
// last Options.Incidents incidents and Options.Events events, so the UI
// does not grow the proxy's memory however long it runs; the forecast
// ahead is at most an hour and 360 points per service, computed from the
// running directive for each answer; the page keeps a fixed window of
// points per chart plus the ahead.
//
// The proxy (internal/proxy/ui.go) implements Source and feeds the
// Collector once a second as a telemetry sink, so every frame has the
// timestamp of the telemetry second it was built from. The package never
// imports the proxy: the UI reads, it never changes anything.
package ui

import (
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// Source is the proxy as the UI reads it; internal/proxy implements it.
type Source interface {
	// State returns the services as they are now.
	State() State
	// Directive returns the directive the proxy runs, nil without one.
	// The UI reads it and never mutates it.
	Directive() *directive.Directive
}

// State is the proxy's view of its services at one moment.
type State struct {
	ConfigVersion string `json:"config_version"`
	// Coordinator is the directive agent's state (nil without one).
	Coordinator *Coordinator   `json:"coordinator,omitempty"`
	Services    []ServiceState `json:"services"`
}

// Coordinator summarises the proxy's directive agent.
type Coordinator struct {
	Connected     bool      `json:"connected"`
	Degraded      bool      `json:"degraded"`
	DegradedSince time.Time `json:"degraded_since,omitzero"`
	// Version is the directive version applied (0: none) and Source where
	// it came from (coordinator or disk).
	Version     uint64    `json:"version"`
	Source      string    `json:"source,omitempty"`
	AppliedAt   time.Time `json:"applied_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Rejected    uint64    `json:"rejected,omitempty"`
	RejectError string    `json:"reject_error,omitempty"`
}

// ServiceState is one service now.
type ServiceState struct {
	Name     string `json:"name"`
	Policy   string `json:"policy"`
	Priority string `json:"priority,omitempty"`
	// Panic is true when too few endpoints are healthy and the pool
	// spreads over all of them (health is then ignored).
	Panic    bool  `json:"panic"`
	InFlight int64 `json:"in_flight"`
	// Admission is nil when the service has no admission control.
	Admission *Admission `json:"admission,omitempty"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Admission is a service's adaptive concurrency limit now.
type Admission struct {
	Limit    float64 `json:"limit"`
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	InFlight int64   `json:"in_flight"`
	// Rejected counts requests shed since the limiter started, over all
	// priorities.
	Rejected int64 `json:"rejected"`
}

// Endpoint is one endpoint of a service now.
type Endpoint struct {
	ID              string    `json:"id"`
	Available       bool      `json:"available"`
	Healthy         bool      `json:"healthy"`
	Ejected         bool      `json:"ejected"`
	EjectedUntil    time.Time `json:"ejected_until,omitzero"`
	SlowStart       bool      `json:"slow_start"`
	Weight          float64   `json:"weight"`
	EffectiveWeight float64   `json:"effective_weight"`
	InFlight        int64     `json:"in_flight"`
	LastChange      string    `json:"last_change,omitempty"`
	// The fields below are filled by the UI, not by the Source: the
	// directive's weight for the endpoint (nil when the directive sets
	// none) and the last telemetry second.
	DirectiveWeight *float64 `json:"directive_weight,omitempty"`
	RPS             int64    `json:"rps"`
	Errors          int64    `json:"errors"`
	P99ms           float64  `json:"p99_ms"`
}

// InRotation reports whether picks can choose the endpoint now: its
// effective weight (health, ejection, slow start and panic mode applied)
// is above zero.
func (e Endpoint) InRotation() bool { return e.EffectiveWeight > 0 }

// Replay says that the proxy's traffic replays another day compressed in
// time (`lbsys demo` replays a morning of 1995 at 60 virtual seconds per
// wall second): the page labels its time axis in that day's time, so that
// a person reads "07:45" where the sale is. It is a display mapping only:
// the data, the directives' times and the rates stay on the wall clock
// (rates in requests per wall second, the directives' unit).
type Replay struct {
	// WallStart is the wall-clock instant at which the replay was at
	// VirtualStart; Factor is how many virtual seconds pass per wall
	// second.
	WallStart    time.Time `json:"wall_start"`
	VirtualStart time.Time `json:"virtual_start"`
	Factor       float64   `json:"factor"`
}

// Virtual is the replayed day's time at a wall-clock instant.
func (r Replay) Virtual(wall time.Time) time.Time {
	return r.VirtualStart.Add(time.Duration(float64(wall.Sub(r.WallStart)) * r.Factor))
}

// Options bound what a Collector keeps.
type Options struct {
	// Window is the per-second history kept, in seconds. Default 600;
	// at most 86400.
	Window int
	// Versions is how many directive changes the timeline keeps. Default
	// 100.
	Versions int
	// Incidents and Events are how many SLO incidents and announced events
	// are kept. Default 100 each.
	Incidents int
	Events    int
	// SLO decides which minutes are violations.
	SLO SLO
}

// SLO is the service level a minute of a service is held to: the minute
// violates it when it had traffic and its error rate is above MaxErrorRate
// or its p99 (the request-weighted mean of its seconds' p99s, as the
// agent's canary reports compute it) is above MaxP99ms.
type SLO struct {
	// MaxErrorRate is a fraction (0.01 = 1%). Default 0.01.
	MaxErrorRate float64 `json:"max_error_rate"`
	// MaxP99ms is in milliseconds. Default 500.
	MaxP99ms float64 `json:"max_p99_ms"`
}

const (
	defaultWindow    = 600
	maxWindow        = 86400
	defaultVersions  = 100
	defaultIncidents = 100
	defaultEvents    = 100
)

func (o *Options) defaults() {
	if o.Window <= 0 {
		o.Window = defaultWindow
	}
	if o.Window > maxWindow {
		o.Window = maxWindow
	}
	if o.Versions <= 0 {
		o.Versions = defaultVersions
	}
	if o.Incidents <= 0 {
		o.Incidents = defaultIncidents
	}
	if o.Events <= 0 {
		o.Events = defaultEvents
	}
	if o.SLO.MaxErrorRate <= 0 {
		o.SLO.MaxErrorRate = 0.01
	}
	if o.SLO.MaxP99ms <= 0 {
		o.SLO.MaxP99ms = 500
	}
}
