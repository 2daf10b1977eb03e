package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

type recorder struct {
	got *[]int64
	id  int64
}

func (r recorder) handle(arg int64) { *r.got = append(*r.got, r.id*1000+arg) }

// TestEngineOrder: events run in time order, ties in scheduling order, and
// soon events before anything later.
func TestEngineOrder(t *testing.T) {
	var e engine
	var got []int64
	rng := rand.New(rand.NewPCG(1, 2))
	var want []int64
	type item struct{ at, seq int64 }
	var items []item
	for i := int64(0); i < 2000; i++ {
		at := rng.Int64N(100)
		e.at(at, recorder{&got, 0}, i)
		items = append(items, item{at, i})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].at < items[j].at })
	for _, it := range items {
		want = append(want, it.seq)
	}
	e.run(1000, nil)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("events out of (time, insertion) order")
	}
	got = got[:0]
	e.at(e.now+5, recorder{&got, 1}, 1)
	e.soon(recorder{&got, 2}, 1)
	e.soon(recorder{&got, 2}, 2)
	e.run(e.now+10, nil)
	if fmt.Sprint(got) != "[2001 2002 1001]" {
		t.Fatalf("soon events: %v", got)
	}
}

// TestHistQuantiles: within the bucket precision (1/128) of the exact
// order statistics.
func TestHistQuantiles(t *testing.T) {
	var h hist
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]int64, 100000)
	for i := range vals {
		vals[i] = int64(math.Exp(rng.NormFloat64()*1.5) * 1e7) // ~10ms log-normal
		h.record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := float64(vals[int(q*float64(len(vals)))-1])
		got := h.quantile(q)
		if math.Abs(got-exact)/exact > 0.01 {
			t.Errorf("q%.3f: %.0f, exact %.0f", q, got, exact)
		}
	}
	var sum float64
	for _, v := range vals {
		sum += float64(v)
	}
	if math.Abs(h.mean()-sum/float64(len(vals))) > 1 {
		t.Errorf("mean %.1f, want %.1f", h.mean(), sum/float64(len(vals)))
	}
	h.reset()
	if h.n != 0 || h.quantile(0.5) != 0 {
		t.Error("reset left data")
	}
	for _, v := range []int64{0, 1, 255, 256, 1 << 41, 1 << 50} {
		if i := histIndex(v); i < 0 || i >= histBuckets {
			t.Errorf("index of %d out of range: %d", v, i)
		}
	}
}

// TestArrivalsFollowTheRate: the count of arrivals in each window matches
// the rate curve's integral (Poisson: within 4 standard deviations), and a
// flash sale window multiplies it.
func TestArrivalsFollowTheRate(t *testing.T) {
	sc := mustParse(t, `
duration: 30m
clients: {mode: requests}
load:
  rate: 200
  flash_sales: [{after: 10m, x: 8, rise: 2m, for: 10m, fall: 1m}]
services: [{name: a}]
`)
	rc, err := buildRate(sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newArrivals(rc, 1, int64(sc.Duration), newStream(1, "arrivals", 0))
	counts := make([]float64, 30)
	for {
		at, ok := a.next()
		if !ok {
			break
		}
		counts[at/int64(time.Minute)]++
	}
	for m, n := range counts {
		want := rc.mean(int64(m)*int64(time.Minute), int64(m+1)*int64(time.Minute)) * 60
		if math.Abs(n-want) > 4*math.Sqrt(want)+1 {
			t.Errorf("minute %d: %.0f arrivals, want %.0f", m, n, want)
		}
	}
	if counts[15] < 7*counts[5] {
		t.Errorf("flash sale plateau %v vs base %v: not ×8", counts[15], counts[5])
	}
}

// TestRateCurves: diurnal peak where it should be, steps in capacity units.
func TestRateCurves(t *testing.T) {
	sc := mustParse(t, `
start: 2026-11-27T00:00:00Z
duration: 24h
clients: {mode: requests}
load: {curve: {base: 100, diurnal: 0.5, peak_hour: 20}}
services: [{name: a}]
`)
	rc, _ := buildRate(sc, nil)
	if got := rc.at(int64(20 * time.Hour)); math.Abs(got-150) > 0.01 {
		t.Errorf("rate at the 20:00 peak %.2f, want 150", got)
	}
	if got := rc.at(int64(8 * time.Hour)); math.Abs(got-50) > 0.01 {
		t.Errorf("rate at 08:00 %.2f, want 50", got)
	}
	sc = mustParse(t, `
duration: 10m
clients: {mode: requests}
load: {steps: {from: 0.5, to: 1.5, count: 3, each: 2m}}
services: [{name: a, replicas: 2, workers: 4, service_time: {mean: 10ms}}]
`)
	rc, _ = buildRate(sc, nil)
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{time.Minute, 400}, {3 * time.Minute, 800}, {5 * time.Minute, 1200}, {9 * time.Minute, 1200}} {
		if got := rc.at(int64(c.at)); math.Abs(got-c.want) > 0.01 {
			t.Errorf("steps at %v: %.1f, want %.1f", c.at, got, c.want)
		}
	}
}

