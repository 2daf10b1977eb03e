package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Step is a step of the shopping funnel a session walks.
type Step int

// The funnel's steps, in order. Payment is not a step of its own: POST
// /checkout charges the payment service server-side (docs/shop-api.md).
const (
	StepBrowse   Step = iota // a catalog page, sometimes a search
	StepProduct              // a product page and its stock
	StepCart                 // the cart, then adding the product
	StepCheckout             // POST /checkout (reserve, charge, commit)
	numSteps
)

var stepNames = [numSteps]string{"browse", "product", "cart", "checkout"}

// String returns the step's name as used in --funnel.
func (s Step) String() string {
	if s >= 0 && s < numSteps {
		return stepNames[s]
	}
	return "step(" + strconv.Itoa(int(s)) + ")"
}

// Funnel gives, for each step, the fraction of all sessions that reach it
// (cumulative, not conditional): browse=1,product=0.6,cart=0.3,checkout=0.1
// means every session browses, 60% open a product, 30% add it to the cart
// and 10% check out. Fractions must not increase along the funnel, and
// browse must be 1: a session is a visit, and every visit starts on the
// catalog.
type Funnel [numSteps]float64

// DefaultFunnel is a typical shop's conversion.
var DefaultFunnel = Funnel{1, 0.6, 0.3, 0.1}

// searchShare is the share of browse steps that also search: it makes the
// search class (×3 service time in the shop) part of every session mix.
const searchShare = 0.25

// requestsPerStep is how many requests each step sends (browse: one
// listing plus a search in searchShare of sessions).
var requestsPerStep = [numSteps]float64{1 + searchShare, 2, 2, 1}

// ParseFunnel parses "browse=1,product=0.6,cart=0.3,checkout=0.1"; steps
// not given keep their DefaultFunnel value.
func ParseFunnel(s string) (Funnel, error) {
	f := DefaultFunnel
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return f, fmt.Errorf("funnel %q: %q is not step=fraction (steps: browse, product, cart, checkout)", s, kv)
		}
		step := -1
		for i, n := range stepNames {
			if strings.EqualFold(strings.TrimSpace(k), n) {
				step = i
			}
		}
		if step < 0 {
			return f, fmt.Errorf("funnel %q: unknown step %q (steps: browse, product, cart, checkout; payment happens inside checkout)", s, k)
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(x) {
			return f, fmt.Errorf("funnel %q: %s: %q is not a fraction between 0 and 1", s, k, v)
		}
		f[step] = x
	}
	return f, f.Validate()
}

// Validate checks the fractions.
func (f Funnel) Validate() error {
	for i, x := range f {
		if x < 0 || x > 1 || math.IsNaN(x) {
			return fmt.Errorf("funnel: %s=%g: fractions are between 0 and 1", Step(i), x)
		}
		if i > 0 && x > f[i-1] {
			return fmt.Errorf("funnel: %s=%g is more than %s=%g: fractions are of all sessions and cannot grow along the funnel", Step(i), x, Step(i-1), f[i-1])
		}
	}
	if f[StepBrowse] != 1 {
		return fmt.Errorf("funnel: browse=%g: must be 1 (every session starts on the catalog; the other steps are fractions of all sessions)", f[StepBrowse])
	}
	return nil
}

// ExpectedRequests is the mean number of requests of a session (without
// retries): sessions mode divides the request rate by it to get the
// session-start rate, so that --rate means requests per second in both
// modes.
func (f Funnel) ExpectedRequests() float64 {
	n := 0.0
	for i, x := range f {
		n += x * requestsPerStep[i]
	}
	return n
}

