// Package simrun runs the simulator for `lbsys sim`: it loads a scenario
// (embedded by name, or a file with the trace and calendar it names),
// runs every policy × control over the seeds with a progress line, and
// writes the results into a directory. internal/sim stays free of files,
// the wall clock and the terminal; this package is where they meet it.
package simrun

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/sim"
	"github.com/lbsys/lbsys/scenarios"
)

// Load reads a named (embedded) scenario or a YAML file, and the trace
// and calendar it names. An argument with a path separator or a .yaml or
// .yml suffix is a file; a trace or calendar it names is read relative to
// it. For an embedded scenario, a calendar comes with it and a trace is
// read relative to scenarios/ in the working directory or one of its
// parents (traces are too large to embed).
func Load(arg string) (*sim.Scenario, error) {
	var (
		data      []byte
		name, dir string
		err       error
	)
	if strings.ContainsAny(arg, `/\`) || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		if data, err = os.ReadFile(arg); err != nil {
			return nil, fmt.Errorf("--scenario: %w", err)
		}
		name, dir = arg, filepath.Dir(arg)
	} else {
		if data, err = scenarios.Read(arg); err != nil {
			return nil, fmt.Errorf("--scenario: %w", err)
		}
		name = "scenarios/" + arg + ".yaml"
	}
	sc, err := sim.ParseScenario(data, name)
	if err != nil {
		return nil, err
	}
	if c := sc.NeedsCalendar(); c != "" {
		err := sc.LoadCalendar(func(p string) ([]byte, error) {
			if dir == "" {
				return scenarios.ReadFile(p)
			}
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			return os.ReadFile(p)
		})
		if err != nil {
			return nil, err
		}
	}
	if sc.NeedsTrace() != "" {
		if dir == "" {
			if dir, err = findScenariosDir(); err != nil {
				return nil, fmt.Errorf("scenario %s replays %s: %w", arg, sc.NeedsTrace(), err)
			}
		}
		err = sc.LoadTrace(func(p string) ([]byte, error) {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			return os.ReadFile(p)
		})
		if err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// findScenariosDir looks for scenarios/ in the working directory and its
// parents (the repository checkout the embedded scenarios come from).
func findScenariosDir() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		c := filepath.Join(d, "scenarios")
		if st, err := os.Stat(filepath.Join(c, "scenarios.go")); err == nil && !st.IsDir() {
			return c, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("relative to scenarios/, which is not in the working directory or its parents: run from the repository, or pass the scenario as a file")
		}
		d = parent
	}
}

// ParseSeeds reads --seeds ("1-5", "1,4,9"); when list is empty, the one
// seed given (--seed), else def (the scenario's).
func ParseSeeds(list string, seed, def uint64) ([]uint64, error) {
	if strings.TrimSpace(list) == "" {
		if seed == 0 {
			seed = def
		}
		return []uint64{seed}, nil
	}
	var out []uint64
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil || a == 0 {
			return nil, fmt.Errorf("%q: want seeds ≥ 1 such as 1-5 or 1,4,9", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("%q: want a range low-high with low ≤ high", part)
			}
		}
		if b-a >= 1000 || len(out) > 1000 {
			return nil, fmt.Errorf("%q: at most 1000 seeds", part)
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}

// ParsePolicies reads a comma-separated list of balancing policies; empty:
// def (the scenario's).
func ParsePolicies(list string, def []string) ([]string, error) {
	if list == "" {
		return def, nil
	}
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if _, ok := balance.Lookup(p); !ok {
			return nil, fmt.Errorf("unknown policy %q: use %s", p, strings.Join(balance.Names(), ", "))
		}
		out = append(out, p)
	}
	return out, nil
}
