package sim

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/retry"
)

var retryServer500 = retry.StatusCondition(500)

// scripted is a controller that returns prepared directives at given
// minutes and records what it observed.
type scripted struct {
	plans    map[int]*directive.Directive // by minute index (1 = the end of the first window)
	observed []control.Minute
	minute   int
	version  uint64
}

func (c *scripted) Name() string { return "scripted" }
func (c *scripted) Observe(m control.Minute) {
	c.observed = append(c.observed, m)
	c.minute++
}
func (c *scripted) Decide(now time.Time) control.Plan {
	d := c.plans[c.minute]
	if d == nil {
		return control.Plan{}
	}
	c.version++
	d.Version = c.version
	return control.Plan{Directive: d, Expected: map[string]float64{"a": 42}}
}

const loopScenario = `
duration: 8m
clients: {mode: requests}
load: {rate: 200}
proxies: {count: 2, admission: {initial_limit: 20, max_limit: 500}}
history: {days: 0}
services:
  - {name: a, replicas: 2, workers: 8, autoscale: {max: 12, pod_start: 10s}}
`

func TestLoopAppliesDirectivesThroughSteer(t *testing.T) {
	sc := mustParse(t, loopScenario)
	until := sc.Start.Add(5 * time.Minute)
	ctrl := &scripted{plans: map[int]*directive.Directive{
		// minute 1: a floor of 6 until 5m, and an admission seed.
		1: {Schema: 1, Services: map[string]*directive.Service{"a": {
			Scale:     &directive.Scale{Replicas: 6, Until: &until},
			Admission: &directive.Admission{Seed: 300}}}},
		// minute 2: weights naming a replica that does not exist: every
		// proxy refuses the section (round_robin takes no weights
		// either), the floor stays.
		2: {Schema: 1, Services: map[string]*directive.Service{"a": {
			Scale:   &directive.Scale{Replicas: 6, Until: &until},
			Weights: map[string]float64{"a-99": 2}}}},
	}}
	s, err := New(sc, Options{Policy: "round_robin", Controller: ctrl, ApplyDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pr := s.Run()
	if pr.Control != "scripted" || pr.Directives != 2 || pr.NACKs != 2 {
		t.Errorf("control %q, %d directives, %d NACKs; want scripted, 2, 2 (one per proxy for the second)", pr.Control, pr.Directives, pr.NACKs)
	}
	if !strings.Contains(strings.Join(pr.ControlNotes, "\n"), "a-99") {
		t.Errorf("the NACK does not name the endpoint: %v", pr.ControlNotes)
	}
	// The floor reaches the autoscaler a second after the first minute;
	// pods start in 10s, so the second window ends with 6 ready. After
	// the floor lapses at 5m, the autoscaler's own calculation (light
	// load) scales back down after its 5-minute stabilisation... which
	// the 8-minute run does not reach; the floor column shows the lapse.
	var reps, floors []int
	for _, m := range pr.Minutes {
		reps = append(reps, m.Services[0].Replicas)
		floors = append(floors, m.Services[0].Floor)
	}
	if reps[0] != 2 || reps[1] != 6 {
		t.Errorf("ready replicas per minute %v, want 2 then 6", reps)
	}
	if want := "[0 6 6 6 0 0 0 0]"; fmt.Sprint(floors) != want {
		t.Errorf("floors %v, want %s (read at each minute's end; the floor lapses at 5m)", floors, want)
	}
	if pr.Minutes[1].Services[0].ExpectedRPS != 42 {
		t.Errorf("expected rps %v, want the controller's 42", pr.Minutes[1].Services[0].ExpectedRPS)
	}
	// The seed reached each proxy's limiter (clamped by nothing: 300 is
	// within [10, 500]); Gradient2 moves it afterwards, but it started
	// there: the first plan's section is what each proxy applied.
	for _, px := range s.proxies {
		if sec := px.svcs[0].section; sec == nil || sec.Admission == nil || sec.Admission.Seed != 300 {
			t.Errorf("proxy %d applied %+v, want the first directive's section (the second was refused)", px.idx, sec)
		}
	}
	// The controller saw every window with the cluster's state.
	if len(ctrl.observed) != 8 {
		t.Fatalf("%d minutes observed, want 8", len(ctrl.observed))
	}
	m := ctrl.observed[0].Services[0]
	if m.Service != "a" || math.Abs(m.RPS-200) > 20 || m.Ready != 2 || !(m.Util > 0) || m.ServedRPS <= 0 {
		t.Errorf("first minute observed %+v", m)
	}
	var startups int
	for _, o := range ctrl.observed {
		startups += len(o.Services[0].Startups)
	}
	if startups != 4 {
		t.Errorf("%d startups observed, want the 4 pods the floor added", startups)
	}
}

// With weights, the weighted policy follows the directive: its results
// differ from peak_ewma's, which it equals without one.
func TestWeightedFollowsDirectiveWeights(t *testing.T) {
	sc := mustParse(t, `
duration: 4m
clients: {mode: requests}
load: {rate: 300}
history: {days: 0}
services:
  - {name: a, replicas: 3, workers: 8}
`)
	run := func(policy string, w map[string]float64) *PolicyResult {
		ctrl := &scripted{plans: map[int]*directive.Directive{}}
		if w != nil {
			ctrl.plans[1] = &directive.Directive{Schema: 1, Services: map[string]*directive.Service{"a": {Weights: w}}}
		}
		s, err := New(sc, Options{Policy: policy, Controller: ctrl})
		if err != nil {
			t.Fatal(err)
		}
		return s.Run()
	}
	js := func(pr *PolicyResult) string {
		var b bytes.Buffer
		WriteJSON(&b, &Results{Policies: []*PolicyResult{{Totals: pr.Totals, Minutes: pr.Minutes}}})
		return b.String()
	}
	pe, wd := run("peak_ewma", nil), run("weighted", nil)
	if js(pe) != js(wd) {
		t.Error("weighted without a directive differs from peak_ewma")
	}
	ww := run("weighted", map[string]float64{"a-0": 0, "a-1": 1, "a-2": 1})
	if ww.NACKs != 0 {
		t.Fatalf("weights refused: %v", ww.ControlNotes)
	}
	// a-0 out of rotation from the second minute: its utilisation spread
	// shows it idle.
	if u := ww.Minutes[3].Services[0].UtilSpread; u < 0.1 {
		t.Errorf("utilisation spread %v with one replica weighted 0, want one idle replica", u)
	}
}

func TestReadiness(t *testing.T) {
	sc := mustParse(t, `
duration: 10m
start: 2026-11-27T10:00:00Z
clients: {mode: requests}
load: {rate: 10}
history: {days: 0}
services:
  - {name: a, replicas: 2, autoscale: {max: 20}}
`)
	s, err := New(sc, Options{Policy: "round_robin"})
	if err != nil {
		t.Fatal(err)
	}
	s.events = []CalendarEvent{{Category: "sale", Start: sc.Start.Add(5 * time.Minute), End: sc.Start.Add(8 * time.Minute), X: 2, effect: &Effect{X: 2}}}
	s.met.svcs[0].capSamples = []float64{100} // a replica serves 100 rps at full utilisation
	// Peak load: 10 rps (the curve is flat; readiness reads the rate
	// curve, built without the event here) → ⌈10/(100×0.66)⌉ = 1: any
	// minute with ≥ 1 replica is ready.
	mins := make([]Minute, 10)
	for i := range mins {
		mins[i].Services = []ServiceMinute{{Replicas: 2}}
	}
	ev := s.readiness(mins)
	if len(ev) != 1 || ev[0].Never || ev[0].LeadS != 300 {
		t.Fatalf("readiness %+v, want ready from the start, 300 s before", ev)
	}
	// Needing ⌈10/(5×0.66)⌉ = 4 (capacity 5 rps): ready at the end of
	// minute 2 (index 1), kept until the start at 5m: lead 5m − 2m = 180 s.
	s.met.svcs[0].capSamples = []float64{5}
	for i := range mins {
		n := 2
		if i >= 1 {
			n = 4
		}
		mins[i].Services[0].Replicas = n
	}
	if ev = s.readiness(mins); ev[0].LeadS != 180 || ev[0].Services[0].Needed != 4 {
		t.Errorf("readiness %+v, want lead 180 s, needed ⌈10/(5×0.66)⌉ = 4", ev)
	}
	// The proxies' caches answered 3 requests in 4 during the event
	// (minutes 5–7), and more before it, which does not count: the
	// replicas see 2.5 rps at the peak, ⌈2.5/(5×0.66)⌉ = 1 is needed, and
	// 2 replicas from the start are ready 300 s before.
	for i := range mins {
		mins[i].Services[0].Replicas = 2
		mins[i].Services[0].Requests = 600
		mins[i].Services[0].CacheHits = 590
		if i >= 5 && i < 8 {
			mins[i].Services[0].CacheHits = 450
		}
	}
	if ev = s.readiness(mins); ev[0].Never || ev[0].LeadS != 300 || ev[0].Services[0].Needed != 1 || ev[0].Services[0].OriginShare != 0.25 {
		t.Errorf("readiness %+v, want needed 1 at origin share 0.25, lead 300 s", ev[0].Services)
	}
	// Never enough: never.
	for i := range mins {
		mins[i].Services[0].Replicas = 1
		mins[i].Services[0].CacheHits = 0
	}
	if ev = s.readiness(mins); !ev[0].Never {
		t.Errorf("readiness %+v, want never", ev)
	}
}

func TestSharesAndHistory(t *testing.T) {
	sc := mustParse(t, `
duration: 1h
start: 2026-11-27T00:00:00Z
clients: {mode: requests, mix: [{service: a, weight: 3}, {service: b, weight: 1}]}
load: {rate: 100}
history: {days: 2}
services:
  - name: a
    classes: [{name: x, calls: [{service: b, p: 0.5}]}]
  - {name: b}
`)
	sh := sc.Shares()
	if math.Abs(sh["a"]-0.75) > 1e-9 || math.Abs(sh["b"]-(0.25+0.75*0.5)) > 1e-9 {
		t.Errorf("shares %v, want a 0.75, b 0.625", sh)
	}
	h := sc.HistorySeries(7)
	a := h["a"]
	if a == nil || a.Len() != 2*1440 || !a.End().Equal(sc.Start) {
		t.Fatalf("history %v", a)
	}
	var sum float64
	for _, v := range a.Values {
		sum += v
	}
	if mean := sum / float64(a.Len()); math.Abs(mean-75) > 1 {
		t.Errorf("history mean %.2f rps, want 75", mean)
	}
	if h2 := sc.HistorySeries(7); fmt.Sprint(h2["b"].Values[:50]) != fmt.Sprint(h["b"].Values[:50]) {
		t.Error("the same seed gave another history")
	}
}

// The closed loop with the real controllers is deterministic: the same
// seed gives the same bytes, the forecaster's training included.
func TestPredictiveLoopIsDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a forecaster")
	}
	sc := mustParse(t, `
duration: 40m
start: 2026-11-17T10:00:00Z
clients: {mode: requests}
load: {curve: {base: 150, diurnal: 0.5}}
history: {days: 3}
services:
  - {name: a, replicas: 2, workers: 4, autoscale: {max: 12, pod_start: 30s}}
`)
	run := func() string {
		res, err := RunMatrix(sc, []RunSpec{{"peak_ewma", "predictive"}, {"peak_ewma", "oracle"}}, 3, 2, Options{}, Controllers(context.Background(), nil))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		WriteJSON(&b, res)
		return b.String()
	}
	a, b := run(), run()
	if a != b {
		t.Error("two runs of the predictive loop differ")
	}
	if !strings.Contains(a, `"control": "predictive"`) || !strings.Contains(a, `"directives"`) {
		t.Error("the predictive run applied no directive")
	}
}