// String formats the funnel as the --funnel flag takes it.
func (f Funnel) String() string {
	parts := make([]string, numSteps)
	for i, x := range f {
		parts[i] = stepNames[i] + "=" + strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// ThinkDist is the distribution of think times between funnel steps.
type ThinkDist string

// Think-time distributions. Both have the configured mean; log-normal
// (σ = 1) matches measured web think times (many quick clicks, a long
// tail); exponential is the memoryless textbook model.
const (
	ThinkLogNormal   ThinkDist = "lognormal"
	ThinkExponential ThinkDist = "exponential"
)

// ParseThinkDist checks a --think-dist value.
func ParseThinkDist(s string) (ThinkDist, error) {
	switch ThinkDist(s) {
	case ThinkLogNormal, ThinkExponential:
		return ThinkDist(s), nil
	}
	return "", fmt.Errorf("think distribution %q: use lognormal or exponential", s)
}

// maxThinkFactor caps a think time at this many means, so one session
// cannot idle through a whole short run.
const maxThinkFactor = 20

// checkoutBackoff is the wait before the n-th checkout retry (n × this):
// a careful client backs off a little before repeating a payment.
const checkoutBackoff = 100 * time.Millisecond

type sessionOutcome int

const (
	outcomeCompleted sessionOutcome = iota
	outcomeAbandoned
	outcomeUnfinished
)

// session is one visitor walking the funnel. It runs in its own goroutine
// and carries its cookies like a browser.
type session struct {
	g       *gen
	id      uint64
	rng     *rand.Rand
	wake    chan struct{}
	jar     []string // "name=value"
	cookie  string   // the Cookie header built from jar
	product int
	buf     []string // reused for Response.Cookies
}

// runSession walks one session from its scheduled start.
func (g *gen) runSession(id uint64, start time.Time) {
	defer g.wg.Done()
	defer g.st.sessActive.Add(-1)
	s := &session{g: g, id: id, rng: rand.New(rand.NewPCG(g.cfg.Seed, id))}
	// Where this visitor leaves the funnel is decided up front from one
	// draw, so the reach fractions are exactly the funnel's in expectation.
	u := s.rng.Float64()
	f := g.funnelAt(start.Sub(g.start))
	steps := 0
	for steps < int(numSteps) && u < f[steps] {
		steps++
	}
	out := s.walk(steps, start)
	switch out {
	case outcomeCompleted:
		g.st.sessCompleted.Add(1)
	case outcomeAbandoned:
		g.st.sessAbandoned.Add(1)
	default:
		g.st.sessUnfinished.Add(1)
	}
}

func (s *session) walk(steps int, next time.Time) sessionOutcome {
	for step := Step(0); int(step) < steps; step++ {
		if step > 0 && s.g.cfg.Think > 0 {
			next = time.Now().Add(s.think())
			if !s.sleepUntil(next) {
				return outcomeUnfinished
			}
		} else if step > 0 {
			next = time.Now()
		}
		if s.g.stopped() {
			return outcomeUnfinished
		}
		s.g.st.reached[step].Add(1)
		var out sessionOutcome
		switch step {
		case StepBrowse:
			out = s.browse(next)
		case StepProduct:
			out = s.productPage(next)
		case StepCart:
			out = s.addToCart(next)
		case StepCheckout:
			out = s.checkout(next)
		}
		if out != outcomeCompleted {
			return out
		}
	}
	return outcomeCompleted
}

func (s *session) think() time.Duration {
	mean := float64(s.g.cfg.Think)
	var d float64
	if s.g.cfg.ThinkDist == ThinkExponential {
		d = mean * s.rng.ExpFloat64()
	} else {
		const sigma = 1.0
		mu := math.Log(mean) - sigma*sigma/2 // so that the mean is `mean`
		d = math.Exp(mu + sigma*s.rng.NormFloat64())
	}
	return time.Duration(min(d, maxThinkFactor*mean))
}

// sleepUntil waits for t or the end of the run (false). The wake-up comes
// from the run's scheduler, as punctual as the arrivals.
func (s *session) sleepUntil(t time.Time) bool {
	if time.Until(t) <= s.g.sched.early {
		return !s.g.stopped()
	}
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	s.g.sched.wakeAt(t, s.wake)
	select {
	case <-s.wake:
		return true
	case <-s.g.stop:
		return false
	}
}

// outcome maps a request's result to the session's fate.
func outcomeOf(k ErrorKind) sessionOutcome {
	switch k {
	case KindNone:
		return outcomeCompleted
	case KindUnfinished:
		return outcomeUnfinished
	}
	return outcomeAbandoned
}

func (s *session) browse(sched time.Time) sessionOutcome {
	p := s.g.paths
	req := Request{Method: "GET", Path: p.catalog[s.rng.IntN(len(p.catalog))]}
	if _, k := s.do(&req, ClassCatalog, sched); k != KindNone {
		return outcomeOf(k)
	}
	if s.rng.Float64() < searchShare {
		req = Request{Method: "GET", Path: p.search[s.rng.IntN(len(p.search))]}
		_, k := s.do(&req, ClassSearch, time.Now())
		return outcomeOf(k)
	}
	return outcomeCompleted
}

func (s *session) productPage(sched time.Time) sessionOutcome {
	p := s.g.paths
	s.product = s.g.pick(s.rng, sched.Sub(s.g.start))
	req := Request{Method: "GET", Path: p.product[s.product]}
	if _, k := s.do(&req, ClassProduct, sched); k != KindNone {
		return outcomeOf(k)
	}
	req = Request{Method: "GET", Path: p.stock[s.product]}
	_, k := s.do(&req, ClassInventory, time.Now())
	return outcomeOf(k)
}

func (s *session) addToCart(sched time.Time) sessionOutcome {
	// GET /cart first, like a browser opening the cart page: it is what
	// gives a new visitor the shop_session cookie the cart is keyed by.
	req := Request{Method: "GET", Path: pathCart}
	if _, k := s.do(&req, ClassCart, sched); k != KindNone {
		return outcomeOf(k)
	}
	req = Request{Method: "POST", Path: pathCartItems, Body: s.g.paths.cartAdd[s.product]}
	_, k := s.do(&req, ClassCart, time.Now())
	return outcomeOf(k)
}

// checkout posts the order with an Idempotency-Key and, like a careful
// client, repeats a failed attempt (5xx, connection failure, or a timeout
// shorter than the patience limit) with the same key, so the shop answers
// a repeat with the first result instead of charging twice.
func (s *session) checkout(sched time.Time) sessionOutcome {
	g := s.g
	key := g.runID + "-" + strconv.FormatUint(s.id, 10)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			g.st.checkoutRetries.Add(1)
			sched = time.Now().Add(time.Duration(attempt) * checkoutBackoff)
			if !s.sleepUntil(sched) {
				return outcomeUnfinished
			}
		}
		req := Request{Method: "POST", Path: pathCheckout, IdempotencyKey: key}
		status, k := s.do(&req, ClassCheckout, sched)
		switch {
		case k == KindNone && status == 200:
			g.st.checkouts.Add(1)
			return outcomeCompleted
		case k == KindNone:
			// 2xx other than 200 or a redirect: not a completed order, but
			// not a failure the client would repeat either.
			return outcomeCompleted
		case k == KindStatus4xx:
			// 409 out of stock, 402 declined, 400 empty cart: final
			// answers; repeating them changes nothing.
			g.st.checkoutRejected.Add(1)
			return outcomeAbandoned
		case k == KindUnfinished:
			return outcomeUnfinished
		case k == KindDropped, k == KindTimeout && g.timeoutIsAbandon:
			return outcomeAbandoned
		}
		if attempt >= g.checkoutRetries {
			return outcomeAbandoned
		}
	}
}

// do sends one request of the session, scheduled at sched, and records it.
func (s *session) do(req *Request, c Class, sched time.Time) (int, ErrorKind) {
	g := s.g
	if g.stopped() {
		return 0, KindUnfinished
	}
	req.Cookie = s.cookie
	if !g.acquire() {
		g.st.drop(req, c)
		return 0, KindDropped
	}
	resp := Response{Cookies: s.buf[:0]}
	status, kind := g.exchange(req, c, sched, g.sessTimeout, &resp)
	s.buf = resp.Cookies
	if len(resp.Cookies) > 0 {
		s.absorb(resp.Cookies)
	}
	return status, kind
}

// absorb stores Set-Cookie values in the jar (same name: replaced).
func (s *session) absorb(cookies []string) {
	for _, c := range cookies {
		name, _, _ := strings.Cut(c, "=")
		replaced := false
		for i, have := range s.jar {
			if n, _, _ := strings.Cut(have, "="); n == name {
				s.jar[i] = c
				replaced = true
			}
		}
		if !replaced {
			s.jar = append(s.jar, c)
		}
	}
	s.cookie = strings.Join(s.jar, "; ")
}
