package forecast

import (
	"context"
	"math"
	"sync"
)

// LSTMParams are the hyperparameters of the recurrent model.
type LSTMParams struct {
	// Hidden is the number of LSTM units.
	Hidden int `json:"hidden"`
	// Window is the number of past steps the network reads per forecast.
	Window int `json:"window"`
	// LR is Adam's step size.
	LR float64 `json:"lr"`
	// Epochs bounds training; Patience stops after that many epochs
	// without a better validation loss (the best weights are kept).
	Epochs   int `json:"epochs"`
	Patience int `json:"patience"`
	// Batch is the minibatch size; SamplesPerEpoch the windows drawn per
	// epoch.
	Batch           int `json:"batch"`
	SamplesPerEpoch int `json:"samples_per_epoch"`
	// Clip bounds the global gradient norm.
	Clip float64 `json:"clip"`
	// Threads computes a minibatch's gradients in parallel.
	Threads int `json:"-"`
}

func (p LSTMParams) withDefaults() LSTMParams {
	if p.Hidden <= 0 {
		p.Hidden = 16
	}
	if p.Window <= 0 {
		p.Window = 32
	}
	if p.LR <= 0 {
		p.LR = 3e-3
	}
	if p.Epochs <= 0 {
		p.Epochs = 12
	}
	if p.Patience <= 0 {
		p.Patience = 3
	}
	if p.Batch <= 0 {
		p.Batch = 32
	}
	if p.SamplesPerEpoch <= 0 {
		p.SamplesPerEpoch = 1024
	}
	if p.Clip <= 0 {
		p.Clip = 1
	}
	if p.Threads <= 0 {
		p.Threads = 1
	}
	return p
}

// LSTM is a single-layer long short-term memory network (Hochreiter &
// Schmidhuber 1997, "Long Short-Term Memory", Neural Computation 9(8),
// with the forget gate of Gers, Schmidhuber & Cummins 2000) read over a
// window of past steps, followed by a linear head that outputs every lead
// of the horizon at once (multi-input multi-output, so errors do not
// compound through recursion). It is trained by backpropagation through
// time with Adam (Kingma & Ba 2015).
//
// Parameters live in one flat slice: Wx (4H×In), Wh (4H×H), b (4H), Wy
// (Out×H), by (Out); gate order input, forget, cell, output.
type LSTM struct {
	In     int       `json:"in"`
	Hidden int       `json:"hidden"`
	Out    int       `json:"out"`
	W      []float64 `json:"w"`
}

// NewLSTM returns a network with seeded uniform(±1/√H) weights, forget
// gate bias 1 (Jozefowicz et al. 2015) and a small output head, so an
// untrained network forecasts close to zero (the reference forecast).
func NewLSTM(in, hidden, out int, seed uint64) *LSTM {
	n := &LSTM{In: in, Hidden: hidden, Out: out}
	n.W = make([]float64, n.size())
	rng := newRand(seed, 7)
	a := 1 / math.Sqrt(float64(hidden))
	wx, wh, b, wy, _ := n.views(n.W)
	for i := range wx {
		wx[i] = (2*rng.Float64() - 1) * a
	}
	for i := range wh {
		wh[i] = (2*rng.Float64() - 1) * a
	}
	for j := 0; j < hidden; j++ {
		b[hidden+j] = 1
	}
	for i := range wy {
		wy[i] = (2*rng.Float64() - 1) * a * 0.1
	}
	return n
}

func (n *LSTM) size() int {
	H := n.Hidden
	return 4*H*n.In + 4*H*H + 4*H + n.Out*H + n.Out
}

func (n *LSTM) views(w []float64) (wx, wh, b, wy, by []float64) {
	H, I, O := n.Hidden, n.In, n.Out
	o := 0
	wx = w[o : o+4*H*I]
	o += 4 * H * I
	wh = w[o : o+4*H*H]
	o += 4 * H * H
	b = w[o : o+4*H]
	o += 4 * H
	wy = w[o : o+O*H]
	o += O * H
	by = w[o : o+O]
	return
}

// lstmCache holds the activations of one forward pass for BPTT.
type lstmCache struct {
	gates []float64 // per step 4H: i, f, g, o after their activations
	c     []float64 // per step H (cell after the step)
	h     []float64 // per step H
	tc    []float64 // tanh(c) per step
	out   []float64
}

