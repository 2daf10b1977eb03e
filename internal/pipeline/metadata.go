package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Metadata records what the pipeline did, after ML Metadata (the store
// behind TFX): runs, artifacts, executions with their inputs, outputs,
// parameters and metrics (the lineage), and which model serves each
// series. MemoryMetadata, FileMetadata and StoreMetadata (the embedded
// store) implement it.
type Metadata interface {
	// PutRun creates or updates a run.
	PutRun(ctx context.Context, r *Run) error
	// PutArtifact registers a; an artifact with the same type and hash
	// is the same artifact, and its existing ID is set on a.
	PutArtifact(ctx context.Context, a *Artifact) error
	// Artifact returns an artifact by ID.
	Artifact(ctx context.Context, id int64) (*Artifact, error)
	// PutExecution records an execution and assigns its ID.
	PutExecution(ctx context.Context, e *Execution) error
	// Executions lists a run's executions in order.
	Executions(ctx context.Context, runID string) ([]*Execution, error)
	// CachedExecution returns the latest successful execution of a
	// component with this fingerprint (same code version, parameters and
	// input contents), or nil.
	CachedExecution(ctx context.Context, component, fingerprint string) (*Execution, error)
	// Producer returns the execution that first output the artifact.
	Producer(ctx context.Context, artifactID int64) (*Execution, error)
	// LatestArtifact returns the newest artifact of a type that a
	// successful execution of the component output, or nil.
	LatestArtifact(ctx context.Context, component, typ string) (*Artifact, error)
	// SetPushed records that a model now serves a series.
	SetPushed(ctx context.Context, p *Pushed) error
	// LatestPushed returns the record of the model serving a series, or
	// nil.
	LatestPushed(ctx context.Context, series string) (*Pushed, error)
}

// Run is one execution of a pipeline.
type Run struct {
	ID       string    `json:"id"`
	Pipeline string    `json:"pipeline"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Status is "running", "succeeded" or "failed".
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Execution is one component's run within a pipeline run: the lineage
// edge from its input artifacts to its outputs.
type Execution struct {
	ID          int64              `json:"id"`
	RunID       string             `json:"run_id"`
	Component   string             `json:"component"`
	Fingerprint string             `json:"fingerprint"`
	Inputs      map[string]int64   `json:"inputs"`
	Outputs     map[string]int64   `json:"outputs"`
	Params      json.RawMessage    `json:"params,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	// Cached is set when the outputs of an earlier execution with the
	// same fingerprint were reused instead of running the component.
	Cached  bool    `json:"cached"`
	Status  string  `json:"status"` // "succeeded" or "failed"
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"`
}

// Pushed says which model serves a series and which forecast artifact
// carries its latest forecast.
type Pushed struct {
	Series     string `json:"series"`
	RunID      string `json:"run_id"`
	ModelID    int64  `json:"model_id"`
	ModelHash  string `json:"model_hash"`
	ForecastID int64  `json:"forecast_id"`
	// MAE and MASE per horizon (steps) on the test windows when blessed.
	MAE  map[int]float64 `json:"mae"`
	MASE map[int]float64 `json:"mase"`
}

// MemoryMetadata is an in-memory Metadata, safe for concurrent use.
type MemoryMetadata struct {
	mu     sync.Mutex
	state  metaState
	onSave func(*metaState) error
}

type metaState struct {
	Runs       []*Run               `json:"runs"`
	Artifacts  []*Artifact          `json:"artifacts"`
	Executions []*Execution         `json:"executions"`
	Pushed     map[string][]*Pushed `json:"pushed"`
}

// NewMemoryMetadata returns an empty in-memory store.
func NewMemoryMetadata() *MemoryMetadata {
	return &MemoryMetadata{state: metaState{Pushed: map[string][]*Pushed{}}}
}

func (m *MemoryMetadata) save() error {
	if m.onSave == nil {
		return nil
	}
	return m.onSave(&m.state)
}

// PutRun implements Metadata.
func (m *MemoryMetadata) PutRun(_ context.Context, r *Run) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *r
	for i, x := range m.state.Runs {
		if x.ID == r.ID {
			m.state.Runs[i] = &c
			return m.save()
		}
	}
	m.state.Runs = append(m.state.Runs, &c)
	return m.save()
}

