package grafana

import (
	"fmt"

	"github.com/lbsys/lbsys/internal/agent"
	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// Dashboard UIDs: stable, so links and provisioning survive regeneration.
const (
	OverviewUID        = "lbsys-overview"
	ForecastControlUID = "lbsys-forecast-control"
)

// svc is the selector of the dashboards' $service variable.
const svc = `service=~"$service"`

// rate is the per-service rate of a counter over Grafana's rate interval.
func rate(metric, by, extra string) string {
	sel := svc
	if extra != "" {
		sel += ", " + extra
	}
	return fmt.Sprintf("sum by (%s) (rate(%s{%s}[$__rate_interval]))", by, metric, sel)
}

// orZero shows 0 for services where a counter has no series yet (it
// appears with the first retry or ejection), so "none" reads as a flat
// line rather than "No data".
func orZero(expr string) string {
	return fmt.Sprintf("%s\nor\nsum by (service) (0 * rate(%s{%s}[$__rate_interval]))", expr, telemetry.RequestsTotal, svc)
}

// onProxies keeps a process metric of lbsys proxies only (every proxy
// exports lbsys_config_info; other jobs scraped by the same Prometheus do
// not).
func onProxies(expr string) string {
	return fmt.Sprintf("%s\n* on (job, instance) group by (job, instance) (%s)", expr, telemetry.ConfigInfo)
}

func ruleSel(rule string) string { return rule + "{" + svc + "}" }

func specs() []dashboardSpec { return []dashboardSpec{overview(), forecastControl()} }

func annotations() []annotationSpec {
	return []annotationSpec{
		{
			name: "Directive changes", color: "blue", need: NeedDirective,
			expr:  fmt.Sprintf("max by (service) (changes(%s{%s}[1m])) > 0", telemetry.DirectiveVersion, svc),
			title: "directive change", text: "{{service}}: a new directive version changed its section", tags: "service",
		},
		{
			name: "Announced events", color: "purple", need: NeedDirective,
			expr:  fmt.Sprintf("max by (service, event) (%s{%s})", telemetry.DirectiveEvent, svc),
			title: "{{event}}", text: "{{service}}: the directive prepares for {{event}}", tags: "service,event",
		},
		{
			name: "Directive NACKs", color: "orange", need: NeedCoordinator,
			expr:  fmt.Sprintf("sum by (instance) (increase(%s{result=\"nack\"}[1m])) > 0", agent.MetricApplies),
			title: "directive refused", text: "{{instance}} NACKed a directive and kept the previous one", tags: "instance",
		},
		{
			name: "Incidents: panic mode", color: "red",
			expr:  fmt.Sprintf("max by (service) (%s{%s}) > 0", telemetry.PanicMode, svc),
			title: "panic mode", text: "{{service}}: too few healthy endpoints, balancing over all of them", tags: "service",
		},
		{
			name: "Incidents: proxy degraded", color: "red", need: NeedCoordinator,
			expr:  fmt.Sprintf("max by (instance) (%s) > 0", agent.MetricDegraded),
			title: "degraded", text: "{{instance}} lost its coordinator and serves its last good directive", tags: "instance",
		},
	}
}

func overview() dashboardSpec {
	req := telemetry.RequestsTotal
	return dashboardSpec{
		uid: OverviewUID, file: "lbsys-overview.json", title: "lbsys / overview",
		desc: "Per service: traffic, errors, latency, resilience (sheds, retries, ejections), admission and upstreams; the proxies' own health.",
		tags: []string{"lbsys", "generated"},
		rows: []rowSpec{
			{title: "Services at a glance", panels: []panelSpec{
				{title: "Requests per second", kind: statPanel, unit: "reqps", w: 4, h: 4,
					targets: []target{{expr: fmt.Sprintf("sum(%s)", ruleSel(RuleRequestRate))}}},
				{title: "Error ratio (5xx)", kind: statPanel, unit: "percentunit", w: 4, h: 4, thresholds: []float64{1 - SLOObjective},
					targets: []target{{expr: fmt.Sprintf("sum(%s) / sum(%s)", ruleSel(RuleErrorRate), ruleSel(RuleRequestRate))}}},
				{title: "Slowest service p99", kind: statPanel, unit: "s", w: 4, h: 4,
					targets: []target{{expr: fmt.Sprintf("max(%s)", ruleSel(RuleLatencyP99))}}},
				{title: "Sheds per second", desc: "Requests admission control refused (503).", kind: statPanel, unit: "reqps", w: 4, h: 4,
					targets: []target{{expr: fmt.Sprintf("sum(%s)", ruleSel(RuleShedRate))}}},
				{title: "Retries per second", kind: statPanel, unit: "reqps", w: 4, h: 4,
					targets: []target{{expr: fmt.Sprintf("sum(%s)", ruleSel(RuleRetryRate))}}},
				{title: "Ready endpoints", kind: statPanel, unit: "short", w: 4, h: 4,
					targets: []target{{expr: fmt.Sprintf("sum(%s)", ruleSel(RuleReadyInstances))}}},
			}},
			{title: "Traffic", panels: []panelSpec{
				{title: "Request rate", desc: "Requests answered per second, retries not counted twice.", unit: "reqps", w: 12, h: 8, min: ptr(0.0),
					targets: []target{{expr: ruleSel(RuleRequestRate), legend: "{{service}}"}}},
				{title: "Error ratio", desc: "Share of requests answered 5xx (proxy-generated ones included: sheds, no endpoint, timeouts). The dashed line is the error budget of the 99.9% objective.", unit: "percentunit", w: 12, h: 8, min: ptr(0.0), thresholds: []float64{1 - SLOObjective},
					targets: []target{{expr: ruleSel(RuleErrorRatio), legend: "{{service}}"}}},
				{title: "Latency p50 and p99", desc: "From arrival at the proxy to the end of the response body, retries included (lbsys_request_duration_seconds).", unit: "s", w: 12, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: ruleSel(RuleLatencyP50), legend: "{{service}} p50"},
						{expr: ruleSel(RuleLatencyP99), legend: "{{service}} p99"},
					}},
				{title: "Responses by status code", unit: "reqps", w: 12, h: 8, min: ptr(0.0), stack: true,
					targets: []target{{expr: rate(req, "service, code", ""), legend: "{{service}} {{code}}"}}},
			}},
			{title: "Resilience and admission", panels: []panelSpec{
				{title: "Sheds (admission control 503)", desc: "Requests the adaptive concurrency limit refused, by priority class: sheddable goes first.", unit: "reqps", w: 12, h: 8, min: ptr(0.0),
					targets: []target{{expr: rate(telemetry.AdmissionRejected, "service, priority", ""), legend: "{{service}} {{priority}}"}}},
				{title: "Retries", desc: "Retries sent, by the condition that caused them, and retries the retry budget refused.", unit: "reqps", w: 12, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: orZero(rate(telemetry.RetriesTotal, "service, reason", "")), legend: "{{service}} {{reason}}"},
						{expr: orZero(rate(telemetry.RetryBudgetExhausted, "service", "")), legend: "{{service}} budget exhausted"},
					}},
				{title: "Outlier ejections", desc: "Passive ejections of endpoints that kept failing, per service.", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{{expr: fmt.Sprintf("sum by (service) (increase(%s{%s}[$__rate_interval]))", telemetry.EjectionsTotal, svc), legend: "{{service}}"}}},
				{title: "In flight and admission limit", desc: "Requests in flight through the proxies against the sum of their adaptive limits.", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("sum by (service) (%s{%s})", telemetry.InFlightRequests, svc), legend: "{{service}} in flight"},
						{expr: fmt.Sprintf("sum by (service) (%s{%s})", telemetry.AdmissionLimit, svc), legend: "{{service}} limit"},
					}},
				{title: "Ready endpoints and panic mode", desc: "Endpoints healthy and not ejected; panic mode (1) balances over all endpoints because too few are healthy.", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: ruleSel(RuleReadyInstances), legend: "{{service}} ready"},
						{expr: fmt.Sprintf("max by (service) (%s{%s})", telemetry.PanicMode, svc), legend: "{{service}} panic"},
					}},
			}},
			{title: "Upstreams", panels: []panelSpec{
				{title: "Upstream latency p99 per endpoint", desc: "Time from sending an attempt to an endpoint to its response headers.", unit: "s", w: 12, h: 8, min: ptr(0.0),
					targets: []target{{expr: ruleSel(RuleUpstreamP99), legend: "{{service}} {{endpoint}}"}}},
				{title: "Upstream latency p50 per endpoint", unit: "s", w: 12, h: 8, min: ptr(0.0),
					targets: []target{{expr: ruleSel(RuleUpstreamP50), legend: "{{service}} {{endpoint}}"}}},
				{title: "Requests per endpoint", desc: "Where the balancing policy sends the traffic.", unit: "reqps", w: 12, h: 8, min: ptr(0.0), stack: true,
					targets: []target{{expr: rate(req, "service, endpoint", `endpoint!=""`), legend: "{{service}} {{endpoint}}"}}},
				{title: "Effective weight per endpoint", desc: "Configured weight × directive factor × slow-start ramp; 0 when not eligible.", unit: "short", w: 12, h: 8, min: ptr(0.0),
					targets: []target{{expr: fmt.Sprintf("max by (service, endpoint) (%s{%s})", telemetry.EndpointWeight, svc), legend: "{{service}} {{endpoint}}"}}},
			}},
			{title: "Proxy health", panels: []panelSpec{
				{title: "Scrape targets up", desc: "1 while Prometheus reaches the proxy's and the coordinator's /metrics.", unit: "short", w: 6, h: 8, min: ptr(0.0), max: ptr(1.0),
					targets: []target{{expr: `up{job=~"lbsys.*"}`, legend: "{{job}} {{instance}}"}}},
				{title: "Proxy CPU", unit: "percentunit", w: 6, h: 8, min: ptr(0.0),
					targets: []target{{expr: onProxies("rate(process_cpu_seconds_total[$__rate_interval])"), legend: "{{instance}}"}}},
				{title: "Proxy memory", desc: "Resident set size of each proxy process.", unit: "bytes", w: 6, h: 8, min: ptr(0.0),
					targets: []target{{expr: onProxies("process_resident_memory_bytes"), legend: "{{instance}}"}}},
				{title: "Proxy goroutines", desc: "Grows with connections; a steady climb without traffic is a leak.", unit: "short", w: 6, h: 8, min: ptr(0.0),
					targets: []target{{expr: onProxies("go_goroutines"), legend: "{{instance}}"}}},
				{title: "Proxy-generated errors and accept errors", desc: "Answers the proxy made itself (no route, no endpoint, timeouts, sheds) by reason, and failed accepts per listener (file descriptors).", unit: "reqps", w: 12, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("sum by (reason) (rate(%s[$__rate_interval]))", telemetry.ProxyErrorsTotal), legend: "{{reason}}"},
						{expr: fmt.Sprintf("sum by (listener) (rate(%s[$__rate_interval]))", telemetry.AcceptErrorsTotal), legend: "accept errors {{listener}}"},
					}},
				{title: "Coordinator link", desc: "Degraded (1): the proxy lost its coordinator and serves its last good directive. Version: the directive it runs.", unit: "short", w: 12, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("max by (instance) (%s)", agent.MetricDegraded), legend: "{{instance}} degraded", need: NeedCoordinator},
						{expr: fmt.Sprintf("max by (instance) (%s)", agent.MetricVersion), legend: "{{instance}} version", need: NeedCoordinator},
					}},
			}},
		},
		annotations: annotations(),
	}
}

