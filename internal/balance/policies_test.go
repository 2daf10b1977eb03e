package balance

import (
	"fmt"
	"math"
	"testing"
	"time"
)

var tBase = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// simulate drives a picker with a simple model: arrivals every interval,
// each endpoint answering after latency(endpoint, now); requests complete in
// time order. It returns picks per endpoint ID.
func simulate(p Picker, eps []Weighted, start time.Time, dur, interval time.Duration, latency func(id string, now time.Time) time.Duration) map[string]int {
	type pending struct {
		at time.Time
		pk Pick
		l  time.Duration
	}
	var inflight []pending
	counts := map[string]int{}
	r := newSeeded(11)
	for now := start; now.Before(start.Add(dur)); now = now.Add(interval) {
		// Complete everything due.
		keep := inflight[:0]
		for _, x := range inflight {
			if !x.at.After(now) {
				p.Done(x.pk, &DoneInfo{Now: x.at, Latency: x.l, Status: 200})
			} else {
				keep = append(keep, x)
			}
		}
		inflight = keep
		pk, err := p.Pick(&PickInfo{Now: now, Rand: r})
		if err != nil {
			panic(err)
		}
		counts[pk.Endpoint.ID]++
		l := latency(pk.Endpoint.ID, now)
		inflight = append(inflight, pending{at: now.Add(l), pk: pk, l: l})
	}
	for _, x := range inflight {
		p.Done(x.pk, &DoneInfo{Now: x.at, Latency: x.l, Status: 200})
	}
	return counts
}

func TestPeakEWMAReactsToSlowdownWithinTau(t *testing.T) {
	eps := endpoints(1, 1, 1)
	f, _ := New("peak_ewma", nil)
	p := f().Update(eps)
	slowFrom := tBase.Add(20 * time.Second)
	lat := func(id string, now time.Time) time.Duration {
		if id == eps[0].Endpoint.ID && !now.Before(slowFrom) {
			return 200 * time.Millisecond // 20× slower
		}
		return 10 * time.Millisecond
	}
	// 100 req/s: warm up 20 s, then endpoint 0 slows down.
	before := simulate(p, eps, tBase, 20*time.Second, 10*time.Millisecond, lat)
	if s := float64(before[eps[0].Endpoint.ID]) / 2000; s < 0.25 || s > 0.42 {
		t.Fatalf("share before the slowdown %.2f, want about a third", s)
	}
	// Within τ (10 s) of the slowdown its share must have collapsed.
	after := simulate(p, eps, slowFrom, 10*time.Second, 10*time.Millisecond, lat)
	if s := float64(after[eps[0].Endpoint.ID]) / 1000; s > 0.10 {
		t.Fatalf("slow endpoint still gets %.2f of traffic in the τ after slowing down", s)
	}
}

func TestPeakEWMAPenalisesErrorsAndNewEndpoints(t *testing.T) {
	eps := endpoints(1, 1)
	f, _ := New("peak_ewma", nil)
	p := f().Update(eps).(*ewmaPicker)
	now := tBase
	// Both endpoints answer in 10 ms; then endpoint 0 fails fast (1 ms).
	for i, w := range eps {
		p.states[i].observe(now.UnixNano(), 10e6, p.tau, false, p.errPenalty)
		_ = w
	}
	for k := 0; k < 3; k++ {
		p.states[0].observe(now.UnixNano(), 1e6, p.tau, true, p.errPenalty)
	}
	if c0, c1 := p.load(0, now.UnixNano()), p.load(1, now.UnixNano()); c0 <= c1 {
		t.Fatalf("failing-fast endpoint load %.0f not above healthy %.0f", c0, c1)
	}
	// No RTT yet and a request pending: Finagle's penalty.
	fresh := endpoints(1, 1)
	q := f().Update(fresh).(*ewmaPicker)
	q.Take(0)
	if l := q.load(0, now.UnixNano()); l < penalty {
		t.Fatalf("new endpoint with a pending request has load %.0f, want the penalty", l)
	}
	if l := q.load(1, now.UnixNano()); l != 0 {
		t.Fatalf("new idle endpoint load %.0f, want 0 (so it gets a first request)", l)
	}
}

