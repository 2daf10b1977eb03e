package retry

import (
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

func TestPolicy(t *testing.T) {
	two, pct, minc := 2, 20.0, 3
	p := FromConfig(config.Retries{Attempts: &two, On: []string{"connect_failure", "reset", "gateway_error"}, BudgetPercent: &pct,
		MinRetryConcurrency: &minc, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond})
	for _, tc := range []struct {
		cond       Condition
		attempt    int
		idempotent bool
		want       bool
	}{
		{ConnectFailure, 1, false, true}, // nothing was sent
		{Reset, 1, false, false},         // a POST that may have been received
		{Reset, 1, true, true},
		{StatusCondition(503), 2, true, true},
		{StatusCondition(503), 3, true, false}, // attempts used up
		{StatusCondition(500), 1, true, false}, // 5xx not configured
		{Timeout, 1, true, false},
		{0, 1, true, false},
	} {
		if got := p.Wants(tc.cond, tc.attempt, tc.idempotent); got != tc.want {
			t.Errorf("Wants(%s, %d, %v) = %v, want %v", tc.cond.Name(), tc.attempt, tc.idempotent, got, tc.want)
		}
	}
	if b := p.Budget(10); b != 3 {
		t.Errorf("budget at 10 active %d, want the floor 3", b)
	}
	if b := p.Budget(100); b != 20 {
		t.Errorf("budget at 100 active %d, want 20%%", b)
	}
	max := func(n int64) int64 { return n - 1 }
	for attempt, want := range map[int]time.Duration{1: 25 * time.Millisecond, 2: 50 * time.Millisecond, 4: 200 * time.Millisecond, 5: 250 * time.Millisecond, 40: 250 * time.Millisecond} {
		if got := p.Backoff(attempt, max); got != want {
			t.Errorf("largest backoff of retry %d: %v, want %v", attempt, got, want)
		}
	}
	if got := p.Backoff(1, func(int64) int64 { return 0 }); got != 1 {
		t.Errorf("smallest backoff %v, want 1ns (full jitter over (0, base])", got)
	}
	if got := (Policy{}).Backoff(3, max); got != 0 {
		t.Errorf("no backoff configured: %v", got)
	}
}
