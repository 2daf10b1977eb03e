package balance

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// prequalBenchSizes are the endpoint counts a pick must not depend on: it
// selects from the bounded probe pool, so 1,000 endpoints must cost what 3
// do (issue #16: under 100 ns and no allocation at 1,000).
var prequalBenchSizes = []int{3, 10, 100, 1000}

// prequalQuery is one service's prequal in its steady state, driven the way
// the proxy drives it: each query picks, its response comes back with a
// load report (Done), and one probe answer arrives per query (probe_rate
// 1), so the pool stays as full as it would in production.
type prequalQuery struct {
	b     *prequal
	p     *pqPicker // the picker queries use
	eps   []Weighted
	info  PickInfo
	done  DoneInfo
	probe *seeded // chooses the endpoints probes hit, as ProbeTargets does
	i     int
}

// newPrequalQuery builds prequal with default options over n endpoints of
// unequal weights (so the random fallback goes through the alias table)
// and warms it up until the pool is in its steady state. With stale,
// queries use a picker that a later Update (a slow-start ramp step, a
// health change) has already replaced: a pick in flight keeps the picker
// it loaded, and must not pay for it.
func newPrequalQuery(tb testing.TB, n int, stale bool, seed uint64) *prequalQuery {
	tb.Helper()
	o := PrequalOptions{}
	if err := o.Validate(); err != nil {
		tb.Fatal(err)
	}
	ws := make([]float64, n)
	for i := range ws {
		ws[i] = float64(1 + i%3)
	}
	eps := endpoints(ws...)
	b := NewPrequal(o).(*prequal)
	p := b.Update(eps).(*pqPicker)
	if stale {
		// The same endpoints with other weights: every probe now belongs
		// to an endpoint the newest picker placed, not this one.
		next := make([]Weighted, n)
		copy(next, eps)
		for i := range next {
			next[i].Weight = float64(1 + i%5)
		}
		b.Update(next)
	}
	q := &prequalQuery{b: b, p: p, eps: eps, probe: newSeeded(seed + 1000)}
	q.info = PickInfo{Now: tBase, Rand: newSeeded(seed)}
	q.done = DoneInfo{Status: 200, Now: tBase, Load: LoadReport{Valid: true}}
	for range 4 * o.PoolSize {
		q.answerProbe()
	}
	for range 1000 {
		q.finish(q.pick(tb))
		q.answerProbe()
	}
	return q
}

func (q *prequalQuery) pick(tb testing.TB) Pick {
	pk, err := q.p.Pick(&q.info)
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

// finish completes a query with a load report. Each endpoint has its own
// typical latency (1 to 2 ms) with some jitter, so latency estimates
// rarely tie, as in production, and RIFs are small and vary over time: the
// best probe changes from query to query, and probes retire after
// max_reuse uses or leave when hot.
func (q *prequalQuery) finish(pk Pick) {
	q.i++
	q.done.Latency = time.Millisecond + time.Duration(pk.Slot*7919%1000)*time.Microsecond + time.Duration(q.i%97)*time.Microsecond
	q.done.Load.RIF = int64((pk.Slot + q.i) % 5)
	q.p.Done(pk, &q.done)
}

// answerProbe records a probe answer from a random endpoint.
func (q *prequalQuery) answerProbe() {
	e := q.eps[uniform(uint32(q.probe.Uint64()>>32), len(q.eps))].Endpoint
	q.b.ObserveProbe(e, int64(q.i%7), 0, tBase)
}

// BenchmarkPrequalQuery measures prequal per query at 3 to 1,000
// endpoints, in the steady state the proxy keeps, where the pool is as full
// as production keeps it (at 1,000 endpoints, 12 to 16 of the 16 probes;
// see TestPrequalBenchPoolIsFull): each op is a Pick, its Done with the
// load report the response piggybacks, and the one probe answer the query
// paid for (probe_rate 1). Without the probe answers the pool would shrink
// to the two probes the worst-probe drop keeps, which is the state
// BenchmarkPick/prequal measures. BenchmarkPrequalProbeAnswer measures the
// probe answer alone: the difference is the request path's share (Pick
// and Done).
//
// "stale" picks on a picker that a later Update replaced, as picks in
// flight do during slow start: that cost O(endpoints) per probe before
// issue #16. cpu-ns/op is the thread's CPU time per op, which other
// processes on a shared machine do not inflate.
func BenchmarkPrequalQuery(b *testing.B) {
	for _, stale := range []bool{false, true} {
		for _, n := range prequalBenchSizes {
			name := fmt.Sprint(n)
			if stale {
				name = fmt.Sprintf("stale/%d", n)
			}
			b.Run(name, func(b *testing.B) {
				q := newPrequalQuery(b, n, stale, 1)
				b.ReportAllocs()
				m := startCPU(b)
				for i := 0; i < b.N; i++ {
					q.finish(q.pick(b))
					q.answerProbe()
				}
				m.stop(b)
			})
		}
	}
}

// BenchmarkPrequalProbeAnswer measures one probe answer (ObserveProbe) from
// a random endpoint, in the same steady state as BenchmarkPrequalQuery.
func BenchmarkPrequalProbeAnswer(b *testing.B) {
	for _, n := range prequalBenchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			q := newPrequalQuery(b, n, false, 1)
			b.ReportAllocs()
			m := startCPU(b)
			for i := 0; i < b.N; i++ {
				q.answerProbe()
			}
			m.stop(b)
		})
	}
}

