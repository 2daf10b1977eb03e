package balance

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// The probe pool of prequal: what enters it, what leaves it and when. Each
// test drives the pool with explicit times (ObserveProbe's now and
// PickInfo.Now) and then looks at which endpoints still hold a probe.

// pqProbe is one probe a test places: endpoint index, RIF, latency in ms
// and age (how long before the test's "now" it was taken).
type pqProbe struct {
	ep  int
	rif int64
	lat float64
	age time.Duration
}

// newPrequalPool builds a prequal balancer over n endpoints of weight 1 with
// the given options (defaults filled by Validate).
func newPrequalPool(t *testing.T, o PrequalOptions, n int) (*prequal, *pqPicker, []Weighted) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	eps := endpoints(make([]float64, n)...)
	for i := range eps {
		eps[i].Weight = 1
	}
	b := NewPrequal(o).(*prequal)
	return b, b.Update(eps).(*pqPicker), eps
}

// observe places probes in the order given, taken at now-age.
func (pr pqProbe) observe(b *prequal, eps []Weighted, now time.Time) {
	b.ObserveProbe(eps[pr.ep].Endpoint, pr.rif, time.Duration(pr.lat*float64(time.Millisecond)), now.Add(-pr.age))
}

// pooled returns the indexes of the endpoints holding a probe, sorted.
func pooled(b *prequal, eps []Weighted) []int {
	var in []int
	for i := 0; i < b.opts.PoolSize; i++ {
		pr := b.pool[i].Load()
		if pr == nil {
			continue
		}
		for j, w := range eps {
			if w.Endpoint == pr.ep {
				in = append(in, j)
			}
		}
	}
	slices.Sort(in)
	return in
}

// failing makes endpoint i's recent error share exceed the threshold (20
// failed attempts: EWMA 1-0.9^20 ≈ 0.88), without touching the pool.
func failing(p *pqPicker, i int) {
	for k := 0; k < 20; k++ {
		p.Done(p.Take(i), &DoneInfo{Now: tBase, Status: 503, Latency: time.Millisecond})
	}
}

func pickIndex(t *testing.T, p *pqPicker, eps []Weighted, now time.Time) int {
	t.Helper()
	pk, err := p.Pick(&PickInfo{Now: now, Rand: newSeeded(1)})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range eps {
		if w.Endpoint == pk.Endpoint {
			return i
		}
	}
	t.Fatalf("picked %s, not in the set", pk.Endpoint.ID)
	return -1
}

// TestPrequalPoolDropsWorstHotProbe: after a pick, the worst probe leaves
// the pool when it is hot or failing, but never one that is merely the
// slowest, never the one just chosen, and never below two probes.
func TestPrequalPoolDropsWorstHotProbe(t *testing.T) {
	cases := []struct {
		name    string
		failing []int
		probes  []pqProbe
		pick    int
		left    []int
	}{
		// Quantile 0.84 of {1,2,9} is 6.76: endpoint 2 is hot and worst.
		{"hot worst is dropped", nil,
			[]pqProbe{{0, 1, 10, 0}, {1, 2, 20, 0}, {2, 9, 1, 0}}, 0, []int{0, 1}},
		// Endpoint 0 fails: it is the worst whatever its RIF.
		{"failing worst is dropped", []int{0},
			[]pqProbe{{0, 0, 1, 0}, {1, 2, 10, 0}, {2, 3, 20, 0}}, 1, []int{1, 2}},
		// All RIFs equal: nobody is hot, the slowest (worst) stays.
		{"cold worst stays", nil,
			[]pqProbe{{0, 4, 9, 0}, {1, 4, 3, 0}, {2, 4, 7, 0}}, 1, []int{0, 1, 2}},
		// Endpoint 1 is hot (9 > 7.72) but only two probes are left.
		{"two probes are kept", nil,
			[]pqProbe{{0, 1, 10, 0}, {1, 9, 1, 0}}, 0, []int{0, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, p, eps := newPrequalPool(t, PrequalOptions{MaxReuse: 100}, 3)
			for _, i := range c.failing {
				failing(p, i)
			}
			for _, pr := range c.probes {
				pr.observe(b, eps, tBase)
			}
			if got := pickIndex(t, p, eps, tBase); got != c.pick {
				t.Fatalf("picked endpoint %d, want %d", got, c.pick)
			}
			if got := pooled(b, eps); !slices.Equal(got, c.left) {
				t.Fatalf("probes left for endpoints %v, want %v", got, c.left)
			}
		})
	}
}

