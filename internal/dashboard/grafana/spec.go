// Package grafana generates lbsys's Grafana dashboards, Grafana
// provisioning files, and Prometheus recording rules, alerting rules and
// scrape configuration, as code: the dashboards with
// grafana-foundation-sdk, the rules from the same metric-name constants
// the proxy and coordinator export (internal/telemetry and friends), so a
// renamed metric breaks a build or a test instead of a panel.
//
// The generated files are committed under deploy/ and golden-tested: a
// test regenerates them and fails on any difference, so the JSON never
// drifts from this code. `lbsys dashboard --out DIR` writes them.
//
// Every panel query is listed by Queries with what it needs to have data
// (Need): cmd/lbsys's integration test runs each one against a real
// Prometheus scraping `lbsys demo`.
package grafana

// Need says what must run for a query to return data, beyond a proxy
// serving traffic (which `lbsys demo` is).
type Need string

// The needs. A query with NeedNone must return data against `lbsys demo`.
const (
	// NeedNone: a proxy serving traffic is enough.
	NeedNone Need = ""
	// NeedDirective: a running directive with a forecast, a scale
	// recommendation or an admission seed for the service — the closed
	// loop (coordinator, pipeline/controller) must be up.
	NeedDirective Need = "directive"
	// NeedCoordinator: a proxy configured with a coordinator (its agent
	// metrics) or a coordinator scraped (lbsys_gaia_*).
	NeedCoordinator Need = "coordinator"
	// NeedCache: a route with the response cache enabled.
	NeedCache Need = "cache"
)

// Reason explains a need, for test skips and the documentation.
func (n Need) Reason() string {
	switch n {
	case NeedDirective:
		return "needs a running directive (forecast, scale floor, admission seed): the closed loop of a predictive demo run (coordinator + controller)"
	case NeedCoordinator:
		return "needs a proxy connected to a coordinator (lbsys_agent_*) or a scraped coordinator (lbsys_gaia_*)"
	case NeedCache:
		return "needs a route with the response cache enabled (lbsys_cache_*)"
	}
	return "a proxy serving traffic"
}

// Query is one query of a generated dashboard: a panel target or an
// annotation.
type Query struct {
	// Dashboard is the dashboard's UID.
	Dashboard string
	// Panel is the panel's title, or "annotation: <name>".
	Panel string
	// RefID is the target's refId (A, B, …); empty for an annotation.
	RefID string
	// Expr is the PromQL expression with Grafana's variables
	// ($service, $__rate_interval, $instance_price) unexpanded.
	Expr string
	// Legend is the legend format.
	Legend string
	// Need is what must run for the query to return data.
	Need Need
	// Instant marks a query Grafana runs as an instant query (stat
	// panels: the value now); the others are range queries.
	Instant bool
	// Annotation marks an annotation query: it returns data only while
	// what it marks happens (a directive change, an event), so only its
	// syntax and evaluation are checkable against a quiet system.
	Annotation bool
}

// Variable values a test substitutes for Grafana's when it runs a query
// against Prometheus directly: all services, a rate window of four
// 1-second scrapes and more, the default price.
var TestVariables = map[string]string{
	"$__rate_interval": "20s",
	"$__interval":      "5s",
	"$service":         ".*",
	"$instance_price":  DefaultInstancePrice,
}

// DefaultInstancePrice is the dashboard's default price of one instance
// for an hour, in the currency the cost panel shows (USD): about a
// 2-vCPU cloud VM on demand. Change it in the dashboard's variable.
const DefaultInstancePrice = "0.10"

// panelKind selects the visualization.
type panelKind int

const (
	timeSeries panelKind = iota
	statPanel
	heatmapPanel
)

// target is one query of a panel.
type target struct {
	expr, legend string
	need         Need
}

// panelSpec is a panel before it becomes SDK objects; kept so that the
// query inventory and the JSON come from one description.
type panelSpec struct {
	title, desc string
	kind        panelKind
	unit        string
	w, h        uint32
	min         *float64
	max         *float64
	stack       bool
	// thresholds are drawn as dashed lines (time series) or color steps
	// (stat): the alert thresholds, so a glance says how close it is.
	thresholds []float64
	targets    []target
}

type rowSpec struct {
	title  string
	panels []panelSpec
}

type annotationSpec struct {
	name, expr, title, text, tags, color string
	need                                 Need
}

type dashboardSpec struct {
	uid, title, desc, file string
	tags                   []string
	rows                   []rowSpec
	annotations            []annotationSpec
	instancePrice          bool
}

func ptr[T any](v T) *T { return &v }

// queries lists the spec's queries in dashboard order.
func (d dashboardSpec) queries() []Query {
	var out []Query
	for _, r := range d.rows {
		for _, p := range r.panels {
			for i, t := range p.targets {
				out = append(out, Query{Dashboard: d.uid, Panel: p.title, RefID: refID(i), Expr: t.expr, Legend: t.legend, Need: t.need, Instant: p.kind == statPanel})
			}
		}
	}
	for _, a := range d.annotations {
		out = append(out, Query{Dashboard: d.uid, Panel: "annotation: " + a.name, Expr: a.expr, Legend: a.title, Need: a.need, Annotation: true})
	}
	return out
}

func refID(i int) string { return string(rune('A' + i)) }

// Queries lists every query of every generated dashboard.
func Queries() []Query {
	var out []Query
	for _, d := range specs() {
		out = append(out, d.queries()...)
	}
	return out
}
