package pipeline

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// BenchmarkPipeline50x14d runs the whole standard pipeline, tuning
// included, on 50 series × 14 days at 1-minute resolution (the issue's
// goal: ≤ 60 s on 2 cores). LBSYS_BENCH_BUDGET overrides the tuning
// budget (default 30s, as the CLI).
func BenchmarkPipeline50x14d(b *testing.B) {
	inputs := synthSeries(50, 14, time.Minute, 7)
	budget := 30 * time.Second
	if v := os.Getenv("LBSYS_BENCH_BUDGET"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		budget = d
	}
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		store := &Store{Dir: dir}
		md := NewMemoryMetadata()
		cfg := Config{Source: &SeriesSource{Name: "synthetic", Inputs: inputs}, Options: forecast.Options{Seed: 1}, Budget: budget}
		times := map[string]float64{}
		r := &Runner{Pipeline: "bench", Store: store, Metadata: md, Progress: func(e Event) {
			if e.State == "done" || e.State == "cached" {
				times[e.Component] = e.Seconds
			}
		}}
		start := time.Now()
		res, err := r.Run(context.Background(), "bench-"+strconv.Itoa(i), Standard(cfg, store, md))
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.ReportMetric(el.Seconds(), "s/pipeline")
		if os.Getenv("LBSYS_BENCH_VERBOSE") != "" {
			for _, e := range res.Executions {
				fmt.Printf("  %-17s %6.2fs %v\n", e.Component, e.Seconds, e.Metrics)
			}
		}
	}
}
