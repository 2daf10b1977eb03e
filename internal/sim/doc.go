// Package sim is lbsys's discrete-event simulator: a shop of services, the
// proxies in front of them and their clients, on a virtual clock, running
// the production decision code — every balancing policy of internal/balance
// (through balance.New, Balancer.Update, Picker.Pick/Take/Done, and the
// Prober interface for prequal), internal/health (outlier ejection, panic
// threshold, slow start, active checks) and internal/admission (Gradient2
// limits with priorities) — at a scale and over spans no loopback test
// reaches: hundreds of replicas, many proxies, a whole Black Friday.
//
// It is pure, like the code it runs (DESIGN.md principle 2; enforced by
// internal/deptest): no I/O, no wall clock, no global randomness. Time is
// an int64 of virtual nanoseconds, decision code gets time.Time values built
// from it, and every random number comes from a PCG stream seeded from the
// run's seed and the stream's purpose, so the same seed and scenario give
// byte-identical results (and every policy sees the same arrivals: common
// random numbers make the comparison sharper than the noise).
//
// # Use
//
//	sc, err := sim.ParseScenario(yamlBytes, "flash-sale.yaml")
//	err = sc.LoadTrace(os.ReadFile)   // only for trace replays; the caller does the I/O
//	res, err := sim.RunAll(sc, []string{"round_robin", "prequal"}, seed, parallel, sim.Options{})
//	sim.WriteJSON(w, res); sim.WriteMarkdown(w, res, nil); sim.Plots(res)
//
// `lbsys sim` (cmd/lbsys/sim.go) wraps this; scenarios/ holds the named
// scenarios.
//
// # The model
//
// Clients (client.go): open-loop arrivals, a non-homogeneous Poisson process
// whose rate is a piecewise-linear curve (a constant, a daily and weekly
// cycle, a staircase in units of capacity, or a trace replay), multiplied by
// campaigns and flash sales; each arrival is a request from a mix, or a
// session walking the funnel browse → product → cart → checkout with think
// times, retries and drop-offs, as `lbsys load` does.
//
// Proxies (proxy.go): N replicas, each with its own balancer, health pool
// and limiter per service, sharing the backends (herding shows: each sees
// only its own requests in flight); retries, deadlines and prequal's probe
// driver as internal/proxy does them.
//
// Backends (backend.go): replicas with c workers, a bounded FIFO queue with
// a wait limit, log-normal (or exponential, constant) service times scaled
// by class cost and speed, noisy neighbours and GC pauses as a speed profile
// over time, a cold-start factor, a cache that warms with traffic, load
// reports on every answer, crashes and restarts, and downstream calls that
// hold the worker (checkout calling inventory and payment through the
// proxies); an HPA v2 autoscaler (hpa.go) with pod start, node provisioning
// and a hook for forecast-driven scale recommendations; cost as
// replica-hours.
//
// Metrics (metrics.go): per window (a minute by default) and service,
// p50/p99/p99.9 from a log-bucketed histogram, errors, sheds, timeouts,
// goodput, utilisation mean and spread, replicas; per window, sessions,
// checkouts and drop-offs; SLO-violation minutes and incidents.
//
// # Validation
//
// The tests check the engine against Erlang C (M/M/c mean wait within 3%),
// determinism, the power of two choices against round-robin under
// heterogeneity, the Prequal paper's testbed result, the HPA algorithm
// against the Kubernetes controller's, and that every pick gets its Done and
// every admission its Release or Cancel through crashes, timeouts and
// scaling. Focused tests pin the metrics (SLO-violation minutes and
// incidents, utilisation spread, goodput), session abandonment, cache
// warmth, node provisioning, the rate curves and trace scaling, and the
// engine's event order; FuzzParseScenario and FuzzParseTrace fuzz the
// parsers. bench/sim2real.sh compares a small scenario with the same one
// run for real on loopback.
package sim
