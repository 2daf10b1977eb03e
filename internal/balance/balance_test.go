package balance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// seeded is a deterministic Rand for tests.
type seeded struct{ r *rand.Rand }

func newSeeded(seed uint64) *seeded {
	return &seeded{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (s *seeded) Uint64() uint64 { return s.r.Uint64() }

func endpoints(weights ...float64) []Weighted {
	eps := make([]Weighted, len(weights))
	for i, w := range weights {
		eps[i] = Weighted{Endpoint: NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i+1)), Weight: w}
	}
	return eps
}

func mustBalancer(t testing.TB, name string, decode func(any) error) Balancer {
	t.Helper()
	f, err := New(name, decode)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return f()
}

// pickDone picks and immediately completes, returning the endpoint.
func pickDone(t testing.TB, p Picker, info *PickInfo) *Endpoint {
	pk, err := p.Pick(info)
	if err != nil {
		t.Fatalf("pick: %v", err)
	}
	p.Done(pk, &DoneInfo{Now: info.Now, Status: 200})
	return pk.Endpoint
}

func TestWeightsRespected(t *testing.T) {
	cases := []struct {
		policy  string
		weights []float64
	}{
		{"round_robin", []float64{1, 1, 1}},
		{"round_robin", []float64{5, 1, 1}},
		{"round_robin", []float64{1, 2, 3, 4}},
		{"round_robin", []float64{0.35, 1.7, 1}},
		{"round_robin", []float64{100, 1}},
		{"least_request", []float64{1, 1, 1}},
		{"least_request", []float64{5, 1, 1}},
		{"least_request", []float64{1, 2, 3, 4}},
		{"random", []float64{1, 2, 3, 4}},
		{"peak_ewma", []float64{5, 1, 1}}, // unequal weights: slow start
		{"peak_ewma", []float64{1, 2, 3, 4}},
		{"weighted", []float64{1, 2, 3, 4}}, // weights from a directive
		{"weighted", []float64{0.1, 1, 1, 1}},
	}
	const picks = 100000
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%v", c.policy, c.weights), func(t *testing.T) {
			eps := endpoints(c.weights...)
			b := mustBalancer(t, c.policy, nil)
			var p Picker
			if d, ok := b.(Directed); ok {
				// The directive gives the weights; the health weights
				// are equal.
				dir := &Directive{Version: "v1", Weights: map[string]float64{}}
				even := endpoints(make([]float64, len(eps))...)
				for i := range even {
					even[i].Weight = 1
					dir.Weights[even[i].Endpoint.ID] = c.weights[i]
				}
				if err := d.SetDirective(dir); err != nil {
					t.Fatal(err)
				}
				applied, _ := d.ScaleWeights(even, tBase)
				eps = even
				p = b.Update(applied)
				for i := range eps {
					eps[i].Weight = c.weights[i]
				}
			} else {
				p = b.Update(eps)
			}
			info := &PickInfo{Rand: newSeeded(1), Now: tBase}
			counts := map[*Endpoint]int{}
			for i := 0; i < picks; i++ {
				// One at a time, every endpoint answering in 5 ms: the
				// latency-aware policies see equal endpoints.
				info.Now = info.Now.Add(time.Millisecond)
				pk, err := p.Pick(info)
				if err != nil {
					t.Fatal(err)
				}
				p.Done(pk, &DoneInfo{Now: info.Now, Latency: 5 * time.Millisecond, Status: 200})
				counts[pk.Endpoint]++
			}
			var sum float64
			for _, w := range c.weights {
				sum += w
			}
			for _, w := range eps {
				want := w.Weight / sum
				got := float64(counts[w.Endpoint]) / picks
				// Deterministic schedules must be within 1% relative;
				// random sampling within 1% absolute share plus noise.
				tol := 0.01 * want
				if c.policy != "round_robin" {
					tol = 0.01
				}
				if math.Abs(got-want) > tol {
					t.Errorf("%s: share %.4f, want %.4f ± %.4f", w.Endpoint.ID, got, want, tol)
				}
			}
		})
	}
}

func TestRoundRobinIsSmooth(t *testing.T) {
	// NGINX's classic example: weights 5,1,1 give a a b a c a a, never five
	// a's in a row.
	eps := endpoints(5, 1, 1)
	sched := smoothSchedule(eps)
	got := ""
	for _, s := range sched {
		got += string(rune('a' + s))
	}
	if got != "aabacaa" {
		t.Fatalf("schedule %q, want %q", got, "aabacaa")
	}
	// Large pool path: no endpoint twice in a row when weights are close.
	big := make([]float64, 100)
	for i := range big {
		big[i] = float64(1 + i%2)
	}
	s2 := smoothSchedule(endpoints(big...))
	if len(s2) != 150 {
		t.Fatalf("period %d, want 150", len(s2))
	}
	for i := 1; i < len(s2); i++ {
		if s2[i] == s2[i-1] {
			t.Fatalf("endpoint %d picked twice in a row at %d", s2[i], i)
		}
	}
}

