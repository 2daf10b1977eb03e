package scaler

import (
	"math"
	"sort"
	"time"
)

// Sample is one minute of a service's telemetry as the capacity estimate
// reads it.
type Sample struct {
	// At is the end of the minute.
	At time.Time
	// RPS is the rate the replicas answered (requests that reached a
	// replica; proxy sheds excluded), per second.
	RPS float64
	// Replicas is the number of ready replicas that served it.
	Replicas float64
	// Util is their mean utilisation in [0, 1] (busy workers over
	// workers, the load report every answer carries); NaN when unknown.
	Util float64
	// Answers is how many answers the minute counted (0: RPS × 60, a
	// minute of them). A loop whose rates are not per second of its own
	// minute — the demo's compressed time — says it here.
	Answers float64
}

// Capacity learns a replica's capacity — the rate it answers at full
// utilisation — from telemetry: each usable minute gives RPS / (replicas ×
// utilisation), and the estimate is the median of the recent ones. This
// replaces "the throughput a replica demonstrated" (a lower bound of
// capacity: a replica that never ran hot shows only the load it got, and a
// plan on it doubles the fleet).
//
// A minute is usable when utilisation is in [MinUtil, MaxUtil] and it
// counted at least MinRequests answers (alone or pooled with the thin
// minutes before it): too idle and the ratio is noise over a small
// denominator; too hot and queueing (not capacity) sets the rate.
type Capacity struct {
	// Window is how many usable minutes the median spans. Default 60.
	Window int
	// MinUtil and MaxUtil bound a usable minute. Defaults 0.02 and 0.95.
	MinUtil, MaxUtil float64
	// MinRequests is the fewest answers per replica a usable minute
	// counts (the sample's own noise). Default 20.
	MinRequests float64

	est  []float64 // ring of per-minute estimates
	pos  int
	n    int
	pool pool
}

func (c *Capacity) defaults() {
	if c.Window <= 0 {
		c.Window = 60
	}
	if c.MinUtil <= 0 {
		c.MinUtil = 0.02
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.MaxUtil <= 0 || c.MaxUtil > 1 {
		c.MaxUtil = 0.95
	}
}

func (s Sample) answers() float64 {
	if s.Answers > 0 {
		return s.Answers
	}
	return s.RPS * 60
}

// Observe adds one minute; unusable minutes are ignored. A minute with
// too few answers to judge on its own is pooled with the next thin ones
// (at most MaxPool of them) until together they count MinRequests per
// replica: a quiet service, or a minute of compressed time, still gets an
// estimate, from the pooled rate over the pooled busy replicas.
func (c *Capacity) Observe(s Sample) {
	c.defaults()
	if !(s.Util >= c.MinUtil && s.Util <= c.MaxUtil) || !(s.Replicas >= 1) || !(s.RPS > 0) || math.IsInf(s.RPS, 0) {
		return
	}
	per := s.answers() / s.Replicas
	if per >= c.MinRequests {
		c.add(s.RPS / (s.Replicas * s.Util))
		return
	}
	if c.pool.n >= MaxPool {
		c.pool = pool{}
	}
	c.pool.rps += s.RPS
	c.pool.busy += s.Replicas * s.Util
	c.pool.answers += per
	c.pool.n++
	if c.pool.answers >= c.MinRequests {
		c.add(c.pool.rps / c.pool.busy)
		c.pool = pool{}
	}
}

// MaxPool is how many thin minutes (see Observe) one estimate may pool.
const MaxPool = 10

// pool accumulates thin minutes: their rates, busy replicas (replicas ×
// utilisation) and answers per replica.
type pool struct {
	rps, busy, answers float64
	n                  int
}

func (c *Capacity) add(v float64) {
	if len(c.est) < c.Window {
		c.est = append(c.est, v)
	} else {
		c.est[c.pos] = v
		c.pos = (c.pos + 1) % c.Window
	}
	c.n++
}

// PerReplica returns the estimate and the number of minutes behind it; ok
// is false before MinSamples usable minutes.
func (c *Capacity) PerReplica() (rps float64, minutes int, ok bool) {
	if len(c.est) < MinSamples {
		return 0, len(c.est), false
	}
	xs := append([]float64(nil), c.est...)
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 0 {
		return (xs[m-1] + xs[m]) / 2, len(xs), true
	}
	return xs[m], len(xs), true
}

// MinSamples is the fewest usable minutes a capacity estimate rests on.
const MinSamples = 5

// Lead learns how long a new replica takes to become ready (scheduling,
// node provisioning when the pool is full, image pull, start, readiness):
// the 90th percentile of the recent observed startups once three have been
// seen, never less than Prior. Prior is what the platform states (pod start
// plus node provisioning): startups observed while the warm pool had room
// are shorter than the ones an event's scale-out will see, so they may
// lengthen the lead but never shorten it below the stated figure.
type Lead struct {
	// Prior is assumed before any startup is observed. Default 3m.
	Prior time.Duration
	// Window is how many recent startups count. Default 50.
	Window int

	obs []time.Duration
	pos int
}

// Observe adds one replica's startup time.
func (l *Lead) Observe(d time.Duration) {
	if d < 0 {
		return
	}
	w := l.Window
	if w <= 0 {
		w = 50
	}
	if len(l.obs) < w {
		l.obs = append(l.obs, d)
		return
	}
	l.obs[l.pos] = d
	l.pos = (l.pos + 1) % w
}

// Startup is the startup time to plan with, and how many observations
// it rests on (0: the prior).
func (l *Lead) Startup() (time.Duration, int) {
	if len(l.obs) < 3 {
		p := l.Prior
		if p <= 0 {
			p = 3 * time.Minute
		}
		return p, 0
	}
	xs := append([]time.Duration(nil), l.obs...)
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	i := int(math.Ceil(0.9*float64(len(xs)))) - 1
	return max(xs[max(0, i)], l.Prior), len(xs)
}