// TestTraceGapsStayGaps: short gaps are interpolated, a long gap brings no
// arrivals and is flagged in the series.
func TestTraceGapsStayGaps(t *testing.T) {
	csv := "timestamp,requests\n" +
		"2026-01-01 00:00:00,60\n2026-01-01 00:01:00,60\n2026-01-01 00:02:00,\n2026-01-01 00:03:00,120\n" +
		"2026-01-01 00:10:00,60\n2026-01-01 00:11:00,60\n2026-01-01 00:12:00,60\n"
	sc := mustParse(t, `
duration: 12m
clients: {mode: requests}
load: {trace: {file: t.csv}}
services: [{name: a}]
`)
	if err := sc.LoadTrace(func(string) ([]byte, error) { return []byte(csv), nil }); err != nil {
		t.Fatal(err)
	}
	pr := run(t, sc, "round_robin", 1)
	gaps := 0
	for _, m := range pr.Minutes {
		if m.TraceGap {
			gaps++
			if m.Services[0].Requests != 0 {
				t.Errorf("minute %d is a gap but had %d requests", m.Minute, m.Services[0].Requests)
			}
		}
	}
	if gaps < 5 || gaps > 6 {
		t.Errorf("%d gap minutes, want the 6 missing minutes 00:04-00:09 (5 to 6 windows)", gaps)
	}
	if m := pr.Minutes[2]; m.TraceGap || m.OfferedRPS < 1 || m.OfferedRPS > 2 {
		t.Errorf("the one-row gap at 00:02 should be interpolated: %+v", m)
	}
	for _, bad := range []string{"", "timestamp,requests\n", "t,v\n1,2\n", "timestamp,requests\n2026-01-01 00:00,1\n2026-01-01 00:00,2\n", "timestamp,requests\n2026-01-01 00:00,-1\n2026-01-01 00:01,2\n"} {
		if _, err := parseTrace([]byte(bad), "bad.csv", "timestamp", "requests"); err == nil {
			t.Errorf("trace %q accepted", bad)
		} else if !strings.HasPrefix(err.Error(), "bad.csv") {
			t.Errorf("error %q does not name the file", err)
		}
	}
}

// TestProfile: a GC pause during a request delays it by the pause; a noisy
// neighbour window slows work in it by its factor.
func TestProfile(t *testing.T) {
	p := &profile{gcPause: int64(50 * time.Millisecond), gcEvery: 1e18,
		pauses: []span{{int64(100 * time.Millisecond), int64(150 * time.Millisecond)}}, rng: rand.New(rand.NewPCG(1, 1))}
	if got := p.finish(int64(90*time.Millisecond), float64(20*time.Millisecond), 0); got != int64(160*time.Millisecond) {
		t.Errorf("work across a pause ends at %v, want 160ms", time.Duration(got))
	}
	if got := p.finish(int64(120*time.Millisecond), float64(10*time.Millisecond), 0); got != int64(160*time.Millisecond) {
		t.Errorf("work started in a pause ends at %v, want 160ms", time.Duration(got))
	}
	q := &profile{noisy: true, period: int64(time.Second), dur: int64(500 * time.Millisecond), factor: 0.5}
	// From 400ms: 100ms at half speed (50ms of work), then full speed.
	if got := q.finish(int64(400*time.Millisecond), float64(100*time.Millisecond), 0); got != int64(550*time.Millisecond) {
		t.Errorf("work across a noisy window ends at %v, want 550ms", time.Duration(got))
	}
}

