package shop

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the pure-Go "sqlite" driver
)

// sqliteStore keeps the tables in one SQLite file (modernc.org/sqlite, pure
// Go), so that several processes — the instances of `lbsys shop` runs, or a
// restarted one — share state like replicas share a database.
//
// Isolation: every Update is a BEGIN IMMEDIATE transaction. IMMEDIATE takes
// the write lock at BEGIN, so two transactions that both read then write
// cannot both read the old value (with the default DEFERRED, the second
// writer's lock upgrade fails with SQLITE_BUSY and no busy wait; see
// https://www.sqlite.org/lang_transaction.html). Writers are therefore
// serial, which makes every Update serialisable. In this process, writes go
// through a pool of one connection, so they queue in database/sql instead of
// spinning in SQLite's busy handler; across processes busy_timeout makes a
// writer wait for the lock. Reads use a separate pool of DEFERRED
// transactions, which in WAL mode (https://www.sqlite.org/wal.html) see one
// snapshot and never block the writer.
type sqliteStore struct {
	w *sql.DB // one connection, BEGIN IMMEDIATE
	r *sql.DB // readers, BEGIN DEFERRED, query_only
}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS stock (
	product_id TEXT PRIMARY KEY,
	initial    INTEGER NOT NULL,
	available  INTEGER NOT NULL,
	reserved   INTEGER NOT NULL,
	sold       INTEGER NOT NULL,
	CHECK (available >= 0 AND reserved >= 0 AND sold >= 0 AND available + reserved + sold = initial)
);
CREATE TABLE IF NOT EXISTS orders (
	order_id TEXT PRIMARY KEY,
	state    TEXT NOT NULL,
	items    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS carts (
	session TEXT PRIMARY KEY,
	lines   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
	key       TEXT PRIMARY KEY,
	charge_id TEXT NOT NULL,
	order_id  TEXT NOT NULL,
	amount    INTEGER NOT NULL,
	status    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
	seq    INTEGER PRIMARY KEY AUTOINCREMENT,
	key    TEXT NOT NULL,
	amount INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS idem (
	scope  TEXT NOT NULL,
	key    TEXT NOT NULL,
	hash   TEXT NOT NULL,
	status INTEGER NOT NULL,
	body   BLOB NOT NULL,
	PRIMARY KEY (scope, key)
);
`

// OpenSQLite opens (creating if needed) a SQLite store at path. Several
// processes may open the same file.
func OpenSQLite(path string) (Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("shop store: SQLite path %q: give a plain file path without '?' or '#'", path)
	}
	// busy_timeout first (the driver applies it before the others), so that
	// switching a shared file to WAL waits for other openers instead of
	// failing. synchronous=NORMAL is durable across process crashes in WAL
	// mode (only an OS crash can lose the last commits), which is what a
	// demo shop needs.
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("shop store: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	s := &sqliteStore{w: w}
	// Several processes may open a new file at once. Creating the tables in
	// an IMMEDIATE transaction makes the later ones wait for the first
	// (statements in autocommit mode would start as readers and fail with
	// SQLITE_BUSY when upgrading, without waiting); the retry covers the
	// switch to WAL when the connection opens, which needs the file alone.
	err = retryBusy(func() error {
		tx, err := w.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(sqliteSchema); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("shop store: create tables in %s: %w", path, err)
	}
	rq := url.Values{}
	rq.Set("_busy_timeout", "10000")
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("shop store: open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s.r = r
	return s, nil
}

// retryBusy runs f until it does not fail with SQLITE_BUSY or
// SQLITE_LOCKED, for up to about 10 seconds.
func retryBusy(f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || (se.Code()&0xff != 5 && se.Code()&0xff != 6) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sqliteStore) Update(ctx context.Context, fn func(Tx) error) error {
	return runTx(ctx, s.w, true, fn)
}

func (s *sqliteStore) View(ctx context.Context, fn func(Tx) error) error {
	return runTx(ctx, s.r, false, fn)
}

func runTx(ctx context.Context, db *sql.DB, write bool, fn func(Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("shop store: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
		if err != nil {
			tx.Rollback()
			return
		}
		if cerr := tx.Commit(); cerr != nil {
			err = fmt.Errorf("shop store: commit: %w", cerr)
		}
	}()
	return fn(&sqliteTx{tx: tx, ctx: ctx, write: write})
}

func (s *sqliteStore) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

type sqliteTx struct {
	tx    *sql.Tx
	ctx   context.Context
	write bool
}

func (t *sqliteTx) exec(q string, args ...any) error {
	if !t.write {
		return ErrReadOnly
	}
	_, err := t.tx.ExecContext(t.ctx, q, args...)
	return err
}

// row runs a single-row query; found is false on sql.ErrNoRows.
func (t *sqliteTx) row(q string, args []any, dest ...any) (bool, error) {
	err := t.tx.QueryRowContext(t.ctx, q, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (t *sqliteTx) Stock(id string) (Stock, bool, error) {
	s := Stock{ProductID: id}
	ok, err := t.row(`SELECT initial, available, reserved, sold FROM stock WHERE product_id = ?`, []any{id},
		&s.Initial, &s.Available, &s.Reserved, &s.Sold)
	return s, ok, err
}

func (t *sqliteTx) PutStock(s Stock) error {
	if !s.valid() {
		return fmt.Errorf("%w: %+v", errInvariant, s)
	}
	return t.exec(`INSERT INTO stock (product_id, initial, available, reserved, sold) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (product_id) DO UPDATE SET initial = excluded.initial, available = excluded.available,
		reserved = excluded.reserved, sold = excluded.sold`,
		s.ProductID, s.Initial, s.Available, s.Reserved, s.Sold)
}

func (t *sqliteTx) StockTotals() (StockTotals, error) {
	var tot StockTotals
	_, err := t.row(`SELECT COUNT(*), COALESCE(SUM(initial), 0), COALESCE(SUM(available), 0),
		COALESCE(SUM(reserved), 0), COALESCE(SUM(sold), 0) FROM stock`, nil,
		&tot.Products, &tot.Initial, &tot.Available, &tot.Reserved, &tot.Sold)
	return tot, err
}

func (t *sqliteTx) Order(id string) (Order, bool, error) {
	o := Order{ID: id}
	var items string
	ok, err := t.row(`SELECT state, items FROM orders WHERE order_id = ?`, []any{id}, &o.State, &items)
	if ok {
		err = json.Unmarshal([]byte(items), &o.Items)
	}
	return o, ok, err
}

func (t *sqliteTx) PutOrder(o Order) error {
	items, err := json.Marshal(o.Items)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO orders (order_id, state, items) VALUES (?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, items = excluded.items`, o.ID, o.State, string(items))
}

