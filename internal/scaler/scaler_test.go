package scaler

import (
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func path(from time.Time, n int, f func(i int) float64) []Point {
	var out []Point
	for i := 0; i < n; i++ {
		v := f(i)
		out = append(out, Point{At: from.Add(time.Duration(i) * time.Minute), Point: v, Upper: v * 1.15})
	}
	return out
}

func flat(v float64) func(int) float64 { return func(int) float64 { return v } }

func TestDecide(t *testing.T) {
	base := Input{Service: "catalog", Now: t0, Current: 4, Ready: 4, Min: 2, Max: 40, PerReplicaRPS: 100, Startup: 2 * time.Minute}
	event := func(start time.Time, load float64) Event {
		e := Event{Category: "flash-sale", Start: start, End: start.Add(20 * time.Minute), Uplift: "×8 upper"}
		for i := 0; i < 30; i++ {
			e.Load = append(e.Load, Point{At: start.Add(time.Duration(i) * time.Minute), Point: load * 0.9, Upper: load})
		}
		return e
	}
	for _, tc := range []struct {
		name      string
		mod       func(*Input)
		floor     int
		driver    string
		deferred  bool
		capped    bool
		whyHas    string
		readyNote bool
	}{
		{name: "no capacity learned: no floor", mod: func(in *Input) { in.PerReplicaRPS = 0; in.Forecast = path(t0, 30, flat(1000)) },
			floor: 0, whyHas: "not learned"},
		{name: "flat forecast within the HPA's tolerance asks for no more than the HPA holds",
			mod:   func(in *Input) { in.Forecast = path(t0, 30, flat(240)) },
			floor: 4, driver: "forecast"}, // ⌈240/(100×0.66)⌉ = 4
		{name: "a forecast rise beyond the look-ahead is not acted on yet",
			mod: func(in *Input) {
				in.Forecast = path(t0, 30, func(i int) float64 {
					if i > 10 {
						return 2000
					}
					return 240
				})
			},
			floor: 4, driver: "forecast"},
		{name: "a forecast rise within the look-ahead is",
			mod: func(in *Input) {
				in.Forecast = path(t0, 30, func(i int) float64 {
					if i >= 2 {
						return 1320
					}
					return 240
				})
			},
			floor: 20, driver: "forecast"}, // look-ahead 2m startup + 1m warm-up
		{name: "an event is provisioned margin + lead before it starts",
			mod: func(in *Input) {
				in.Forecast = path(t0, 30, flat(240))
				in.Events = []Event{event(t0.Add(13*time.Minute), 1800)}
			},
			floor: 30, driver: "event", whyHas: "flash-sale", readyNote: true}, // ⌈1800/(100×0.6)⌉
		{name: "an event further than margin + lead is not yet",
			mod: func(in *Input) {
				in.Forecast = path(t0, 30, flat(240))
				in.Events = []Event{event(t0.Add(14*time.Minute), 1800)}
			},
			floor: 4, driver: "forecast"},
		{name: "capped at the autoscaler's max",
			mod: func(in *Input) {
				in.Max = 20
				in.Events = []Event{event(t0.Add(5*time.Minute), 1800)}
			},
			floor: 20, driver: "event", capped: true, whyHas: "capped"},
		{name: "an event whose effect could not be learned gets no capacity and says so",
			mod: func(in *Input) {
				in.Forecast = path(t0, 30, flat(100))
				in.Events = []Event{{Category: "premiere", Start: t0.Add(5 * time.Minute), End: t0.Add(time.Hour), Uplift: "no past event of the category"}}
			},
			floor: 0, driver: "forecast", whyHas: "no capacity planned"}, // 2 replicas: the autoscaler's minimum already
		{name: "idle service",
			mod:   func(in *Input) { in.Forecast = path(t0, 30, flat(0)) },
			floor: 0, whyHas: "no floor"},
		{name: "load far above what was expected defers to the reactive side",
			mod: func(in *Input) {
				in.Forecast = path(t0, 30, flat(240))
				in.ObservedRPS, in.ExpectedRPS = 900, 276
			},
			floor: 4, driver: "forecast", deferred: true, whyHas: "unforecast surge"},
		{name: "a floor below the autoscaler's minimum is none",
			mod:   func(in *Input) { in.Min = 6; in.Forecast = path(t0, 30, flat(240)) },
			floor: 0, driver: "forecast", whyHas: "within the autoscaler's minimum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base
			tc.mod(&in)
			d := Decide(in, Config{})
			if d.Floor != tc.floor || d.Driver != tc.driver || d.Deferred != tc.deferred || d.Capped != tc.capped {
				t.Errorf("floor %d driver %q deferred %v capped %v, want %d %q %v %v; why: %s", d.Floor, d.Driver, d.Deferred, d.Capped,
					tc.floor, tc.driver, tc.deferred, tc.capped, d.Why)
			}
			if tc.whyHas != "" && !strings.Contains(d.Why, tc.whyHas) {
				t.Errorf("why %q lacks %q", d.Why, tc.whyHas)
			}
			if d.Floor > 0 && !d.Until.After(in.Now) {
				t.Errorf("a floor without a lapse time: until %v", d.Until)
			}
			if tc.readyNote && (d.ReadyBy.After(d.Event.Start.Add(-10*time.Minute)) || !strings.Contains(d.Why, "ready by")) {
				t.Errorf("ready by %v for an event at %v; why %s", d.ReadyBy, d.Event.Start, d.Why)
			}
		})
	}
}

