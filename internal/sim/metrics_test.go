package sim

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// TestSLOViolationsAndIncidents drives the collector minute by minute with
// made-up answers and checks what it calls a violation (p99 above the SLO
// or an error rate above its limit, sheds and timeouts included; a minute
// without requests never violates) and how violation minutes make
// incidents: runs of consecutive minutes per service, listed in the order
// they ended (one still open at the end closes with the run), with the
// worst minute's figures.
func TestSLOViolationsAndIncidents(t *testing.T) {
	type answers struct {
		ok       int           // successful answers taking lat
		lat      time.Duration // default 10ms
		slow     int           // successful answers taking slowLat
		slowLat  time.Duration
		errs     int // 500s
		sheds    int
		timeouts int
	}
	fine := answers{ok: 100}
	cases := []struct {
		name      string
		minutes   [][2]answers // per minute, services a and b
		viol      [2]string    // per service, one letter per minute: v violation, . none
		incidents []Incident
	}{
		{
			name: "p99 above the objective",
			minutes: [][2]answers{
				{{ok: 100, lat: 50 * time.Millisecond}, fine},
				{{ok: 100, lat: 150 * time.Millisecond}, fine},
				{{ok: 100, lat: 200 * time.Millisecond}, fine},
				{{ok: 100, lat: 99 * time.Millisecond}, fine},
				{{ok: 100, lat: 120 * time.Millisecond}, fine},
			},
			viol:      [2]string{".vv.v", "....."},
			incidents: []Incident{{Service: "a", StartMinute: 1, Minutes: 2, WorstP99Ms: 200}, {Service: "a", StartMinute: 4, Minutes: 1, WorstP99Ms: 120}},
		},
		{
			name: "the 99th percentile, not the mean or the maximum",
			minutes: [][2]answers{
				{{ok: 99, slow: 1, slowLat: time.Second}, fine},
				{{ok: 98, slow: 2, slowLat: time.Second}, fine},
			},
			viol:      [2]string{".v", ".."},
			incidents: []Incident{{Service: "a", StartMinute: 1, Minutes: 1, WorstP99Ms: 1000}},
		},
		{
			name: "error rate above the limit, sheds and timeouts included",
			minutes: [][2]answers{
				{{ok: 95, errs: 5}, fine},               // 5%: at the limit, not above
				{{ok: 94, errs: 6}, fine},               // 6%
				{{ok: 94, sheds: 5, timeouts: 1}, fine}, // 6%
				{{}, fine},                              // no requests: no violation, the incident ends
				{{ok: 90, errs: 10}, fine},
			},
			viol:      [2]string{".vv.v", "....."},
			incidents: []Incident{{Service: "a", StartMinute: 1, Minutes: 2, WorstP99Ms: 10, WorstErrors: 0.06}, {Service: "a", StartMinute: 4, Minutes: 1, WorstP99Ms: 10, WorstErrors: 0.1}},
		},
		{
			name: "services separately, incidents in the order they ended",
			minutes: [][2]answers{
				{{ok: 50, errs: 50}, {ok: 100, lat: 300 * time.Millisecond}},
				{{ok: 50, errs: 50}, {ok: 100, lat: 400 * time.Millisecond}},
				{fine, {ok: 100, lat: 300 * time.Millisecond}},
				{fine, fine},
				{{ok: 90, errs: 10}, {ok: 90, errs: 10}},
			},
			viol: [2]string{"vv..v", "vvv.v"},
			incidents: []Incident{
				{Service: "a", StartMinute: 0, Minutes: 2, WorstP99Ms: 10, WorstErrors: 0.5},
				{Service: "b", StartMinute: 0, Minutes: 3, WorstP99Ms: 400},
				{Service: "a", StartMinute: 4, Minutes: 1, WorstP99Ms: 10, WorstErrors: 0.1},
				{Service: "b", StartMinute: 4, Minutes: 1, WorstP99Ms: 10, WorstErrors: 0.1},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := mustParse(t, `
duration: 10m
clients: {mode: requests}
load: {rate: 1}
services:
  - {name: a, slo: {p99: 100ms, error_rate: 0.05}}
  - {name: b, slo: {p99: 100ms, error_rate: 0.05}}
`)
			s, err := New(sc, Options{Policy: "round_robin"})
			if err != nil {
				t.Fatal(err)
			}
			c := s.met
			now := int64(0)
			for _, m := range tc.minutes {
				now += int64(time.Minute)
				for i, a := range m {
					rt := s.services[i].routes[0]
					answer := func(n int, lat time.Duration, set func(*request)) {
						if lat == 0 {
							lat = 10 * time.Millisecond
						}
						for range n {
							r := &request{route: rt, proxyStart: now - int64(lat), status: 200}
							set(r)
							c.request(r, now)
						}
					}
					answer(a.ok, a.lat, func(*request) {})
					answer(a.slow, a.slowLat, func(*request) {})
					answer(a.errs, a.lat, func(r *request) { r.status = 500 })
					answer(a.sheds, a.lat, func(r *request) { r.shed, r.status = true, 503 })
					answer(a.timeouts, a.lat, func(r *request) { r.fail, r.status = failTimeout, 504 })
				}
				c.minute(now)
			}
			c.finish(now)
			pr := c.result()

			viols, any := 0, 0
			for i := range 2 {
				var got strings.Builder
				for _, m := range pr.Minutes {
					if m.Services[i].Violation {
						got.WriteByte('v')
					} else {
						got.WriteByte('.')
					}
				}
				if got.String() != tc.viol[i] {
					t.Errorf("%s: violation minutes %s, want %s", pr.Services[i].Name, got.String(), tc.viol[i])
				}
				n := strings.Count(tc.viol[i], "v")
				viols += n
				if pr.Services[i].ViolationMinutes != n {
					t.Errorf("%s: %d violation minutes in the totals, want %d", pr.Services[i].Name, pr.Services[i].ViolationMinutes, n)
				}
			}
			for m := range tc.minutes {
				if tc.viol[0][m] == 'v' || tc.viol[1][m] == 'v' {
					any++
				}
			}
			if pr.Totals.ViolationMinutes != viols || pr.Totals.AnyViolationMinutes != any || pr.Totals.Incidents != len(tc.incidents) {
				t.Errorf("totals: %d violation minutes, %d with any, %d incidents; want %d, %d, %d",
					pr.Totals.ViolationMinutes, pr.Totals.AnyViolationMinutes, pr.Totals.Incidents, viols, any, len(tc.incidents))
			}
			if len(pr.Incidents) != len(tc.incidents) {
				t.Fatalf("incidents %+v, want %+v", pr.Incidents, tc.incidents)
			}
			for i, got := range pr.Incidents {
				want := tc.incidents[i]
				if got.Service != want.Service || got.StartMinute != want.StartMinute || got.Minutes != want.Minutes ||
					math.Abs(got.WorstP99Ms-want.WorstP99Ms) > 0.01*want.WorstP99Ms || got.WorstErrors != want.WorstErrors {
					t.Errorf("incident %d: %+v, want %+v (p99 within the histogram's 1%%)", i, got, want)
				}
			}
		})
	}
}