func (t *sqliteTx) Cart(session string) ([]CartLine, error) {
	var lines string
	ok, err := t.row(`SELECT lines FROM carts WHERE session = ?`, []any{session}, &lines)
	if !ok || err != nil {
		return nil, err
	}
	var out []CartLine
	return out, json.Unmarshal([]byte(lines), &out)
}

func (t *sqliteTx) PutCart(session string, lines []CartLine) error {
	if len(lines) == 0 {
		return t.exec(`DELETE FROM carts WHERE session = ?`, session)
	}
	b, err := json.Marshal(lines)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO carts (session, lines) VALUES (?, ?)
		ON CONFLICT (session) DO UPDATE SET lines = excluded.lines`, session, string(b))
}

func (t *sqliteTx) CartCount() (int64, error) {
	var n int64
	_, err := t.row(`SELECT COUNT(*) FROM carts`, nil, &n)
	return n, err
}

func (t *sqliteTx) Charge(key string) (Charge, bool, error) {
	c := Charge{Key: key}
	ok, err := t.row(`SELECT charge_id, order_id, amount, status FROM charges WHERE key = ?`, []any{key},
		&c.ID, &c.OrderID, &c.AmountCents, &c.Status)
	return c, ok, err
}

func (t *sqliteTx) PutCharge(c Charge) error {
	return t.exec(`INSERT INTO charges (key, charge_id, order_id, amount, status) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET charge_id = excluded.charge_id, order_id = excluded.order_id,
		amount = excluded.amount, status = excluded.status`, c.Key, c.ID, c.OrderID, c.AmountCents, c.Status)
}

func (t *sqliteTx) AddLedger(key string, cents int64) error {
	return t.exec(`INSERT INTO ledger (key, amount) VALUES (?, ?)`, key, cents)
}

func (t *sqliteTx) PaymentTotals() (PaymentTotals, error) {
	var p PaymentTotals
	if _, err := t.row(`SELECT COUNT(*), COALESCE(SUM(amount), 0), COUNT(DISTINCT key) FROM ledger`, nil,
		&p.Charges, &p.CapturedCents, &p.DistinctKeys); err != nil {
		return p, err
	}
	_, err := t.row(`SELECT COALESCE(SUM(status = ?), 0), COALESCE(SUM(status = ?), 0) FROM charges`,
		[]any{ChargeDeclined, ChargeVoided}, &p.Declined, &p.Voided)
	return p, err
}

func (t *sqliteTx) Idem(scope, key string) (IdemRecord, bool, error) {
	var r IdemRecord
	ok, err := t.row(`SELECT hash, status, body FROM idem WHERE scope = ? AND key = ?`, []any{scope, key},
		&r.Hash, &r.Status, &r.Body)
	return r, ok, err
}

func (t *sqliteTx) PutIdem(scope, key string, r IdemRecord) error {
	body := r.Body
	if body == nil {
		body = []byte{}
	}
	return t.exec(`INSERT INTO idem (scope, key, hash, status, body) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (scope, key) DO UPDATE SET hash = excluded.hash, status = excluded.status, body = excluded.body`,
		scope, key, r.Hash, r.Status, body)
}

func (t *sqliteTx) IdemCount(scope string) (map[int]int64, error) {
	rows, err := t.tx.QueryContext(t.ctx, `SELECT status, COUNT(*) FROM idem WHERE scope = ? GROUP BY status`, scope)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]int64{}
	for rows.Next() {
		var st int
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
