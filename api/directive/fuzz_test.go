package directive

import (
	"encoding/json"
	"testing"
)

// FuzzParse: no input panics, and whatever parses survives a round trip
// with the same content and still validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"schema": 1, "services": {}}`))
	f.Add([]byte(`{"schema": 1, "services": {"a": {"weights": {"h:1": 1e308}}}}`))
	f.Add([]byte(`{"schema": 1, "services": {"a": {"slow_start": [{"endpoint": "h:1", "to": 1, "duration": 1e300}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("valid directive does not encode: %v", err)
		}
		d2, err := Parse(b)
		if err != nil {
			t.Fatalf("re-encoded directive invalid: %v\n%s", err, b)
		}
		if !Equal(d, d2) {
			t.Fatalf("round trip changed content:\n%s", FormatDiff(Diff(d, d2)))
		}
		_ = Diff(d, nil)
		_ = WeightMoves(nil, d)
	})
}

// FuzzStreamMessages: the coordinator parses these from every agent.
func FuzzStreamMessages(f *testing.F) {
	f.Add([]byte(`{"proxy": "edge-1", "version": 3, "nonce": "n1-2-3", "rejected": 4, "error": "x", "report_interval_ms": 1000, "wait_ms": 20000}`))
	f.Add([]byte(`{"proxy": "p", "version": 1, "since": "2026-11-27T12:00:00Z", "services": {"a": {"requests": 10, "errors": 1, "p99_ms": 12.5}}}`))
	f.Add([]byte(`{"proxy": "edge-1", "version": 3, "cluster": "0123abcd"}`))
	f.Add([]byte(`{"version": 4, "cluster": "0123abcd", "nonce": "n1-2-4", "directive": {"schema": 1, "version": 4, "cluster": "0123abcd", "services": {}}, "canary": true, "report_interval_ms": 1000, "leader": "http://127.0.0.1:7101"}`))
	f.Add([]byte(`{"error": "cluster mismatch", "cluster": "0123abcd", "leader": "http://x", "outcome": "unknown", "errors": [{"path": "a", "error": "b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Agents parse watch responses and error bodies from the
		// coordinator: whatever decodes must re-encode, and a directive in
		// it must either validate or be refused (never panic).
		var resp WatchResponse
		if DecodeStrict(data, &resp) == nil {
			if resp.Directive != nil {
				_ = resp.Directive.Validate()
			}
			if _, err := json.Marshal(resp); err != nil && resp.Directive != nil && resp.Directive.Validate() == nil {
				t.Fatalf("a valid directive in a watch response does not encode: %v", err)
			}
		}
		var eb ErrorBody
		_ = DecodeStrict(data, &eb)
		var w WatchRequest
		if DecodeStrict(data, &w) == nil && w.Validate() == nil {
			if _, err := json.Marshal(w); err != nil {
				t.Fatal(err)
			}
		}
		var r Report
		if DecodeStrict(data, &r) == nil && r.Validate() == nil {
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("a valid report does not encode (the FSM snapshot would fail): %v", err)
			}
		}
	})
}
