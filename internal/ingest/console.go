package ingest

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// RunWithProgress runs fn as run's work and finishes the run with its
// error. Until fn returns, every interval it prints the notes added since
// the last line and a progress line ("… csv: 1200 inserted, …") on w, so
// that a long import (or a --follow one) shows it is alive.
func RunWithProgress(ctx context.Context, run *Run, w io.Writer, interval time.Duration, fn func(ctx context.Context, run *Run) error) (Report, error) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		notes := 0
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rep := run.Report()
				for ; notes < len(rep.Notes); notes++ {
					fmt.Fprintln(w, "note:", rep.Notes[notes])
				}
				fmt.Fprintln(w, "…", rep.String())
			}
		}
	}()
	runErr := fn(ctx, run)
	close(done)
	wg.Wait()
	return run.Finish(ctx, runErr)
}

// WriteReport writes a finished run's summary: the one-line report, its
// notes and, when rows were quarantined, the first row of every reason
// (the one future_time row may come after thousands of gaps) and how to
// see them all in the store at storePath.
func WriteReport(w io.Writer, rep Report, storePath string) {
	fmt.Fprintln(w, rep.String())
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if rep.Quarantined == 0 {
		return
	}
	for _, reason := range store.Reasons {
		if p, ok := rep.First[reason]; ok {
			fmt.Fprintf(w, "quarantined: %d %s, the first: %s\n", rep.Reasons[reason], reason, p.Error())
		}
	}
	fmt.Fprintf(w, "(lbsys ingest status --store %s shows all reasons)\n", storePath)
}

// Status is what the store holds and what the recent imports did (`lbsys
// ingest status`; its JSON with --json).
type Status struct {
	Store      string                  `json:"store"`
	Stats      store.Stats             `json:"stats"`
	Quarantine []store.QuarantineCount `json:"quarantine_counts"`
	Latest     []store.Quarantined     `json:"latest_quarantined"`
	Runs       []store.IngestRun       `json:"runs"`
}

// ReadStatus reads the store's counts, its quarantine counts, and the last
// n runs and quarantined rows; path names the store in the output.
func ReadStatus(ctx context.Context, st *store.Store, path string, n int) (*Status, error) {
	s := &Status{Store: path}
	var err error
	if s.Stats, err = st.Stats(ctx); err != nil {
		return nil, err
	}
	if s.Quarantine, err = st.QuarantineCounts(ctx); err != nil {
		return nil, err
	}
	if s.Latest, err = st.LatestQuarantined(ctx, n); err != nil {
		return nil, err
	}
	if s.Runs, err = st.IngestRuns(ctx, n); err != nil {
		return nil, err
	}
	return s, nil
}

// WriteText writes the status for a terminal: counts, quarantine reasons
// by rows, recent runs (with their errors) and the latest reasons.
func (s *Status) WriteText(out io.Writer) {
	st := s.Stats
	fmt.Fprintf(out, "store %s (schema %d, %.1f MB)\n", s.Store, st.SchemaVersion, float64(st.FileBytes)/1e6)
	fmt.Fprintf(out, "series %d: raw points %d, 1m buckets %d, 1h buckets %d\n", st.Series, st.RawPoints, st.MinutePoints, st.HourPoints)
	fmt.Fprintf(out, "CIs %d, relations %d, incidents %d, changes %d, events %d, pipeline runs %d, artifacts %d\n",
		st.CIs, st.Relations, st.Incidents, st.Changes, st.Events, st.PipelineRuns, st.Artifacts)
	fmt.Fprintf(out, "quarantined %d\n", st.Quarantined)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	if len(s.Quarantine) > 0 {
		fmt.Fprintln(tw, "\tSOURCE\tREASON\tROWS")
		counts := append([]store.QuarantineCount(nil), s.Quarantine...)
		sort.SliceStable(counts, func(i, j int) bool { return counts[i].Count > counts[j].Count })
		for _, c := range counts {
			fmt.Fprintf(tw, "\t%s\t%s\t%d\n", c.Source, c.Reason, c.Count)
		}
		tw.Flush()
	}
	if len(s.Runs) > 0 {
		fmt.Fprintln(out, "recent runs:")
		fmt.Fprintln(tw, "\tRUN\tSOURCE\tSTATUS\tSTARTED\tTOOK\tINSERTED\tUPDATED\tUNCHANGED\tQUARANTINED")
		for _, r := range s.Runs {
			took := "-"
			if !r.Finished.IsZero() {
				took = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
			}
			fmt.Fprintf(tw, "\t#%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", r.ID, r.Source, r.Status,
				r.Started.Format(time.RFC3339), took, r.Inserted, r.Updated, r.Unchanged, r.Quarantined)
		}
		tw.Flush()
		for _, r := range s.Runs {
			if r.Error != "" {
				fmt.Fprintf(out, "  #%d %s: %s\n", r.ID, r.Status, r.Error)
			}
		}
	}
	if len(s.Latest) > 0 {
		fmt.Fprintln(out, "latest quarantine reasons:")
		for _, q := range s.Latest {
			fmt.Fprintf(out, "  %s %s %s: %s: %s\n", q.At.Format(time.RFC3339), q.Source, q.Location, q.Reason, q.Detail)
		}
	}
}

// WriteGraph writes the dependency graph: fan-out, fan-in, upstream and
// downstream counts per node, then the cycles.
func WriteGraph(out io.Writer, g *store.Graph) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tFAN-OUT\tFAN-IN\tUPSTREAM\tDOWNSTREAM")
	for _, k := range g.Nodes() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", k, g.FanOut(k), g.FanIn(k), len(g.Upstream(k)), len(g.Downstream(k)))
	}
	tw.Flush()
	for _, c := range g.Cycles() {
		fmt.Fprintf(out, "cycle: %s\n", strings.Join(c, " ⇄ "))
	}
}

// WriteNode writes one node's direct and transitive dependencies and
// dependents.
func WriteNode(out io.Writer, g *store.Graph, key string) {
	fmt.Fprintf(out, "%s\n  depends on:  %s\n  upstream:    %s\n  dependents:  %s\n  downstream:  %s\n", key,
		strings.Join(g.DependsOn(key), ", "), strings.Join(g.Upstream(key), ", "),
		strings.Join(g.DependedOnBy(key), ", "), strings.Join(g.Downstream(key), ", "))
}

// Secret reads a secret from a file (its first line, surrounding white
// space and the line end removed) or, when no file is named, from the
// environment variable env; secrets are never flags, so they stay out of
// ps and shell history. A named file wins over the variable. A file whose
// first line is empty is an error rather than "no secret": a secret that
// was not mounted must not make the command fall back, silently, to
// another credential from the environment. The file's mode is not checked
// (a Kubernetes secret volume is 0644 by default).
func Secret(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	// The first line ends at \n, \r\n or a lone \r (a file saved with old
	// Mac line ends): a line end is never part of a secret, and in an
	// Authorization header it would be refused, or worse.
	line := string(b)
	if i := strings.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	s := strings.TrimSpace(line)
	if s == "" {
		return "", fmt.Errorf("%s: the first line is empty: write the secret on the first line", file)
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }); i >= 0 {
		return "", fmt.Errorf("%s: the secret has a control character at byte %d: check how the file was written", file, i)
	}
	return s, nil
}
