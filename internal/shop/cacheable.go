package shop

import (
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
)

// HTTP caching of the shop's catalog (issue #15): catalog reads are
// cacheable by a shared cache in front of the shop (lbsys proxy's, NGINX's),
// and the inventory's writes say which product pages they changed, so such
// a cache drops them at once instead of serving a stale stock hint until
// it expires.
//
//   - GET /catalog/products/{id} carries Cache-Control with a short
//     browser lifetime and a longer shared one (s-maxage: a shared cache
//     may keep the page longer because it is told when the stock changes;
//     s-maxage also forbids serving it stale), a strong ETag (a 304 answers
//     a matching If-None-Match) and the purge tags "product-<id>" and
//     "products" in Surrogate-Key (lbsys's default tag header).
//   - The product list and search carry no stock: a longer lifetime, tag
//     "products".
//   - A successful reserve or release (the writes that change what a
//     product page shows: its available stock) answers with one
//     Link: </catalog/products/{id}>; rel="invalidates" per product it
//     changed. RFC 9111 §4.4 makes a cache invalidate the Location and
//     Content-Location of a successful unsafe request, but those name one
//     URI each and mean something else in a 200; linked cache
//     invalidation (draft-nottingham-linked-cache-inv) names as many as
//     the write changed, and lbsys's cache honours it for URIs of the same
//     origin (scheme, host and port) as the write. So the write must reach
//     the cache under the same host as the pages: checkout's --upstream is
//     the proxy's listener the clients use.
//
// A cache elsewhere in a fleet (another proxy replica) does not see the
// write and keeps a page until its s-maxage; POST /cache/purge with the
// tag reaches a given proxy (docs/admin.md).

// Caching lifetimes, in seconds.
const (
	productMaxAge       = 5  // browsers: the stock hint may go stale
	productSharedMaxAge = 30 // shared caches: invalidated by writes
	listMaxAge          = 60 // lists and search carry no stock
)

var (
	productCacheControl = "max-age=" + strconv.Itoa(productMaxAge) + ", s-maxage=" + strconv.Itoa(productSharedMaxAge)
	listCacheControl    = "max-age=" + strconv.Itoa(listMaxAge)
)

// productPath is a product's page, as Link targets name it.
func productPath(id string) string { return "/catalog/products/" + id }

// replyCacheable answers a catalog read with caching headers: 304 when the
// request's If-None-Match already names this representation.
func (c *call) replyCacheable(rep answer, cacheControl, tags string) {
	h := c.w.Header()
	etag := bodyETag(rep.Body)
	h["Cache-Control"] = []string{cacheControl}
	h["Etag"] = []string{etag}
	h["Surrogate-Key"] = []string{tags}
	if rep.Status == http.StatusOK && etagListed(c.r.Header.Values("If-None-Match"), etag) {
		c.setLoad()
		c.w.WriteHeader(http.StatusNotModified)
		return
	}
	c.replyRep(rep)
}

// bodyETag is a strong validator of a body: a hash of its bytes.
func bodyETag(body []byte) string {
	h := fnv.New64a()
	h.Write(body)
	return `"` + strconv.FormatUint(h.Sum64(), 36) + `"`
}

// etagListed reports whether If-None-Match lines list etag or "*", by weak
// comparison (RFC 9110 §13.1.2: W/ prefixes are ignored).
func etagListed(lines []string, etag string) bool {
	for _, line := range lines {
		for _, t := range strings.Split(line, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// linkInvalidates names the product pages a successful write changed, one
// Link field value each, sorted and without duplicates.
func (c *call) linkInvalidates(ids []string) {
	seen := map[string]bool{}
	var links []string
	for _, id := range ids {
		if id == "" || seen[id] || !validLinkID(id) {
			continue
		}
		seen[id] = true
		links = append(links, "<"+productPath(id)+`>; rel="invalidates"`)
	}
	if len(links) > 0 {
		c.w.Header()["Link"] = links
	}
}

// validLinkID keeps an id that came from a request out of the header when
// it could break the field (a product id is letters and digits anyway).
func validLinkID(id string) bool {
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '-', b == '_', b == '.':
		default:
			return false
		}
	}
	return len(id) <= 128
}
