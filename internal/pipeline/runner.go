package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Inputs are a component's input artifacts by channel name, payloads
// loaded.
type Inputs map[string]*Artifact

// Outputs are what a component made: payloads by channel name, and
// metrics recorded with the execution.
type Outputs struct {
	Values  map[string]Payload
	Metrics map[string]float64
}

// Component is one step of the pipeline with TFX's contract: it reads
// typed input artifacts and returns typed outputs; the runner stores
// them, records the lineage and skips the component when its inputs and
// parameters did not change.
type Component interface {
	// Name is unique within a pipeline; it is the execution's name in
	// the lineage.
	Name() string
	// Inputs are the channels the component consumes.
	Inputs() []Port
	// Run does the work. It must be a function of its inputs and
	// parameters: the runner may reuse its outputs instead of calling it.
	Run(ctx context.Context, in Inputs) (Outputs, error)
}

// Port is an input channel; an optional one may be absent (for example,
// no model has been pushed yet).
type Port struct {
	Name     string
	Optional bool
}

// Parameterized components expose their parameters (TFX exec
// properties): recorded in the lineage and part of the cache key.
type Parameterized interface {
	Params() any
}

// Versioned components name their code version; bumping it invalidates
// cached outputs.
type Versioned interface {
	Version() string
}

// Uncached components always run (ExampleGen reads the outside world;
// resolvers read the metadata). Their outputs are still content-hashed,
// so unchanged data leaves everything downstream cached.
type Uncached interface {
	Uncached()
}

// Committer components act on the metadata after their outputs are
// stored (the Pusher records what serves each series).
type Committer interface {
	Commit(ctx context.Context, md Metadata, runID string, in Inputs, out map[string]*Artifact) error
}

// Event reports progress: a component started, finished, was cached or
// failed.
type Event struct {
	Index, Total int
	Component    string
	// State is "start", "done", "cached" or "failed".
	State   string
	Seconds float64
	Err     error
}

// Runner executes components in order.
type Runner struct {
	// Pipeline names the pipeline in runs.
	Pipeline string
	Store    *Store
	Metadata Metadata
	// Progress, when set, receives an event per state change.
	Progress func(Event)
	// Now is the clock for run and execution times (time.Now when nil).
	Now func() time.Time
}

