package shop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// The checkout service: a saga over HTTP. For one Idempotency-Key K it
// runs, through the upstream (normally the proxy):
//
//	GET  /cart                 the cart, frozen as the order's snapshot
//	POST /inventory/reserve    K:reserve   409 → answer 409, done
//	POST /payment/charge       K:charge    captured → commit; declined → release, 402
//	POST /payment/void         K:void      only if the charge's outcome is unknown
//	POST /inventory/release    K:release   after a decline or a void
//	POST /inventory/commit     K:commit    after a capture
//	DELETE /cart               K:cart      best effort
//
// and records its answer under K. Why this is safe under retries, crashes
// and duplicates running at the same time on different instances:
//
//   - Every step is idempotent downstream (keyed, or an order state
//     transition), so re-running the saga with the same K re-reads the same
//     answers instead of acting twice: one reservation, one charge.
//   - The cart is frozen under K before anything is reserved, so every run
//     of K reserves and charges the same items and amount.
//   - Commit or release is decided only from the charge's final outcome,
//     which is the same for every run: captured, declined, or voided. A
//     charge whose answer was lost (a timeout, a reset, a 5xx after retries)
//     is voided first; the void either finds the charge (then that is the
//     outcome) or makes sure it can never be captured. So stock is
//     released only when no money was taken, and committed only when it was.
//   - The answer is recorded only when the saga is settled (order placed,
//     or stock released). If a step cannot be completed now (a downstream
//     is down), the answer is 503 with Retry-After and nothing recorded; a
//     retry with the same key carries on where the saga stopped.
//   - A crash (or the deadline) stops a run between steps and it never
//     compensates then: a stopped run takes no decision. Its reservation
//     stays until the client retries the key, which finishes the order.
//     That is the one way stock stays reserved: a client that gives up on
//     a key after a 503 or a reset.

var checkoutService = &serviceDef{route: routeCheckout, state: checkoutState}

var epCheckout = &endpoint{cost: costCheckout, handle: handleCheckout}

// checkoutDeadline bounds one run of the saga. It is not tied to the
// client's request, so a client that disconnects does not leave a
// half-done order behind.
const checkoutDeadline = 20 * time.Second

func routeCheckout(method, path string) (*endpoint, string, string) {
	if path == "/checkout" {
		return only(method, http.MethodPost, epCheckout, "")
	}
	return nil, "", ""
}

type checkoutAnswer struct {
	OrderID    string `json:"order_id"`
	TotalCents int64  `json:"total_cents"`
	ChargeID   string `json:"charge_id"`
}

// orderIDFor derives the order id from the checkout key: every run of the
// key names the same order.
func orderIDFor(key string) string { return "o-" + requestHash("order", key)[:20] }

func handleCheckout(c *call) {
	key, ok := c.idempotencyKey(true)
	if !ok {
		return
	}
	session := sessionOf(c.r)
	if session == "" {
		c.replyError(http.StatusBadRequest, "no_session", "send the "+SessionCookie+" cookie of the cart to check out")
		return
	}
	ctx, cancel := context.WithTimeout(c.inc.ctx, checkoutDeadline)
	defer cancel()
	rep := c.g.runCheckout(ctx, key, session)
	if c.inc.ctx.Err() != nil {
		abandon() // crashed mid-saga: a dead process answers nothing
	}
	if rep.Status >= 500 {
		c.w.Header().Set("X-Shop-Error", "upstream")
	}
	c.replyRep(rep)
}

// saga is one run of a checkout.
type saga struct {
	g       *Group
	ctx     context.Context
	key     string
	session string
	hash    string
	orderID string
}

