package planner

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/scaler"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fc builds a forecast from origin t0 with a 15-minute step: a 1-step
// horizon and a 4-step one, values in the forecast's unit.
func fc(p15, u15 []float64, p1h, u1h []float64) forecast.Forecast {
	h := func(p, u []float64) forecast.HorizonForecast {
		hf := forecast.HorizonForecast{Steps: len(p), Point: p, Upper: u}
		for i := range p {
			hf.Times = append(hf.Times, t0.Add(time.Duration(i+1)*15*time.Minute).Format(time.RFC3339))
		}
		return hf
	}
	f := forecast.Forecast{Series: "catalog", Origin: t0, Step: 15 * time.Minute,
		Horizons: []forecast.HorizonForecast{h(p15, u15), h(p1h, u1h)}}
	f.Horizons[1].Drivers = []forecast.Driver{{Feature: "lag_1d", Effect: 40}, {Feature: "hour", Effect: -12}, {Feature: "event_sale_in", Effect: 25}}
	f.Horizons[0].Drivers = []forecast.Driver{{Feature: "lag_1d", Effect: 55}}
	return f
}

// standard: 15m says 110 (upper 130); 1h says 150/180, 200/260, 120/150
// after it. The merged path peaks at 200 (upper 260) at t0+45m.
func standardForecast() forecast.Forecast {
	return fc([]float64{110}, []float64{130}, []float64{999, 150, 200, 120}, []float64{999, 180, 260, 150})
}

// ep makes an endpoint with n minutes ending at t0 of constant rate and
// median latency.
func ep(addr string, n int, rps, p50 float64) Endpoint {
	e := Endpoint{Address: addr}
	for i := n - 1; i >= 0; i-- {
		e.Minutes = append(e.Minutes, Minute{T: t0.Add(-time.Duration(i) * time.Minute), RPS: rps, P50ms: p50})
	}
	return e
}

func obs(eps ...Endpoint) Observed {
	return Observed{From: t0.Add(-24 * time.Hour), To: t0, Endpoints: eps}
}

var model = Model{Name: "ensemble", RunID: "run-1", ModelID: 42}

