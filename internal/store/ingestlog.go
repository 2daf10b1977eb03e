package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Reason says why a row was quarantined. The set is closed so that status
// output and dashboards can count by it; Detail carries the specifics.
type Reason string

// Quarantine reasons (docs/ingest.md explains each and what to do).
const (
	// ReasonMissingField: a required field is absent or empty.
	ReasonMissingField Reason = "missing_field"
	// ReasonNotANumber: a value that must be numeric is not.
	ReasonNotANumber Reason = "not_a_number"
	// ReasonNegative: a count (requests, errors, bytes, …) is below zero.
	ReasonNegative Reason = "negative_count"
	// ReasonNotFinite: NaN or ±Inf.
	ReasonNotFinite Reason = "not_finite"
	// ReasonDuplicateTimestamp: a second value for a series at a time this
	// input already gave (the first one is kept).
	ReasonDuplicateTimestamp Reason = "duplicate_timestamp"
	// ReasonOutOfOrder: a time earlier than the previous one of the same
	// series in the same input.
	ReasonOutOfOrder Reason = "out_of_order"
	// ReasonUnparseableTime: a time that cannot be read.
	ReasonUnparseableTime Reason = "unparseable_time"
	// ReasonAmbiguousTime: a local time that names two instants (the hour
	// repeated when daylight saving ends) or none (the hour skipped when it
	// starts), or a local time with no time zone to read it in.
	ReasonAmbiguousTime Reason = "ambiguous_time"
	// ReasonUnknownTimeZone: a TZID or --tz that is not an IANA zone.
	ReasonUnknownTimeZone Reason = "unknown_time_zone"
	// ReasonUnknownReference: the row points at something the store does
	// not have (a CI, an entity).
	ReasonUnknownReference Reason = "unknown_reference"
	// ReasonDuplicateID: a second record with an ID this input already
	// gave.
	ReasonDuplicateID Reason = "duplicate_id"
	// ReasonMalformed: the record itself cannot be decoded (bad JSON line,
	// bad YAML document, bad iCalendar component, bad CSV quoting).
	ReasonMalformed Reason = "malformed"
	// ReasonInvalidValue: a field is readable but not acceptable (an entity
	// reference without a kind, an RRULE that does not parse, …).
	ReasonInvalidValue Reason = "invalid_value"
	// ReasonTooOld: a point older than its series' raw retention (already
	// compacted into rollups); writing it would corrupt them.
	ReasonTooOld Reason = "too_old"
	// ReasonFutureTime: a time further ahead of the ingest run's clock than
	// the run allows (a day by default): a typo year (2126) or a source
	// with a broken clock. Such a time would otherwise become the series'
	// newest point, the importer's "read up to here" watermark, or an
	// incident that never ends.
	ReasonFutureTime Reason = "future_time"
)

// Reasons lists every reason, in the order status shows them.
var Reasons = []Reason{ReasonMissingField, ReasonNotANumber, ReasonNegative, ReasonNotFinite,
	ReasonDuplicateTimestamp, ReasonOutOfOrder, ReasonUnparseableTime, ReasonAmbiguousTime,
	ReasonUnknownTimeZone, ReasonUnknownReference, ReasonDuplicateID, ReasonMalformed,
	ReasonInvalidValue, ReasonTooOld, ReasonFutureTime}

// Quarantined is a row that failed validation, kept with its reason so that
// nothing is dropped silently.
type Quarantined struct {
	ID    int64
	At    time.Time
	RunID int64
	// Source is the importer (csv, servicenow, …).
	Source string
	// Location says where the row was: file:line, table/sys_id, URL, …
	Location string
	Reason   Reason
	Detail   string
	// Raw is the row as read (truncated to 4 KiB).
	Raw string
}

const maxRaw = 4096

// Quarantine stores rows that failed validation.
func (s *Store) Quarantine(ctx context.Context, rows []Quarantined) error {
	if len(rows) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO quarantine (at_ms, run_id, source, location, reason, detail, raw) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, q := range rows {
			at := q.At
			if at.IsZero() {
				at = s.now()
			}
			raw := q.Raw
			if len(raw) > maxRaw {
				raw = raw[:maxRaw] + "…"
			}
			var run any
			if q.RunID != 0 {
				run = q.RunID
			}
			if _, err := st.ExecContext(ctx, ms(at), run, q.Source, q.Location, string(q.Reason), q.Detail, raw); err != nil {
				return fmt.Errorf("store: quarantine: %w", err)
			}
		}
		return nil
	})
}

// LatestQuarantined returns the newest n quarantined rows, newest first.
func (s *Store) LatestQuarantined(ctx context.Context, n int) ([]Quarantined, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, at_ms, COALESCE(run_id, 0), source, location, reason, detail, raw
		FROM quarantine ORDER BY id DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("store: quarantine: %w", err)
	}
	defer rows.Close()
	var out []Quarantined
	for rows.Next() {
		var q Quarantined
		var at int64
		var reason string
		if err := rows.Scan(&q.ID, &at, &q.RunID, &q.Source, &q.Location, &reason, &q.Detail, &q.Raw); err != nil {
			return nil, err
		}
		q.At, q.Reason = fromMs(at), Reason(reason)
		out = append(out, q)
	}
	return out, rows.Err()
}

// QuarantineCount is the number of quarantined rows for one source and
// reason.
type QuarantineCount struct {
	Source string
	Reason Reason
	Count  int64
}

