package balance

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Directive is the part of a control-plane directive the balancer acts on:
// weights per endpoint ID and slow-start ramps. It is how forecasts steer
// traffic (issue #8 streams them; the admin API can set them by hand).
type Directive struct {
	// Version identifies the directive for /status and acknowledgements.
	Version string
	// Weights multiply each endpoint's health-effective weight; an
	// endpoint missing from the map keeps factor 1. Values must be >= 0.
	Weights map[string]float64
	// Ramps move an endpoint's factor linearly from From to To over
	// Duration starting at Start (for example to warm a scaled-out
	// replica before a forecast peak).
	Ramps []Ramp
}

// Ramp is a linear weight change.
type Ramp struct {
	Endpoint string
	From, To float64
	Start    time.Time
	Duration time.Duration
}

// factor returns the ramp's multiplier at now and whether it is still
// moving.
func (r Ramp) factor(now time.Time) (float64, bool) {
	if r.Duration <= 0 || !now.Before(r.Start.Add(r.Duration)) {
		return r.To, false
	}
	if now.Before(r.Start) {
		return r.From, true
	}
	f := float64(now.Sub(r.Start)) / float64(r.Duration)
	return r.From + (r.To-r.From)*f, true
}

// Validate checks a directive's values.
func (d *Directive) Validate() error {
	for id, w := range d.Weights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("weights[%s]: must be a finite number >= 0, got %v", id, w)
		}
	}
	for i, r := range d.Ramps {
		switch {
		case r.Endpoint == "":
			return fmt.Errorf("ramps[%d].endpoint: required", i)
		case !(r.From >= 0) || !(r.To >= 0) || math.IsInf(r.From, 0) || math.IsInf(r.To, 0):
			return fmt.Errorf("ramps[%d]: from and to must be finite numbers >= 0", i)
		case r.Duration < 0:
			return fmt.Errorf("ramps[%d].duration: must be >= 0", i)
		}
	}
	return nil
}

// Directed is implemented by balancers that accept directives.
type Directed interface {
	// SetDirective installs d (nil clears it). It takes effect at the
	// owner's next ScaleWeights/Update.
	SetDirective(d *Directive) error
	// ScaleWeights multiplies the eligible endpoints' weights by the
	// directive's factors at now (weight × ramp). It reports whether a
	// ramp is still moving, in which case the owner should rebuild again
	// soon.
	ScaleWeights(eps []Weighted, now time.Time) ([]Weighted, bool)
}

func init() {
	Register(Policy{
		Name: "weighted",
		Doc:  "weights and ramps from directives (forecast-driven), P2C on peak-EWMA underneath; plain peak_ewma without a directive",
		New: func(decode func(any) error) (func() Balancer, error) {
			o, err := peakEWMAOptions(decode)
			if err != nil {
				return nil, err
			}
			return func() Balancer { return &weighted{inner: NewPeakEWMA(o).(*peakEWMA)} }, nil
		},
	})
}

// weighted applies directive weights and ramps on top of the health
// weights and balances with peak_ewma, which splits by weight when weights
// differ (each request goes to a candidate drawn in proportion to weight
// unless that candidate is clearly slower or more loaded than another: see
// ewmaPicker.Pick): while the endpoints serve alike the shares are the
// directive's weights, and a slow or overloaded endpoint still sheds
// traffic to a healthy one. Without a directive it is exactly peak_ewma:
// the data plane never depends on the control plane being there (DESIGN.md
// principle 1).
type weighted struct {
	inner *peakEWMA
	dir   atomic.Pointer[Directive]
}

func (b *weighted) SetDirective(d *Directive) error {
	if d != nil {
		if err := d.Validate(); err != nil {
			return err
		}
	}
	b.dir.Store(d)
	return nil
}

func (b *weighted) ScaleWeights(eps []Weighted, now time.Time) ([]Weighted, bool) {
	d := b.dir.Load()
	if d == nil {
		return eps, false
	}
	out := make([]Weighted, 0, len(eps))
	moving := false
	for _, w := range eps {
		f := 1.0
		if dw, ok := d.Weights[w.Endpoint.ID]; ok {
			f = dw
		}
		for _, r := range d.Ramps {
			if r.Endpoint == w.Endpoint.ID {
				rf, m := r.factor(now)
				f *= rf
				moving = moving || m
			}
		}
		out = append(out, Weighted{Endpoint: w.Endpoint, Weight: w.Weight * f})
	}
	// A directive that zeroes every endpoint would leave nothing to pick:
	// keep serving with the health weights instead.
	for _, w := range out {
		if w.Weight > 0 {
			return out, moving
		}
	}
	return eps, moving
}

// Update keeps every endpoint in the picker (slots must match eps); those
// the directive weighs 0 are never drawn and are picked only when nothing
// else is left.
func (b *weighted) Update(eps []Weighted) Picker { return b.inner.Update(eps) }

func (b *weighted) Describe() any {
	d := map[string]any{"policy": "weighted", "fallback": "peak_ewma", "peak_ewma": b.inner.Describe()}
	if dir := b.dir.Load(); dir != nil {
		d["directive"] = map[string]any{"version": dir.Version, "weights": dir.Weights, "ramps": len(dir.Ramps)}
	} else {
		d["directive"] = nil
	}
	return d
}

var _ Balancer = (*weighted)(nil)
var _ Directed = (*weighted)(nil)
