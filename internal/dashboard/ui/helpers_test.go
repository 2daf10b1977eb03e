package ui

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// fakeSource is a proxy the test sets by hand.
type fakeSource struct {
	mu  sync.Mutex
	st  State
	dir *directive.Directive
}

func (f *fakeSource) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Services = append([]ServiceState(nil), f.st.Services...)
	return st
}

func (f *fakeSource) Directive() *directive.Directive {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dir
}

func (f *fakeSource) setDirective(d *directive.Directive) {
	f.mu.Lock()
	f.dir = d
	f.mu.Unlock()
}

// twoServices is a proxy with catalog (3 endpoints, one ejected, with
// admission) and cart (1 endpoint, no admission).
func twoServices() *fakeSource {
	return &fakeSource{st: State{ConfigVersion: "cfg1", Services: []ServiceState{
		{Name: "cart", Policy: "round_robin", Endpoints: []Endpoint{{ID: "10.0.0.9:80", Available: true, Healthy: true, Weight: 1, EffectiveWeight: 1}}},
		{Name: "catalog", Policy: "prequal", InFlight: 7, Admission: &Admission{Limit: 42, Min: 10, Max: 200, InFlight: 7},
			Endpoints: []Endpoint{
				{ID: "10.0.0.1:80", Available: true, Healthy: true, Weight: 1, EffectiveWeight: 1},
				{ID: "10.0.0.2:80", Available: true, Healthy: true, Weight: 1, EffectiveWeight: 1},
				{ID: "10.0.0.3:80", Ejected: true, Weight: 1},
			}},
	}}}
}

var t0 = time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)

// second returns the records of one second: req requests (err errors,
// p99 ms) for each service named, and one record per catalog endpoint.
func second(ts time.Time, req, errs int64, p99 float64, services ...string) []telemetry.Record {
	var out []telemetry.Record
	for _, s := range services {
		out = append(out, telemetry.Record{Time: ts, Service: s, Requests: req, Errors: errs, P99ms: p99})
		if s == "catalog" {
			for i := 1; i <= 3; i++ {
				out = append(out, telemetry.Record{Time: ts, Service: s, Endpoint: fmt.Sprintf("10.0.0.%d:80", i), Requests: req / 3, P99ms: p99})
			}
		}
	}
	return out
}

// seriesJSON is the decoded answer of GET /api/ui/series.
type seriesJSON struct {
	Window   int     `json:"window_seconds"`
	Last     int64   `json:"last"`
	T        []int64 `json:"t"`
	Services []struct {
		Name           string     `json:"name"`
		RPS            []*float64 `json:"rps"`
		Forecast       []*float64 `json:"forecast"`
		ForecastHi     []*float64 `json:"forecast_hi"`
		Endpoints      []*float64 `json:"endpoints"`
		EndpointsTotal []*float64 `json:"endpoints_total"`
		Floor          []*float64 `json:"replica_floor"`
		Limit          []*float64 `json:"admission_limit"`
		InFlight       []*float64 `json:"in_flight"`
		ErrorRate      []*float64 `json:"error_rate"`
		P99            []*float64 `json:"p99_ms"`
	} `json:"services"`
}

func decodeSeries(t testing.TB, b []byte) seriesJSON {
	t.Helper()
	var s seriesJSON
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("series is not JSON: %v\n%s", err, b)
	}
	return s
}

// vals turns a JSON array into strings ("null" for null) for comparison.
func vals(a []*float64) []string {
	out := make([]string, len(a))
	for i, v := range a {
		if v == nil {
			out[i] = "null"
		} else {
			out[i] = fmt.Sprintf("%g", *v)
		}
	}
	return out
}

func ptime(t time.Time) *time.Time { return &t }
