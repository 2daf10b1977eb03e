package health

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newPool(t *testing.T, cfg Config, n int) (*Pool, []*Member) {
	t.Helper()
	p := NewPool(cfg)
	var ms []*Member
	for i := 0; i < n; i++ {
		ms = append(ms, p.Add(balance.NewEndpoint(fmt.Sprintf("e%d", i)), 1, t0, true))
	}
	return p, ms
}

func ids(eps []balance.Weighted) string {
	s := ""
	for _, w := range eps {
		s += w.Endpoint.ID + " "
	}
	return s
}

func TestActiveThresholds(t *testing.T) {
	cfg := Config{HealthyThreshold: 2, UnhealthyThreshold: 3}
	p, ms := newPool(t, cfg, 2)
	m := ms[0]
	steps := []struct {
		ok          bool
		wantChanged bool
		wantIn      bool
	}{
		{true, false, true},   // first result confirms healthy
		{false, false, true},  // 1 failure < 3
		{false, false, true},  // 2
		{false, true, false},  // 3 -> unhealthy
		{false, false, false}, // stays down
		{true, false, false},  // 1 success < 2
		{false, false, false}, // resets the success run
		{true, false, false},
		{true, true, true}, // 2 successes -> healthy
	}
	for i, s := range steps {
		changed := p.ObserveActive(m, s.ok, t0.Add(time.Duration(i)*time.Second))
		eps, _ := p.Eligible(t0)
		in := false
		for _, w := range eps {
			in = in || w.Endpoint == m.Endpoint
		}
		if changed != s.wantChanged || in != s.wantIn {
			t.Fatalf("step %d ok=%v: changed=%v in=%v, want %v %v", i, s.ok, changed, in, s.wantChanged, s.wantIn)
		}
	}
}

func TestFirstActiveFailureTakesEndpointOut(t *testing.T) {
	p, ms := newPool(t, Config{HealthyThreshold: 2, UnhealthyThreshold: 3}, 3)
	if !p.ObserveActive(ms[1], false, t0) {
		t.Fatal("first failing probe should take the endpoint out at once")
	}
	if eps, _ := p.Eligible(t0); ids(eps) != "e0 e2 " {
		t.Fatalf("eligible %q", ids(eps))
	}
}

func TestOutlierEjectionAndReturn(t *testing.T) {
	cfg := Config{OutlierEnabled: true, Consecutive5xx: 5, ConsecutiveGatewayFailure: 3,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 50}
	p, ms := newPool(t, cfg, 4)
	m := ms[0]
	// Four 500s, then a success: the run is broken, nothing happens.
	for i := 0; i < 4; i++ {
		if p.ObserveResult(m, ServerError, t0) {
			t.Fatal("ejected too early")
		}
	}
	p.ObserveResult(m, Success, t0)
	for i := 0; i < 4; i++ {
		p.ObserveResult(m, ServerError, t0)
	}
	if !p.ObserveResult(m, ServerError, t0) {
		t.Fatal("5th consecutive 5xx should eject")
	}
	if eps, _ := p.Eligible(t0); ids(eps) != "e1 e2 e3 " {
		t.Fatalf("eligible %q", ids(eps))
	}
	// Returns after base × 1.
	if p.Tick(t0.Add(29 * time.Second)) {
		t.Fatal("returned before its ejection time")
	}
	if !p.Tick(t0.Add(30 * time.Second)) {
		t.Fatal("should return after 30s")
	}
	// Second ejection lasts base × 2; gateway failures trigger after 3.
	now := t0.Add(31 * time.Second)
	for i := 0; i < 2; i++ {
		p.ObserveResult(m, GatewayFailure, now)
	}
	if !p.ObserveResult(m, GatewayFailure, now) {
		t.Fatal("3rd consecutive gateway failure should eject")
	}
	if p.Tick(now.Add(59 * time.Second)) {
		t.Fatal("second ejection should last 60s")
	}
	if !p.Tick(now.Add(60 * time.Second)) {
		t.Fatal("should return after 60s")
	}
}

