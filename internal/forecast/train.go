package forecast

import (
	"context"
	"fmt"
	"math"
	"sync"
)

// Training: the rows each member learns from, fitting the members on the
// training segment (and, unless NoRefit, again on training + validation),
// the LSTM's data set.

// sampler draws (series, origin, lead) rows.
type rowRef struct {
	s, t, h int32
}

// trainRows samples rows with origin in [lo, hi] and target < limit,
// quota per series.
func trainRows(bs []*builder, quota int, lo, hi func(*SeriesSpec) int, limit func(*SeriesSpec) int, hmax int, seed, stream uint64) []rowRef {
	var out []rowRef
	for si, b := range bs {
		rng := newRand(seed, stream+uint64(si))
		a, z, lim := lo(b.sp), hi(b.sp), limit(b.sp)
		if z < a {
			continue
		}
		if (z-a+1)*hmax <= quota {
			// A short series: every pair once, rather than a sample
			// full of repeats.
			for t := a; t <= z; t++ {
				for h := 1; h <= hmax; h++ {
					if t+h < lim && !math.IsNaN(b.y[t+h]) {
						out = append(out, rowRef{int32(si), int32(t), int32(h)})
					}
				}
			}
			continue
		}
		for k := 0; k < quota; k++ {
			t := a + rng.IntN(z-a+1)
			h := 1 + rng.IntN(hmax)
			if t+h >= lim || math.IsNaN(b.y[t+h]) {
				continue
			}
			out = append(out, rowRef{int32(si), int32(t), int32(h)})
		}
	}
	return out
}

// matrix builds the feature matrix, targets and references of rows.
func matrix(bs []*builder, rows []rowRef, nf int) (*Matrix, []float64, []float64) {
	x := &Matrix{Rows: len(rows), Cols: nf, X: make([]float64, len(rows)*nf)}
	y := make([]float64, len(rows))
	ref := make([]float64, len(rows))
	for i, r := range rows {
		b := bs[r.s]
		ref[i] = b.row(int(r.t), int(r.h), x.Row(i))
		y[i] = (b.y[r.t+r.h] - ref[i]) / b.sp.Scale
	}
	return x, y, ref
}

// lstmSet serves LSTM windows for (series, origin) pairs; targets at or
// past limit are masked.
type lstmSet struct {
	bs    []*builder
	refs  []rowRef
	win   int
	out   int
	limit []int
}

func (d *lstmSet) Len() int { return len(d.refs) }

func (d *lstmSet) Sample(i int, xs, y []float64) {
	r := d.refs[i]
	b := d.bs[r.s]
	t := int(r.t)
	b.seq(t, d.win, xs)
	anom := b.anomaly(t)
	for h := 1; h <= d.out; h++ {
		j := t + h
		if j >= d.limit[r.s] || math.IsNaN(b.y[j]) {
			y[h-1] = math.NaN()
			continue
		}
		y[h-1] = clamp((b.y[j]-b.prof[j]-anom)/b.sp.Scale, -20, 20)
	}
}

// Train fits every member on the training windows, then the ensemble
// weights and the band on the validation windows. GBDT, its upper-band
// twin and the LSTM train concurrently; each is deterministic, so the
// result does not depend on scheduling.
func Train(ctx context.Context, tr *Transform, inputs []Input) (*Model, error) {
	o := tr.Options
	m := &Model{Options: o, Layout: tr.Layout, Features: tr.Layout.Names(), Specs: tr.Specs, Hmax: tr.Hmax}
	bs, err := m.builders(inputs)
	if err != nil {
		return nil, err
	}
	if err := m.fitMembers(ctx, bs, trainEnd, true); err != nil {
		return nil, err
	}
	m.Members = append([]string(nil), Members...)
	if m.LSTM == nil {
		m.Members = m.Members[:3]
	}
	m.fitEnsemble(bs)
	if !o.NoRefit {
		// Stacking with refit: the weights and band come from members
		// trained before the validation window; the members are then
		// refitted on training + validation data with the same
		// hyperparameters, so the test and any pushed forecast use the
		// most recent history (as Wolpert's scheme refits the level-0
		// models on all data). The upper-band GBDT stays the one the
		// band was calibrated with.
		if err := m.fitMembers(ctx, bs, validEnd, false); err != nil {
			return nil, err
		}
	}
	return m, ctx.Err()
}

func trainEnd(sp *SeriesSpec) int { return sp.TrainEnd }