func (g *Group) runCheckout(ctx context.Context, key, session string) answer {
	s := &saga{g: g, ctx: ctx, key: key, session: session, hash: requestHash("checkout", session), orderID: orderIDFor(key)}
	if rep, ok, err := s.recorded(); err != nil {
		return s.storeError(err)
	} else if ok {
		return rep
	}
	cart, rep, ok := s.snapshot()
	if !ok {
		return rep
	}

	// Reserve.
	items := make([]Item, len(cart.Items))
	for i, l := range cart.Items {
		items[i] = Item{ProductID: l.ProductID, Qty: l.Qty}
	}
	a, err := s.post(callReserve, "reserve", reserveRequest{OrderID: s.orderID, Items: items})
	switch {
	case err != nil || a.status >= 500:
		return s.unavailable("reserve", a, err)
	case a.status == http.StatusConflict || a.status == http.StatusNotFound:
		return s.finish(answer{Status: http.StatusConflict, Body: a.body})
	case a.status != http.StatusOK:
		return s.rejected("reserve", a)
	}

	// Charge, and settle its outcome.
	chargeKey := s.key + ":charge"
	a, err = s.post(callCharge, "charge", chargeRequest{OrderID: s.orderID, AmountCents: cart.TotalCents})
	var ch Charge
	switch {
	case s.ctx.Err() != nil:
		return s.unavailable("charge", a, s.ctx.Err())
	case err == nil && (a.status == http.StatusOK || a.status == http.StatusPaymentRequired || a.status == http.StatusConflict):
		if jerr := json.Unmarshal(a.body, &ch); jerr != nil || ch.Status == "" {
			return s.rejected("charge", a)
		}
	default:
		// The outcome is unknown: void the key, which settles it.
		v, verr := s.post(callVoid, "void", voidRequest{Key: chargeKey})
		if verr != nil || v.status != http.StatusOK {
			return s.unavailable("payment", v, verr)
		}
		if jerr := json.Unmarshal(v.body, &ch); jerr != nil || ch.Status == "" {
			return s.rejected("void", v)
		}
	}

	if ch.Status != ChargeCaptured {
		a, err = s.post(callRelease, "release", orderRequest{OrderID: s.orderID})
		if err != nil || a.status != http.StatusOK {
			return s.unavailable("release", a, err)
		}
		status := ChargeDeclined
		if ch.Status != ChargeDeclined {
			status = "payment_failed"
		}
		return s.finish(jsonReply(http.StatusPaymentRequired, orderStatus{OrderID: s.orderID, Status: status}))
	}

	a, err = s.post(callCommit, "commit", orderRequest{OrderID: s.orderID})
	switch {
	case err != nil || a.status >= 500:
		return s.unavailable("commit", a, err)
	case a.status != http.StatusOK:
		// Cannot happen by the reasoning above; if it does, say so loudly
		// and record nothing, so the evidence stays for a human.
		g.log.Error("shop: checkout could not commit a paid order", "key", s.key, "order_id", s.orderID, "status", a.status, "body", string(a.body))
		return s.rejected("commit", a)
	}

	// The order is placed; clearing the cart is a courtesy.
	if a, err := s.g.up.call(s.ctx, callCartClear.Method, callCartClear.Path, s.key+":cart", s.session, nil); err != nil || a.status != http.StatusOK {
		g.log.Debug("shop: checkout could not clear the cart", "key", s.key, "status", a.status, "err", err)
	}
	return s.finish(jsonReply(http.StatusOK, checkoutAnswer{OrderID: s.orderID, TotalCents: cart.TotalCents, ChargeID: ch.ID}))
}

// post sends a step's request with the step's derived idempotency key.
func (s *saga) post(c Call, step string, v any) (upAnswer, error) {
	return s.g.up.call(s.ctx, c.Method, c.Path, s.key+":"+step, "", jsonReply(0, v).Body)
}

