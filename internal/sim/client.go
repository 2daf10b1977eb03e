package sim

// The client model follows `lbsys load` (internal/loadgen): open-loop
// arrivals, and in sessions mode each arrival is a visitor walking the
// funnel. Where a visitor stops is drawn up front from one uniform number
// (so the reach fractions hold exactly in expectation); between steps it
// thinks (log-normal σ = 1 or exponential, capped at 20 means); a failed
// request (5xx, transport failure, shed) of a step with retries is repeated
// after n × retry_backoff with the same idempotency key, as loadgen's
// checkout does; a session whose request fails for good, or whose answer
// comes later than abandon_after, leaves: a drop-off.

// session is one visitor.
type session struct {
	s     *Sim
	gen   uint32
	px    *proxy
	steps int // steps it will walk before leaving on its own
	step  int
	call  int
	tries int
	hash  uint64 // affinity key for hash policies
	// pinned holds, per service, the replica id + 1 an affinity cookie
	// names (0: none).
	pinned []int32
}

func (ss *session) sticky(svc int) int {
	if svc >= len(ss.pinned) {
		return -1
	}
	return int(ss.pinned[svc]) - 1
}

func (ss *session) setSticky(svc, replica int) {
	for len(ss.pinned) <= svc {
		ss.pinned = append(ss.pinned, 0)
	}
	ss.pinned[svc] = int32(replica + 1)
}

// Session event kinds.
const (
	sessWake = iota
	sessRetry
)

func (s *Sim) startSession(px *proxy) {
	ss := s.allocSession()
	ss.px = px
	ss.hash = s.clientRng.Uint64()
	u := s.clientRng.Float64()
	for ss.steps < len(s.funnel) && u < s.funnel[ss.steps].reach {
		ss.steps++
	}
	s.met.sessionStart()
	if ss.steps == 0 {
		s.freeSession(ss)
		return
	}
	ss.sendCall()
}

// sendCall sends the current step's next request, or ends the step.
func (ss *session) sendCall() {
	s := ss.s
	st := &s.funnel[ss.step]
	for ss.call < len(st.calls) {
		c := st.calls[ss.call]
		if c.p < 1 && s.clientRng.Float64() >= c.p {
			ss.call++
			continue
		}
		s.send(c.route, ss.px, ss, nil, ss.hash)
		return
	}
	ss.stepDone()
}

func (ss *session) stepDone() {
	s := ss.s
	if s.funnel[ss.step].completes {
		s.met.checkout()
	}
	ss.step++
	ss.call, ss.tries = 0, 0
	if ss.step >= ss.steps {
		s.freeSession(ss) // left on its own
		return
	}
	if d := s.think(); d > 0 {
		s.eng.after(d, ss, int64(ss.gen)<<8|sessWake)
	} else {
		s.eng.soon(ss, int64(ss.gen)<<8|sessWake)
	}
}

// onResponse is the session reading an answer.
func (ss *session) onResponse(r *request) {
	s := ss.s
	lat := s.now() - r.clientStart
	if lat > s.abandonNs {
		// The visitor stopped waiting before the answer came.
		ss.dropOff()
		return
	}
	if r.shed || r.fail != failNone || r.status >= 500 {
		st := &s.funnel[ss.step]
		if ss.tries < st.retries {
			ss.tries++
			s.met.clientRetry()
			s.eng.after(int64(ss.tries)*st.backoff, ss, int64(ss.gen)<<8|sessRetry)
			return
		}
		ss.dropOff()
		return
	}
	ss.call++
	ss.tries = 0
	ss.sendCall()
}

// dropOff ends a session that left on an error or a slow answer; a
// session that was going to check out (its drawn path reached the
// completing step) is a lost checkout.
func (ss *session) dropOff() {
	s := ss.s
	s.met.dropOff()
	if c := s.completeStep; c >= 0 && ss.steps > c && ss.step <= c {
		s.met.lostCheckout()
	}
	s.freeSession(ss)
}

func (ss *session) handle(arg int64) {
	if uint32(arg>>8) != ss.gen {
		return
	}
	s := ss.s
	if s.now() >= s.end {
		return
	}
	switch arg & 0xff {
	case sessWake:
		ss.sendCall()
	case sessRetry:
		c := s.funnel[ss.step].calls[ss.call]
		s.send(c.route, ss.px, ss, nil, ss.hash)
	}
}

func (s *Sim) allocSession() *session {
	if n := len(s.freeSess); n > 0 {
		ss := s.freeSess[n-1]
		s.freeSess = s.freeSess[:n-1]
		return ss
	}
	return &session{s: s}
}

func (s *Sim) freeSession(ss *session) {
	gen := ss.gen + 1
	clear(ss.pinned)
	*ss = session{s: s, gen: gen, pinned: ss.pinned[:0]}
	s.freeSess = append(s.freeSess, ss)
}
