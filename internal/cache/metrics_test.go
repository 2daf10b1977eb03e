package cache

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsExposition: the metrics register, follow the naming
// conventions and count what happened.
func TestMetricsExposition(t *testing.T) {
	e := newEnv(t, Config{}, RouteConfig{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.c.Metrics())
	o := fixed(200, cc("max-age=60"), "x")
	e.get(o, "/a", nil)                              // miss, stored
	e.get(o, "/a", nil)                              // hit
	e.do(o, "POST", "/a", nil)                       // bypass (method) and invalidation
	e.get(o, "/a", hdr("Authorization", "x"))        // bypass (authorization)
	e.get(fixed(200, cc("private"), "x"), "/b", nil) // not stored: private
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "lbsys_cache_") {
			t.Errorf("metric %s lacks the lbsys_cache_ prefix", name)
		}
		isCounter := f.GetType().String() == "COUNTER"
		if isCounter != strings.HasSuffix(name, "_total") {
			t.Errorf("metric %s: counter %v but name suffix disagrees", name, isCounter)
		}
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			if m.Counter != nil {
				values[key] = m.Counter.GetValue()
			} else if m.Gauge != nil {
				values[key] = m.Gauge.GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		MetricHits + ",route=shop":                        1,
		MetricMisses + ",route=shop":                      2,
		MetricStores + ",route=shop":                      1,
		MetricBypass + ",reason=method,route=shop":        1,
		MetricBypass + ",reason=authorization,route=shop": 1,
		MetricInvalidations + ",route=shop":               1,
		MetricNotStored + ",reason=private,route=shop":    1,
		MetricMaxBytes: DefaultMaxBytes,
	} {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if values[MetricObjects] < 1 || values[MetricBytes] <= 0 {
		t.Errorf("gauges: objects %v bytes %v", values[MetricObjects], values[MetricBytes])
	}
}
