package shop

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// memStore keeps the tables in maps behind one RWMutex: Update holds the
// write lock for the whole transaction (so transactions are serial, hence
// serialisable), View the read lock. Every write records how to undo itself,
// and a failed Update undoes them in reverse order, so "nothing is kept on
// error" holds here as it does in SQLite.
type memStore struct {
	mu       sync.RWMutex
	stock    map[string]Stock
	orders   map[string]Order
	carts    map[string][]CartLine
	charges  map[string]Charge
	ledger   []ledgerEntry
	idem     map[idemKey]IdemRecord
	declined int64
	voided   int64
}

type ledgerEntry struct {
	key   string
	cents int64
}

type idemKey struct{ scope, key string }

// NewMemStore returns an empty in-memory Store. It lives as long as the
// process: share it between groups through Config.Store.
func NewMemStore() Store {
	return &memStore{
		stock:   map[string]Stock{},
		orders:  map[string]Order{},
		carts:   map[string][]CartLine{},
		charges: map[string]Charge{},
		idem:    map[idemKey]IdemRecord{},
	}
}

func (m *memStore) Update(_ context.Context, fn func(Tx) error) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := &memTx{m: m, write: true}
	defer func() {
		if r := recover(); r != nil {
			tx.rollback()
			panic(r)
		}
		if err != nil {
			tx.rollback()
		}
	}()
	return fn(tx)
}

func (m *memStore) View(_ context.Context, fn func(Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(&memTx{m: m})
}

func (m *memStore) Close() error { return nil }

type memTx struct {
	m     *memStore
	write bool
	undo  []func()
}

func (t *memTx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	t.undo = nil
}

func (t *memTx) writable() error {
	if !t.write {
		return ErrReadOnly
	}
	return nil
}

// remember records how to restore key in mp to its current state.
func remember[K comparable, V any](t *memTx, mp map[K]V, k K) {
	old, had := mp[k]
	t.undo = append(t.undo, func() {
		if had {
			mp[k] = old
		} else {
			delete(mp, k)
		}
	})
}

func (t *memTx) Stock(id string) (Stock, bool, error) {
	s, ok := t.m.stock[id]
	return s, ok, nil
}

func (t *memTx) PutStock(s Stock) error {
	if err := t.writable(); err != nil {
		return err
	}
	if !s.valid() {
		return fmt.Errorf("%w: %+v", errInvariant, s)
	}
	remember(t, t.m.stock, s.ProductID)
	t.m.stock[s.ProductID] = s
	return nil
}

func (t *memTx) StockTotals() (StockTotals, error) {
	var tot StockTotals
	for _, s := range t.m.stock {
		tot.Products++
		tot.Initial += s.Initial
		tot.Available += s.Available
		tot.Reserved += s.Reserved
		tot.Sold += s.Sold
	}
	return tot, nil
}

func (t *memTx) Order(id string) (Order, bool, error) {
	o, ok := t.m.orders[id]
	o.Items = slices.Clone(o.Items)
	return o, ok, nil
}

func (t *memTx) PutOrder(o Order) error {
	if err := t.writable(); err != nil {
		return err
	}
	remember(t, t.m.orders, o.ID)
	o.Items = slices.Clone(o.Items)
	t.m.orders[o.ID] = o
	return nil
}

func (t *memTx) Cart(session string) ([]CartLine, error) {
	return slices.Clone(t.m.carts[session]), nil
}

func (t *memTx) PutCart(session string, lines []CartLine) error {
	if err := t.writable(); err != nil {
		return err
	}
	remember(t, t.m.carts, session)
	if len(lines) == 0 {
		delete(t.m.carts, session)
		return nil
	}
	t.m.carts[session] = slices.Clone(lines)
	return nil
}

func (t *memTx) CartCount() (int64, error) { return int64(len(t.m.carts)), nil }

func (t *memTx) Charge(key string) (Charge, bool, error) {
	c, ok := t.m.charges[key]
	return c, ok, nil
}

func (t *memTx) PutCharge(c Charge) error {
	if err := t.writable(); err != nil {
		return err
	}
	old, had := t.m.charges[c.Key]
	remember(t, t.m.charges, c.Key)
	t.m.charges[c.Key] = c
	// Keep the per-status counters in step (and undoable).
	d, v := t.m.declined, t.m.voided
	t.undo = append(t.undo, func() { t.m.declined, t.m.voided = d, v })
	if had {
		t.count(old.Status, -1)
	}
	t.count(c.Status, 1)
	return nil
}

func (t *memTx) count(status string, n int64) {
	switch status {
	case ChargeDeclined:
		t.m.declined += n
	case ChargeVoided:
		t.m.voided += n
	}
}

func (t *memTx) AddLedger(key string, cents int64) error {
	if err := t.writable(); err != nil {
		return err
	}
	n := len(t.m.ledger)
	t.undo = append(t.undo, func() { t.m.ledger = t.m.ledger[:n] })
	t.m.ledger = append(t.m.ledger, ledgerEntry{key, cents})
	return nil
}

func (t *memTx) PaymentTotals() (PaymentTotals, error) {
	p := PaymentTotals{Declined: t.m.declined, Voided: t.m.voided}
	keys := make(map[string]struct{}, len(t.m.ledger))
	for _, e := range t.m.ledger {
		p.Charges++
		p.CapturedCents += e.cents
		keys[e.key] = struct{}{}
	}
	p.DistinctKeys = int64(len(keys))
	return p, nil
}

func (t *memTx) Idem(scope, key string) (IdemRecord, bool, error) {
	r, ok := t.m.idem[idemKey{scope, key}]
	return r, ok, nil
}

func (t *memTx) PutIdem(scope, key string, r IdemRecord) error {
	if err := t.writable(); err != nil {
		return err
	}
	k := idemKey{scope, key}
	remember(t, t.m.idem, k)
	r.Body = slices.Clone(r.Body)
	t.m.idem[k] = r
	return nil
}

func (t *memTx) IdemCount(scope string) (map[int]int64, error) {
	out := map[int]int64{}
	for k, r := range t.m.idem {
		if k.scope == scope {
			out[r.Status]++
		}
	}
	return out, nil
}
