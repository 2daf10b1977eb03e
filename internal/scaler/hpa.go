package scaler

import (
	"math"
	"time"
)

// HPA is the reactive autoscaler, faithful to the Kubernetes
// HorizontalPodAutoscaler autoscaling/v2 on average utilisation
// (kubernetes/kubernetes pkg/controller/podautoscaler: horizontal.go and
// replica_calculator.go; https://kubernetes.io/docs/tasks/run-application/
// horizontal-pod-autoscale/#algorithm-details). The simulator's autoscaler
// and the demo's local scaler both run it, so the reactive side of the
// comparison is the same code in both:
//
//  1. usageRatio = mean utilisation of the ready pods ÷ target. Pods still
//     starting (or ready for less than one metric window) are ignored;
//     crashed pods are missing.
//  2. Within the tolerance nothing changes. Otherwise desired = ⌈ratio ×
//     ready⌉; when scaling up with ignored pods they count as 0% and the
//     ratio is recomputed; missing pods count as 100% on a scale-down and
//     0% on a scale-up; if that flips the direction or lands within the
//     tolerance, nothing changes.
//  3. Below the minimum (raised by floors) or above the maximum the target
//     is the bound, without behaviours.
//  4. Stabilisation: the recommendation is clamped between the minimum of
//     the recommendations within the scale-up window and the maximum
//     within the scale-down window.
//  5. Rate limits per policy from the replica count at the start of its
//     period; select max takes the largest change.
type HPA struct {
	Spec HPASpec

	recs  []stamped // unstabilised recommendations
	ups   []stamped // scale events
	downs []stamped
}

type stamped struct {
	t time.Time
	n int
}

// HPASpec is an HPA's settings (the autoscaling/v2 defaults by
// DefaultHPASpec).
type HPASpec struct {
	Min, Max          int
	TargetUtilization float64
	Tolerance         float64
	ScaleUp           HPARules
	ScaleDown         HPARules
}

// HPARules are one direction's behaviour (HPAScalingRules).
type HPARules struct {
	Stabilization time.Duration
	// Select is max, min or disabled.
	Select   string
	Policies []HPAPolicy
}

// HPAPolicy is one HPAScalingPolicy: Type pods or percent, Value per
// Period.
type HPAPolicy struct {
	Type   string
	Value  int
	Period time.Duration
}

// DefaultHPASpec is autoscaling/v2's defaults with min, max and target:
// up, no stabilisation, the larger of +4 pods and +100% per 15s; down, a
// 300s window, −100% per 15s; tolerance 0.1.
func DefaultHPASpec(min, max int, target float64) HPASpec {
	return HPASpec{Min: min, Max: max, TargetUtilization: target, Tolerance: 0.1,
		ScaleUp:   HPARules{Select: "max", Policies: []HPAPolicy{{"pods", 4, 15 * time.Second}, {"percent", 100, 15 * time.Second}}},
		ScaleDown: HPARules{Select: "max", Stabilization: 300 * time.Second, Policies: []HPAPolicy{{"percent", 100, 15 * time.Second}}}}
}

// PodUsage is what a sync measured: the sum of the ready pods'
// utilisations and how many pods were ready, ignored (starting, not yet
// representative) and missing (crashed).
type PodUsage struct {
	Sum                     float64
	Ready, Ignored, Missing int
}

// Sync is one controller sync at now with current replicas (those the
// deployment counts), the measured usage and a floor raising the minimum
// (0: none). It returns the replicas to have; it records the scale event
// when that differs from current (the caller creates or removes pods).
// ok is false when there are no metrics for any ready pod (nothing
// changes, as the controller does).
func (h *HPA) Sync(now time.Time, current int, u PodUsage, floor int) (desired int, ok bool) {
	sp := h.Spec
	minR := min(max(sp.Min, floor), sp.Max)
	switch {
	case current > sp.Max:
		desired = sp.Max
	case current < minR:
		desired = minR
	case u.Ready == 0:
		return current, false // "did not receive metrics for any ready pods"
	default:
		desired = h.replicaCalc(current, u)
		desired = h.stabilize(now, current, desired)
		desired = h.rateLimit(now, current, desired, minR)
	}
	h.record(now, current, desired)
	return desired, true
}

// Raise records a scale-up the caller made outside a sync (a raised floor
// applied at once: below the minimum the target is the minimum, without
// behaviours).
func (h *HPA) Raise(now time.Time, current, to int) {
	if to > current {
		h.record(now, current, to)
	}
}

