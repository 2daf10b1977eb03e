package shop

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The payment service: a charge per Idempotency-Key, captured or declined,
// decided and recorded in one transaction, so the same key is charged at
// most once however often and wherever it is retried. Captures are also
// appended to a ledger that the stats count independently
// (charges = ledger rows, distinct_keys = distinct keys in it), which is
// how tests see a double charge if there ever were one.
//
// A void (POST /payment/void) settles a key that has no charge yet as
// "voided", so that no later charge with it can be captured. Checkout
// uses it when a charge's outcome is unknown (timeouts, resets): after the
// void the outcome is certain, and it can release the stock safely.

var paymentService = &serviceDef{route: routePayment, state: paymentState}

var (
	epCharge    = &endpoint{cost: costDefault, handle: handleCharge}
	epGetCharge = &endpoint{cost: costDefault, handle: handleGetCharge}
	epVoid      = &endpoint{cost: costDefault, handle: handleVoid}
)

func routePayment(method, path string) (*endpoint, string, string) {
	switch {
	case path == "/payment/charge":
		return only(method, http.MethodPost, epCharge, "")
	case path == "/payment/void":
		return only(method, http.MethodPost, epVoid, "")
	case strings.HasPrefix(path, "/payment/charges/"):
		key := path[len("/payment/charges/"):]
		if key == "" {
			return nil, "", ""
		}
		return only(method, http.MethodGet, epGetCharge, key)
	}
	return nil, "", ""
}

type chargeRequest struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

// chargeID is derived from the key, so every replay names the same charge.
func chargeID(key string) string { return "ch_" + requestHash("charge", key)[:20] }

// declines decides a key's fate from its hash: reproducible for a key
// across processes and restarts, and a uniform share overall.
func declines(key string, rate float64) bool {
	if rate <= 0 {
		return false
	}
	sum := sha256.Sum256([]byte("decline:" + key))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	return u < rate
}

func handleCharge(c *call) {
	key, ok := c.idempotencyKey(true)
	if !ok {
		return
	}
	var req chargeRequest
	if !c.decode(&req) {
		return
	}
	if !validOrderID(req.OrderID) || req.AmountCents < 1 {
		c.replyError(http.StatusBadRequest, "bad_request", "order_id (1 to 128 characters) and amount_cents ≥ 1 are required")
		return
	}
	hash := requestHash("charge", req.OrderID, strconv.FormatInt(req.AmountCents, 10))
	var rep answer
	err := c.g.store.Update(c.inc.ctx, func(tx Tx) (err error) {
		rep, _, err = idempotent(tx, "payment.charge", key, hash, func() (answer, error) {
			prev, ok, err := tx.Charge(key)
			if err != nil {
				return answer{}, err
			}
			if ok {
				// Only a void comes before the first charge of a key.
				return jsonReply(http.StatusConflict, prev), nil
			}
			ch := Charge{Key: key, ID: chargeID(key), OrderID: req.OrderID, AmountCents: req.AmountCents, Status: ChargeCaptured}
			status := http.StatusOK
			if declines(key, c.g.cfg.DeclineRate) {
				ch.Status, ch.ID, status = ChargeDeclined, "", http.StatusPaymentRequired
			}
			if err := tx.PutCharge(ch); err != nil {
				return answer{}, err
			}
			if ch.Status == ChargeCaptured {
				if err := tx.AddLedger(key, ch.AmountCents); err != nil {
					return answer{}, err
				}
			}
			return jsonReply(status, ch), nil
		})
		return err
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	c.replyRep(rep)
}

type voidRequest struct {
	Key string `json:"key"`
}

// handleVoid answers the key's charge if there is one, else records the
// key as voided; either way the answer is the key's final outcome.
func handleVoid(c *call) {
	if _, ok := c.idempotencyKey(false); !ok {
		return
	}
	var req voidRequest
	if !c.decode(&req) {
		return
	}
	if req.Key == "" || len(req.Key) > 200 {
		c.replyError(http.StatusBadRequest, "bad_request", "key (the charge's Idempotency-Key, 1 to 200 bytes) is required")
		return
	}
	var ch Charge
	err := c.g.store.Update(c.inc.ctx, func(tx Tx) error {
		prev, ok, err := tx.Charge(req.Key)
		if err != nil || ok {
			ch = prev
			return err
		}
		ch = Charge{Key: req.Key, Status: ChargeVoided}
		return tx.PutCharge(ch)
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	c.replyJSON(http.StatusOK, ch)
}

func handleGetCharge(c *call) {
	// The key is a path segment; keys with '/' arrive escaped.
	key := c.arg
	if raw := c.r.URL.EscapedPath(); strings.HasPrefix(raw, "/payment/charges/") {
		if k, err := url.PathUnescape(raw[len("/payment/charges/"):]); err == nil {
			key = k
		}
	}
	var ch Charge
	var ok bool
	err := c.g.store.View(c.inc.ctx, func(tx Tx) (err error) {
		ch, ok, err = tx.Charge(key)
		return err
	})
	switch {
	case err != nil:
		c.replyStoreError(err)
	case !ok:
		c.replyError(http.StatusNotFound, "unknown_charge", "no charge with this key")
	default:
		c.replyJSON(http.StatusOK, ch)
	}
}

func paymentState(ctx context.Context, g *Group) (map[string]int64, error) {
	var p PaymentTotals
	err := g.store.View(ctx, func(tx Tx) (err error) {
		p, err = tx.PaymentTotals()
		return err
	})
	return map[string]int64{
		"charges":        p.Charges,
		"captured_cents": p.CapturedCents,
		"distinct_keys":  p.DistinctKeys,
		"declined":       p.Declined,
		"voided":         p.Voided,
	}, err
}
