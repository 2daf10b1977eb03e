package forecast

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
)

// GBDTParams are the hyperparameters of the gradient-boosted trees.
// Defaults (zero values) are filled by withDefaults.
type GBDTParams struct {
	// Rounds is the maximum number of trees (early stopping may use fewer).
	Rounds int `json:"rounds"`
	// LearningRate is the shrinkage applied to every leaf value.
	LearningRate float64 `json:"learning_rate"`
	// MaxLeaves bounds the leaves per tree; trees grow leaf-wise (best
	// gain first), as in LightGBM.
	MaxLeaves int `json:"max_leaves"`
	// MaxDepth bounds the depth of any leaf.
	MaxDepth int `json:"max_depth"`
	// MinLeaf is the fewest training rows a leaf may hold.
	MinLeaf int `json:"min_leaf"`
	// Lambda is the L2 penalty on leaf values (XGBoost's λ).
	Lambda float64 `json:"lambda"`
	// FeatureFraction is the share of features each tree may split on.
	FeatureFraction float64 `json:"feature_fraction"`
	// RowFraction is the share of rows each tree is grown on (bagging).
	RowFraction float64 `json:"row_fraction"`
	// MaxBins is the number of histogram bins per feature (≤ 254).
	MaxBins int `json:"max_bins"`
	// EarlyStopping stops after this many rounds without a better
	// validation loss and keeps the best round.
	EarlyStopping int `json:"early_stopping"`
	// Loss is "l2" (default) or "quantile" (pinball loss at Alpha), for an
	// upper band.
	Loss string `json:"loss"`
	// Alpha is the quantile level of the quantile loss.
	Alpha float64 `json:"alpha,omitempty"`
	// Threads builds histograms of different features in parallel.
	Threads int `json:"-"`
}

func (p GBDTParams) withDefaults() GBDTParams {
	if p.Rounds <= 0 {
		p.Rounds = 400
	}
	if p.LearningRate <= 0 {
		p.LearningRate = 0.08
	}
	if p.MaxLeaves <= 1 {
		p.MaxLeaves = 31
	}
	if p.MaxDepth <= 0 {
		p.MaxDepth = 8
	}
	if p.MinLeaf <= 0 {
		p.MinLeaf = 40
	}
	if p.Lambda < 0 {
		p.Lambda = 0
	}
	if p.Lambda == 0 {
		p.Lambda = 1
	}
	if p.FeatureFraction <= 0 || p.FeatureFraction > 1 {
		p.FeatureFraction = 0.9
	}
	if p.RowFraction <= 0 || p.RowFraction > 1 {
		p.RowFraction = 0.8
	}
	if p.MaxBins <= 1 || p.MaxBins > 254 {
		p.MaxBins = 63
	}
	if p.EarlyStopping <= 0 {
		p.EarlyStopping = 30
	}
	if p.Loss == "" {
		p.Loss = "l2"
	}
	if p.Loss == "quantile" && (p.Alpha <= 0 || p.Alpha >= 1) {
		p.Alpha = 0.9
	}
	if p.Threads <= 0 {
		p.Threads = 1
	}
	return p
}

// Matrix is a dense row-major feature matrix; NaN is a missing value.
type Matrix struct {
	Rows, Cols int
	X          []float64
}

// Row returns row i (shared memory).
func (m *Matrix) Row(i int) []float64 { return m.X[i*m.Cols : (i+1)*m.Cols] }

// GBDT is a histogram-based gradient-boosted regression tree ensemble in
// the style of LightGBM (Ke et al. 2017, "LightGBM: A Highly Efficient
// Gradient Boosting Decision Tree", NeurIPS): features are bucketed into
// at most MaxBins quantile bins once, split finding scans per-bin
// gradient sums, a child's histogram is its parent's minus its sibling's,
// trees grow leaf-wise, and missing values get their own bin whose
// direction is learned at each split. Leaf values are the regularised
// Newton step −G/(H+λ) of XGBoost (Chen & Guestrin 2016), shrunk by the
// learning rate. Both losses have a unit Hessian, so H is the row count.
type GBDT struct {
	Params GBDTParams `json:"params"`
	// Edges are the upper bin edges per feature: a value v falls in bin
	// 1+i for the smallest i with v <= Edges[i]; bin 0 is "missing".
	Edges [][]float64 `json:"edges"`
	Base  float64     `json:"base"`
	Trees []Tree      `json:"trees"`
	// Importance is the total split gain per feature.
	Importance []float64 `json:"importance"`
	// BestRound is the number of trees kept after early stopping.
	BestRound int `json:"best_round"`
	// ValidLoss is the validation loss at BestRound (0 without a
	// validation set).
	ValidLoss float64 `json:"valid_loss"`
}

