// Package store is lbsys's embedded store: one SQLite file (modernc.org/sqlite,
// pure Go) holding what the forecasting pipeline learns from and records.
//
//   - time series: a series is (service, endpoint, metric); points are
//     (Unix ms, float64). Raw points are rolled up into 1-minute and 1-hour
//     buckets as they are written, and retention (Compact) deletes raw and
//     1-minute detail that has aged past its horizon, so a long-running
//     ingestion does not grow the file without bound;
//   - configuration items (CIs) and relations, with a dependency graph;
//   - incident and change tickets; calendar events;
//   - ingestion bookkeeping: runs, sync watermarks and quarantined rows with
//     their reason;
//   - pipeline runs, artifacts and lineage edges (issue #7).
//
// The schema is versioned in code (migrations.go) and applied on Open.
//
// Concurrency: a Store is safe for concurrent use. Writers are serialized
// inside the process; other processes may open the same file (WAL mode:
// readers never block the writer, a second writer waits up to the busy
// timeout).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned by lookups of a single item that does not exist.
var ErrNotFound = errors.New("not found")

// Options tune a store. The zero value gives the defaults.
type Options struct {
	// Retention of each resolution; zero fields take DefaultRetention's.
	Retention Retention
	// Now is the store's clock: bookkeeping timestamps (ingest runs,
	// quarantine rows, created times) and the instant retention is measured
	// back from. Default time.Now.
	Now func() time.Time
	// BusyTimeout is how long a writer waits for another process holding
	// the write lock. Default 10s.
	BusyTimeout time.Duration
	// ReadConns bounds concurrent readers (RangeMany fans out over them).
	// Default 4.
	ReadConns int
}

// Store is an open store file.
type Store struct {
	db   *sql.DB
	path string
	opts Options
	now  func() time.Time

	// wmu serializes write transactions within the process, so they queue
	// here instead of spinning on SQLITE_BUSY.
	wmu sync.Mutex

	seriesMu sync.RWMutex
	seriesID map[SeriesKey]int64
}

// Open opens (creating if needed) the store file at path and applies pending
// schema migrations.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty path: pass --store FILE (for example lbsys.db)")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	opts.Retention = opts.Retention.withDefaults()
	if err := opts.Retention.validate(); err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("store %s: directory %s does not exist", path, dir)
		}
	}
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(opts.BusyTimeout.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	// Only takes effect on a new file: Compact can then return freed pages.
	q.Set("_auto_vacuum", "INCREMENTAL")
	// Keep the write-ahead log from staying large after a bulk import.
	q.Add("_pragma", "journal_size_limit(67108864)")
	// Every transaction here writes; taking the write lock at BEGIN means a
	// busy file is waited on at once instead of failing at the first write.
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	db.SetMaxOpenConns(opts.ReadConns + 1)
	db.SetMaxIdleConns(opts.ReadConns + 1)
	db.SetConnMaxIdleTime(0)
	s := &Store{db: db, path: path, opts: opts, now: opts.Now, seriesID: map[SeriesKey]int64{}}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := migrate(ctx, db, s.now()); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Now reads the store's clock (Options.Now): the time retention is measured
// back from, and the clock an ingest run judges "in the future" by.
func (s *Store) Now() time.Time { return s.now() }

// Retention returns the store's effective retention.
func (s *Store) Retention() Retention { return s.opts.Retention }

// write runs fn in one write transaction, serialized with the process's
// other writers.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// nullMs maps the zero time to NULL.
func nullMs(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMs(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMs(v.Int64)
}
