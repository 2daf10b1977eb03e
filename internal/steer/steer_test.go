package steer

import (
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/admission"
)

var now = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestPlan(t *testing.T) {
	lim := admission.New(admission.Config{MinLimit: 10, MaxLimit: 1000})
	eps := map[string]bool{"a:1": true, "b:1": true}
	directed := Caps{Policy: "weighted", Directed: true, Limiter: lim, Endpoints: eps}
	w := &directive.Service{Weights: map[string]float64{"a:1": 2}}
	adm := func(seed, min, cap int) *directive.Service {
		return &directive.Service{Admission: &directive.Admission{Seed: seed, Min: min, Cap: cap}}
	}
	for _, tc := range []struct {
		name       string
		prev, next *directive.Service
		caps       Caps
		keepSeed   bool
		err        string
		weights    bool
		clear      bool
		bounds     *Bounds
	}{
		{name: "weights to a directed policy", next: w, caps: directed, weights: true},
		{name: "weights to a policy that takes none", next: w, caps: Caps{Policy: "peak_ewma", Limiter: lim}, err: "does not take weights"},
		{name: "weights naming an unknown endpoint", next: &directive.Service{Weights: map[string]float64{"a:1": 1, "a:2": 0}}, caps: directed, err: "weights[a:2] name endpoints the service does not have (it has a:1, b:1)"},
		{name: "a ramp naming an unknown endpoint", next: &directive.Service{SlowStart: []directive.Ramp{{Endpoint: "c:1", From: 0.1, To: 1, Duration: directive.Duration(time.Minute)}}}, caps: directed, err: "slow_start[0] (c:1)"},
		{name: "weights dropped", prev: w, next: &directive.Service{}, caps: directed, clear: true},
		{name: "admission seed and bounds", next: adm(200, 50, 0), caps: directed, bounds: &Bounds{Min: 50, Seed: 200}},
		{name: "the same seed is not re-applied", prev: adm(200, 50, 0), next: adm(200, 60, 0), caps: directed, bounds: &Bounds{Min: 60}},
		{name: "keepSeed never seeds", next: adm(200, 0, 0), caps: directed, keepSeed: true, bounds: &Bounds{}},
		{name: "admission without a limiter", next: adm(200, 0, 0), caps: Caps{Policy: "weighted", Directed: true}, err: "no admission control"},
		// A zero cap is the configured max (1000), not zero: min 1500 exceeds it.
		{name: "min above the configured max", next: adm(0, 1500, 0), caps: directed, err: "min 1500 would exceed cap 1000"},
		{name: "admission dropped returns to the configured bounds", prev: adm(200, 50, 0), next: &directive.Service{}, caps: directed, bounds: &Bounds{}},
		{name: "every problem is listed", next: &directive.Service{Weights: map[string]float64{"z:9": 1}, Admission: &directive.Admission{Min: 5000}}, caps: directed, err: "z:9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Plan(tc.prev, tc.next, tc.caps, 7, now, tc.keepSeed)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if !ch.Empty() {
					t.Errorf("a refused plan carries a change: %+v", ch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (ch.Weights != nil) != tc.weights || ch.ClearWeights != tc.clear {
				t.Errorf("weights %v clear %v, want %v %v", ch.Weights, ch.ClearWeights, tc.weights, tc.clear)
			}
			switch {
			case tc.bounds == nil && ch.Admission != nil:
				t.Errorf("admission %+v, want none", *ch.Admission)
			case tc.bounds != nil && (ch.Admission == nil || *ch.Admission != *tc.bounds):
				t.Errorf("admission %+v, want %+v", ch.Admission, *tc.bounds)
			}
		})
	}
	// The every-problem case names both.
	_, err := Plan(nil, &directive.Service{Weights: map[string]float64{"z:9": 1}, Admission: &directive.Admission{Min: 5000}}, directed, 1, now, false)
	if err == nil || !strings.Contains(err.Error(), "admission: min 5000") {
		t.Errorf("both problems not listed: %v", err)
	}
}

