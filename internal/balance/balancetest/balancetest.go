// Package balancetest is the conformance suite every balancing policy must
// pass: the Picker contract of package balance (no endpoint outside the set,
// exclusions honoured, in-flight accounting exact under concurrency, Take,
// empty sets) and the weights a policy promises to respect.
package balancetest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

// Seeded is a deterministic balance.Rand.
type Seeded struct{ r *rand.Rand }

// NewSeeded returns a PCG-backed Rand.
func NewSeeded(seed uint64) *Seeded {
	return &Seeded{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Uint64 implements balance.Rand.
func (s *Seeded) Uint64() uint64 { return s.r.Uint64() }

// Endpoints makes endpoints with the given weights, IDs 10.0.0.N:80.
func Endpoints(weights ...float64) []balance.Weighted {
	eps := make([]balance.Weighted, len(weights))
	for i, w := range weights {
		eps[i] = balance.Weighted{Endpoint: balance.NewEndpoint(fmt.Sprintf("10.0.0.%d:80", i+1)), Weight: w}
	}
	return eps
}

// Traits says what a policy promises beyond the base contract.
type Traits struct {
	// Proportional: with no load feedback differences, shares follow the
	// weights (within 2% absolute over 20k picks).
	Proportional bool
}

type pickerBox struct{ balance.Picker }

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// Run runs the suite for the named policy (default options).
func Run(t *testing.T, name string, tr Traits) {
	newBal := func(t *testing.T) balance.Balancer {
		f, err := balance.New(name, nil)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		return f()
	}
	t.Run("EmptySetHasNoPick", func(t *testing.T) {
		p := newBal(t).Update(nil)
		if _, err := p.Pick(&balance.PickInfo{Now: t0, Rand: NewSeeded(1)}); err != balance.ErrNoEndpoint {
			t.Fatalf("err %v, want ErrNoEndpoint", err)
		}
	})
	t.Run("PicksOnlyFromTheSetAndSlotsMatch", func(t *testing.T) {
		eps := Endpoints(1, 2, 3, 4, 5)
		p := newBal(t).Update(eps)
		r := NewSeeded(2)
		for i := 0; i < 2000; i++ {
			info := &balance.PickInfo{Now: t0.Add(time.Duration(i) * time.Millisecond), Rand: r, Hash: r.Uint64(), HasHash: i%3 == 0}
			pk, err := p.Pick(info)
			if err != nil {
				t.Fatal(err)
			}
			if pk.Slot < 0 || pk.Slot >= len(eps) || eps[pk.Slot].Endpoint != pk.Endpoint {
				t.Fatalf("pick %d: slot %d does not hold %s", i, pk.Slot, pk.Endpoint.ID)
			}
			p.Done(pk, &balance.DoneInfo{Now: info.Now, Latency: time.Millisecond, Status: 200})
		}
	})
	t.Run("ExcludedEndpointsAreAvoided", func(t *testing.T) {
		eps := Endpoints(1, 1, 1, 1)
		p := newBal(t).Update(eps)
		r := NewSeeded(3)
		for i := 0; i < 500; i++ {
			info := &balance.PickInfo{Now: t0, Rand: r, Hash: r.Uint64(), HasHash: i%2 == 0,
				Exclude: []*balance.Endpoint{eps[i%4].Endpoint, eps[(i+1)%4].Endpoint}}
			pk, err := p.Pick(info)
			if err != nil {
				t.Fatal(err)
			}
			if pk.Endpoint == eps[i%4].Endpoint || pk.Endpoint == eps[(i+1)%4].Endpoint {
				t.Fatalf("picked excluded endpoint %s", pk.Endpoint.ID)
			}
			p.Done(pk, &balance.DoneInfo{Now: t0, Status: 200})
		}
		all := &balance.PickInfo{Now: t0, Rand: r, Exclude: []*balance.Endpoint{eps[0].Endpoint, eps[1].Endpoint, eps[2].Endpoint, eps[3].Endpoint}}
		if _, err := p.Pick(all); err != balance.ErrNoEndpoint {
			t.Fatalf("everything excluded: err %v", err)
		}
	})
	t.Run("InFlightAccountingUnderConcurrency", func(t *testing.T) {
		eps := Endpoints(1, 2, 3, 4)
		bal := newBal(t)
		var cur atomic.Value // the published picker, as the proxy does it
		cur.Store(pickerBox{bal.Update(eps)})
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				r := NewSeeded(seed)
				for i := 0; i < 3000; i++ {
					now := t0.Add(time.Duration(i) * time.Millisecond)
					info := &balance.PickInfo{Now: now, Rand: r, Hash: r.Uint64(), HasHash: i%2 == 0}
					p := cur.Load().(pickerBox).Picker
					pk, err := p.Pick(info)
					if err != nil {
						t.Error(err)
						return
					}
					st := 200
					if i%17 == 0 {
						st = 503
					}
					p.Done(pk, &balance.DoneInfo{Now: now, Latency: time.Duration(1+i%7) * time.Millisecond, Status: st,
						Load: balance.LoadReport{Valid: i%2 == 1, RIF: int64(i % 5)}})
					if i%500 == 0 && seed == 0 {
						// Rebuilds while others pick must not break accounting.
						cur.Store(pickerBox{bal.Update(eps)})
					}
				}
			}(uint64(g))
		}
		wg.Wait()
		for _, w := range eps {
			if n := w.Endpoint.InFlight(); n != 0 {
				t.Fatalf("%s: %d in flight after every pick was done", w.Endpoint.ID, n)
			}
		}
	})
	t.Run("TakeIsAccounted", func(t *testing.T) {
		eps := Endpoints(1, 1, 1)
		p := newBal(t).Update(eps)
		pk := p.Take(2)
		if pk.Endpoint != eps[2].Endpoint || pk.Slot != 2 || eps[2].Endpoint.InFlight() != 1 {
			t.Fatalf("Take(2) = %+v, in flight %d", pk, eps[2].Endpoint.InFlight())
		}
		p.Done(pk, &balance.DoneInfo{Now: t0, Status: 200})
		if eps[2].Endpoint.InFlight() != 0 {
			t.Fatal("Done after Take did not release")
		}
	})
	t.Run("ZeroWeightGetsNothingWhenOthersCan", func(t *testing.T) {
		eps := Endpoints(1, 0, 1)
		p := newBal(t).Update(eps)
		r := NewSeeded(5)
		for i := 0; i < 3000; i++ {
			pk, err := p.Pick(&balance.PickInfo{Now: t0, Rand: r, Hash: r.Uint64(), HasHash: i%2 == 0})
			if err != nil {
				t.Fatal(err)
			}
			if pk.Endpoint == eps[1].Endpoint {
				t.Fatalf("weight-0 endpoint picked at %d", i)
			}
			p.Done(pk, &balance.DoneInfo{Now: t0, Status: 200, Latency: time.Millisecond})
		}
	})
	t.Run("DescribeIsJSON", func(t *testing.T) {
		b := newBal(t)
		p := b.Update(Endpoints(1, 2))
		pk, _ := p.Pick(&balance.PickInfo{Now: t0, Rand: NewSeeded(1)})
		p.Done(pk, &balance.DoneInfo{Now: t0, Latency: time.Millisecond, Status: 200})
		if _, err := json.Marshal(b.Describe()); err != nil {
			t.Fatalf("Describe is not JSON-encodable: %v", err)
		}
	})
	if tr.Proportional {
		t.Run("SharesFollowWeights", func(t *testing.T) {
			weights := []float64{1, 2, 3, 4}
			eps := Endpoints(weights...)
			p := newBal(t).Update(eps)
			r := NewSeeded(7)
			counts := map[*balance.Endpoint]int{}
			const n = 20000
			for i := 0; i < n; i++ {
				now := t0.Add(time.Duration(i) * time.Millisecond)
				pk, err := p.Pick(&balance.PickInfo{Now: now, Rand: r})
				if err != nil {
					t.Fatal(err)
				}
				counts[pk.Endpoint]++
				// Identical feedback for everyone: only weights differ.
				p.Done(pk, &balance.DoneInfo{Now: now, Latency: 5 * time.Millisecond, Status: 200})
			}
			for i, w := range eps {
				want := weights[i] / 10
				got := float64(counts[w.Endpoint]) / n
				if math.Abs(got-want) > 0.02 {
					t.Errorf("%s: share %.3f, want %.3f ± 0.02", w.Endpoint.ID, got, want)
				}
			}
		})
	}
}
