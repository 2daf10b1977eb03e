package rfc9111

import "time"

// Stored is what the serving decision needs to remember of a stored
// response; it is computed once, when the response is stored or updated,
// so that a hit costs a subtraction and a few comparisons.
type Stored struct {
	ResponseTime        time.Time
	CorrectedInitialAge time.Duration
	Lifetime            time.Duration

	// NoCache: every use needs successful validation (§5.2.2.4).
	NoCache bool
	// MustRevalidate: once stale, never served without validation, not
	// even when the origin is unreachable (must-revalidate, and for a
	// shared cache proxy-revalidate and s-maxage: §5.2.2.2, 5.2.2.8,
	// 5.2.2.10).
	MustRevalidate bool
	// StaleWhileRevalidate and StaleIfError are the response's RFC 5861
	// windows; negative when absent.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
}

// NewStored derives the serving state of an analysed exchange.
func NewStored(x *Exchange, a *Analysis) Stored {
	s := Stored{
		ResponseTime:         x.ResponseTime,
		CorrectedInitialAge:  a.CorrectedInitialAge,
		Lifetime:             a.Lifetime,
		NoCache:              a.CC.NoCache,
		MustRevalidate:       a.CC.MustRevalidate || a.CC.ProxyRevalidate || a.CC.SMaxAge.Present(),
		StaleWhileRevalidate: -1,
		StaleIfError:         -1,
	}
	if a.CC.StaleWhileRevalidate.Valid() {
		s.StaleWhileRevalidate = a.CC.StaleWhileRevalidate.Duration()
	}
	if a.CC.StaleIfError.Valid() {
		s.StaleIfError = a.CC.StaleIfError.Duration()
	}
	return s
}

// CurrentAge is the response's age at now (§4.2.3): its corrected initial
// age plus the time it has been resident.
func (s *Stored) CurrentAge(now time.Time) time.Duration {
	resident := now.Sub(s.ResponseTime)
	if resident < 0 {
		resident = 0
	}
	return s.CorrectedInitialAge + resident
}

// Retention is how long after ResponseTime the stored response can still be
// of use: while fresh, then while it may be served stale by its own
// directives or the policy, then for keep (to be validated cheaply).
func (s *Stored) Retention(p *Policy, keep time.Duration) time.Duration {
	life := s.Lifetime - s.CorrectedInitialAge
	if life < 0 {
		life = 0
	}
	extra := keep
	if !s.NoCache && !s.MustRevalidate {
		for _, w := range []time.Duration{s.StaleWhileRevalidate, s.StaleIfError, p.StaleIfError} {
			if w > extra {
				extra = w
			}
		}
	}
	return life + extra
}

// Action is what to do with a request for which a stored response matched.
type Action uint8

const (
	// Serve the stored response: it is fresh and the request accepts it.
	Serve Action = iota
	// ServeStale serves the stale response: the request's max-stale
	// accepts it.
	ServeStale
	// ServeStaleRevalidate serves the stale response within its
	// stale-while-revalidate window and revalidates it in the background.
	ServeStaleRevalidate
	// Validate forwards the request (conditionally, when the stored
	// response has a validator) before anything is served.
	Validate
)

// String names the action, for logs and tests.
func (a Action) String() string {
	switch a {
	case Serve:
		return "serve"
	case ServeStale:
		return "serve-stale"
	case ServeStaleRevalidate:
		return "serve-stale-revalidate"
	case Validate:
		return "validate"
	}
	return "unknown"
}

// Verdict is the decision for one request.
type Verdict struct {
	Action Action
	// ByRequest is true when the request's own directives (no-cache,
	// max-age, min-fresh) asked for validation of a response that was
	// otherwise usable (Cache-Status fwd=request rather than fwd=stale).
	ByRequest bool
	// StaleIfError: when validation fails (no response, or 500, 502, 503,
	// 504), the stale response may be served instead of the error.
	StaleIfError bool
	// Age is the stored response's current age.
	Age time.Duration
}

// Evaluate decides whether a stored response that matched the request (same
// key, Vary satisfied) may be served (§4, §4.2.4, RFC 5861). req is the
// request's Cache-Control (zero value with Absent deltas when none; see
// NoDirectives).
func Evaluate(s *Stored, req *Directives, now time.Time, p *Policy) Verdict {
	age := s.CurrentAge(now)
	v := Verdict{Action: decide(s, req, age), Age: age}
	fresh := s.Lifetime > age
	if v.Action == Validate {
		v.ByRequest = fresh && !s.NoCache
		// On a failed validation: a fresh response may still be served
		// (only the request's preference went unmet); a stale one as RFC
		// 5861 allows, never under no-cache or must-revalidate.
		switch {
		case s.NoCache:
		case fresh:
			v.StaleIfError = true
		case !s.MustRevalidate:
			v.StaleIfError = staleOnError(s, req, p, age-s.Lifetime)
		}
	}
	return v
}

func decide(s *Stored, req *Directives, age time.Duration) Action {
	if s.NoCache {
		return Validate // §5.2.2.4: every use is validated
	}
	// Request directives (§5.2.1) can only ask for more validation.
	if req.NoCache ||
		req.MaxAge.Valid() && age > req.MaxAge.Duration() ||
		req.MinFresh.Valid() && s.Lifetime-age < req.MinFresh.Duration() {
		return Validate
	}
	if s.Lifetime > age {
		return Serve
	}
	if s.MustRevalidate {
		return Validate // §4.2.4: never stale without validation
	}
	staleness := age - s.Lifetime
	if req.MaxStaleAny || req.MaxStale.Valid() && staleness <= req.MaxStale.Duration() {
		return ServeStale
	}
	if s.StaleWhileRevalidate >= 0 && staleness <= s.StaleWhileRevalidate {
		return ServeStaleRevalidate
	}
	return Validate
}

// staleOnError applies RFC 5861 §4: the request's stale-if-error, when
// given, is the client's limit; otherwise the response's; otherwise the
// policy's default window.
func staleOnError(s *Stored, req *Directives, p *Policy, staleness time.Duration) bool {
	if staleness < 0 {
		staleness = 0 // fresh but the request asked for validation
	}
	switch {
	case req.StaleIfError.Valid():
		return staleness <= req.StaleIfError.Duration()
	case s.StaleIfError >= 0:
		return staleness <= s.StaleIfError
	default:
		return p.StaleIfError > 0 && staleness <= p.StaleIfError
	}
}

// NoDirectives is the Directives of a request without Cache-Control.
var NoDirectives = Directives{MaxAge: Absent, SMaxAge: Absent, MaxStale: Absent, MinFresh: Absent,
	StaleWhileRevalidate: Absent, StaleIfError: Absent}

// ErrorStatus reports whether an origin status lets a stale response be
// served in its place under stale-if-error (RFC 5861 §4).
func ErrorStatus(code int) bool {
	switch code {
	case 500, 502, 503, 504:
		return true
	}
	return false
}
