package fleet

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/scaler"
	"github.com/lbsys/lbsys/internal/shop"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func launcher(readyAfter time.Duration) *GroupLauncher {
	return &GroupLauncher{Config: func(service string, seq int) shop.Config {
		c := shop.DefaultConfig()
		c.Latency, c.Warmup, c.ReadyAfter = 5*time.Millisecond, 0, readyAfter
		c.Logger = quiet()
		return c
	}}
}

// waitFor polls cond (every 10ms) until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A floor scales out at once into the warm slots, the rest waits for a
// node; without the floor and without load, the autoscaler scales back in
// after its stabilisation window, deregistering before it stops.
func TestFleetFloorsNodesAndScaleIn(t *testing.T) {
	vc := clock.NewScaled(nil, time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), 60) // a virtual minute per second
	var floor atomic.Int64
	var mu sync.Mutex
	registered := map[string][]string{}
	f, err := New(Options{Clock: vc, Scaled: vc, WarmSlots: 2, NodeSize: 2, NodeProvisioning: 2 * time.Minute, Drain: 30 * time.Second,
		Floors: func(string, time.Time) int { return int(floor.Load()) },
		OnEndpoints: func(svc string, addrs []string) error {
			mu.Lock()
			registered[svc] = append([]string(nil), addrs...)
			mu.Unlock()
			return nil
		},
		Launcher: launcher(300 * time.Millisecond), Log: quiet()},
		[]ServiceSpec{{Name: "catalog", HPA: scaler.DefaultHPASpec(1, 6, 0.6), PricePerHour: 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	regs := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(registered["catalog"])
	}
	if regs() != 1 {
		t.Fatalf("%d registered after start, want 1", regs())
	}
	go f.Run(ctx)
	floor.Store(4)
	// Two slots free: two instances start at once (ready 300ms later), the
	// third waits for a node (2 virtual minutes = 2s).
	waitFor(t, "three ready", 3*time.Second, func() bool { return f.Snapshot()[0].Ready == 3 })
	st := f.Snapshot()[0]
	if st.Pending != 1 && st.Starting != 1 {
		t.Errorf("state %+v: want the fourth instance waiting for a node", st)
	}
	waitFor(t, "four ready", 6*time.Second, func() bool { return f.Snapshot()[0].Ready == 4 })
	if regs() != 4 {
		t.Errorf("%d registered, want 4", regs())
	}
	startups := f.Startups()["catalog"]
	long := false
	for _, d := range startups {
		if d >= 2*time.Minute {
			long = true // the one that waited for its node
		}
	}
	// The first instance's start counts too (Start), then the three the
	// floor asked for.
	if len(startups) != 4 || !long {
		t.Errorf("startups %v: want 4, one of them past the node's 2 minutes", startups)
	}
	// Floor gone, no load: back to 1 after the 300s window (5s real),
	// deregistered before stopped.
	floor.Store(0)
	waitFor(t, "scale-in", 12*time.Second, func() bool { return regs() == 1 })
	waitFor(t, "stopped", 3*time.Second, func() bool { s := f.Snapshot()[0]; return s.Ready == 1 && s.Draining == 0 })
	if m := f.Snapshot()[0].InstanceMinutes; m <= 0 {
		t.Errorf("instance-minutes %v", m)
	}
}

func TestUsageMeasuresBusyTime(t *testing.T) {
	in, err := launcher(0).Launch(context.Background(), "catalog", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop(context.Background())
	b0, w, err := in.Usage(context.Background())
	if err != nil || w != 8 {
		t.Fatalf("usage %v %d %v", b0, w, err)
	}
	for i := 0; i < 20; i++ {
		resp, err := http.Get("http://" + in.Addr() + "/catalog/products/p0001")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b1, _, _ := in.Usage(context.Background())
	if b1-b0 < 0.05 {
		t.Errorf("busy time grew by %.3fs over 20 requests of ≈5ms, want ≈0.1s", b1-b0)
	}
}

// Utilization integrates the syncs' busy time over a span: the mean of
// the measured instances, interpolated at the span's ends; NaN when the
// log covers less than half the span or measured nothing.
func TestFleetUtilizationOverASpan(t *testing.T) {
	f, err := New(Options{Launcher: launcher(0), Log: quiet()}, []ServiceSpec{{Name: "catalog", HPA: scaler.DefaultHPASpec(1, 6, 0.6)}})
	if err != nil {
		t.Fatal(err)
	}
	s := f.svcs[0]
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	// Each second: two replicas measured for the second; busy 0.2 replica-s
	// in the first ten seconds, 1.0 in the next ten.
	f.logUsage(s, t0, 0, 0)
	for i := 1; i <= 20; i++ {
		busy := 0.2
		if i > 10 {
			busy = 1.0
		}
		f.logUsage(s, t0.Add(time.Duration(i)*time.Second), busy, 2)
	}
	sec := func(x float64) time.Time { return t0.Add(time.Duration(x * float64(time.Second))) }
	for _, c := range []struct {
		name     string
		from, to float64
		want     float64
	}{
		{"first ten seconds", 0, 10, 0.1},
		{"last ten seconds", 10, 20, 0.5},
		{"across the change", 5, 15, 0.3},
		{"inside one sync, interpolated", 10.25, 10.75, 0.5},
		{"half the span after the log: the covered part", 15, 25, 0.5},
		{"less than half covered", 18, 30, math.NaN()},
		{"before the log", -20, -10, math.NaN()},
		{"empty span", 5, 5, math.NaN()},
	} {
		got := f.Utilization("catalog", sec(c.from), sec(c.to))
		if math.IsNaN(c.want) != math.IsNaN(got) || !math.IsNaN(c.want) && math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: utilisation %v, want %v", c.name, got, c.want)
		}
	}
	if u := f.Utilization("cart", t0, sec(10)); !math.IsNaN(u) {
		t.Errorf("unknown service: %v, want NaN", u)
	}
	// The log is bounded.
	for i := 0; i < 2*usageLogLen; i++ {
		f.logUsage(s, sec(float64(21+i)), 0.1, 1)
	}
	if len(s.usage) != usageLogLen {
		t.Errorf("usage log holds %d points, want %d", len(s.usage), usageLogLen)
	}
}