// TestPrequalPoolRetiresProbeAfterMaxReuse: one probe steers at most
// max_reuse queries; then it leaves the pool and the next query goes to
// the next best replica. A fresh report for the endpoint starts a new
// count.
func TestPrequalPoolRetiresProbeAfterMaxReuse(t *testing.T) {
	for _, maxReuse := range []int{1, 3, 4} {
		t.Run(fmt.Sprintf("max_reuse=%d", maxReuse), func(t *testing.T) {
			b, p, eps := newPrequalPool(t, PrequalOptions{MaxReuse: maxReuse}, 4)
			// Endpoint 0 is the fastest and stays cold: each pick adds one
			// to its RIF, which stays below the others' 10 (the quantile),
			// so neither the hot rule nor the worst-probe drop interferes.
			probes := []pqProbe{{0, 0, 1, 0}, {1, 10, 10, 0}, {2, 10, 20, 0}, {3, 10, 30, 0}}
			for _, pr := range probes {
				pr.observe(b, eps, tBase)
			}
			for k := 1; k <= maxReuse; k++ {
				if got := pickIndex(t, p, eps, tBase); got != 0 {
					t.Fatalf("query %d went to endpoint %d, want 0", k, got)
				}
				in := slices.Contains(pooled(b, eps), 0)
				if want := k < maxReuse; in != want {
					t.Fatalf("after %d uses of max %d: probe in pool = %v, want %v", k, maxReuse, in, want)
				}
			}
			if got := pickIndex(t, p, eps, tBase); got != 1 {
				t.Fatalf("after the probe retired the query went to endpoint %d, want 1", got)
			}
			// A new report for endpoint 0 brings it back with a fresh count.
			probes[0].observe(b, eps, tBase)
			if got := pickIndex(t, p, eps, tBase); got != 0 {
				t.Fatalf("after a fresh probe the query went to endpoint %d, want 0", got)
			}
		})
	}
}

// TestPrequalPoolEvictsOldest: a new endpoint's probe takes an empty slot,
// else an expired one, else the oldest probe's slot; a refreshed probe keeps
// its slot and counts as new.
func TestPrequalPoolEvictsOldest(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name   string
		size   int
		probes []pqProbe // in order of arrival; age relative to the last
		left   []int
	}{
		{"room left: nothing evicted", 4,
			[]pqProbe{{0, 1, 1, 3 * ms}, {1, 1, 1, 2 * ms}, {2, 1, 1, 0}}, []int{0, 1, 2}},
		{"full: the oldest gives way", 2,
			[]pqProbe{{0, 1, 1, 2 * ms}, {1, 1, 1, ms}, {2, 1, 1, 0}}, []int{1, 2}},
		// Endpoint 0 holds slot 0 but was refreshed: endpoint 1, in slot
		// 1, is now the oldest.
		{"full: a refreshed probe is not the oldest", 2,
			[]pqProbe{{0, 1, 1, 3 * ms}, {1, 1, 1, 2 * ms}, {0, 1, 1, ms}, {2, 1, 1, 0}}, []int{0, 2}},
		{"full: the oldest of three gives way", 3,
			[]pqProbe{{1, 1, 1, 5 * ms}, {2, 1, 1, 4 * ms}, {0, 1, 1, 3 * ms}, {1, 1, 1, 2 * ms}, {3, 1, 1, 0}}, []int{0, 1, 3}},
		{"full: an expired probe gives way", 2,
			[]pqProbe{{0, 1, 1, 2 * time.Second}, {1, 1, 1, ms}, {2, 1, 1, 0}}, []int{1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _, eps := newPrequalPool(t, PrequalOptions{PoolSize: c.size, MaxAge: time.Second}, 4)
			for _, pr := range c.probes {
				pr.observe(b, eps, tBase)
			}
			if got := pooled(b, eps); !slices.Equal(got, c.left) {
				t.Fatalf("probes held by endpoints %v, want %v", got, c.left)
			}
		})
	}
}

