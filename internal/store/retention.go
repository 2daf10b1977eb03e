package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Retention says how much detail is kept. Horizons are measured back from
// each series' newest point (not from the wall clock), so a historical
// trace imported today keeps its detail while a series that is still being
// written keeps a sliding window: raw points for Raw, 1-minute buckets for
// Minute, 1-hour buckets for Hour. Rollups are written eagerly, so deleting
// older detail loses resolution, never data.
type Retention struct {
	// Raw is how long raw points are kept. Default 48h.
	Raw time.Duration
	// Minute is how long 1-minute buckets are kept; at least Raw.
	// Default 35 days (five weeks: week-over-week features at 1 m).
	Minute time.Duration
	// Hour is how long 1-hour buckets are kept; at least Minute. Default
	// about three years (26,280 h).
	Hour time.Duration
	// QuarantineRows bounds the quarantine table (oldest rows go first).
	// Default 100,000.
	QuarantineRows int
	// IngestRuns bounds the ingest run history. Default 10,000.
	IngestRuns int
}

// DefaultRetention is what a zero Retention field means.
var DefaultRetention = Retention{
	Raw:            48 * time.Hour,
	Minute:         35 * 24 * time.Hour,
	Hour:           26280 * time.Hour,
	QuarantineRows: 100_000,
	IngestRuns:     10_000,
}

func (r Retention) withDefaults() Retention {
	if r.Raw <= 0 {
		r.Raw = DefaultRetention.Raw
	}
	if r.Minute <= 0 {
		r.Minute = max(DefaultRetention.Minute, r.Raw)
	}
	if r.Hour <= 0 {
		r.Hour = max(DefaultRetention.Hour, r.Minute)
	}
	if r.QuarantineRows <= 0 {
		r.QuarantineRows = DefaultRetention.QuarantineRows
	}
	if r.IngestRuns <= 0 {
		r.IngestRuns = DefaultRetention.IngestRuns
	}
	return r
}

func (r Retention) validate() error {
	if r.Raw < time.Minute {
		return fmt.Errorf("retention: raw %v is below one minute", r.Raw)
	}
	if r.Minute < r.Raw {
		return fmt.Errorf("retention: 1m (%v) must be at least raw (%v): raw points are compacted into 1-minute buckets", r.Minute, r.Raw)
	}
	if r.Hour < r.Minute {
		return fmt.Errorf("retention: 1h (%v) must be at least 1m (%v)", r.Hour, r.Minute)
	}
	return nil
}

// RetentionMode says whether a series has a retention horizon.
type RetentionMode string

const (
	// RetainWindow: the series keeps a sliding window back from the clock
	// (Retention). The default: live sources (telemetry, Prometheus,
	// forecasts) grow without end otherwise.
	RetainWindow RetentionMode = "window"
	// RetainArchive: the series keeps every point at every resolution. For
	// imported historical traces (a CSV of 1995): their size is bounded by
	// the file, and a wall-clock window would delete them at once.
	RetainArchive RetentionMode = "archive"
)

// ParseRetentionMode reads "window" or "archive".
func ParseRetentionMode(s string) (RetentionMode, error) {
	switch m := RetentionMode(strings.ToLower(strings.TrimSpace(s))); m {
	case RetainWindow, RetainArchive:
		return m, nil
	}
	return "", fmt.Errorf("retention %q: use window (a sliding window back from now: live data) or archive (keep everything: a historical trace)", s)
}

