package shop

import (
	"context"
	"net/http"
	"strconv"
	"strings"
)

// The catalog service: browse and search the generated products. Reads
// only; the stock hint comes from the group's store, which is the
// inventory's when they share a SQLite file and otherwise the initial
// stock ("may be stale", as the contract says).

var catalogService = &serviceDef{route: routeCatalog, state: catalogState}

var (
	epProducts = &endpoint{cost: costDefault, handle: handleProducts}
	epProduct  = &endpoint{cost: costDefault, handle: handleProduct}
	epSearch   = &endpoint{cost: costSearch, handle: handleSearch}
)

const (
	defaultPageSize = 20
	maxPageSize     = 100
	maxSearchHits   = 50
)

func routeCatalog(method, path string) (*endpoint, string, string) {
	switch {
	case path == "/catalog/products":
		return only(method, http.MethodGet, epProducts, "")
	case strings.HasPrefix(path, "/catalog/products/"):
		id := path[len("/catalog/products/"):]
		if id == "" || strings.Contains(id, "/") {
			return nil, "", ""
		}
		return only(method, http.MethodGet, epProduct, id)
	case path == "/catalog/search":
		return only(method, http.MethodGet, epSearch, "")
	}
	return nil, "", ""
}

// only routes to ep when the method is want, else reports 405.
func only(method, want string, ep *endpoint, arg string) (*endpoint, string, string) {
	if method != want {
		return nil, "", want
	}
	return ep, arg, ""
}

type productPage struct {
	Products []Product `json:"products"`
	Page     int       `json:"page"`
	Size     int       `json:"size"`
	Total    int       `json:"total"`
}

// intParam reads a positive integer query parameter, def when absent.
func intParam(c *call, name string, def, max int) (int, bool) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		c.replyError(http.StatusBadRequest, "bad_request", name+" must be an integer from 1 to "+strconv.Itoa(max))
		return 0, false
	}
	return n, true
}

func handleProducts(c *call) {
	page, ok := intParam(c, "page", 1, 1<<30)
	if !ok {
		return
	}
	size, ok := intParam(c, "size", defaultPageSize, maxPageSize)
	if !ok {
		return
	}
	list := c.g.cat.list
	from := min((page-1)*size, len(list))
	to := min(from+size, len(list))
	c.replyCacheable(jsonReply(http.StatusOK, productPage{Products: list[from:to], Page: page, Size: size, Total: len(list)}), listCacheControl, "products")
}

type productDetail struct {
	Product
	StockHint int64 `json:"stock_hint"`
}

func handleProduct(c *call) {
	p, ok := c.g.cat.get(c.arg)
	if !ok {
		c.replyError(http.StatusNotFound, "unknown_product", "no product "+c.arg)
		return
	}
	d := productDetail{Product: p}
	err := c.g.store.View(c.inc.ctx, func(tx Tx) error {
		s, _, err := tx.Stock(p.ID)
		d.StockHint = s.Available
		return err
	})
	if err != nil {
		c.replyStoreError(err)
		return
	}
	c.replyCacheable(jsonReply(http.StatusOK, d), productCacheControl, "product-"+p.ID+" products")
}

type searchResult struct {
	Products []Product `json:"products"`
	Query    string    `json:"query"`
}

// handleSearch matches the query as a case-insensitive substring of the
// names; an empty query matches everything. At most maxSearchHits.
func handleSearch(c *call) {
	q := strings.ToLower(strings.TrimSpace(c.r.URL.Query().Get("q")))
	res := searchResult{Products: []Product{}, Query: q}
	for i, name := range c.g.cat.lower {
		if strings.Contains(name, q) {
			res.Products = append(res.Products, c.g.cat.list[i])
			if len(res.Products) == maxSearchHits {
				break
			}
		}
	}
	c.replyCacheable(jsonReply(http.StatusOK, res), listCacheControl, "products")
}

func catalogState(_ context.Context, g *Group) (map[string]int64, error) {
	return map[string]int64{"products": int64(len(g.cat.list))}, nil
}
