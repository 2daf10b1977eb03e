package change

import (
	"fmt"
	"math"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// Policy holds the rules of the workflow and the canary.
type Policy struct {
	// MaxWeightMovePercent bounds how far a standard change may move any
	// endpoint's weight, relative to the stable version. Default 20.
	MaxWeightMovePercent float64 `json:"max_weight_move_percent"`
	// RequireBlessed: a standard change's services must carry why.blessed.
	// Default true.
	RequireBlessed bool `json:"require_blessed"`
	// SelfApproval lets a requester approve their own normal change.
	// Default false (separation of duties).
	SelfApproval bool `json:"self_approval"`
	// CanaryFraction of the active proxies gets a new version first; 0
	// disables canaries. Default 0.25.
	CanaryFraction float64 `json:"canary_fraction"`
	// CanaryWindow is how long the canary runs once every canary proxy
	// applied the version. Default 60s.
	CanaryWindow directive.Duration `json:"canary_window"`
	// MaxErrorRateIncrease: a canary whose error rate exceeds the
	// baseline's by more than this (absolute, 0.02 = 2 points) regresses.
	MaxErrorRateIncrease float64 `json:"max_error_rate_increase"`
	// MaxP99Ratio and P99SlackMs: a canary whose p99 exceeds
	// baseline×ratio + slack regresses. Defaults 1.5 and 10.
	MaxP99Ratio float64 `json:"max_p99_ratio"`
	P99SlackMs  float64 `json:"p99_slack_ms"`
	// MinRequests per service on the canary before it is judged. Default 20.
	MinRequests int64 `json:"min_requests"`
	// RolloutTimeout bounds how long proxies may take to apply a version.
	// Default 5m.
	RolloutTimeout directive.Duration `json:"rollout_timeout"`
	// ProxyTTL: a proxy not heard from for this long no longer counts for
	// rollouts. Default 60s.
	ProxyTTL directive.Duration `json:"proxy_ttl"`
	// AuditLimit and HistoryLimit bound the audit log and the directive
	// versions kept. Defaults 10000 and 1000. The audit log is trimmed in
	// batches: it holds between AuditLimit and AuditLimit×1.125 entries.
	AuditLimit   int `json:"audit_limit"`
	HistoryLimit int `json:"history_limit"`
	// ClosedChangeLimit bounds the closed and canceled change records kept
	// in the state; older ones are archived (each coordinator appends them
	// to archive/changes.jsonl in its data directory). Open changes are
	// always kept. Default 1000.
	ClosedChangeLimit int `json:"closed_change_limit"`
	// IdempotencyKeyTTL is how long (in log time) an idempotency key is
	// remembered. A retry with the same key within it returns the first
	// result. Default 24h.
	IdempotencyKeyTTL directive.Duration `json:"idempotency_key_ttl"`
	// MaxClockStep bounds how far one entry may move the machine's clock
	// forward; a command time further ahead is clamped (and audited). The
	// leader proposes a tick when the log time lags its clock by half of
	// it, so an idle cluster keeps up. Default 1m.
	MaxClockStep directive.Duration `json:"max_clock_step"`
	// AbortErrorRate: a canary whose error rate reaches this (absolute,
	// 0.5 = 50%) and exceeds the baseline's by more than
	// MaxErrorRateIncrease, with at least MinRequests requests, fails at
	// once instead of at the end of the window. 0 disables. Default 0.5.
	AbortErrorRate float64 `json:"abort_error_rate"`
	// AbortP99Ratio: a canary whose p99 exceeds baseline×ratio +
	// P99SlackMs (both with at least MinRequests requests) fails at once.
	// 0 disables. Default 5.
	AbortP99Ratio float64 `json:"abort_p99_ratio"`
}

// DefaultPolicy returns the documented defaults.
func DefaultPolicy() Policy {
	return Policy{
		MaxWeightMovePercent: 20,
		RequireBlessed:       true,
		CanaryFraction:       0.25,
		CanaryWindow:         directive.Duration(60 * time.Second),
		MaxErrorRateIncrease: 0.02,
		MaxP99Ratio:          1.5,
		P99SlackMs:           10,
		MinRequests:          20,
		RolloutTimeout:       directive.Duration(5 * time.Minute),
		ProxyTTL:             directive.Duration(60 * time.Second),
		AuditLimit:           10000,
		HistoryLimit:         1000,
		ClosedChangeLimit:    1000,
		IdempotencyKeyTTL:    directive.Duration(24 * time.Hour),
		MaxClockStep:         directive.Duration(time.Minute),
		AbortErrorRate:       0.5,
		AbortP99Ratio:        5,
	}
}

// Validate checks the policy's ranges.
func (p Policy) Validate() error {
	fin := func(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
	switch {
	case !fin(p.MaxWeightMovePercent) || p.MaxWeightMovePercent < 0:
		return fmt.Errorf("max_weight_move_percent: want >= 0, got %v", p.MaxWeightMovePercent)
	case !fin(p.CanaryFraction) || p.CanaryFraction < 0 || p.CanaryFraction > 1:
		return fmt.Errorf("canary_fraction: want 0..1, got %v", p.CanaryFraction)
	case p.CanaryWindow <= 0:
		return fmt.Errorf("canary_window: want > 0, got %s", p.CanaryWindow.Std())
	case !fin(p.MaxErrorRateIncrease) || p.MaxErrorRateIncrease < 0 || p.MaxErrorRateIncrease > 1:
		return fmt.Errorf("max_error_rate_increase: want 0..1, got %v", p.MaxErrorRateIncrease)
	case !fin(p.MaxP99Ratio) || p.MaxP99Ratio < 1:
		return fmt.Errorf("max_p99_ratio: want >= 1, got %v", p.MaxP99Ratio)
	case !fin(p.P99SlackMs) || p.P99SlackMs < 0:
		return fmt.Errorf("p99_slack_ms: want >= 0, got %v", p.P99SlackMs)
	case p.MinRequests < 0:
		return fmt.Errorf("min_requests: want >= 0, got %d", p.MinRequests)
	case p.RolloutTimeout <= 0:
		return fmt.Errorf("rollout_timeout: want > 0, got %s", p.RolloutTimeout.Std())
	case p.ProxyTTL <= 0:
		return fmt.Errorf("proxy_ttl: want > 0, got %s", p.ProxyTTL.Std())
	case p.AuditLimit < 100 || p.HistoryLimit < 2:
		return fmt.Errorf("audit_limit >= 100 and history_limit >= 2, got %d and %d", p.AuditLimit, p.HistoryLimit)
	case p.ClosedChangeLimit < 10:
		return fmt.Errorf("closed_change_limit: want >= 10, got %d", p.ClosedChangeLimit)
	case p.IdempotencyKeyTTL < directive.Duration(time.Minute):
		return fmt.Errorf("idempotency_key_ttl: want >= 1m (retries must find their key), got %s", p.IdempotencyKeyTTL.Std())
	case p.MaxClockStep < directive.Duration(time.Second):
		return fmt.Errorf("max_clock_step: want >= 1s, got %s", p.MaxClockStep.Std())
	case !fin(p.AbortErrorRate) || p.AbortErrorRate < 0 || p.AbortErrorRate > 1:
		return fmt.Errorf("abort_error_rate: want 0 (off) or up to 1, got %v", p.AbortErrorRate)
	case !fin(p.AbortP99Ratio) || p.AbortP99Ratio != 0 && p.AbortP99Ratio < p.MaxP99Ratio:
		return fmt.Errorf("abort_p99_ratio: want 0 (off) or >= max_p99_ratio (%v), got %v", p.MaxP99Ratio, p.AbortP99Ratio)
	}
	return nil
}
