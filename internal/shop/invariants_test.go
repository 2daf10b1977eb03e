package shop

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The "done means": the shop behind the real proxy, with the proxy
// retrying on resets, gateway errors and 5xx, with injected errors on a
// payment and an inventory instance and a checkout instance crashing and
// restarting mid-run, serves 50 concurrent shoppers (some retrying their
// checkout, some sending it twice at once) and afterwards the books
// balance: no stock lost or oversold, nothing left reserved, every sold
// unit in a placed order, every placed order charged exactly once and
// nothing else charged.
func TestInvariantsUnderFaultsAndRetries(t *testing.T) {
	for _, kind := range []string{"memory", "sqlite"} {
		t.Run(kind, func(t *testing.T) {
			data := ""
			if kind == "sqlite" {
				data = filepath.Join(t.TempDir(), "shop.db") // one file for all services
			}
			runInvariants(t, data)
		})
	}
}

const (
	invSessions = 50
	invProducts = 8
	invStock    = 30
)

// outcome is a session's settled checkout.
type outcome struct {
	key    string
	status int
	body   string
	cart   map[string]int64
}

func runInvariants(t *testing.T, dataPath string) {
	st := startStack(t, stackOptions{
		instances: map[string]int{"catalog": 1, "inventory": 3, "cart": 2, "checkout": 3, "payment": 3},
		dataPath:  dataPath,
		retries:   "{attempts: 2, on: [connect_failure, reset, gateway_error, 5xx]}",
		tune: func(c *Config) {
			c.Products, c.Stock = invProducts, invStock
			c.Latency, c.CV = 2*time.Millisecond, 0.5
			c.Queue, c.QueueTimeout = 256, 5*time.Second
			if c.Service == "payment" {
				c.DeclineRate = 0.1
			}
		},
	})
	must(t, st.groups["payment"].SetFault(0, Fault{ErrorRate: 0.2}))
	must(t, st.groups["inventory"].SetFault(1, Fault{ErrorRate: 0.2}))

	// Crash a checkout instance once 15 checkouts have been sent.
	var sent atomic.Int64
	crashNow := make(chan struct{})
	var crashOnce sync.Once
	crashed := make(chan error, 1)
	go func() {
		<-crashNow
		crashed <- st.groups["checkout"].SetFault(0, Fault{Crash: true, RestartAfter: 300 * time.Millisecond})
	}()
	onSend := func() {
		if sent.Add(1) == 15 {
			crashOnce.Do(func() { close(crashNow) })
		}
	}

	outcomes := make([]outcome, invSessions)
	var clientRetries atomic.Int64
	var wg sync.WaitGroup
	for i := range invSessions {
		wg.Go(func() { outcomes[i] = shopper(t, st.proxyURL, i, onSend, &clientRetries) })
	}
	wg.Wait()
	if err := <-crashed; err != nil {
		t.Fatalf("crash: %v", err)
	}
	if t.Failed() {
		return
	}

	// Settle: the crashed instance is back and nothing is in flight
	// anywhere (late duplicates of a crashed run's calls included).
	eventually(t, 10*time.Second, "the crashed checkout instance to restart", func() bool {
		r, err := send(testClient, "GET", st.groups["checkout"].URLs()[0]+"/healthz", "", nil)
		return err == nil && r.status == 200
	})
	eventually(t, 10*time.Second, "all requests to settle", func() bool {
		for _, g := range st.groups {
			for i := range g.Len() {
				if stats(t, g, i).InFlight != 0 {
					return false
				}
			}
		}
		return true
	})

	// What the answers say happened.
	cat := newCatalogData(invProducts)
	sold := map[string]int64{}
	var placed, placedCents int64
	counts := map[int]int{}
	for _, o := range outcomes {
		counts[o.status]++
		if o.status != http.StatusOK {
			continue
		}
		var a checkoutAnswer
		if err := json.Unmarshal([]byte(o.body), &a); err != nil {
			t.Fatalf("%s: %v", o.key, err)
		}
		var want int64
		for id, q := range o.cart {
			sold[id] += q
			p, _ := cat.get(id)
			want += q * p.PriceCents
		}
		if a.TotalCents != want {
			t.Errorf("%s: total %d, cart is worth %d", o.key, a.TotalCents, want)
		}
		placed++
		placedCents += a.TotalCents
		// The order's charge is the captured charge of its key.
		var ch Charge
		do(t, "GET", st.proxyURL+"/payment/charges/"+o.key+":charge", "", nil).json(t, &ch)
		if ch.Status != ChargeCaptured || ch.ID != a.ChargeID || ch.AmountCents != a.TotalCents {
			t.Errorf("%s: order %+v, charge %+v", o.key, a, ch)
		}
	}

	// What the stores say.
	ctx := context.Background()
	must(t, st.groups["inventory"].Store().View(ctx, func(tx Tx) error {
		for _, p := range cat.list {
			s, ok, err := tx.Stock(p.ID)
			if err != nil || !ok {
				return fmt.Errorf("stock %s: %v %v", p.ID, ok, err)
			}
			if s.Available < 0 || s.Reserved != 0 || s.Available+s.Reserved+s.Sold != invStock || s.Initial != invStock {
				t.Errorf("%s: %+v; want available ≥ 0, reserved 0, available+reserved+sold = %d", p.ID, s, invStock)
			}
			if s.Sold != sold[p.ID] {
				t.Errorf("%s: sold %d, placed orders hold %d", p.ID, s.Sold, sold[p.ID])
			}
		}
		return nil
	}))
	var pt PaymentTotals
	must(t, st.groups["payment"].Store().View(ctx, func(tx Tx) (err error) { pt, err = tx.PaymentTotals(); return err }))
	if pt.Charges != placed || pt.DistinctKeys != placed || pt.CapturedCents != placedCents {
		t.Errorf("payment: %d charges of %d distinct keys for %d cents; placed %d orders worth %d cents",
			pt.Charges, pt.DistinctKeys, pt.CapturedCents, placed, placedCents)
	}
	var recorded map[int]int64
	must(t, st.groups["checkout"].Store().View(ctx, func(tx Tx) (err error) { recorded, err = tx.IdemCount("checkout"); return err }))
	if recorded[200] != placed {
		t.Errorf("checkout recorded %d orders, shoppers were told of %d", recorded[200], placed)
	}

	var injected, rejected int64
	for _, g := range st.groups {
		for i := range g.Len() {
			s := stats(t, g, i)
			injected += s.InjectedErrors
			rejected += s.Rejected
		}
	}
	cs := stats(t, st.groups["checkout"], 0)
	t.Logf("outcomes %v (placed %d worth %d cents; declined/failed %d; out of stock %d); injected errors %d, overload 503s %d, client retries %d, checkout crashes %d, payment declined %d voided %d",
		counts, placed, placedCents, counts[402], counts[409], injected, rejected, clientRetries.Load(), cs.Crashes, pt.Declined, pt.Voided)
	if cs.Crashes != 1 || injected == 0 || placed == 0 {
		t.Errorf("the faults did not happen as planned: crashes %d, injected errors %d, placed %d", cs.Crashes, injected, placed)
	}
}

