package grafana

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/agent"
	"github.com/lbsys/lbsys/internal/cache"
	"github.com/lbsys/lbsys/internal/gaia"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// Recording rule names, shared by the rules and the dashboards so that a
// panel cannot ask for a series no rule records. They follow Prometheus's
// level:metric:operations convention.
const (
	RuleRequestRate    = "service:lbsys_requests:rate1m"
	RuleErrorRate      = "service:lbsys_requests_errors:rate1m"
	RuleErrorRatio     = "service:lbsys_requests_error_ratio:rate1m"
	RuleLatencyP50     = "service:lbsys_request_duration_seconds:p50_rate1m"
	RuleLatencyP99     = "service:lbsys_request_duration_seconds:p99_rate1m"
	RuleUpstreamP50    = "service_endpoint:lbsys_upstream_response_seconds:p50_rate1m"
	RuleUpstreamP99    = "service_endpoint:lbsys_upstream_response_seconds:p99_rate1m"
	RuleShedRate       = "service:lbsys_admission_rejected:rate1m"
	RuleRetryRate      = "service:lbsys_retries:rate1m"
	RuleReadyInstances = "service:lbsys_endpoints_available:sum"
	RuleInstances      = "service:lbsys_endpoints:count"
	RuleForecast       = "service:lbsys_directive_forecast_rps:max"
	RuleForecastUpper  = "service:lbsys_directive_forecast_upper_rps:max"
	RuleForecastRatio  = "service:lbsys_load_forecast_ratio:rate1m"
	RuleCacheHitRatio  = "route:lbsys_cache_hit_ratio:rate5m"
	RuleCacheHitRatio1 = "route:lbsys_cache_hit_ratio:rate1h"
	RuleCacheRequests  = "route:lbsys_cache_requests:rate5m"
)

// SLOObjective is the availability objective the burn-rate rules measure
// against: 99.9% of requests answered without a 5xx (a shed 503 counts:
// the client did not get its answer). The error budget is 1-SLOObjective.
const SLOObjective = 0.999

// SLOWindows are the windows of the multi-window burn-rate alerts (the
// Google SRE workbook's: 1h with 5m for the fast burn, 6h with 30m for the
// slow one).
var SLOWindows = []string{"5m", "30m", "1h", "6h"}

// RuleSLOErrorRatio names the error ratio over a window.
func RuleSLOErrorRatio(window string) string { return "service:lbsys_slo_errors:ratio_rate" + window }

// RuleBurnRate names the error budget burn rate over a window: 1 spends the
// budget exactly over the SLO period, 14.4 spends 2% of a 30-day budget in
// an hour.
func RuleBurnRate(window string) string { return "service:lbsys_slo_burn_rate:" + window }

// Burn-rate thresholds of the two alerts.
const (
	FastBurn = 14.4 // 2% of a 30-day budget in 1 h
	SlowBurn = 6.0  // 5% of a 30-day budget in 6 h
)

// Rule is one Prometheus recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// RuleGroup is a group of rules evaluated together.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// ruleFile is the document promtool and Prometheus read.
type ruleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// fiveXX selects the answers that spend error budget.
const fiveXX = `code=~"5.."`

// zeroFill keeps a per-service series at 0 where expr has none: counters
// that only appear after the first event (a retry, a 5xx) would otherwise
// leave the panel and the ratios empty instead of showing no errors.
func zeroFill(expr, window string) string {
	return fmt.Sprintf("(%s) or (0 * sum by (service) (rate(%s[%s])))", expr, telemetry.RequestsTotal, window)
}