// TestAutoscalerEndToEnd: under a load needing ~3x the replicas the HPA
// scales out within a minute or so (sync 15s, pod start 20s); when the load
// goes, it scales in, but not before the 300s stabilisation window.
func TestAutoscalerEndToEnd(t *testing.T) {
	sc := mustParse(t, `
duration: 20m
clients: {mode: requests}
load:
  rate: 100
  campaigns: [{after: 1m, x: 6, rise: 10s, for: 6m, fall: 10s}]
proxies: {retries: {attempts: 0}}
cluster: {pods_per_node: 4, node_provisioning: 2m}
services:
  - name: a
    replicas: 2
    service_time: {mean: 20ms, dist: exponential}
    autoscale: {max: 20, target_utilization: 0.5, pod_start: 20s}
    price_per_hour: 1
`)
	pr := run(t, sc, "least_request", 1)
	reps := func(m int) int { return pr.Minutes[m].Services[0].Replicas }
	var line []int
	for m := range pr.Minutes {
		line = append(line, reps(m))
	}
	t.Logf("ready replicas per minute: %v; replica-hours %.2f", line, pr.Totals.ReplicaHours)
	// 600 req/s × 20ms = 12 busy workers; at 50% of 8 workers each: 3 pods.
	// The first node (4 slots) holds 4 pods; more wait 2 minutes for a node.
	if reps(0) != 2 {
		t.Errorf("minute 0: %d replicas, want 2", reps(0))
	}
	peak := 0
	for m := 2; m <= 6; m++ {
		peak = max(peak, reps(m))
	}
	if peak < 3 || peak > 6 {
		t.Errorf("peak %d replicas, want about 3 (up to 6 with the overshoot of a burst)", peak)
	}
	// The load ends at minute 7; the stabilisation window holds the size
	// for 5 minutes from the last high recommendation.
	if reps(9) < peak-1 {
		t.Errorf("scaled in at minute 9 (%d replicas), inside the 300s window", reps(9))
	}
	if last := reps(len(pr.Minutes) - 1); last > 2 {
		t.Errorf("still %d replicas at the end, want 2", last)
	}
	if pr.Totals.ReplicaHours <= 20.0/60*2 || pr.Totals.Cost != pr.Totals.ReplicaHours {
		t.Errorf("replica-hours %.3f, cost %.3f", pr.Totals.ReplicaHours, pr.Totals.Cost)
	}
}

