package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is what an arrival is.
type Mode string

const (
	// ModeSessions: an arrival is a visitor starting a session that walks
	// the funnel (the default; it is what a shop's traffic is).
	ModeSessions Mode = "sessions"
	// ModeRequests: an arrival is one request drawn from the mix.
	ModeRequests Mode = "requests"
)

// ParseMode checks a --mode value.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case ModeSessions, ModeRequests:
		return Mode(s), nil
	}
	return "", fmt.Errorf("mode %q: use sessions or requests", s)
}

// MaxDuration bounds a run: a forgotten generator must stop by itself.
const MaxDuration = 24 * time.Hour

// Config is one run. Zero fields take the documented defaults.
type Config struct {
	// Target is the base URL ("http://127.0.0.1:8080", "127.0.0.1:8080");
	// its host must resolve to loopback only.
	Target string
	// Duration is how long arrivals are scheduled (required, at most
	// MaxDuration). In-flight requests then get Drain to finish.
	Duration time.Duration
	// Rate is the target request rate in requests per second (required).
	// In sessions mode too: sessions start at Rate / Funnel.ExpectedRequests()
	// per second, so that the requests they send add up to Rate on average
	// (checkout retries come on top; abandoned sessions send less).
	Rate Rate
	// Arrivals is the arrival process (default Poisson).
	Arrivals ArrivalProcess
	// Seed makes the arrival schedule and every session's choices
	// reproducible (the same seed gives the same schedule for every
	// policy under test). Default 1.
	Seed uint64
	// Mode is sessions (default) or requests.
	Mode Mode
	// Mix is the requests mode's endpoint mix (default DefaultMix).
	Mix Mix
	// Funnel is the sessions mode's conversion (default DefaultFunnel;
	// the zero Funnel means the default).
	Funnel Funnel
	// Think is the mean think time between funnel steps (default 1 s;
	// negative: none). It is not scaled by a trace's replay speed: speed
	// compresses how demand changes over hours, while a shopper still
	// reads a product page for seconds.
	Think time.Duration
	// ThinkDist is the think-time distribution (default log-normal).
	ThinkDist ThinkDist
	// AbandonAfter is a shopper's patience: a session whose request gets
	// no response within it is abandoned (default 5 s).
	AbandonAfter time.Duration
	// CheckoutRetries is how many times a failed checkout is repeated with
	// the same Idempotency-Key (default 2; negative: never).
	CheckoutRetries int
	// Timeout bounds each request, connecting included (default 10 s; in
	// sessions mode the smaller of it and AbandonAfter).
	Timeout time.Duration
	// MaxInflight bounds concurrent requests, hence connections (default
	// 10000). An arrival that finds no free slot is dropped and counted,
	// never queued: queueing would delay the schedule.
	MaxInflight int
	// MaxSessions bounds live sessions (default 100000); a session start
	// beyond it is dropped and counted.
	MaxSessions int
	// Drain is how long requests in flight at the end of the schedule may
	// still finish before they are cut and counted unfinished (default:
	// Timeout, at most 5 s). When ctx is cancelled (Ctrl-C) the drain is
	// at most 1 s.
	Drain time.Duration
	// LateAfter is the lag behind schedule above which a send counts as
	// late (default 5 ms). Go's timers wake up to ~1 ms late on an idle
	// machine, so small lags are normal; late sends mean the generator
	// cannot keep up.
	LateAfter time.Duration
	// Coalesce is the scheduler's coalescing window (default
	// DefaultCoalesce, 20 µs): arrivals due within it are sent together,
	// up to that much early. Raising it (e.g. 250 µs) saves wake-ups, about
	// a third of the generator's CPU at 20k requests/s, at the cost of
	// micro-bursts; an early send's latency is measured from the send.
	Coalesce time.Duration
	// Products is the number of products the shop has (default 200; ids
	// p0001..), chosen with Zipf popularity.
	Products int
	// Hot favours some products during windows of the run (a sale's
	// featured products), and may give their sessions another funnel:
	// see HotSet.
	Hot []HotSet

	// beforeDispatch, when set (tests), runs in the scheduler before the
	// i-th arrival is dispatched: it can stall the generator.
	beforeDispatch func(i int64)
}

