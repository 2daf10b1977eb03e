package shop

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The inventory service: stock per product and reservations per order.
// Every state change is one store transaction that checks before it
// writes, and the stores refuse any write breaking
// available + reserved + sold = initial with no count below 0, so the
// invariant holds under any interleaving of requests, retries and crashes.
//
// An order moves reserved → committed (units sold) or reserved → released
// (units back to available); both are final, and each transition is
// idempotent by itself, so commit and release need no stored answers.

var inventoryService = &serviceDef{route: routeInventory, state: inventoryState}

var (
	epStock   = &endpoint{cost: costDefault, handle: handleStock}
	epReserve = &endpoint{cost: costDefault, handle: handleReserve}
	epCommit  = &endpoint{cost: costDefault, handle: handleCommit}
	epRelease = &endpoint{cost: costDefault, handle: handleRelease}
)

const maxOrderItems = 100

func routeInventory(method, path string) (*endpoint, string, string) {
	switch {
	case strings.HasPrefix(path, "/inventory/stock/"):
		id := path[len("/inventory/stock/"):]
		if id == "" || strings.Contains(id, "/") {
			return nil, "", ""
		}
		return only(method, http.MethodGet, epStock, id)
	case path == "/inventory/reserve":
		return only(method, http.MethodPost, epReserve, "")
	case path == "/inventory/commit":
		return only(method, http.MethodPost, epCommit, "")
	case path == "/inventory/release":
		return only(method, http.MethodPost, epRelease, "")
	}
	return nil, "", ""
}