// shopper is one session: fill a cart, check out with a unique key until
// the answer is final (retrying transport errors and 5xx with the same key,
// as a careful client does), sometimes sending the checkout twice at once,
// sometimes repeating it after the answer to see the same answer again.
func shopper(t *testing.T, px string, i int, onSend func(), retries *atomic.Int64) outcome {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	r := retry(t, "GET", px+"/cart", nil, retries)
	var session string
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == SessionCookie {
			session = c.Value
		}
	}
	if session == "" {
		t.Errorf("shopper %d: no session cookie", i)
		return outcome{}
	}
	cookie := SessionCookie + "=" + session
	cart := map[string]int64{}
	for j := range 2 + i%2 {
		id, qty := productID(1+rng.IntN(invProducts)), int64(1+rng.IntN(3))
		r := retry(t, "POST", px+"/cart/items", map[string]string{
			"Cookie": cookie, "Idempotency-Key": fmt.Sprintf("add-%d-%d", i, j), "body": fmt.Sprintf(`{"product_id":%q,"qty":%d}`, id, qty),
		}, retries)
		if r.status != 200 {
			t.Errorf("shopper %d: add: %d %s", i, r.status, r.body)
		}
		cart[id] += qty
	}
	key := fmt.Sprintf("ck-%d", i)
	hdr := map[string]string{"Cookie": cookie, "Idempotency-Key": key}
	onSend()
	var dup resp
	var dupWG sync.WaitGroup
	if i%4 == 0 { // the same checkout twice at once (a double click)
		dupWG.Go(func() { dup = retry(t, "POST", px+"/checkout", hdr, retries) })
	}
	res := retry(t, "POST", px+"/checkout", hdr, retries)
	dupWG.Wait()
	if i%4 == 0 && (dup.status != res.status || dup.body != res.body) {
		t.Errorf("%s: concurrent duplicates answered %d %s and %d %s", key, res.status, res.body, dup.status, dup.body)
	}
	if i%3 == 0 { // a late retry gets the recorded answer
		if again := retry(t, "POST", px+"/checkout", hdr, retries); again.status != res.status || again.body != res.body {
			t.Errorf("%s: replay answered %d %s, first %d %s", key, again.status, again.body, res.status, res.body)
		}
	}
	switch res.status {
	case 200, 402, 409:
	default:
		t.Errorf("%s: final answer %d %s", key, res.status, res.body)
	}
	return outcome{key: key, status: res.status, body: res.body, cart: cart}
}

// retry sends until the answer is not a transport error or a 5xx, with a
// growing pause; hdr["body"] is the request body.
func retry(t *testing.T, method, url string, hdr map[string]string, retries *atomic.Int64) resp {
	body := hdr["body"]
	h := map[string]string{}
	for k, v := range hdr {
		if k != "body" {
			h[k] = v
		}
	}
	var last string
	for try := range 60 {
		if try > 0 {
			retries.Add(1)
			time.Sleep(time.Duration(min(try, 10)) * 20 * time.Millisecond) // client backoff
		}
		r, err := send(testClient, method, url, body, h)
		if err == nil && r.status < 500 {
			return r
		}
		last = fmt.Sprint(r.status, " ", r.body, " ", err)
	}
	t.Errorf("%s %s: no final answer after 60 tries; last: %s", method, url, last)
	return resp{}
}
