// Package gaiatest records operation histories against a Gaia cluster and
// checks them for linearizability with porcupine (Anish Athalye's checker,
// after Jepsen's Knossos). Fault tests (in-process partitions and the
// multi-process kill -9 / SIGSTOP test) share it.
//
// The system under test is modelled as one register holding the stable
// directive: its version and a marker value k written by each proposal.
// Clients propose emergency changes (applied at once, so every committed
// proposal creates the next version) and read the stable directive with
// linearizable reads.
package gaiatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/lbsys/lbsys/api/directive"
)

// Endpoint is the marker endpoint whose weight carries k.
const Endpoint = "127.0.0.1:1"

// Directive returns the directive a proposal of marker k writes.
func Directive(k int) *directive.Directive {
	return &directive.Directive{Schema: 1, Services: map[string]*directive.Service{
		"app": {Weights: map[string]float64{Endpoint: float64(k), "127.0.0.1:2": 1}},
	}}
}

// Marker reads k back from a directive.
func Marker(d *directive.Directive) int {
	if d == nil || d.Services["app"] == nil {
		return 0
	}
	return int(d.Services["app"].Weights[Endpoint])
}

// Outcome of one proposal attempt.
type Outcome int

// Outcomes.
const (
	// Failed: definitely not applied (refused before entering the log,
	// connection refused, redirected).
	Failed Outcome = iota
	// Acked: committed; Version is the version it created.
	Acked
	// Unknown: may or may not commit (leader lost, timeout, connection
	// broken after sending).
	Unknown
)

// Result is one attempt's outcome.
type Result struct {
	Outcome Outcome
	Version uint64
	Status  int
	Err     string
}

var client = &http.Client{
	Timeout:       3 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Propose sends one emergency proposal of marker k to base, following leader
// redirects (a redirect is a refusal: nothing was applied), and classifies
// the outcome conservatively.
func Propose(ctx context.Context, base, token string, k int) Result {
	body, _ := json.Marshal(map[string]any{"type": "emergency", "reason": fmt.Sprintf("history op k=%d", k),
		"directive": Directive(k), "idempotency_key": fmt.Sprintf("k-%d", k)})
	url := base + "/v1/changes"
	for hops := 0; hops < 4; hops++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return Result{Outcome: Failed, Err: err.Error()}
			}
			return Result{Outcome: Unknown, Err: err.Error()}
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return Result{Outcome: Unknown, Status: resp.StatusCode, Err: err.Error()}
		}
		switch resp.StatusCode {
		case http.StatusCreated:
			var ch struct {
				Version uint64 `json:"version"`
			}
			if json.Unmarshal(raw, &ch) != nil || ch.Version == 0 {
				return Result{Outcome: Unknown, Status: resp.StatusCode, Err: "unreadable answer: " + string(raw)}
			}
			return Result{Outcome: Acked, Version: ch.Version, Status: resp.StatusCode}
		case http.StatusTemporaryRedirect:
			url = resp.Header.Get("Location")
			continue
		}
		var eb directive.ErrorBody
		json.Unmarshal(raw, &eb)
		if eb.Outcome == "unknown" {
			return Result{Outcome: Unknown, Status: resp.StatusCode, Err: eb.Error}
		}
		return Result{Outcome: Failed, Status: resp.StatusCode, Err: eb.Error}
	}
	return Result{Outcome: Failed, Err: "too many redirects"}
}

// Read does one linearizable read of the stable directive. ok is false when
// the read failed (reads without an answer have no effect and are left out
// of the history).
func Read(ctx context.Context, base, token string) (version uint64, k int, ok bool) {
	url := base + "/v1/directive"
	for hops := 0; hops < 4; hops++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, false
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, 0, false
		}
		switch resp.StatusCode {
		case http.StatusOK:
			var d directive.Directive
			if json.Unmarshal(raw, &d) != nil {
				return 0, 0, false
			}
			return d.Version, Marker(&d), true
		case http.StatusNotFound:
			return 0, 0, true // nothing committed yet
		case http.StatusTemporaryRedirect:
			url = resp.Header.Get("Location")
			continue
		}
		return 0, 0, false
	}
	return 0, 0, false
}