// Tree is one regression tree as a flat node list; node 0 is the root.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Node is a split (Left >= 0) or a leaf (Left == -1). Value is the leaf
// output; for a split it is the output the node would have had as a leaf,
// which attributes a prediction to features along its path (Saabas).
type Node struct {
	Feature     int32   `json:"f"`
	Threshold   float64 `json:"t"`
	MissingLeft bool    `json:"ml,omitempty"`
	Left        int32   `json:"l"`
	Right       int32   `json:"r"`
	Value       float64 `json:"v"`
	bin         uint8
}

// Predict returns the model's output for one feature row.
func (g *GBDT) Predict(x []float64) float64 {
	s := g.Base
	for i := range g.Trees {
		s += g.Trees[i].predict(x)
	}
	return s
}

func (t *Tree) predict(x []float64) float64 {
	n := &t.Nodes[0]
	for n.Left >= 0 {
		v := x[n.Feature]
		if math.IsNaN(v) {
			if n.MissingLeft {
				n = &t.Nodes[n.Left]
			} else {
				n = &t.Nodes[n.Right]
			}
		} else if v <= n.Threshold {
			n = &t.Nodes[n.Left]
		} else {
			n = &t.Nodes[n.Right]
		}
	}
	return n.Value
}

// Contributions adds to out[f] the part of the prediction for x that the
// path through each tree attributes to feature f (child value minus parent
// value at every split on f; Saabas 2014, "Interpreting random forests").
func (g *GBDT) Contributions(x []float64, out []float64) {
	for i := range g.Trees {
		t := &g.Trees[i]
		n := &t.Nodes[0]
		for n.Left >= 0 {
			v := x[n.Feature]
			var c *Node
			if (math.IsNaN(v) && n.MissingLeft) || (!math.IsNaN(v) && v <= n.Threshold) {
				c = &t.Nodes[n.Left]
			} else {
				c = &t.Nodes[n.Right]
			}
			out[n.Feature] += c.Value - n.Value
			n = c
		}
	}
}

type histBin struct {
	g float64
	n int32
}

// gbdtTrainer holds the binned data and scratch space of one fit.
type gbdtTrainer struct {
	p        GBDTParams
	nf       int
	bins     [][]uint8 // column-major bin index per feature
	nbins    []int
	off      []int // offset of each feature's bins in a histogram
	total    int
	grad     []float64
	rows     []int32 // partition buffer
	tmp      []int32
	pool     [][]histBin
	edgeList [][]float64
	poolMu   sync.Mutex
}

