package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// FuzzLoadArtifact: an artifact payload read back from the data directory
// (or the store's copy) never panics the decoder of any artifact type:
// examples, statistics, schema, anomalies, transform graph, models,
// evaluation, blessing, forecasts. (The hash check only says the file is
// the one written; the bytes are still decoded by custom decoders such as
// forecast.Values.)
func FuzzLoadArtifact(f *testing.F) {
	typesMu.RLock()
	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	typesMu.RUnlock()
	sort.Strings(names)
	for _, s := range []string{`{}`, `null`, `{"series":[{"name":"a","start":"2026-01-01T00:00:00Z","step":60000000000,"values":[1,null,2]}]}`,
		`{"series":{"a":{"min":-1,"max":null}}}`, `{"models":{"a":{"kind":"gbdt","trees":[{"nodes":[{"f":-1}]}]}}}`, `[1,`} {
		for i := range names {
			f.Add(uint8(i), []byte(s))
		}
	}
	dir, err := os.MkdirTemp("", "fuzz-artifacts")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	st := &Store{Dir: dir}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		typ := names[int(which)%len(names)]
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		rel := filepath.Join("artifacts", typ, h+".json")
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
		a := &Artifact{ID: 1, Type: typ, URI: rel, Hash: h}
		if err := st.Load(a); err == nil && a.Value == nil {
			t.Fatalf("%s: loaded without a value", typ)
		}
	})
}

// FuzzOpenFileMetadata: a metadata file (the pipeline's record of runs,
// artifacts and pushed models without the store) that is damaged is an
// error naming it, never a panic.
func FuzzOpenFileMetadata(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"pushed":null,"artifacts":[{"id":1,"type":"Model"}]}`))
	f.Add([]byte(`not json`))
	dir, err := os.MkdirTemp("", "fuzz-metadata")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "metadata.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := OpenFileMetadata(path)
		if err != nil {
			return
		}
		if m.state.Pushed == nil {
			t.Fatal("opened with a nil pushed map")
		}
	})
}
