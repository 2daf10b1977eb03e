package rfc9111

import (
	"time"
)

// Policy is the part of the configuration the rules need.
type Policy struct {
	// HeuristicFraction of the time since Last-Modified is the heuristic
	// freshness lifetime (§4.2.2 suggests 10%, so 0.1).
	HeuristicFraction float64
	// MaxHeuristic caps a heuristic lifetime.
	MaxHeuristic time.Duration
	// TTLHint, when > 0, replaces the heuristic lifetime: it applies only
	// where §4.2.2 allows heuristic freshness at all (see HeuristicAllowed)
	// and never to responses to requests with Authorization or responses
	// carrying Set-Cookie, so it cannot lengthen anything the origin
	// limited.
	TTLHint time.Duration
	// AllowAuthorization lets responses to requests with Authorization be
	// stored when §3.5 permits (public, s-maxage or must-revalidate). Off,
	// they are never stored.
	AllowAuthorization bool
	// AllowSetCookie lets responses with Set-Cookie (or the obsolete
	// Set-Cookie2) be stored with that field. Off, such a response is not
	// stored, unless the origin named the field in no-cache="…" or
	// private="…", in which case it is stored without it.
	AllowSetCookie bool
	// StaleIfError is how stale a response may be served when the origin
	// fails and neither the response nor the request gave stale-if-error.
	StaleIfError time.Duration
	// MaxObjectBytes is the largest body stored; 0 means no limit here.
	MaxObjectBytes int64
	// MaxVaryFields bounds the fields a stored response may vary on.
	MaxVaryFields int
}

// Exchange is one response with what the rules need of the request that
// caused it and when it happened.
type Exchange struct {
	Method        string // of the request
	ReqHeader     Header
	Status        int
	RespHeader    Header
	RequestTime   time.Time // when the request was sent (§4.2.3 request_time)
	ResponseTime  time.Time // when the response was received (response_time)
	ContentLength int64     // -1 if unknown
}

// Analysis is what §3 and §4.2 decide about one response.
type Analysis struct {
	// Storable is false when the response must not (or, by lbsys's policy,
	// will not) be stored; NotStored then names the reason, a short token
	// used as a metric label and in Cache-Status detail.
	Storable  bool
	NotStored string

	CC Directives // the response's Cache-Control

	// Lifetime is the freshness lifetime (§4.2.1) and LifetimeFrom names
	// its source: "s-maxage", "max-age", "expires", "heuristic", "ttl-hint"
	// or "none".
	Lifetime     time.Duration
	LifetimeFrom string

	// Date is the response's Date (ResponseTime when absent or invalid).
	Date time.Time
	// CorrectedInitialAge is the age when received (§4.2.3).
	CorrectedInitialAge time.Duration

	// Vary are the canonical field names the response varies on; VaryStar
	// marks "Vary: *", which never matches (§4.1).
	Vary     []string
	VaryStar bool

	ETag         string
	LastModified string
}

// heuristicStatus are the status codes "heuristically cacheable by
// default" (RFC 9110 §15.1).
func heuristicStatus(code int) bool {
	switch code {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus are the final status codes whose caching semantics lbsys
// implements, for must-understand (§5.2.2.3). 206 and 304 are left out:
// lbsys does not store partial content or bare 304s.
func understoodStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308,
		400, 403, 404, 405, 410, 414, 500, 501, 502, 503, 504:
		return true
	}
	return false
}

// Not-stored reasons (metric label values and Cache-Status details).
const (
	ReasonMethod        = "method"
	ReasonStatus        = "status"
	ReasonNoStore       = "no-store"
	ReasonPrivate       = "private"
	ReasonAuthorization = "authorization"
	ReasonSetCookie     = "set-cookie"
	ReasonVaryStar      = "vary-star"
	ReasonVaryTooMany   = "vary-too-many"
	ReasonNotCacheable  = "not-cacheable" // no explicit freshness and not heuristically cacheable
	ReasonNoFreshness   = "no-freshness"  // would be stale at once with nothing to validate it
	ReasonTooLarge      = "too-large"
	ReasonTrailer       = "trailer"
)