func TestExcludeMovesToAnotherEndpoint(t *testing.T) {
	for _, name := range []string{"round_robin", "least_request", "ring_hash"} {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(1, 1, 1)
			p := mustBalancer(t, name, nil).Update(eps)
			info := &PickInfo{Rand: newSeeded(2), Hash: 42, HasHash: true}
			for i := 0; i < 100; i++ {
				first := pickDone(t, p, info)
				info.Exclude = []*Endpoint{first}
				second := pickDone(t, p, info)
				if second == first {
					t.Fatalf("retry picked the excluded endpoint %s", first.ID)
				}
				info.Exclude = []*Endpoint{eps[0].Endpoint, eps[1].Endpoint, eps[2].Endpoint}
				if _, err := p.Pick(info); err != ErrNoEndpoint {
					t.Fatalf("all excluded: err %v, want ErrNoEndpoint", err)
				}
				info.Exclude = nil
			}
		})
	}
}

func TestEmptyPicker(t *testing.T) {
	for _, name := range Names() {
		p := mustBalancer(t, name, nil).Update(nil)
		if _, err := p.Pick(&PickInfo{Rand: newSeeded(1)}); err != ErrNoEndpoint {
			t.Errorf("%s: empty pick err %v, want ErrNoEndpoint", name, err)
		}
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	eps := endpoints(1, 1)
	p := mustBalancer(t, "least_request", nil).Update(eps)
	info := &PickInfo{Rand: newSeeded(3)}
	// Hold 5 requests on endpoint 0.
	for i := 0; i < 5; i++ {
		begin(eps[0].Endpoint)
	}
	counts := map[*Endpoint]int{}
	for i := 0; i < 10000; i++ {
		counts[pickDone(t, p, info)]++
	}
	if share := float64(counts[eps[0].Endpoint]) / 10000; share > 0.30 {
		t.Fatalf("busy endpoint got %.2f of picks, want about 0.25 (only when both samples hit it)", share)
	}
}

func TestLeastRequestOptions(t *testing.T) {
	bad := []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"choice_count": 1}, "choice_count: must be between 2 and 16"},
		{map[string]any{"active_request_bias": -1.0}, "active_request_bias: must be a finite number >= 0"},
	}
	for _, c := range bad {
		_, err := New("least_request", func(into any) error {
			o := into.(*LeastRequestOptions)
			if v, ok := c.opts["choice_count"]; ok {
				o.ChoiceCount = v.(int)
			}
			if v, ok := c.opts["active_request_bias"]; ok {
				f := v.(float64)
				o.ActiveRequestBias = &f
			}
			return nil
		})
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("opts %v: err %v, want %q", c.opts, err, c.want)
		}
	}
	if _, err := New("no_such_policy", nil); err == nil || !contains(err.Error(), "unknown policy") {
		t.Errorf("unknown policy: err %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestRingHashBoundedLoad(t *testing.T) {
	for _, eps0 := range []float64{0.1, 0.25, 1} {
		t.Run(fmt.Sprint(eps0), func(t *testing.T) {
			eps := endpoints(1, 1, 1, 1, 1)
			b := NewRingHash(RingHashOptions{Epsilon: eps0, VirtualNodes: 100})
			p := b.Update(eps)
			r := newSeeded(4)
			// Hold up to 1000 requests open with random keys; after every
			// pick no endpoint may exceed ceil((1+ε)·m/n).
			var held []Pick
			for i := 0; i < 1000; i++ {
				pk, err := p.Pick(&PickInfo{Rand: r, Hash: r.Uint64(), HasHash: true})
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, pk)
				m := float64(len(held))
				bound := int64(math.Ceil((1 + eps0) * m / float64(len(eps))))
				for _, w := range eps {
					if got := w.Endpoint.InFlight(); got > bound {
						t.Fatalf("after %d picks %s has %d in flight, bound %d", len(held), w.Endpoint.ID, got, bound)
					}
				}
				// Complete a random earlier request now and then.
				if i%3 == 2 {
					k := int(r.Uint64() % uint64(len(held)))
					p.Done(held[k], &DoneInfo{})
					held = append(held[:k], held[k+1:]...)
				}
			}
		})
	}
}