type input struct {
	read bool
	k    int
}

type output struct {
	unknown bool
	version uint64
	k       int
}

type state struct {
	version uint64
	k       int
}

// History is a concurrent recorder of operations.
type History struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	// Acked maps each acknowledged version to its marker.
	Acked map[uint64]int
	// Counts of outcomes, for the test log.
	Counts map[string]int
}

// NewHistory starts a history.
func NewHistory() *History {
	return &History{start: time.Now(), Acked: map[uint64]int{}, Counts: map[string]int{}}
}

// Now is the history's clock (monotonic nanoseconds).
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Proposed records a proposal of k called at call with result r.
func (h *History) Proposed(client, k int, call int64, r Result) {
	ret := h.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch r.Outcome {
	case Failed:
		h.Counts["propose failed"]++
		return // no effect: not part of the history
	case Acked:
		h.Counts["propose acked"]++
		h.Acked[r.Version] = k
		h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: input{k: k}, Call: call, Output: output{version: r.Version}, Return: ret})
	case Unknown:
		h.Counts["propose unknown"]++
		// It may take effect at any time after the call, even after the
		// client gave up: it returns at infinity.
		h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: input{k: k}, Call: call, Output: output{unknown: true}, Return: math.MaxInt64})
	}
}

// ReadDone records a successful read.
func (h *History) ReadDone(client int, call int64, version uint64, k int) {
	ret := h.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Counts["read"]++
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: input{read: true}, Call: call, Output: output{version: version, k: k}, Return: ret})
}

// Model is the directive register: a proposal creates the next version with
// its marker; a read returns the current version and marker. An unknown
// proposal may or may not have happened.
var Model = porcupine.NondeterministicModel{
	Init: func() []any { return []any{state{}} },
	Step: func(st, in, out any) []any {
		s, i, o := st.(state), in.(input), out.(output)
		switch {
		case i.read:
			if s.version == o.version && s.k == o.k {
				return []any{s}
			}
			return nil
		case o.unknown:
			return []any{s, state{version: s.version + 1, k: i.k}}
		case o.version == s.version+1:
			return []any{state{version: o.version, k: i.k}}
		}
		return nil
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(input), out.(output)
		if i.read {
			return fmt.Sprintf("read() -> v%d k=%d", o.version, o.k)
		}
		if o.unknown {
			return fmt.Sprintf("propose(k=%d) -> ?", i.k)
		}
		return fmt.Sprintf("propose(k=%d) -> v%d", i.k, o.version)
	},
	DescribeState: func(st any) string { s := st.(state); return fmt.Sprintf("v%d k=%d", s.version, s.k) },
}

// Check runs porcupine on the history. It returns nil when linearizable,
// an error describing the history otherwise (or when the check timed out).
func (h *History) Check(timeout time.Duration) error {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	res := porcupine.CheckOperationsTimeout(Model.ToModel(), ops, timeout)
	if res == porcupine.Ok {
		return nil
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var b bytes.Buffer
	for _, op := range ops {
		ret := "inf"
		if op.Return != math.MaxInt64 {
			ret = fmt.Sprintf("%.3fs", float64(op.Return)/1e9)
		}
		fmt.Fprintf(&b, "  c%d [%.3fs, %s] %s\n", op.ClientId, float64(op.Call)/1e9, ret, Model.DescribeOperation(op.Input, op.Output))
	}
	if res == porcupine.Unknown {
		return fmt.Errorf("linearizability check timed out after %s on %d operations", timeout, len(ops))
	}
	return fmt.Errorf("history of %d operations is not linearizable:\n%s", len(ops), b.String())
}

// Count returns one outcome counter ("propose acked", "propose failed",
// "propose unknown", "read").
func (h *History) Count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Counts[name]
}

// Summary formats the counters.
func (h *History) Summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("%d operations: %d acked, %d refused, %d unknown proposals; %d reads",
		len(h.ops), h.Counts["propose acked"], h.Counts["propose failed"], h.Counts["propose unknown"], h.Counts["read"])
}

// Len is the number of operations recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}