// The floor an event asks for holds until the event's effect has passed,
// so a controller that stops deciding mid-event leaves the capacity.
func TestDecideHoldsThroughTheEvent(t *testing.T) {
	start := t0.Add(5 * time.Minute)
	e := Event{Category: "sale", Start: start, End: start.Add(20 * time.Minute)}
	for i := 0; i < 50; i++ {
		e.Load = append(e.Load, Point{At: start.Add(time.Duration(i) * time.Minute), Upper: 1200})
	}
	d := Decide(Input{Now: t0, PerReplicaRPS: 100, Startup: time.Minute, Events: []Event{e}}, Config{})
	if want := e.Load[len(e.Load)-1].At; !d.Until.Equal(want) {
		t.Errorf("until %v, want the end of the event's effect %v", d.Until, want)
	}
}

func TestCapacity(t *testing.T) {
	var c Capacity
	if _, _, ok := c.PerReplica(); ok {
		t.Fatal("an estimate from nothing")
	}
	// 8 workers, 20 ms per request: 400 rps per replica at full utilisation.
	for i, u := range []float64{0.3, 0.5, 0.01, 0.99, 0.6, 0.4, math.NaN(), 0.7, 0.2} {
		c.Observe(Sample{At: t0.Add(time.Duration(i) * time.Minute), RPS: 400 * u * 5, Replicas: 5, Util: u})
	}
	// A minute of too few answers to count (0.1 rps per replica).
	c.Observe(Sample{RPS: 0.5, Replicas: 5, Util: 0.05})
	got, n, ok := c.PerReplica()
	if !ok || n != 6 || math.Abs(got-400) > 1e-6 {
		t.Errorf("capacity %v from %d minutes (ok %v), want 400 from 6 (idle, saturated, thin and unknown minutes left out)", got, n, ok)
	}
	// An outlier minute does not move the median.
	c.Observe(Sample{RPS: 5000, Replicas: 1, Util: 0.5})
	if got, _, _ := c.PerReplica(); math.Abs(got-400) > 1e-6 {
		t.Errorf("capacity %v after one outlier, want 400", got)
	}
}

// TestCapacityAnswerCount: whether a minute has enough answers is read
// from its count when it carries one (a compressed-time loop's rates are
// per wall second: 40 rps over a one-second minute is 40 answers, not
// 2400).
func TestCapacityAnswerCount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       Sample
		counted bool
	}{
		{"rate of a minute", Sample{RPS: 40, Replicas: 4, Util: 0.2}, true},
		{"same rate, 40 answers (pooled, not counted yet)", Sample{RPS: 40, Replicas: 4, Util: 0.2, Answers: 40}, false},
		{"same rate, 400 answers", Sample{RPS: 40, Replicas: 4, Util: 0.2, Answers: 400}, true},
	} {
		var c Capacity
		c.Observe(tc.s)
		if _, n, _ := c.PerReplica(); (n == 1) != tc.counted {
			t.Errorf("%s: counted %v, want %v", tc.name, n == 1, tc.counted)
		}
	}
}

