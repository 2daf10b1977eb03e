package shop

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// storeKinds runs a test against both stores.
func storeKinds(t *testing.T, f func(t *testing.T, open func() Store)) {
	t.Run("memory", func(t *testing.T) {
		st := NewMemStore()
		f(t, func() Store { return st })
	})
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "shop.db")
		f(t, func() Store {
			st, err := OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

func TestStoreTransactions(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func() Store) {
		ctx := context.Background()
		st := open()
		products := newCatalogData(3).list
		if err := seedStock(ctx, st, products, 10); err != nil {
			t.Fatal(err)
		}
		totals := func() StockTotals {
			var tot StockTotals
			if err := st.View(ctx, func(tx Tx) (err error) { tot, err = tx.StockTotals(); return err }); err != nil {
				t.Fatal(err)
			}
			return tot
		}
		if got := totals(); got != (StockTotals{Products: 3, Initial: 30, Available: 30}) {
			t.Fatalf("seeded totals %+v", got)
		}

		// A failed transaction keeps nothing it wrote.
		boom := errors.New("boom")
		err := st.Update(ctx, func(tx Tx) error {
			s, _, _ := tx.Stock("p0001")
			s.Available, s.Reserved = 5, 5
			must(t, tx.PutStock(s))
			must(t, tx.PutOrder(Order{ID: "o1", State: OrderReserved, Items: []Item{{"p0001", 5}}}))
			must(t, tx.PutCart("s1", []CartLine{{"p0001", 1, 100}}))
			must(t, tx.PutCharge(Charge{Key: "k", ID: "c", OrderID: "o1", AmountCents: 9, Status: ChargeDeclined}))
			must(t, tx.AddLedger("k", 9))
			must(t, tx.PutIdem("s", "k", IdemRecord{Hash: "h", Status: 200, Body: []byte("x")}))
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update returned %v, want boom", err)
		}
		st.View(ctx, func(tx Tx) error {
			if s, _, _ := tx.Stock("p0001"); s.Available != 10 {
				t.Errorf("rolled-back stock kept: %+v", s)
			}
			if _, ok, _ := tx.Order("o1"); ok {
				t.Error("rolled-back order kept")
			}
			if n, _ := tx.CartCount(); n != 0 {
				t.Error("rolled-back cart kept")
			}
			if _, ok, _ := tx.Charge("k"); ok {
				t.Error("rolled-back charge kept")
			}
			if p, _ := tx.PaymentTotals(); p != (PaymentTotals{}) {
				t.Errorf("rolled-back payment totals %+v", p)
			}
			if _, ok, _ := tx.Idem("s", "k"); ok {
				t.Error("rolled-back idempotency record kept")
			}
			return nil
		})

		// The invariant is enforced by the store.
		err = st.Update(ctx, func(tx Tx) error {
			return tx.PutStock(Stock{ProductID: "p0002", Initial: 10, Available: 11, Reserved: -1})
		})
		if !errors.Is(err, errInvariant) {
			t.Errorf("negative reserved accepted: %v", err)
		}
		// Views do not write.
		if err := st.View(ctx, func(tx Tx) error { return tx.PutCart("s", []CartLine{{"p0001", 1, 1}}) }); !errors.Is(err, ErrReadOnly) {
			t.Errorf("write in View: %v", err)
		}

		// Rows round-trip.
		must(t, st.Update(ctx, func(tx Tx) error {
			must(t, tx.PutOrder(Order{ID: "o2", State: OrderCommitted, Items: []Item{{"p0001", 2}, {"p0003", 1}}}))
			must(t, tx.PutCart("s2", []CartLine{{"p0002", 3, 250}}))
			must(t, tx.PutCharge(Charge{Key: "k1", ID: "c1", OrderID: "o2", AmountCents: 500, Status: ChargeCaptured}))
			must(t, tx.AddLedger("k1", 500))
			must(t, tx.PutCharge(Charge{Key: "k2", Status: ChargeVoided}))
			must(t, tx.PutCharge(Charge{Key: "k3", OrderID: "o3", AmountCents: 7, Status: ChargeDeclined}))
			return nil
		}))
		st.View(ctx, func(tx Tx) error {
			if o, _, _ := tx.Order("o2"); o.State != OrderCommitted || len(o.Items) != 2 || o.Items[1] != (Item{"p0003", 1}) {
				t.Errorf("order %+v", o)
			}
			if c, _ := tx.Cart("s2"); len(c) != 1 || c[0] != (CartLine{"p0002", 3, 250}) {
				t.Errorf("cart %+v", c)
			}
			if c, ok, _ := tx.Charge("k1"); !ok || c.ID != "c1" || c.AmountCents != 500 || c.Status != ChargeCaptured {
				t.Errorf("charge %+v", c)
			}
			if p, _ := tx.PaymentTotals(); p != (PaymentTotals{Charges: 1, CapturedCents: 500, DistinctKeys: 1, Declined: 1, Voided: 1}) {
				t.Errorf("payment totals %+v", p)
			}
			return nil
		})
		must(t, st.Update(ctx, func(tx Tx) error { return tx.PutCart("s2", nil) }))
		st.View(ctx, func(tx Tx) error {
			if n, _ := tx.CartCount(); n != 0 {
				t.Errorf("emptied cart still counted: %d", n)
			}
			return nil
		})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestIdempotentHelper(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func() Store) {
		ctx := context.Background()
		st := open()
		runs := 0
		call := func(key, hash string, status int) (answer, bool) {
			var rep answer
			var replayed bool
			must(t, st.Update(ctx, func(tx Tx) (err error) {
				rep, replayed, err = idempotent(tx, "test", key, hash, func() (answer, error) {
					runs++
					return answer{Status: status, Body: []byte{byte('0' + runs)}}, nil
				})
				return err
			}))
			return rep, replayed
		}
		if rep, replayed := call("k", "h1", 201); replayed || rep.Status != 201 || string(rep.Body) != "1" {
			t.Errorf("first: %+v %v", rep, replayed)
		}
		if rep, replayed := call("k", "h1", 299); !replayed || rep.Status != 201 || string(rep.Body) != "1" || runs != 1 {
			t.Errorf("repeat: %+v %v runs %d", rep, replayed, runs)
		}
		if rep, _ := call("k", "h2", 200); rep.Status != 422 || runs != 1 {
			t.Errorf("same key, other request: %+v", rep)
		}
		// 5xx answers are not stored: a retry really runs again.
		call("k5", "h", 503)
		if rep, replayed := call("k5", "h", 200); replayed || rep.Status != 200 || runs != 3 {
			t.Errorf("after a 5xx: %+v %v runs %d", rep, replayed, runs)
		}
		// No key: always runs.
		call("", "h", 200)
		call("", "h", 200)
		if runs != 5 {
			t.Errorf("keyless runs %d, want 5", runs)
		}
		st.View(ctx, func(tx Tx) error {
			n, _ := tx.IdemCount("test")
			if n[201] != 1 || n[200] != 1 || len(n) != 2 {
				t.Errorf("IdemCount %v", n)
			}
			return nil
		})
	})
}

// Two handles on one SQLite file (as two processes would have) race to
// take units: BEGIN IMMEDIATE serialises them, so exactly the stock is
// taken and the invariant holds.
func TestSQLiteSharedFileIsolation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	var stores []Store
	for range 2 {
		st, err := OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stores = append(stores, st)
	}
	ctx := context.Background()
	must(t, seedStock(ctx, stores[0], newCatalogData(1).list, 40))
	var taken atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		st := stores[i%2]
		wg.Go(func() {
			for range 5 {
				err := st.Update(ctx, func(tx Tx) error {
					s, _, err := tx.Stock("p0001")
					if err != nil || s.Available == 0 {
						return err
					}
					s.Available--
					s.Reserved++
					if err := tx.PutStock(s); err != nil {
						return err
					}
					taken.Add(1) // a failed commit would be reported below
					return nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
				}
			}
		})
	}
	wg.Wait()
	var s Stock
	must(t, stores[1].View(ctx, func(tx Tx) (err error) { s, _, err = tx.Stock("p0001"); return err }))
	if s.Available != 0 || s.Reserved != 40 || taken.Load() != 40 {
		t.Errorf("after 80 takes of 40 units: %+v, taken %d", s, taken.Load())
	}
	// State survives reopening.
	st3, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	must(t, seedStock(ctx, st3, newCatalogData(1).list, 999)) // existing rows are kept
	must(t, st3.View(ctx, func(tx Tx) (err error) { s, _, err = tx.Stock("p0001"); return err }))
	if s.Initial != 40 || s.Reserved != 40 {
		t.Errorf("reopened: %+v", s)
	}
}

// Processes started together open a new file at once: none may fail with
// "database is locked".
func TestSQLiteConcurrentOpen(t *testing.T) {
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "new.db")
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				st, err := OpenSQLite(path)
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				defer st.Close()
				if err := seedStock(context.Background(), st, newCatalogData(20).list, 5); err != nil {
					t.Errorf("round %d: seed: %v", round, err)
				}
			})
		}
		wg.Wait()
	}
}