func TestRingHashAgreesAcrossReplicas(t *testing.T) {
	// Three proxies with their own Endpoint objects but the same IDs must map
	// every key to the same endpoint ID when idle.
	var pickers []Picker
	for i := 0; i < 3; i++ {
		pickers = append(pickers, NewRingHash(RingHashOptions{Epsilon: 0.25, VirtualNodes: 100}).Update(endpoints(1, 1, 2)))
	}
	counts := map[string]int{}
	for k := 0; k < 3000; k++ {
		h := HashString(fmt.Sprintf("session-%d", k))
		var ids []string
		for _, p := range pickers {
			ids = append(ids, pickDone(t, p, &PickInfo{Hash: h, HasHash: true}).ID)
		}
		if ids[0] != ids[1] || ids[1] != ids[2] {
			t.Fatalf("key %d maps to %v", k, ids)
		}
		counts[ids[0]]++
	}
	// The weight-2 endpoint should own about half of the keys.
	if share := float64(counts["10.0.0.3:80"]) / 3000; share < 0.4 || share > 0.6 {
		t.Fatalf("weight-2 endpoint owns %.2f of keys, want about 0.5", share)
	}
	// Removing one endpoint only moves the keys it owned (consistency).
	moved := 0
	full := NewRingHash(RingHashOptions{Epsilon: 0.25, VirtualNodes: 100}).Update(endpoints(1, 1, 1, 1))
	less := NewRingHash(RingHashOptions{Epsilon: 0.25, VirtualNodes: 100}).Update(endpoints(1, 1, 1))
	for k := 0; k < 3000; k++ {
		h := HashString(fmt.Sprintf("user-%d", k))
		a := pickDone(t, full, &PickInfo{Hash: h, HasHash: true}).ID
		b := pickDone(t, less, &PickInfo{Hash: h, HasHash: true}).ID
		if a != b {
			if a != "10.0.0.4:80" {
				t.Fatalf("key %d moved from %s to %s although only 10.0.0.4 was removed", k, a, b)
			}
			moved++
		}
	}
	if moved < 500 || moved > 1000 {
		t.Fatalf("%d keys moved, want about a quarter of 3000", moved)
	}
}

func TestHashStringStable(t *testing.T) {
	// Pinned values: changing the hash would remap every session of a running
	// fleet (and make mixed-version replicas disagree), so it must be a
	// deliberate act that updates these numbers.
	for key, want := range map[string]uint64{
		"session-1":   0xf267abb32d450b1f,
		"checkout:42": 0x222b816b7eb283d5,
	} {
		if got := HashString(key); got != want {
			t.Errorf("HashString(%q) = %#x, want %#x", key, got, want)
		}
		if got := HashBytes([]byte(key)); got != want {
			t.Errorf("HashBytes(%q) = %#x, want %#x", key, got, want)
		}
	}
}

func TestConcurrentPickDoneKeepsCounts(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			eps := endpoints(1, 2, 3, 4)
			bal := mustBalancer(t, name, nil)
			var p Picker = bal.Update(eps)
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(seed uint64) {
					defer wg.Done()
					r := newSeeded(seed)
					for i := 0; i < 2000; i++ {
						info := &PickInfo{Rand: r, Now: time.Unix(0, int64(i)), Hash: r.Uint64(), HasHash: i%2 == 0}
						pk, err := p.Pick(info)
						if err != nil {
							t.Error(err)
							return
						}
						p.Done(pk, &DoneInfo{Latency: time.Millisecond, Status: 200})
					}
				}(uint64(g))
			}
			wg.Wait()
			for _, w := range eps {
				if n := w.Endpoint.InFlight(); n != 0 {
					t.Fatalf("%s in flight %d after all done", w.Endpoint.ID, n)
				}
			}
		})
	}
}

func TestAliasTableDistribution(t *testing.T) {
	eps := endpoints(1, 0, 3, 6)
	at := newAlias(eps)
	r := newSeeded(9)
	counts := make([]int, len(eps))
	const n = 200000
	for i := 0; i < n; i++ {
		counts[at.sample(r.Uint64())]++
	}
	want := []float64{0.1, 0, 0.3, 0.6}
	for i, w := range want {
		if got := float64(counts[i]) / n; math.Abs(got-w) > 0.005 {
			t.Errorf("index %d share %.4f, want %.2f", i, got, w)
		}
	}
}

// BenchmarkPick measures a Pick and its Done, per policy, at 3 to 1,000
// endpoints. cpu-ns/op is the thread's CPU time per op (Linux), which other
// processes on a shared machine do not inflate.
func BenchmarkPick(b *testing.B) {
	for _, name := range Names() {
		for _, n := range []int{3, 10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				ws := make([]float64, n)
				for i := range ws {
					ws[i] = float64(1 + i%3)
				}
				p := mustBalancer(b, name, nil).Update(endpoints(ws...))
				info := &PickInfo{Rand: newSeeded(1), HasHash: true, Now: tBase}
				// Responses carry load reports, so prequal's pool fills
				// as it would in production.
				done := &DoneInfo{Status: 200, Latency: time.Millisecond, Now: tBase, Load: LoadReport{Valid: true, RIF: 3}}
				b.ReportAllocs()
				m := startCPU(b)
				for i := 0; i < b.N; i++ {
					info.Hash = uint64(i) * 0x9e3779b97f4a7c15
					pk, err := p.Pick(info)
					if err != nil {
						b.Fatal(err)
					}
					p.Done(pk, done)
				}
				m.stop(b)
			})
		}
	}
}
