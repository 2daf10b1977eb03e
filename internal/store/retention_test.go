package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeMinutes writes one point a minute over [from, to) to series id.
func writeMinutes(t *testing.T, s *Store, id int64, from, to time.Time) {
	t.Helper()
	var batch []Sample
	for at := from; at.Before(to); at = at.Add(time.Minute) {
		batch = append(batch, Sample{id, at.UnixMilli(), float64(at.Minute())})
	}
	if _, err := s.WritePoints(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func counts(t *testing.T, s *Store) (raw, minute, hour int64) {
	t.Helper()
	raw, minute, hour, err := s.PointCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return raw, minute, hour
}

// TestRetentionCountsFromClockNotFromData is issue #13 item 6: a week of
// 1-minute history and then one point with a typo year (2126) must not
// erase the week. The horizons count back from the store's clock, so the
// stray point moves nothing (and, being in the future, is not touched).
// Measured from the newest point, as before, every raw point, every
// 1-minute and every 1-hour bucket of the week was deleted.
func TestRetentionCountsFromClockNotFromData(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s := openTest(t, Options{Now: func() time.Time { return now }})
	id := mustSeries(t, s, "checkout", "requests")
	week := now.Add(-7 * 24 * time.Hour)
	writeMinutes(t, s, id, week, now)
	typo := time.Date(2126, 12, 6, 11, 0, 0, 0, time.UTC)
	if _, err := s.WritePoints(ctx, []Sample{{id, typo.UnixMilli(), 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	raw, minute, hour := counts(t, s)
	// Raw: the last 48 h (2,880 minutes) and the stray point; every minute
	// of the week in the 1-minute rollup (plus the stray one), every hour
	// in the 1-hour rollup (plus the stray one).
	if raw != 48*60+1 || minute != 7*24*60+1 || hour != 7*24+1 {
		t.Fatalf("after compaction: raw %d, 1m %d, 1h %d; want %d, %d, %d", raw, minute, hour, 48*60+1, 7*24*60+1, 7*24+1)
	}
	pts, err := s.Range(ctx, id, week, now, Minute)
	if err != nil || len(pts) != 7*24*60 {
		t.Fatalf("the week at 1m: %d points, %v", len(pts), err)
	}
	// Time passing is what ages data out: 36 days later the week is only
	// in the hourly rollup.
	now = now.Add(36 * 24 * time.Hour)
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	raw, minute, hour = counts(t, s)
	if raw != 1 || minute != 1 || hour != 7*24+1 {
		t.Fatalf("36 days later: raw %d, 1m %d, 1h %d; want 1, 1, %d", raw, minute, hour, 7*24+1)
	}
}

// TestArchiveSeriesKeepsEverything: an imported historical trace (archive)
// keeps every resolution whatever the clock says, while a window series of
// the same age is aged out.
func TestArchiveSeriesKeepsEverything(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{Now: func() time.Time { return time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC) }})
	archive := mustSeries(t, s, "nasa", "requests")
	window := mustSeries(t, s, "old-telemetry", "requests")
	if err := s.SetRetentionMode(ctx, archive, RetainArchive); err != nil {
		t.Fatal(err)
	}
	from := time.Date(1995, 7, 1, 4, 0, 0, 0, time.UTC)
	writeMinutes(t, s, archive, from, from.Add(3*24*time.Hour))
	writeMinutes(t, s, window, from, from.Add(3*24*time.Hour))
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id                int64
		raw, minute, hour int
	}{{archive, 3 * 24 * 60, 3 * 24 * 60, 3 * 24}, {window, 0, 0, 0}} {
		var got [3]int
		for i, res := range []Resolution{Raw, Minute, Hour} {
			pts, err := s.Range(ctx, tc.id, from, from.Add(3*24*time.Hour), res)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = len(pts)
		}
		if got != [3]int{tc.raw, tc.minute, tc.hour} {
			t.Errorf("series %d: raw/1m/1h %v, want %v", tc.id, got, [3]int{tc.raw, tc.minute, tc.hour})
		}
	}
	ser, _ := s.ListSeries(ctx, SeriesFilter{Service: "nasa"})
	if len(ser) != 1 || ser[0].Retention != RetainArchive {
		t.Fatalf("series %+v", ser)
	}
}

func TestRetentionModeErrors(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, Options{})
	for in, want := range map[string]RetentionMode{"window": RetainWindow, " Archive ": RetainArchive} {
		if got, err := ParseRetentionMode(in); err != nil || got != want {
			t.Errorf("ParseRetentionMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseRetentionMode("forever"); err == nil || !strings.Contains(err.Error(), "use window") {
		t.Errorf("forever: %v", err)
	}
	if err := s.SetRetentionMode(ctx, 42, RetainArchive); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown series: %v", err)
	}
	id := mustSeries(t, s, "a", "m")
	if err := s.SetRetentionMode(ctx, id, "forever"); err == nil {
		t.Error("bad mode accepted")
	}
}

// TestMigrationKeepsOldCSVTracesWhole: a store written before schema 5
// measured retention from each series' newest point, which kept an
// imported trace whole; the migration makes its CSV series archives so
// that the clock-based retention does not delete them on the first
// compaction.
func TestMigrationKeepsOldCSVTracesWhole(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureSeries(ctx, SeriesKey{Service: "nasa", Metric: "requests"}, "csv"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnsureSeries(ctx, SeriesKey{Service: "cart", Metric: "requests"}, "telemetry"); err != nil {
		t.Fatal(err)
	}
	// Back to schema 4.
	for _, q := range []string{`ALTER TABLE series DROP COLUMN retention`, `DELETE FROM schema_migrations WHERE version = 5`} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ser, err := s.ListSeries(ctx, SeriesFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]RetentionMode{}
	for _, x := range ser {
		got[x.Service] = x.Retention
	}
	if got["nasa"] != RetainArchive || got["cart"] != RetainWindow {
		t.Fatalf("after migration: %v", got)
	}
}
