package sim

import (
	"fmt"
	"sync"

	"github.com/lbsys/lbsys/internal/control"
)

// NeedsTrace returns the trace file a scenario replays ("" when none), as
// written in the scenario (relative to the scenario file's directory).
func (sc *Scenario) NeedsTrace() string {
	if sc.Load.Trace == nil {
		return ""
	}
	return sc.Load.Trace.File
}

// LoadTrace reads the scenario's trace with read (the caller does the I/O;
// the simulator stays pure). It does nothing when the scenario replays no
// trace.
func (sc *Scenario) LoadTrace(read func(path string) ([]byte, error)) error {
	tl := sc.Load.Trace
	if tl == nil {
		return nil
	}
	data, err := read(tl.File)
	if err != nil {
		return fmt.Errorf("%s: load.trace.file: %w", sc.file, err)
	}
	tr, err := parseTrace(data, tl.File, tl.TimeCol, tl.ValueCol)
	if err != nil {
		return err
	}
	sc.trace = tr
	return nil
}

// RunSpec is one run of a matrix: a policy under a control.
type RunSpec struct {
	Policy  string
	Control string
}

// ControllerFactory builds a run's controller for a control name; nil
// (with a nil error) for reactive.
type ControllerFactory func(s *Sim, control string) (control.Controller, error)

// RunMatrix runs every (policy, control) pair on the same scenario and
// seed, like RunAll, each run's controller built by factory.
func RunMatrix(sc *Scenario, runs []RunSpec, seed uint64, parallel int, base Options, factory ControllerFactory) (*Results, error) {
	if seed == 0 {
		seed = sc.Seed
	}
	res := newResults(sc, seed, len(runs))
	sims := make([]*Sim, len(runs))
	for i, r := range runs {
		o := base
		o.Policy, o.Seed, o.Control = r.Policy, seed, r.Control
		if r.Control != "" && r.Control != "reactive" {
			ctl := r.Control
			o.NewController = func(s *Sim) (control.Controller, error) {
				if factory == nil {
					return nil, fmt.Errorf("no controller factory for control %q", ctl)
				}
				return factory(s, ctl)
			}
		}
		s, err := New(sc, o)
		if err != nil {
			return nil, err
		}
		sims[i] = s
	}
	runParallel(sims, res, parallel)
	return res, nil
}

func newResults(sc *Scenario, seed uint64, n int) *Results {
	res := &Results{Scenario: sc.Name, Description: sc.Description, Seed: seed, Start: sc.Start,
		DurationS: sc.Duration.Seconds(), WindowS: sc.Window.Seconds(), Policies: make([]*PolicyResult, n)}
	for _, s := range sc.Services {
		res.Services = append(res.Services, ServiceInfo{Name: s.Name, SLOP99Ms: float64(s.SLO.P99) / 1e6,
			SLOErrorRate: s.SLO.ErrorRate, InitialReplicas: s.Replicas, Autoscaled: s.Autoscale != nil})
	}
	return res
}

func runParallel(sims []*Sim, res *Results, parallel int) {
	if parallel < 1 {
		parallel = 1
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i, s := range sims {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res.Policies[i] = s.Run()
		}()
	}
	wg.Wait()
}

// RunAll runs every policy on the same scenario and seed and gathers the
// results in policy order. With parallel > 1 up to that many runs proceed
// at once (each run is single-threaded and independent, so the results are
// the same either way). progress may be nil; it is called from the run's
// goroutine.
func RunAll(sc *Scenario, policies []string, seed uint64, parallel int, base Options) (*Results, error) {
	if seed == 0 {
		seed = sc.Seed
	}
	res := newResults(sc, seed, len(policies))
	sims := make([]*Sim, len(policies))
	for i, p := range policies {
		o := base
		o.Policy = p
		o.Seed = seed
		s, err := New(sc, o)
		if err != nil {
			return nil, err
		}
		sims[i] = s
	}
	runParallel(sims, res, parallel)
	return res, nil
}
