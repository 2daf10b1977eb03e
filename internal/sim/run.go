package sim

import (
	"fmt"
	"sync"
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

// RunAll runs every policy on the same scenario and seed and gathers the
// results in policy order. With parallel > 1 up to that many runs proceed
// at once (each run is single-threaded and independent, so the results are
// the same either way). progress may be nil; it is called from the run's
// goroutine.
func RunAll(sc *Scenario, policies []string, seed uint64, parallel int, base Options) (*Results, error) {
	if seed == 0 {
		seed = sc.Seed
	}
	res := &Results{Scenario: sc.Name, Description: sc.Description, Seed: seed, Start: sc.Start,
		DurationS: sc.Duration.Seconds(), WindowS: sc.Window.Seconds(), Policies: make([]*PolicyResult, len(policies))}
	for _, s := range sc.Services {
		res.Services = append(res.Services, ServiceInfo{Name: s.Name, SLOP99Ms: float64(s.SLO.P99) / 1e6,
			SLOErrorRate: s.SLO.ErrorRate, InitialReplicas: s.Replicas, Autoscaled: s.Autoscale != nil})
	}
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
	return res, nil
}
