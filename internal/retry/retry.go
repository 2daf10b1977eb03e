// Package retry is the retry rule the proxy and the simulator share: which
// failed attempts may be retried, how many times, within what budget and
// after what backoff. It is pure decision code (DESIGN.md principle 2):
// the caller passes the random draw and does the waiting, so the proxy
// retries on wall time and the simulator on its virtual clock with the
// same decisions.
//
// The rule, as Envoy and Finagle do it: an attempt is retried when its
// outcome meets one of the configured conditions, the request is safe to
// replay (an idempotent method or an Idempotency-Key; a failed connect
// sent nothing, so it is always safe), attempts remain, and the service's
// retries in flight stay within the budget (a share of its active
// requests, at least a minimum: retries never multiply an overload), after
// a full-jitter exponential backoff (AWS Architecture Blog, "Exponential
// Backoff and Jitter").
package retry

import (
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// Condition is a set of retry conditions, as a bit set.
type Condition uint8

// The conditions of config's retries.on.
const (
	ConnectFailure Condition = 1 << iota // nothing was sent: connection refused or timed out
	Reset                                // the connection failed after the request was sent
	Timeout                              // the per-try timeout passed
	Gateway                              // 502, 503 or 504
	Server                               // any 5xx
)

var names = map[string]Condition{"connect_failure": ConnectFailure, "reset": Reset, "timeout": Timeout, "gateway_error": Gateway, "5xx": Server}

// Name is the condition's name in metrics (the first bit set).
func (c Condition) Name() string {
	switch {
	case c&ConnectFailure != 0:
		return "connect_failure"
	case c&Reset != 0:
		return "reset"
	case c&Timeout != 0:
		return "timeout"
	case c&Gateway != 0:
		return "gateway_error"
	case c&Server != 0:
		return "5xx"
	}
	return "none"
}

// StatusCondition is what a response status meets.
func StatusCondition(code int) Condition {
	switch {
	case code == 502 || code == 503 || code == 504:
		return Gateway | Server
	case code >= 500 && code <= 599:
		return Server
	}
	return 0
}

// Policy is a service's retry rule.
type Policy struct {
	// Attempts is the number of retries after the first try.
	Attempts int
	// On are the conditions retried.
	On Condition
	// BudgetPercent of the service's active requests may be retries in
	// flight, at least MinConcurrency.
	BudgetPercent  float64
	MinConcurrency int64
	// BackoffBase doubles per retry up to BackoffMax.
	BackoffBase, BackoffMax time.Duration
}

// FromConfig derives the policy of a (defaulted, validated) configuration.
func FromConfig(r config.Retries) Policy {
	p := Policy{BackoffBase: r.BackoffBase, BackoffMax: r.BackoffMax}
	if r.Attempts != nil {
		p.Attempts = *r.Attempts
	}
	if r.BudgetPercent != nil {
		p.BudgetPercent = *r.BudgetPercent
	}
	if r.MinRetryConcurrency != nil {
		p.MinConcurrency = int64(*r.MinRetryConcurrency)
	}
	for _, on := range r.On {
		p.On |= names[on]
	}
	return p
}

// Wants reports whether the policy retries an attempt that met cond,
// after attempt tries (1 after the first), for a request safe to replay.
// A connect failure sent nothing, so it may be retried even when the
// request is not idempotent.
func (p Policy) Wants(cond Condition, attempt int, idempotent bool) bool {
	if attempt > p.Attempts || cond&p.On == 0 {
		return false
	}
	return idempotent || cond&ConnectFailure != 0
}

// Budget is the most retries the service may have in flight with active
// requests in flight.
func (p Policy) Budget(active int64) int64 {
	limit := int64(p.BudgetPercent / 100 * float64(active))
	if limit < p.MinConcurrency {
		limit = p.MinConcurrency
	}
	return limit
}

// Backoff is the wait before retry number attempt (1 for the first
// retry): a full jitter over base·2^(attempt−1), capped at BackoffMax.
// draw(n) returns a uniform integer in [0, n) (rand.Int64N, or the
// simulator's stream).
func (p Policy) Backoff(attempt int, draw func(n int64) int64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	b := p.BackoffBase << (attempt - 1)
	if b > p.BackoffMax || b <= 0 {
		b = p.BackoffMax
	}
	if b <= 0 {
		return 0
	}
	return time.Duration(draw(int64(b)) + 1)
}
