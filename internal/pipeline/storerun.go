package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/planner"
	"github.com/lbsys/lbsys/internal/store"
)

// StoreRun is one run of the standard pipeline on the store, as `lbsys
// pipeline run` makes it: forecasts pushed into the store and, with a
// Coordinator, proposed to Gaia as a directive; a dry run only plans.
type StoreRun struct {
	// Store holds the series and receives the forecasts; StorePath and
	// Data (the artifact directory) are reported in the summary.
	Store     *store.Store
	StorePath string
	Data      string
	// Source reads the series (its Store is set from Store).
	Source StoreSource
	// Horizons, Budget, MinGain, Options and Tune configure the run (see
	// Config).
	Horizons []time.Duration
	Budget   time.Duration
	MinGain  float64
	Options  forecast.Options
	Tune     forecast.TuneOptions
	// Params are the run's parameters as recorded with it (JSON).
	Params []byte
	// Coordinator, when set, receives the planned directive (leave it nil,
	// not a nil *client.Client, for none); DryRun plans without
	// proposing, writing forecasts or recording pushes.
	Coordinator Coordinator
	DryRun      bool
	// Observe, LoadUnit and Planner configure the directive planner.
	Observe  time.Duration
	LoadUnit string
	Planner  planner.Options
	// Printer shows the progress (nil: none).
	Printer *Printer
}

// ErrInterrupted wraps the error of a run stopped by its context.
var ErrInterrupted = errors.New("interrupted (recorded as failed)")

// Run runs the pipeline as runID and summarises it; the summary's
// Seconds count from start. An error wraps ErrNoSeries when there was
// nothing to forecast, and ErrInterrupted when ctx ended the run.
func (r *StoreRun) Run(ctx context.Context, runID string, start time.Time) (*RunSummary, *Result, error) {
	src := &r.Source
	src.Store = r.Store
	arts := &Store{Dir: r.Data}
	md := &StoreMetadata{Store: r.Store, Payloads: arts, RunParams: r.Params}
	arts.Fallback = md.Payload
	sink := &StoreSink{Store: r.Store, Source: src}
	// The store keeps the forecasts; with a coordinator they also become a
	// proposed directive (store first: see FanOut). A dry run only plans.
	var dsink *DirectiveSink
	var out Sink = sink
	if r.Coordinator != nil || r.DryRun {
		dsink = &DirectiveSink{Store: r.Store, Source: src, DryRun: r.DryRun, Observe: r.Observe, LoadUnit: r.LoadUnit,
			Planner: r.Planner, Coordinator: r.Coordinator}
		out = FanOut{sink, dsink}
		if r.DryRun {
			out = dsink
		}
	}
	prog := r.Printer
	if prog == nil {
		prog = NewPrinter(nil, true, 0)
	}
	cfg := Config{
		Source: src, Horizons: r.Horizons, Budget: r.Budget, MinGain: r.MinGain, Sink: out,
		Options: r.Options, Tune: r.Tune, OnTrial: prog.Trial,
	}
	runner := &Runner{Pipeline: "forecast", Store: arts, Metadata: md, Progress: prog.Event}
	comps := Standard(cfg, arts, md)
	if r.DryRun {
		for i, c := range comps {
			if p, ok := c.(*Pusher); ok {
				comps[i] = dryRunPusher{p}
			}
		}
	}
	res, err := runner.Run(ctx, runID, comps)
	prog.Done()
	if err != nil {
		switch {
		case errors.Is(err, ErrNoSeries):
			return nil, nil, err
		case errors.Is(err, context.Canceled):
			return nil, nil, fmt.Errorf("run %s %w: %w", runID, ErrInterrupted, err)
		}
		return nil, nil, fmt.Errorf("run %s: %w", runID, err)
	}
	summary, err := Summarize(ctx, res, src, sink, md)
	if err != nil {
		return nil, nil, err
	}
	summary.Store, summary.Data, summary.DryRun = r.StorePath, r.Data, r.DryRun
	if dsink != nil {
		summary.Directive = dsink.Result()
	}
	summary.Seconds = math.Round(time.Since(start).Seconds()*10) / 10
	return summary, res, nil
}

// NewRunID names a run by its start time and three random bytes.
func NewRunID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// dryRunPusher is the Pusher of a dry run: it hands the forecasts to the
// sink (which only plans) but records nothing as pushed, and its distinct
// parameters keep its execution from being reused by a real run (the
// runner would otherwise skip the real Pusher as cached).
type dryRunPusher struct{ *Pusher }

// Params implements Parameterized.
func (dryRunPusher) Params() any { return map[string]bool{"dry_run": true} }

// Uncached implements Uncached: every dry run prints its plan.
func (dryRunPusher) Uncached() {}

// Commit implements Committer.
func (p dryRunPusher) Commit(ctx context.Context, md Metadata, runID string, in Inputs, out map[string]*Artifact) error {
	return p.Pusher.Commit(ctx, noPushRecord{md}, runID, in, out)
}

// noPushRecord is metadata that does not record pushes.
type noPushRecord struct{ Metadata }

func (noPushRecord) SetPushed(context.Context, *Pushed) error { return nil }