func forecastControl() dashboardSpec {
	return dashboardSpec{
		uid: ForecastControlUID, file: "lbsys-forecast-control.json", title: "lbsys / forecast control",
		desc:          "What the control plane predicted and asked for, beside what happened: load vs forecast, replica floors vs ready instances, admission seeds vs limits, cache, cost and SLO burn.",
		tags:          []string{"lbsys", "generated", "forecast"},
		instancePrice: true,
		rows: []rowSpec{
			{title: "Load vs predicted", panels: []panelSpec{
				{title: "Load vs forecast", desc: "Measured request rate (all proxies) against the running directive's forecast and its upper band, interpolated for each instant (lbsys_directive_forecast_*). No forecast line: no directive covers the time.", unit: "reqps", w: 12, h: 9, min: ptr(0.0),
					targets: []target{
						{expr: ruleSel(RuleRequestRate), legend: "{{service}} actual"},
						{expr: ruleSel(RuleForecast), legend: "{{service}} forecast", need: NeedDirective},
						{expr: ruleSel(RuleForecastUpper), legend: "{{service}} upper band", need: NeedDirective},
					}},
				{title: "Actual / forecast ratio", desc: "Distribution over time of measured load divided by the forecast, across services: 1 is a perfect forecast, above the band's ratio the forecast was too low.", kind: heatmapPanel, unit: "short", w: 12, h: 9,
					targets: []target{{expr: ruleSel(RuleForecastRatio), legend: "{{service}}", need: NeedDirective}}},
			}},
			{title: "Capacity", panels: []panelSpec{
				{title: "Replica floor vs ready instances", desc: "The directive's scale recommendation while it holds (absent once it lapses) against the endpoints the proxies find ready.", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("max by (service) (%s{%s})", telemetry.DirectiveFloorReplicas, svc), legend: "{{service}} floor", need: NeedDirective},
						{expr: ruleSel(RuleReadyInstances), legend: "{{service}} ready"},
					}},
				{title: "Admission seed vs limit", desc: "The limit the directive seeded against the adaptive limit now and the requests in flight (sums over proxies).", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("sum by (service) (%s{%s})", telemetry.DirectiveAdmissionSeed, svc), legend: "{{service}} seed", need: NeedDirective},
						{expr: fmt.Sprintf("sum by (service) (%s{%s})", telemetry.AdmissionLimit, svc), legend: "{{service}} limit"},
						{expr: fmt.Sprintf("sum by (service) (%s{%s})", telemetry.AdmissionInFlight, svc), legend: "{{service}} in flight"},
					}},
				{title: "Cost per hour", desc: "Instances × $instance_price per instance-hour: the instances behind the proxies, and what the directive's floors alone would cost.", unit: "currencyUSD", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("sum(%s) * $instance_price", ruleSel(RuleInstances)), legend: "instances"},
						{expr: fmt.Sprintf("sum(max by (service) (%s{%s})) * $instance_price", telemetry.DirectiveFloorReplicas, svc), legend: "floors", need: NeedDirective},
					}},
			}},
			{title: "Cache", panels: []panelSpec{
				{title: "Cache hit ratio", desc: "Requests answered from a stored response (fresh, stale, revalidated 304, coalesced) over those the cache handled, per route.", unit: "percentunit", w: 8, h: 8, min: ptr(0.0), max: ptr(1.0),
					targets: []target{{expr: RuleCacheHitRatio, legend: "{{route}} 5m", need: NeedCache}, {expr: RuleCacheHitRatio1, legend: "{{route}} 1h", need: NeedCache}}},
				{title: "Cache outcomes", unit: "reqps", w: 8, h: 8, min: ptr(0.0), stack: true,
					targets: []target{
						{expr: fmt.Sprintf("sum by (route) (rate(%s[$__rate_interval]))", cache.MetricHits), legend: "{{route}} hit", need: NeedCache},
						{expr: fmt.Sprintf("sum by (route) (rate(%s[$__rate_interval]))", cache.MetricMisses), legend: "{{route}} miss", need: NeedCache},
						{expr: fmt.Sprintf("sum by (route, reason) (rate(%s[$__rate_interval]))", cache.MetricStale), legend: "{{route}} stale {{reason}}", need: NeedCache},
						{expr: fmt.Sprintf("sum by (route, result) (rate(%s[$__rate_interval]))", cache.MetricCoalesced), legend: "{{route}} coalesced {{result}}", need: NeedCache},
					}},
				{title: "Cache warming and size", desc: "Warm fetches from directives' cache.warm lists by result, and the bytes held against the budget.", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("sum by (route, result) (increase(%s[$__rate_interval]))", cache.MetricWarmFetches), legend: "{{route}} warm {{result}}", need: NeedCache},
						{expr: fmt.Sprintf("sum(%s) / sum(%s)", cache.MetricBytes, cache.MetricMaxBytes), legend: "bytes used / budget", need: NeedCache},
					}},
			}},
			{title: "SLO", panels: []panelSpec{
				{title: "Error budget burn rate", desc: fmt.Sprintf("Error ratio divided by the budget of the %g%% objective, over 5m, 30m, 1h and 6h (recording rules). Dashed: the fast-burn (%g, 1h and 5m) and slow-burn (%g, 6h and 30m) alert thresholds.", 100*SLOObjective, FastBurn, SlowBurn), unit: "short", w: 24, h: 8, min: ptr(0.0), thresholds: []float64{SlowBurn, FastBurn},
					targets: func() []target {
						var ts []target
						for _, w := range SLOWindows {
							ts = append(ts, target{expr: ruleSel(RuleBurnRate(w)), legend: "{{service}} " + w})
						}
						return ts
					}()},
			}},
			{title: "Control plane", panels: []panelSpec{
				{title: "Directive versions", desc: "Per service, the version that last changed its section; the version the coordinator calls stable.", unit: "none", w: 8, h: 8,
					targets: []target{
						{expr: fmt.Sprintf("max by (service) (%s{%s})", telemetry.DirectiveVersion, svc), legend: "{{service}}", need: NeedDirective},
						{expr: fmt.Sprintf("max(%s)", gaia.MetricStableVersion), legend: "stable (coordinator)", need: NeedCoordinator},
					}},
				{title: "Directives applied and refused", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("sum by (result) (increase(%s[$__rate_interval]))", agent.MetricApplies), legend: "{{result}}", need: NeedCoordinator},
						{expr: fmt.Sprintf("sum by (service) (increase(%s{%s}[$__rate_interval]))", telemetry.DirectiveChangesTotal, svc), legend: "{{service}} section changes", need: NeedDirective},
					}},
				{title: "Coordinator", desc: "Live (1): every active proxy ACKed the stable version.", unit: "short", w: 8, h: 8, min: ptr(0.0),
					targets: []target{
						{expr: fmt.Sprintf("min(%s)", gaia.MetricLive), legend: "stable live", need: NeedCoordinator},
						{expr: fmt.Sprintf("max(%s)", gaia.MetricActiveProxies), legend: "active proxies", need: NeedCoordinator},
						{expr: fmt.Sprintf("sum(%s)", gaia.MetricLeader), legend: "leaders", need: NeedCoordinator},
					}},
			}},
		},
		annotations: annotations(),
	}
}
