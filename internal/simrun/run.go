package simrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/sim"
)

// Config is one `lbsys sim` invocation.
type Config struct {
	Scenario *sim.Scenario
	Policies []string
	// Controls are the controls to compare (sim.ParseControls: in the
	// order of sim.Controls).
	Controls []string
	Seeds    []uint64
	// Parallel is the number of runs simulated at once (at least 1).
	Parallel int
	// Out is the results directory; "" makes a new one under the system's
	// temporary directory (see OutDir).
	Out string
	// Progress receives a progress line every second unless Quiet.
	Progress io.Writer
	Quiet    bool
	// EventConfidence is the predictive controllers' probability that an
	// announced event is no larger than their floors plan for
	// (forecast.UpliftOptions.Upper); 0: the default, 0.95.
	EventConfidence float64
}

// tune applies the configuration's controller options to each run's
// controller setup.
func (c Config) tune(s *control.Setup) {
	if c.EventConfidence > 0 {
		s.Uplift.Upper = c.EventConfidence
	}
}

// Result is what a Run simulated and where it wrote it.
type Result struct {
	// Out is the directory holding the results.
	Out string
	// Runs has one Results per seed simulated, in the order of the seeds.
	Runs []*sim.Results
	// Comparison is set when there are several seeds or a control other
	// than the reactive one alone.
	Comparison *sim.Comparison
	// Requests counts the simulated requests, finished or not; Events the
	// engine's events.
	Requests, Events uint64
	// Wall is the wall-clock time taken.
	Wall time.Duration
	// Interrupted: the context ended before every seed ran; the results
	// cover what was simulated.
	Interrupted bool
}

// InvalidError is a Run refused before simulating (a policy or control
// the scenario cannot run): the caller's input is wrong, not the machine.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// OutDir returns dir, created if missing, or, when dir is "", a new
// directory under the system's temporary directory named after the
// scenario (lbsys-sim-NAME-*): a default that never writes into the
// working tree (a checkout) and never mixes two runs' files.
func OutDir(dir, scenario string) (string, error) {
	if dir != "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	safe := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == '*' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, scenario)
	return os.MkdirTemp("", "lbsys-sim-"+safe+"-")
}

// Run simulates every policy under every control for each seed, writes
// the results of each seed (report.md, results.json, plots; under seed-N/
// when there are several) and, when there is one, the comparison
// (comparison.md, comparison.json) into the results directory. Cancelling
// ctx stops early: what was simulated is still written.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	sc := cfg.Scenario
	if cfg.EventConfidence != 0 {
		if err := forecast.CheckEventConfidence(cfg.EventConfidence); err != nil {
			return nil, &InvalidError{err}
		}
	}
	out, err := OutDir(cfg.Out, sc.Name)
	if err != nil {
		return nil, err
	}
	var runs []sim.RunSpec
	var labels []string
	for _, c := range cfg.Controls {
		for _, p := range cfg.Policies {
			runs = append(runs, sim.RunSpec{Policy: p, Control: c})
			labels = append(labels, runLabel(p, c))
		}
	}
	res := &Result{Out: out}
	factory := sim.Controllers(ctx, cfg.tune)
	started := time.Now()
	for _, sd := range cfg.Seeds {
		name := sc.Name
		if len(cfg.Seeds) > 1 {
			name = fmt.Sprintf("%s seed %d", sc.Name, sd)
		}
		prog := newProgress(cfg.Progress, name, labels, cfg.Quiet || cfg.Progress == nil)
		prog.start(ctx)
		base := sim.Options{
			Progress: prog.update,
			Stop:     func() bool { return ctx.Err() != nil },
		}
		r, err := sim.RunMatrix(sc, runs, sd, max(cfg.Parallel, 1), base, factory)
		prog.stop()
		if err != nil {
			return nil, &InvalidError{err}
		}
		dir := out
		if len(cfg.Seeds) > 1 {
			dir = filepath.Join(out, fmt.Sprintf("seed-%d", sd))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, err
			}
		}
		if err := WriteResults(dir, r); err != nil {
			return nil, err
		}
		for _, pr := range r.Policies {
			res.Requests += uint64(pr.Totals.Requests + pr.Totals.Unfinished)
			res.Events += pr.Totals.Events
		}
		res.Runs = append(res.Runs, r)
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
	}
	res.Wall = time.Since(started)
	if len(cfg.Seeds) > 1 || len(cfg.Controls) > 1 || (len(cfg.Controls) == 1 && cfg.Controls[0] != "reactive") {
		res.Comparison = sim.Compare(sc, res.Runs)
		if err := WriteComparison(out, res.Comparison); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// WriteSummary writes the summary: the comparison when there is one, else
// the single seed's results, as Markdown (format "md") or JSON ("json",
// the bytes of results.json or comparison.json).
func (r *Result) WriteSummary(w io.Writer, format string) error {
	switch {
	case r.Comparison != nil && format == "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(r.Comparison)
	case r.Comparison != nil:
		return sim.WriteComparison(w, r.Comparison)
	case format == "json":
		return sim.WriteJSON(w, r.Runs[0])
	}
	return sim.WriteMarkdown(w, r.Runs[0], nil)
}

// WriteResults writes results.json, the plots and report.md into dir.
func WriteResults(dir string, res *sim.Results) error {
	var buf bytes.Buffer
	if err := sim.WriteJSON(&buf, res); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), buf.Bytes(), 0o644); err != nil {
		return err
	}
	var files []string
	for _, p := range sim.Plots(res) {
		buf.Reset()
		if err := p.Render(&buf); err != nil {
			return fmt.Errorf("plot %s: %w", p.File, err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.File), buf.Bytes(), 0o644); err != nil {
			return err
		}
		files = append(files, p.File)
	}
	buf.Reset()
	if err := sim.WriteMarkdown(&buf, res, files); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), buf.Bytes(), 0o644)
}

// WriteComparison writes comparison.json and comparison.md into dir.
func WriteComparison(dir string, c *sim.Comparison) error {
	b, err := json.MarshalIndent(c, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "comparison.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := sim.WriteComparison(&buf, c); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "comparison.md"), buf.Bytes(), 0o644)
}
