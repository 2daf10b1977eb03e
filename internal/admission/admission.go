// Package admission decides which requests a service accepts when it is
// overloaded: an adaptive concurrency limit learned from latency (Netflix's
// Gradient2) and priority classes that shed sheddable traffic first and
// critical traffic last. It is pure decision code (DESIGN.md principle 2):
// time arrives as arguments, there is no I/O, and the simulator runs it as
// the proxy does.
package admission

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Priority is a request's class.
type Priority uint8

// Priorities, most important first.
const (
	Critical  Priority = iota // checkout, payment: shed last
	Normal                    // cart
	Sheddable                 // browse, search: shed first
	numPriorities
)

var priorityNames = [...]string{"critical", "normal", "sheddable"}

func (p Priority) String() string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return fmt.Sprintf("priority(%d)", p)
}

// ParsePriority maps a configuration name to a Priority.
func ParsePriority(s string) (Priority, error) {
	for i, n := range priorityNames {
		if strings.EqualFold(s, n) {
			return Priority(i), nil
		}
	}
	return Normal, fmt.Errorf("unknown priority %q: use critical, normal or sheddable", s)
}

// Config tunes a Limiter. Zero values take the defaults noted.
type Config struct {
	// MinLimit and MaxLimit bound the concurrency limit. Defaults 10, 1000.
	MinLimit int
	MaxLimit int
	// InitialLimit is where the limit starts. Default 50.
	InitialLimit int
	// Tolerance is how much the short-term latency may exceed the long-term
	// one before the limit shrinks (Gradient2's rttTolerance). Default 1.5.
	Tolerance float64
	// Smoothing weighs each new limit estimate. Default 0.2.
	Smoothing float64
	// LongWindow is the number of windows the long-term latency averages
	// over. Default 600 (Gradient2's longWindow, in samples there).
	LongWindow int
	// Window is the sampling window; a window closes when it is this old
	// and has at least MinSamples samples. Defaults 250ms, 10.
	Window     time.Duration
	MinSamples int
	// QueueSize is the headroom added per update, letting the limit grow
	// when latency is stable. Default 4 (Gradient2's default).
	QueueSize float64
	// Shares of the limit each priority may fill: sheddable requests are
	// refused once in-flight reaches SheddableShare × limit, normal ones at
	// NormalShare × limit, critical ones at the limit. Defaults 0.7, 0.9.
	SheddableShare float64
	NormalShare    float64
}

func (c *Config) withDefaults() Config {
	d := *c
	if d.MinLimit <= 0 {
		d.MinLimit = 10
	}
	if d.MaxLimit <= 0 {
		d.MaxLimit = 1000
	}
	if d.InitialLimit <= 0 {
		d.InitialLimit = 50
	}
	if d.Tolerance <= 0 {
		d.Tolerance = 1.5
	}
	if d.Smoothing <= 0 {
		d.Smoothing = 0.2
	}
	if d.LongWindow <= 0 {
		d.LongWindow = 600
	}
	if d.Window <= 0 {
		d.Window = 250 * time.Millisecond
	}
	if d.MinSamples <= 0 {
		d.MinSamples = 10
	}
	if d.QueueSize <= 0 {
		d.QueueSize = 4
	}
	if d.SheddableShare <= 0 {
		d.SheddableShare = 0.7
	}
	if d.NormalShare <= 0 {
		d.NormalShare = 0.9
	}
	return d
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	d := c.withDefaults()
	switch {
	case d.MinLimit > d.MaxLimit:
		return fmt.Errorf("min_limit (%d) must not exceed max_limit (%d)", d.MinLimit, d.MaxLimit)
	case d.InitialLimit < d.MinLimit || d.InitialLimit > d.MaxLimit:
		return fmt.Errorf("initial_limit (%d) must be between min_limit (%d) and max_limit (%d)", d.InitialLimit, d.MinLimit, d.MaxLimit)
	case d.Tolerance < 1:
		return fmt.Errorf("tolerance must be >= 1 (e.g. 1.5), got %v", d.Tolerance)
	case d.Smoothing > 1:
		return fmt.Errorf("smoothing must be in (0, 1], got %v", d.Smoothing)
	case d.SheddableShare > d.NormalShare || d.NormalShare > 1:
		return fmt.Errorf("shares must satisfy 0 < sheddable_share <= normal_share <= 1, got %v and %v", d.SheddableShare, d.NormalShare)
	}
	return nil
}

