package admission

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestShedsInPriorityOrder(t *testing.T) {
	l := New(Config{MinLimit: 1, MaxLimit: 100, InitialLimit: 10})
	// Shares: sheddable up to 7, normal up to 9, critical up to 10.
	admitted := 0
	for i := 0; i < 7; i++ {
		if !l.Acquire(Sheddable) {
			t.Fatalf("sheddable %d refused below its share", i)
		}
		admitted++
	}
	if l.Acquire(Sheddable) {
		t.Fatal("sheddable admitted beyond 70% of the limit")
	}
	if !l.Acquire(Normal) || !l.Acquire(Normal) {
		t.Fatal("normal refused below 90% of the limit")
	}
	if l.Acquire(Normal) {
		t.Fatal("normal admitted beyond 90% of the limit")
	}
	if !l.Acquire(Critical) {
		t.Fatal("critical refused below the limit")
	}
	if l.Acquire(Critical) {
		t.Fatal("critical admitted beyond the limit")
	}
	snap := l.Snapshot()
	if snap.Rejected["sheddable"] != 1 || snap.Rejected["normal"] != 1 || snap.Rejected["critical"] != 1 || snap.InFlight != 10 {
		t.Fatalf("snapshot %+v", snap)
	}
	// Releasing frees room in the same order.
	l.Release(t0, time.Millisecond, false)
	if l.Acquire(Sheddable) || !l.Acquire(Critical) {
		t.Fatal("after one release only critical should fit")
	}
}

// drive feeds windows of samples at the given latency with in-flight near
// the limit, returning the limit after each window.
func drive(l *Limiter, start time.Time, windows int, rtt time.Duration, dropped bool) (time.Time, []float64) {
	now := start
	var limits []float64
	for w := 0; w < windows; w++ {
		// Hold enough requests to not be app-limited.
		n := int(l.Limit())
		held := 0
		for i := 0; i < n && l.Acquire(Critical); i++ {
			held++
		}
		now = now.Add(l.cfg.Window)
		for i := 0; i < held; i++ {
			l.Release(now, rtt, dropped)
		}
		limits = append(limits, l.Limit())
	}
	return now, limits
}

func TestLimitFallsWhenLatencyRisesAndRecovers(t *testing.T) {
	l := New(Config{MinLimit: 5, MaxLimit: 500, InitialLimit: 50, MinSamples: 5})
	now, warm := drive(l, t0, 40, 10*time.Millisecond, false)
	grown := warm[len(warm)-1]
	if grown <= 50 {
		t.Fatalf("limit did not grow with stable latency: %v", warm)
	}
	// Latency triples: the gradient drops to its floor and the limit falls.
	now, hot := drive(l, now, 15, 30*time.Millisecond, false)
	low := hot[len(hot)-1]
	if low >= grown*0.6 {
		t.Fatalf("limit %.1f after latency tripled, from %.1f: want a clear fall", low, grown)
	}
	// Latency returns to normal: the limit climbs back.
	_, cool := drive(l, now, 60, 10*time.Millisecond, false)
	if back := cool[len(cool)-1]; back < low*1.5 {
		t.Fatalf("limit %.1f after recovery, from %.1f: want it to grow back", back, low)
	}
}

func TestDroppedRequestsShrinkTheLimit(t *testing.T) {
	l := New(Config{MinLimit: 5, MaxLimit: 500, InitialLimit: 100, MinSamples: 5})
	now, warm := drive(l, t0, 30, 10*time.Millisecond, false)
	// A backend that fails fast (1 ms 503s) must not look healthy.
	_, after := drive(l, now, 10, time.Millisecond, true)
	if after[len(after)-1] >= warm[len(warm)-1] {
		t.Fatalf("limit %.1f did not fall on fast failures (was %.1f)", after[len(after)-1], warm[len(warm)-1])
	}
}

func TestAppLimitedDoesNotGrow(t *testing.T) {
	l := New(Config{MinLimit: 5, MaxLimit: 500, InitialLimit: 50, MinSamples: 5})
	now := t0
	for w := 0; w < 50; w++ {
		// Only 5 in flight at a time: far below half the limit.
		for i := 0; i < 5; i++ {
			l.Acquire(Normal)
		}
		now = now.Add(300 * time.Millisecond)
		for i := 0; i < 5; i++ {
			l.Release(now, 10*time.Millisecond, false)
		}
	}
	if got := l.Limit(); got != 50 {
		t.Fatalf("app-limited service changed its limit to %.1f", got)
	}
}

func TestBoundsAndSeedFromDirectives(t *testing.T) {
	l := New(Config{MinLimit: 10, MaxLimit: 1000, InitialLimit: 100})
	l.Seed(400)
	if l.Limit() != 400 {
		t.Fatalf("seed: %v", l.Limit())
	}
	if err := l.SetBounds(0, 200); err != nil {
		t.Fatal(err)
	}
	if l.Limit() != 200 {
		t.Fatalf("cap not applied: %v", l.Limit())
	}
	if err := l.SetBounds(300, 200); err == nil {
		t.Fatal("min above max accepted")
	}
	l.SetBounds(250, 0)
	if l.Limit() != 250 {
		t.Fatalf("floor not applied: %v", l.Limit())
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{MinLimit: 100, MaxLimit: 10},
		{MinLimit: 10, MaxLimit: 100, InitialLimit: 500},
		{Tolerance: 0.5},
		{SheddableShare: 0.95, NormalShare: 0.9},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults rejected: %v", err)
	}
	for _, s := range []string{"critical", "NORMAL", "sheddable"} {
		if _, err := ParsePriority(s); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParsePriority("vip"); err == nil {
		t.Error("unknown priority accepted")
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	l := New(Config{InitialLimit: 1000, MaxLimit: 1000})
	now := t0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if l.Acquire(Normal) {
				l.Release(now, time.Millisecond, false)
			}
		}
	})
}
