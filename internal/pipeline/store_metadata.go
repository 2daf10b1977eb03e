package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lbsys/lbsys/internal/store"
)

// DataSourced payloads name the stored data they were read from (the
// store's lineage ends: "series:42", "tickets:incident",
// "events:marketing"). A store-backed Metadata links such an artifact to
// that data when it is registered: the edge executions cannot record,
// because no execution produced the data.
type DataSourced interface {
	DataRefs() []string
}

// Lineage edge kinds the store integration records.
const (
	// EdgeInput links stored data to an artifact read from it.
	EdgeInput = "input"
	// EdgeContains links the Pusher's forecasts to one series' forecast.
	EdgeContains = "contains"
	// EdgeModel links the model that made a forecast to it.
	EdgeModel = "model"
	// EdgeForecast links a series' forecast to the store series holding
	// its points.
	EdgeForecast = "forecast"
)

// DefaultMaxPayload is the largest payload StoreMetadata copies into the
// store by default (forecasts, blessings, schemas, anomalies and tuning
// trials fit; examples and models stay in the data directory).
const DefaultMaxPayload = 1 << 20

// StoreMetadata is the Metadata of the embedded store (internal/store):
// runs, artifacts, executions, the models serving each series and lineage
// live in the same SQLite file as the data they were built from, so the
// caching and the blessing survive restarts and other processes (the
// directive builder, the dashboard) read them with the store alone.
//
// Artifact payloads stay under the runner's data directory (Store), by
// their content hash; the store records kind, digest, URI and properties,
// and a copy of every payload up to MaxPayload bytes when Payloads names
// that directory.
type StoreMetadata struct {
	Store *store.Store
	// Payloads is the runner's artifact directory (nil: no copies).
	Payloads *Store
	// MaxPayload bounds the copies (0: DefaultMaxPayload; <0: none).
	MaxPayload int64
	// RunParams are recorded with every run (window, horizons, seed, …).
	RunParams json.RawMessage
}

var _ Metadata = (*StoreMetadata)(nil)

// PutRun implements Metadata.
func (m *StoreMetadata) PutRun(ctx context.Context, r *Run) error {
	_, err := m.Store.PutPipelineRun(ctx, store.PipelineRun{ID: r.ID, Pipeline: r.Pipeline, Started: r.Started,
		Finished: r.Finished, Status: r.Status, Params: m.RunParams, Error: r.Error})
	return err
}

// PutArtifact implements Metadata. An artifact whose payload is
// DataSourced is linked to the stored data it was read from.
func (m *StoreMetadata) PutArtifact(ctx context.Context, a *Artifact) error {
	sa := store.Artifact{Kind: a.Type, URI: a.URI, Digest: a.Hash, Producer: a.Producer, RunID: a.RunID, Props: a.Properties,
		Payload: m.payload(a)}
	id, _, err := m.Store.PutArtifact(ctx, sa)
	if err != nil {
		return err
	}
	a.ID = id
	if ds, ok := a.Value.(DataSourced); ok {
		var edges []store.LineageEdge
		for _, ref := range ds.DataRefs() {
			edges = append(edges, store.LineageEdge{From: ref, To: store.ArtifactRef(id), Kind: EdgeInput, RunID: a.RunID})
		}
		if len(edges) > 0 {
			return m.Store.AddLineage(ctx, edges...)
		}
	}
	return nil
}

// payload returns the artifact's stored bytes when they are small enough
// to copy into the store.
func (m *StoreMetadata) payload(a *Artifact) []byte {
	limit := m.MaxPayload
	if limit == 0 {
		limit = DefaultMaxPayload
	}
	if m.Payloads == nil || limit < 0 || a.URI == "" {
		return nil
	}
	path := filepath.Join(m.Payloads.Dir, a.URI)
	st, err := os.Stat(path)
	if err != nil || st.Size() > limit {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return b
}

// Payload returns the copy of a's payload kept in the store, or nil: the
// runner's Store.Fallback, so a lost or pruned data directory costs the
// large artifacts only (their components run again), never the schema,
// blessings or forecasts.
func (m *StoreMetadata) Payload(a *Artifact) []byte {
	if a == nil || a.ID == 0 {
		return nil
	}
	b, err := m.Store.ArtifactPayload(context.Background(), a.ID)
	if err != nil || len(b) == 0 {
		return nil
	}
	return b
}

func fromStoreArtifact(a store.Artifact) *Artifact {
	return &Artifact{ID: a.ID, Type: a.Kind, URI: a.URI, Hash: a.Digest, Producer: a.Producer, RunID: a.RunID, Properties: a.Props}
}

// Artifact implements Metadata.
func (m *StoreMetadata) Artifact(ctx context.Context, id int64) (*Artifact, error) {
	a, err := m.Store.ArtifactByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return fromStoreArtifact(a), nil
}

// finite drops NaN and infinite metrics: JSON has no encoding for them,
// and "not measured" is what they mean.
func finite(m map[string]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[k] = v
		}
	}
	return out
}

