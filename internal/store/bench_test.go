package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func benchStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), tb.TempDir()+"/bench.db", Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkWritePoints writes batches of 10,000 new 1-second points spread
// over 50 series (200 s each), as the telemetry importer does.
func BenchmarkWritePoints(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	ids := make([]int64, 50)
	for i := range ids {
		id, err := s.EnsureSeries(ctx, SeriesKey{Service: fmt.Sprintf("svc%d", i), Metric: "requests"}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	const perSeries = 200
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	batch := make([]Sample, 0, perSeries*len(ids))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		batch = batch[:0]
		for _, id := range ids {
			for k := range perSeries {
				t := base + int64(n*perSeries+k)*1000
				batch = append(batch, Sample{Series: id, T: t, V: float64(k % 97)})
			}
		}
		res, err := s.WritePoints(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if res.Inserted != len(batch) {
			b.Fatalf("inserted %d of %d", res.Inserted, len(batch))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "points/s")
}

// BenchmarkRangeWeekMinute50 reads a week of 1-minute points for 50 series
// (504,000 points), the pipeline's typical training read.
func BenchmarkRangeWeekMinute50(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ids := fillWeekOfMinutes(b, s, start, 50)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		got, err := s.RangeMany(ctx, ids, start, start.Add(7*24*time.Hour), Minute)
		if err != nil {
			b.Fatal(err)
		}
		if len(got[ids[0]]) != 7*24*60 {
			b.Fatalf("got %d points", len(got[ids[0]]))
		}
	}
}

func fillWeekOfMinutes(tb testing.TB, s *Store, start time.Time, nseries int) []int64 {
	tb.Helper()
	ctx := context.Background()
	var ids []int64
	for i := range nseries {
		id, err := s.EnsureSeries(ctx, SeriesKey{Service: fmt.Sprintf("svc%d", i), Metric: "requests"}, "bench")
		if err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
		var batch []Sample
		for k := range 7 * 24 * 60 {
			batch = append(batch, Sample{Series: id, T: start.UnixMilli() + int64(k)*minuteMs, V: float64(k % 1440)})
		}
		if _, err := s.WritePoints(ctx, batch); err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

// BenchmarkRangeWeekMinute50Serial is the same read on one connection, one
// series after another.
func BenchmarkRangeWeekMinute50Serial(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir()+"/bench.db", Options{ReadConns: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ids := fillWeekOfMinutes(b, s, start, 50)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for _, id := range ids {
			pts, err := s.Range(ctx, id, start, start.Add(7*24*time.Hour), Minute)
			if err != nil || len(pts) != 7*24*60 {
				b.Fatalf("%d points, %v", len(pts), err)
			}
		}
	}
}

// BenchmarkWriteTelemetrySecond writes what the telemetry importer writes
// each second for a proxy with 50 series of 8 metrics: 400 points, one
// transaction, each touching its minute and hour rollups.
func BenchmarkWriteTelemetrySecond(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	var ids []int64
	for i := range 400 {
		id, err := s.EnsureSeries(ctx, SeriesKey{Service: fmt.Sprintf("svc%d", i/8), Metric: fmt.Sprintf("m%d", i%8)}, "bench")
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	batch := make([]Sample, len(ids))
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i, id := range ids {
			batch[i] = Sample{Series: id, T: base + int64(n)*1000, V: float64(n % 50)}
		}
		if _, err := s.WritePoints(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "points/s")
}
