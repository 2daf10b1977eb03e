package agent

import (
	"bytes"
	"testing"
)

// FuzzParseState: the state file is read at every proxy start; no content
// panics, and what is accepted is a valid, versioned directive that writes
// back (persist) to a file that parses to the same version and cluster.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"schema": 1, "version": 3, "cluster": "0123abcd", "services": {"catalog": {"weights": {"127.0.0.1:9001": 2}}}}`))
	f.Add([]byte(`{"schema": 1, "version": 0, "services": {}}`))
	f.Add([]byte(`{"schema": 1, "version": 1, "cluster": "BAD", "services": {}}`))
	f.Add([]byte(`{"schema": 1, "version": 18446744073709551615, "services": {}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseState(data, "fuzz")
		if err != nil {
			return
		}
		if d.Version == 0 || d.Validate() != nil {
			t.Fatalf("accepted an unversioned or invalid directive: %s", data)
		}
		b, err := jsonIndent(d)
		if err != nil {
			t.Fatalf("accepted state does not encode: %v", err)
		}
		d2, err := parseState(b, "fuzz")
		if err != nil || d2.Version != d.Version || d2.Cluster != d.Cluster || !bytes.Equal(mustJSON(t, d), mustJSON(t, d2)) {
			t.Fatalf("state does not round-trip: %v", err)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := jsonIndentAny(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
