package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// Class groups requests for statistics: one latency histogram per class.
type Class uint8

// The endpoint classes of docs/shop-api.md.
const (
	ClassCatalog   Class = iota // GET /catalog/products (listing)
	ClassProduct                // GET /catalog/products/{id}
	ClassSearch                 // GET /catalog/search
	ClassCart                   // /cart, /cart/items
	ClassCheckout               // POST /checkout
	ClassInventory              // GET /inventory/stock/{id}
	ClassOther                  // anything else
	numClasses
)

var classNames = [numClasses]string{"catalog", "product", "search", "cart", "checkout", "inventory", "other"}

// String returns the class's name as used in summaries.
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Endpoint is a kind of request in the requests mode's mix.
type Endpoint string

// The endpoints a mix can draw from.
const (
	EndpointCatalog   Endpoint = "catalog"   // GET /catalog/products?page=N&size=20
	EndpointProduct   Endpoint = "product"   // GET /catalog/products/{id}
	EndpointSearch    Endpoint = "search"    // GET /catalog/search?q=…
	EndpointCart      Endpoint = "cart"      // GET /cart
	EndpointCartAdd   Endpoint = "cart_add"  // POST /cart/items
	EndpointInventory Endpoint = "inventory" // GET /inventory/stock/{id}
)

var endpointClass = map[Endpoint]Class{
	EndpointCatalog:   ClassCatalog,
	EndpointProduct:   ClassProduct,
	EndpointSearch:    ClassSearch,
	EndpointCart:      ClassCart,
	EndpointCartAdd:   ClassCart,
	EndpointInventory: ClassInventory,
}

// MixEntry is one endpoint of a mix with its relative weight.
type MixEntry struct {
	Endpoint Endpoint
	Weight   float64
}

// Mix is the weighted endpoint mix of the requests mode.
type Mix []MixEntry

// DefaultMix is browse-heavy, as shop traffic is: most requests list,
// show or search products; a few touch the cart.
var DefaultMix = Mix{
	{EndpointCatalog, 30},
	{EndpointProduct, 30},
	{EndpointSearch, 10},
	{EndpointCart, 10},
	{EndpointCartAdd, 5},
	{EndpointInventory, 15},
}

// ParseMix parses "catalog=30,product=30,…" (weights are relative).
func ParseMix(s string) (Mix, error) {
	var m Mix
	seen := map[Endpoint]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: %q is not endpoint=weight", s, kv)
		}
		e := Endpoint(strings.TrimSpace(k))
		if _, ok := endpointClass[e]; !ok {
			return nil, fmt.Errorf("mix %q: unknown endpoint %q (known: %s)", s, e, knownEndpoints())
		}
		if seen[e] {
			return nil, fmt.Errorf("mix %q: %s given twice", s, e)
		}
		seen[e] = true
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("mix %q: weight of %s: %q is not a number >= 0", s, e, v)
		}
		m = append(m, MixEntry{e, w})
	}
	return m, m.validate()
}

func (m Mix) validate() error {
	sum := 0.0
	for _, e := range m {
		if _, ok := endpointClass[e.Endpoint]; !ok {
			return fmt.Errorf("mix: unknown endpoint %q (known: %s)", e.Endpoint, knownEndpoints())
		}
		if e.Weight < 0 || math.IsNaN(e.Weight) || math.IsInf(e.Weight, 0) {
			return fmt.Errorf("mix: weight of %s must be a number >= 0", e.Endpoint)
		}
		sum += e.Weight
	}
	if sum <= 0 {
		return fmt.Errorf("mix: the weights add up to 0; give at least one endpoint a positive weight")
	}
	return nil
}

