package proxy

import (
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/balance"
)

// clockRecorder is a test policy: round-robin that records the times the
// proxy hands it in picks and feedback.
type clockRecorder struct {
	inner balance.Balancer
}

var recorded struct {
	mu        sync.Mutex
	pickNow   []time.Time
	doneNow   []time.Time
	latencies []time.Duration
}

func init() {
	rr, _ := balance.Lookup("round_robin")
	balance.Register(balance.Policy{
		Name: "test_clock_recorder",
		Doc:  "test only: round_robin recording the times it is given",
		New: func(decode func(any) error) (func() balance.Balancer, error) {
			f, err := rr.New(decode)
			if err != nil {
				return nil, err
			}
			return func() balance.Balancer { return &clockRecorder{inner: f()} }, nil
		},
	})
}

func (b *clockRecorder) Update(eps []balance.Weighted) balance.Picker {
	return recordingPicker{b.inner.Update(eps)}
}
func (b *clockRecorder) Describe() any { return b.inner.Describe() }

type recordingPicker struct{ balance.Picker }

func (p recordingPicker) Pick(info *balance.PickInfo) (balance.Pick, error) {
	recorded.mu.Lock()
	recorded.pickNow = append(recorded.pickNow, info.Now)
	recorded.mu.Unlock()
	return p.Picker.Pick(info)
}

func (p recordingPicker) Done(pk balance.Pick, info *balance.DoneInfo) {
	recorded.mu.Lock()
	recorded.doneNow = append(recorded.doneNow, info.Now)
	recorded.latencies = append(recorded.latencies, info.Latency)
	recorded.mu.Unlock()
	p.Picker.Done(pk, info)
}

// TestRequestPathUsesTheProxyClock: picks, feedback (with the latency it
// carries) and outlier decisions on the request path read the proxy's
// clock (issue #13 item 14: forward.go passed wall time to ejection and to
// the picker's feedback, so the simulator's and the tests' clock was
// ignored there).
func TestRequestPathUsesTheProxyClock(t *testing.T) {
	b := newBackend(t, "b")
	b.delay.Store(int64(5 * time.Millisecond)) // real time passes; the proxy's clock does not
	px, clk := startProxyClock(t, renderConfig(t, baseConfig+`
services:
  - name: app
    policy: test_clock_recorder
    endpoints: [{address: "{{.B0}}"}]
    admission: {}
`, b))
	recorded.mu.Lock()
	recorded.pickNow, recorded.doneNow, recorded.latencies = nil, nil, nil
	recorded.mu.Unlock()
	now := clk.Now()
	for i := 0; i < 5; i++ {
		if s, _, _ := do(t, "GET", px.url+"/", "", nil); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	recorded.mu.Lock()
	defer recorded.mu.Unlock()
	if len(recorded.pickNow) != 5 || len(recorded.doneNow) != 5 {
		t.Fatalf("recorded %d picks and %d feedbacks, want 5 each", len(recorded.pickNow), len(recorded.doneNow))
	}
	for i := range recorded.pickNow {
		if !recorded.pickNow[i].Equal(now) || !recorded.doneNow[i].Equal(now) {
			t.Fatalf("request %d: pick at %v, feedback at %v; want the proxy's clock %v", i, recorded.pickNow[i], recorded.doneNow[i], now)
		}
		if recorded.latencies[i] != 0 {
			t.Fatalf("request %d: latency %v measured on the wall clock; the proxy's clock did not move", i, recorded.latencies[i])
		}
	}
}
