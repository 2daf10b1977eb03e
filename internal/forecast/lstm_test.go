package forecast

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// TestLSTMGradientMatchesFiniteDifferences checks BPTT against central
// differences of the loss for every parameter of a small network.
func TestLSTMGradientMatchesFiniteDifferences(t *testing.T) {
	const in, hidden, out, steps = 3, 4, 5, 6
	n := NewLSTM(in, hidden, out, 42)
	rng := rand.New(rand.NewPCG(1, 2))
	// Larger head weights than the default so every path carries signal.
	for i := range n.W {
		n.W[i] = rng.NormFloat64() * 0.5
	}
	xs := make([]float64, steps*in)
	for i := range xs {
		xs[i] = rng.NormFloat64()
	}
	y := []float64{0.5, -1, math.NaN(), 2, 0.1} // one masked target
	c := n.newCache(steps)
	grad := make([]float64, len(n.W))
	n.lossGrad(xs, steps, y, 1, c, grad)
	loss := func() float64 {
		g := make([]float64, len(n.W))
		return n.lossGrad(xs, steps, y, 1, n.newCache(steps), g)
	}
	const h = 1e-6
	worst := 0.0
	for i := range n.W {
		w := n.W[i]
		n.W[i] = w + h
		lp := loss()
		n.W[i] = w - h
		lm := loss()
		n.W[i] = w
		num := (lp - lm) / (2 * h)
		rel := math.Abs(num-grad[i]) / math.Max(1e-7, math.Abs(num)+math.Abs(grad[i]))
		if rel > worst {
			worst = rel
		}
		if rel > 1e-5 && math.Abs(num-grad[i]) > 1e-8 {
			t.Errorf("parameter %d: backprop %.8g, finite differences %.8g (relative error %.2g)", i, grad[i], num, rel)
		}
	}
	t.Logf("%d parameters, worst relative error %.2g", len(n.W), worst)
}

// seqData is a toy task: the next values of a noisy sine from a window.
type seqData struct {
	n, win, out int
	seed        uint64
}

func (d seqData) Len() int { return d.n }
func (d seqData) Sample(i int, xs, y []float64) {
	rng := rand.New(rand.NewPCG(d.seed, uint64(i)))
	ph := rng.Float64() * 2 * math.Pi
	for j := 0; j < d.win; j++ {
		x := xs[j*lstmInputs : (j+1)*lstmInputs]
		for k := range x {
			x[k] = 0
		}
		x[0] = math.Sin(ph + 0.3*float64(j))
	}
	for k := 0; k < d.out; k++ {
		y[k] = math.Sin(ph + 0.3*float64(d.win+k))
	}
}

func TestLSTMLearnsAndIsReproducible(t *testing.T) {
	p := LSTMParams{Hidden: 8, Window: 10, Epochs: 6, SamplesPerEpoch: 256, Batch: 16, LR: 1e-2, Patience: 6}
	train, valid := seqData{512, 10, 4, 1}, seqData{64, 10, 4, 2}
	fit := func(threads int) (*LSTM, float64) {
		n := NewLSTM(lstmInputs, 8, 4, 9)
		q := p
		q.Threads = threads
		return n, trainLSTM(context.Background(), n, q, train, valid, 5)
	}
	untrained := NewLSTM(lstmInputs, 8, 4, 9)
	var l0 float64
	xs, y := make([]float64, 10*lstmInputs), make([]float64, 4)
	for i := 0; i < valid.Len(); i++ {
		valid.Sample(i, xs, y)
		out := untrained.Predict(xs)
		for k := range y {
			l0 += 0.5 * (out[k] - y[k]) * (out[k] - y[k]) / 4 / float64(valid.Len())
		}
	}
	a, la := fit(1)
	b, lb := fit(2)
	if la > l0/5 {
		t.Errorf("validation loss %.4f after training, %.4f before: it did not learn", la, l0)
	}
	if la != lb {
		t.Errorf("threads changed the loss: %v vs %v", la, lb)
	}
	for i := range a.W {
		if a.W[i] != b.W[i] {
			t.Fatalf("threads changed weight %d", i)
		}
	}
}