// RecordingRules are the per-service rates, error ratios, latency
// quantiles, SLO burn rates, forecast comparisons and cache ratios the
// dashboards and alerts read.
func RecordingRules() []RuleGroup {
	req := telemetry.RequestsTotal
	service := RuleGroup{Name: "lbsys-service", Rules: []Rule{
		{Record: RuleRequestRate, Expr: fmt.Sprintf("sum by (service) (rate(%s[1m]))", req)},
		{Record: RuleErrorRate, Expr: zeroFill(fmt.Sprintf("sum by (service) (rate(%s{%s}[1m]))", req, fiveXX), "1m")},
		{Record: RuleErrorRatio, Expr: fmt.Sprintf("%s / %s", RuleErrorRate, RuleRequestRate)},
		{Record: RuleLatencyP50, Expr: fmt.Sprintf("histogram_quantile(0.5, sum by (service, le) (rate(%s_bucket[1m])))", telemetry.RequestDurationSeconds)},
		{Record: RuleLatencyP99, Expr: fmt.Sprintf("histogram_quantile(0.99, sum by (service, le) (rate(%s_bucket[1m])))", telemetry.RequestDurationSeconds)},
		{Record: RuleUpstreamP50, Expr: fmt.Sprintf("histogram_quantile(0.5, sum by (service, endpoint, le) (rate(%s_bucket[1m])))", telemetry.UpstreamDuration)},
		{Record: RuleUpstreamP99, Expr: fmt.Sprintf("histogram_quantile(0.99, sum by (service, endpoint, le) (rate(%s_bucket[1m])))", telemetry.UpstreamDuration)},
		{Record: RuleShedRate, Expr: zeroFill(fmt.Sprintf("sum by (service) (rate(%s[1m]))", telemetry.AdmissionRejected), "1m")},
		{Record: RuleRetryRate, Expr: zeroFill(fmt.Sprintf("sum by (service) (rate(%s[1m]))", telemetry.RetriesTotal), "1m")},
		// Every proxy reports every endpoint: an endpoint is ready when
		// any proxy finds it available, and is counted once.
		{Record: RuleReadyInstances, Expr: fmt.Sprintf("sum by (service) (max by (service, endpoint) (%s))", telemetry.EndpointAvailable)},
		{Record: RuleInstances, Expr: fmt.Sprintf("count by (service) (max by (service, endpoint) (%s))", telemetry.EndpointAvailable)},
	}}
	slo := RuleGroup{Name: "lbsys-slo"}
	for _, w := range SLOWindows {
		errs := zeroFill(fmt.Sprintf("sum by (service) (rate(%s{%s}[%s]))", req, fiveXX, w), w)
		slo.Rules = append(slo.Rules,
			Rule{Record: RuleSLOErrorRatio(w), Expr: fmt.Sprintf("(%s)\n/\nsum by (service) (rate(%s[%s]))", errs, req, w)},
			Rule{Record: RuleBurnRate(w), Expr: fmt.Sprintf("%s / %g", RuleSLOErrorRatio(w), 1-SLOObjective)})
	}
	// The forecast is the same on every proxy running the directive, and
	// it forecasts the service's whole load, so it is compared with the
	// load summed over proxies.
	forecast := RuleGroup{Name: "lbsys-forecast", Rules: []Rule{
		{Record: RuleForecast, Expr: fmt.Sprintf("max by (service) (%s)", telemetry.DirectiveForecastRPS)},
		{Record: RuleForecastUpper, Expr: fmt.Sprintf("max by (service) (%s)", telemetry.DirectiveForecastUpperRPS)},
		{Record: RuleForecastRatio, Expr: fmt.Sprintf("%s / %s", RuleRequestRate, RuleForecast)},
	}}
	cacheGroup := RuleGroup{Name: "lbsys-cache"}
	for _, c := range []struct{ rule, window string }{{RuleCacheHitRatio, "5m"}, {RuleCacheHitRatio1, "1h"}} {
		cacheGroup.Rules = append(cacheGroup.Rules, Rule{Record: c.rule, Expr: cacheServed(c.window) + "\n/\n" + cacheHandled(c.window)})
	}
	cacheGroup.Rules = append(cacheGroup.Rules, Rule{Record: RuleCacheRequests, Expr: cacheHandled("5m")})
	return []RuleGroup{service, slo, forecast, cacheGroup}
}