// QuarantineCounts counts quarantined rows by source and reason.
func (s *Store) QuarantineCounts(ctx context.Context) ([]QuarantineCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT source, reason, count(*) FROM quarantine GROUP BY source, reason ORDER BY source, reason`)
	if err != nil {
		return nil, fmt.Errorf("store: quarantine counts: %w", err)
	}
	defer rows.Close()
	var out []QuarantineCount
	for rows.Next() {
		var c QuarantineCount
		var reason string
		if err := rows.Scan(&c.Source, &reason, &c.Count); err != nil {
			return nil, err
		}
		c.Reason = Reason(reason)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Counts are what one ingestion did.
type Counts struct {
	// Inserted new rows; Updated rows that changed; Unchanged rows read
	// again with the same content (idempotent re-reads); Quarantined rows
	// refused at the door.
	Inserted, Updated, Unchanged, Quarantined int64
}

// Add accumulates o into c.
func (c *Counts) Add(o Counts) {
	c.Inserted += o.Inserted
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Quarantined += o.Quarantined
}

// IngestRun is one run of an importer.
type IngestRun struct {
	ID       int64
	Source   string
	Args     string
	Started  time.Time
	Finished time.Time // zero while running
	Counts
	// Status is running, ok, failed or interrupted.
	Status string
	Error  string
}

// BeginIngestRun records the start of a run and returns its id.
func (s *Store) BeginIngestRun(ctx context.Context, source, args string) (int64, error) {
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO ingest_runs (source, args, started_ms) VALUES (?, ?, ?)`, source, args, ms(s.now()))
		if err != nil {
			return fmt.Errorf("store: begin ingest run: %w", err)
		}
		id, err = r.LastInsertId()
		return err
	})
	return id, err
}

// UpdateIngestRun records a run's progress (its counts so far); status
// "running" keeps it open, anything else finishes it.
func (s *Store) UpdateIngestRun(ctx context.Context, id int64, c Counts, status, errMsg string) error {
	var fin any
	if status != "running" {
		fin = ms(s.now())
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE ingest_runs SET inserted = ?, updated = ?, unchanged = ?, quarantined = ?,
			status = ?, error = ?, finished_ms = ? WHERE id = ?`, c.Inserted, c.Updated, c.Unchanged, c.Quarantined, status, errMsg, fin, id)
		return err
	})
}

// IngestRuns returns the newest n runs, newest first.
func (s *Store) IngestRuns(ctx context.Context, n int) ([]IngestRun, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, source, args, started_ms, finished_ms, inserted, updated, unchanged,
		quarantined, status, error FROM ingest_runs ORDER BY id DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("store: ingest runs: %w", err)
	}
	defer rows.Close()
	var out []IngestRun
	for rows.Next() {
		var r IngestRun
		var started int64
		var fin sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Source, &r.Args, &started, &fin, &r.Inserted, &r.Updated, &r.Unchanged,
			&r.Quarantined, &r.Status, &r.Error); err != nil {
			return nil, err
		}
		r.Started, r.Finished = fromMs(started), fromNullMs(fin)
		out = append(out, r)
	}
	return out, rows.Err()
}

// SyncState returns the value stored under key ("" and false when unset).
// Importers keep their watermarks here (ServiceNow's newest sys_updated_on
// per table, the telemetry file offset, …).
func (s *Store) SyncState(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM sync_state WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: sync state %s: %w", key, err)
	}
	return v, true, nil
}

// SetSyncState stores value under key.
func (s *Store) SetSyncState(ctx context.Context, key, value string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sync_state (key, value, updated_ms) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms`, key, value, ms(s.now()))
		return err
	})
}

// DeleteSyncState removes key (a full resync).
func (s *Store) DeleteSyncState(ctx context.Context, key string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sync_state WHERE key = ?`, key)
		return err
	})
}

// Stats are row counts for status output.
type Stats struct {
	Series, RawPoints, MinutePoints, HourPoints int64
	CIs, Relations, Incidents, Changes, Events  int64
	Quarantined                                 int64
	PipelineRuns, Artifacts                     int64
	SchemaVersion                               int
	FileBytes                                   int64
}

// Stats counts the rows of every table.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	for _, x := range []struct {
		q   string
		dst *int64
	}{
		{`SELECT count(*) FROM series`, &st.Series},
		{`SELECT count(*) FROM points`, &st.RawPoints},
		{`SELECT COALESCE(SUM(slots), 0) FROM rollup_1m`, &st.MinutePoints},
		{`SELECT COALESCE(SUM(slots), 0) FROM rollup_1h`, &st.HourPoints},
		{`SELECT count(*) FROM cis`, &st.CIs},
		{`SELECT count(*) FROM relations`, &st.Relations},
		{`SELECT count(*) FROM tickets WHERE kind = 'incident'`, &st.Incidents},
		{`SELECT count(*) FROM tickets WHERE kind = 'change'`, &st.Changes},
		{`SELECT count(*) FROM events`, &st.Events},
		{`SELECT count(*) FROM quarantine`, &st.Quarantined},
		{`SELECT count(*) FROM pipeline_runs`, &st.PipelineRuns},
		{`SELECT count(*) FROM artifacts`, &st.Artifacts},
		{`SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`, &st.FileBytes},
	} {
		if err := s.db.QueryRowContext(ctx, x.q).Scan(x.dst); err != nil {
			return st, fmt.Errorf("store: stats: %w", err)
		}
	}
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&st.SchemaVersion); err != nil {
		return st, err
	}
	return st, nil
}
