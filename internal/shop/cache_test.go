package shop

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/testnet"
)

// The catalog cached by the proxy and kept right by the inventory's writes
// (issue #15): see cacheable.go.

// productView is what a product page shows.
type productView struct {
	ID        string `json:"id"`
	StockHint int64  `json:"stock_hint"`
}

// page reads a product page through base and returns it with X-Cache.
func page(t *testing.T, base, id string) (productView, string) {
	t.Helper()
	r := do(t, "GET", base+"/catalog/products/"+id, "", nil)
	if r.status != 200 {
		t.Fatalf("GET %s: %d %s", id, r.status, r.body)
	}
	var v productView
	r.json(t, &v)
	return v, r.header.Get("X-Cache")
}

// TestCatalogIsCacheable: product pages, lists and searches carry caching
// headers; a matching If-None-Match gets a 304; writes name the product
// pages they change.
func TestCatalogIsCacheable(t *testing.T) {
	cat := startGroup(t, testConfig(t, "catalog", 1))
	inv := startGroup(t, testConfig(t, "inventory", 1))
	r := do(t, "GET", cat.URLs()[0]+"/catalog/products/p0001", "", nil)
	h := r.header
	if h.Get("Cache-Control") != "max-age=5, s-maxage=30" || h.Get("Surrogate-Key") != "product-p0001 products" || h.Get("Etag") == "" {
		t.Fatalf("product page headers: %v", h)
	}
	nm := do(t, "GET", cat.URLs()[0]+"/catalog/products/p0001", "", map[string]string{"If-None-Match": `"x", W/` + h.Get("Etag")})
	if nm.status != 304 || nm.body != "" || nm.header.Get("Etag") != h.Get("Etag") {
		t.Errorf("conditional GET: %d %q, ETag %q", nm.status, nm.body, nm.header.Get("Etag"))
	}
	if other := do(t, "GET", cat.URLs()[0]+"/catalog/products/p0001", "", map[string]string{"If-None-Match": `"other"`}); other.status != 200 {
		t.Errorf("non-matching If-None-Match: %d", other.status)
	}
	for _, p := range []string{"/catalog/products?page=2", "/catalog/search?q=a"} {
		if r := do(t, "GET", cat.URLs()[0]+p, "", nil); r.header.Get("Cache-Control") != "max-age=60" || r.header.Get("Surrogate-Key") != "products" {
			t.Errorf("%s: Cache-Control %q, Surrogate-Key %q", p, r.header.Get("Cache-Control"), r.header.Get("Surrogate-Key"))
		}
	}
	res := do(t, "POST", inv.URLs()[0]+"/inventory/reserve", `{"order_id":"o1","items":[{"product_id":"p0002","qty":1},{"product_id":"p0001","qty":2},{"product_id":"p0002","qty":1}]}`, nil)
	if want := []string{`</catalog/products/p0001>; rel="invalidates"`, `</catalog/products/p0002>; rel="invalidates"`}; res.status != 200 || strings.Join(res.header.Values("Link"), "|") != strings.Join(want, "|") {
		t.Errorf("reserve: %d, Link %q, want %q", res.status, res.header.Values("Link"), want)
	}
	if c := do(t, "POST", inv.URLs()[0]+"/inventory/commit", `{"order_id":"o1"}`, nil); c.status != 200 || c.header.Get("Link") != "" {
		t.Errorf("commit (available unchanged): %d, Link %q", c.status, c.header.Values("Link"))
	}
	if f := do(t, "POST", inv.URLs()[0]+"/inventory/reserve", `{"order_id":"o2","items":[{"product_id":"p0001","qty":100000}]}`, nil); f.status != 409 || f.header.Get("Link") != "" {
		t.Errorf("refused reserve: %d, Link %q", f.status, f.header.Values("Link"))
	}
	do(t, "POST", inv.URLs()[0]+"/inventory/reserve", `{"order_id":"o3","items":[{"product_id":"p0003","qty":1}]}`, nil)
	if rel := do(t, "POST", inv.URLs()[0]+"/inventory/release", `{"order_id":"o3"}`, nil); rel.header.Get("Link") != `</catalog/products/p0003>; rel="invalidates"` {
		t.Errorf("release: Link %q", rel.header.Values("Link"))
	}
}

// TestCachedProductPageSeesInventoryWrites: through a real lbsys proxy
// that caches the catalog (both engines), a product page is served from
// the cache until the inventory changes its stock, and right after the
// write — a direct reserve or release, or a checkout whose reserve goes
// through the proxy — shows the new stock.
func TestCachedProductPageSeesInventoryWrites(t *testing.T) {
	for _, engine := range []string{config.EngineLbsys, config.EngineNetHTTP} {
		t.Run(engine, func(t *testing.T) {
			st := startStack(t, stackOptions{
				instances: map[string]int{"catalog": 2, "inventory": 2, "cart": 1, "checkout": 1, "payment": 1},
				dataPath:  filepath.Join(t.TempDir(), "shop.db"), // the catalog shows the inventory's stock
				cache:     true,
				engine:    engine,
			})
			checkStockThroughCache(t, st.proxyURL, true)
		})
	}
}

// checkStockThroughCache runs the scenario against a proxy at base that
// caches the catalog; withCheckout also runs a checkout.
func checkStockThroughCache(t *testing.T, base string, withCheckout bool) {
	t.Helper()
	p1, x := page(t, base, "p0001")
	if x != "MISS" {
		t.Fatalf("first read: X-Cache %q", x)
	}
	page(t, base, "p0002")
	if again, x := page(t, base, "p0001"); x != "HIT" || again != p1 {
		t.Fatalf("second read: X-Cache %q, %+v", x, again)
	}
	res := do(t, "POST", base+"/inventory/reserve", `{"order_id":"cache-o1","items":[{"product_id":"p0001","qty":3},{"product_id":"p0002","qty":1}]}`, nil)
	if res.status != 200 {
		t.Fatalf("reserve: %d %s", res.status, res.body)
	}
	if now, x := page(t, base, "p0001"); now.StockHint != p1.StockHint-3 {
		t.Errorf("right after the reserve: stock %d (X-Cache %s), want %d", now.StockHint, x, p1.StockHint-3)
	}
	if _, x := page(t, base, "p0001"); x != "HIT" {
		t.Errorf("the new page is cached again: X-Cache %q", x)
	}
	do(t, "POST", base+"/inventory/release", `{"order_id":"cache-o1"}`, nil)
	if now, _ := page(t, base, "p0001"); now.StockHint != p1.StockHint {
		t.Errorf("right after the release: stock %d, want %d", now.StockHint, p1.StockHint)
	}
	if !withCheckout {
		return
	}
	p3, _ := page(t, base, "p0003")
	if _, x := page(t, base, "p0003"); x != "HIT" {
		t.Fatalf("p0003 not cached: X-Cache %q", x)
	}
	cart := do(t, "POST", base+"/cart/items", `{"product_id":"p0003","qty":2}`, nil)
	var session string
	for _, c := range (&http.Response{Header: cart.header}).Cookies() {
		if c.Name == SessionCookie {
			session = c.Value
		}
	}
	if cart.status != 200 || session == "" {
		t.Fatalf("cart: %d %s, session %q", cart.status, cart.body, session)
	}
	ck := do(t, "POST", base+"/checkout", "", map[string]string{"Cookie": SessionCookie + "=" + session, "Idempotency-Key": "cache-ck-1"})
	if ck.status != 200 {
		t.Fatalf("checkout: %d %s", ck.status, ck.body)
	}
	if now, x := page(t, base, "p0003"); now.StockHint != p3.StockHint-2 {
		t.Errorf("right after the checkout: stock %d (X-Cache %s), want %d", now.StockHint, x, p3.StockHint-2)
	}
}

// TestCachedProductPageAcrossProcesses is the same with every part its
// own process, as deployed: `lbsys shop` for catalog and inventory
// (sharing a SQLite file) and `lbsys proxy`, all on 127.0.0.1.
func TestCachedProductPageAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the lbsys binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "lbsys")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lbsys/lbsys/cmd/lbsys").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "shop.db")
	addrs := map[string]string{}
	for _, svc := range []string{"catalog", "inventory"} {
		af := filepath.Join(dir, svc+".addr")
		startProc(t, bin, "shop", "--service", svc, "--instances", "1", "--data", db, "--latency", "0", "--warmup", "0", "--addr-file", af, "--log-level", "warn")
		eventually(t, 20*time.Second, svc+" listening", func() bool {
			b, err := os.ReadFile(af)
			addrs[svc] = strings.TrimSpace(string(b))
			return err == nil && addrs[svc] != ""
		})
	}
	listen := testnet.Addr(t)
	cfg := filepath.Join(dir, "lbsys.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: %s
    routes:
      - {match: {path_prefix: /catalog}, service: catalog}
      - {match: {path_prefix: /inventory}, service: inventory}
services:
  - {name: catalog, endpoints: [{address: %q}], cache: {enabled: true}}
  - {name: inventory, endpoints: [{address: %q}]}
`, listen, addrs["catalog"], addrs["inventory"])), 0o600)
	startProc(t, bin, "proxy", "--config", cfg, "--log-level", "warn")
	base := "http://" + listen
	eventually(t, 20*time.Second, "the proxy answering", func() bool {
		r, err := send(testClient, "GET", base+"/catalog/products/p0100", "", nil)
		return err == nil && r.status == 200
	})
	checkStockThroughCache(t, base, false)
}

// startProc starts the lbsys binary and stops it (SIGINT, then kill) at
// the end of the test; its stderr is logged on failure.
func startProc(t *testing.T, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			if len(lines) < 200 {
				lines = append(lines, sc.Text())
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("lbsys %s stderr:\n%s", strings.Join(args, " "), strings.Join(lines, "\n"))
			mu.Unlock()
		}
	})
}