func TestEjectionTimeCapped(t *testing.T) {
	cfg := Config{OutlierEnabled: true, ConsecutiveGatewayFailure: 1,
		BaseEjectionTime: 100 * time.Second, MaxEjectionTime: 250 * time.Second, MaxEjectionPercent: 100}
	p, ms := newPool(t, cfg, 2)
	now := t0
	var durations []time.Duration
	for k := 0; k < 4; k++ {
		p.ObserveResult(ms[0], GatewayFailure, now)
		st, _ := p.Status(now)
		durations = append(durations, st[0].EjectedUntil.Sub(now))
		now = st[0].EjectedUntil
		p.Tick(now)
	}
	want := []time.Duration{100 * time.Second, 200 * time.Second, 250 * time.Second, 250 * time.Second}
	if fmt.Sprint(durations) != fmt.Sprint(want) {
		t.Fatalf("ejection durations %v, want %v", durations, want)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	cfg := Config{OutlierEnabled: true, ConsecutiveGatewayFailure: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: 50}
	p, ms := newPool(t, cfg, 4)
	var ejected int
	for _, m := range ms {
		if p.ObserveResult(m, GatewayFailure, t0) {
			ejected++
		}
	}
	if ejected != 2 {
		t.Fatalf("ejected %d of 4 with max 50%%, want 2", ejected)
	}
	// A tiny percentage still allows one ejection.
	p2, ms2 := newPool(t, Config{OutlierEnabled: true, ConsecutiveGatewayFailure: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: 1}, 3)
	if !p2.ObserveResult(ms2[0], GatewayFailure, t0) || p2.ObserveResult(ms2[1], GatewayFailure, t0) {
		t.Fatal("want exactly one ejection with max 1%")
	}
}

func TestEjectionMultiplierDecays(t *testing.T) {
	cfg := Config{OutlierEnabled: true, ConsecutiveGatewayFailure: 1, BaseEjectionTime: 10 * time.Second, MaxEjectionPercent: 100}
	p, ms := newPool(t, cfg, 2)
	p.ObserveResult(ms[0], GatewayFailure, t0)
	p.Tick(t0.Add(10 * time.Second)) // back, multiplier 1
	// Stay healthy for one decay period: multiplier drops to 0, so the next
	// ejection lasts base × 1 again.
	p.Tick(t0.Add(20 * time.Second))
	p.ObserveResult(ms[0], GatewayFailure, t0.Add(21*time.Second))
	st, _ := p.Status(t0.Add(21 * time.Second))
	if d := st[0].EjectedUntil.Sub(t0.Add(21 * time.Second)); d != 10*time.Second {
		t.Fatalf("ejection after decay lasts %v, want 10s", d)
	}
}

func TestPanicThreshold(t *testing.T) {
	cfg := Config{HealthyThreshold: 1, UnhealthyThreshold: 1, PanicThreshold: 50}
	p, ms := newPool(t, cfg, 4)
	p.ObserveActive(ms[0], false, t0)
	if eps, panicking := p.Eligible(t0); panicking || len(eps) != 3 {
		t.Fatalf("3/4 healthy: panic=%v n=%d", panicking, len(eps))
	}
	p.ObserveActive(ms[1], false, t0)
	if eps, panicking := p.Eligible(t0); panicking || len(eps) != 2 {
		t.Fatalf("2/4 healthy (= threshold): panic=%v n=%d, want no panic", panicking, len(eps))
	}
	p.ObserveActive(ms[2], false, t0)
	if eps, panicking := p.Eligible(t0); !panicking || len(eps) != 4 {
		t.Fatalf("1/4 healthy: panic=%v n=%d, want panic over all 4", panicking, len(eps))
	}
	// Threshold 0 disables panic mode.
	p.SetConfig(Config{HealthyThreshold: 1, UnhealthyThreshold: 1})
	if eps, panicking := p.Eligible(t0); panicking || len(eps) != 1 {
		t.Fatalf("panic disabled: panic=%v n=%d", panicking, len(eps))
	}
}

func TestSlowStartRamp(t *testing.T) {
	cfg := Config{HealthyThreshold: 1, UnhealthyThreshold: 1, SlowStartWindow: 10 * time.Second, SlowStartAggression: 1, SlowStartMinPercent: 10}
	p := NewPool(cfg)
	old := p.Add(balance.NewEndpoint("old"), 1, t0, true)
	fresh := p.Add(balance.NewEndpoint("new"), 2, t0, false)
	_ = old
	weightOf := func(now time.Time) float64 {
		eps, _ := p.Eligible(now)
		for _, w := range eps {
			if w.Endpoint == fresh.Endpoint {
				return w.Weight
			}
		}
		return -1
	}
	cases := []struct {
		at   time.Duration
		want float64
	}{
		{0, 0.2},                      // floor: 10% of 2
		{500 * time.Millisecond, 0.2}, // 5% < floor
		{2 * time.Second, 0.4},        // linear: 20%
		{5 * time.Second, 1.0},
		{9 * time.Second, 1.8},
		{10 * time.Second, 2},
		{time.Hour, 2},
	}
	for _, c := range cases {
		if got := weightOf(t0.Add(c.at)); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("at %v weight %.4f, want %.4f", c.at, got, c.want)
		}
	}
	// Ticks report change while ramping and stop once done.
	if !p.Tick(t0.Add(5 * time.Second)) {
		t.Error("tick during ramp should report a change")
	}
	p.Tick(t0.Add(10 * time.Second))
	if p.Tick(t0.Add(11 * time.Second)) {
		t.Error("tick after ramp should report nothing")
	}
	// A recovered endpoint ramps again.
	p.ObserveActive(fresh, false, t0.Add(20*time.Second))
	p.ObserveActive(fresh, true, t0.Add(30*time.Second))
	if got := weightOf(t0.Add(32 * time.Second)); math.Abs(got-0.4) > 1e-9 {
		t.Errorf("recovered endpoint 2s into its ramp has weight %.4f, want 0.4", got)
	}
}

func TestSlowStartAggression(t *testing.T) {
	// aggression 2: (t/w)^(1/2) — faster start.
	if got := SlowStartFactor(25*time.Second, 100*time.Second, 2, 0); math.Abs(got-0.5) > 1e-9 {
		t.Fatalf("factor %.4f, want 0.5", got)
	}
	if got := SlowStartFactor(0, 0, 1, 10); got != 1 {
		t.Fatalf("no window: factor %v, want 1", got)
	}
}

func TestRetainDropsRemoved(t *testing.T) {
	p, _ := newPool(t, Config{}, 3)
	p.Retain(map[string]bool{"e0": true, "e2": true})
	if eps, _ := p.Eligible(t0); ids(eps) != "e0 e2 " {
		t.Fatalf("eligible %q", ids(eps))
	}
	if p.Get("e1") != nil {
		t.Fatal("e1 still present")
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		status int
		fail   bool
		want   Outcome
	}{
		{200, false, Success}, {404, false, Success}, {500, false, ServerError},
		{501, false, ServerError}, {502, false, GatewayFailure}, {503, false, GatewayFailure},
		{504, false, GatewayFailure}, {0, true, GatewayFailure},
	}
	for _, c := range cases {
		if got := Classify(c.status, c.fail); got != c.want {
			t.Errorf("Classify(%d,%v) = %v, want %v", c.status, c.fail, got, c.want)
		}
	}
}
