package yamlstrict

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzDecode: no input makes Parse or the decoder panic or hang; every
// error names a line inside the file; a syntax error's line is the first
// line after which the text cannot parse: the text up to it does not.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(""))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(base + "   timeout: 1s\n"))
	f.Add([]byte(base + "\ttimeout: 1s\n"))
	f.Add([]byte("services:\n  - name: \"a\n    endpoints: []\n"))
	f.Add([]byte("services:\n  - name: a\n    labels: {team: a,\n      tier: b}\n"))
	f.Add([]byte("d: &d {weight: 2}\nservices: [{name: a, endpoints: [{<<: *d, address: x}]}]\n"))
	f.Add([]byte("x: &x [*x]\nservices: *x\n"))
	f.Add([]byte(base + "    start: 2026-11-27\n    timeout: 5\n    enabled: yes\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("decoding hangs on %q", data))
			}
		}()
		lines := len(lineEnds(data)) + 1 // the line after a final break counts (yaml.v3 places an end there)
		root, perr := Parse(data)
		if perr != nil {
			if strings.Contains(perr.Msg, "internal error") {
				t.Fatal(perr)
			}
			if perr.Line < 0 || perr.Line > lines {
				t.Fatalf("error at line %d of a %d-line file: %v", perr.Line, lines, perr)
			}
			if strings.HasPrefix(perr.Msg, "invalid YAML") && perr.Line > 0 {
				if ends := lineEnds(data); parses(data[:ends[perr.Line-1]]) {
					t.Fatalf("syntax error at line %d, but the text up to it parses: %v", perr.Line, perr)
				}
			}
			return
		}
		if root == nil {
			return
		}
		d := NewDecoder(len(data), Options{})
		d.Decode(root, reflect.ValueOf(&file{}).Elem(), "", 0)
		for _, e := range d.Errors() {
			if e.Msg == "" || e.Line < 0 || e.Line > lines {
				t.Fatalf("bad error %+v in a %d-line file", e, lines)
			}
		}
	})
}