// SetRetentionMode sets series id's retention mode.
func (s *Store) SetRetentionMode(ctx context.Context, id int64, m RetentionMode) error {
	if _, err := ParseRetentionMode(string(m)); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE series SET retention = ? WHERE id = ?`, string(m), id)
		if err != nil {
			return fmt.Errorf("store: series %d: set retention: %w", id, err)
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return fmt.Errorf("series %d: %w", id, ErrNotFound)
		}
		return nil
	})
}

// CompactResult counts what Compact deleted: raw points, 1-minute and
// 1-hour buckets, quarantine rows and ingest runs.
type CompactResult struct {
	RawDeleted, MinuteDeleted, HourDeleted int64
	QuarantineDeleted, RunsDeleted         int64
}

// Compact applies the retention as of the store's clock: for every window
// series, raw points older than Raw before now are deleted (their 1-minute
// buckets stay), then 1-minute buckets older than Minute, then 1-hour
// buckets older than Hour. Archive series are left whole. It also trims the
// quarantine and run history. Each series is compacted in its own short
// transaction so that writers are not held up for long.
func (s *Store) Compact(ctx context.Context) (CompactResult, error) {
	return s.CompactAt(ctx, s.now())
}

// CompactAt is Compact as of now (an ingest run passes its own clock).
// Nothing in the data moves the horizons, and points after now (forecasts)
// are never touched.
func (s *Store) CompactAt(ctx context.Context, now time.Time) (CompactResult, error) {
	var res CompactResult
	r := s.opts.Retention
	series, err := s.ListSeries(ctx, SeriesFilter{})
	if err != nil {
		return res, err
	}
	at := ms(now)
	rawFloor := floorTo(at-r.Raw.Milliseconds(), minuteMs)
	m1Floor := floorTo(at-r.Minute.Milliseconds(), hourMs)
	hFloor := floorTo(at-r.Hour.Milliseconds(), dayMs)
	for _, x := range series {
		if x.Last.IsZero() || x.Retention == RetainArchive {
			continue
		}
		if rawFloor <= ms0(x.RawFloor) && m1Floor <= ms0(x.MinuteFloor) {
			continue
		}
		err := s.write(ctx, func(tx *sql.Tx) error {
			if rawFloor > ms0(x.RawFloor) {
				n, err := execCount(ctx, tx, `DELETE FROM points WHERE series_id = ? AND ts < ?`, x.ID, rawFloor)
				if err != nil {
					return err
				}
				res.RawDeleted += n
				if _, err := tx.ExecContext(ctx, `UPDATE series SET raw_floor_ms = ? WHERE id = ?`, rawFloor, x.ID); err != nil {
					return err
				}
			}
			if m1Floor > ms0(x.MinuteFloor) {
				n, err := deleteChunks(ctx, tx, rollMinute, x.ID, m1Floor)
				if err != nil {
					return err
				}
				res.MinuteDeleted += n
				if _, err := tx.ExecContext(ctx, `UPDATE series SET m1_floor_ms = ? WHERE id = ?`, m1Floor, x.ID); err != nil {
					return err
				}
			}
			n, err := deleteChunks(ctx, tx, rollHour, x.ID, hFloor)
			res.HourDeleted += n
			return err
		})
		if err != nil {
			return res, fmt.Errorf("store: compact series %s: %w", x.SeriesKey, err)
		}
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		n, err := execCount(ctx, tx, `DELETE FROM quarantine WHERE id <= (SELECT id FROM quarantine ORDER BY id DESC LIMIT 1 OFFSET ?)`, r.QuarantineRows)
		if err != nil {
			return err
		}
		res.QuarantineDeleted = n
		n, err = execCount(ctx, tx, `DELETE FROM ingest_runs WHERE id <= (SELECT id FROM ingest_runs ORDER BY id DESC LIMIT 1 OFFSET ?)`, r.IngestRuns)
		res.RunsDeleted = n
		return err
	})
	if err != nil {
		return res, fmt.Errorf("store: trim quarantine: %w", err)
	}
	// Hand freed pages back to the file system (auto_vacuum=INCREMENTAL);
	// without it freed pages are still reused, so the file stops growing
	// either way.
	if res.RawDeleted+res.MinuteDeleted+res.HourDeleted > 0 {
		s.wmu.Lock()
		_, err = s.db.ExecContext(ctx, `PRAGMA incremental_vacuum`)
		s.wmu.Unlock()
		if err != nil {
			return res, fmt.Errorf("store: incremental vacuum: %w", err)
		}
	}
	return res, nil
}

func ms0(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return ms(t)
}

func execCount(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	r, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// deleteChunks deletes a series' rollup rows before floor and returns the
// number of buckets they held.
func deleteChunks(ctx context.Context, tx *sql.Tx, r rollup, id, floor int64) (int64, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(slots), 0) FROM `+r.table+` WHERE series_id = ? AND ts < ?`, id, floor).Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM `+r.table+` WHERE series_id = ? AND ts < ?`, id, floor)
	return n, err
}