type stockView struct {
	ID        string `json:"id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
	Initial   int64  `json:"initial"`
}

func handleStock(c *call) {
	var s Stock
	var ok bool
	err := c.g.store.View(c.inc.ctx, func(tx Tx) (err error) {
		s, ok, err = tx.Stock(c.arg)
		return err
	})
	switch {
	case err != nil:
		c.replyStoreError(err)
	case !ok:
		c.replyError(http.StatusNotFound, "unknown_product", "no product "+c.arg)
	default:
		c.replyJSON(http.StatusOK, stockView{ID: s.ProductID, Available: s.Available, Reserved: s.Reserved, Sold: s.Sold, Initial: s.Initial})
	}
}

type reserveRequest struct {
	OrderID string `json:"order_id"`
	Items   []Item `json:"items"`
}

type orderStatus struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

func validOrderID(id string) bool { return id != "" && len(id) <= 128 }

func handleReserve(c *call) {
	key, ok := c.idempotencyKey(false)
	if !ok {
		return
	}
	var req reserveRequest
	if !c.decode(&req) {
		return
	}
	if !validOrderID(req.OrderID) {
		c.replyError(http.StatusBadRequest, "bad_request", "order_id must be 1 to 128 characters")
		return
	}
	if len(req.Items) == 0 || len(req.Items) > maxOrderItems {
		c.replyError(http.StatusBadRequest, "bad_request", fmt.Sprintf("items: give 1 to %d items", maxOrderItems))
		return
	}
	for _, it := range req.Items {
		if it.ProductID == "" || it.Qty < 1 || it.Qty > 1_000_000 {
			c.replyError(http.StatusBadRequest, "bad_request", "each item needs a product_id and a qty from 1 to 1000000")
			return
		}
	}
	hash := requestHash("reserve", string(jsonReply(0, req).Body))
	var rep answer
	err := c.g.store.Update(c.inc.ctx, func(tx Tx) (err error) {
		rep, _, err = idempotent(tx, "inventory.reserve", key, hash, func() (answer, error) { return reserve(tx, req) })
		return err
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	if rep.Status == http.StatusOK {
		// The reserved units left the products' available stock, which
		// their catalog pages show (see cacheable.go).
		ids := make([]string, len(req.Items))
		for i, it := range req.Items {
			ids[i] = it.ProductID
		}
		slices.Sort(ids)
		c.linkInvalidates(ids)
	}
	c.replyRep(rep)
}

// reserve moves the order's units from available to reserved, all or
// nothing. An order id reserves once: asking again reports its state.
func reserve(tx Tx, req reserveRequest) (answer, error) {
	o, ok, err := tx.Order(req.OrderID)
	if err != nil {
		return answer{}, err
	}
	if ok {
		if o.State == OrderReserved {
			return jsonReply(http.StatusOK, orderStatus{OrderID: o.ID, Status: o.State}), nil
		}
		return jsonReply(http.StatusConflict, orderStatus{OrderID: o.ID, Status: o.State}), nil
	}
	// Sum quantities per product, in a fixed order, and check everything
	// before writing anything.
	need := map[string]int64{}
	for _, it := range req.Items {
		need[it.ProductID] += it.Qty
	}
	ids := make([]string, 0, len(need))
	for id := range need {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	rows := make([]Stock, len(ids))
	for i, id := range ids {
		s, ok, err := tx.Stock(id)
		if err != nil {
			return answer{}, err
		}
		if !ok {
			return jsonReply(http.StatusNotFound, errorBody{Error: "unknown_product", ProductID: id}), nil
		}
		if s.Available < need[id] {
			return jsonReply(http.StatusConflict, errorBody{Error: "insufficient_stock", ProductID: id,
				Message: fmt.Sprintf("%d available, %d wanted", s.Available, need[id])}), nil
		}
		rows[i] = s
	}
	items := make([]Item, len(ids))
	for i, s := range rows {
		q := need[s.ProductID]
		s.Available -= q
		s.Reserved += q
		if err := tx.PutStock(s); err != nil {
			return answer{}, err
		}
		items[i] = Item{ProductID: s.ProductID, Qty: q}
	}
	if err := tx.PutOrder(Order{ID: req.OrderID, State: OrderReserved, Items: items}); err != nil {
		return answer{}, err
	}
	return jsonReply(http.StatusOK, orderStatus{OrderID: req.OrderID, Status: OrderReserved}), nil
}

type orderRequest struct {
	OrderID string `json:"order_id"`
}

func handleCommit(c *call)  { finishOrder(c, OrderCommitted) }
func handleRelease(c *call) { finishOrder(c, OrderReleased) }

// finishOrder commits or releases a reservation. Repeating it is a no-op
// that answers 200 with the state; releasing a committed order is a no-op
// too (the contract's "no-op after commit"), but committing a released
// order is 409: its units are gone back to the shelf.
func finishOrder(c *call, to string) {
	if _, ok := c.idempotencyKey(false); !ok {
		return
	}
	var req orderRequest
	if !c.decode(&req) {
		return
	}
	if !validOrderID(req.OrderID) {
		c.replyError(http.StatusBadRequest, "bad_request", "order_id must be 1 to 128 characters")
		return
	}
	var rep answer
	var changed []string // products whose available stock this changed
	err := c.g.store.Update(c.inc.ctx, func(tx Tx) error {
		changed = changed[:0] // the store may run the function again
		o, ok, err := tx.Order(req.OrderID)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			rep = jsonReply(http.StatusNotFound, errorBody{Error: "unknown_order", Message: "no reservation for order " + req.OrderID})
			return nil
		case o.State == to, o.State == OrderCommitted && to == OrderReleased:
			rep = jsonReply(http.StatusOK, orderStatus{OrderID: o.ID, Status: o.State})
			return nil
		case o.State == OrderReleased && to == OrderCommitted:
			rep = jsonReply(http.StatusConflict, orderStatus{OrderID: o.ID, Status: o.State})
			return nil
		}
		for _, it := range o.Items {
			s, ok, err := tx.Stock(it.ProductID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: order %s names product %s without stock", errInvariant, o.ID, it.ProductID)
			}
			s.Reserved -= it.Qty
			if to == OrderCommitted {
				s.Sold += it.Qty
			} else {
				s.Available += it.Qty
				changed = append(changed, it.ProductID)
			}
			if err := tx.PutStock(s); err != nil {
				return err
			}
		}
		o.State = to
		rep = jsonReply(http.StatusOK, orderStatus{OrderID: o.ID, Status: o.State})
		return tx.PutOrder(o)
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	if rep.Status == http.StatusOK {
		c.linkInvalidates(changed)
	}
	c.replyRep(rep)
}

func inventoryState(ctx context.Context, g *Group) (map[string]int64, error) {
	var t StockTotals
	err := g.store.View(ctx, func(tx Tx) (err error) {
		t, err = tx.StockTotals()
		return err
	})
	return map[string]int64{
		"products":        t.Products,
		"initial_units":   t.Initial,
		"available_units": t.Available,
		"reserved_units":  t.Reserved,
		"sold_units":      t.Sold,
	}, err
}