func validEnd(sp *SeriesSpec) int { return sp.ValidEnd }

// fitMembers trains ETS, the GBDT (and, when upper is set, its
// quantile twin for the band) and the LSTM on the steps before end(spec)
// of each series, concurrently.
func (m *Model) fitMembers(ctx context.Context, bs []*builder, end func(*SeriesSpec) int, upper bool) error {
	o := m.Options
	x, y, vx, vy := gbdtData(bs, o, m.Hmax, end)
	if x.Rows < 50 {
		return fmt.Errorf("forecast: only %d training rows; the series are too short or mostly gaps", x.Rows)
	}
	ets := make([]ETS, len(m.Specs))
	var wg sync.WaitGroup
	var gerr, uerr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, b := range bs {
			per := b.sp.Period
			if per > b.sp.Day && b.sp.Day > 0 {
				per = b.sp.Day // a weekly season is too long to initialise well
			}
			_, mi := m.spec(b.sp.Name)
			ets[mi] = fitETS(b.y, end(b.sp), per)
		}
	}()
	go func() {
		defer wg.Done()
		p := o.GBDT
		p.Threads = 1
		m.GBDT, gerr = TrainGBDT(ctx, x, y, vx, vy, p, o.Seed)
	}()
	if upper {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := o.GBDT
			p.Threads = 1
			p.Loss, p.Alpha = "quantile", o.UpperAlpha
			m.Upper, uerr = TrainGBDT(ctx, x, y, vx, vy, p, o.Seed+1)
		}()
	}
	if !o.NoLSTM {
		wg.Add(1)
		go func() {
			defer wg.Done()
			net := trainLSTMFor(ctx, bs, o, m.Hmax, end)
			for _, w := range net.W {
				if math.IsNaN(w) || math.IsInf(w, 0) {
					return // diverged: keep the previous network, if any
				}
			}
			m.LSTM = net
		}()
	}
	wg.Wait()
	m.ETS = ets
	if gerr != nil {
		return gerr
	}
	return uerr
}

// gbdtData samples the trees' training rows (targets before the inner
// holdout) and early-stopping rows (the last part of the training window).
func gbdtData(bs []*builder, o Options, hmax int, end func(*SeriesSpec) int) (x *Matrix, y []float64, vx *Matrix, vy []float64) {
	nf := bs[0].nf
	quota := max(200, o.MaxTrainRows/len(bs))
	inner := func(sp *SeriesSpec) int { return innerCut(end(sp), hmax) }
	rows := trainRows(bs, quota, func(*SeriesSpec) int { return 0 }, func(sp *SeriesSpec) int { return inner(sp) - 2 },
		inner, hmax, o.Seed, 100)
	hold := trainRows(bs, max(100, quota/4), inner, func(sp *SeriesSpec) int { return end(sp) - 2 },
		end, hmax, o.Seed, 10_000)
	x, y, _ = matrix(bs, rows, nf)
	vx, vy, _ = matrix(bs, hold, nf)
	return x, y, vx, vy
}

// innerCut is where the early-stopping holdout of a fit on [0, end)
// begins: its last 15 %, and room for a horizon.
func innerCut(end, hmax int) int { return end - max(hmax+minOrigins, int(0.15*float64(end))) }

func trainLSTMFor(ctx context.Context, bs []*builder, o Options, hmax int, end func(*SeriesSpec) int) *LSTM {
	p := o.LSTM.withDefaults()
	p.Threads = 1
	var train, hold []rowRef
	var limTrain, limHold []int
	for si, b := range bs {
		sp := b.sp
		e := end(sp)
		inner := innerCut(e, hmax)
		for t := p.Window; t < inner-1; t++ {
			train = append(train, rowRef{s: int32(si), t: int32(t)})
		}
		for _, t := range originRange(inner, e-2, max(4, 512/len(bs))) {
			hold = append(hold, rowRef{s: int32(si), t: int32(t)})
		}
		limTrain = append(limTrain, inner)
		limHold = append(limHold, e)
	}
	net := NewLSTM(lstmInputs, p.Hidden, hmax, o.Seed+2)
	trainLSTM(ctx, net, p,
		&lstmSet{bs: bs, refs: train, win: p.Window, out: hmax, limit: limTrain},
		&lstmSet{bs: bs, refs: hold, win: p.Window, out: hmax, limit: limHold}, o.Seed+3)
	return net
}