// recorded returns the key's final answer if one is recorded.
func (s *saga) recorded() (answer, bool, error) {
	var rep answer
	var ok bool
	err := s.g.store.View(s.ctx, func(tx Tx) error {
		rec, found, err := tx.Idem("checkout", s.key)
		if err != nil || !found {
			return err
		}
		ok = true
		if rec.Hash != s.hash {
			rep = errorReply(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used to check out another session's cart; use a new key")
			return nil
		}
		rep = answer{Status: rec.Status, Body: rec.Body}
		return nil
	})
	return rep, ok, err
}

// snapshot returns the cart frozen for this key, reading and freezing it on
// the first run. An empty cart answers 400 and freezes nothing, so the key
// can be used once the cart is filled.
func (s *saga) snapshot() (cartView, answer, bool) {
	var frozen IdemRecord
	var found bool
	readFrozen := func() error {
		return s.g.store.View(s.ctx, func(tx Tx) (err error) {
			frozen, found, err = tx.Idem("checkout.cart", s.key)
			return err
		})
	}
	if err := readFrozen(); err != nil {
		return cartView{}, s.storeError(err), false
	}
	if !found {
		a, err := s.g.up.call(s.ctx, callCartGet.Method, callCartGet.Path, "", s.session, nil)
		switch {
		case err != nil || a.status >= 500:
			return cartView{}, s.unavailable("cart", a, err), false
		case a.status != http.StatusOK:
			return cartView{}, s.rejected("cart", a), false
		}
		var cart cartView
		if err := json.Unmarshal(a.body, &cart); err != nil {
			return cartView{}, s.rejected("cart", a), false
		}
		// Recompute the total from the lines and drop nonsense lines: the
		// frozen cart is what gets reserved and charged.
		var lines []CartLine
		for _, l := range cart.Items {
			if l.Qty > 0 && l.PriceCents >= 0 && l.ProductID != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			// A concurrent run of this key may have frozen the cart, placed
			// the order and cleared the cart between our first look and
			// this read: it froze before it cleared, so look again and
			// carry on with its cart rather than answer a different story.
			if err := readFrozen(); err != nil {
				return cartView{}, s.storeError(err), false
			}
			if !found {
				return cartView{}, errorReply(http.StatusBadRequest, "empty_cart", "the cart is empty: add items before checking out"), false
			}
		} else if err := s.freeze(lines, &frozen); err != nil {
			return cartView{}, s.storeError(err), false
		}
	}
	if frozen.Hash != s.hash || frozen.Status != http.StatusOK {
		return cartView{}, errorReply(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used to check out another session's cart; use a new key"), false
	}
	var cart cartView
	if err := json.Unmarshal(frozen.Body, &cart); err != nil {
		return cartView{}, s.storeError(fmt.Errorf("frozen cart of %s: %w", s.key, err)), false
	}
	return cart, answer{}, true
}

// freeze records lines as the key's cart, or sets frozen to the cart a
// concurrent run froze first.
func (s *saga) freeze(lines []CartLine, frozen *IdemRecord) error {
	body := jsonReply(http.StatusOK, viewOf(lines)).Body
	return s.g.store.Update(s.ctx, func(tx Tx) error {
		// Keep the first run's cart if a concurrent run froze one.
		rep, _, err := idempotent(tx, "checkout.cart", s.key, s.hash, func() (answer, error) {
			return answer{Status: http.StatusOK, Body: body}, nil
		})
		*frozen = IdemRecord{Hash: s.hash, Status: rep.Status, Body: rep.Body}
		return err
	})
}

// finish records rep as the key's answer, or returns the answer a
// concurrent run recorded first.
func (s *saga) finish(rep answer) answer {
	var out answer
	err := s.g.store.Update(s.ctx, func(tx Tx) (err error) {
		out, _, err = idempotent(tx, "checkout", s.key, s.hash, func() (answer, error) { return rep, nil })
		return err
	})
	if err != nil {
		return s.storeError(err)
	}
	return out
}

// unavailable answers 503 for a step that could not be completed now,
// recording nothing — unless a concurrent run has recorded the answer.
func (s *saga) unavailable(step string, a upAnswer, err error) answer {
	if s.ctx.Err() == nil {
		if rep, ok, rerr := s.recorded(); rerr == nil && ok {
			return rep
		}
	}
	msg := fmt.Sprintf("%s answered %d", step, a.status)
	if err != nil {
		msg = fmt.Sprintf("%s failed: %v", step, err)
	}
	s.g.log.Debug("shop: checkout step unavailable", "key", s.key, "step", step, "msg", msg)
	return jsonReply(http.StatusServiceUnavailable, errorBody{Error: "upstream_unavailable", Step: step,
		Message: msg + "; nothing is lost: retry with the same Idempotency-Key to finish the order"})
}

// rejected answers 502 for a downstream answer that makes no sense.
func (s *saga) rejected(step string, a upAnswer) answer {
	return jsonReply(http.StatusBadGateway, errorBody{Error: "upstream_rejected", Step: step,
		Message: fmt.Sprintf("%s answered %d: %.200s", step, a.status, a.body)})
}

func (s *saga) storeError(err error) answer {
	s.g.log.Warn("shop: checkout store error", "key", s.key, "err", err)
	return errorReply(http.StatusInternalServerError, "store_error", "the checkout's store failed; retry with the same Idempotency-Key")
}

func checkoutState(ctx context.Context, g *Group) (map[string]int64, error) {
	var n map[int]int64
	err := g.store.View(ctx, func(tx Tx) (err error) {
		n, err = tx.IdemCount("checkout")
		return err
	})
	return map[string]int64{
		"orders":       n[http.StatusOK],
		"not_paid":     n[http.StatusPaymentRequired],
		"out_of_stock": n[http.StatusConflict],
	}, err
}
