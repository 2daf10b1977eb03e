package telemetry

// Metrics a proxy derives from the directive it runs, one series per
// service the directive has a section for. They exist so that dashboards
// and alerts can set what the control plane asked for (the forecast, the
// replica floor, the admission seed) beside what happened (the request
// rate, the ready endpoints, the adaptive limit) without reading the
// coordinator: Prometheus scrapes the proxy and has both on one target.
//
// A gauge is absent, not 0, when the directive says nothing about it (no
// forecast for this instant, no floor, a lapsed floor, no seed): 0 would
// read as "the forecast is no load" or "the floor is no replica".
const (
	// DirectiveVersion is the version that last changed the service's
	// section (a later version that leaves it alone does not move it).
	DirectiveVersion = "lbsys_directive_version"
	// DirectiveFloorReplicas is scale.replicas while the recommendation
	// holds (until scale.until, or for as long as the directive runs when
	// it has no until).
	DirectiveFloorReplicas = "lbsys_directive_floor_replicas"
	// DirectiveForecastRPS is the service's why.forecast at the scrape
	// time, interpolated linearly between the two points around it.
	DirectiveForecastRPS = "lbsys_directive_forecast_rps"
	// DirectiveForecastUpperRPS is the forecast's upper band (the points'
	// hi) at the scrape time, interpolated the same way; absent when the
	// points around now carry no band.
	DirectiveForecastUpperRPS = "lbsys_directive_forecast_upper_rps"
	// DirectiveAdmissionSeed is admission.seed, the limit the directive
	// set when it was applied (the adaptive limit moves on from there).
	DirectiveAdmissionSeed = "lbsys_directive_admission_seed"
	// DirectiveEvent is 1 for each announced event (calendar entry,
	// campaign, incident) a reason of the service's section names, for as
	// long as the running directive names it: a dashboard annotation
	// query draws it as a region.
	DirectiveEvent = "lbsys_directive_event"
	// DirectiveChangesTotal counts the changes applied to a service's
	// section (a new version that changed it, or the section removed):
	// increase() over a window finds directive changes for annotations.
	DirectiveChangesTotal = "lbsys_directive_changes_total"

	// LabelEvent names the event of DirectiveEvent, as the reason wrote it
	// ("flash-sale 2026-11-27T10:00:00Z").
	LabelEvent = "event"
)

// Help texts of the directive metrics, kept beside the names so that the
// proxy's collector and the documentation say the same thing.
const (
	HelpDirectiveVersion          = "Directive version that last changed the service's section."
	HelpDirectiveFloorReplicas    = "Replica floor the directive recommends (scale.replicas) while it holds; absent when there is none or it lapsed."
	HelpDirectiveForecastRPS      = "The directive's forecast request rate for now (why.forecast, interpolated); absent outside the forecast."
	HelpDirectiveForecastUpperRPS = "Upper band of the directive's forecast for now (why.forecast hi, interpolated); absent outside the forecast or without a band."
	HelpDirectiveAdmissionSeed    = "Admission limit the directive seeded (admission.seed); absent when it sets none."
	HelpDirectiveEvent            = "1 for each announced event a reason of the service's running directive names."
	HelpDirectiveChangesTotal     = "Changes applied to the service's directive section (new content or removal)."
)
