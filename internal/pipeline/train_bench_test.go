package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
)

// BenchmarkTrain50x14d times forecast.Train alone (no tuning) on the
// benchmark's 50 series, to see where the Trainer's time goes.
func BenchmarkTrain50x14d(b *testing.B) {
	inputs := synthSeries(50, 14, time.Minute, 7)
	tr, err := forecast.Prepare(inputs, forecast.Options{Seed: 1, Horizons: []int{30, 120}})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := forecast.Train(context.Background(), tr, inputs); err != nil {
			b.Fatal(err)
		}
	}
}
