package shop

import (
	"context"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

func TestLogNormalMoments(t *testing.T) {
	for _, c := range []struct {
		mean time.Duration
		cv   float64
	}{
		{20 * time.Millisecond, 0.5},
		{5 * time.Millisecond, 1},
		{100 * time.Millisecond, 0.2},
		{time.Second, 2},
	} {
		l := newLogNormal(c.mean, c.cv, 42)
		const n = 100_000
		// Welford's online mean and variance.
		var mean, m2 float64
		for i := 1; i <= n; i++ {
			x := l.draw()
			if x <= 0 {
				t.Fatalf("non-positive draw %v", x)
			}
			d := x - mean
			mean += d / float64(i)
			m2 += d * (x - mean)
		}
		sd := math.Sqrt(m2 / (n - 1))
		gotCV := sd / mean
		want := c.mean.Seconds()
		// cv 2 has a heavy tail: its sample sd converges slowly, so only
		// the mean is held to 5% there.
		if math.Abs(mean-want)/want > 0.05 {
			t.Errorf("mean %v cv %v: sample mean %.5fs, want within 5%% of %.5fs", c.mean, c.cv, mean, want)
		}
		if c.cv <= 1 && math.Abs(gotCV-c.cv)/c.cv > 0.05 {
			t.Errorf("mean %v cv %v: sample cv %.4f, want within 5%%", c.mean, c.cv, gotCV)
		}
	}
	// cv 0 is constant, mean 0 is nothing.
	if l := newLogNormal(7*time.Millisecond, 0, 1); l.draw() != 0.007 || l.draw() != 0.007 {
		t.Error("cv 0 must give the mean every time")
	}
	if l := newLogNormal(0, 0.5, 1); l.draw() != 0 {
		t.Error("mean 0 must give 0")
	}
	// Seeded: the same seed gives the same sequence.
	a, b := newLogNormal(time.Millisecond, 0.5, 9), newLogNormal(time.Millisecond, 0.5, 9)
	for range 10 {
		if a.draw() != b.draw() {
			t.Fatal("same seed, different draws")
		}
	}
}

func TestColdFactor(t *testing.T) {
	w := 10 * time.Second
	cases := []struct {
		elapsed time.Duration
		warmup  time.Duration
		k, want float64
	}{
		{0, w, 3, 3},
		{-time.Second, w, 3, 3},
		{5 * time.Second, w, 3, 2},
		{7500 * time.Millisecond, w, 5, 2},
		{w, w, 3, 1},
		{time.Hour, w, 3, 1},
		{0, 0, 3, 1},
		{0, w, 1, 1},
	}
	for _, c := range cases {
		if got := coldFactor(c.elapsed, c.warmup, c.k); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("coldFactor(%v, %v, %v) = %v, want %v", c.elapsed, c.warmup, c.k, got, c.want)
		}
	}
}

// The service time combines draw × cost × slow × cold ÷ speed; the cold
// factor follows the injected clock.
func TestServiceTimeColdStartManualClock(t *testing.T) {
	mc := clock.NewManual(time.Unix(1_000_000, 0))
	cfg := testConfig(t, "catalog", 2)
	cfg.Latency = 10 * time.Millisecond
	cfg.CV = 0
	cfg.Warmup = 10 * time.Second
	cfg.ColdFactor = 3
	cfg.Speeds = []float64{1, 0.5}
	cfg.Clock = mc
	g := startGroup(t, cfg)
	fast, slow := g.insts[0], g.insts[1]
	started := fast.inc.Load().started
	near := func(got, want time.Duration) bool { return (got - want).Abs() < time.Microsecond }
	if got := fast.serviceTime(1, 1, started); !near(got, 30*time.Millisecond) {
		t.Errorf("at start: %v, want 30ms (10ms × cold 3)", got)
	}
	if got := slow.serviceTime(costSearch, 1, started); !near(got, 180*time.Millisecond) {
		t.Errorf("search on a half-speed cold instance: %v, want 180ms (10ms × 3 × 3 ÷ 0.5)", got)
	}
	mc.Advance(5 * time.Second)
	if got := fast.serviceTime(1, 1, started); !near(got, 20*time.Millisecond) {
		t.Errorf("half-way through the warm-up: %v, want 20ms", got)
	}
	mc.Advance(5 * time.Second)
	if got := fast.serviceTime(1, 2, started); !near(got, 20*time.Millisecond) {
		t.Errorf("warm, slow fault 2: %v, want 20ms", got)
	}
	if got := fast.serviceTime(costCheckout, 1, started); !near(got, 20*time.Millisecond) {
		t.Errorf("warm checkout cost: %v, want 20ms", got)
	}
	if st := stats(t, g, 0); st.ColdFactor != 1 {
		t.Errorf("stats cold_factor %v after warm-up, want 1", st.ColdFactor)
	}
}

