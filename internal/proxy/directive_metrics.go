package proxy

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// directiveMetrics exports, per service, what the running directive asks
// for (telemetry.Directive*): the forecast and replica floor that
// dashboards set beside the measured load and the ready endpoints. The
// applier publishes a snapshot after each successful apply; the values
// that depend on time (the forecast for now, a floor that lapses) are
// worked out at scrape time from the scrape's clock reading, so nothing
// has to run on a timer and the request path is never involved.
type directiveMetrics struct {
	clock   clock.Clock
	snap    atomic.Pointer[[]dirSeries] // sorted by service
	mu      sync.Mutex                  // serializes publish (callers hold the applier's lock anyway)
	changes *prometheus.CounterVec

	version, floor, forecast, upper, seed, event *prometheus.Desc
}

// dirSeries is one service's section, reduced to what the metrics need.
// The slices are private copies, so the snapshot stays immutable.
type dirSeries struct {
	service  string
	version  uint64
	scale    *directive.Scale
	seed     int
	forecast []directive.Point // sorted by At
	events   []string
}

func newDirectiveMetrics(c clock.Clock) *directiveMetrics {
	svc := []string{telemetry.LabelService}
	m := &directiveMetrics{
		clock: c,
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: telemetry.DirectiveChangesTotal, Help: telemetry.HelpDirectiveChangesTotal,
		}, svc),
		version:  prometheus.NewDesc(telemetry.DirectiveVersion, telemetry.HelpDirectiveVersion, svc, nil),
		floor:    prometheus.NewDesc(telemetry.DirectiveFloorReplicas, telemetry.HelpDirectiveFloorReplicas, svc, nil),
		forecast: prometheus.NewDesc(telemetry.DirectiveForecastRPS, telemetry.HelpDirectiveForecastRPS, svc, nil),
		upper:    prometheus.NewDesc(telemetry.DirectiveForecastUpperRPS, telemetry.HelpDirectiveForecastUpperRPS, svc, nil),
		seed:     prometheus.NewDesc(telemetry.DirectiveAdmissionSeed, telemetry.HelpDirectiveAdmissionSeed, svc, nil),
		event:    prometheus.NewDesc(telemetry.DirectiveEvent, telemetry.HelpDirectiveEvent, []string{telemetry.LabelService, telemetry.LabelEvent}, nil),
	}
	empty := []dirSeries{}
	m.snap.Store(&empty)
	return m
}

// publish replaces the snapshot with the sections in applied and counts a
// change for every service whose section changed or went away. A nil m
// does nothing, so the applier works without metrics (tests, simulator).
func (m *directiveMetrics) publish(applied map[string]appliedSection) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := map[string]uint64{}
	for _, s := range *m.snap.Load() {
		prev[s.service] = s.version
	}
	next := make([]dirSeries, 0, len(applied))
	for name, a := range applied {
		if a.section == nil {
			continue
		}
		next = append(next, seriesOf(name, a.version, a.section))
		if v, ok := prev[name]; !ok || v != a.version {
			m.changes.WithLabelValues(name).Inc()
		}
		delete(prev, name)
	}
	for name := range prev { // sections removed
		m.changes.WithLabelValues(name).Inc()
	}
	sort.Slice(next, func(i, j int) bool { return next[i].service < next[j].service })
	m.snap.Store(&next)
}

func seriesOf(name string, version uint64, sec *directive.Service) dirSeries {
	s := dirSeries{service: name, version: version}
	if sec.Scale != nil {
		sc := *sec.Scale
		s.scale = &sc
	}
	if sec.Admission != nil {
		s.seed = sec.Admission.Seed
	}
	if sec.Why != nil && len(sec.Why.Forecast) > 0 {
		s.forecast = append([]directive.Point(nil), sec.Why.Forecast...)
		sort.SliceStable(s.forecast, func(i, j int) bool { return s.forecast[i].At.Before(s.forecast[j].At) })
	}
	s.events = sectionEvents(sec)
	return s
}

// sectionEvents lists the distinct events the section's reasons name,
// sorted: at most four (one reason per field), so the series stay few.
func sectionEvents(sec *directive.Service) []string {
	reasons := []*directive.Reason{sec.WeightsWhy}
	if sec.Admission != nil {
		reasons = append(reasons, sec.Admission.Why)
	}
	if sec.Cache != nil {
		reasons = append(reasons, sec.Cache.Why)
	}
	if sec.Scale != nil {
		reasons = append(reasons, sec.Scale.Why)
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range reasons {
		if r == nil {
			continue
		}
		// A label value must be valid UTF-8 or the scrape fails; JSON
		// decoding already replaces bad bytes, this keeps it true for a
		// directive built in memory.
		e := strings.ToValidUTF8(strings.TrimSpace(r.Event), "\uFFFD")
		if e != "" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

// floorAt is the replica floor a scale recommendation sets at t: Replicas
// until Until (exclusive), or for as long as the directive runs when it
// has no Until. A lapsed floor is no floor: the autoscaler is back on its
// own minimum, and the dashboard must not show a floor nobody holds.
func floorAt(sc *directive.Scale, t time.Time) (int, bool) {
	if sc == nil {
		return 0, false
	}
	if sc.Until != nil && !t.Before(*sc.Until) {
		return 0, false
	}
	return sc.Replicas, true
}

// forecastAt is the forecast for t from points sorted by time: the point's
// values at a point's own time, linear interpolation between the two
// points around t, and nothing before the first or after the last point
// (a forecast says nothing about the time it does not cover). upper is
// the band's top (hi); a point without a band (hi 0) leaves hasUpper
// false for the intervals it bounds.
func forecastAt(points []directive.Point, t time.Time) (rps, upper float64, hasRPS, hasUpper bool) {
	n := len(points)
	if n == 0 || t.Before(points[0].At) || t.After(points[n-1].At) {
		return 0, 0, false, false
	}
	i := sort.Search(n, func(i int) bool { return !points[i].At.Before(t) })
	b := points[i]
	if b.At.Equal(t) {
		return b.RPS, b.Hi, true, b.Hi > 0
	}
	a := points[i-1] // i > 0: t is after points[0]
	f := float64(t.Sub(a.At)) / float64(b.At.Sub(a.At))
	rps = a.RPS + f*(b.RPS-a.RPS)
	if a.Hi > 0 && b.Hi > 0 {
		return rps, a.Hi + f*(b.Hi-a.Hi), true, true
	}
	return rps, 0, true, false
}

// Describe implements prometheus.Collector.
func (m *directiveMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.version, m.floor, m.forecast, m.upper, m.seed, m.event} {
		ch <- d
	}
	m.changes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *directiveMetrics) Collect(ch chan<- prometheus.Metric) {
	now := m.clock.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		// NewConstMetric, not MustNew: a bad label value drops one
		// series instead of failing the whole scrape with a panic.
		if c, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
			ch <- c
		}
	}
	for _, s := range *m.snap.Load() {
		gauge(m.version, float64(s.version), s.service)
		if n, ok := floorAt(s.scale, now); ok {
			gauge(m.floor, float64(n), s.service)
		}
		if rps, up, ok, okUp := forecastAt(s.forecast, now); ok {
			gauge(m.forecast, rps, s.service)
			if okUp {
				gauge(m.upper, up, s.service)
			}
		}
		if s.seed > 0 {
			gauge(m.seed, float64(s.seed), s.service)
		}
		for _, e := range s.events {
			gauge(m.event, 1, s.service, e)
		}
	}
	m.changes.Collect(ch)
}

var _ prometheus.Collector = (*directiveMetrics)(nil)
