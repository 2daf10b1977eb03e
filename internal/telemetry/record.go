package telemetry

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Record is one second of traffic for a service (Endpoint == "") or for one
// of its endpoints. It is the unit the store ingests (issue #6) and the
// forecasting pipeline learns from.
type Record struct {
	// Time is the start of the second, UTC.
	Time     time.Time `json:"ts"`
	Service  string    `json:"service"`
	Endpoint string    `json:"endpoint,omitempty"`
	// Requests completed in the second; RPS equals it (one-second window).
	Requests int64 `json:"requests"`
	// Errors are responses with status >= 500 and proxy-generated errors.
	Errors int64 `json:"errors"`
	// Latency quantiles in milliseconds over the requests that completed in
	// the second (0 when none did).
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	// InFlight is sampled at the end of the second.
	InFlight int64 `json:"in_flight"`
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
}

// Latency buckets: each power of two from 16 µs (2^14 ns) to ~70 s is split
// into 8 equal sub-buckets (at most 12.5% wide, so a quantile read at a
// bucket's middle is within ~6%). The index comes from the position of the
// top bit and the three bits below it: no floating point on the request
// path. Latencies outside the range clamp to the end buckets.
const (
	bucketsPerOctave = 8
	minOctave        = 14 // 2^14 ns ≈ 16 µs
	numOctaves       = 22
	numBuckets       = numOctaves * bucketsPerOctave
	minLatency       = time.Duration(1) << minOctave
)

func bucketOf(d time.Duration) int {
	if d < minLatency {
		return 0
	}
	v := uint64(d)
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1))
	sub := int(v>>(e-3)) & (bucketsPerOctave - 1)
	b := (e-minOctave)*bucketsPerOctave + sub
	if b >= numBuckets {
		return numBuckets - 1
	}
	return b
}

// bucketMid is the middle of bucket b.
func bucketMid(b int) time.Duration {
	e := b/bucketsPerOctave + minOctave
	sub := b % bucketsPerOctave
	lo := (uint64(bucketsPerOctave) + uint64(sub)) << (e - 3)
	width := uint64(1) << (e - 3)
	return time.Duration(lo + width/2)
}

// window accumulates one second. Every field is updated atomically by the
// request goroutines; the aggregator reads and resets it.
type window struct {
	requests atomic.Int64
	errors   atomic.Int64
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	buckets  [numBuckets]atomic.Uint32
}

func (w *window) reset() {
	w.requests.Store(0)
	w.errors.Store(0)
	w.bytesIn.Store(0)
	w.bytesOut.Store(0)
	for i := range w.buckets {
		w.buckets[i].Store(0)
	}
}

// Counter accumulates per-second figures for one series (a service or an
// endpoint). Observations go to the current window; the aggregator flips
// windows once a second, so writers never wait.
type Counter struct {
	cur  atomic.Pointer[window]
	a, b window
	// InFlight returns the current in-flight count when sampled.
	InFlight func() int64
}

// NewCounter returns a ready Counter.
func NewCounter(inflight func() int64) *Counter {
	c := &Counter{InFlight: inflight}
	c.cur.Store(&c.a)
	return c
}

// Observe records one completed request.
func (c *Counter) Observe(latency time.Duration, isError bool, bytesIn, bytesOut int64) {
	w := c.cur.Load()
	w.requests.Add(1)
	if isError {
		w.errors.Add(1)
	}
	if bytesIn > 0 {
		w.bytesIn.Add(bytesIn)
	}
	if bytesOut > 0 {
		w.bytesOut.Add(bytesOut)
	}
	w.buckets[bucketOf(latency)].Add(1)
}

// flip swaps windows and returns the closed one. An observation racing with
// the flip lands in one window or the other; none is lost, at worst counted
// a second late.
func (c *Counter) flip() *window {
	old := c.cur.Load()
	next := &c.a
	if old == &c.a {
		next = &c.b
	}
	next.reset()
	c.cur.Store(next)
	return old
}

// snapshot turns a closed window into a record.
func (c *Counter) snapshot(w *window, ts time.Time, service, endpoint string) Record {
	r := Record{Time: ts, Service: service, Endpoint: endpoint,
		Requests: w.requests.Load(), Errors: w.errors.Load(),
		BytesIn: w.bytesIn.Load(), BytesOut: w.bytesOut.Load()}
	if c.InFlight != nil {
		r.InFlight = c.InFlight()
	}
	var counts [numBuckets]uint32
	var total uint64
	for i := range counts {
		counts[i] = w.buckets[i].Load()
		total += uint64(counts[i])
	}
	if total > 0 {
		r.P50ms = quantile(&counts, total, 0.50)
		r.P90ms = quantile(&counts, total, 0.90)
		r.P99ms = quantile(&counts, total, 0.99)
	}
	return r
}

func quantile(counts *[numBuckets]uint32, total uint64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range counts {
		seen += uint64(c)
		if seen >= rank {
			return float64(bucketMid(i)) / float64(time.Millisecond)
		}
	}
	return float64(bucketMid(numBuckets-1)) / float64(time.Millisecond)
}