// PutArtifact implements Metadata.
func (m *MemoryMetadata) PutArtifact(_ context.Context, a *Artifact) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.state.Artifacts {
		if x.Type == a.Type && x.Hash == a.Hash {
			a.ID = x.ID
			return nil
		}
	}
	c := *a
	c.Value = nil
	c.ID = int64(len(m.state.Artifacts) + 1)
	a.ID = c.ID
	m.state.Artifacts = append(m.state.Artifacts, &c)
	return m.save()
}

// Artifact implements Metadata.
func (m *MemoryMetadata) Artifact(_ context.Context, id int64) (*Artifact, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id <= 0 || id > int64(len(m.state.Artifacts)) {
		return nil, fmt.Errorf("metadata: no artifact %d", id)
	}
	c := *m.state.Artifacts[id-1]
	return &c, nil
}

// PutExecution implements Metadata.
func (m *MemoryMetadata) PutExecution(_ context.Context, e *Execution) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *e
	c.ID = int64(len(m.state.Executions) + 1)
	e.ID = c.ID
	m.state.Executions = append(m.state.Executions, &c)
	return m.save()
}

// Executions implements Metadata.
func (m *MemoryMetadata) Executions(_ context.Context, runID string) ([]*Execution, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Execution
	for _, e := range m.state.Executions {
		if e.RunID == runID {
			c := *e
			out = append(out, &c)
		}
	}
	return out, nil
}

// CachedExecution implements Metadata.
func (m *MemoryMetadata) CachedExecution(_ context.Context, component, fp string) (*Execution, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.state.Executions) - 1; i >= 0; i-- {
		e := m.state.Executions[i]
		if e.Component == component && e.Fingerprint == fp && e.Status == "succeeded" {
			c := *e
			return &c, nil
		}
	}
	return nil, nil
}

// Producer implements Metadata.
func (m *MemoryMetadata) Producer(_ context.Context, id int64) (*Execution, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.state.Executions {
		if e.Status != "succeeded" {
			continue
		}
		for _, o := range sortedIDs(e.Outputs) {
			if o == id {
				c := *e
				return &c, nil
			}
		}
	}
	return nil, fmt.Errorf("metadata: no execution produced artifact %d", id)
}

// LatestArtifact implements Metadata.
func (m *MemoryMetadata) LatestArtifact(_ context.Context, component, typ string) (*Artifact, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.state.Executions) - 1; i >= 0; i-- {
		e := m.state.Executions[i]
		if e.Component != component || e.Status != "succeeded" {
			continue
		}
		for _, id := range sortedIDs(e.Outputs) {
			if a := m.state.Artifacts[id-1]; a.Type == typ {
				c := *a
				return &c, nil
			}
		}
	}
	return nil, nil
}

// SetPushed implements Metadata.
func (m *MemoryMetadata) SetPushed(_ context.Context, p *Pushed) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *p
	m.state.Pushed[p.Series] = append(m.state.Pushed[p.Series], &c)
	return m.save()
}

// LatestPushed implements Metadata.
func (m *MemoryMetadata) LatestPushed(_ context.Context, series string) (*Pushed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.state.Pushed[series]
	if len(h) == 0 {
		return nil, nil
	}
	c := *h[len(h)-1]
	return &c, nil
}

func sortedIDs(m map[string]int64) []int64 {
	out := make([]int64, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// FileMetadata is a MemoryMetadata persisted to one JSON file, rewritten
// atomically after every change: enough for a single pipeline process
// without the store (StoreMetadata).
type FileMetadata struct {
	*MemoryMetadata
	Path string
}

// OpenFileMetadata loads path (a missing file is an empty store).
func OpenFileMetadata(path string) (*FileMetadata, error) {
	f := &FileMetadata{MemoryMetadata: NewMemoryMetadata(), Path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("metadata: %w", err)
	default:
		if err := json.Unmarshal(b, &f.state); err != nil {
			return nil, fmt.Errorf("metadata %s: %w (move the file away to start afresh)", path, err)
		}
		if f.state.Pushed == nil {
			f.state.Pushed = map[string][]*Pushed{}
		}
	}
	f.onSave = func(s *metaState) error {
		b, err := json.MarshalIndent(s, "", " ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return writeAtomic(path, b)
	}
	return f, nil
}

var (
	_ Metadata = (*MemoryMetadata)(nil)
	_ Metadata = (*FileMetadata)(nil)
)
