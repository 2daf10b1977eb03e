package shop

import (
	"fmt"
	"strings"
)

// Product is one article of the shop. Products are generated, not stored:
// the same count gives the same ids, names and prices in every process, so
// catalog, cart and inventory agree without talking to each other.
type Product struct {
	ID         string `json:"id"`          // p0001, p0002, …
	Name       string `json:"name"`        // e.g. "Blue Kettle 17"
	PriceCents int64  `json:"price_cents"` // 199 to 29989
}

var (
	adjectives = []string{"Red", "Blue", "Green", "Black", "White", "Silver", "Golden", "Wooden", "Organic", "Vintage",
		"Compact", "Classic", "Smart", "Eco", "Deluxe", "Travel", "Mini", "Ultra", "Soft", "Rugged"}
	nouns = []string{"Kettle", "Backpack", "Lamp", "Mug", "Sneaker", "Jacket", "Headphones", "Notebook", "Blender", "Chair",
		"Watch", "Umbrella", "Tent", "Bottle", "Scarf", "Speaker", "Pan", "Pillow", "Keyboard", "Camera",
		"Bicycle", "Guitar", "Toaster", "Wallet", "Sunglasses"}
)

// splitmix64 is a fixed, well-mixed hash of an index (Steele, Lea, Flood,
// "Fast splittable pseudorandom number generators", OOPSLA 2014), so that
// names and prices look random but never change.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// productID is the id of the i-th product, 1-based: p0001, p0002, …
func productID(i int) string { return fmt.Sprintf("p%04d", i) }

// catalogData is the generated product list with its lookups.
type catalogData struct {
	list  []Product
	index map[string]int
	lower []string // lower-cased names, for search
}

func newCatalogData(n int) *catalogData {
	c := &catalogData{list: make([]Product, n), index: make(map[string]int, n), lower: make([]string, n)}
	for i := range n {
		h := splitmix64(uint64(i + 1))
		name := fmt.Sprintf("%s %s %d", adjectives[h%uint64(len(adjectives))], nouns[(h>>8)%uint64(len(nouns))], i+1)
		// 1.99 to 299.89, ending in 9 like shop prices do.
		price := 199 + int64((h>>16)%2980)*10
		p := Product{ID: productID(i + 1), Name: name, PriceCents: price}
		c.list[i] = p
		c.index[p.ID] = i
		c.lower[i] = strings.ToLower(name)
	}
	return c
}

func (c *catalogData) get(id string) (Product, bool) {
	i, ok := c.index[id]
	if !ok {
		return Product{}, false
	}
	return c.list[i], true
}
