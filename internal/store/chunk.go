package store

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
)

// A chunk holds the rollup buckets of one span: the 60 minutes of an hour
// (rollup_1m) or the 24 hours of a day (rollup_1h). Storing a span per row
// instead of a bucket per row divides the rows a range read walks by 60 (or
// 24); SQLite then copies one blob per row and Go decodes it, which is far
// cheaper than SQLite's per-row interpretation.
//
// Encoding: a little-endian uint64 bitmap of the slots present, then for
// each present slot in order: N as a uvarint and Sum, Min, Max as
// little-endian float64.

// rollup describes one rollup table.
type rollup struct {
	table string
	span  int64 // ms covered by a row
	step  int64 // ms per bucket
}

var (
	rollMinute = rollup{"rollup_1m", hourMs, minuteMs}
	rollHour   = rollup{"rollup_1h", dayMs, hourMs}
)

const dayMs = 24 * hourMs

func (r rollup) slots() int { return int(r.span / r.step) }

// chunk is a decoded row.
type chunk struct {
	present uint64
	b       [64]Bucket
}

func (c *chunk) set(slot int, b Bucket) {
	c.present |= 1 << slot
	c.b[slot] = b
}

func (c *chunk) clear(slot int) { c.present &^= 1 << slot }

func (c *chunk) has(slot int) bool { return c.present&(1<<slot) != 0 }

func (c *chunk) count() int { return bits.OnesCount64(c.present) }

// total aggregates every present bucket (the parent bucket of a rollup).
func (c *chunk) total() (Bucket, bool) {
	var t Bucket
	first := true
	for p := c.present; p != 0; p &= p - 1 {
		b := c.b[bits.TrailingZeros64(p)]
		if first {
			t, first = Bucket{N: b.N, Sum: b.Sum, Min: b.Min, Max: b.Max}, false
			continue
		}
		t.N += b.N
		t.Sum += b.Sum
		t.Min = math.Min(t.Min, b.Min)
		t.Max = math.Max(t.Max, b.Max)
	}
	return t, !first
}

func (c *chunk) encode() []byte {
	out := make([]byte, 8, 8+c.count()*(binary.MaxVarintLen64+24))
	binary.LittleEndian.PutUint64(out, c.present)
	for p := c.present; p != 0; p &= p - 1 {
		b := c.b[bits.TrailingZeros64(p)]
		out = binary.AppendUvarint(out, uint64(b.N))
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(b.Sum))
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(b.Min))
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(b.Max))
	}
	return out
}

var errChunk = errors.New("store: corrupt rollup chunk")

// decode reads data into c; base and step give each bucket's T.
func (c *chunk) decode(data []byte, base, step int64) error {
	if len(data) < 8 {
		return errChunk
	}
	c.present = binary.LittleEndian.Uint64(data)
	data = data[8:]
	for p := c.present; p != 0; p &= p - 1 {
		slot := bits.TrailingZeros64(p)
		n, k := binary.Uvarint(data)
		if k <= 0 || len(data) < k+24 {
			return errChunk
		}
		data = data[k:]
		c.b[slot] = Bucket{
			T:   base + int64(slot)*step,
			N:   int64(n),
			Sum: math.Float64frombits(binary.LittleEndian.Uint64(data)),
			Min: math.Float64frombits(binary.LittleEndian.Uint64(data[8:])),
			Max: math.Float64frombits(binary.LittleEndian.Uint64(data[16:])),
		}
		data = data[24:]
	}
	return nil
}
