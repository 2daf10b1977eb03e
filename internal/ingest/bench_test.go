package ingest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// BenchmarkImportCSV imports the 38,880-row NASA trace through parsing,
// validation and batched writes (a fresh store per iteration).
func BenchmarkImportCSV(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "traces", "nasa_http_1995_07_1min.csv"))
	if err != nil {
		b.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	ctx := context.Background()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		st, err := store.Open(ctx, filepath.Join(b.TempDir(), "b.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := runSource(b, st, "csv", func(ctx context.Context, run *Run) error {
			return ImportCSV(ctx, run, bytesReader(data), CSVOptions{Service: "nasa", Metric: "requests", Time: TimeFormat{Loc: ny}}, false)
		})
		if err != nil || rep.Inserted != 38880 {
			b.Fatalf("%s %v", rep, err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*38880)/b.Elapsed().Seconds(), "rows/s")
}