// A real request right after start takes the cold service time (a lower
// bound, which timers guarantee), and is cut to normal once warm.
func TestColdStartRealRequests(t *testing.T) {
	mc := clock.NewManual(time.Unix(1_000_000, 0))
	cfg := testConfig(t, "catalog", 1)
	cfg.Latency = 40 * time.Millisecond
	cfg.CV = 0
	cfg.Warmup = time.Minute
	cfg.ColdFactor = 5
	cfg.Clock = mc
	g := startGroup(t, cfg)
	url := g.URLs()[0] + "/catalog/products/p0001"
	t0 := time.Now()
	if r := do(t, "GET", url, "", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("cold request took %v, want ≥ 200ms (40ms × 5)", d)
	}
	mc.Advance(time.Minute)
	t0 = time.Now()
	do(t, "GET", url, "", nil)
	if d := time.Since(t0); d >= 200*time.Millisecond {
		t.Errorf("warm request took %v, want well under the cold 200ms", d)
	}
}

// With 2 workers and 50ms per request, 10 concurrent requests finish in 5
// rounds: the k-th pair cannot finish before k × 50ms.
func TestWorkersBoundConcurrency(t *testing.T) {
	cfg := testConfig(t, "catalog", 1)
	cfg.Workers = 2
	cfg.Latency = 50 * time.Millisecond
	cfg.CV = 0
	g := startGroup(t, cfg)
	url := g.URLs()[0] + "/catalog/products/p0001"
	var wg sync.WaitGroup
	lat := make([]time.Duration, 10)
	var maxBusy atomic.Int64
	start := time.Now()
	for i := range lat {
		wg.Go(func() {
			r := try(t, "GET", url, "", nil)
			lat[i] = time.Since(start)
			if r.status != 200 {
				t.Errorf("status %d", r.status)
			}
			if m := regexp.MustCompile(`util=([0-9.]+)`).FindStringSubmatch(r.header.Get("X-Lbsys-Load")); m == nil {
				t.Errorf("no X-Lbsys-Load util in %q", r.header.Get("X-Lbsys-Load"))
			}
			if st, err := g.Stats(context.Background(), 0); err == nil && int64(st.Busy) > maxBusy.Load() {
				maxBusy.Store(int64(st.Busy))
			}
		})
	}
	wg.Wait()
	total := time.Since(start)
	slices.Sort(lat)
	for i, d := range lat {
		round := time.Duration(i/2+1) * 50 * time.Millisecond
		if d < round-2*time.Millisecond {
			t.Errorf("request %d done after %v, before its round ended (%v): more than 2 workers?", i, d, round)
		}
	}
	if total < 250*time.Millisecond || total > 5*time.Second {
		t.Errorf("10 requests on 2 workers × 50ms took %v, want ≈ 5 rounds (250ms)", total)
	}
	if maxBusy.Load() > 2 {
		t.Errorf("busy workers reached %d, want ≤ 2", maxBusy.Load())
	}
	t.Logf("10 requests, 2 workers, 50ms: %v (5 rounds = 250ms)", total)
}

