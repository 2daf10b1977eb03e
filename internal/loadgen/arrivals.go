package loadgen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// ArrivalProcess chooses how arrivals are spread around the target rate.
type ArrivalProcess string

const (
	// Poisson arrivals: a non-homogeneous Poisson process with intensity
	// Rate, drawn by thinning. Independent users arrive like this; the
	// bursts it contains are part of the load.
	Poisson ArrivalProcess = "poisson"
	// Uniform arrivals: evenly spaced at the instantaneous rate (the
	// integral of the rate crosses an integer at each arrival). Useful to
	// measure without Poisson bursts.
	Uniform ArrivalProcess = "uniform"
)

// ParseArrivalProcess checks a --arrivals value.
func ParseArrivalProcess(s string) (ArrivalProcess, error) {
	switch ArrivalProcess(s) {
	case Poisson, Uniform:
		return ArrivalProcess(s), nil
	}
	return "", fmt.Errorf("arrivals %q: use poisson or uniform", s)
}

// thinningBlock is the interval over which thinning uses one bound of the
// rate: short enough that a ramp or a trace step does not inflate the
// bound much (few rejected candidates), long enough that Rate.Max is not
// called per arrival.
const thinningBlock = 10 * time.Millisecond

// uniformStep is the integration step of the uniform process: the rate is
// taken as constant over at most this long.
const uniformStep = time.Millisecond

// Arrivals yields the arrival offsets of one run, in order. It is
// deterministic for a given rate, process, seed and end. Not safe for
// concurrent use.
type Arrivals struct {
	rate    Rate
	end     time.Duration
	poisson bool
	rng     *rand.Rand

	t time.Duration // the process's current time

	// Poisson: the current thinning block and its rate bound.
	blockEnd time.Duration
	bound    float64

	// Uniform: the phase (in arrivals) still to accumulate before the next
	// arrival.
	need float64
}

// NewArrivals returns the arrivals of rate over [0, end).
func NewArrivals(rate Rate, p ArrivalProcess, seed uint64, end time.Duration) *Arrivals {
	return &Arrivals{
		rate:    rate,
		end:     end,
		poisson: p != Uniform,
		// The second PCG word separates the arrival stream from the
		// per-session streams seeded from the same seed.
		rng: rand.New(rand.NewPCG(seed, 0x61727269766c73)),
		// Half a period first, so uniform arrivals are centred in their
		// slots and a run of d seconds at rate r has r·d arrivals.
		need: 0.5,
	}
}

// Next returns the next arrival offset, or false when the run is over.
func (a *Arrivals) Next() (time.Duration, bool) {
	if a.poisson {
		return a.nextPoisson()
	}
	return a.nextUniform()
}

// nextPoisson thins a homogeneous process at the block's bound: a
// candidate at t is kept with probability rate(t)/bound. Jumping to the
// block end when a candidate overshoots is exact, since the exponential is
// memoryless.
func (a *Arrivals) nextPoisson() (time.Duration, bool) {
	for {
		if a.t >= a.end {
			return 0, false
		}
		if a.t >= a.blockEnd {
			a.blockEnd = min(a.t+thinningBlock, a.end)
			a.bound = a.rate.Max(a.t, a.blockEnd)
		}
		if a.bound <= 0 {
			a.t = a.blockEnd
			continue
		}
		dt := time.Duration(a.rng.ExpFloat64() / a.bound * float64(time.Second))
		cand := a.t + dt
		if cand >= a.blockEnd || dt < 0 { // dt < 0: overflow on a tiny bound
			a.t = a.blockEnd
			continue
		}
		a.t = cand
		if a.rng.Float64()*a.bound <= a.rate.At(cand) {
			return cand, true
		}
	}
}

func (a *Arrivals) nextUniform() (time.Duration, bool) {
	for a.t < a.end {
		lam := a.rate.At(a.t)
		h := min(uniformStep, a.end-a.t)
		if lam > 0 && lam*h.Seconds() >= a.need {
			a.t += time.Duration(a.need / lam * float64(time.Second))
			a.need = 1
			if a.t >= a.end {
				break
			}
			return a.t, true
		}
		a.need -= lam * h.Seconds()
		a.t += h
	}
	return 0, false
}
