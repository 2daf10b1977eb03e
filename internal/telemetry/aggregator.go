package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

// Sink receives each second's records. Write is called from the aggregator's
// goroutine only; a slow sink delays the next second's records but never a
// request.
type Sink interface {
	Write(recs []Record) error
}

// Series is one counter with its labels.
type Series struct {
	Service  string
	Endpoint string
	Counter  *Counter
}

// Aggregator turns counters into one record per series per second.
type Aggregator struct {
	clock clock.Clock
	log   *slog.Logger

	mu     sync.Mutex
	series []Series
	sinks  []Sink
}

// NewAggregator returns an aggregator; call Run to start it.
func NewAggregator(c clock.Clock, log *slog.Logger, sinks ...Sink) *Aggregator {
	if log == nil {
		log = slog.Default()
	}
	return &Aggregator{clock: c, log: log, sinks: sinks}
}

// SetSeries replaces the set of series (after a reload). Counters that stay
// keep their partial second.
func (a *Aggregator) SetSeries(s []Series) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.series = append([]Series(nil), s...)
}

// AddSink adds a sink.
func (a *Aggregator) AddSink(s Sink) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sinks = append(a.sinks, s)
}

// Run emits records at every whole second until ctx ends.
func (a *Aggregator) Run(ctx context.Context) {
	for {
		now := a.clock.Now()
		next := now.Truncate(time.Second).Add(time.Second)
		fired := make(chan struct{})
		t := a.clock.AfterFunc(next.Sub(now), func() { close(fired) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-fired:
		}
		a.Flush(next.Add(-time.Second))
	}
}

// Flush closes the current second, labelled ts, and writes it to the sinks.
func (a *Aggregator) Flush(ts time.Time) []Record {
	a.mu.Lock()
	series := a.series
	sinks := a.sinks
	a.mu.Unlock()
	recs := make([]Record, 0, len(series))
	ts = ts.UTC()
	for _, s := range series {
		w := s.Counter.flip()
		recs = append(recs, s.Counter.snapshot(w, ts, s.Service, s.Endpoint))
	}
	for _, sink := range sinks {
		if err := sink.Write(recs); err != nil {
			a.log.Warn("telemetry sink failed", "err", err)
		}
	}
	return recs
}

// Ring keeps the last N seconds of records in memory for the admin API.
type Ring struct {
	mu      sync.Mutex
	seconds int
	batches [][]Record
}

// NewRing keeps up to seconds batches.
func NewRing(seconds int) *Ring {
	if seconds < 1 {
		seconds = 1
	}
	return &Ring{seconds: seconds}
}

// Write appends one second's batch, dropping the oldest beyond capacity.
func (r *Ring) Write(recs []Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, recs)
	if over := len(r.batches) - r.seconds; over > 0 {
		copy(r.batches, r.batches[over:])
		for i := len(r.batches) - over; i < len(r.batches); i++ {
			r.batches[i] = nil
		}
		r.batches = r.batches[:len(r.batches)-over]
	}
	return nil
}

// Since returns the records with Time >= t, oldest first, optionally
// filtered by service.
func (r *Ring) Since(t time.Time, service string) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for _, b := range r.batches {
		for _, rec := range b {
			if rec.Time.Before(t) || (service != "" && rec.Service != service) {
				continue
			}
			out = append(out, rec)
		}
	}
	return out
}

// JSONL appends records as JSON lines to a file.
type JSONL struct {
	mu sync.Mutex
	f  *os.File
	w  *bufio.Writer
}

// OpenJSONL opens (creating or appending) path.
func OpenJSONL(path string) (*JSONL, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("telemetry.jsonl_path: %w", err)
	}
	return &JSONL{f: f, w: bufio.NewWriter(f)}, nil
}

// Write appends the records and flushes, so a reader tailing the file sees
// whole seconds.
func (j *JSONL) Write(recs []Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	enc := json.NewEncoder(j.w)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return j.w.Flush()
}

// Close flushes and closes the file.
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.w.Flush(); err != nil {
		j.f.Close()
		return err
	}
	return j.f.Close()
}
