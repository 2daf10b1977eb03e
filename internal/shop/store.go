package shop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Store is the state the instances of a group share, like replicas in front
// of one database. Business rules are written once, in the service files,
// against Tx; a Store only has to make Update atomic and isolated. Two
// implementations: NewMemStore (a mutex) and OpenSQLite (a file shared by
// processes, BEGIN IMMEDIATE transactions).
type Store interface {
	// Update runs fn in one serialisable read-write transaction. If fn (or
	// the commit) fails, nothing fn wrote is kept.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction that sees one consistent
	// state; writes fail with ErrReadOnly.
	View(ctx context.Context, fn func(Tx) error) error
	// Close releases the store. Only its opener closes it.
	Close() error
}

// ErrReadOnly is returned by a Tx write inside View.
var ErrReadOnly = errors.New("shop store: write in a read-only transaction")

// errInvariant is returned when a write would break a stock invariant; the
// transaction is rolled back, so a bug cannot corrupt stored state.
var errInvariant = errors.New("shop store: stock invariant violated")

// Tx is one transaction's view of the shop's tables. Getters report whether
// the row exists. Puts insert or replace whole rows.
type Tx interface {
	// Stock reads a product's stock row.
	Stock(productID string) (Stock, bool, error)
	// PutStock writes a stock row; it fails with an error wrapping
	// errInvariant, keeping nothing, if the row breaks the invariant.
	PutStock(Stock) error
	// StockTotals sums all stock rows.
	StockTotals() (StockTotals, error)

	// Order reads a reservation.
	Order(orderID string) (Order, bool, error)
	// PutOrder writes a reservation.
	PutOrder(Order) error

	// Cart reads a session's cart lines (none if it has no cart).
	Cart(session string) ([]CartLine, error)
	// PutCart replaces the session's cart; no lines deletes it.
	PutCart(session string, lines []CartLine) error
	// CartCount counts the non-empty carts.
	CartCount() (int64, error)

	// Charge reads the charge of an idempotency key.
	Charge(key string) (Charge, bool, error)
	// PutCharge writes the charge of a key.
	PutCharge(Charge) error
	// AddLedger appends one capture to the payment ledger. The ledger is
	// append-only and separate from the charges table so that a double
	// charge would show up as two ledger rows for one key.
	AddLedger(key string, cents int64) error
	// PaymentTotals summarises the ledger and the charges.
	PaymentTotals() (PaymentTotals, error)

	// Idem reads the stored answer of a key within a scope (an endpoint).
	Idem(scope, key string) (IdemRecord, bool, error)
	// PutIdem stores the answer of a key within a scope.
	PutIdem(scope, key string, r IdemRecord) error
	// IdemCount counts a scope's stored answers by status.
	IdemCount(scope string) (map[int]int64, error)
}

// Stock is one product's inventory. Invariant: every count ≥ 0 and
// Available + Reserved + Sold = Initial; both stores refuse a write that
// breaks it.
type Stock struct {
	ProductID string
	Initial   int64
	Available int64
	Reserved  int64
	Sold      int64
}

func (s Stock) valid() bool {
	return s.Available >= 0 && s.Reserved >= 0 && s.Sold >= 0 && s.Available+s.Reserved+s.Sold == s.Initial
}

// StockTotals sums Stock over all products.
type StockTotals struct {
	Products  int64
	Initial   int64
	Available int64
	Reserved  int64
	Sold      int64
}

// Order states of an inventory reservation.
const (
	OrderReserved  = "reserved"
	OrderCommitted = "committed"
	OrderReleased  = "released"
)

// Order is an inventory reservation: reserved, then either committed (the
// units are sold) or released (they return to available); both are final.
type Order struct {
	ID    string
	State string // OrderReserved, OrderCommitted or OrderReleased
	Items []Item // one per product, quantities summed
}

// Item is a quantity of one product.
type Item struct {
	ProductID string `json:"product_id"`
	Qty       int64  `json:"qty"`
}

// CartLine is one product in a cart, at the price it had when added.
type CartLine struct {
	ProductID  string `json:"product_id"`
	Qty        int64  `json:"qty"`
	PriceCents int64  `json:"price_cents"`
}

// Charge statuses.
const (
	ChargeCaptured = "captured"
	ChargeDeclined = "declined"
	ChargeVoided   = "voided"
)

// Charge is the payment outcome of one idempotency key. Voided means the
// key was voided before any charge arrived: no charge with it can ever be
// captured.
type Charge struct {
	Key         string `json:"key"`                 // the charge request's Idempotency-Key
	ID          string `json:"charge_id,omitempty"` // set when captured
	OrderID     string `json:"order_id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
	Status      string `json:"status"` // ChargeCaptured, ChargeDeclined or ChargeVoided
}

// PaymentTotals summarises the ledger and the charges table.
type PaymentTotals struct {
	Charges       int64 // ledger rows (captures executed)
	CapturedCents int64
	DistinctKeys  int64 // distinct keys in the ledger
	Declined      int64
	Voided        int64
}

// IdemRecord is the first answer given to an idempotency key, replayed for
// every repeat. Hash identifies the request it answered, so that reusing a
// key for a different request is detected (422).
type IdemRecord struct {
	Hash   string // fingerprint of the request (see requestHash)
	Status int    // HTTP status of the first answer
	Body   []byte // its body
}

// answer is an HTTP answer computed inside a transaction.
type answer struct {
	Status int
	Body   []byte
}

// idempotent runs do at most once per (scope, key) and stores its answer:
// a repeat of the same request gets the stored answer back (replayed true),
// the same key with a different request gets 422. It must run inside
// Update, so that check, work and record are one atomic step even when
// duplicates arrive concurrently on different instances. Answers of 5xx
// are not stored: nothing was done, and a retry should really retry. With
// an empty key do simply runs.
func idempotent(tx Tx, scope, key, hash string, do func() (answer, error)) (rep answer, replayed bool, err error) {
	if key != "" {
		rec, ok, err := tx.Idem(scope, key)
		if err != nil {
			return answer{}, false, err
		}
		if ok {
			if rec.Hash != hash {
				return jsonReply(422, errorBody{Error: "idempotency_key_reused", Message: "this Idempotency-Key was used for a different request; use a new key"}), true, nil
			}
			return answer{Status: rec.Status, Body: rec.Body}, true, nil
		}
	}
	rep, err = do()
	if err != nil || key == "" || rep.Status >= 500 {
		return rep, false, err
	}
	return rep, false, tx.PutIdem(scope, key, IdemRecord{Hash: hash, Status: rep.Status, Body: rep.Body})
}

// requestHash fingerprints a request for idempotency: its parts, each
// length-prefixed so that ("ab","c") and ("a","bc") differ.
func requestHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// seedStock creates the stock rows of products that have none, so that an
// existing SQLite file keeps its state across restarts.
func seedStock(ctx context.Context, st Store, products []Product, units int64) error {
	return st.Update(ctx, func(tx Tx) error {
		for _, p := range products {
			_, ok, err := tx.Stock(p.ID)
			if err != nil {
				return err
			}
			if !ok {
				if err := tx.PutStock(Stock{ProductID: p.ID, Initial: units, Available: units}); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