// Limiter is one service's adaptive concurrency limit.
//
// The limit follows Netflix concurrency-limits' Gradient2Limit
// (github.com/Netflix/concurrency-limits, Gradient2Limit.java): per window,
//
//	gradient = max(0.5, min(1, tolerance × longRTT / shortRTT))
//	newLimit = limit × gradient + queueSize
//	limit    = limit × (1 − smoothing) + newLimit × smoothing
//
// clamped to [min, max], where shortRTT is the window's mean latency and
// longRTT an exponential average over LongWindow windows. As there, the limit
// does not grow while the service is app-limited (in flight below half the
// limit), and when longRTT is more than twice shortRTT (latency recovered
// after an overload) longRTT is pulled down by 5% per window so the limit
// recovers without waiting for the slow average. Our addition: a window's
// dropped requests (timeouts, upstream overload) count at twice longRTT, so
// an overloaded backend that fails fast still shrinks the limit.
//
// Acquire and Release are lock-free except when a window closes.
type Limiter struct {
	cfg Config

	inflight atomic.Int64
	limit    atomic.Uint64 // float64 bits
	bounds   atomic.Pointer[[2]float64]
	rejected [numPriorities]atomic.Int64
	admitted [numPriorities]atomic.Int64

	// Current window, updated atomically by Release.
	winStart    atomic.Int64 // unix ns; 0 before the first sample
	winSum      atomic.Int64 // ns
	winCount    atomic.Int64
	winMaxInfl  atomic.Int64
	winDropped  atomic.Int64
	mu          sync.Mutex // closes windows
	longRTT     float64
	longSamples int
	lastShort   float64
	lastGrad    float64
}

// New returns a limiter; cfg is validated by the caller (Validate).
func New(cfg Config) *Limiter {
	l := &Limiter{cfg: cfg.withDefaults()}
	l.limit.Store(math.Float64bits(float64(l.cfg.InitialLimit)))
	b := [2]float64{float64(l.cfg.MinLimit), float64(l.cfg.MaxLimit)}
	l.bounds.Store(&b)
	return l
}

// Limit returns the current concurrency limit.
func (l *Limiter) Limit() float64 { return math.Float64frombits(l.limit.Load()) }

// InFlight returns the admitted requests not yet released.
func (l *Limiter) InFlight() int64 { return l.inflight.Load() }

// share returns the fraction of the limit priority p may fill.
func (l *Limiter) share(p Priority) float64 {
	switch p {
	case Critical:
		return 1
	case Normal:
		return l.cfg.NormalShare
	default:
		return l.cfg.SheddableShare
	}
}

// Acquire admits a request of priority p or refuses it. An admitted request
// must be released exactly once.
func (l *Limiter) Acquire(p Priority) bool {
	if p >= numPriorities {
		p = Sheddable
	}
	capacity := int64(math.Floor(l.Limit() * l.share(p)))
	if capacity < 1 {
		capacity = 1
	}
	for {
		cur := l.inflight.Load()
		if cur >= capacity {
			l.rejected[p].Add(1)
			return false
		}
		if l.inflight.CompareAndSwap(cur, cur+1) {
			l.admitted[p].Add(1)
			return true
		}
	}
}

// Release ends an admitted request that took rtt; dropped marks a request
// that timed out or was refused by an overloaded backend.
func (l *Limiter) Release(now time.Time, rtt time.Duration, dropped bool) {
	infl := l.inflight.Add(-1) + 1 // in flight while this request was
	if rtt < 0 {
		rtt = 0
	}
	t := now.UnixNano()
	if l.winStart.Load() == 0 {
		l.winStart.CompareAndSwap(0, t)
	}
	if dropped {
		l.winDropped.Add(1)
	} else {
		l.winSum.Add(int64(rtt))
	}
	n := l.winCount.Add(1)
	for {
		m := l.winMaxInfl.Load()
		if infl <= m || l.winMaxInfl.CompareAndSwap(m, infl) {
			break
		}
	}
	if n >= int64(l.cfg.MinSamples) && t-l.winStart.Load() >= int64(l.cfg.Window) {
		l.closeWindow(t)
	}
}

// closeWindow folds the window into the limit.
func (l *Limiter) closeWindow(now int64) {
	if !l.mu.TryLock() {
		return // another goroutine is closing it
	}
	defer l.mu.Unlock()
	count := l.winCount.Load()
	if count < int64(l.cfg.MinSamples) || now-l.winStart.Load() < int64(l.cfg.Window) {
		return // closed meanwhile
	}
	sum := l.winSum.Swap(0)
	dropped := l.winDropped.Swap(0)
	l.winCount.Add(-count)
	maxInfl := l.winMaxInfl.Swap(0)
	l.winStart.Store(now)

	ok := count - dropped
	var short float64
	if ok > 0 {
		short = float64(sum) / float64(ok)
	}
	if dropped > 0 {
		penal := 2 * l.longRTT
		if penal < short {
			penal = short
		}
		short = (short*float64(ok) + penal*float64(dropped)) / float64(count)
	}
	if short <= 0 {
		return
	}
	l.update(short, float64(maxInfl))
}