func finiteSteps(m map[int]float64) map[int]float64 {
	if m == nil {
		return nil
	}
	out := make(map[int]float64, len(m))
	for k, v := range m {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[k] = v
		}
	}
	return out
}

// PutExecution implements Metadata.
func (m *StoreMetadata) PutExecution(ctx context.Context, e *Execution) error {
	id, err := m.Store.PutExecution(ctx, store.Execution{RunID: e.RunID, Component: e.Component, Fingerprint: e.Fingerprint,
		Inputs: e.Inputs, Outputs: e.Outputs, Params: e.Params, Metrics: finite(e.Metrics), Cached: e.Cached,
		Status: e.Status, Error: e.Error, Seconds: e.Seconds})
	if err != nil {
		return err
	}
	e.ID = id
	return nil
}

func fromStoreExecution(e *store.Execution) *Execution {
	if e == nil {
		return nil
	}
	x := &Execution{ID: e.ID, RunID: e.RunID, Component: e.Component, Fingerprint: e.Fingerprint, Inputs: e.Inputs,
		Outputs: e.Outputs, Params: e.Params, Metrics: e.Metrics, Cached: e.Cached, Status: e.Status, Error: e.Error,
		Seconds: e.Seconds}
	if x.Inputs == nil {
		x.Inputs = map[string]int64{}
	}
	if x.Outputs == nil {
		x.Outputs = map[string]int64{}
	}
	// The store keeps "{}" for no parameters; the runner records none.
	if string(x.Params) == "{}" {
		x.Params = nil
	}
	return x
}

// Executions implements Metadata.
func (m *StoreMetadata) Executions(ctx context.Context, runID string) ([]*Execution, error) {
	l, err := m.Store.Executions(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := make([]*Execution, len(l))
	for i := range l {
		out[i] = fromStoreExecution(&l[i])
	}
	return out, nil
}

// CachedExecution implements Metadata.
func (m *StoreMetadata) CachedExecution(ctx context.Context, component, fp string) (*Execution, error) {
	e, err := m.Store.CachedExecution(ctx, component, fp)
	if err != nil {
		return nil, err
	}
	return fromStoreExecution(e), nil
}

// Producer implements Metadata.
func (m *StoreMetadata) Producer(ctx context.Context, id int64) (*Execution, error) {
	e, err := m.Store.Producer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return fromStoreExecution(e), nil
}

// LatestArtifact implements Metadata.
func (m *StoreMetadata) LatestArtifact(ctx context.Context, component, typ string) (*Artifact, error) {
	a, err := m.Store.LatestArtifact(ctx, component, typ)
	if err != nil || a == nil {
		return nil, err
	}
	return fromStoreArtifact(*a), nil
}

// SetPushed implements Metadata.
func (m *StoreMetadata) SetPushed(ctx context.Context, p *Pushed) error {
	return m.Store.SetPushed(ctx, store.Pushed{Series: p.Series, RunID: p.RunID, ModelID: p.ModelID, ModelHash: p.ModelHash,
		ForecastID: p.ForecastID, MAE: finiteSteps(p.MAE), MASE: finiteSteps(p.MASE)})
}

// LatestPushed implements Metadata.
func (m *StoreMetadata) LatestPushed(ctx context.Context, series string) (*Pushed, error) {
	p, err := m.Store.LatestPushed(ctx, series)
	if err != nil || p == nil {
		return nil, err
	}
	return &Pushed{Series: p.Series, RunID: p.RunID, ModelID: p.ModelID, ModelHash: p.ModelHash, ForecastID: p.ForecastID,
		MAE: p.MAE, MASE: p.MASE}, nil
}

// Sources returns the stored data an artifact was derived from: the
// lineage ends that are not artifacts ("series:42", "events:marketing",
// "tickets:incident", …), reached back through the executions that
// produced each artifact and the store's lineage edges, sorted.
func (m *StoreMetadata) Sources(ctx context.Context, artifactID int64) ([]string, error) {
	seen := map[int64]bool{}
	found := map[string]bool{}
	queue := []int64{artifactID}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		e, err := m.Store.Producer(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			queue = append(queue, sortedIDs(e.Inputs)...)
		}
		edges, err := m.Store.Lineage(ctx, store.ArtifactRef(id), store.Inputs, 1)
		if err != nil {
			return nil, err
		}
		for _, ed := range edges {
			if rest, ok := strings.CutPrefix(ed.From, "artifact:"); ok {
				if n, err := strconv.ParseInt(rest, 10, 64); err == nil {
					queue = append(queue, n)
				}
				continue
			}
			found[ed.From] = true
		}
	}
	out := make([]string, 0, len(found))
	for r := range found {
		out = append(out, r)
	}
	sort.Strings(out)
	return out, nil
}