// TestCapacityPoolsThinMinutes: minutes of 8 answers per replica are
// pooled three by three (24 ≥ 20), each pool an estimate
// of its rate over its busy replicas; pools never reach past MaxPool.
func TestCapacityPoolsThinMinutes(t *testing.T) {
	var c Capacity
	// 2 replicas at 100 rps of capacity: 16 answers, 2 replicas, util 0.08.
	for i := 0; i < 15; i++ {
		c.Observe(Sample{RPS: 16, Replicas: 2, Util: 0.08, Answers: 16})
	}
	got, n, ok := c.PerReplica()
	if !ok || n != 5 || math.Abs(got-100) > 1e-9 {
		t.Errorf("capacity %v from %d estimates (ok %v), want 100 from 5 pools of 3 minutes", got, n, ok)
	}
	// Minutes far too thin to ever fill a pool give nothing.
	var d Capacity
	for i := 0; i < 100; i++ {
		d.Observe(Sample{RPS: 1, Replicas: 2, Util: 0.05, Answers: 2}) // 1 per replica: 10 minutes hold 10 < 20
	}
	if _, n, _ := d.PerReplica(); n != 0 {
		t.Errorf("%d estimates from minutes of 1 answer per replica, want none (pools end at %d minutes)", n, MaxPool)
	}
}

func TestLead(t *testing.T) {
	l := Lead{Prior: 2 * time.Minute}
	if d, n := l.Startup(); d != 2*time.Minute || n != 0 {
		t.Errorf("prior: %v from %d", d, n)
	}
	for _, s := range []int{60, 70, 80, 90, 100, 110, 120, 130, 140, 400} {
		l.Observe(time.Duration(s) * time.Second)
	}
	if d, n := l.Startup(); d != 140*time.Second || n != 10 {
		t.Errorf("p90 of the startups: %v from %d, want 2m20s from 10", d, n)
	}
	// Fast startups (a warm pool) never shorten the lead below the prior.
	fast := Lead{Prior: 5 * time.Minute}
	for i := 0; i < 10; i++ {
		fast.Observe(90 * time.Second)
	}
	if d, _ := fast.Startup(); d != 5*time.Minute {
		t.Errorf("startup %v, want the prior 5m", d)
	}
}

func TestHoltWintersLearnsADailySpike(t *testing.T) {
	const season = 96 // 15-minute intervals
	var hist []float64
	for d := 0; d < 10; d++ {
		for i := 0; i < season; i++ {
			v := 100.0
			if i >= 40 && i < 44 { // a spike at the same time every day
				v = 800
			}
			hist = append(hist, v)
		}
	}
	h := FitHoltWinters(hist[:len(hist)-season+38], season, 3)
	if h == nil {
		t.Fatal("no model from ten seasons")
	}
	if p := h.Predict(); p < 500 {
		t.Errorf("prediction three intervals before the daily spike %.0f, want it seen coming (≥ 500)", p)
	}
	if FitHoltWinters(hist[:season], season, 2) != nil {
		t.Error("a model from one season")
	}
}

func TestHourlyPlan(t *testing.T) {
	start := time.Date(2026, 11, 13, 0, 0, 0, 0, time.UTC)
	var hist []float64
	for i := 0; i < 14*1440; i++ {
		tt := start.Add(time.Duration(i) * time.Minute)
		v := 100.0
		if tt.Hour() == 10 {
			v = 500 // a busy hour every day
		}
		if tt.Weekday() == time.Saturday {
			v *= 2
		}
		hist = append(hist, v)
	}
	from := start.Add(14 * 24 * time.Hour) // a Friday
	p := NewHourlyPlan(hist, start, time.Minute, from, 48, 14)
	fri := p.LoadAt(from.Add(10*time.Hour + 30*time.Minute))
	sat := p.LoadAt(from.Add(34*time.Hour + 30*time.Minute))
	if fri < 400 || fri > 600 || sat < 2*fri*0.9 {
		t.Errorf("10:00 forecast Friday %.0f, Saturday %.0f: want ≈ 500 and twice that", fri, sat)
	}
	// Launched Buffer early: 09:56 already plans for 10:00.
	if early := p.LoadAt(from.Add(9*time.Hour + 56*time.Minute)); early < 400 {
		t.Errorf("09:56 plans %.0f, want the 10:00 hour's load (scheduling buffer)", early)
	}
	if late := p.LoadAt(from.Add(9*time.Hour + 50*time.Minute)); late > 200 {
		t.Errorf("09:50 plans %.0f, want the 09:00 hour's load", late)
	}
	if !math.IsNaN(p.LoadAt(from.Add(100 * time.Hour))) {
		t.Error("a load outside the plan")
	}
}