// Analyze applies §3 (may the response be stored?) and §4.2.1–4.2.3
// (freshness lifetime and age) to one exchange.
func Analyze(x *Exchange, p *Policy) Analysis {
	rh := x.RespHeader
	a := Analysis{CC: ParseResponseCacheControl(rh["Cache-Control"])}
	a.ETag = rh.Get("Etag")
	a.LastModified = rh.Get("Last-Modified")
	a.Vary, a.VaryStar = ParseVary(rh["Vary"])

	// §4.2.3 age on receipt.
	a.Date = x.ResponseTime
	if d, ok := ParseHTTPDate(rh.Get("Date"), x.ResponseTime); ok {
		a.Date = d
	}
	age := ParseAge(rh["Age"])
	a.CorrectedInitialAge = CorrectedInitialAge(a.Date, age, x.RequestTime, x.ResponseTime)
	a.Lifetime, a.LifetimeFrom = lifetime(x, &a, p)
	if age == Invalid {
		a.Lifetime, a.LifetimeFrom = 0, "invalid-age"
	}

	a.NotStored = notStorable(x, &a, p)
	a.Storable = a.NotStored == ""
	return a
}

// notStorable returns why the response may not be stored, or "".
func notStorable(x *Exchange, a *Analysis, p *Policy) string {
	cc := &a.CC
	// §3: the request method is understood and cacheable. lbsys stores
	// responses to GET only (a HEAD response has no content to reuse).
	if x.Method != "GET" {
		return ReasonMethod
	}
	// The status is final; 206 (partial) and 304 are not stored whole.
	if x.Status < 200 || x.Status > 599 || x.Status == 206 || x.Status == 304 {
		return ReasonStatus
	}
	// must-understand: store only status codes we understand, and then
	// no-store no longer applies (§5.2.2.3).
	if cc.MustUnderstand {
		if !understoodStatus(x.Status) {
			return ReasonStatus
		}
	} else if cc.NoStore {
		return ReasonNoStore
	}
	if cc.Private {
		return ReasonPrivate // a shared cache (§5.2.2.7)
	}
	// §3.5: responses to requests with Authorization.
	if x.ReqHeader.Has("Authorization") {
		if !p.AllowAuthorization || !(cc.Public || cc.SMaxAge.Present() || cc.MustRevalidate) {
			return ReasonAuthorization
		}
	}
	if hasSetCookie(x.RespHeader) && !p.AllowSetCookie && !cookieNamed(cc) {
		return ReasonSetCookie
	}
	if a.VaryStar {
		return ReasonVaryStar // never matches a later request (§4.1)
	}
	if p.MaxVaryFields > 0 && len(a.Vary) > p.MaxVaryFields {
		return ReasonVaryTooMany
	}
	// A trailer section cannot be replayed by lbsys's store.
	if x.RespHeader.Has("Trailer") {
		return ReasonTrailer
	}
	if p.MaxObjectBytes > 0 && x.ContentLength > p.MaxObjectBytes {
		return ReasonTooLarge
	}
	// §3: at least one of public, max-age, s-maxage, Expires, or a status
	// heuristically cacheable by default.
	explicit := cc.MaxAge.Present() || cc.SMaxAge.Present() || x.RespHeader.Has("Expires")
	if !explicit && !cc.Public && !heuristicStatus(x.Status) {
		return ReasonNotCacheable
	}
	// Worth storing only if it can be reused: fresh for a while, servable
	// stale by an extension or the policy's stale-if-error, or validatable.
	if a.Lifetime <= 0 && a.ETag == "" && a.LastModified == "" && p.StaleIfError <= 0 &&
		!a.CC.StaleWhileRevalidate.Valid() && !a.CC.StaleIfError.Valid() {
		return ReasonNoFreshness
	}
	if cc.NoCache && a.ETag == "" && a.LastModified == "" {
		return ReasonNoFreshness // every use needs validation, and there is nothing to validate with
	}
	return ""
}