// TestPrequalPoolAgesOutProbes: at pick time a probe older than max_age is
// neither used nor kept, however good it looks; one exactly max_age old is
// still used.
func TestPrequalPoolAgesOutProbes(t *testing.T) {
	cases := []struct {
		name   string
		probes []pqProbe // the old probe arrives last, so no insertion evicts it
		pick   int
		left   []int
	}{
		{"stale fastest probe ignored and dropped",
			[]pqProbe{{1, 0, 10, 0}, {2, 0, 20, 0}, {0, 0, 1, 1500 * time.Millisecond}}, 1, []int{1, 2}},
		{"probe exactly max_age old still used",
			[]pqProbe{{1, 0, 10, 0}, {2, 0, 20, 0}, {0, 0, 1, time.Second}}, 0, []int{0, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, p, eps := newPrequalPool(t, PrequalOptions{MaxAge: time.Second, MaxReuse: 100}, 3)
			for _, pr := range c.probes {
				pr.observe(b, eps, tBase)
			}
			if got := pickIndex(t, p, eps, tBase); got != c.pick {
				t.Fatalf("picked endpoint %d, want %d", got, c.pick)
			}
			if got := pooled(b, eps); !slices.Equal(got, c.left) {
				t.Fatalf("probes left for endpoints %v, want %v", got, c.left)
			}
		})
	}
}

// TestPrequalAllHotLowestRIFWins covers the branch of the hot-cold rule
// where no candidate is cold. The interpolated quantile is never below the
// lowest RIF, so the lowest-RIF replica is cold unless it is failing: a
// real all-hot pool needs failing replicas. Then healthy hot replicas come
// first, and among equals the lowest RIF wins whatever the latency.
func TestPrequalAllHotLowestRIFWins(t *testing.T) {
	cases := []struct {
		name    string
		qrif    float64
		failing []int
		probes  []pqProbe
		want    int
	}{
		{"all failing: lowest RIF, not lowest latency", 0.84, []int{0, 1, 2, 3},
			[]pqProbe{{0, 9, 1, 0}, {1, 3, 50, 0}, {2, 6, 5, 0}, {3, 4, 2, 0}}, 1},
		// Quantile 0.01 of {0,0,7,8} is 0: endpoints 2 and 3 are hot by
		// RIF, 0 and 1 by failing.
		{"healthy hot before failing, then lowest RIF", 0.01, []int{0, 1},
			[]pqProbe{{0, 0, 1, 0}, {1, 0, 1, 0}, {2, 8, 2, 0}, {3, 7, 40, 0}}, 3},
		{"healthy hot by the default quantile, the rest failing", 0.84, []int{0, 1, 3},
			[]pqProbe{{0, 0, 1, 0}, {1, 1, 1, 0}, {2, 6, 30, 0}, {3, 2, 1, 0}}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, p, eps := newPrequalPool(t, PrequalOptions{QRIF: c.qrif, MaxReuse: 100}, 4)
			for _, i := range c.failing {
				failing(p, i)
			}
			for _, pr := range c.probes {
				pr.observe(b, eps, tBase)
			}
			if got := pickIndex(t, p, eps, tBase); got != c.want {
				t.Fatalf("picked endpoint %d, want %d", got, c.want)
			}
		})
	}
}
