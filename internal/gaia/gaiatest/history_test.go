package gaiatest

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The model must reject what linearizability forbids, or the fault tests
// prove nothing.
func TestModelCatchesViolations(t *testing.T) {
	op := func(c int, in input, call, ret int64, out output) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret}
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"sequential", []porcupine.Operation{
			op(0, input{k: 7}, 0, 10, output{version: 1}),
			op(1, input{read: true}, 20, 30, output{version: 1, k: 7}),
		}, true},
		{"stale read after an ack", []porcupine.Operation{
			op(0, input{k: 7}, 0, 10, output{version: 1}),
			op(1, input{read: true}, 20, 30, output{version: 0}),
		}, false},
		{"lost acknowledged write", []porcupine.Operation{
			op(0, input{k: 7}, 0, 10, output{version: 1}),
			op(0, input{k: 8}, 20, 30, output{version: 1}),
		}, false},
		{"unknown that happened later", []porcupine.Operation{
			op(0, input{k: 7}, 0, math.MaxInt64, output{unknown: true}),
			op(1, input{read: true}, 50, 60, output{version: 0}),
			op(1, input{read: true}, 70, 80, output{version: 1, k: 7}),
		}, true},
		{"unknown that never happened", []porcupine.Operation{
			op(0, input{k: 7}, 0, math.MaxInt64, output{unknown: true}),
			op(1, input{k: 9}, 50, 60, output{version: 1}),
			op(1, input{read: true}, 70, 80, output{version: 1, k: 9}),
		}, true},
		{"read of a value never written", []porcupine.Operation{
			op(0, input{k: 7}, 0, 10, output{version: 1}),
			op(1, input{read: true}, 20, 30, output{version: 1, k: 3}),
		}, false},
	}
	for _, c := range cases {
		h := NewHistory()
		h.ops = c.ops
		err := h.Check(5 * time.Second)
		if (err == nil) != c.ok {
			t.Errorf("%s: linearizable=%v, want %v (%v)", c.name, err == nil, c.ok, err)
		}
		if err != nil && !strings.Contains(err.Error(), "not linearizable") {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
