package shop

import (
	"context"
	"crypto/rand"
	"net/http"
	"strconv"
	"strings"
)

// The cart service: one cart per shop_session cookie, in the store (so any
// instance serves any session; cookie affinity in the proxy is an option,
// not a requirement). Prices are taken from the generated catalog when an
// item is added. Writes accept an optional Idempotency-Key: checkout
// clears the cart with one, so that a late duplicate of its DELETE cannot
// empty a cart the shopper has filled again since.

var cartService = &serviceDef{route: routeCart, state: cartState}

var (
	epCartGet    = &endpoint{cost: costDefault, handle: handleCartGet}
	epCartClear  = &endpoint{cost: costDefault, handle: handleCartClear}
	epCartAdd    = &endpoint{cost: costDefault, handle: handleCartAdd}
	epCartRemove = &endpoint{cost: costDefault, handle: handleCartRemove}
)

// SessionCookie names the cookie that keys carts.
const SessionCookie = "shop_session"

const maxCartLines = 100

func routeCart(method, path string) (*endpoint, string, string) {
	switch {
	case path == "/cart":
		switch method {
		case http.MethodGet:
			return epCartGet, "", ""
		case http.MethodDelete:
			return epCartClear, "", ""
		}
		return nil, "", "GET, DELETE"
	case path == "/cart/items":
		return only(method, http.MethodPost, epCartAdd, "")
	case strings.HasPrefix(path, "/cart/items/"):
		id := path[len("/cart/items/"):]
		if id == "" || strings.Contains(id, "/") {
			return nil, "", ""
		}
		return only(method, http.MethodDelete, epCartRemove, id)
	}
	return nil, "", ""
}

// cartView is the cart's JSON.
type cartView struct {
	Items      []CartLine `json:"items"`
	TotalCents int64      `json:"total_cents"`
}

func viewOf(lines []CartLine) cartView {
	v := cartView{Items: lines}
	if v.Items == nil {
		v.Items = []CartLine{}
	}
	for _, l := range lines {
		v.TotalCents += l.Qty * l.PriceCents
	}
	return v
}

// sessionOf returns the request's session id, "" if it has none.
func sessionOf(r *http.Request) string {
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return ""
	}
	return ck.Value
}

// session returns the request's session, creating one (and setting the
// cookie on the answer) when it has none.
func (c *call) session() string {
	if s := sessionOf(c.r); s != "" {
		return s
	}
	s := rand.Text()
	http.SetCookie(c.w, &http.Cookie{Name: SessionCookie, Value: s, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return s
}

func handleCartGet(c *call) {
	session := c.session()
	var lines []CartLine
	err := c.g.store.View(c.inc.ctx, func(tx Tx) (err error) {
		lines, err = tx.Cart(session)
		return err
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	c.replyJSON(http.StatusOK, viewOf(lines))
}

type addRequest struct {
	ProductID string `json:"product_id"`
	Qty       int64  `json:"qty"`
}

func handleCartAdd(c *call) {
	key, ok := c.idempotencyKey(false)
	if !ok {
		return
	}
	var req addRequest
	if !c.decode(&req) {
		return
	}
	if req.Qty < 1 || req.Qty > 1000 {
		c.replyError(http.StatusBadRequest, "bad_request", "qty must be from 1 to 1000")
		return
	}
	p, found := c.g.cat.get(req.ProductID)
	if !found {
		c.replyRep(jsonReply(http.StatusNotFound, errorBody{Error: "unknown_product", ProductID: req.ProductID}))
		return
	}
	session := c.session()
	hash := requestHash("cart.add", session, req.ProductID, strconv.FormatInt(req.Qty, 10))
	c.updateCart("cart.add", key, hash, session, func(lines []CartLine) ([]CartLine, *answer) {
		for i := range lines {
			if lines[i].ProductID == p.ID {
				lines[i].Qty += req.Qty
				return lines, nil
			}
		}
		if len(lines) >= maxCartLines {
			r := errorReply(http.StatusConflict, "cart_full", "a cart holds at most "+strconv.Itoa(maxCartLines)+" products")
			return nil, &r
		}
		return append(lines, CartLine{ProductID: p.ID, Qty: req.Qty, PriceCents: p.PriceCents}), nil
	})
}

func handleCartRemove(c *call) {
	key, ok := c.idempotencyKey(false)
	if !ok {
		return
	}
	session := c.session()
	c.updateCart("cart.remove", key, requestHash("cart.remove", session, c.arg), session, func(lines []CartLine) ([]CartLine, *answer) {
		out := lines[:0]
		for _, l := range lines {
			if l.ProductID != c.arg {
				out = append(out, l)
			}
		}
		return out, nil
	})
}

func handleCartClear(c *call) {
	key, ok := c.idempotencyKey(false)
	if !ok {
		return
	}
	session := sessionOf(c.r)
	if session == "" {
		c.replyJSON(http.StatusOK, viewOf(nil))
		return
	}
	c.updateCart("cart.clear", key, requestHash("cart.clear", session), session, func([]CartLine) ([]CartLine, *answer) {
		return nil, nil
	})
}

// updateCart applies change to the session's cart in one transaction and
// answers with the new cart (or change's error reply), idempotently per key.
func (c *call) updateCart(scope, key, hash, session string, change func([]CartLine) ([]CartLine, *answer)) {
	var rep answer
	err := c.g.store.Update(c.inc.ctx, func(tx Tx) (err error) {
		rep, _, err = idempotent(tx, scope, key, hash, func() (answer, error) {
			lines, err := tx.Cart(session)
			if err != nil {
				return answer{}, err
			}
			lines, fail := change(lines)
			if fail != nil {
				return *fail, nil
			}
			if err := tx.PutCart(session, lines); err != nil {
				return answer{}, err
			}
			return jsonReply(http.StatusOK, viewOf(lines)), nil
		})
		return err
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	c.replyRep(rep)
}

func cartState(ctx context.Context, g *Group) (map[string]int64, error) {
	var n int64
	err := g.store.View(ctx, func(tx Tx) (err error) {
		n, err = tx.CartCount()
		return err
	})
	return map[string]int64{"carts": n}, err
}
