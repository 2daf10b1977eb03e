package shop

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// The capacity model of one instance: a fixed number of workers, a bounded
// FIFO queue in front of them with a wait limit, and a log-normal service
// time that really holds a worker (it sleeps), scaled by the endpoint's cost,
// the injected slow-down, the cold-start factor and the machine's speed. So a
// slower or colder instance really has less capacity, and queueing delay
// appears exactly as it would in a thread-per-request server.

// Endpoint cost multipliers: how many mean service times one request of the
// endpoint takes. Search scans every product name (×3); checkout's own work
// (validation, order bookkeeping) is ×2, on top of the time its downstream
// calls take while it holds its worker. Everything else is ×1.
const (
	costDefault  = 1.0
	costSearch   = 3.0
	costCheckout = 2.0
)

var (
	errQueueFull    = errors.New("queue full")
	errQueueTimeout = errors.New("queue timeout")
	errGone         = errors.New("client or instance gone")
)

// pool is the worker pool with its bounded queue. A worker is a token in
// slots (a buffered channel used as a counting semaphore); a queued request
// is a goroutine blocked sending to slots. Go's channels wake blocked
// senders in FIFO order and a release hands the freed slot straight to the
// first of them, so a newcomer can never overtake the queue.
type pool struct {
	slots    chan struct{}
	workers  int
	queueCap int64
	timeout  time.Duration
	waiting  atomic.Int64

	// The integral of busy workers over time, as cAdvisor integrates CPU:
	// an autoscaler reads it twice and divides by workers × the interval
	// for the exact mean utilisation in between.
	busyMu  sync.Mutex
	busyN   int
	busyAt  time.Time
	busyAcc time.Duration // worker·time
}

func newPool(workers, queue int, timeout time.Duration) *pool {
	return &pool{slots: make(chan struct{}, workers), workers: workers, queueCap: int64(queue), timeout: timeout}
}

// acquire takes a worker, waiting in the queue for at most the queue
// timeout. It fails at once with errQueueFull when the queue is full,
// errQueueTimeout after waiting too long, and errGone when ctx or stop ends
// first (the client left or the instance crashed).
func (p *pool) acquire(ctx context.Context, stop <-chan struct{}) error {
	select {
	case p.slots <- struct{}{}:
		p.markBusy(1)
		return nil
	default:
	}
	for {
		w := p.waiting.Load()
		if w >= p.queueCap {
			return errQueueFull
		}
		if p.waiting.CompareAndSwap(w, w+1) {
			break
		}
	}
	defer p.waiting.Add(-1)
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		p.markBusy(1)
		return nil
	case <-t.C:
		return errQueueTimeout
	case <-ctx.Done():
		return errGone
	case <-stop:
		return errGone
	}
}

func (p *pool) release() {
	p.markBusy(-1)
	<-p.slots
}

// markBusy moves the busy integral to now and the count by d.
func (p *pool) markBusy(d int) {
	now := time.Now()
	p.busyMu.Lock()
	if !p.busyAt.IsZero() {
		p.busyAcc += time.Duration(p.busyN) * now.Sub(p.busyAt)
	}
	p.busyAt = now
	p.busyN += d
	p.busyMu.Unlock()
}

// busyTime is the busy integral up to now (worker·time).
func (p *pool) busyTime() time.Duration {
	now := time.Now()
	p.busyMu.Lock()
	defer p.busyMu.Unlock()
	acc := p.busyAcc
	if !p.busyAt.IsZero() {
		acc += time.Duration(p.busyN) * now.Sub(p.busyAt)
	}
	return acc
}

// busy is the number of workers in use.
func (p *pool) busy() int { return len(p.slots) }

// queued is the number of requests waiting for a worker.
func (p *pool) queued() int64 { return p.waiting.Load() }

// hold keeps the caller's worker for d, like a server thread doing d of
// work. It returns false if ctx or stop ended first: the work is abandoned
// and nothing of the request's effect happens.
func hold(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return ctx.Err() == nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// logNormal draws log-normal service times with a given mean and coefficient
// of variation (cv = standard deviation / mean).
//
// If X = exp(μ + σZ) with Z standard normal, then E[X] = exp(μ + σ²/2) and
// Var[X] = (exp(σ²) − 1)·exp(2μ + σ²), so cv² = exp(σ²) − 1. Solving for the
// parameters: σ² = ln(1 + cv²) and μ = ln(mean) − σ²/2. (Johnson, Kotz and
// Balakrishnan, Continuous Univariate Distributions vol. 1, 2nd ed., ch. 14,
// eqs. 14.8a–b; also https://en.wikipedia.org/wiki/Log-normal_distribution,
// "Arithmetic moments".) Note μ is not ln(mean): using ln(mean) as μ, a
// common mistake, inflates the mean by exp(σ²/2) (×1.12 at cv 0.5).
//
// Log-normal because measured service times of web requests are positive and
// right-skewed with a long tail, and two parameters (mean, cv) are all an
// operator wants to set.
type logNormal struct {
	mean  float64 // seconds
	mu    float64
	sigma float64
	rngMu sync.Mutex // guards rng
	rng   *rand.Rand
}

func newLogNormal(mean time.Duration, cv float64, seed uint64) *logNormal {
	l := &logNormal{mean: mean.Seconds(), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	if mean > 0 && cv > 0 {
		s2 := math.Log1p(cv * cv)
		l.sigma = math.Sqrt(s2)
		l.mu = math.Log(l.mean) - s2/2
	}
	return l
}

// draw returns one service time in seconds.
func (l *logNormal) draw() float64 {
	if l.mean <= 0 {
		return 0
	}
	if l.sigma == 0 {
		return l.mean
	}
	l.rngMu.Lock()
	z := l.rng.NormFloat64()
	l.rngMu.Unlock()
	return math.Exp(l.mu + l.sigma*z)
}

// float returns a uniform number in [0, 1) from the same seeded source (used
// for error injection, so a seeded run is reproducible end to end).
func (l *logNormal) float() float64 {
	l.rngMu.Lock()
	defer l.rngMu.Unlock()
	return l.rng.Float64()
}

// coldFactor is the service-time multiplier of an instance that started
// elapsed ago: k right after start, falling linearly to 1 at the end of the
// warm-up, 1 afterwards.
//
// Linear rather than exponential because a linear ramp ends: after --warmup
// the instance is exactly warm, so the flag means what it says (an
// exponential decay is never done, and its time constant is not the
// "warm-up" an operator reads). It is also the shape of the proxy's slow
// start with aggression 1 (Envoy's default), so a slow-start window equal to
// the warm-up sends traffic in proportion to the capacity the instance
// really has.
func coldFactor(elapsed, warmup time.Duration, k float64) float64 {
	if warmup <= 0 || k <= 1 || elapsed >= warmup {
		return 1
	}
	if elapsed <= 0 {
		return k
	}
	return 1 + (k-1)*(1-float64(elapsed)/float64(warmup))
}
