package forecast

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/tpe"
)

// seededTPE is the Tree-structured Parzen Estimator sampler (Bergstra et
// al. 2011, §4) for goptuna studies, drawing every random number from one
// seeded generator. goptuna v0.9.0's own TPE sampler picks mixture
// components with the global math/rand (internal/random.ArgMaxMultinomial),
// so the same seed gives different trials from run to run; this sampler
// keeps goptuna's study, storage and Parzen estimator (tpe.
// NewParzenEstimator, with its prior and magic clip) and replaces the
// sampling. Per parameter: the completed trials are split at the γ-quantile
// of their values into "good" and "bad"; candidates are drawn from the
// good trials' Parzen mixture l(x) and the one with the largest l(x)/g(x)
// (the expected-improvement criterion of §4.1) is proposed.
type seededTPE struct {
	mu      sync.Mutex
	rng     *rand.Rand
	startup int
	cands   int
	params  tpe.ParzenEstimatorParams
}

func newSeededTPE(seed uint64, startup int) *seededTPE {
	return &seededTPE{rng: newRand(seed, 31), startup: startup, cands: 24,
		params: tpe.ParzenEstimatorParams{ConsiderPrior: true, PriorWeight: 1, ConsiderMagicClip: true, Weights: tpe.DefaultWeights}}
}

var _ goptuna.Sampler = (*seededTPE)(nil)

// Sample implements goptuna.Sampler for the numeric distributions this
// package's searches use.
func (s *seededTPE) Sample(study *goptuna.Study, _ goptuna.FrozenTrial, name string, dist interface{}) (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var low, high float64
	isLog, q := false, 0.0
	switch d := dist.(type) {
	case goptuna.UniformDistribution:
		low, high = d.Low, d.High
	case goptuna.LogUniformDistribution:
		low, high, isLog = math.Log(d.Low), math.Log(d.High), true
	case goptuna.IntUniformDistribution:
		low, high, q = float64(d.Low)-0.5, float64(d.High)+0.5, 1
	case goptuna.StepIntUniformDistribution:
		low, high, q = float64(d.Low)-0.5*float64(d.Step), float64(d.High)+0.5*float64(d.Step), float64(d.Step)
	default:
		return 0, goptuna.ErrUnsupportedSearchSpace
	}
	trials, err := study.GetTrials()
	if err != nil {
		return 0, err
	}
	type obs struct{ x, v float64 }
	var os []obs
	for _, t := range trials {
		if t.State != goptuna.TrialStateComplete {
			continue
		}
		if x, ok := t.InternalParams[name]; ok && !math.IsNaN(t.Value) && !math.IsInf(t.Value, 0) {
			if isLog {
				x = math.Log(x)
			}
			os = append(os, obs{x, t.Value})
		}
	}
	var x float64
	if len(os) < s.startup {
		x = low + s.rng.Float64()*(high-low)
	} else {
		// Stable by value, then by trial order: ties split the same way.
		sort.SliceStable(os, func(i, j int) bool { return os[i].v < os[j].v })
		nb := max(1, tpe.DefaultGamma(len(os)))
		var good, bad []float64
		for i, o := range os {
			if i < nb {
				good = append(good, o.x)
			} else {
				bad = append(bad, o.x)
			}
		}
		l := tpe.NewParzenEstimator(good, low, high, s.params)
		g := tpe.NewParzenEstimator(bad, low, high, s.params)
		best, bestScore := low, math.Inf(-1)
		for c := 0; c < s.cands; c++ {
			v := s.draw(l, low, high)
			if sc := logMix(l, v, low, high) - logMix(g, v, low, high); sc > bestScore {
				best, bestScore = v, sc
			}
		}
		x = best
	}
	if q > 0 {
		base := low + 0.5*q
		x = base + math.Round((x-base)/q)*q
		x = math.Min(math.Max(x, low+0.5*q), high-0.5*q)
	}
	if isLog {
		x = math.Exp(x)
	}
	return x, nil
}

// draw samples the Parzen mixture truncated to [low, high).
func (s *seededTPE) draw(pe *tpe.ParzenEstimator, low, high float64) float64 {
	for tries := 0; tries < 100; tries++ {
		u := s.rng.Float64()
		k := len(pe.Weights) - 1
		var acc float64
		for i, w := range pe.Weights {
			acc += w
			if u < acc {
				k = i
				break
			}
		}
		v := pe.Mus[k] + pe.Sigmas[k]*s.rng.NormFloat64()
		if v >= low && v < high {
			return v
		}
	}
	return low + s.rng.Float64()*(high-low)
}

// logMix is the log density of the truncated Gaussian mixture at x.
func logMix(pe *tpe.ParzenEstimator, x, low, high float64) float64 {
	var p float64
	for i, w := range pe.Weights {
		mu, sg := pe.Mus[i], math.Max(pe.Sigmas[i], 1e-12)
		z := normCDF((high-mu)/sg) - normCDF((low-mu)/sg)
		if z <= 0 {
			continue
		}
		d := (x - mu) / sg
		p += w * math.Exp(-0.5*d*d) / (sg * math.Sqrt(2*math.Pi) * z)
	}
	return math.Log(p + 1e-300)
}

func normCDF(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }
