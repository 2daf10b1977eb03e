package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeShop implements just enough of docs/shop-api.md for the sessions
// mode: catalog and stock pages, a cookie-keyed cart, and a checkout that
// requires the cookie and an Idempotency-Key, fails the first attempt of
// every third key with 503, and answers a repeated key with its first
// answer.
type fakeShop struct {
	productDelay time.Duration

	mu        sync.Mutex
	nextID    int
	carts     map[string]int      // session → items
	attempts  map[string]int      // idempotency key → checkout attempts
	orders    map[string]string   // key → order id (first successful answer)
	sessionOf map[string]string   // key → session cookie
	paths     map[string]int      // "METHOD /prefix" → count
	noCookie  int                 // cart/checkout requests that lacked the cookie
	noKey     int                 // checkouts without a key
	cookieAt  map[string][]string // session → paths seen with it
}

func newFakeShop() *fakeShop {
	return &fakeShop{carts: map[string]int{}, attempts: map[string]int{}, orders: map[string]string{},
		sessionOf: map[string]string{}, paths: map[string]int{}, cookieAt: map[string][]string{}}
}

// failsFirst tells which keys get a 503 on their first attempt.
func failsFirst(key string) bool {
	h := fnv.New32a()
	io.WriteString(h, key)
	return h.Sum32()%3 == 0
}

func (s *fakeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Path
	for _, p := range []string{"/catalog/products/", "/inventory/stock/"} {
		if strings.HasPrefix(prefix, p) {
			prefix = p
		}
	}
	cookie := ""
	if c, err := r.Cookie("shop_session"); err == nil {
		cookie = c.Value
	}
	s.mu.Lock()
	s.paths[r.Method+" "+prefix]++
	if cookie != "" {
		s.cookieAt[cookie] = append(s.cookieAt[cookie], r.Method+" "+prefix)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "GET" && prefix == "/catalog/products":
		io.WriteString(w, `{"products":[{"id":"p0001","name":"a","price_cents":100}],"page":1}`)
	case r.Method == "GET" && prefix == "/catalog/products/":
		time.Sleep(s.productDelay)
		io.WriteString(w, `{"id":"p0001","name":"a","price_cents":100,"stock_hint":3}`)
	case r.Method == "GET" && prefix == "/catalog/search":
		io.WriteString(w, `{"products":[]}`)
	case r.Method == "GET" && prefix == "/inventory/stock/":
		io.WriteString(w, `{"id":"p0001","available":5,"reserved":0}`)
	case r.Method == "GET" && prefix == "/cart":
		if cookie == "" {
			s.mu.Lock()
			s.nextID++
			id := fmt.Sprintf("s%d", s.nextID)
			s.mu.Unlock()
			http.SetCookie(w, &http.Cookie{Name: "shop_session", Value: id, Path: "/", HttpOnly: true})
		}
		io.WriteString(w, `{"items":[],"total_cents":0}`)
	case r.Method == "POST" && prefix == "/cart/items":
		body, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(body), `"product_id":"p`) {
			http.Error(w, `{"error":"bad body"}`, 400)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if cookie == "" {
			s.noCookie++
			http.Error(w, `{"error":"no session"}`, 400)
			return
		}
		s.carts[cookie]++
		io.WriteString(w, `{"items":[{"product_id":"p0001","qty":1,"price_cents":100}],"total_cents":100}`)
	case r.Method == "POST" && prefix == "/checkout":
		key := r.Header.Get("Idempotency-Key")
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case key == "":
			s.noKey++
			http.Error(w, `{"error":"Idempotency-Key required"}`, 400)
			return
		case cookie == "":
			s.noCookie++
			http.Error(w, `{"error":"no session"}`, 400)
			return
		case s.carts[cookie] == 0 && s.orders[key] == "":
			http.Error(w, `{"error":"empty cart"}`, 400)
			return
		}
		s.attempts[key]++
		if prev, ok := s.sessionOf[key]; ok && prev != cookie {
			http.Error(w, `{"error":"key reused by another session"}`, 422)
			return
		}
		s.sessionOf[key] = cookie
		if s.attempts[key] == 1 && failsFirst(key) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"overloaded"}`, 503)
			return
		}
		if s.orders[key] == "" {
			s.orders[key] = fmt.Sprintf("o%d", len(s.orders)+1)
			s.carts[cookie] = 0
		}
		fmt.Fprintf(w, `{"order_id":%q,"total_cents":100,"charge_id":"c-%s"}`, s.orders[key], s.orders[key])
	default:
		http.NotFound(w, r)
	}
}

func startFakeShop(t *testing.T, shop *fakeShop) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: shop}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func TestSessionsWalkTheFunnel(t *testing.T) {
	shop := newFakeShop()
	target := startFakeShop(t, shop)
	sum, err := Run(context.Background(), Config{
		Target:    target,
		Duration:  3 * time.Second,
		Rate:      Constant(600),
		Think:     20 * time.Millisecond,
		ThinkDist: ThinkExponential,
		Seed:      11,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := sum.Sessions
	if ss == nil {
		t.Fatal("no session summary in sessions mode")
	}
	t.Logf("sessions %+v checkouts %d errors %+v", *ss, sum.Checkouts, sum.Errors)
	// 600 requests/s over 3.15 requests per session: ≈ 190 sessions/s.
	if want := 600 / DefaultFunnel.ExpectedRequests() * 3; math.Abs(float64(ss.Started)-want) > 0.2*want {
		t.Fatalf("%d sessions started, want ≈ %.0f", ss.Started, want)
	}
	// The overall request rate is about --rate (sessions cut at the end
	// and the first second's ramp-up send a little less).
	if sum.AchievedRPS < 0.75*600 || sum.AchievedRPS > 1.1*600 {
		t.Fatalf("achieved %.0f requests/s for --rate 600", sum.AchievedRPS)
	}
	// Conversion: the fraction of sessions reaching each step.
	browse := float64(ss.Reached["browse"])
	for _, tc := range []struct {
		step string
		want float64
	}{{"product", 0.6}, {"cart", 0.3}, {"checkout", 0.1}} {
		got := float64(ss.Reached[tc.step]) / browse
		if math.Abs(got-tc.want) > 0.08 {
			t.Errorf("%s reached by %.3f of sessions, want ≈ %.2f", tc.step, got, tc.want)
		}
	}
	if ss.Abandoned != 0 || shop.noCookie != 0 || shop.noKey != 0 {
		t.Fatalf("abandoned %d, requests without cookie %d, checkouts without key %d", ss.Abandoned, shop.noCookie, shop.noKey)
	}

	// Checkout: every key that failed first was retried with the same key
	// (and the same session), and every order completed.
	shop.mu.Lock()
	failed, retried := 0, 0
	for key, n := range shop.attempts {
		if failsFirst(key) {
			failed++
			if n == 2 {
				retried++
			}
		} else if n != 1 {
			t.Errorf("key %s tried %d times without failing", key, n)
		}
	}
	orders := len(shop.orders)
	keys := len(shop.attempts)
	// The session cookie travelled through the funnel like a browser's.
	carried := 0
	for _, seen := range shop.cookieAt {
		if len(seen) > 0 && seen[0] == "POST /cart/items" {
			carried++
		}
	}
	shop.mu.Unlock()
	// Sessions cut by the end of the run during their backoff are the
	// only ones allowed not to retry.
	if failed == 0 || int64(retried) < int64(failed)-ss.Unfinished {
		t.Fatalf("%d keys failed first, %d retried with the same key (%d sessions unfinished)", failed, retried, ss.Unfinished)
	}
	if reached := ss.Reached["checkout"]; int64(orders) != sum.Checkouts || int64(keys) > reached || int64(keys) < reached-ss.Unfinished {
		t.Fatalf("shop has %d orders for %d keys; summary: %d checkouts, %d reached checkout", orders, keys, sum.Checkouts, ss.Reached["checkout"])
	}
	if ss.CheckoutRetries != int64(failed) || sum.Errors.Status5xx != int64(failed) {
		t.Fatalf("retries %d, 5xx %d; the shop failed %d first attempts", ss.CheckoutRetries, sum.Errors.Status5xx, failed)
	}
	if carried == 0 {
		t.Fatal("no session sent its cookie on the cart after GET /cart")
	}
	// Classes: the funnel touches all of them but "other".
	for _, c := range []string{"catalog", "search", "product", "inventory", "cart", "checkout"} {
		if sum.Classes[c].Requests == 0 {
			t.Errorf("class %s: no requests", c)
		}
	}
	checkCounts(t, sum)
}

func TestSessionsAbandonSlowPages(t *testing.T) {
	shop := newFakeShop()
	shop.productDelay = 300 * time.Millisecond
	target := startFakeShop(t, shop)
	sum, err := Run(context.Background(), Config{
		Target:       target,
		Duration:     2 * time.Second,
		Rate:         Constant(300),
		Think:        10 * time.Millisecond,
		AbandonAfter: 100 * time.Millisecond,
		Timeout:      2 * time.Second,
		Drain:        500 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := sum.Sessions
	t.Logf("sessions %+v errors %+v", *ss, sum.Errors)
	product := ss.Reached["product"]
	if product == 0 || ss.Abandoned < product*8/10 || ss.Abandoned > product {
		t.Fatalf("%d sessions reached the slow product page, %d abandoned", product, ss.Abandoned)
	}
	if ss.Reached["cart"] != 0 || sum.Checkouts != 0 {
		t.Fatalf("sessions went on after a slow page: %+v", ss.Reached)
	}
	if sum.Errors.Timeout < ss.Abandoned*8/10 {
		t.Fatalf("%d timeouts for %d abandoned sessions", sum.Errors.Timeout, ss.Abandoned)
	}
	if p := sum.Classes["product"].Latency.P50; p < 100 {
		t.Fatalf("product p50 %.1f ms; the abandoned waits (100 ms) should show", p)
	}
	checkCounts(t, sum)
}

// The JSON summary has every field the CLI documents, consistent.
func TestSummaryJSON(t *testing.T) {
	shop := newFakeShop()
	target := startFakeShop(t, shop)
	sum, err := Run(context.Background(), Config{Target: target, Duration: time.Second, Rate: Constant(300), Think: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	get := func(path string) any {
		var v any = m
		for _, k := range strings.Split(path, ".") {
			mm, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = mm[k]
		}
		return v
	}
	for _, f := range []string{
		"requests", "responses", "ok", "unfinished", "duration_s", "achieved_rps", "target_rps", "checkouts",
		"late", "max_lag_ms", "lag_ms.p99",
		"errors.connect", "errors.timeout", "errors.status_5xx", "errors.status_4xx", "errors.dropped", "errors.reset", "errors.total",
		"latency_ms.p50", "latency_ms.p90", "latency_ms.p99", "latency_ms.p99_9", "latency_ms.max",
		"classes.catalog.requests", "classes.catalog.latency_ms.p99",
		"sessions.started", "sessions.completed", "sessions.abandoned", "sessions.reached.checkout",
		"trace_gaps.held", "process_cpu_s",
	} {
		if get(f) == nil {
			t.Errorf("JSON summary lacks %s", f)
		}
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, back)
	var sb strings.Builder
	if err := sum.WriteText(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sessions", "funnel", "checkouts", "latency", "catalog", "all"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, sb.String())
		}
	}
}

func TestFunnelParsing(t *testing.T) {
	f, err := ParseFunnel("product=0.5,checkout=0.05")
	if err != nil {
		t.Fatal(err)
	}
	if f != (Funnel{1, 0.5, 0.3, 0.05}) {
		t.Fatalf("%v", f)
	}
	if got := DefaultFunnel.ExpectedRequests(); math.Abs(got-3.15) > 1e-9 {
		t.Fatalf("expected requests %v", got)
	}
	for _, tc := range []struct{ in, want string }{
		{"payment=0.1", "payment happens inside checkout"},
		{"browse=0.9", "must be 1"},
		{"cart=0.7", "cannot grow"},
		{"product=1.5", "between 0 and 1"},
		{"product", "not step=fraction"},
		{"product=x", "not a fraction"},
	} {
		if _, err := ParseFunnel(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFunnel(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParseMix("catalog=1,checkout=2"); err == nil || !strings.Contains(err.Error(), `unknown endpoint "checkout"`) {
		t.Errorf("mix with checkout: %v", err)
	}
	if m, err := ParseMix("catalog=3,cart_add=1"); err != nil || len(m) != 2 {
		t.Errorf("mix: %v %v", m, err)
	}
}