func TestPlanServiceArithmetic(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	ptr := func(t time.Time) *time.Time { return &t }
	// Endpoints a (60 rps at 40 ms) and b (40 rps at 60 ms): the
	// request-weighted p50 is (60×40 + 40×60)/100 = 48 ms; capacities 60
	// and 40, mean 50 per replica.
	a, b := ep("10.0.0.1:9001", 60, 60, 40), ep("10.0.0.2:9001", 60, 40, 60)
	for _, tc := range []struct {
		name string
		in   Input
		// want
		peak, upper float64
		p50         float64
		adm         *directive.Admission
		scale       *directive.Scale
		weights     map[string]float64
		planned     string
		note        string
	}{
		{
			// Seed ⌈260 × 0.048 / 0.7⌉ = ⌈17.83⌉ = 18; min ⌈200 × 0.048⌉ =
			// ⌈9.6⌉ = 10; replicas ⌈260 / (0.8 × 50)⌉ = ⌈6.5⌉ = 7, by the
			// first step above 2 × 0.8 × 50 = 80 rps (t0+15m, upper 130).
			name: "both endpoints known",
			in:   Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1, Observed: obs(a, b)},
			peak: 200, upper: 260, p50: 48,
			adm:     &directive.Admission{Seed: 18, Min: 10},
			scale:   &directive.Scale{Replicas: 7, Current: 2, By: ptr(at(15))},
			weights: map[string]float64{"10.0.0.1:9001": 1.2, "10.0.0.2:9001": 0.8},
			planned: "admission,scale,weights",
		},
		{
			// Counts per 5-minute sample: ×1/300 gives the same rps.
			name: "counts per sample",
			in: Input{Service: "catalog", RPSPerUnit: 1.0 / 300, Observed: obs(a, b),
				Forecast: fc([]float64{33000}, []float64{39000}, []float64{0, 45000, 60000, 36000}, []float64{0, 54000, 78000, 45000})},
			peak: 200, upper: 260, p50: 48,
			adm:     &directive.Admission{Seed: 18, Min: 10},
			scale:   &directive.Scale{Replicas: 7, Current: 2, By: ptr(at(15))},
			weights: map[string]float64{"10.0.0.1:9001": 1.2, "10.0.0.2:9001": 0.8},
			planned: "admission,scale,weights",
		},
		{
			// b has 20 busy minutes (< 30): no weights; per replica is
			// a's 60 alone: ⌈260 / 48⌉ = 6. Latency still counts b.
			name: "thin data leaves weights out",
			in:   Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1, Observed: obs(a, ep("10.0.0.2:9001", 20, 40, 60))},
			peak: 200, upper: 260, p50: (60*60*40 + 20*40*60) / (60*60 + 20*40.0),
			adm:     &directive.Admission{Seed: 17}, // min ⌈8.7⌉ < 10: the configured floor stays
			scale:   &directive.Scale{Replicas: 6, Current: 2, By: ptr(at(15))},
			planned: "admission,scale",
			note:    "too few minutes",
		},
		{
			// b went silent 10 minutes before a: one endpoint runs; no
			// weights with one; per replica 60.
			name: "stale endpoint",
			in: Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1,
				Observed: obs(a, Endpoint{Address: "10.0.0.2:9001", Minutes: ep("x:1", 60, 40, 60).Minutes[:50]})},
			peak: 200, upper: 260, p50: (60*60*40 + 50*40*60) / (60*60 + 50*40.0),
			adm:     &directive.Admission{Seed: 18, Min: 10},
			scale:   &directive.Scale{Replicas: 6, Current: 1, By: ptr(at(15))},
			planned: "admission,scale",
			note:    "not counted as running",
		},
		{
			// The current seed 17 is within 20% of 18: kept (re-seeding
			// discards what the limiter learned). The cap 12 then clamps
			// both; the current weight 0 of c stays and c is not weighed.
			name: "hysteresis, cap, weight 0 kept",
			in: Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1,
				Observed: obs(a, b, ep("10.0.0.3:9001", 60, 0, 0)), CurrentVersion: 3,
				Current: &directive.Service{Admission: &directive.Admission{Seed: 17, Cap: 12},
					Weights: map[string]float64{"10.0.0.3:9001": 0}}},
			peak: 200, upper: 260, p50: 48,
			adm:     &directive.Admission{Seed: 12, Min: 10, Cap: 12},
			scale:   &directive.Scale{Replicas: 7, Current: 3, By: ptr(at(15))},
			weights: map[string]float64{"10.0.0.1:9001": 1.2, "10.0.0.2:9001": 0.8, "10.0.0.3:9001": 0},
			planned: "admission,scale,weights",
			note:    "raising a cap is left to a person",
		},
		{
			// Light load: point concurrency 2 × 0.048 < 10 leaves the
			// configured floor; seed ⌈3 × 0.048 / 0.7⌉ = 1; one replica
			// suffices (never zero), no deadline.
			name: "light load",
			in: Input{Service: "catalog", RPSPerUnit: 1, Observed: obs(a, b),
				Forecast: fc([]float64{1}, []float64{2}, []float64{0, 2, 1, 1}, []float64{0, 3, 2, 2})},
			// A seed of 1 is within the limiter's floor (10): not planned.
			peak: 2, upper: 3, p50: 48,
			scale:   &directive.Scale{Replicas: 1, Current: 2},
			weights: map[string]float64{"10.0.0.1:9001": 1.2, "10.0.0.2:9001": 0.8},
			planned: "scale,weights",
		},
		{
			// Very unequal capacity: the slow endpoint keeps the floor 0.1.
			// Per replica (200+1)/2 = 100.5: ⌈260 / 80.4⌉ = 4, by the first
			// step above 2 × 80.4 (t0+30m, 180).
			name: "weight floor",
			in: Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1,
				Observed: obs(ep("10.0.0.1:9001", 60, 200, 40), ep("10.0.0.2:9001", 60, 1, 40))},
			peak: 200, upper: 260, p50: 40,
			adm:     &directive.Admission{Seed: 15},
			scale:   &directive.Scale{Replicas: 4, Current: 2, By: ptr(at(30))},
			weights: map[string]float64{"10.0.0.1:9001": 1.99, "10.0.0.2:9001": 0.1},
			planned: "admission,scale,weights",
		},
		{
			name: "no telemetry",
			in:   Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1},
			peak: 200, upper: 260,
			note: "nothing to plan",
		},
		{
			// Latency only from the service level (endpoints report no
			// latency): admission yes; weights and scale from throughput.
			name: "service-level latency",
			in: Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1,
				Observed: Observed{Service: []Minute{{T: t0, RPS: math.NaN(), P50ms: 30}, {T: t0.Add(time.Minute), RPS: math.NaN(), P50ms: 50}},
					Endpoints: []Endpoint{ep("10.0.0.1:9001", 60, 50, 0), ep("10.0.0.2:9001", 60, 50, 0)}}},
			peak: 200, upper: 260, p50: 40,
			adm:     &directive.Admission{Seed: 15},
			scale:   &directive.Scale{Replicas: 7, Current: 2, By: ptr(at(15))},
			weights: map[string]float64{"10.0.0.1:9001": 1, "10.0.0.2:9001": 1},
			planned: "admission,scale,weights",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanService(tc.in, model, Options{})
			if math.Abs(p.PeakRPS-tc.peak) > 1e-9 || math.Abs(p.UpperPeakRPS-tc.upper) > 1e-9 || math.Abs(p.P50ms-tc.p50) > 1e-9 {
				t.Errorf("peak %v upper %v p50 %v, want %v %v %v", p.PeakRPS, p.UpperPeakRPS, p.P50ms, tc.peak, tc.upper, tc.p50)
			}
			if got := strings.Join(p.Planned, ","); got != tc.planned {
				t.Errorf("planned %q, want %q; notes %v", got, tc.planned, p.Notes)
			}
			if tc.note != "" && !strings.Contains(strings.Join(p.Notes, "\n"), tc.note) {
				t.Errorf("notes %v lack %q", p.Notes, tc.note)
			}
			if tc.planned == "" {
				if p.Section != nil {
					t.Errorf("section %+v, want none", p.Section)
				}
				return
			}
			s := p.Section
			// Every planned field carries its reason; the arithmetic is
			// compared without it.
			if (s.Admission != nil && s.Admission.Why == nil) || (s.Scale != nil && s.Scale.Why == nil) || (s.Weights != nil && s.WeightsWhy == nil) {
				t.Errorf("a planned field without its reason: %s", js(s))
			}
			s = withoutReasons(s)
			if !jsonEq(s.Admission, tc.adm) || !jsonEq(s.Scale, tc.scale) || !jsonEq(s.Weights, tc.weights) {
				t.Errorf("admission %s scale %s weights %s\nwant %s %s %s\nnotes %v", js(s.Admission), js(s.Scale), js(s.Weights),
					js(tc.adm), js(tc.scale), js(tc.weights), p.Notes)
			}
			w := s.Why
			if w == nil || w.Model != "ensemble@run-1/model-42" || !w.Blessed || len(w.Forecast) != 4 {
				t.Fatalf("why %s", js(w))
			}
			// The merged path: 15m's first step, then 1h's.
			if w.Forecast[0].RPS != 110 || w.Forecast[0].Hi != 130 || w.Forecast[2].RPS != 200 || w.Forecast[2].Hi != 260 {
				if tc.peak == 200 {
					t.Errorf("forecast points %s", js(w.Forecast))
				}
			}
			// Drivers: the largest effect per feature over the horizons,
			// in rps, biggest first.
			k := tc.in.RPSPerUnit
			if w.Features["lag_1d"] != round3(55*k) || w.Features["event_sale_in"] != round3(25*k) || len(w.Features) != 3 {
				t.Errorf("features %v", w.Features)
			}
			if !strings.Contains(w.ExpectedEffect, "upper-band peak") {
				t.Errorf("expected effect %q", w.ExpectedEffect)
			}
			d, err := Directive(nil, []Plan{p})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := directive.Parse(mustJSON(t, d)); err != nil {
				t.Errorf("the planned directive does not parse back: %v", err)
			}
		})
	}
}

