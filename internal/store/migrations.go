package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema. Steps are append-only: a released
// step is never edited, a change is a new step. Each runs in its own
// transaction together with the row that records it, so a crash leaves the
// file at a whole version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations is the schema history. Times are INTEGER Unix milliseconds
// (UTC) throughout: they sort, compare and bucket with integer arithmetic and
// never depend on a driver's time format.
var migrations = []migration{
	{1, "series, points and rollups", `
CREATE TABLE series (
	id         INTEGER PRIMARY KEY,
	service    TEXT NOT NULL,
	endpoint   TEXT NOT NULL DEFAULT '',
	metric     TEXT NOT NULL,
	source     TEXT NOT NULL DEFAULT '',
	created_ms INTEGER NOT NULL,
	-- newest point ever written: retention is measured back from it, so a
	-- historical trace imported today keeps its detail.
	last_ms    INTEGER,
	-- raw points before this instant have been compacted into rollup_1m and
	-- deleted; a write below it would corrupt the rollup and is refused.
	raw_floor_ms INTEGER NOT NULL DEFAULT 0,
	m1_floor_ms  INTEGER NOT NULL DEFAULT 0,
	UNIQUE (service, endpoint, metric)
);
CREATE TABLE points (
	series_id INTEGER NOT NULL,
	ts        INTEGER NOT NULL,
	value     REAL NOT NULL,
	PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
-- Rollups are stored in chunks: one row holds the 1-minute buckets of an
-- hour (rollup_1m, ts = the hour) or the 1-hour buckets of a day
-- (rollup_1h, ts = the day, UTC), so a week of minutes is 168 rows per
-- series, not 10,080. slots counts the buckets present; data is the
-- encoding of chunk.go.
CREATE TABLE rollup_1m (
	series_id INTEGER NOT NULL,
	ts        INTEGER NOT NULL,
	slots     INTEGER NOT NULL,
	data      BLOB NOT NULL,
	PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE rollup_1h (
	series_id INTEGER NOT NULL,
	ts        INTEGER NOT NULL,
	slots     INTEGER NOT NULL,
	data      BLOB NOT NULL,
	PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
`},
	{2, "configuration items, relations, tickets, calendar events", `
CREATE TABLE cis (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	class      TEXT NOT NULL DEFAULT '',
	service    TEXT NOT NULL DEFAULT '',
	source     TEXT NOT NULL,
	attrs      TEXT NOT NULL DEFAULT '{}',
	updated_ms INTEGER NOT NULL
);
CREATE INDEX cis_service ON cis (service) WHERE service != '';
CREATE TABLE relations (
	id         TEXT PRIMARY KEY,
	parent     TEXT NOT NULL,
	child      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	type       TEXT NOT NULL DEFAULT '',
	source     TEXT NOT NULL,
	updated_ms INTEGER NOT NULL
);
CREATE INDEX relations_parent ON relations (parent);
CREATE INDEX relations_child ON relations (child);
CREATE TABLE tickets (
	id          TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	number      TEXT NOT NULL,
	source      TEXT NOT NULL,
	ci          TEXT NOT NULL DEFAULT '',
	service     TEXT NOT NULL DEFAULT '',
	summary     TEXT NOT NULL DEFAULT '',
	priority    INTEGER NOT NULL DEFAULT 0,
	state       TEXT NOT NULL DEFAULT '',
	category    TEXT NOT NULL DEFAULT '',
	-- the interval the ticket covers: an incident from opened to resolved
	-- (or closed), a change over its planned (else actual) window. end_ms is
	-- NULL while open.
	start_ms    INTEGER NOT NULL,
	end_ms      INTEGER,
	opened_ms   INTEGER,
	resolved_ms INTEGER,
	closed_ms   INTEGER,
	updated_ms  INTEGER NOT NULL,
	attrs       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX tickets_kind_start ON tickets (kind, start_ms);
CREATE TABLE events (
	calendar   TEXT NOT NULL,
	uid        TEXT NOT NULL,
	start_ms   INTEGER NOT NULL,
	end_ms     INTEGER NOT NULL,
	all_day    INTEGER NOT NULL DEFAULT 0,
	summary    TEXT NOT NULL DEFAULT '',
	categories TEXT NOT NULL DEFAULT '',
	location   TEXT NOT NULL DEFAULT '',
	services   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (calendar, uid, start_ms)
) WITHOUT ROWID;
CREATE INDEX events_start ON events (start_ms);
CREATE TABLE event_categories (
	calendar TEXT NOT NULL,
	uid      TEXT NOT NULL,
	start_ms INTEGER NOT NULL,
	category TEXT NOT NULL,
	PRIMARY KEY (category, start_ms, calendar, uid)
) WITHOUT ROWID;
`},
	{3, "ingestion bookkeeping: runs, sync state, quarantine", `
CREATE TABLE ingest_runs (
	id          INTEGER PRIMARY KEY,
	source      TEXT NOT NULL,
	args        TEXT NOT NULL DEFAULT '',
	started_ms  INTEGER NOT NULL,
	finished_ms INTEGER,
	inserted    INTEGER NOT NULL DEFAULT 0,
	updated     INTEGER NOT NULL DEFAULT 0,
	unchanged   INTEGER NOT NULL DEFAULT 0,
	quarantined INTEGER NOT NULL DEFAULT 0,
	status      TEXT NOT NULL DEFAULT 'running',
	error       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE sync_state (
	key        TEXT PRIMARY KEY,
	value      TEXT NOT NULL,
	updated_ms INTEGER NOT NULL
);
CREATE TABLE quarantine (
	id       INTEGER PRIMARY KEY,
	at_ms    INTEGER NOT NULL,
	run_id   INTEGER,
	source   TEXT NOT NULL,
	location TEXT NOT NULL DEFAULT '',
	reason   TEXT NOT NULL,
	detail   TEXT NOT NULL DEFAULT '',
	raw      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX quarantine_reason ON quarantine (reason);
`},
	{4, "pipeline runs, artifacts, executions, pushed models, lineage (issue #7)", `
CREATE TABLE pipeline_runs (
	id          TEXT PRIMARY KEY,
	pipeline    TEXT NOT NULL,
	started_ms  INTEGER NOT NULL,
	finished_ms INTEGER,
	status      TEXT NOT NULL,
	params      TEXT NOT NULL DEFAULT '{}',
	error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pipeline_runs_started ON pipeline_runs (pipeline, started_ms);
-- An artifact with the kind and digest of an existing one is that one
-- (content addressing, as ML Metadata does for TFX).
CREATE TABLE artifacts (
	id         INTEGER PRIMARY KEY,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL DEFAULT '',
	uri        TEXT NOT NULL DEFAULT '',
	digest     TEXT NOT NULL DEFAULT '',
	producer   TEXT NOT NULL DEFAULT '',
	run_id     TEXT NOT NULL DEFAULT '',
	created_ms INTEGER NOT NULL,
	props      TEXT NOT NULL DEFAULT '{}',
	payload    BLOB
);
CREATE UNIQUE INDEX artifacts_digest ON artifacts (kind, digest) WHERE digest != '';
CREATE INDEX artifacts_kind ON artifacts (kind, name, created_ms);
CREATE INDEX artifacts_run ON artifacts (run_id);
-- An execution is one component's run in a pipeline run: the lineage from
-- its input artifacts to its outputs.
CREATE TABLE executions (
	id          INTEGER PRIMARY KEY,
	run_id      TEXT NOT NULL,
	component   TEXT NOT NULL,
	fingerprint TEXT NOT NULL DEFAULT '',
	params      TEXT NOT NULL DEFAULT '{}',
	metrics     TEXT NOT NULL DEFAULT '{}',
	cached      INTEGER NOT NULL DEFAULT 0,
	status      TEXT NOT NULL,
	error       TEXT NOT NULL DEFAULT '',
	seconds     REAL NOT NULL DEFAULT 0,
	started_ms  INTEGER NOT NULL
);
CREATE INDEX executions_run ON executions (run_id, id);
CREATE INDEX executions_fingerprint ON executions (component, fingerprint);
CREATE TABLE execution_io (
	execution_id INTEGER NOT NULL,
	direction    TEXT NOT NULL, -- input or output
	name         TEXT NOT NULL,
	artifact_id  INTEGER NOT NULL,
	PRIMARY KEY (execution_id, direction, name)
) WITHOUT ROWID;
CREATE INDEX execution_io_artifact ON execution_io (artifact_id, direction);
CREATE TABLE pushed (
	id          INTEGER PRIMARY KEY,
	series      TEXT NOT NULL,
	run_id      TEXT NOT NULL DEFAULT '',
	model_id    INTEGER NOT NULL,
	model_hash  TEXT NOT NULL DEFAULT '',
	forecast_id INTEGER NOT NULL DEFAULT 0,
	scores      TEXT NOT NULL DEFAULT '{}',
	at_ms       INTEGER NOT NULL
);
CREATE INDEX pushed_series ON pushed (series, id);
-- Lineage edges beyond executions: which stored data (series:<id>,
-- events:<calendar>, tickets, …) fed which artifact (artifact:<id>).
CREATE TABLE lineage (
	src    TEXT NOT NULL,
	dst    TEXT NOT NULL,
	kind   TEXT NOT NULL,
	run_id TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (src, dst, kind)
) WITHOUT ROWID;
CREATE INDEX lineage_dst ON lineage (dst);
`},
	// Retention used to be measured back from each series' newest point, so
	// one point with a typo year (2126) aged every other point of its series
	// past every horizon. It is now measured back from the clock, and a
	// series says whether it has a horizon at all: a live series ('window')
	// keeps a sliding window, an imported historical trace ('archive') keeps
	// everything. The CSV traces of older stores were kept whole by the old
	// rule (their newest point was their own end), so they become archives.
	{5, "series retention: sliding window from the clock, or archive", `
ALTER TABLE series ADD COLUMN retention TEXT NOT NULL DEFAULT 'window';
UPDATE series SET retention = 'archive' WHERE source = 'csv';
`},
}

// SchemaVersion is the newest schema this build knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrate brings the file to SchemaVersion. A file written by a newer build
// is refused rather than guessed at.
func migrate(ctx context.Context, db *sql.DB, now time.Time) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if err := applyMigration(ctx, db, m, now); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration runs m unless the file already has it. The version is read
// inside the (immediate) transaction, so two processes opening a new file at
// once do not both apply a step.
func applyMigration(ctx context.Context, db *sql.DB, m migration, now time.Time) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if cur > SchemaVersion() {
		return fmt.Errorf("the store file has schema version %d but this lbsys knows only up to %d: use a newer lbsys (or another --store file)", cur, SchemaVersion())
	}
	if m.version <= cur {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("schema migration %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)`,
		m.version, m.name, now.UnixMilli()); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("schema migration %d (%s): %w", m.version, m.name, err)
	}
	return nil
}
