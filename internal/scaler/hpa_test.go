package scaler

import (
	"testing"
	"time"
)

// TestHPAAlgorithm checks the replica calculator, the stabilisation window
// and the rate limits against the Kubernetes behaviour with default rules.
func TestHPAAlgorithm(t *testing.T) {
	h := &HPA{Spec: DefaultHPASpec(1, 50, 0.6)}
	// Target 0.6: 10 ready pods at 0.63 average is within the 10% tolerance.
	if got := h.replicaCalc(10, PodUsage{Sum: 6.3, Ready: 10}); got != 10 {
		t.Errorf("within tolerance: %d, want 10", got)
	}
	if got := h.replicaCalc(10, PodUsage{Sum: 9, Ready: 10}); got != 15 {
		t.Errorf("ratio 1.5: %d, want 15", got)
	}
	// Scaling up with 2 starting pods: they count as 0%: 9/(12·0.6) = 1.25 → 15.
	if got := h.replicaCalc(12, PodUsage{Sum: 9, Ready: 10, Ignored: 2}); got != 15 {
		t.Errorf("with unready pods: %d, want 15", got)
	}
	// Scaling down with a crashed pod: it counts as 100%: (3+1)/(11·0.6) = 0.606 → 7.
	if got := h.replicaCalc(11, PodUsage{Sum: 3, Ready: 10, Missing: 1}); got != 7 {
		t.Errorf("with a missing pod: %d, want 7", got)
	}

	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// Rate limits, default rules: up max(+4, +100%) per 15s, down -100%.
	if got := h.rateLimit(at(0), 10, 100, 1); got != 20 {
		t.Errorf("10 → 100 limited to %d, want 20 (+100%%)", got)
	}
	if got := h.rateLimit(at(0), 2, 100, 1); got != 6 {
		t.Errorf("2 → 100 limited to %d, want 6 (+4 pods)", got)
	}
	h.ups = []stamped{{t: at(5), n: 10}} // 10 → 20 five seconds ago
	if got := h.rateLimit(at(10), 20, 100, 1); got != 20 {
		t.Errorf("within the period of a doubling: %d, want 20 (no more growth)", got)
	}
	if got := h.rateLimit(at(21), 20, 100, 1); got != 40 {
		t.Errorf("after the period: %d, want 40", got)
	}
	if got := h.rateLimit(at(0), 40, 2, 3); got != 3 {
		t.Errorf("down to the minimum: %d, want 3", got)
	}

	// Stabilisation: a scale-down waits for the highest recommendation of
	// the last 300s.
	h.recs = nil
	if got := h.stabilize(at(0), 10, 10); got != 10 {
		t.Errorf("stabilize: %d", got)
	}
	if got := h.stabilize(at(60), 10, 4); got != 10 {
		t.Errorf("a drop 60s after a recommendation of 10: %d, want 10 (held by the window)", got)
	}
	if got := h.stabilize(at(301), 10, 4); got != 4 {
		t.Errorf("after the window: %d, want 4", got)
	}
	if got := h.stabilize(at(302), 4, 30); got != 30 {
		t.Errorf("scale-up is not stabilised by default: %d, want 30", got)
	}
}

// Sync: floors raise the minimum without behaviours; no metrics, no change.
func TestHPASync(t *testing.T) {
	h := &HPA{Spec: DefaultHPASpec(2, 20, 0.6)}
	if d, ok := h.Sync(t0, 2, PodUsage{}, 0); ok || d != 2 {
		t.Errorf("no ready pods: %d %v, want 2 and no change", d, ok)
	}
	if d, ok := h.Sync(t0, 2, PodUsage{}, 12); !ok || d != 12 {
		t.Errorf("a floor of 12: %d, want 12 at once (below the minimum the target is the minimum)", d)
	}
	if d, _ := h.Sync(t0, 12, PodUsage{Sum: 12 * 0.6, Ready: 12}, 40); d != 20 {
		t.Errorf("a floor above max: %d, want max 20", d)
	}
	// The floor gone, utilisation low: the scale-down waits for the
	// stabilisation window of the recommendations seen.
	h2 := &HPA{Spec: DefaultHPASpec(2, 20, 0.6)}
	h2.Sync(t0, 10, PodUsage{Sum: 10 * 0.6, Ready: 10}, 0)
	if d, _ := h2.Sync(t0.Add(60*time.Second), 10, PodUsage{Sum: 1, Ready: 10}, 0); d != 10 {
		t.Errorf("one minute later: %d, want 10 (stabilisation)", d)
	}
	if d, _ := h2.Sync(t0.Add(400*time.Second), 10, PodUsage{Sum: 1, Ready: 10}, 0); d != 2 {
		t.Errorf("after the window: %d, want 2", d)
	}
}