func TestPeakEWMADecayFormula(t *testing.T) {
	var st ewmaState
	tau := float64(10 * time.Second)
	st.observe(0+1, 100e6, tau, false, 4) // first sample sets the cost
	st.observe(1+int64(10*time.Second), 50e6, tau, false, 4)
	w := math.Exp(-1)
	want := 100e6*w + 50e6*(1-w)
	if got := math.Float64frombits(st.cost.Load()); math.Abs(got-want) > 1 {
		t.Fatalf("cost %.0f, want %.0f", got, want)
	}
	st.observe(2+int64(10*time.Second), 300e6, tau, false, 4) // peak: jumps
	if got := math.Float64frombits(st.cost.Load()); got != 300e6 {
		t.Fatalf("peak not taken: %.0f", got)
	}
	// Read-time decay after τ of silence.
	if got := st.decayed(2+int64(20*time.Second), tau); math.Abs(got-300e6*math.Exp(-1)) > 1 {
		t.Fatalf("decayed %.0f", got)
	}
}

func TestWeightedFollowsDirective(t *testing.T) {
	eps := endpoints(1, 1, 1)
	f, _ := New("weighted", nil)
	b := f()
	d := b.(Directed)
	lat := func(string, time.Time) time.Duration { return 20 * time.Millisecond }
	// Without a directive: like peak_ewma, about equal.
	p := b.Update(eps)
	c := simulate(p, eps, tBase, 20*time.Second, 10*time.Millisecond, lat)
	for _, w := range eps {
		if s := float64(c[w.Endpoint.ID]) / 2000; s < 0.25 || s > 0.42 {
			t.Fatalf("no directive: %s share %.2f", w.Endpoint.ID, s)
		}
	}
	// Directive 1:2:0 — the third gets nothing, the second clearly more.
	if err := d.SetDirective(&Directive{Version: "v1", Weights: map[string]float64{
		eps[0].Endpoint.ID: 1, eps[1].Endpoint.ID: 2, eps[2].Endpoint.ID: 0}}); err != nil {
		t.Fatal(err)
	}
	applied, moving := d.ScaleWeights(eps, tBase)
	if moving {
		t.Fatal("no ramp, yet moving")
	}
	p = b.Update(applied)
	c = simulate(p, eps, tBase.Add(time.Minute), 20*time.Second, 10*time.Millisecond, lat)
	s0, s1, s2 := float64(c[eps[0].Endpoint.ID])/2000, float64(c[eps[1].Endpoint.ID])/2000, float64(c[eps[2].Endpoint.ID])/2000
	if s2 != 0 || s1 < 1.4*s0 {
		t.Fatalf("directive 1:2:0 gave shares %.2f %.2f %.2f", s0, s1, s2)
	}
	// A ramp from 0 to 1 over 10 s is halfway at 5 s and done at 10 s.
	d.SetDirective(&Directive{Ramps: []Ramp{{Endpoint: eps[2].Endpoint.ID, From: 0, To: 1, Start: tBase, Duration: 10 * time.Second}}})
	for _, c := range []struct {
		at     time.Duration
		want   float64
		moving bool
	}{{0, 0, true}, {5 * time.Second, 0.5, true}, {10 * time.Second, 1, false}} {
		ws, moving := d.ScaleWeights(eps, tBase.Add(c.at))
		if math.Abs(ws[2].Weight-c.want) > 1e-9 || moving != c.moving {
			t.Errorf("ramp at %v: weight %.2f moving %v, want %.2f %v", c.at, ws[2].Weight, moving, c.want, c.moving)
		}
	}
	// Bad directives are refused and change nothing.
	if err := d.SetDirective(&Directive{Weights: map[string]float64{"x": -1}}); err == nil {
		t.Fatal("negative weight accepted")
	}
	// A directive that zeroes everyone keeps the health weights.
	d.SetDirective(&Directive{Weights: map[string]float64{eps[0].Endpoint.ID: 0, eps[1].Endpoint.ID: 0, eps[2].Endpoint.ID: 0}})
	if ws, _ := d.ScaleWeights(eps, tBase); ws[0].Weight != 1 {
		t.Fatal("all-zero directive starved the service")
	}
}