// TestDirectiveKeepsWhatThePlannerDoesNotOwn: other services, cache hints
// and ramps stay; a ramp without a start is pinned to its version's
// commit so a proxy does not ramp the endpoint again.
func TestDirectiveKeepsWhatThePlannerDoesNotOwn(t *testing.T) {
	committed := t0.Add(-time.Hour)
	cur := &directive.Directive{Schema: 1, Version: 4, Change: 3, CommittedAt: committed, Services: map[string]*directive.Service{
		"cart": {Admission: &directive.Admission{Seed: 20}, Why: &directive.Why{Model: "manual"}},
		"catalog": {
			SlowStart: []directive.Ramp{{Endpoint: "10.0.0.2:9001", From: 0.1, To: 1, Duration: directive.Duration(time.Minute)}},
			Cache:     &directive.Cache{Warm: []string{"/catalog/top"}},
			Scale:     &directive.Scale{Replicas: 9},
		},
	}}
	a, b := ep("10.0.0.1:9001", 60, 60, 40), ep("10.0.0.2:9001", 60, 40, 60)
	in := Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1, Observed: obs(a, b),
		Current: cur.Services["catalog"], CurrentCommittedAt: committed, CurrentVersion: 4}
	p := PlanService(in, model, Options{})
	// No-telemetry plan for a third service: nothing, and it is absent.
	none := PlanService(Input{Service: "search", Forecast: standardForecast(), RPSPerUnit: 1}, model, Options{})
	d, err := Directive(cur, []Plan{p, none})
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 0 || d.Change != 0 || !d.CommittedAt.IsZero() {
		t.Errorf("coordinator fields kept: %+v", d)
	}
	if !directive.SectionEqual(d.Services["cart"], cur.Services["cart"]) || d.Services["search"] != nil {
		t.Errorf("services %v", d.ServiceNames())
	}
	c := d.Services["catalog"]
	if c.Cache == nil || c.Cache.Warm[0] != "/catalog/top" || c.Scale.Replicas != 7 {
		t.Errorf("catalog %s", js(c))
	}
	if len(c.SlowStart) != 1 || c.SlowStart[0].Start == nil || !c.SlowStart[0].Start.Equal(committed) {
		t.Errorf("ramp %s", js(c.SlowStart))
	}
	if cur.Services["catalog"].SlowStart[0].Start != nil {
		t.Error("the current directive was modified")
	}
	// A plan that does not validate is refused with the field path.
	bad := p
	bad.Service = "Bad Name"
	if _, err := Directive(cur, []Plan{bad}); err == nil || !strings.Contains(err.Error(), "services[Bad Name]") {
		t.Errorf("invalid plan: %v", err)
	}
	// Only admission known (no endpoint throughput): scale kept from the
	// current version and said so.
	in.Observed = Observed{Service: []Minute{{T: t0, RPS: math.NaN(), P50ms: 40}}}
	p = PlanService(in, model, Options{})
	if strings.Join(p.Planned, ",") != "admission" || p.Section.Scale.Replicas != 9 ||
		!strings.Contains(p.Section.Why.ExpectedEffect, "scale kept from version 4") {
		t.Errorf("admission only: %v %s", p.Planned, js(p.Section))
	}
}