func (h *HPA) record(now time.Time, current, desired int) {
	switch {
	case desired > current:
		h.ups = append(prune(h.ups, now), stamped{now, desired - current})
	case desired < current:
		h.downs = append(prune(h.downs, now), stamped{now, current - desired})
	}
}

func prune(ev []stamped, now time.Time) []stamped {
	out := ev[:0]
	for _, e := range ev {
		if now.Sub(e.t) < 30*time.Minute {
			out = append(out, e)
		}
	}
	return out
}

// replicaCalc is GetResourceReplicas.
func (h *HPA) replicaCalc(current int, u PodUsage) int {
	target := h.Spec.TargetUtilization
	tol := h.Spec.Tolerance
	sum := u.Sum
	ratio := sum / float64(u.Ready) / target
	rebalanceIgnored := u.Ignored > 0 && ratio > 1
	if !rebalanceIgnored && u.Missing == 0 {
		if math.Abs(1-ratio) <= tol {
			return current
		}
		return int(math.Ceil(ratio * float64(u.Ready)))
	}
	n := u.Ready
	if u.Missing > 0 {
		if ratio < 1 {
			sum += float64(u.Missing) // 100% of the request
		}
		n += u.Missing
	}
	if rebalanceIgnored {
		n += u.Ignored // 0%
	}
	newRatio := sum / float64(n) / target
	if math.Abs(1-newRatio) <= tol || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return current
	}
	next := int(math.Ceil(newRatio * float64(n)))
	if (newRatio < 1 && next > current) || (newRatio > 1 && next < current) {
		return current
	}
	return next
}

// stabilize is stabilizeRecommendationWithBehaviors.
func (h *HPA) stabilize(now time.Time, current, desired int) int {
	upCut := now.Add(-h.Spec.ScaleUp.Stabilization)
	downCut := now.Add(-h.Spec.ScaleDown.Stabilization)
	up, down := desired, desired
	for _, r := range h.recs {
		if r.t.After(upCut) {
			up = min(up, r.n)
		}
		if r.t.After(downCut) {
			down = max(down, r.n)
		}
	}
	rec := current
	if rec < up {
		rec = up
	}
	if rec > down {
		rec = down
	}
	// Keep the recommendations either window may still need.
	keep := upCut
	if downCut.Before(keep) {
		keep = downCut
	}
	out := h.recs[:0]
	for _, r := range h.recs {
		if r.t.After(keep) {
			out = append(out, r)
		}
	}
	h.recs = append(out, stamped{now, desired})
	return rec
}

func changeInPeriod(events []stamped, now time.Time, period time.Duration) int {
	n := 0
	for _, e := range events {
		if e.t.After(now.Add(-period)) {
			n += e.n
		}
	}
	return n
}

// rateLimit is convertDesiredReplicasWithBehaviorRate.
func (h *HPA) rateLimit(now time.Time, current, desired, minR int) int {
	maxR := h.Spec.Max
	switch {
	case desired > current:
		r := h.Spec.ScaleUp
		if r.Select == "disabled" {
			return current
		}
		limit := math.MinInt
		if r.Select == "min" {
			limit = math.MaxInt
		}
		for _, p := range r.Policies {
			start := current - changeInPeriod(h.ups, now, p.Period) + changeInPeriod(h.downs, now, p.Period)
			var prop int
			if p.Type == "pods" {
				prop = start + p.Value
			} else {
				prop = int(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
			}
			if r.Select == "min" {
				limit = min(limit, prop)
			} else {
				limit = max(limit, prop)
			}
		}
		limit = max(limit, current)
		return min(desired, limit, maxR)
	case desired < current:
		r := h.Spec.ScaleDown
		if r.Select == "disabled" {
			return current
		}
		limit := math.MaxInt
		if r.Select == "min" {
			limit = math.MinInt
		}
		for _, p := range r.Policies {
			start := current - changeInPeriod(h.ups, now, p.Period) + changeInPeriod(h.downs, now, p.Period)
			var prop int
			if p.Type == "pods" {
				prop = start - p.Value
			} else {
				prop = int(float64(start) * (1 - float64(p.Value)/100))
			}
			if r.Select == "min" {
				limit = max(limit, prop)
			} else {
				limit = min(limit, prop)
			}
		}
		limit = min(limit, current)
		return max(desired, limit, minR)
	}
	return desired
}