// The scenario's proxies section is the proxy configuration's own types:
// the same fields, defaults and retry rule.
func TestScenarioUsesTheProxyConfigTypes(t *testing.T) {
	sc := mustParse(t, `
duration: 1m
clients: {mode: requests}
load: {rate: 10}
history: {days: 0}
proxies:
  retries: {attempts: 3, on: [connect_failure, 5xx], max_body_bytes: 64KiB, min_retry_concurrency: 7}
  health: {outlier: {consecutive_5xx: 9}, slow_start: {window: 30s}}
  admission: {max_limit: 300}
services: [{name: a}]
`)
	r := sc.Proxies.Retries
	if *r.Attempts != 3 || fmt.Sprint(r.On) != "[connect_failure 5xx]" || r.MaxBodyBytes != 64<<10 || *r.MinRetryConcurrency != 7 || *r.BudgetPercent != 20 {
		t.Errorf("retries %+v", r)
	}
	hc := sc.Proxies.Health.PoolConfig()
	if hc.Consecutive5xx != 9 || hc.ConsecutiveGatewayFailure != 3 || hc.SlowStartWindow != 30*time.Second || hc.SlowStartMinPercent != 10 {
		t.Errorf("health pool config %+v", hc)
	}
	s, err := New(sc, Options{Policy: "round_robin"})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.retryPolicy; p.Attempts != 3 || p.MinConcurrency != 7 || !p.Wants(retryServer500, 1, true) {
		t.Errorf("retry policy %+v", p)
	}
	_, err = ParseScenario([]byte("duration: 1m\nservices: [{name: a}]\nproxies: {retries: {on: [sometimes]}}\n"), "x.yaml")
	if err == nil || !strings.Contains(err.Error(), `proxies.retries.on[0]`) {
		t.Errorf("bad condition: %v", err)
	}
}