func TestQuantileAndThinning(t *testing.T) {
	xs := make([]float64, 20)
	for i := range xs {
		xs[19-i] = float64(i + 1)
	}
	if q := quantile(xs, 0.95); math.Abs(q-19.05) > 1e-9 {
		t.Errorf("p95 of 1..20 = %v, want 19.05 (type 7)", q)
	}
	if q := quantile([]float64{7}, 0.95); q != 7 {
		t.Errorf("p95 of one value %v", q)
	}
	path := make([]pathPoint, 500)
	for i := range path {
		path[i] = pathPoint{at: t0.Add(time.Duration(i) * time.Minute), rps: float64(i % 97), high: float64(i % 89)}
	}
	idx := thinIndexes(path, 120)
	has := map[int]bool{}
	for _, i := range idx {
		has[i] = true
	}
	if len(idx) > 120 || !has[0] || !has[499] || !has[96] || !has[88] {
		t.Errorf("%d indexes; first %v last %v peaks %v %v", len(idx), has[0], has[499], has[96], has[88])
	}
	for _, s := range []string{"10.0.0.1:9001", "host:1"} {
		if !hostPort(s) {
			t.Errorf("%s: not host:port?", s)
		}
	}
	for _, s := range []string{"/api", "host", ":80", "h:0", "h:x", "a b:1"} {
		if hostPort(s) {
			t.Errorf("%s: host:port?", s)
		}
	}
}