func TestBoundsApply(t *testing.T) {
	lim := admission.New(admission.Config{MinLimit: 10, MaxLimit: 1000, InitialLimit: 50})
	if err := (Bounds{Min: 100, Seed: 400}).Apply(lim); err != nil {
		t.Fatal(err)
	}
	if got := lim.Limit(); got != 400 {
		t.Errorf("limit %v, want the seed 400", got)
	}
	if err := (Bounds{Max: 200}).Apply(lim); err != nil {
		t.Fatal(err)
	}
	if got := lim.Limit(); got != 200 {
		t.Errorf("limit %v, want clamped to the new cap 200", got)
	}
	// A seed below the limit the limiter holds leaves it.
	if err := (Bounds{Max: 200, Seed: 60}).Apply(lim); err != nil {
		t.Fatal(err)
	}
	if got := lim.Limit(); got != 200 {
		t.Errorf("limit %v after a lower seed, want 200 kept", got)
	}
	if err := (Bounds{}).Apply(nil); err == nil {
		t.Error("bounds applied to no limiter")
	}
}

func TestFloor(t *testing.T) {
	until := now.Add(10 * time.Minute)
	sec := &directive.Service{Scale: &directive.Scale{Replicas: 12, Until: &until}}
	for _, tc := range []struct {
		at   time.Time
		sec  *directive.Service
		want int
	}{
		{now, sec, 12},
		{until.Add(-time.Second), sec, 12},
		{until, sec, 0},
		{now, &directive.Service{Scale: &directive.Scale{Replicas: 3}}, 3},
		{now, &directive.Service{}, 0},
		{now, nil, 0},
	} {
		if got := Floor(tc.sec, tc.at); got != tc.want {
			t.Errorf("Floor at %v = %d, want %d", tc.at, got, tc.want)
		}
	}
}

// TestPlanCache: a cache section becomes a change only when it differs
// from the applied one (so an unchanged warm list is not fetched again on
// every version), dropping it clears the hints, a bad one is refused with
// the rest of the section, and a service that caches nothing still takes
// it.
func TestPlanCache(t *testing.T) {
	caps := Caps{Policy: "round_robin"}
	hints := &directive.Cache{Warm: []string{"/catalog/products/p1"}, TTLHints: []directive.TTLHint{{PathPrefix: "/catalog", TTL: directive.Duration(time.Minute)}}}
	same := &directive.Cache{Warm: []string{"/catalog/products/p1"}, TTLHints: []directive.TTLHint{{PathPrefix: "/catalog", TTL: directive.Duration(time.Minute)}},
		Why: &directive.Reason{Text: "another reason", Driver: "manual"}}
	other := &directive.Cache{Warm: []string{"/catalog/products/p2"}}
	sec := func(c *directive.Cache) *directive.Service { return &directive.Service{Cache: c} }
	for _, tc := range []struct {
		name       string
		prev, next *directive.Service
		want       *directive.Cache
		clear      bool
		err        string
	}{
		{name: "new section", next: sec(hints), want: hints},
		{name: "unchanged section, another reason", prev: sec(hints), next: sec(same)},
		{name: "changed warm list", prev: sec(hints), next: sec(other), want: other},
		{name: "section dropped clears the hints", prev: sec(hints), next: &directive.Service{}, clear: true},
		{name: "whole directive dropped clears the hints", prev: sec(hints), next: nil, clear: true},
		{name: "no hints to clear", prev: sec(other), next: &directive.Service{}},
		{name: "bad TTL", next: sec(&directive.Cache{TTLHints: []directive.TTLHint{{PathPrefix: "/x", TTL: 0}}}), err: "cache.ttl_hints[0].ttl: must be > 0"},
		{name: "bad warm path", next: sec(&directive.Cache{Warm: []string{"catalog"}}), err: `cache.warm[0]: "catalog" must start with /`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Plan(tc.prev, tc.next, caps, 3, now, false)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ch.Cache != tc.want || ch.ClearCache != tc.clear {
				t.Errorf("cache %+v clear %v, want %+v %v", ch.Cache, ch.ClearCache, tc.want, tc.clear)
			}
			if ch.Service() {
				t.Errorf("a cache-only section changes the balancer or limiter: %+v", ch)
			}
			if (tc.want != nil || tc.clear) == ch.Empty() {
				t.Errorf("Empty() = %v", ch.Empty())
			}
		})
	}
	// A bad cache part refuses the whole section, weights included.
	lim := admission.New(admission.Config{MinLimit: 10, MaxLimit: 1000})
	ch, err := Plan(nil, &directive.Service{Admission: &directive.Admission{Seed: 20}, Cache: &directive.Cache{Warm: []string{""}}},
		Caps{Policy: "weighted", Directed: true, Limiter: lim}, 1, now, false)
	if err == nil || !ch.Empty() {
		t.Errorf("plan %+v, %v: want the whole section refused", ch, err)
	}
}
