package telemetry

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

func TestQuantilesWithinBucketPrecision(t *testing.T) {
	c := NewCounter(func() int64 { return 7 })
	r := rand.New(rand.NewPCG(1, 2))
	var lat []float64
	for i := 0; i < 20000; i++ {
		// Log-normal around 20 ms, like a real service.
		d := time.Duration(20e6 * math.Exp(0.6*r.NormFloat64()))
		lat = append(lat, float64(d)/1e6)
		c.Observe(d, i%100 == 0, 10, 1000)
	}
	sort.Float64s(lat)
	rec := c.snapshot(c.flip(), time.Unix(100, 0), "svc", "")
	if rec.Requests != 20000 || rec.Errors != 200 || rec.BytesIn != 200000 || rec.BytesOut != 20000000 || rec.InFlight != 7 {
		t.Fatalf("counts %+v", rec)
	}
	for _, q := range []struct {
		name string
		got  float64
		p    float64
	}{{"p50", rec.P50ms, 0.50}, {"p90", rec.P90ms, 0.90}, {"p99", rec.P99ms, 0.99}} {
		want := lat[int(q.p*float64(len(lat)))-1]
		if rel := math.Abs(q.got-want) / want; rel > 0.06 {
			t.Errorf("%s = %.2f ms, exact %.2f ms (%.1f%% off; buckets are ~9%% wide)", q.name, q.got, want, rel*100)
		}
	}
	// The next window starts empty.
	next := c.snapshot(c.flip(), time.Unix(101, 0), "svc", "")
	if next.Requests != 0 || next.P99ms != 0 {
		t.Fatalf("second window not reset: %+v", next)
	}
}

func TestBucketEdges(t *testing.T) {
	if bucketOf(0) != 0 || bucketOf(time.Microsecond) != 0 {
		t.Error("tiny latencies must land in bucket 0")
	}
	if bucketOf(time.Hour) != numBuckets-1 {
		t.Error("huge latencies must clamp to the last bucket")
	}
	for _, d := range []time.Duration{100 * time.Microsecond, time.Millisecond, 37 * time.Millisecond, 2 * time.Second} {
		mid := bucketMid(bucketOf(d))
		if r := float64(mid) / float64(d); r < 0.9 || r > 1.1 {
			t.Errorf("%v lands in a bucket centred at %v", d, mid)
		}
	}
}

func TestAggregatorEmitsEverySecondToSinks(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 500e6, time.UTC)
	mc := clock.NewManual(start)
	ring := NewRing(3)
	dir := t.TempDir()
	j, err := OpenJSONL(filepath.Join(dir, "t.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	flushed := make(chan struct{}, 10)
	agg := NewAggregator(mc, nil, ring, j, sinkFunc(func([]Record) error { flushed <- struct{}{}; return nil }))
	svc := NewCounter(nil)
	ep := NewCounter(nil)
	agg.SetSeries([]Series{{Service: "cart", Counter: svc}, {Service: "cart", Endpoint: "10.0.0.1:80", Counter: ep}})

	ctx, cancel := contextWithCancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); agg.Run(ctx) }()
	for s := 0; s < 5; s++ {
		for i := 0; i <= s; i++ {
			svc.Observe(time.Millisecond, false, 0, 0)
		}
		waitTimers(t, mc)
		mc.Advance(time.Second)
		select {
		case <-flushed:
		case <-time.After(5 * time.Second):
			t.Fatal("no flush")
		}
	}
	cancel()
	wg.Wait()
	j.Close()

	recs := ring.Since(time.Time{}, "cart")
	// Ring keeps the last 3 seconds: 10:00:02, :03, :04 with 3, 4, 5 requests.
	var got []int64
	for _, r := range recs {
		if r.Endpoint == "" {
			got = append(got, r.Requests)
			if r.Time.Nanosecond() != 0 {
				t.Errorf("record time %v not on a whole second", r.Time)
			}
		}
	}
	if len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Fatalf("ring service records %v, want [3 4 5]", got)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "t.jsonl"))
	if n := strings.Count(string(data), "\n"); n != 10 {
		t.Fatalf("jsonl has %d lines, want 10 (5 seconds × 2 series)", n)
	}
	if !strings.Contains(string(data), `"ts":"2026-11-27T10:00:00Z","service":"cart","requests":1`) {
		t.Fatalf("first line: %s", strings.SplitN(string(data), "\n", 2)[0])
	}
}

func waitTimers(t *testing.T, mc *clock.Manual) {
	deadline := time.Now().Add(5 * time.Second)
	for mc.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("aggregator never scheduled its tick")
		}
		time.Sleep(time.Millisecond)
	}
}

type sinkFunc func([]Record) error

func (f sinkFunc) Write(r []Record) error { return f(r) }