func (n *LSTM) newCache(steps int) *lstmCache {
	H := n.Hidden
	return &lstmCache{gates: make([]float64, steps*4*H), c: make([]float64, steps*H), h: make([]float64, steps*H),
		tc: make([]float64, steps*H), out: make([]float64, n.Out)}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// forward runs the network over xs (steps×In) and returns the outputs
// (in cache.out).
func (n *LSTM) forward(xs []float64, steps int, c *lstmCache) []float64 {
	H, I := n.Hidden, n.In
	wx, wh, b, wy, by := n.views(n.W)
	zero := make([]float64, H)
	for t := 0; t < steps; t++ {
		x := xs[t*I : (t+1)*I]
		hp, cp := zero, zero
		if t > 0 {
			hp, cp = c.h[(t-1)*H:t*H], c.c[(t-1)*H:t*H]
		}
		g := c.gates[t*4*H : (t+1)*4*H]
		for r := 0; r < 4*H; r++ {
			s := b[r]
			row := wx[r*I : (r+1)*I]
			for k, v := range x {
				s += row[k] * v
			}
			rowh := wh[r*H : (r+1)*H]
			for k, v := range hp {
				s += rowh[k] * v
			}
			g[r] = s
		}
		ct, ht, tc := c.c[t*H:(t+1)*H], c.h[t*H:(t+1)*H], c.tc[t*H:(t+1)*H]
		for j := 0; j < H; j++ {
			ig, fg, gg, og := sigmoid(g[j]), sigmoid(g[H+j]), math.Tanh(g[2*H+j]), sigmoid(g[3*H+j])
			g[j], g[H+j], g[2*H+j], g[3*H+j] = ig, fg, gg, og
			ct[j] = fg*cp[j] + ig*gg
			tc[j] = math.Tanh(ct[j])
			ht[j] = og * tc[j]
		}
	}
	hl := c.h[(steps-1)*H : steps*H]
	for k := 0; k < n.Out; k++ {
		s := by[k]
		row := wy[k*H : (k+1)*H]
		for j, v := range hl {
			s += row[j] * v
		}
		c.out[k] = s
	}
	return c.out
}

// Predict returns the outputs for one input window (steps×In).
func (n *LSTM) Predict(xs []float64) []float64 {
	steps := len(xs) / n.In
	c := n.newCache(steps)
	return append([]float64(nil), n.forward(xs, steps, c)...)
}

// lossGrad runs forward and backward for one sample and adds the gradient
// of L = ½ Σ_k m_k (out_k − y_k)² / Σ_k m_k (m_k = 0 where the target is
// a gap) to grad, scaled by weight. It returns the loss.
func (n *LSTM) lossGrad(xs []float64, steps int, y []float64, weight float64, c *lstmCache, grad []float64) float64 {
	H, I := n.Hidden, n.In
	out := n.forward(xs, steps, c)
	cnt := 0
	for _, v := range y {
		if !math.IsNaN(v) {
			cnt++
		}
	}
	if cnt == 0 {
		return 0
	}
	_, wh, _, wy, _ := n.views(n.W)
	gwx, gwh, gb, gwy, gby := n.views(grad)
	var loss float64
	dh := make([]float64, H)
	hl := c.h[(steps-1)*H : steps*H]
	for k := 0; k < n.Out; k++ {
		if math.IsNaN(y[k]) {
			continue
		}
		d := (out[k] - y[k]) / float64(cnt)
		loss += 0.5 * (out[k] - y[k]) * (out[k] - y[k]) / float64(cnt)
		d *= weight
		gby[k] += d
		row, grow := wy[k*H:(k+1)*H], gwy[k*H:(k+1)*H]
		for j := 0; j < H; j++ {
			grow[j] += d * hl[j]
			dh[j] += d * row[j]
		}
	}
	dc := make([]float64, H)
	dz := make([]float64, 4*H)
	zero := make([]float64, H)
	for t := steps - 1; t >= 0; t-- {
		g := c.gates[t*4*H : (t+1)*4*H]
		tc := c.tc[t*H : (t+1)*H]
		cp, hp := zero, zero
		if t > 0 {
			cp, hp = c.c[(t-1)*H:t*H], c.h[(t-1)*H:t*H]
		}
		for j := 0; j < H; j++ {
			ig, fg, gg, og := g[j], g[H+j], g[2*H+j], g[3*H+j]
			dc[j] += dh[j] * og * (1 - tc[j]*tc[j])
			dz[3*H+j] = dh[j] * tc[j] * og * (1 - og)
			dz[j] = dc[j] * gg * ig * (1 - ig)
			dz[2*H+j] = dc[j] * ig * (1 - gg*gg)
			dz[H+j] = dc[j] * cp[j] * fg * (1 - fg)
			dc[j] *= fg
		}
		x := xs[t*I : (t+1)*I]
		for j := range dh {
			dh[j] = 0
		}
		for r := 0; r < 4*H; r++ {
			d := dz[r]
			if d == 0 {
				continue
			}
			gb[r] += d
			grow := gwx[r*I : (r+1)*I]
			for k, v := range x {
				grow[k] += d * v
			}
			growh := gwh[r*H : (r+1)*H]
			rowh := wh[r*H : (r+1)*H]
			for k := 0; k < H; k++ {
				growh[k] += d * hp[k]
				dh[k] += d * rowh[k]
			}
		}
	}
	return loss
}

// lstmData supplies training windows: sample i has input xs (Window×In)
// and targets (Out, NaN where unknown).
type lstmData interface {
	Len() int
	Sample(i int, xs, y []float64)
}

// trainLSTM fits n on train with early stopping on valid and returns the
// best validation loss. Minibatch gradients are computed in Threads
// fixed slices and summed in slice order, so threads do not change the
// result.
func trainLSTM(ctx context.Context, n *LSTM, p LSTMParams, train, valid lstmData, seed uint64) float64 {
	p = p.withDefaults()
	W := p.Window
	rng := newRand(seed, 11)
	size := len(n.W)
	m, v := make([]float64, size), make([]float64, size)
	const b1, b2, eps = 0.9, 0.999, 1e-8
	step := 0
	best := append([]float64(nil), n.W...)
	bestLoss := math.Inf(1)
	bad := 0
	th := max(1, p.Threads)
	type worker struct {
		xs, y []float64
		cache *lstmCache
	}
	ws := make([]*worker, th)
	for i := range ws {
		ws[i] = &worker{xs: make([]float64, W*n.In), y: make([]float64, n.Out), cache: n.newCache(W)}
	}
	// One gradient buffer per sample of a batch, summed in sample order:
	// the result does not depend on how samples were spread over threads.
	per := make([][]float64, p.Batch)
	for i := range per {
		per[i] = make([]float64, size)
	}
	grad := make([]float64, size)
	batchIdx := make([]int, p.Batch)
	validLoss := func() float64 {
		if valid == nil || valid.Len() == 0 {
			return math.NaN()
		}
		w := ws[0]
		var s float64
		for i := 0; i < valid.Len(); i++ {
			valid.Sample(i, w.xs, w.y)
			out := n.forward(w.xs, W, w.cache)
			cnt := 0
			var l float64
			for k, t := range w.y {
				if !math.IsNaN(t) {
					l += 0.5 * (out[k] - t) * (out[k] - t)
					cnt++
				}
			}
			if cnt > 0 {
				s += l / float64(cnt)
			}
		}
		return s / float64(valid.Len())
	}
	if train.Len() == 0 {
		return math.NaN()
	}
	for epoch := 0; epoch < p.Epochs; epoch++ {
		if ctx.Err() != nil {
			break
		}
		// Windows are drawn with replacement: an epoch is SamplesPerEpoch
		// draws, whatever the number of windows available.
		nper := min(p.SamplesPerEpoch, train.Len())
		for start := 0; start < nper; start += p.Batch {
			batch := batchIdx[:min(nper, start+p.Batch)-start]
			for k := range batch {
				batch[k] = rng.IntN(train.Len())
			}
			wt := 1 / float64(len(batch))
			chunk := (len(batch) + th - 1) / th
			var wg sync.WaitGroup
			for wi := 0; wi < th; wi++ {
				lo, hi := wi*chunk, min(len(batch), (wi+1)*chunk)
				if lo >= hi {
					continue
				}
				w := ws[wi]
				run := func() {
					for k := lo; k < hi; k++ {
						clear(per[k])
						train.Sample(batch[k], w.xs, w.y)
						n.lossGrad(w.xs, W, w.y, wt, w.cache, per[k])
					}
				}
				if th == 1 {
					run()
					continue
				}
				wg.Add(1)
				go func() { defer wg.Done(); run() }()
			}
			wg.Wait()
			copy(grad, per[0])
			for k := 1; k < len(batch); k++ {
				for i, g := range per[k] {
					grad[i] += g
				}
			}
			var norm float64
			for _, g := range grad {
				norm += g * g
			}
			norm = math.Sqrt(norm)
			scale := 1.0
			if norm > p.Clip {
				scale = p.Clip / norm
			}
			step++
			c1 := 1 - math.Pow(b1, float64(step))
			c2 := 1 - math.Pow(b2, float64(step))
			for i, g := range grad {
				g *= scale
				m[i] = b1*m[i] + (1-b1)*g
				v[i] = b2*v[i] + (1-b2)*g*g
				n.W[i] -= p.LR * (m[i] / c1) / (math.Sqrt(v[i]/c2) + eps)
			}
		}
		vl := validLoss()
		if math.IsNaN(vl) {
			copy(best, n.W)
			continue
		}
		if vl < bestLoss {
			bestLoss, bad = vl, 0
			copy(best, n.W)
		} else if bad++; bad >= p.Patience {
			break
		}
	}
	copy(n.W, best)
	return bestLoss
}
