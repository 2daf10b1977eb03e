package loadgen

import (
	"math"
	"testing"
	"time"
)

func collect(a *Arrivals) []time.Duration {
	var out []time.Duration
	for {
		t, ok := a.Next()
		if !ok {
			return out
		}
		out = append(out, t)
	}
}

func TestPoissonArrivals(t *testing.T) {
	const rate, secs = 2000.0, 60
	arr := collect(NewArrivals(Constant(rate), Poisson, 42, secs*time.Second))
	want := rate * secs
	if got := float64(len(arr)); math.Abs(got-want)/want > 0.02 {
		t.Fatalf("%v arrivals, want %v ±2%%", got, want)
	}
	// Inter-arrival times of a Poisson process are exponential: cv = 1.
	var sum, sq float64
	for i := 1; i < len(arr); i++ {
		d := (arr[i] - arr[i-1]).Seconds()
		if d < 0 {
			t.Fatalf("arrivals out of order at %d", i)
		}
		sum += d
		sq += d * d
	}
	n := float64(len(arr) - 1)
	mean := sum / n
	cv := math.Sqrt(sq/n-mean*mean) / mean
	if math.Abs(cv-1) > 0.05 {
		t.Fatalf("inter-arrival cv %.3f, want ≈ 1", cv)
	}
	// Every second holds about rate arrivals (a Poisson count: sd ≈ 45).
	per := make([]int, secs)
	for _, a := range arr {
		per[int(a/time.Second)]++
	}
	for s, c := range per {
		if math.Abs(float64(c)-rate) > 6*math.Sqrt(rate) {
			t.Errorf("second %d: %d arrivals", s, c)
		}
	}
	// Seeded: the same seed gives the same schedule, another seed another.
	again := collect(NewArrivals(Constant(rate), Poisson, 42, secs*time.Second))
	if len(again) != len(arr) || again[100] != arr[100] {
		t.Fatal("same seed, different schedule")
	}
	other := collect(NewArrivals(Constant(rate), Poisson, 43, secs*time.Second))
	if len(other) > 100 && other[100] == arr[100] {
		t.Fatal("different seeds, same schedule")
	}
}

func TestPoissonThinningFollowsTheRate(t *testing.T) {
	// A ramp 0 → 1000 over 20 s and a flash sale: the counts per window
	// follow the integral of the rate.
	ramp := Ramp{From: 0, To: 1000, Over: 20 * time.Second}
	arr := collect(NewArrivals(ramp, Poisson, 7, 20*time.Second))
	if got, want := float64(len(arr)), 10000.0; math.Abs(got-want)/want > 0.03 {
		t.Fatalf("ramp: %v arrivals, want ≈ %v", got, want)
	}
	first, last := 0, 0
	for _, a := range arr {
		if a < 5*time.Second {
			first++
		} else if a >= 15*time.Second {
			last++
		}
	}
	// ∫ over [0,5] = 625, over [15,20] = 4375.
	if math.Abs(float64(first)-625) > 6*25 || math.Abs(float64(last)-4375) > 6*66 {
		t.Fatalf("ramp windows: %d and %d, want ≈ 625 and 4375", first, last)
	}

	f := FlashSale{Base: Constant(200), Start: 10 * time.Second, For: 10 * time.Second, X: 5}
	arr = collect(NewArrivals(f, Poisson, 9, 30*time.Second))
	in := 0
	for _, a := range arr {
		if a >= 10*time.Second && a < 20*time.Second {
			in++
		}
	}
	if math.Abs(float64(in)-10000) > 6*100 || math.Abs(float64(len(arr)-in)-4000) > 6*64 {
		t.Fatalf("flash sale: %d inside, %d outside; want ≈ 10000, 4000", in, len(arr)-in)
	}
}

func TestUniformArrivals(t *testing.T) {
	arr := collect(NewArrivals(Constant(200), Uniform, 1, 2*time.Second))
	if len(arr) != 400 {
		t.Fatalf("%d uniform arrivals, want exactly 400", len(arr))
	}
	for i := 1; i < len(arr); i++ {
		if d := arr[i] - arr[i-1]; d < 4999*time.Microsecond || d > 5001*time.Microsecond {
			t.Fatalf("gap %v at %d, want 5ms", d, i)
		}
	}
	// Zero rate, then a step: no arrivals in the zero part.
	step := FlashSale{Base: Constant(0.0001), Start: time.Second, For: time.Second, X: 1e6} // ≈ 100/s in [1s, 2s)
	arr = collect(NewArrivals(step, Uniform, 1, 3*time.Second))
	if len(arr) < 95 || len(arr) > 105 || arr[0] < time.Second || arr[len(arr)-1] >= 2*time.Second {
		t.Fatalf("step: %d arrivals from %v to %v", len(arr), arr[0], arr[len(arr)-1])
	}
	if got := collect(NewArrivals(Constant(0), Uniform, 1, time.Second)); len(got) != 0 {
		t.Fatalf("zero rate: %d arrivals", len(got))
	}
	if got := collect(NewArrivals(Constant(0), Poisson, 1, time.Second)); len(got) != 0 {
		t.Fatalf("zero rate: %d poisson arrivals", len(got))
	}
}
