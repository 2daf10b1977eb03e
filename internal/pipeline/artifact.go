package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
)

// Artifact is one typed output of a component, stored under the data
// directory by the hash of its content (TFX's artifact: a type, a URI and
// properties; here the URI is content-addressed, so identical outputs are
// one file and one record).
type Artifact struct {
	// ID is assigned by the Metadata store.
	ID int64 `json:"id"`
	// Type names the payload's kind ("Examples", "Model", …).
	Type string `json:"type"`
	// URI is the payload's path relative to the data directory.
	URI string `json:"uri"`
	// Hash is the SHA-256 of the payload's JSON encoding.
	Hash string `json:"hash"`
	// Producer and RunID say which component of which run made it first.
	Producer string `json:"producer"`
	RunID    string `json:"run_id"`
	// Properties are small facts worth querying without the payload.
	Properties map[string]string `json:"properties,omitempty"`

	// Value is the decoded payload (nil until loaded).
	Value any `json:"-"`
}

// Payload is a value a component can output: it names its artifact type.
type Payload interface {
	ArtifactType() string
}

var (
	typesMu sync.RWMutex
	types   = map[string]reflect.Type{}
)

// RegisterType makes a payload type loadable from the data directory.
// The standard payloads register themselves.
func RegisterType(p Payload) {
	t := reflect.TypeOf(p)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	typesMu.Lock()
	types[p.ArtifactType()] = t
	typesMu.Unlock()
}

// Store keeps artifact payloads as JSON files under Dir/artifacts/<Type>/
// <hash>.json. Writes are atomic (temporary file + rename), so a crash
// never leaves a half-written artifact under its final name.
type Store struct {
	Dir string
	// Fallback, when set, supplies a payload missing from Dir (a copy
	// kept elsewhere: StoreMetadata.Payload); Load checks its hash and
	// writes it back under Dir.
	Fallback func(a *Artifact) []byte
}

// encode returns the payload's JSON and its hash.
func encode(p Payload) ([]byte, string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, "", fmt.Errorf("encode %s: %w", p.ArtifactType(), err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}

// Put writes p (if its content is not stored yet) and returns an
// unregistered artifact describing it.
func (s *Store) Put(p Payload) (*Artifact, error) {
	b, h, err := encode(p)
	if err != nil {
		return nil, err
	}
	rel := filepath.Join("artifacts", p.ArtifactType(), h+".json")
	path := filepath.Join(s.Dir, rel)
	if _, err := os.Stat(path); err != nil {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("artifact store: %w", err)
		}
		if err := writeAtomic(path, b); err != nil {
			return nil, err
		}
	}
	return &Artifact{Type: p.ArtifactType(), URI: rel, Hash: h, Value: p}, nil
}

// Load reads and decodes a's payload into a.Value, checking its hash.
func (s *Store) Load(a *Artifact) error {
	if a.Value != nil {
		return nil
	}
	path := filepath.Join(s.Dir, a.URI)
	b, err := os.ReadFile(path)
	restore := false
	if errors.Is(err, os.ErrNotExist) && s.Fallback != nil {
		if fb := s.Fallback(a); fb != nil {
			b, err, restore = fb, nil, true
		}
	}
	if err != nil {
		return fmt.Errorf("artifact %d (%s): %w", a.ID, a.Type, err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != a.Hash {
		return fmt.Errorf("artifact %d (%s) at %s: content does not match its hash; the data directory was modified", a.ID, a.Type, a.URI)
	}
	if restore && os.MkdirAll(filepath.Dir(path), 0o755) == nil {
		_ = writeAtomic(path, b) // a cache: the copy serves this load either way
	}
	typesMu.RLock()
	t, ok := types[a.Type]
	typesMu.RUnlock()
	if !ok {
		return fmt.Errorf("artifact %d: unknown type %q", a.ID, a.Type)
	}
	v := reflect.New(t)
	if err := json.Unmarshal(b, v.Interface()); err != nil {
		return fmt.Errorf("artifact %d (%s): %w", a.ID, a.Type, err)
	}
	a.Value = v.Interface()
	return nil
}

// Exists reports whether a's payload file is present (or its Fallback
// has a copy).
func (s *Store) Exists(a *Artifact) bool {
	_, err := os.Stat(filepath.Join(s.Dir, a.URI))
	return err == nil || (s.Fallback != nil && s.Fallback(a) != nil)
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// As returns the artifact's payload as T, or an error naming what was
// expected.
func As[T any](a *Artifact) (T, error) {
	var zero T
	if a == nil {
		return zero, errors.New("missing artifact")
	}
	v, ok := a.Value.(T)
	if !ok {
		return zero, fmt.Errorf("artifact %d is a %s (%T), expected %T", a.ID, a.Type, a.Value, zero)
	}
	return v, nil
}
