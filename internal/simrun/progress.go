package simrun

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/sim"
)

// runLabel names a run in progress lines.
func runLabel(policy, control string) string {
	if control == "" || control == "reactive" {
		return policy
	}
	return policy + "/" + control
}

// progress prints one line per second with every run's progress: the
// simulator reports from its own goroutines (sim.Options.Progress), the
// line is printed on the wall clock.
type progress struct {
	w        io.Writer
	scenario string
	order    []string
	quiet    bool
	mu       sync.Mutex
	last     map[string]sim.Progress
	began    time.Time
	done     chan struct{}
	wg       sync.WaitGroup
}

func newProgress(w io.Writer, scenario string, order []string, quiet bool) *progress {
	return &progress{w: w, scenario: scenario, order: order, quiet: quiet, last: map[string]sim.Progress{}, done: make(chan struct{})}
}

func (p *progress) update(pr sim.Progress) {
	p.mu.Lock()
	p.last[runLabel(pr.Policy, pr.Control)] = pr
	p.mu.Unlock()
}

func (p *progress) start(ctx context.Context) {
	p.began = time.Now()
	if p.quiet {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Fprintln(p.w, p.line(time.Since(p.began)))
			}
		}
	}()
}

// line is the progress after el of wall time.
func (p *progress) line(el time.Duration) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	var reqs uint64
	for _, name := range p.order {
		pr, ok := p.last[name]
		switch {
		case !ok:
			parts = append(parts, name+" waiting")
		case pr.Done:
			parts = append(parts, name+" done")
		default:
			parts = append(parts, fmt.Sprintf("%s %.0f%%", name, 100*pr.SimTime.Seconds()/pr.Duration.Seconds()))
		}
		reqs += pr.Requests
	}
	return fmt.Sprintf("sim %s %s: %s; %.1fM requests, %.2fM/s", p.scenario, el.Round(time.Second), strings.Join(parts, ", "), float64(reqs)/1e6, float64(reqs)/el.Seconds()/1e6)
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}