func TestQueueFullAndQueueTimeout(t *testing.T) {
	t.Run("full", func(t *testing.T) {
		cfg := testConfig(t, "catalog", 1)
		cfg.Workers, cfg.Queue = 1, 1
		cfg.QueueTimeout = 10 * time.Second
		cfg.Latency, cfg.CV = 0, 0
		g := startGroup(t, cfg)
		// Hold the only worker, queue one request, then a second finds
		// the queue full.
		url := g.URLs()[0] + "/catalog/products/p0001"
		inst := g.insts[0]
		inc := inst.inc.Load()
		if err := inc.pool.acquire(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		done := make(chan resp, 1)
		go func() { done <- try(t, "GET", url, "", nil) }()
		eventually(t, 5*time.Second, "one request queued", func() bool { return inc.pool.queued() == 1 })
		r := do(t, "GET", url, "", nil)
		checkOverloaded(t, r)
		inc.pool.release()
		if r := <-done; r.status != 200 {
			t.Errorf("queued request: status %d, want 200 once the worker is free", r.status)
		}
		if st := stats(t, g, 0); st.Rejected != 1 {
			t.Errorf("rejected %d, want 1", st.Rejected)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		cfg := testConfig(t, "catalog", 1)
		cfg.Workers, cfg.Queue = 1, 10
		cfg.QueueTimeout = 50 * time.Millisecond
		g := startGroup(t, cfg)
		inc := g.insts[0].inc.Load()
		if err := inc.pool.acquire(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		defer inc.pool.release()
		t0 := time.Now()
		r := do(t, "GET", g.URLs()[0]+"/catalog/products/p0001", "", nil)
		checkOverloaded(t, r)
		if d := time.Since(t0); d < 50*time.Millisecond {
			t.Errorf("503 after %v, before the 50ms queue timeout", d)
		}
	})
	t.Run("no queue", func(t *testing.T) {
		cfg := testConfig(t, "catalog", 1)
		cfg.Workers, cfg.Queue = 1, 0
		g := startGroup(t, cfg)
		inc := g.insts[0].inc.Load()
		inc.pool.acquire(context.Background(), nil)
		defer inc.pool.release()
		checkOverloaded(t, do(t, "GET", g.URLs()[0]+"/catalog/products", "", nil))
	})
}

func checkOverloaded(t *testing.T, r resp) {
	t.Helper()
	if r.status != 503 || r.header.Get("Retry-After") != "1" || r.header.Get("X-Shop-Error") != "overloaded" {
		t.Errorf("got %d Retry-After %q X-Shop-Error %q; want 503, 1, overloaded", r.status, r.header.Get("Retry-After"), r.header.Get("X-Shop-Error"))
	}
	if !loadHeader.MatchString(r.header.Get("X-Lbsys-Load")) {
		t.Errorf("X-Lbsys-Load %q on a 503", r.header.Get("X-Lbsys-Load"))
	}
}

var loadHeader = regexp.MustCompile(`^rif=\d+,util=(0|1)\.\d{3}$`)

// Two instances, one at half speed, both saturated by closed-loop clients
// for the same wall time: the slow one completes about half as many.
func TestSpeedHalvesThroughput(t *testing.T) {
	cfg := testConfig(t, "catalog", 2)
	cfg.Workers = 2
	cfg.Latency = 10 * time.Millisecond
	cfg.CV = 0
	cfg.Speeds = []float64{1, 0.5}
	g := startGroup(t, cfg)
	var counts [2]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range g.URLs() {
		for range 4 { // 4 clients for 2 workers: always saturated
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if r, err := send(testClient, "GET", u+"/catalog/products/p0001", "", nil); err == nil && r.status == 200 {
						counts[i].Add(1)
					}
				}
			})
		}
	}
	time.Sleep(800 * time.Millisecond) // a measuring window, not a wait for an event
	close(stop)
	wg.Wait()
	fast, slow := counts[0].Load(), counts[1].Load()
	ratio := float64(slow) / float64(fast)
	t.Logf("completed: speed 1 → %d, speed 0.5 → %d, ratio %.2f", fast, slow, ratio)
	if fast < 20 || ratio < 0.35 || ratio > 0.65 {
		t.Errorf("speed 0.5 completed %d vs %d at speed 1 (ratio %.2f), want a ratio within 0.35–0.65", slow, fast, ratio)
	}
}

// Every answer carries X-Lbsys-Load, errors and control paths included.
func TestLoadHeaderOnEveryAnswer(t *testing.T) {
	g := startGroup(t, testConfig(t, "catalog", 1))
	base := g.URLs()[0]
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/catalog/products", 200},
		{"GET", "/catalog/products/nope", 404},
		{"POST", "/catalog/products", 405},
		{"GET", "/nowhere", 404},
		{"GET", "/healthz", 200},
		{"GET", "/_shop/stats", 200},
		{"GET", "/_shop/fault", 200},
	} {
		r := do(t, c.method, base+c.path, "", nil)
		if r.status != c.want || !loadHeader.MatchString(r.header.Get("X-Lbsys-Load")) {
			t.Errorf("%s %s: %d X-Lbsys-Load %q; want %d and rif=N,util=F", c.method, c.path, r.status, r.header.Get("X-Lbsys-Load"), c.want)
		}
	}
	if r := do(t, "POST", base+"/catalog/products", "", nil); r.header.Get("Allow") != "GET" {
		t.Errorf("405 without Allow: GET")
	}
}

// The busy integral counts worker·time exactly; readiness waits for
// ReadyAfter.
func TestBusyTimeAndReadyAfter(t *testing.T) {
	p := newPool(4, 0, time.Second)
	ctx := context.Background()
	if err := p.acquire(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.acquire(ctx, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	p.release()
	p.release()
	got := p.busyTime()
	if got < 95*time.Millisecond || got > 400*time.Millisecond {
		t.Errorf("busy time %v for two workers held ≈50ms, want ≈100ms", got)
	}
	if p.busyTime() != got {
		t.Error("the integral moved with no worker busy")
	}

	cfg := DefaultConfig()
	cfg.Service = "catalog"
	cfg.Addrs = []string{"127.0.0.1:0"}
	cfg.ReadyAfter = 300 * time.Millisecond
	cfg.Logger = testLogger(t)
	g, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	health := func() int {
		resp, err := http.Get(g.URLs()[0] + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := health(); c != 503 {
		t.Errorf("healthz %d right after start, want 503 (starting)", c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for health() != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
