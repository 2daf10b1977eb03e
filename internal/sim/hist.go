package sim

import "math/bits"

// hist is a log-bucketed latency histogram in the spirit of HdrHistogram
// (Gil Tene): values below 256 ns are counted exactly; above, each power of
// two is split into 128 linear sub-buckets, so any recorded value is known
// to within 1/128 (0.8%) of itself. Recording is a bit-length, a shift and
// an increment: no allocation, no floating point. One histogram covers 1 ns
// to 2^42 ns (73 minutes) in 4,736 counters; larger values land in the top
// bucket.
//
// We keep our own rather than hdrhistogram-go because the simulator records
// hundreds of millions of values and resets per-minute histograms 1,440
// times a simulated day: this one is a flat array with a cheap Reset and
// exact sums for means.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	sum    float64 // ns, exact enough for means
	max    int64
	lo, hi int // range of touched buckets, for a fast reset and scan
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // 128
	histMaxBits = 42
	histBuckets = 2*histSub + (histMaxBits-histSubBits-1)*histSub
)

func histIndex(v int64) int {
	if v < 2*histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1) // v>>shift in [128, 255]
	idx := 2*histSub + (shift-1)*histSub + int(uint64(v)>>uint(shift)) - histSub
	if idx >= histBuckets {
		return histBuckets - 1
	}
	return idx
}

// histValue is the midpoint of bucket idx.
func histValue(idx int) float64 {
	if idx < 2*histSub {
		return float64(idx)
	}
	shift := (idx-2*histSub)/histSub + 1
	sub := (idx-2*histSub)%histSub + histSub
	lo := float64(uint64(sub) << uint(shift))
	return lo + float64(uint64(1)<<uint(shift))/2
}

func (h *hist) record(v int64) {
	i := histIndex(v)
	h.counts[i]++
	if h.n == 0 {
		h.lo, h.hi = i, i
	} else if i < h.lo {
		h.lo = i
	} else if i > h.hi {
		h.hi = i
	}
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

// reset empties the histogram, touching only the used range.
func (h *hist) reset() {
	if h.n > 0 {
		clear(h.counts[h.lo : h.hi+1])
	}
	h.n, h.sum, h.max, h.lo, h.hi = 0, 0, 0, 0, 0
}

// merge adds o's counts into h.
func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	for i := o.lo; i <= o.hi; i++ {
		h.counts[i] += o.counts[i]
	}
	if h.n == 0 {
		h.lo, h.hi = o.lo, o.hi
	} else {
		h.lo, h.hi = min(h.lo, o.lo), max(h.hi, o.hi)
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the q-quantile in ns (the nearest-rank bucket's
// midpoint, capped at the exact maximum); 0 when empty.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i := h.lo; i <= h.hi; i++ {
		seen += uint64(h.counts[i])
		if seen >= rank {
			v := histValue(i)
			if v > float64(h.max) {
				v = float64(h.max)
			}
			return v
		}
	}
	return float64(h.max)
}

// mean returns the mean in ns.
func (h *hist) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