// pool builds a prequal picker over n endpoints with the given probes
// (rif, latency ms) per endpoint index.
func prequalWith(t *testing.T, n int, probes map[int][2]float64) (*pqPicker, []Weighted) {
	t.Helper()
	eps := endpoints(make([]float64, n)...)
	for i := range eps {
		eps[i].Weight = 1
	}
	b := NewPrequal(PrequalOptions{PoolSize: 16, QRIF: 0.84, MaxAge: time.Second, MaxReuse: 100, ProbeRate: 1, ProbePath: "/healthz", ErrorThreshold: 0.5}).(*prequal)
	p := b.Update(eps).(*pqPicker)
	for i, pr := range probes {
		b.ObserveProbe(eps[i].Endpoint, int64(pr[0]), time.Duration(pr[1]*float64(time.Millisecond)), tBase)
	}
	return p, eps
}

func TestPrequalHotColdRule(t *testing.T) {
	cases := []struct {
		name   string
		n      int
		probes map[int][2]float64 // endpoint -> {rif, latency ms}
		want   int
	}{
		{"cold with the lowest latency wins", 6, map[int][2]float64{0: {2, 30}, 1: {3, 10}, 2: {1, 20}, 3: {2, 25}, 4: {9, 1}, 5: {2, 40}}, 1},
		// 84th percentile of {2,3,1,2,9,2} is 3: endpoint 4 (rif 9, fastest) is hot and skipped.
		{"hot replica skipped despite low latency", 6, map[int][2]float64{0: {2, 30}, 1: {3, 50}, 2: {1, 20}, 3: {2, 25}, 4: {9, 1}, 5: {2, 40}}, 2},
		{"two probes are enough", 4, map[int][2]float64{2: {1, 50}, 3: {1, 5}}, 3},
		// All equal RIF: nobody is above the quantile, so all are cold: lowest latency.
		{"all cold ties on rif", 3, map[int][2]float64{0: {4, 9}, 1: {4, 3}, 2: {4, 7}}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, eps := prequalWith(t, c.n, c.probes)
			pk, err := p.Pick(&PickInfo{Now: tBase, Rand: newSeeded(1)})
			if err != nil {
				t.Fatal(err)
			}
			if pk.Endpoint != eps[c.want].Endpoint {
				t.Fatalf("picked %s, want %s", pk.Endpoint.ID, eps[c.want].Endpoint.ID)
			}
		})
	}
}

func TestPrequalAllHotPicksLowestRIF(t *testing.T) {
	// With q_rif low, every replica above the quantile is hot; then the
	// lowest RIF wins whatever the latency.
	eps := endpoints(1, 1, 1)
	b := NewPrequal(PrequalOptions{PoolSize: 16, QRIF: 0.01, MaxAge: time.Second, MaxReuse: 100, ProbeRate: 1, ProbePath: "/healthz", ErrorThreshold: 0.5}).(*prequal)
	p := b.Update(eps)
	b.ObserveProbe(eps[0].Endpoint, 7, time.Millisecond, tBase)
	b.ObserveProbe(eps[1].Endpoint, 5, 90*time.Millisecond, tBase)
	b.ObserveProbe(eps[2].Endpoint, 6, 2*time.Millisecond, tBase)
	// Quantile index 0 -> threshold 5: endpoints 0 and 2 are hot, 1 is cold.
	pk, _ := p.Pick(&PickInfo{Now: tBase, Rand: newSeeded(1)})
	if pk.Endpoint != eps[1].Endpoint {
		t.Fatalf("picked %s, want the only cold one", pk.Endpoint.ID)
	}
}

