package agent

import (
	"encoding/json"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/api/directive"
)

// Metric names of the agent (in the proxy's registry).
const (
	MetricDegraded    = "lbsys_agent_degraded"
	MetricVersion     = "lbsys_agent_directive_version"
	MetricApplies     = "lbsys_agent_directives_total"
	MetricWatchErrors = "lbsys_agent_watch_errors_total"
)

type metrics struct {
	degraded    prometheus.Gauge
	version     prometheus.Gauge
	applies     *prometheus.CounterVec
	watchErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricDegraded,
			Help: "1 while no coordinator is reachable and the proxy serves its last good directive."}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricVersion,
			Help: "Version of the directive the proxy runs (0: none)."}),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricApplies,
			Help: "Directives received from the coordinator, by result (ack, nack)."}, []string{"result"}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricWatchErrors,
			Help: "Long polls to a coordinator that failed."}),
	}
	m.applies.WithLabelValues("ack")
	m.applies.WithLabelValues("nack")
	if reg != nil {
		reg.MustRegister(m.degraded, m.version, m.applies, m.watchErrors)
	}
	return m
}

func jsonIndent(d *directive.Directive) ([]byte, error) { return jsonIndentAny(d) }

func jsonIndentAny(d any) ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
