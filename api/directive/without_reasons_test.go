package directive

import "testing"

// TestWithoutReasons: two plans that differ only in their reasons are the
// same request; a different value is not; the original keeps its reasons.
func TestWithoutReasons(t *testing.T) {
	mk := func(why string, replicas int) *Directive {
		r := &Reason{Text: why}
		return &Directive{Version: 3, Services: map[string]*Service{"catalog": {
			Why:        &Why{Model: why},
			WeightsWhy: r, Weights: map[string]float64{"a:1": 2},
			Admission: &Admission{Seed: 10, Why: r},
			Cache:     &Cache{Warm: []string{"/p"}, Why: r},
			Scale:     &Scale{Replicas: replicas, Why: r},
		}}}
	}
	a, b := mk("run-1", 4), mk("run-2", 4)
	if Equal(a, b) {
		t.Fatal("the reasons should make the directives differ")
	}
	if !Equal(a.WithoutReasons(), b.WithoutReasons()) {
		t.Error("directives differing only in their reasons differ without them")
	}
	if Equal(a.WithoutReasons(), mk("run-1", 5).WithoutReasons()) {
		t.Error("a different floor is hidden")
	}
	if a.Services["catalog"].Scale.Why == nil || a.Services["catalog"].Why == nil {
		t.Error("the original lost its reasons")
	}
}
