package forecast

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// known is the function the trees must recover: smooth, interacting and
// discontinuous parts, and a feature with missing values.
func known(x []float64) float64 {
	v := 3*math.Sin(x[0]) + x[1]*x[1] + 2*x[0]*x[2]
	if x[3] > 0.5 {
		v += 2
	}
	if math.IsNaN(x[4]) {
		v -= 1.5
	} else {
		v += 0.5 * x[4]
	}
	return v
}

func knownData(n int, noise float64, seed uint64) (*Matrix, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := &Matrix{Rows: n, Cols: 6, X: make([]float64, n*6)}
	y := make([]float64, n)
	for i := 0; i < n; i++ {
		r := m.Row(i)
		r[0] = rng.Float64()*6 - 3
		r[1] = rng.Float64()*4 - 2
		r[2] = rng.Float64()*2 - 1
		r[3] = rng.Float64()
		r[4] = rng.Float64()*2 - 1
		if rng.Float64() < 0.2 {
			r[4] = math.NaN()
		}
		r[5] = rng.NormFloat64() // irrelevant
		y[i] = known(r) + noise*rng.NormFloat64()
	}
	return m, y
}

func TestGBDTRecoversAKnownFunction(t *testing.T) {
	const noise = 0.3
	x, y := knownData(8000, noise, 1)
	vx, vy := knownData(2000, noise, 2)
	tx, _ := knownData(2000, 0, 3)
	g, err := TrainGBDT(context.Background(), x, y, vx, vy, GBDTParams{Rounds: 400, LearningRate: 0.1, MinLeaf: 20}, 7)
	if err != nil {
		t.Fatal(err)
	}
	var mse, vary, mean float64
	for i := 0; i < tx.Rows; i++ {
		mean += known(tx.Row(i)) / float64(tx.Rows)
	}
	for i := 0; i < tx.Rows; i++ {
		f := known(tx.Row(i))
		d := g.Predict(tx.Row(i)) - f
		mse += d * d / float64(tx.Rows)
		vary += (f - mean) * (f - mean) / float64(tx.Rows)
	}
	r2 := 1 - mse/vary
	t.Logf("trees %d, noise-free test RMSE %.3f (noise sd %.1f), R² %.4f", len(g.Trees), math.Sqrt(mse), noise, r2)
	if r2 < 0.97 {
		t.Errorf("R² %.4f: the trees did not recover the function", r2)
	}
	if g.BestRound >= 400 || g.BestRound < 20 {
		t.Errorf("best round %d: early stopping did not act", g.BestRound)
	}
	// The irrelevant feature earns almost no gain.
	var tot float64
	for _, v := range g.Importance {
		tot += v
	}
	if g.Importance[5]/tot > 0.02 {
		t.Errorf("noise feature has %.1f%% of the gain", 100*g.Importance[5]/tot)
	}
	// Contributions sum to the prediction minus the root values.
	c := make([]float64, 6)
	row := tx.Row(0)
	g.Contributions(row, c)
	sum := g.Base
	for _, tr := range g.Trees {
		sum += tr.Nodes[0].Value
	}
	for _, v := range c {
		sum += v
	}
	if math.Abs(sum-g.Predict(row)) > 1e-9 {
		t.Errorf("contributions sum to %v, prediction %v", sum, g.Predict(row))
	}
}

func TestGBDTQuantileLossCoversItsLevel(t *testing.T) {
	x, y := knownData(6000, 1, 4)
	tx, ty := knownData(3000, 1, 5)
	g, err := TrainGBDT(context.Background(), x, y, nil, nil, GBDTParams{Rounds: 150, Loss: "quantile", Alpha: 0.9, MinLeaf: 30}, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := 0
	for i := 0; i < tx.Rows; i++ {
		if ty[i] <= g.Predict(tx.Row(i)) {
			in++
		}
	}
	cov := float64(in) / float64(tx.Rows)
	if cov < 0.85 || cov > 0.95 {
		t.Errorf("coverage of the 0.9 quantile: %.3f", cov)
	}
}

func TestGBDTIsReproducibleAndThreadsDoNotMatter(t *testing.T) {
	x, y := knownData(3000, 0.5, 6)
	vx, vy := knownData(500, 0.5, 7)
	p := GBDTParams{Rounds: 60, FeatureFraction: 0.7, RowFraction: 0.7}
	a, _ := TrainGBDT(context.Background(), x, y, vx, vy, p, 11)
	p.Threads = 2
	b, _ := TrainGBDT(context.Background(), x, y, vx, vy, p, 11)
	ja, _ := json.Marshal(a.Trees)
	jb, _ := json.Marshal(b.Trees)
	if string(ja) != string(jb) {
		t.Fatal("same seed, different trees (threads 1 vs 2)")
	}
	c, _ := TrainGBDT(context.Background(), x, y, vx, vy, p, 12)
	if reflect.DeepEqual(a.Trees, c.Trees) {
		t.Error("a different seed gave the same trees: bagging ignores the seed")
	}
}

func TestGBDTRejectsMismatchedData(t *testing.T) {
	x, _ := knownData(10, 0, 1)
	if _, err := TrainGBDT(context.Background(), x, make([]float64, 9), nil, nil, GBDTParams{}, 1); err == nil {
		t.Fatal("accepted 10 rows with 9 targets")
	}
}

func TestSelectQuantileMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for n := 1; n < 60; n++ {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = math.Round(rng.NormFloat64() * 3) // with ties
		}
		for _, q := range []float64{0, 0.1, 0.5, 0.9, 1} {
			a := quantile(append([]float64(nil), xs...), q)
			b := selectQuantile(append([]float64(nil), xs...), q)
			if a != b {
				t.Fatalf("n=%d q=%v: sort %v select %v", n, q, a, b)
			}
		}
	}
}