// TestSLOIncidentEndToEnd: both replicas of a crash for two minutes; those
// two minutes, and only those, are violation minutes of that service, one
// incident; the other service is untouched.
func TestSLOIncidentEndToEnd(t *testing.T) {
	sc := mustParse(t, `
duration: 6m
clients: {mode: requests}
load: {rate: 200}
proxies: {retries: {attempts: 0}, health: {outlier: {disabled: true}}}
failures: [{service: a, share: 1, at: 2m, for: 2m}]
services:
  - {name: a, replicas: 2, service_time: {mean: 10ms}, slo: {p99: 100ms}}
  - {name: b, replicas: 2, service_time: {mean: 10ms}, slo: {p99: 100ms}}
`)
	pr := run(t, sc, "least_request", 1)
	var flags []string
	for _, m := range pr.Minutes {
		flags = append(flags, fmt.Sprint(m.Services[0].Violation, m.Services[1].Violation))
	}
	want := "[false false false false true false true false false false false false]"
	if got := fmt.Sprint(flags); got != want {
		t.Errorf("violations per minute (a b) %s, want %s", got, want)
	}
	if len(pr.Incidents) != 1 {
		t.Fatalf("incidents %+v, want one", pr.Incidents)
	}
	if inc := pr.Incidents[0]; inc.Service != "a" || inc.StartMinute != 2 || inc.Minutes != 2 || inc.WorstErrors != 1 {
		t.Errorf("incident %+v, want service a from minute 2 for 2 minutes, every request failing", inc)
	}
	if pr.Totals.ViolationMinutes != 2 || pr.Totals.AnyViolationMinutes != 2 || pr.Totals.Incidents != 1 {
		t.Errorf("totals %+v", pr.Totals)
	}
}