func hasSetCookie(h Header) bool { return h.Has("Set-Cookie") || h.Has("Set-Cookie2") }

// cookieNamed reports whether the origin itself listed Set-Cookie in a
// qualified no-cache or private directive: it asks that the field not be
// reused, and lbsys then stores the response without it.
func cookieNamed(cc *Directives) bool {
	named := func(list []string) bool {
		for _, f := range list {
			if f == "Set-Cookie" {
				return true
			}
		}
		return false
	}
	return named(cc.NoCacheFields) || named(cc.PrivateFields)
}

// HeuristicAllowed reports whether §4.2.2 allows a heuristic lifetime for a
// response: no explicit expiration (max-age, s-maxage, Expires) and a status
// heuristically cacheable by default or an explicit public. lbsys adds:
// not for responses that every use must validate (no-cache), not for
// responses to requests with Authorization and not for responses with
// Set-Cookie, so that neither a heuristic nor a TTL hint ever reaches them.
func HeuristicAllowed(x *Exchange, cc *Directives) bool {
	if cc.MaxAge.Present() || cc.SMaxAge.Present() || x.RespHeader.Has("Expires") {
		return false
	}
	if cc.NoCache || cc.NoStore || cc.Private {
		return false
	}
	if x.ReqHeader.Has("Authorization") || hasSetCookie(x.RespHeader) {
		return false
	}
	return cc.Public || heuristicStatus(x.Status)
}

// lifetime computes the freshness lifetime for a shared cache (§4.2.1).
func lifetime(x *Exchange, a *Analysis, p *Policy) (time.Duration, string) {
	cc := &a.CC
	switch {
	case cc.SMaxAge.Present():
		return cc.SMaxAge.Duration(), "s-maxage" // invalid: 0, i.e. stale
	case cc.MaxAge.Present():
		return cc.MaxAge.Duration(), "max-age"
	}
	if lines := x.RespHeader["Expires"]; len(lines) > 0 {
		// An invalid date, notably "0", means already expired (§5.3).
		exp, ok := ParseHTTPDate(lines[0], x.ResponseTime)
		if !ok {
			return 0, "expires"
		}
		if d := exp.Sub(a.Date); d > 0 {
			return d, "expires"
		}
		return 0, "expires"
	}
	if !HeuristicAllowed(x, cc) {
		return 0, "none"
	}
	if p.TTLHint > 0 {
		return p.TTLHint, "ttl-hint"
	}
	lm, ok := ParseHTTPDate(a.LastModified, x.ResponseTime)
	if !ok || p.HeuristicFraction <= 0 {
		return 0, "none"
	}
	since := a.Date.Sub(lm)
	if since <= 0 {
		return 0, "none"
	}
	h := time.Duration(float64(since) * p.HeuristicFraction)
	if p.MaxHeuristic > 0 && h > p.MaxHeuristic {
		h = p.MaxHeuristic
	}
	return h, "heuristic"
}

// ParseAge reads the Age field (§5.1): exactly one line holding one
// delta-seconds. Anything else (a list, several lines, a sign, a fraction,
// parameters) is Invalid: the cache cannot tell how old the response is,
// and §4.2.1 encourages treating invalid freshness information as stale.
func ParseAge(lines []string) Delta {
	if len(lines) == 0 {
		return Absent
	}
	if len(lines) > 1 {
		return Invalid
	}
	return parseDelta(trimOWS(lines[0]))
}

// CorrectedInitialAge is the age of a response when it was received
// (§4.2.3): the larger of the apparent age (response_time − date_value, not
// below 0) and the Age value corrected by the response delay.
func CorrectedInitialAge(date time.Time, age Delta, requestTime, responseTime time.Time) time.Duration {
	apparent := responseTime.Sub(date)
	if apparent < 0 {
		apparent = 0
	}
	delay := responseTime.Sub(requestTime)
	if delay < 0 {
		delay = 0
	}
	corrected := age.Duration() + delay
	if apparent > corrected {
		return apparent
	}
	return corrected
}
