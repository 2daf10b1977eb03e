package loadgen

import (
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs .. 60 s with 3 significant digits (values in µs).
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histDigits) }

func recordDur(h *hdr.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = min(max(us, histMin), histMax)
	h.RecordValue(us)
}

// classCounts are the counters of one endpoint class (or of all).
type classCounts struct {
	requests  int64 // sent (got a slot), dropped excluded
	responses int64
	ok        int64 // 2xx and 3xx
	kinds     [numKinds]int64
}

// stats collects everything a run reports. Counters that the per-second
// line needs while requests are in flight are atomics; histograms and the
// per-class counts are under mu, taken once per finished request.
type stats struct {
	inFlight atomic.Int64
	sent     atomic.Int64 // all classes
	late     atomic.Int64
	maxLag   atomic.Int64 // ns

	// sessions
	sessStarted, sessCompleted, sessAbandoned, sessUnfinished, sessDropped atomic.Int64
	sessActive                                                             atomic.Int64
	checkouts, checkoutRetries, checkoutRejected                           atomic.Int64
	reached                                                                [numSteps]atomic.Int64

	mu      sync.Mutex
	all     classCounts
	classes [numClasses]classCounts
	latAll  *hdr.Histogram
	latCls  [numClasses]*hdr.Histogram
	latSec  *hdr.Histogram // latencies of the requests finished this second
	lag     *hdr.Histogram
	// finished counts requests that ended (response or error) for the
	// per-second line; errors counts error outcomes including drops.
	finished, errors int64
	// reasons counts errors by class, kind, status and reason, for the
	// summary's top errors; at most maxReasons keys (the rest are counted
	// under otherReasons).
	reasons      map[errorKey]*reasonCount
	otherReasons int64
}

// errorKey is what tells errors apart in the summary's top errors.
type errorKey struct {
	class  Class
	kind   ErrorKind
	status int
	reason string
}

// reasonCount is one errorKey's count and the first request it was seen
// on (method and path: the strings are the generator's own, not copies).
type reasonCount struct {
	n            int64
	method, path string
}

// maxReasons bounds the distinct error keys kept: a target answering a
// new reason for every request cannot grow the generator's memory.
const maxReasons = 256

func newStats() *stats {
	s := &stats{latAll: newHist(), latSec: newHist(), lag: newHist(), reasons: map[errorKey]*reasonCount{}}
	for i := range s.latCls {
		s.latCls[i] = newHist()
	}
	return s
}

// begin counts a request that got an in-flight slot and is about to be
// sent; lag is how late its send is against the schedule.
func (s *stats) begin(lag, lateAfter time.Duration) {
	s.sent.Add(1)
	if lag > lateAfter {
		s.late.Add(1)
	}
	for {
		m := s.maxLag.Load()
		if int64(lag) <= m || s.maxLag.CompareAndSwap(m, int64(lag)) {
			break
		}
	}
}

// end records a finished request. latency is from the scheduled send time.
// Latency is recorded for responses (any status) and timeouts: a timeout's
// latency is the time the client waited, which is what a slow backend
// costs; connect and reset errors are fast failures that would flatter the
// percentiles, and unfinished requests have no end.
func (s *stats) end(req *Request, c Class, kind ErrorKind, status int, reason string, latency, lag time.Duration) {
	s.mu.Lock()
	if kind != KindNone && kind != KindUnfinished {
		s.countReason(errorKey{c, kind, status, reason}, req)
	}
	for _, cc := range [2]*classCounts{&s.all, &s.classes[c]} {
		cc.requests++
		if status > 0 {
			cc.responses++
			if status < 400 {
				cc.ok++
			}
		}
		if kind != KindNone {
			cc.kinds[kind]++
		}
	}
	s.finished++
	if kind != KindNone && kind != KindUnfinished {
		s.errors++
	}
	if status > 0 || kind == KindTimeout {
		recordDur(s.latAll, latency)
		recordDur(s.latCls[c], latency)
		recordDur(s.latSec, latency)
	}
	if lag < 0 {
		lag = 0
	}
	s.lag.RecordValue(min(lag.Microseconds(), histMax))
	s.mu.Unlock()
}

// countReason counts one error under its key; s.mu is held.
func (s *stats) countReason(k errorKey, req *Request) {
	if rc := s.reasons[k]; rc != nil {
		rc.n++
		return
	}
	if len(s.reasons) >= maxReasons {
		s.otherReasons++
		return
	}
	s.reasons[k] = &reasonCount{n: 1, method: req.Method, path: req.Path}
}

// drop counts a request that found no free in-flight slot.
func (s *stats) drop(req *Request, c Class) {
	s.mu.Lock()
	s.countReason(errorKey{c, KindDropped, 0, "no in-flight slot free (--max-inflight)"}, req)
	s.all.kinds[KindDropped]++
	s.classes[c].kinds[KindDropped]++
	s.errors++
	s.mu.Unlock()
}

// snapshot is the cumulative state the per-second line differences.
type snapshot struct {
	sent, finished, responses, errors, late      int64
	checkouts, abandoned, sessStarted, completed int64
	p50, p99                                     time.Duration
	secCount                                     int64
}

// tick returns the cumulative counters and the percentiles of the requests
// finished since the previous tick, and starts a new second.
func (s *stats) tick() snapshot {
	s.mu.Lock()
	sn := snapshot{
		finished:  s.finished,
		responses: s.all.responses,
		errors:    s.errors,
		secCount:  s.latSec.TotalCount(),
	}
	if sn.secCount > 0 {
		sn.p50 = time.Duration(s.latSec.ValueAtQuantile(50)) * time.Microsecond
		sn.p99 = time.Duration(s.latSec.ValueAtQuantile(99)) * time.Microsecond
	}
	s.latSec.Reset()
	s.mu.Unlock()
	sn.sent = s.sent.Load()
	sn.late = s.late.Load()
	sn.checkouts = s.checkouts.Load()
	sn.abandoned = s.sessAbandoned.Load()
	sn.sessStarted = s.sessStarted.Load()
	sn.completed = s.sessCompleted.Load()
	return sn
}