// cacheServed is the rate of requests answered from a stored response:
// fresh hits, stale serves, revalidations the origin answered 304, and
// requests that waited for another's fetch and were served from it.
func cacheServed(w string) string {
	return fmt.Sprintf(`(
  sum by (route) (rate(%s[%s]))
  + sum by (route) (rate(%s[%s]))
  + sum by (route) (rate(%s{result="not_modified"}[%s]))
  + sum by (route) (rate(%s{result="served"}[%s]))
)`, cache.MetricHits, w, cache.MetricStale, w, cache.MetricRevalidations, w, cache.MetricCoalesced, w)
}

// cacheHandled is the rate of requests the cache decided (bypasses, which
// it never could serve, left out): served ones plus misses and the
// revalidations that fetched a new body or failed.
func cacheHandled(w string) string {
	return fmt.Sprintf(`(
  sum by (route) (rate(%s[%s]))
  + sum by (route) (rate(%s[%s]))
  + sum by (route) (rate(%s[%s]))
  + sum by (route) (rate(%s{result="served"}[%s]))
  + sum by (route) (rate(%s[%s]))
)`, cache.MetricHits, w, cache.MetricStale, w, cache.MetricRevalidations, w, cache.MetricCoalesced, w, cache.MetricMisses, w)
}

// AlertingRules page on fast error-budget burn and open tickets for slow
// burn and for what keeps the proxies from following the control plane.
func AlertingRules() []RuleGroup {
	sev := func(s string) map[string]string { return map[string]string{"severity": s} }
	ann := func(summary, description string) map[string]string {
		return map[string]string{"summary": summary, "description": description}
	}
	return []RuleGroup{
		{Name: "lbsys-slo-alerts", Rules: []Rule{
			{
				Alert:  "LbsysErrorBudgetFastBurn",
				Expr:   fmt.Sprintf("%s > %g\nand\n%s > %g", RuleBurnRate("1h"), FastBurn, RuleBurnRate("5m"), FastBurn),
				For:    "2m",
				Labels: sev("page"),
				Annotations: ann("{{ $labels.service }} burns its error budget {{ $value | printf \"%.1f\" }}x too fast",
					fmt.Sprintf("Over the last hour and the last 5 minutes more than %.1f%% of %s's requests failed (5xx or shed): at this rate the 30-day budget of a %g%% objective is gone in two days. Look at the overview dashboard's error ratio and sheds.", 100*FastBurn*(1-SLOObjective), "{{ $labels.service }}", 100*SLOObjective)),
			},
			{
				Alert:  "LbsysErrorBudgetSlowBurn",
				Expr:   fmt.Sprintf("%s > %g\nand\n%s > %g", RuleBurnRate("6h"), SlowBurn, RuleBurnRate("30m"), SlowBurn),
				For:    "15m",
				Labels: sev("ticket"),
				Annotations: ann("{{ $labels.service }} burns its error budget {{ $value | printf \"%.1f\" }}x too fast over 6 h",
					fmt.Sprintf("Over the last 6 hours and the last 30 minutes more than %.1f%% of the requests failed: the 30-day budget is gone in five days at this rate.", 100*SlowBurn*(1-SLOObjective))),
			},
		}},
		{Name: "lbsys-proxy-alerts", Rules: []Rule{
			{
				Alert:  "LbsysNoHealthyUpstream",
				Expr:   fmt.Sprintf("max by (job, instance, service) (%s) == 0", telemetry.EndpointAvailable),
				For:    "30s",
				Labels: sev("page"),
				Annotations: ann("{{ $labels.instance }} has no healthy endpoint for {{ $labels.service }}",
					"Every endpoint of the service is failing its health checks or ejected as an outlier on this proxy: its requests get 502/503. Check the backends (GET /status on the proxy's admin listener shows each endpoint's state)."),
			},
			{
				Alert:  "LbsysAcceptErrors",
				Expr:   fmt.Sprintf("sum by (job, instance, listener) (rate(%s[5m])) > 0", telemetry.AcceptErrorsTotal),
				For:    "1m",
				Labels: sev("warning"),
				Annotations: ann("{{ $labels.instance }} fails to accept connections on listener {{ $labels.listener }}",
					"accept() keeps failing (usually out of file descriptors): clients wait or time out. Raise the proxy's file descriptor limit (LimitNOFILE) or find what holds connections open."),
			},
			{
				Alert:  "LbsysProxyDown",
				Expr:   `up{job="lbsys-proxy"} == 0`,
				For:    "1m",
				Labels: sev("page"),
				Annotations: ann("Prometheus cannot scrape the lbsys proxy {{ $labels.instance }}",
					"The proxy's admin listener does not answer /metrics: the proxy is down or its admin address changed."),
			},
		}},
		{Name: "lbsys-control-alerts", Rules: []Rule{
			{
				Alert:  "LbsysProxyDegraded",
				Expr:   fmt.Sprintf("max by (job, instance) (%s) == 1", agent.MetricDegraded),
				For:    "1m",
				Labels: sev("warning"),
				Annotations: ann("{{ $labels.instance }} lost its coordinator and serves its last good directive",
					"The proxy's agent has not reached any coordinator for a while (degraded mode): it keeps serving with the last directive it applied, but gets no new ones. Check the coordinators (lbsys change list, their /metrics) and the network between them and the proxy."),
			},
			{
				Alert:  "LbsysDirectiveNACK",
				Expr:   fmt.Sprintf("sum by (job, instance) (increase(%s{result=\"nack\"}[10m])) > 0", agent.MetricApplies),
				Labels: sev("warning"),
				Annotations: ann("{{ $labels.instance }} refused a directive",
					"The proxy NACKed a directive (it does not fit its configuration) and keeps the previous one. GET /status on its admin listener shows the reason (coordinator.last_error); lbsys change list shows the change."),
			},
			{
				Alert:  "LbsysDirectiveNotLive",
				Expr:   fmt.Sprintf("min(%s) == 0\nand on ()\nmax(%s) > 0", gaia.MetricLive, gaia.MetricActiveProxies),
				For:    "10m",
				Labels: sev("ticket"),
				Annotations: ann("Not every active proxy runs the stable directive",
					"The coordinator has been waiting 10 minutes for some active proxy to ACK the stable version. lbsys change list and the coordinator's /v1/status show which proxies lag or refuse it."),
			},
			{
				Alert:  "LbsysCoordinatorHalted",
				Expr:   fmt.Sprintf("max by (job, instance) (%s) == 1", gaia.MetricHalted),
				Labels: sev("page"),
				Annotations: ann("Coordinator {{ $labels.instance }} stopped taking part in its cluster",
					"Its cluster key differs from the cluster's (docs/coordinator.md, cluster identity): it refuses to serve. Fix its key file and restart it; its data directory is intact."),
			},
		}},
		{Name: "lbsys-cache-alerts", Rules: []Rule{
			{
				Alert:  "LbsysCacheHitRatioCollapse",
				Expr:   fmt.Sprintf("%s < 0.5 * %s\nand\n%s > 0.2\nand\n%s > 1", RuleCacheHitRatio, RuleCacheHitRatio1, RuleCacheHitRatio1, RuleCacheRequests),
				For:    "10m",
				Labels: sev("warning"),
				Annotations: ann("Cache hit ratio of route {{ $labels.route }} fell to {{ $value | humanizePercentage }}",
					"Over the last 5 minutes the route's cache served less than half its hourly hit ratio: the origin takes the difference. Usual causes: a purge, a deploy that changed Cache-Control or Vary, the byte budget too small for a new working set (lbsys_cache_evictions_total{cause=\"size\"})."),
			},
		}},
	}
}

// rulesYAML renders groups as a rules file.
func rulesYAML(header string, groups []RuleGroup) ([]byte, error) {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		b.WriteString("# " + l + "\n")
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(ruleFile{Groups: groups}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