func (c *Config) setDefaults() error {
	if c.Duration <= 0 {
		return errors.New("duration is required and must be > 0")
	}
	if c.Duration > MaxDuration {
		return fmt.Errorf("duration %v is longer than the maximum %v", c.Duration, MaxDuration)
	}
	if c.Rate == nil {
		return errors.New("a rate is required (constant, ramp or trace)")
	}
	if c.Arrivals == "" {
		c.Arrivals = Poisson
	}
	if _, err := ParseArrivalProcess(string(c.Arrivals)); err != nil {
		return err
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Mode == "" {
		c.Mode = ModeSessions
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Mix == nil {
		c.Mix = DefaultMix
	}
	if err := c.Mix.validate(); err != nil {
		return err
	}
	if c.Funnel == (Funnel{}) {
		c.Funnel = DefaultFunnel
	}
	if err := c.Funnel.Validate(); err != nil {
		return err
	}
	if c.Think == 0 {
		c.Think = time.Second
	}
	if c.Think < 0 {
		c.Think = 0
	}
	if c.ThinkDist == "" {
		c.ThinkDist = ThinkLogNormal
	}
	if _, err := ParseThinkDist(string(c.ThinkDist)); err != nil {
		return err
	}
	if c.AbandonAfter <= 0 {
		c.AbandonAfter = 5 * time.Second
	}
	if c.CheckoutRetries == 0 {
		c.CheckoutRetries = 2
	}
	if c.CheckoutRetries < 0 {
		c.CheckoutRetries = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 10000
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 100000
	}
	if c.Drain <= 0 {
		c.Drain = min(c.Timeout, 5*time.Second)
	}
	if c.LateAfter <= 0 {
		c.LateAfter = 5 * time.Millisecond
	}
	if c.Coalesce <= 0 {
		c.Coalesce = DefaultCoalesce
	}
	if c.Coalesce > 10*time.Millisecond {
		return fmt.Errorf("coalescing window %v: at most 10ms", c.Coalesce)
	}
	if c.Products <= 0 {
		c.Products = 200
	}
	return nil
}

// gen is one run in progress.
type gen struct {
	cfg     Config
	target  string // normalised URL
	client  *Client
	st      *stats
	paths   *shopPaths
	runID   string
	stop    chan struct{} // closed at the end of the schedule
	stopped func() bool
	wg      sync.WaitGroup

	sessTimeout      time.Duration
	timeoutIsAbandon bool
	checkoutRetries  int
	cookies          cookiePool

	sched  *scheduler
	rng    *mrand.Rand // the requests mode's choices (scheduler goroutine only)
	picker picker
	hot    []hotRT
	start  time.Time // the schedule's start (hot sets' windows are offsets from it)
}

// Run runs the generator until cfg.Duration has passed (plus the drain) or
// ctx is cancelled, calling progress (if not nil) once per second from its
// own goroutine with that second's figures, and returns the summary. A
// cancelled run still returns its summary, with a nil error. Errors are
// about the configuration or the target (ErrNotLoopback), before any
// request is sent.
func Run(ctx context.Context, cfg Config, progress func(Second)) (Summary, error) {
	if err := cfg.setDefaults(); err != nil {
		return Summary{}, err
	}
	tgt, err := ResolveTarget(ctx, cfg.Target)
	if err != nil {
		return Summary{}, err
	}
	g := &gen{
		cfg:             cfg,
		target:          tgt.URL,
		client:          NewClient(tgt.Addr, tgt.Host, cfg.MaxInflight),
		st:              newStats(),
		paths:           newShopPaths(cfg.Products),
		runID:           newRunID(),
		stop:            make(chan struct{}),
		sessTimeout:     min(cfg.Timeout, cfg.AbandonAfter),
		checkoutRetries: cfg.CheckoutRetries,
		sched:           newScheduler(cfg.Coalesce),
		rng:             mrand.New(mrand.NewPCG(cfg.Seed, 0x7265717565737473)),
		picker:          newPicker(cfg.Mix),
	}
	if g.hot, err = compileHot(cfg.Hot, g.paths); err != nil {
		return Summary{}, err
	}
	defer g.sched.alarm.close()
	g.timeoutIsAbandon = cfg.AbandonAfter <= cfg.Timeout
	var stopFlag atomic.Bool
	g.stopped = stopFlag.Load

	arrRate := cfg.Rate
	if cfg.Mode == ModeSessions {
		arrRate = scaled{cfg.Rate, 1 / cfg.Funnel.ExpectedRequests()}
	}
	arr := NewArrivals(arrRate, cfg.Arrivals, cfg.Seed, cfg.Duration)
	cpu0 := processCPU()
	start := time.Now()
	g.start = start

	// The per-second reporter runs until everything has finished, so the
	// drain shows in the timeline too.
	repDone := make(chan struct{})
	repStopped := make(chan struct{})
	go func() {
		defer close(repStopped)
		g.report(start, progress, repDone)
	}()

	cancelled := g.sched.run(ctx, start, start.Add(cfg.Duration), arr, g.dispatch)
	schedEnd := time.Now()
	stopFlag.Store(true)
	close(g.stop)

	drain := cfg.Drain
	if cancelled {
		drain = min(drain, time.Second)
	}
	finished := make(chan struct{})
	go func() { g.wg.Wait(); close(finished) }()
	t := time.NewTimer(drain)
	select {
	case <-finished:
	case <-t.C:
	case <-ctx.Done():
		if !cancelled {
			// Cancelled while draining: do not wait longer than the
			// drain of a cancelled run.
			select {
			case <-finished:
			case <-time.After(min(drain, time.Second)):
			}
		}
	}
	t.Stop()
	// Whatever is still in flight is cut now: Close fails those requests
	// at once, and they are counted as unfinished.
	g.client.Close()
	<-finished
	end := time.Now()
	close(repDone)
	<-repStopped

	sum := g.summary(start, schedEnd, end, cancelled)
	sum.ProcessCPUSeconds = processCPU() - cpu0
	return sum, nil
}

func newRunID() string {
	var b [6]byte
	rand.Read(b[:])
	return "lg-" + hex.EncodeToString(b[:])
}

// dispatch issues the i-th arrival, scheduled at sched. It runs in the
// scheduler's goroutine and never blocks: work goes to new goroutines, and
// an arrival that finds no free slot is dropped and counted.
func (g *gen) dispatch(i int64, sched time.Time) {
	if g.cfg.beforeDispatch != nil {
		g.cfg.beforeDispatch(i)
	}
	if g.cfg.Mode == ModeSessions {
		g.startSession(uint64(i)+1, sched)
		return
	}
	e := g.picker.pick(g.rng)
	slot := -1
	if e == EndpointCart || e == EndpointCartAdd {
		slot = g.rng.IntN(cookieSlots)
	}
	var req Request
	product := 0
	if e == EndpointProduct || e == EndpointCartAdd || e == EndpointInventory {
		product = g.pick(g.rng, sched.Sub(g.start)) // drawn only where used: the same seed gives the same requests as before
	}
	class := g.paths.request(e, g.rng, &req, product)
	if !g.acquire() {
		g.st.drop(&req, class)
		return
	}
	g.wg.Add(1)
	go g.fire(req, class, sched, slot)
}

func (g *gen) startSession(id uint64, sched time.Time) {
	if g.st.sessActive.Add(1) > int64(g.cfg.MaxSessions) {
		g.st.sessActive.Add(-1)
		g.st.sessDropped.Add(1)
		return
	}
	g.st.sessStarted.Add(1)
	g.wg.Add(1)
	go g.runSession(id, sched)
}

// acquire takes an in-flight slot; false means the request is dropped.
func (g *gen) acquire() bool {
	if g.st.inFlight.Add(1) > int64(g.cfg.MaxInflight) {
		g.st.inFlight.Add(-1)
		return false
	}
	return true
}

// fire sends one request of the requests mode (holding a slot).
func (g *gen) fire(req Request, c Class, sched time.Time, slot int) {
	defer g.wg.Done()
	if slot >= 0 {
		req.Cookie = g.cookies.get(slot, req.Method == "POST")
	}
	var resp Response
	g.exchange(&req, c, sched, g.cfg.Timeout, &resp)
	if slot >= 0 && len(resp.Cookies) > 0 && req.Cookie == "" {
		g.cookies.set(slot, resp.Cookies)
	}
}

// exchange sends req, releases the caller's in-flight slot and records the
// outcome; it returns the status (0 without a response) and the kind.
func (g *gen) exchange(req *Request, c Class, sched time.Time, timeout time.Duration, resp *Response) (int, ErrorKind) {
	now := time.Now()
	lag := now.Sub(sched)
	if lag < 0 {
		// Sent within the early window: measure from the actual send, so
		// that sending early never shortens the latency.
		sched, lag = now, 0
	}
	g.st.begin(lag, g.cfg.LateAfter)
	err := g.client.Do(req, now, now.Add(timeout), resp)
	end := time.Now()
	g.st.inFlight.Add(-1)
	kind, status, reason := KindOf(err), 0, ""
	if err == nil {
		status = resp.Status
		switch {
		case status >= 500:
			kind = KindStatus5xx
		case status >= 400:
			kind = KindStatus4xx
		}
		reason = resp.Reason
	} else {
		reason = transportReason(kind, err)
	}
	g.st.end(req, c, kind, status, reason, end.Sub(sched), lag)
	return status, kind
}

// cookieSlots is the number of carts the requests mode keeps: cart
// requests reuse these cookies rather than open a new cart each time,
// which would grow the shop's state without bound.
const cookieSlots = 256

// maxCartAdds is how many items the requests mode adds to one cart before
// starting a new one: the shop refuses a cart of more than 100 products
// (409 cart_full), which a long run would otherwise reach and report as
// errors of the shop.
const maxCartAdds = 50

// cookiePool holds the requests mode's cart cookies, filled from the
// Set-Cookie answers to cookieless cart requests.
type cookiePool struct {
	slots [cookieSlots]struct {
		cookie atomic.Pointer[string]
		adds   atomic.Int32
	}
}

// get returns slot i's cookie ("" for none yet). An add to a cart that has
// had maxCartAdds goes without a cookie: the shop then opens a new cart and
// its Set-Cookie replaces the old one in the slot.
func (p *cookiePool) get(i int, add bool) string {
	sl := &p.slots[i]
	c := sl.cookie.Load()
	if c == nil {
		return ""
	}
	if add && sl.adds.Add(1) > maxCartAdds {
		sl.adds.Store(0)
		return ""
	}
	return *c
}

func (p *cookiePool) set(i int, cookies []string) {
	v := cookies[0]
	for _, c := range cookies[1:] {
		v += "; " + c
	}
	p.slots[i].cookie.Store(&v)
}

// report calls progress once per second (aligned to the start) until done.
func (g *gen) report(start time.Time, progress func(Second), done <-chan struct{}) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	prev := snapshot{}
	prevT := start
	n := 0
	emit := func(now time.Time) {
		sn := g.st.tick()
		n++
		if progress == nil {
			prev, prevT = sn, now
			return
		}
		from, to := prevT.Sub(start), now.Sub(start)
		secs := to.Seconds() - from.Seconds()
		target := 0.0
		if from < g.cfg.Duration {
			target = MeanRate(g.cfg.Rate, from, min(to, g.cfg.Duration))
			if to > g.cfg.Duration { // a partial second of schedule
				target *= float64(g.cfg.Duration-from) / float64(to-from)
			}
		}
		s := Second{
			T:         n,
			Elapsed:   to,
			TargetRPS: target,
			Sent:      sn.sent - prev.sent,
			Completed: sn.responses - prev.responses,
			Errors:    sn.errors - prev.errors,
			P50:       sn.p50,
			P99:       sn.p99,
			InFlight:  g.st.inFlight.Load(),
			Late:      sn.late - prev.late,
			Checkouts: sn.checkouts - prev.checkouts,
			Abandoned: sn.abandoned - prev.abandoned,
			Sessions:  g.st.sessActive.Load(),
		}
		if secs > 0 {
			s.RPS = float64(s.Completed) / secs
		}
		progress(s)
		prev, prevT = sn, now
	}
	for {
		select {
		case now := <-tk.C:
			emit(now)
		case <-done:
			if now := time.Now(); now.Sub(prevT) >= 50*time.Millisecond {
				emit(now) // the last, partial second
			}
			return
		}
	}
}

// summary builds the final report.
func (g *gen) summary(start, schedEnd, end time.Time, cancelled bool) Summary {
	st := g.st
	st.mu.Lock()
	defer st.mu.Unlock()
	dur := schedEnd.Sub(start)
	s := Summary{
		Target:            g.cfg.Target,
		Mode:              string(g.cfg.Mode),
		Arrivals:          string(g.cfg.Arrivals),
		Seed:              g.cfg.Seed,
		Cancelled:         cancelled,
		DurationS:         dur.Seconds(),
		ElapsedS:          end.Sub(start).Seconds(),
		TargetRPS:         MeanRate(g.cfg.Rate, 0, min(dur, g.cfg.Duration)),
		Requests:          st.all.requests,
		Responses:         st.all.responses,
		OK:                st.all.ok,
		Unfinished:        st.all.kinds[KindUnfinished],
		Errors:            errorCounts(&st.all),
		Latency:           latencyOf(st.latAll),
		Classes:           map[string]ClassSummary{},
		Late:              st.late.Load(),
		LateAfterMs:       ms(g.cfg.LateAfter),
		MaxLagMs:          ms(time.Duration(st.maxLag.Load())),
		Lag:               latencyOf(st.lag),
		Checkouts:         st.checkouts.Load(),
		ConnectionsOpened: g.client.dials.Load(),
	}
	// Rates are per second of schedule: the configured duration, or the
	// part run before a cancel. The scheduler may finish a little after the
	// last arrival's time when it is behind; that lateness is reported as
	// lag, not as a lower rate.
	span := g.cfg.Duration
	if cancelled {
		span = min(dur, span)
	}
	if span > 0 {
		s.AchievedRPS = float64(s.Requests) / span.Seconds()
		s.ResponseRPS = float64(s.Responses) / span.Seconds()
	}
	if ended := s.Requests - s.Unfinished + s.Errors.Dropped; ended > 0 {
		s.ErrorRate = float64(s.Errors.Total) / float64(ended)
	}
	s.TopErrors = topErrors(st.reasons, st.otherReasons)
	for c := Class(0); c < numClasses; c++ {
		cc := &st.classes[c]
		if cc.requests == 0 && cc.kinds[KindDropped] == 0 {
			continue
		}
		s.Classes[c.String()] = ClassSummary{
			Requests:  cc.requests,
			Responses: cc.responses,
			OK:        cc.ok,
			Errors:    errorCounts(cc),
			Latency:   latencyOf(st.latCls[c]),
		}
	}
	if g.cfg.Mode == ModeSessions {
		ss := &SessionSummary{
			Started:          st.sessStarted.Load(),
			Completed:        st.sessCompleted.Load(),
			Abandoned:        st.sessAbandoned.Load(),
			Unfinished:       st.sessUnfinished.Load(),
			Dropped:          st.sessDropped.Load(),
			CheckoutRetries:  st.checkoutRetries.Load(),
			CheckoutRejected: st.checkoutRejected.Load(),
			Reached:          map[string]int64{},
			Funnel:           g.cfg.Funnel.String(),
			RequestsPer:      g.cfg.Funnel.ExpectedRequests(),
		}
		for i := range st.reached {
			ss.Reached[stepNames[i]] = st.reached[i].Load()
		}
		s.Sessions = ss
	}
	s.TraceGaps.Interpolated, s.TraceGaps.Held = traceGaps(g.cfg.Rate)
	return s
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