// Result is what a run produced.
type Result struct {
	Run        *Run
	Artifacts  map[string]*Artifact // by channel, payloads loaded
	Executions []*Execution
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// fingerprint is the cache key of an execution: the component, its
// version and parameters, and the content hashes of its inputs.
func fingerprint(c Component, params []byte, in Inputs) string {
	h := sha256.New()
	fmt.Fprintf(h, "component=%s\n", c.Name())
	if v, ok := c.(Versioned); ok {
		fmt.Fprintf(h, "version=%s\n", v.Version())
	}
	fmt.Fprintf(h, "params=%s\n", params)
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "input %s=%s:%s\n", k, in[k].Type, in[k].Hash)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Run executes the components in order, feeding each the artifacts that
// earlier ones output on its input channels. runID must be unique.
func (r *Runner) Run(ctx context.Context, runID string, comps []Component) (*Result, error) {
	if r.Store == nil || r.Metadata == nil {
		return nil, errors.New("pipeline: runner needs a Store and a Metadata")
	}
	run := &Run{ID: runID, Pipeline: r.Pipeline, Started: r.now(), Status: "running"}
	if err := r.Metadata.PutRun(ctx, run); err != nil {
		return nil, err
	}
	res := &Result{Run: run, Artifacts: map[string]*Artifact{}}
	seen := map[string]bool{}
	fail := func(err error) (*Result, error) {
		run.Status, run.Error, run.Finished = "failed", err.Error(), r.now()
		_ = r.Metadata.PutRun(context.WithoutCancel(ctx), run)
		return res, err
	}
	for i, c := range comps {
		if seen[c.Name()] {
			return fail(fmt.Errorf("pipeline: two components named %q", c.Name()))
		}
		seen[c.Name()] = true
		ev := Event{Index: i + 1, Total: len(comps), Component: c.Name()}
		in := Inputs{}
		for _, p := range c.Inputs() {
			a, ok := res.Artifacts[p.Name]
			if !ok {
				if p.Optional {
					continue
				}
				return fail(fmt.Errorf("pipeline: %s needs %q, which no earlier component output", c.Name(), p.Name))
			}
			in[p.Name] = a
		}
		var params []byte
		if pc, ok := c.(Parameterized); ok {
			b, err := json.Marshal(pc.Params())
			if err != nil {
				return fail(fmt.Errorf("pipeline: %s parameters: %w", c.Name(), err))
			}
			params = b
		}
		fp := fingerprint(c, params, in)
		exec := &Execution{RunID: runID, Component: c.Name(), Fingerprint: fp, Inputs: map[string]int64{},
			Outputs: map[string]int64{}, Params: params}
		for k, a := range in {
			exec.Inputs[k] = a.ID
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		start := r.now()
		if _, uncached := c.(Uncached); !uncached {
			if out, prev, ok := r.reuse(ctx, c, fp); ok {
				exec.Cached, exec.Status, exec.Metrics = true, "succeeded", prev.Metrics
				for k, a := range out {
					exec.Outputs[k] = a.ID
					res.Artifacts[k] = a
				}
				exec.Seconds = r.now().Sub(start).Seconds()
				if err := r.Metadata.PutExecution(ctx, exec); err != nil {
					return fail(err)
				}
				res.Executions = append(res.Executions, exec)
				ev.State, ev.Seconds = "cached", exec.Seconds
				r.emit(ev)
				continue
			}
		}
		ev.State = "start"
		r.emit(ev)
		out, err := r.runOne(ctx, c, in)
		// Outputs are stored even when the component failed (the
		// validator's anomalies explain its failure); a failed execution
		// is never reused.
		stored, serr := r.store(ctx, c, runID, out)
		for k, a := range stored {
			exec.Outputs[k] = a.ID
			res.Artifacts[k] = a
		}
		if err == nil {
			err = serr
		}
		if err == nil {
			if cm, ok := c.(Committer); ok {
				err = cm.Commit(ctx, r.Metadata, runID, in, stored)
			}
		}
		exec.Metrics = out.Metrics
		exec.Seconds = r.now().Sub(start).Seconds()
		exec.Status = "succeeded"
		if err != nil {
			exec.Status, exec.Error = "failed", err.Error()
		}
		if perr := r.Metadata.PutExecution(context.WithoutCancel(ctx), exec); perr != nil && err == nil {
			err = perr
		}
		res.Executions = append(res.Executions, exec)
		ev.Seconds = exec.Seconds
		if err != nil {
			ev.State, ev.Err = "failed", err
			r.emit(ev)
			return fail(fmt.Errorf("%s: %w", c.Name(), err))
		}
		ev.State = "done"
		r.emit(ev)
	}
	run.Status, run.Finished = "succeeded", r.now()
	if err := r.Metadata.PutRun(ctx, run); err != nil {
		return res, err
	}
	return res, nil
}

// runOne calls the component, turning a panic into an error: bad input
// must not take the process down.
func (r *Runner) runOne(ctx context.Context, c Component, in Inputs) (out Outputs, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return c.Run(ctx, in)
}

func (r *Runner) emit(ev Event) {
	if r.Progress != nil {
		r.Progress(ev)
	}
}

// reuse returns the outputs of an earlier execution with the same
// fingerprint, loaded from the store, when all are still there.
func (r *Runner) reuse(ctx context.Context, c Component, fp string) (map[string]*Artifact, *Execution, bool) {
	prev, err := r.Metadata.CachedExecution(ctx, c.Name(), fp)
	if err != nil || prev == nil {
		return nil, nil, false
	}
	out := map[string]*Artifact{}
	for k, id := range prev.Outputs {
		a, err := r.Metadata.Artifact(ctx, id)
		if err != nil || !r.Store.Exists(a) {
			return nil, nil, false
		}
		if err := r.Store.Load(a); err != nil {
			return nil, nil, false
		}
		out[k] = a
	}
	return out, prev, true
}

// store writes each output payload and registers its artifact.
func (r *Runner) store(ctx context.Context, c Component, runID string, out Outputs) (map[string]*Artifact, error) {
	stored := map[string]*Artifact{}
	keys := make([]string, 0, len(out.Values))
	for k := range out.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := out.Values[k]
		if v == nil {
			continue
		}
		a, err := r.Store.Put(v)
		if err != nil {
			return stored, err
		}
		a.Producer, a.RunID = c.Name(), runID
		if pp, ok := v.(interface{ Properties() map[string]string }); ok {
			a.Properties = pp.Properties()
		}
		if err := r.Metadata.PutArtifact(ctx, a); err != nil {
			return stored, err
		}
		stored[k] = a
	}
	return stored, nil
}

// Lineage walks back from an artifact through the executions that
// produced it and their inputs, returning every ancestor execution
// (nearest first) and artifact.
func Lineage(ctx context.Context, md Metadata, artifactID int64) ([]*Execution, []*Artifact, error) {
	var execs []*Execution
	var arts []*Artifact
	seenA := map[int64]bool{}
	queue := []int64{artifactID}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seenA[id] {
			continue
		}
		seenA[id] = true
		a, err := md.Artifact(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		arts = append(arts, a)
		e, err := md.Producer(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		execs = append(execs, e)
		for _, in := range sortedIDs(e.Inputs) {
			queue = append(queue, in)
		}
	}
	return execs, arts, nil
}