func jsonEq(a, b any) bool { return js(a) == js(b) }

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withoutReasons copies a section with the per-field reasons removed.
func withoutReasons(s *directive.Service) *directive.Service {
	c := cloneSection(s)
	c.WeightsWhy = nil
	if c.Admission != nil {
		c.Admission.Why = nil
	}
	if c.Scale != nil {
		c.Scale.Why = nil
	}
	if c.Cache != nil {
		c.Cache.Why = nil
	}
	return c
}

// With the predictive scaler's decision the scale recommendation is its
// floor, with its lapse time and reason; admission is planned for one
// proxy's share; weights follow learned capacity when given.
func TestPlanServiceWithScalerAndProxies(t *testing.T) {
	a, b := ep("10.0.0.1:9001", 60, 60, 40), ep("10.0.0.2:9001", 60, 40, 60)
	ready, until, needed := t0.Add(20*time.Minute), t0.Add(90*time.Minute), t0.Add(30*time.Minute)
	d := &scaler.Decision{Service: "catalog", Floor: 30, Need: 30, Driver: "event", LoadRPS: 1800, PerReplicaRPS: 100,
		NeededAt: needed, ReadyBy: ready, Until: until, Why: "floor 30 replicas for announced flash-sale",
		Event: &scaler.Event{Category: "flash-sale", Start: needed}}
	in := Input{Service: "catalog", Forecast: standardForecast(), RPSPerUnit: 1, Observed: obs(a, b), Proxies: 2, Scale: d,
		EndpointCapacity: map[string]float64{"10.0.0.1:9001": 300, "10.0.0.2:9001": 100}}
	p := PlanService(in, model, Options{MinLimitFloor: 5})
	s := p.Section
	if s == nil {
		t.Fatalf("no section; notes %v", p.Notes)
	}
	sc := s.Scale
	if sc == nil || sc.Replicas != 30 || sc.By == nil || !sc.By.Equal(ready) || sc.Until == nil || !sc.Until.Equal(until) {
		t.Fatalf("scale %s", js(sc))
	}
	if r := sc.Why; r == nil || r.Driver != "event" || r.Event != "flash-sale 2026-11-27T10:30:00Z" || r.PerReplicaRPS != 100 || r.LoadRPS != 1800 ||
		r.At == nil || !r.At.Equal(needed) {
		t.Errorf("scale reason %s", js(sc.Why))
	}
	// Seed ⌈260/2 × 0.048 × 1/0.7⌉ = ⌈8.91⌉ = 9.
	if s.Admission == nil || s.Admission.Seed != 9 || !strings.Contains(s.Admission.Why.Text, "/ 2 proxies") {
		t.Errorf("admission %s", js(s.Admission))
	}
	// Learned capacity 300 and 100, mean 200: weights 1.5 and 0.5.
	if s.Weights["10.0.0.1:9001"] != 1.5 || s.Weights["10.0.0.2:9001"] != 0.5 || !strings.Contains(s.WeightsWhy.Text, "learned capacity") {
		t.Errorf("weights %v (%s)", s.Weights, js(s.WeightsWhy))
	}
	// A decision without a floor removes the recommendation and says why.
	in.Scale = &scaler.Decision{Why: "no floor: nothing needs capacity"}
	in.Current = s
	p = PlanService(in, model, Options{})
	if p.Section.Scale != nil || !strings.Contains(strings.Join(p.Notes, " "), "nothing needs capacity") {
		t.Errorf("scale %s notes %v", js(p.Section.Scale), p.Notes)
	}
}
