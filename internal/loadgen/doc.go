// Package loadgen is lbsys's open-loop load generator: it sends requests to
// the demo shop (docs/shop-api.md) at the times an arrival schedule says,
// whatever the responses do, and measures each request's latency from its
// scheduled send time, so a slow target cannot hide its slowness by slowing
// the generator down (coordinated omission). The CLI is `lbsys load`;
// in-process users (the demo, benchmarks, tests) call Run.
//
// # A run
//
//	sum, err := loadgen.Run(ctx, loadgen.Config{
//		Target:   "http://127.0.0.1:8080", // loopback only
//		Duration: 3 * time.Minute,
//		Rate: loadgen.FlashSale{Base: loadgen.Constant(500),
//			Start: time.Minute, For: time.Minute, X: 8, Rise: 10 * time.Second},
//		Mode: loadgen.ModeSessions,
//	}, func(s loadgen.Second) { fmt.Fprintln(os.Stderr, s.Line()) })
//
// Run blocks for Duration plus a short drain, calls progress once per
// second from its own goroutine, and returns a Summary (JSON-ready; its
// WriteText is the CLI's text form). Cancelling ctx stops early and still
// returns the summary. Errors are only about the configuration or the
// target (errors.Is(err, ErrNotLoopback)); failed requests are counted, not
// returned.
//
// # Rates and arrivals
//
// A Rate gives the target requests per second at each offset: Constant,
// Ramp, a trace replay (LoadTrace + NewTraceRate: time compressed by Speed,
// scaled so the replayed span's maximum is PeakRPS, linear interpolation,
// gaps of at most 2 steps interpolated and longer ones held at the last
// value and counted), and FlashSale, which multiplies any Rate in a window.
// Arrivals are a non-homogeneous Poisson process drawn by thinning, or
// evenly spaced (Uniform), from Seed: the same seed gives the same schedule.
//
// One scheduler goroutine issues the arrivals and wakes sessions after
// their think times, sleeping on a Linux timerfd (Go's timers wake up to
// ~1 ms late on an idle process). Events due within Config.Coalesce (20 µs)
// are handled together; an early send's latency is measured from the
// actual send. When the generator falls behind it dispatches what is due at
// once instead of sliding the schedule, and reports the lag (Late, MaxLagMs,
// Lag). Each request runs in its own goroutine holding one of MaxInflight
// slots; an arrival that finds none is dropped and counted, never queued.
//
// # Modes
//
// ModeRequests: each arrival is one request from the weighted Mix
// (DefaultMix is browse-heavy). Cart requests reuse a small pool of cart
// cookies learnt from the shop's Set-Cookie answers.
//
// ModeSessions: each arrival is a visitor walking the funnel browse →
// product → cart → checkout (payment happens inside POST /checkout).
// Funnel gives the fraction of all sessions reaching each step; the
// session-start rate is Rate / Funnel.ExpectedRequests(), so Rate means
// requests per second in both modes (checkout retries come on top;
// abandoned and cut-off sessions send less). Between steps a session
// thinks (log-normal or exponential with mean Think; not scaled by a
// trace's Speed: speed compresses how demand changes, not how long a
// shopper reads a page). It carries its cookies like a browser, sends an
// Idempotency-Key on checkout and repeats a failed checkout (5xx, connection
// failure) with the same key up to CheckoutRetries times. A session whose
// request fails, or gets no response within AbandonAfter, is abandoned.
//
// # Counting
//
// Every scheduled request is sent or dropped. A sent request ends as a
// response (any status: 4xx and 5xx are also counted as errors by kind), a
// transport error (connect, timeout, reset), or unfinished (still in flight
// when the drain after the schedule ended). Latency histograms (HDR, 1 µs ..
// 60 s, 3 significant digits) hold responses and timeouts, overall and per
// endpoint Class; the classes add up to the totals.
package loadgen