// TrainGBDT fits a GBDT on x→y, using (vx, vy) for early stopping when
// vx is not nil. rng drives bagging and feature sampling. It stops early,
// keeping the trees so far, when ctx is done.
func TrainGBDT(ctx context.Context, x *Matrix, y []float64, vx *Matrix, vy []float64, p GBDTParams, seed uint64) (*GBDT, error) {
	p = p.withDefaults()
	if x.Rows == 0 || x.Rows != len(y) {
		return nil, fmt.Errorf("gbdt: %d rows and %d targets", x.Rows, len(y))
	}
	if vx != nil && vx.Rows != len(vy) {
		return nil, fmt.Errorf("gbdt: %d validation rows and %d targets", vx.Rows, len(vy))
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := &GBDT{Params: p}
	tr := &gbdtTrainer{p: p, nf: x.Cols}
	tr.bin(x, m, rng)

	n := x.Rows
	pred := make([]float64, n)
	switch p.Loss {
	case "quantile":
		m.Base = quantile(append([]float64(nil), y...), p.Alpha)
	default:
		var s float64
		for _, v := range y {
			s += v
		}
		m.Base = s / float64(n)
	}
	for i := range pred {
		pred[i] = m.Base
	}
	var vpred []float64
	if vx != nil && vx.Rows > 0 {
		vpred = make([]float64, vx.Rows)
		for i := range vpred {
			vpred[i] = m.Base
		}
	}
	tr.grad = make([]float64, n)
	tr.rows = make([]int32, n)
	tr.tmp = make([]int32, n)
	m.Importance = make([]float64, x.Cols)
	bestLoss, bestRound := math.Inf(1), 0
	for round := 0; round < p.Rounds; round++ {
		if ctx.Err() != nil {
			break
		}
		for i := range tr.grad {
			tr.grad[i] = lossGrad(p, pred[i], y[i])
		}
		// Bagging: a Bernoulli draw per row keeps rows in ascending order.
		k := 0
		for i := 0; i < n; i++ {
			if p.RowFraction >= 1 || rng.Float64() < p.RowFraction {
				tr.rows[k] = int32(i)
				k++
			}
		}
		if k < 2*p.MinLeaf {
			k = 0
			for i := 0; i < n; i++ {
				tr.rows[k] = int32(i)
				k++
			}
		}
		feats := sampleFeatures(x.Cols, p.FeatureFraction, rng)
		tree, leafRows := tr.grow(tr.rows[:k], feats, m.Importance)
		if p.Loss == "quantile" {
			// LightGBM's leaf renewal: the Newton step of the pinball
			// loss is poor, so each leaf outputs the α-quantile of its
			// rows' residuals.
			for leaf, rs := range leafRows {
				res := make([]float64, len(rs))
				for j, r := range rs {
					res[j] = y[r] - pred[r]
				}
				tree.Nodes[leaf].Value = p.LearningRate * selectQuantile(res, p.Alpha)
			}
		}
		for i := 0; i < n; i++ {
			pred[i] += tree.predictBinned(tr.bins, i)
		}
		m.Trees = append(m.Trees, tree)
		if vpred == nil {
			continue
		}
		var loss float64
		for i := range vpred {
			vpred[i] += tree.predict(vx.Row(i))
			loss += lossValue(p, vpred[i], vy[i])
		}
		loss /= float64(len(vpred))
		if bestRound == 0 || loss < bestLoss-1e-12*math.Abs(bestLoss) {
			bestLoss, bestRound = loss, round+1
		} else if round+1-bestRound >= p.EarlyStopping {
			break
		}
	}
	if vpred != nil && bestRound > 0 {
		m.Trees = m.Trees[:bestRound]
		m.ValidLoss = bestLoss
	}
	m.BestRound = len(m.Trees)
	return m, nil
}

func lossGrad(p GBDTParams, pred, y float64) float64 {
	if p.Loss == "quantile" {
		if y > pred {
			return -p.Alpha
		}
		return 1 - p.Alpha
	}
	return pred - y
}

func lossValue(p GBDTParams, pred, y float64) float64 {
	if p.Loss == "quantile" {
		d := y - pred
		if d >= 0 {
			return p.Alpha * d
		}
		return (p.Alpha - 1) * d
	}
	return (pred - y) * (pred - y)
}

func sampleFeatures(nf int, frac float64, rng *rand.Rand) []int {
	all := make([]int, nf)
	for i := range all {
		all[i] = i
	}
	k := int(math.Ceil(frac * float64(nf)))
	if k >= nf {
		return all
	}
	k = max(k, 1)
	rng.Shuffle(nf, func(i, j int) { all[i], all[j] = all[j], all[i] })
	out := all[:k]
	sort.Ints(out)
	return out
}

// bin computes quantile bin edges from (at most 50,000 evenly spaced)
// rows and buckets every value.
func (tr *gbdtTrainer) bin(x *Matrix, m *GBDT, _ *rand.Rand) {
	n := x.Rows
	stride := max(1, n/50000)
	m.Edges = make([][]float64, x.Cols)
	tr.edgeList = m.Edges
	tr.bins = make([][]uint8, x.Cols)
	tr.nbins = make([]int, x.Cols)
	tr.off = make([]int, x.Cols)
	vals := make([]float64, 0, n/stride+1)
	for f := 0; f < x.Cols; f++ {
		vals = vals[:0]
		for i := 0; i < n; i += stride {
			if v := x.X[i*x.Cols+f]; !math.IsNaN(v) {
				vals = append(vals, v)
			}
		}
		sort.Float64s(vals)
		uniq := vals[:0:0]
		for i, v := range vals {
			if i == 0 || v != vals[i-1] {
				uniq = append(uniq, v)
			}
		}
		var edges []float64
		if len(uniq) <= tr.p.MaxBins {
			edges = append(edges, uniq...)
		} else {
			for j := 1; j <= tr.p.MaxBins; j++ {
				e := vals[min(len(vals)-1, j*len(vals)/tr.p.MaxBins-1)]
				if len(edges) == 0 || e > edges[len(edges)-1] {
					edges = append(edges, e)
				}
			}
		}
		m.Edges[f] = edges
		col := make([]uint8, n)
		for i := 0; i < n; i++ {
			col[i] = binOf(edges, x.X[i*x.Cols+f])
		}
		tr.bins[f] = col
		tr.nbins[f] = len(edges) + 2
		tr.off[f] = tr.total
		tr.total += tr.nbins[f]
	}
}

func binOf(edges []float64, v float64) uint8 {
	if math.IsNaN(v) {
		return 0
	}
	return uint8(1 + sort.SearchFloat64s(edges, v))
}

func (t *Tree) predictBinned(bins [][]uint8, i int) float64 {
	n := &t.Nodes[0]
	for n.Left >= 0 {
		b := bins[n.Feature][i]
		if b == 0 {
			if n.MissingLeft {
				n = &t.Nodes[n.Left]
			} else {
				n = &t.Nodes[n.Right]
			}
		} else if b <= n.bin {
			n = &t.Nodes[n.Left]
		} else {
			n = &t.Nodes[n.Right]
		}
	}
	return n.Value
}

type split struct {
	gain        float64
	feature     int
	bin         int
	missingLeft bool
}

type leaf struct {
	node  int
	rows  []int32
	hist  []histBin
	g     float64
	depth int
	best  split
}

func (tr *gbdtTrainer) getHist() []histBin {
	tr.poolMu.Lock()
	defer tr.poolMu.Unlock()
	if k := len(tr.pool); k > 0 {
		h := tr.pool[k-1]
		tr.pool = tr.pool[:k-1]
		clear(h)
		return h
	}
	return make([]histBin, tr.total)
}

func (tr *gbdtTrainer) putHist(h []histBin) {
	tr.poolMu.Lock()
	tr.pool = append(tr.pool, h)
	tr.poolMu.Unlock()
}

// buildHist sums gradients and counts per bin of every sampled feature,
// features split across Threads goroutines (each owns its features' bins,
// so the sums do not depend on scheduling).
func (tr *gbdtTrainer) buildHist(rows []int32, feats []int, h []histBin) {
	work := func(fs []int) {
		for _, f := range fs {
			col := tr.bins[f]
			hb := h[tr.off[f] : tr.off[f]+tr.nbins[f]]
			for _, r := range rows {
				b := &hb[col[r]]
				b.g += tr.grad[r]
				b.n++
			}
		}
	}
	th := tr.p.Threads
	if th <= 1 || len(rows)*len(feats) < 200_000 {
		work(feats)
		return
	}
	var wg sync.WaitGroup
	chunk := (len(feats) + th - 1) / th
	for i := 0; i < len(feats); i += chunk {
		fs := feats[i:min(len(feats), i+chunk)]
		wg.Add(1)
		go func() { defer wg.Done(); work(fs) }()
	}
	wg.Wait()
}

func (tr *gbdtTrainer) bestSplit(l *leaf, feats []int) split {
	p := tr.p
	best := split{gain: 0, feature: -1}
	G, N := l.g, float64(len(l.rows))
	parent := G * G / (N + p.Lambda)
	for _, f := range feats {
		hb := l.hist[tr.off[f] : tr.off[f]+tr.nbins[f]]
		g0, n0 := hb[0].g, float64(hb[0].n)
		var gl, nl float64
		for b := 1; b < len(hb)-1; b++ {
			gl += hb[b].g
			nl += float64(hb[b].n)
			if hb[b].n == 0 {
				continue
			}
			for _, ml := range [2]bool{false, true} {
				if ml && n0 == 0 {
					continue
				}
				lg, ln := gl, nl
				if ml {
					lg, ln = gl+g0, nl+n0
				}
				rg, rn := G-lg, N-ln
				if ln < float64(p.MinLeaf) || rn < float64(p.MinLeaf) {
					continue
				}
				gain := lg*lg/(ln+p.Lambda) + rg*rg/(rn+p.Lambda) - parent
				if gain > best.gain+1e-12 {
					best = split{gain: gain, feature: f, bin: b, missingLeft: ml}
				}
			}
		}
	}
	return best
}

// grow builds one tree leaf-wise on rows and returns it with the rows of
// each leaf (by node index).
func (tr *gbdtTrainer) grow(rows []int32, feats []int, importance []float64) (Tree, map[int][]int32) {
	p := tr.p
	t := Tree{Nodes: []Node{{Left: -1, Right: -1}}}
	root := &leaf{node: 0, rows: rows, hist: tr.getHist()}
	tr.buildHist(rows, feats, root.hist)
	for _, r := range rows {
		root.g += tr.grad[r]
	}
	t.Nodes[0].Value = -root.g / (float64(len(rows)) + p.Lambda) * p.LearningRate
	root.best = tr.bestSplit(root, feats)
	leaves := []*leaf{root}
	for len(leaves) < p.MaxLeaves {
		bi := -1
		for i, l := range leaves {
			if l.best.feature >= 0 && l.depth < p.MaxDepth && (bi < 0 || l.best.gain > leaves[bi].best.gain) {
				bi = i
			}
		}
		if bi < 0 {
			break
		}
		l := leaves[bi]
		s := l.best
		importance[s.feature] += s.gain
		// Stable partition: left rows first, both halves in row order.
		col := tr.bins[s.feature]
		nl, nr := 0, 0
		right := tr.tmp[:0]
		for _, r := range l.rows {
			b := col[r]
			if (b == 0 && s.missingLeft) || (b != 0 && int(b) <= s.bin) {
				l.rows[nl] = r
				nl++
			} else {
				right = append(right, r)
				nr++
			}
		}
		copy(l.rows[nl:], right)
		lrows, rrows := l.rows[:nl], l.rows[nl:]
		li, ri := len(t.Nodes), len(t.Nodes)+1
		node := &t.Nodes[l.node]
		node.Feature, node.bin, node.MissingLeft = int32(s.feature), uint8(s.bin), s.missingLeft
		node.Threshold = tr.edge(s.feature, s.bin)
		node.Left, node.Right = int32(li), int32(ri)
		t.Nodes = append(t.Nodes, Node{Left: -1, Right: -1}, Node{Left: -1, Right: -1})
		small, large := &leaf{node: li, rows: lrows, depth: l.depth + 1}, &leaf{node: ri, rows: rrows, depth: l.depth + 1}
		if len(rrows) < len(lrows) {
			small, large = large, small
		}
		small.hist = tr.getHist()
		tr.buildHist(small.rows, feats, small.hist)
		large.hist = l.hist // parent minus small, in place
		for _, f := range feats {
			a, b := tr.off[f], tr.off[f]+tr.nbins[f]
			for k := a; k < b; k++ {
				large.hist[k].g -= small.hist[k].g
				large.hist[k].n -= small.hist[k].n
			}
		}
		for _, c := range []*leaf{small, large} {
			for _, r := range c.rows {
				c.g += tr.grad[r]
			}
			t.Nodes[c.node].Value = -c.g / (float64(len(c.rows)) + p.Lambda) * p.LearningRate
			c.best = split{feature: -1}
			if c.depth < p.MaxDepth && len(c.rows) >= 2*p.MinLeaf {
				c.best = tr.bestSplit(c, feats)
			}
		}
		leaves[bi] = leaves[len(leaves)-1]
		leaves = append(leaves[:len(leaves)-1], small, large)
		// Keep leaves ordered by node index so equal gains break ties the
		// same way every run.
		sort.Slice(leaves, func(i, j int) bool { return leaves[i].node < leaves[j].node })
	}
	out := make(map[int][]int32, len(leaves))
	for _, l := range leaves {
		out[l.node] = l.rows
		tr.putHist(l.hist)
	}
	return t, out
}

// edge is the raw threshold of "bin <= b": the upper edge of bin b.
func (tr *gbdtTrainer) edge(f, b int) float64 { return tr.edgeList[f][b-1] }

// selectQuantile is quantile without a full sort: Hoare's selection
// (quickselect) for the two order statistics around the position, with a
// median-of-three pivot, so it is deterministic. xs is reordered.
func selectQuantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(xs)-1)
	i := int(pos)
	a := nth(xs, i)
	if i+1 >= len(xs) {
		return a
	}
	// After selecting i, the (i+1)-th smallest is the minimum of the
	// right part.
	b := xs[i+1]
	for _, v := range xs[i+1:] {
		b = math.Min(b, v)
	}
	f := pos - float64(i)
	return a*(1-f) + b*f
}

// nth reorders xs so xs[k] is its k-th smallest value and returns it.
func nth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		a, b, c := xs[lo], xs[mid], xs[hi]
		pivot := max(min(a, b), min(max(a, b), c))
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}