func knownEndpoints() string {
	var names []string
	for e := range endpointClass {
		names = append(names, string(e))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// picker draws endpoints from a mix by inverse CDF.
type picker struct {
	cum []float64
	eps []Endpoint
}

func newPicker(m Mix) picker {
	var p picker
	sum := 0.0
	for _, e := range m {
		if e.Weight <= 0 {
			continue
		}
		sum += e.Weight
		p.cum = append(p.cum, sum)
		p.eps = append(p.eps, e.Endpoint)
	}
	for i := range p.cum {
		p.cum[i] /= sum
	}
	return p
}

func (p picker) pick(rng *rand.Rand) Endpoint {
	u := rng.Float64()
	i := sort.SearchFloat64s(p.cum, u)
	return p.eps[min(i, len(p.eps)-1)]
}

// The fixed paths of the shop's API the generator sends (the others are
// built per product, page or query in shopPaths).
const (
	pathCart      = "/cart"
	pathCartItems = "/cart/items"
	pathCheckout  = "/checkout"
)

// SampleRequests returns one request of every kind the generator sends,
// in either mode: the paths a proxy in front of the shop must route
// (examples/examples_test.go checks examples/lbsys.yaml against them, and
// TestSampleRequestsCoverEveryRequestSent that nothing else is sent).
func SampleRequests() []Request {
	p := newShopPaths(1)
	return []Request{
		{Method: "GET", Path: p.catalog[0]},
		{Method: "GET", Path: p.search[0]},
		{Method: "GET", Path: p.product[0]},
		{Method: "GET", Path: p.stock[0]},
		{Method: "GET", Path: pathCart},
		{Method: "POST", Path: pathCartItems, Body: p.cartAdd[0]},
		{Method: "POST", Path: pathCheckout, IdempotencyKey: "sample-1"},
	}
}

// catalogPages is how many listing pages browsing spreads over.
const catalogPages = 10

// searchWords are the queries of search requests.
var searchWords = []string{"shoe", "shirt", "lamp", "phone", "book", "mug", "chair", "watch", "bag", "cable",
	"red", "blue", "gift", "sale", "kids", "garden"}

// shopPaths holds every path and body the generator sends, built once, so
// that issuing a request allocates nothing for them.
type shopPaths struct {
	catalog   []string // listing pages
	product   []string // by product index
	stock     []string
	search    []string
	cartAdd   [][]byte // POST /cart/items bodies by product index
	popular   []float64
	productID []string
}

// zipfExponent shapes product popularity: a few products take most views,
// as in real shops (and as the cache and ring-hash affinity care about).
const zipfExponent = 1.0

func newShopPaths(products int) *shopPaths {
	p := &shopPaths{}
	for i := 1; i <= catalogPages; i++ {
		p.catalog = append(p.catalog, "/catalog/products?page="+strconv.Itoa(i)+"&size=20")
	}
	sum := 0.0
	for i := 1; i <= products; i++ {
		id := fmt.Sprintf("p%04d", i)
		p.productID = append(p.productID, id)
		p.product = append(p.product, "/catalog/products/"+id)
		p.stock = append(p.stock, "/inventory/stock/"+id)
		p.cartAdd = append(p.cartAdd, []byte(`{"product_id":"`+id+`","qty":1}`))
		sum += 1 / math.Pow(float64(i), zipfExponent)
		p.popular = append(p.popular, sum)
	}
	for i := range p.popular {
		p.popular[i] /= sum
	}
	for _, w := range searchWords {
		p.search = append(p.search, "/catalog/search?q="+w)
	}
	return p
}

// pickProduct draws a product index by popularity.
func (p *shopPaths) pickProduct(rng *rand.Rand) int {
	i := sort.SearchFloat64s(p.popular, rng.Float64())
	return min(i, len(p.popular)-1)
}

// request fills req for endpoint e and returns its class; product is the
// product a product, cart-add or stock request is about.
func (p *shopPaths) request(e Endpoint, rng *rand.Rand, req *Request, product int) Class {
	switch e {
	case EndpointCatalog:
		*req = Request{Method: "GET", Path: p.catalog[rng.IntN(len(p.catalog))]}
	case EndpointProduct:
		*req = Request{Method: "GET", Path: p.product[product]}
	case EndpointSearch:
		*req = Request{Method: "GET", Path: p.search[rng.IntN(len(p.search))]}
	case EndpointCart:
		*req = Request{Method: "GET", Path: pathCart}
	case EndpointCartAdd:
		*req = Request{Method: "POST", Path: pathCartItems, Body: p.cartAdd[product]}
	case EndpointInventory:
		*req = Request{Method: "GET", Path: p.stock[product]}
	default:
		*req = Request{Method: "GET", Path: "/"}
		return ClassOther
	}
	return endpointClass[e]
}
