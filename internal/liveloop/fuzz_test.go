package liveloop

import (
	"math"
	"testing"
)

// FuzzSourceParsers: what the controller reads from other processes — a
// proxy's /telemetry and /status, a replica's load report, the fleet
// document — never panics, and what is accepted is usable: counts and
// latencies non-negative and finite, every service named, utilisation a
// share, startups positive.
func FuzzSourceParsers(f *testing.F) {
	for _, s := range []string{
		`{"records": [{"ts": "2026-03-04T10:00:00Z", "service": "a", "endpoint": "e", "requests": 3, "errors": 1, "p50_ms": 2, "p99_ms": 9}]}`,
		`{"services": [{"name": "catalog", "policy": "weighted", "admission": {"limit": 10}, "endpoints": [{"id": "127.0.0.1:1", "available": true}]}]}`,
		`{"busy_seconds": 12.5, "workers": 8}`,
		`{"services": [{"service": "a", "ready": 2, "starting": 1, "util": 0.5, "startups": [{"ready_at": "2026-03-04T10:00:00Z", "seconds": 90}]}]}`,
		`{"records": [{"ts": "x"}]}`, `{"busy_seconds": 1e400}`, `null`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if recs, err := ParseTelemetry(b); err == nil {
			for _, r := range recs {
				if r.Service == "" || r.Time.IsZero() || r.Requests < 0 || r.Errors < 0 || !finite(r.P99ms) || r.P99ms < 0 {
					t.Fatalf("telemetry record accepted: %+v", r)
				}
			}
		}
		if views, err := ParseStatus(b); err == nil {
			for name, v := range views {
				if name == "" || v.Name != name || len(v.Available) > len(v.Endpoints) {
					t.Fatalf("status view accepted: %q %+v", name, v)
				}
			}
		}
		if busy, workers, err := ParseLoadReport(b); err == nil && (!finite(busy) || busy < 0 || workers < 1) {
			t.Fatalf("load report accepted: %v %v", busy, workers)
		}
		if d, err := ParseFleetDoc(b); err == nil {
			for _, s := range d.Services {
				if s.Service == "" || s.Ready < 0 || s.Starting < 0 || s.Pending < 0 || (s.Util != nil && !(*s.Util >= 0 && *s.Util <= 1)) {
					t.Fatalf("fleet service accepted: %+v", s)
				}
				for _, st := range s.Startups {
					if st.ReadyAt.IsZero() || !(st.Seconds > 0) || math.IsInf(st.Seconds, 0) {
						t.Fatalf("startup accepted: %+v", st)
					}
				}
			}
		}
	})
}