func TestPrequalFallbacksAndGuard(t *testing.T) {
	// Fewer than two probes: random over all.
	p, eps := prequalWith(t, 4, map[int][2]float64{1: {0, 1}})
	seen := map[*Endpoint]bool{}
	for i := 0; i < 200; i++ {
		pk, _ := p.Pick(&PickInfo{Now: tBase, Rand: newSeeded(uint64(i))})
		seen[pk.Endpoint] = true
		p.Done(pk, &DoneInfo{Now: tBase, Status: 200, Latency: time.Millisecond})
	}
	if len(seen) < 3 {
		t.Fatalf("random fallback used only %d endpoints", len(seen))
	}
	_ = eps
	// Expired probes are ignored.
	p2, eps2 := prequalWith(t, 3, map[int][2]float64{0: {0, 1}, 1: {5, 50}})
	pk, _ := p2.Pick(&PickInfo{Now: tBase.Add(2 * time.Second), Rand: newSeeded(3)})
	_ = pk
	if n := countProbes(p2.b); n != 0 {
		t.Fatalf("%d probes survive past max_age", n)
	}
	_ = eps2
	// Guard: an endpoint failing fast (errors, 1 ms) must not win.
	p3, eps3 := prequalWith(t, 3, map[int][2]float64{0: {0, 1}, 1: {1, 20}, 2: {1, 25}})
	for i := 0; i < 20; i++ {
		pk := p3.Take(0)
		p3.Done(pk, &DoneInfo{Now: tBase, Status: 503, Latency: time.Millisecond})
	}
	p3.b.ObserveProbe(eps3[0].Endpoint, 0, time.Millisecond, tBase)
	for i := 0; i < 20; i++ {
		pk, _ := p3.Pick(&PickInfo{Now: tBase, Rand: newSeeded(uint64(i))})
		if pk.Endpoint == eps3[0].Endpoint {
			t.Fatalf("failing endpoint picked at %d", i)
		}
		p3.Done(pk, &DoneInfo{Now: tBase, Status: 200, Latency: 20 * time.Millisecond})
	}
}

func countProbes(b *prequal) int {
	n := 0
	for i := 0; i < b.opts.PoolSize; i++ {
		if b.pool[i].Load() != nil {
			n++
		}
	}
	return n
}

func TestPrequalProbeDebtAndTargets(t *testing.T) {
	eps := endpoints(1, 1, 1, 1)
	b := NewPrequal(PrequalOptions{PoolSize: 16, QRIF: 0.84, MaxAge: time.Second, MaxReuse: 4, ProbeRate: 0.5, ProbePath: "/healthz", ErrorThreshold: 0.5}).(*prequal)
	p := b.Update(eps)
	for i := 0; i < 10; i++ {
		pk, _ := p.Pick(&PickInfo{Now: tBase, Rand: newSeeded(uint64(i))})
		p.Done(pk, &DoneInfo{Now: tBase, Status: 200, Latency: time.Millisecond})
	}
	if n := b.ProbesOwed(); n != 5 {
		t.Fatalf("owed %d probes after 10 queries at 0.5/query, want 5", n)
	}
	if n := b.ProbesOwed(); n != 0 {
		t.Fatalf("debt not reset: %d", n)
	}
	targets := b.ProbeTargets(newSeeded(1), 8, nil)
	if len(targets) != 8 {
		t.Fatalf("%d targets", len(targets))
	}
	if b.ProbePath() != "/healthz" {
		t.Fatal(b.ProbePath())
	}
}