func (l *Limiter) update(short, inflight float64) {
	// Long-term average: exponential with a warm-up (a plain mean over
	// the first windows), as concurrency-limits' ExpAvgMeasurement does.
	if l.longSamples < l.cfg.LongWindow {
		l.longSamples++
	}
	if l.longSamples <= 10 {
		l.longRTT += (short - l.longRTT) / float64(l.longSamples)
	} else {
		alpha := 2.0 / float64(l.cfg.LongWindow+1)
		l.longRTT = l.longRTT*(1-alpha) + short*alpha
	}
	if l.longRTT/short > 2 {
		l.longRTT *= 0.95
	}
	l.lastShort = short
	limit := l.Limit()
	if inflight < limit/2 {
		l.lastGrad = 1
		return // app-limited: no evidence to grow on
	}
	grad := math.Max(0.5, math.Min(1, l.cfg.Tolerance*l.longRTT/short))
	l.lastGrad = grad
	next := limit*grad + l.cfg.QueueSize
	next = limit*(1-l.cfg.Smoothing) + next*l.cfg.Smoothing
	b := l.bounds.Load()
	next = math.Max(b[0], math.Min(b[1], next))
	l.limit.Store(math.Float64bits(next))
}

// SetBounds narrows or widens the limit's range (a directive hook: a
// forecast may raise the floor before a flash sale or cap a fragile
// service). Zero keeps the configured bound. The current limit is clamped.
func (l *Limiter) SetBounds(min, max int) error {
	lo, hi := float64(l.cfg.MinLimit), float64(l.cfg.MaxLimit)
	if min > 0 {
		lo = float64(min)
	}
	if max > 0 {
		hi = float64(max)
	}
	if lo > hi {
		return fmt.Errorf("admission bounds: min %v above max %v", lo, hi)
	}
	b := [2]float64{lo, hi}
	l.bounds.Store(&b)
	l.Seed(l.Limit())
	return nil
}

// ConfiguredBounds returns the configured floor and ceiling of the limit
// (defaults filled): what a directive's zero bound falls back to.
func (l *Limiter) ConfiguredBounds() (min, max int) { return l.cfg.MinLimit, l.cfg.MaxLimit }

// Seed sets the current limit (clamped to the bounds), e.g. to the
// concurrency a forecast expects, instead of learning it from scratch.
func (l *Limiter) Seed(limit float64) {
	b := l.bounds.Load()
	l.limit.Store(math.Float64bits(math.Max(b[0], math.Min(b[1], limit))))
}

// Snapshot is the limiter's state for /status and metrics.
type Snapshot struct {
	Limit      float64          `json:"limit"`
	InFlight   int64            `json:"in_flight"`
	Min        float64          `json:"min_limit"`
	Max        float64          `json:"max_limit"`
	LongRTTms  float64          `json:"long_rtt_ms"`
	ShortRTTms float64          `json:"short_rtt_ms"`
	Gradient   float64          `json:"gradient"`
	Admitted   map[string]int64 `json:"admitted"`
	Rejected   map[string]int64 `json:"rejected"`
	Capacity   map[string]int64 `json:"capacity"`
}

// Snapshot returns the current state.
func (l *Limiter) Snapshot() Snapshot {
	l.mu.Lock()
	long, short, grad := l.longRTT, l.lastShort, l.lastGrad
	l.mu.Unlock()
	b := l.bounds.Load()
	s := Snapshot{Limit: l.Limit(), InFlight: l.InFlight(), Min: b[0], Max: b[1],
		LongRTTms: long / 1e6, ShortRTTms: short / 1e6, Gradient: grad,
		Admitted: map[string]int64{}, Rejected: map[string]int64{}, Capacity: map[string]int64{}}
	for p := Priority(0); p < numPriorities; p++ {
		s.Admitted[p.String()] = l.admitted[p].Load()
		s.Rejected[p.String()] = l.rejected[p].Load()
		s.Capacity[p.String()] = int64(math.Floor(s.Limit * l.share(p)))
	}
	return s
}

// Rejected returns the number of requests of priority p refused so far.
func (l *Limiter) Rejected(p Priority) int64 { return l.rejected[p].Load() }

// Cancel ends an admitted request without a latency sample (the client
// went away, or the request never reached a backend): it says nothing about
// the service's latency.
func (l *Limiter) Cancel() { l.inflight.Add(-1) }
