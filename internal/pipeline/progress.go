package pipeline

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/lbsys/lbsys/internal/forecast"
)

// Printer prints a run's progress for a person: one line per component
// (started, done or cached with its seconds, failed with why) and a trial
// counter while the Tuner runs, rewritten in place on a terminal. Its
// Event method is a Runner's Progress, its Trial a Config's OnTrial.
type Printer struct {
	mu     sync.Mutex // the two tuning searches report trials concurrently
	w      io.Writer
	quiet  bool
	tty    bool
	trials int
	n      int
}

// NewPrinter prints on w (nothing when quiet); trials is the number of
// tuning trials the run may make, for the counter.
func NewPrinter(w io.Writer, quiet bool, trials int) *Printer {
	p := &Printer{w: w, quiet: quiet, trials: trials}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func bar(frac float64, width int) string {
	k := int(math.Round(frac * float64(width)))
	k = max(0, min(width, k))
	return "[" + strings.Repeat("#", k) + strings.Repeat(".", width-k) + "]"
}

// Event prints a component's start, end or failure.
func (p *Printer) Event(e Event) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.State {
	case "start":
		fmt.Fprintf(p.w, "%s %2d/%d %-17s running\n", bar(float64(e.Index-1)/float64(e.Total), 20), e.Index, e.Total, e.Component)
	case "done", "cached":
		if p.tty && p.n > 0 {
			fmt.Fprintln(p.w)
		}
		fmt.Fprintf(p.w, "%s %2d/%d %-17s %s %.1fs\n", bar(float64(e.Index)/float64(e.Total), 20), e.Index, e.Total, e.Component, e.State, e.Seconds)
	case "failed":
		fmt.Fprintf(p.w, "%s %2d/%d %-17s failed: %v\n", bar(float64(e.Index-1)/float64(e.Total), 20), e.Index, e.Total, e.Component, e.Err)
	}
}

// Trial counts a tuning trial.
func (p *Printer) Trial(t forecast.Trial) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	line := fmt.Sprintf("        %s trial %d/%d (%s #%d: validation MASE %.3f)", bar(float64(p.n)/float64(max(p.trials, 1)), 20), p.n, p.trials, t.Model, t.Number, t.Value)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s", line)
		return
	}
	fmt.Fprintln(p.w, line)
}

// Done ends the trial counter's line on a terminal.
func (p *Printer) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet && p.tty && p.n > 0 {
		fmt.Fprintln(p.w)
	}
}