func TestMaglevTableAndBoundedLoad(t *testing.T) {
	f, err := New("maglev", func(into any) error { into.(*MaglevOptions).TableSize = 65537; return nil })
	if err != nil {
		t.Fatal(err)
	}
	eps := endpoints(1, 1, 2)
	b := f()
	p := b.Update(eps).(*maglevPicker)
	owned := map[int32]int{}
	for _, s := range p.table {
		owned[s]++
	}
	// Weighted fill: the weight-2 endpoint owns about half the table.
	if share := float64(owned[2]) / 65537; math.Abs(share-0.5) > 0.01 {
		t.Fatalf("weight-2 endpoint owns %.3f of the table", share)
	}
	// Minimal disruption: removing endpoint 0 only remaps its own keys.
	less := f().Update(endpoints(1, 2)[0:0]) // placeholder to keep types
	_ = less
	p2 := f().Update([]Weighted{eps[1], eps[2]}).(*maglevPicker)
	moved := 0
	for k := 0; k < 5000; k++ {
		h := HashString(fmt.Sprint("k", k))
		a := p.table[h%65537]
		bb := p2.table[h%65537]
		ida, idb := eps[a].Endpoint.ID, []Weighted{eps[1], eps[2]}[bb].Endpoint.ID
		if ida != idb {
			if ida != eps[0].Endpoint.ID {
				moved++
			}
		}
	}
	if moved > 250 { // Maglev allows a little extra churn; the paper reports about 1-2%
		t.Fatalf("%d of 5000 keys not owned by the removed endpoint moved", moved)
	}
	// Bounded load.
	r := newSeeded(4)
	var held []Pick
	for i := 0; i < 600; i++ {
		pk, _ := p.Pick(&PickInfo{Rand: r, Hash: r.Uint64() % 7, HasHash: true}) // few hot keys
		held = append(held, pk)
		m := float64(len(held))
		for s, w := range eps {
			bound := int64(math.Ceil(1.25 * m * p.share[s]))
			if got := w.Endpoint.InFlight(); got > bound {
				t.Fatalf("after %d picks %s has %d in flight, bound %d", len(held), w.Endpoint.ID, got, bound)
			}
		}
	}
	for _, pk := range held {
		p.Done(pk, &DoneInfo{})
	}
	if _, err := New("maglev", func(into any) error { into.(*MaglevOptions).TableSize = 1000; return nil }); err == nil {
		t.Fatal("non-prime table size accepted")
	}
}

// With unequal weights, peak_ewma (and so weighted, under a directive)
// splits by weight at every load while the endpoints serve alike, from
// one request at a time to ~40 in flight, and still sheds a slowed
// endpoint whatever its weight.
func TestUnequalWeightsSplitByWeightAndGuardLatency(t *testing.T) {
	for _, iv := range []time.Duration{50 * time.Millisecond, 10 * time.Millisecond, 2 * time.Millisecond, 500 * time.Microsecond} {
		for _, slow := range []bool{false, true} {
			eps := endpoints(1, 2, 3, 4)
			p := mustBalancer(t, "peak_ewma", nil).Update(eps)
			lat := func(id string, now time.Time) time.Duration {
				if slow && id == eps[3].Endpoint.ID {
					return 100 * time.Millisecond // 5× slower than the rest
				}
				return 20 * time.Millisecond
			}
			c := simulate(p, eps, tBase, 20*time.Second, iv, lat)
			n := 0
			for _, v := range c {
				n += v
			}
			share := func(i int) float64 { return float64(c[eps[i].Endpoint.ID]) / float64(n) }
			if !slow {
				for i, w := range eps {
					if want := w.Weight / 10; math.Abs(share(i)-want) > 0.04 {
						t.Errorf("every %v, alike: %s share %.3f, want %.2f ± 0.04", iv, w.Endpoint.ID, share(i), want)
					}
				}
				continue
			}
			if share(3) > 0.08 {
				t.Errorf("every %v: the slowed endpoint (weight 4 of 10) kept %.3f of the traffic", iv, share(3))
			}
			if !(share(0) < share(1) && share(1) < share(2)) {
				t.Errorf("every %v: the healthy endpoints lost their order by weight: %.3f %.3f %.3f", iv, share(0), share(1), share(2))
			}
		}
	}
}