// cpuMeter reports a benchmark loop's CPU time per op (cpu-ns/op) on
// Linux; see threadCPU.
type cpuMeter struct {
	t0 time.Duration
	ok bool
}

// startCPU locks the benchmark to its OS thread, so the thread's CPU time
// is the loop's, and resets the timer: call it right before the loop.
func startCPU(b *testing.B) cpuMeter {
	runtime.LockOSThread()
	b.ResetTimer()
	t, ok := threadCPU()
	return cpuMeter{t, ok}
}

// stop reports the CPU time since startCPU per op: call it right after the
// loop.
func (m cpuMeter) stop(b *testing.B) {
	t, ok := threadCPU()
	runtime.UnlockOSThread()
	if m.ok && ok && b.N > 0 {
		b.ReportMetric(float64(t-m.t0)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkPrequalQueryParallel runs whole queries on every P at once
// against one service: the pool's atomics are shared, so this shows what
// contention adds (picks take no lock).
func BenchmarkPrequalQueryParallel(b *testing.B) {
	for _, n := range prequalBenchSizes {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			shared := newPrequalQuery(b, n, false, 1)
			var seed atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				q := *shared // own Rand, PickInfo and DoneInfo; same balancer
				q.info.Rand = newSeeded(seed.Add(1))
				q.probe = newSeeded(seed.Add(1) + 1000)
				for pb.Next() {
					pk, err := q.p.Pick(&q.info)
					if err != nil {
						b.Error(err)
						return
					}
					q.finish(pk)
					q.answerProbe()
				}
			})
		})
	}
}

// TestPrequalPickDoesNotAllocate: a query (Pick, Done with a load report,
// the probe answer it paid for) allocates nothing, at any number of
// endpoints, on the newest picker or one an Update replaced, with or
// without exclusions, through the pool or the random fallback. Allocation
// counts, unlike timings, are deterministic, so this is the test that
// keeps issue #16's "0 allocs/op" true.
func TestPrequalPickDoesNotAllocate(t *testing.T) {
	for _, n := range prequalBenchSizes {
		for _, stale := range []bool{false, true} {
			for _, exclude := range []bool{false, true} {
				t.Run(fmt.Sprintf("%d/stale=%v/exclude=%v", n, stale, exclude), func(t *testing.T) {
					q := newPrequalQuery(t, n, stale, 1)
					if exclude {
						q.info.Exclude = []*Endpoint{q.eps[0].Endpoint}
					}
					if got := testing.AllocsPerRun(1000, func() {
						q.finish(q.pick(t))
						q.answerProbe()
					}); got != 0 {
						t.Fatalf("%v allocations per query, want 0", got)
					}
				})
			}
		}
	}
	t.Run("random fallback", func(t *testing.T) {
		b := NewPrequal(PrequalOptions{PoolSize: 16, ProbeRate: 1, QRIF: 0.84, MaxAge: time.Second, MaxReuse: 4, ProbePath: "/", ErrorThreshold: 0.5})
		eps := endpoints(1, 2, 3)
		p := b.Update(eps)
		info := &PickInfo{Now: tBase, Rand: newSeeded(1)}
		done := &DoneInfo{Now: tBase, Status: 200, Latency: time.Millisecond}
		if got := testing.AllocsPerRun(1000, func() {
			pk, err := p.Pick(info)
			if err != nil {
				t.Fatal(err)
			}
			p.Done(pk, done)
		}); got != 0 {
			t.Fatalf("%v allocations per random pick, want 0", got)
		}
	})
}

// TestPrequalBenchPoolIsFull: the steady state BenchmarkPrequalQuery
// measures has the pool about as full as the endpoint count allows, so
// its figures are those of a pick over the whole pool, not of a pool the
// drops have emptied.
func TestPrequalBenchPoolIsFull(t *testing.T) {
	for _, c := range []struct{ n, atLeast int }{{3, 2}, {100, 8}, {1000, 12}} {
		q := newPrequalQuery(t, c.n, false, 1)
		sum := 0
		const queries = 2000
		for range queries {
			q.finish(q.pick(t))
			q.answerProbe()
			for i := range q.b.opts.PoolSize {
				if q.b.pool[i].Load() != nil {
					sum++
				}
			}
		}
		if mean := float64(sum) / queries; mean < float64(c.atLeast) {
			t.Errorf("%d endpoints: %.1f probes in the pool on average, want at least %d", c.n, mean, c.atLeast)
		} else {
			t.Logf("%d endpoints: %.1f probes in the pool on average", c.n, mean)
		}
	}
}