// TestDrainsClean: after the arrivals stop and everything in flight ends,
// every pick has had its Done, every admission its Release or Cancel, every
// worker and queue slot is free: the simulator keeps the decision code's
// contracts even through crashes, timeouts, retries and scaling.
func TestDrainsClean(t *testing.T) {
	sc := mustParse(t, shortFlashSale)
	sc.Proxies.Timeout = 400 * time.Millisecond // make timeouts happen
	pols := []string{"round_robin", "least_request", "peak_ewma", "prequal", "ring_hash", "weighted"}
	if raceEnabled || testing.Short() {
		pols = []string{"round_robin", "prequal", "ring_hash"}
	}
	for _, p := range pols {
		s, err := New(sc, Options{Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		pr := s.Run()
		s.eng.run(s.end+int64(time.Hour), nil)
		for _, px := range s.proxies {
			for _, ps := range px.svcs {
				for _, ep := range ps.eps {
					if ep != nil && ep.InFlight() != 0 {
						t.Errorf("%s: %s in flight %d after the drain", p, ep.ID, ep.InFlight())
					}
				}
				if ps.lim != nil && ps.lim.InFlight() != 0 {
					t.Errorf("%s: %s admission in flight %d", p, ps.svc.name, ps.lim.InFlight())
				}
				if ps.active != 0 || ps.retrying != 0 {
					t.Errorf("%s: %s active %d retrying %d", p, ps.svc.name, ps.active, ps.retrying)
				}
			}
		}
		for _, svc := range s.services {
			for _, r := range svc.reps {
				if r.held != 0 || r.qlen != 0 || r.cpu != 0 {
					t.Errorf("%s: %s holds %d, queues %d, cpu %d", p, r.name, r.held, r.qlen, r.cpu)
				}
			}
		}
		if pr.Totals.Timeouts == 0 && p == "round_robin" {
			t.Errorf("%s: no timeouts: the test does not exercise them", p)
		}
	}
}

// TestCrashResetsAndRetries: a crashed replica's requests fail (reset),
// idempotent ones are retried elsewhere, new connections are refused until
// outlier ejection takes it out; it comes back cold.
func TestCrashResetsAndRetries(t *testing.T) {
	sc := mustParse(t, `
duration: 6m
window: 10s
clients: {mode: requests}
load: {rate: 600}
failures: [{service: a, replicas: [0], at: 1m, for: 1m}]
services:
  - name: a
    replicas: 3
    cold_start: {factor: 5, over: 3m}
`)
	pr := run(t, sc, "round_robin", 2)
	if pr.Totals.Retries == 0 {
		t.Error("no retries after the crash")
	}
	if pr.Totals.Errors > pr.Totals.Retries {
		t.Errorf("%d errors for %d retries: retries should absorb most crash failures", pr.Totals.Errors, pr.Totals.Retries)
	}
	// The replica is back at 2m but ejected (twice: 30s, then 60s) until
	// about 2m30; then it serves cold, 5x slower at first.
	var worst float64
	for _, m := range pr.Minutes[15:21] {
		worst = math.Max(worst, m.Services[0].P99Ms)
	}
	warm := pr.Minutes[len(pr.Minutes)-1].Services[0].P99Ms
	if !(worst > 1.5*warm) {
		t.Errorf("p99 after the return %.1f ms vs warm %.1f ms: no cold start visible", worst, warm)
	}
	t.Logf("retries %d, errors %d, p99 after the return %.1f ms, warm %.1f ms", pr.Totals.Retries, pr.Totals.Errors, worst, warm)
}

// TestSessionsFunnel: reach fractions hold, checkouts are counted, and a
// broken checkout service turns sessions into drop-offs.
func TestSessionsFunnel(t *testing.T) {
	sc := mustParse(t, shortFlashSale)
	sc.Load.FlashSales = nil
	sc.Failures = nil
	pr := run(t, sc, "least_request", 5)
	frac := float64(pr.Totals.Checkouts) / float64(pr.Totals.Sessions)
	if math.Abs(frac-0.1) > 0.01 {
		t.Errorf("checkouts per session %.3f, want the funnel's 0.1", frac)
	}
	if pr.Totals.DropOffs > pr.Totals.Sessions/100 {
		t.Errorf("%d drop-offs of %d sessions on a healthy shop", pr.Totals.DropOffs, pr.Totals.Sessions)
	}
	// Cart has cookie affinity: after the first cart request of a
	// session, its others go to the same replica through Picker.Take.
	s, err := New(sc, Options{Policy: "least_request", Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	s.Run()
	if s.pinned < uint64(pr.Totals.Sessions)/5 {
		t.Errorf("%d pinned picks for %d sessions (30%% reach the cart, each sends 2 cart requests, checkouts 1 more)", s.pinned, pr.Totals.Sessions)
	}
	// Crash every payment replica for good: every checkout fails.
	sc.Failures = []Failure{{Service: "payment", Share: 1, At: 0}}
	pr = run(t, sc, "least_request", 5)
	if pr.Totals.Checkouts != 0 || pr.Totals.DropOffs == 0 || pr.Totals.ClientRetries == 0 {
		t.Errorf("payment down: %d checkouts, %d drop-offs, %d client retries", pr.Totals.Checkouts, pr.Totals.DropOffs, pr.Totals.ClientRetries)
	}
}

type floorFrom struct {
	at time.Time
	n  int
}

func (f floorFrom) MinReplicas(service string, now time.Time, current int) (int, bool) {
	return f.n, !now.Before(f.at)
}

// TestScaleRecommendations: a scale plan (YAML) and a Recommender (the
// hook forecast directives will use) raise the autoscaler's floor ahead of
// the load; the HPA does not scale back below it.
func TestScaleRecommendations(t *testing.T) {
	sc := mustParse(t, `
duration: 6m
clients: {mode: requests}
load: {rate: 50}
scale_plan: [{service: a, at: 1m, min_replicas: 4}]
services: [{name: a, replicas: 2, autoscale: {max: 10, pod_start: 10s}}]
`)
	rec := floorFrom{at: sc.Start.Add(3 * time.Minute), n: 6}
	pr, err := Run(sc, Options{Policy: "round_robin", Recommender: rec})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range pr.Minutes {
		got = append(got, m.Services[0].Replicas)
	}
	if fmt.Sprint(got) != "[2 4 4 6 6 6]" {
		t.Errorf("ready replicas per minute %v, want [2 4 4 6 6 6]", got)
	}
}