// TestUtilisationAndGoodput: per window, the mean and the spread (max −
// min) of the replicas' CPU utilisation, each over the time it was up and
// only for replicas up at least half the window and at its end; goodput is
// successful answers per second. Two replicas, 4 workers, a constant 10ms
// at speed 1, 200 requests/s alternated by round_robin: a replica at speed
// 1 is 25% busy, one at half speed 50%.
func TestUtilisationAndGoodput(t *testing.T) {
	type win struct{ mean, spread float64 }
	cases := []struct {
		name     string
		extra    string // service fields
		failures string
		want     []win // per minute
		goodput  float64
	}{
		{"equal speeds", "speeds: [1, 1]", "[]", []win{{.25, 0}, {.25, 0}, {.25, 0}}, 200},
		{"one at half speed", "speeds: [1, 0.5]", "[]", []win{{.375, .25}, {.375, .25}, {.375, .25}}, 200},
		{"errors are not goodput", "speeds: [1, 1], error_rate: 0.25", "[]", []win{{.25, 0}, {.25, 0}, {.25, 0}}, 150},
		// Down from 1m to 1m20s: in minute 1 the fast one is 50% busy for
		// 20s and 25% for 40s (1/3); the slow one counts over its 40s up.
		{"back for most of the window: counted over its time up", "speeds: [1, 0.5]", "[{service: a, replicas: [1], at: 1m, for: 20s}]",
			[]win{{.375, .25}, {(1.0/3 + .5) / 2, .5 - 1.0/3}, {.375, .25}}, 200},
		{"up less than half the window: left out", "speeds: [1, 0.5]", "[{service: a, replicas: [1], at: 1m, for: 40s}]",
			[]win{{.375, .25}, {(40*.5 + 20*.25) / 60, 0}, {.375, .25}}, 200},
		{"down at the window's end: left out", "speeds: [1, 0.5]", "[{service: a, replicas: [1], at: 90s}]",
			[]win{{.375, .25}, {.375, 0}, {.5, 0}}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := mustParse(t, fmt.Sprintf(`
duration: 3m
clients: {mode: requests}
load: {rate: 200}
proxies: {retries: {min_retry_concurrency: 1000}, health: {outlier: {disabled: true}}}
failures: %s
services:
  - {name: a, replicas: 2, workers: 4, service_time: {mean: 10ms, dist: constant}, %s}
`, tc.failures, tc.extra))
			pr := run(t, sc, "round_robin", 3)
			for i, m := range pr.Minutes {
				sm := m.Services[0]
				w := tc.want[i]
				if math.Abs(sm.UtilMean-w.mean) > 0.02 || math.Abs(sm.UtilSpread-w.spread) > 0.02 {
					t.Errorf("minute %d: utilisation mean %.4f spread %.4f, want %.4f and %.4f", i, sm.UtilMean, sm.UtilSpread, w.mean, w.spread)
				}
				if math.Abs(sm.GoodputRPS*60-float64(sm.OK)) > 0.06 {
					t.Errorf("minute %d: goodput %.3f/s is not the %d successful answers per second", i, sm.GoodputRPS, sm.OK)
				}
				if math.Abs(sm.GoodputRPS-tc.goodput) > 0.05*tc.goodput {
					t.Errorf("minute %d: goodput %.1f/s, want about %.0f (%d requests, %d ok)", i, sm.GoodputRPS, tc.goodput, sm.Requests, sm.OK)
				}
			}
		})
	}
}
