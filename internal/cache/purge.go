package cache

import (
	"errors"
	"strings"
)

// PurgeRequest says what to remove from the cache. Exactly one of Path,
// Prefix and Tag is set; Route and Host narrow it (empty: every route,
// every host). This is what the admin endpoint `POST /cache/purge` passes.
type PurgeRequest struct {
	// Route limits the purge to one route's responses.
	Route string `json:"route,omitempty"`
	// Host limits the purge to one host (as clients send it, without the
	// default port).
	Host string `json:"host,omitempty"`
	// Path removes one URL: the path with its query exactly as clients
	// request it ("/products/42?color=red"), with all its variants.
	Path string `json:"path,omitempty"`
	// Prefix removes every URL whose path starts with it, on segment
	// boundaries ("/products" covers "/products/42", not "/productsale").
	Prefix string `json:"prefix,omitempty"`
	// Tag removes every response tagged with it in the route's tag header
	// (Surrogate-Key by default).
	Tag string `json:"tag,omitempty"`
}

// ErrBadPurge is wrapped by errors about a malformed PurgeRequest.
var ErrBadPurge = errors.New("bad purge request")

// Validate checks that exactly one selector is set and well formed.
func (p PurgeRequest) Validate() error {
	n := 0
	for _, s := range []string{p.Path, p.Prefix, p.Tag} {
		if s != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return errors.Join(ErrBadPurge, errors.New("set exactly one of path, prefix and tag"))
	case p.Path != "" && !strings.HasPrefix(p.Path, "/"):
		return errors.Join(ErrBadPurge, errors.New(`path must start with "/" (the request target, e.g. /products/42?color=red)`))
	case p.Prefix != "" && !strings.HasPrefix(p.Prefix, "/"):
		return errors.Join(ErrBadPurge, errors.New(`prefix must start with "/"`))
	case strings.ContainsAny(p.Tag, " ,\t"):
		return errors.Join(ErrBadPurge, errors.New("tag must be one tag, without spaces or commas"))
	}
	return nil
}

// Purge removes stored responses and returns how many URLs it removed. A
// purge by path with a route and a host is a direct removal; the others
// walk the store (admin operations, not request-path ones: about a
// millisecond per 10,000 stored URLs).
func (c *Cache) Purge(p PurgeRequest) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	host := strings.ToLower(p.Host)
	n := 0
	if p.Path != "" && p.Route != "" && host != "" {
		for _, scheme := range [...]string{"http", "https"} {
			if _, ok := c.store.Invalidate(Key{Route: p.Route, Scheme: scheme, Host: host, Target: p.Path}); ok {
				n++
			}
		}
		c.metrics.purged.Add(uint64(n))
		return n, nil
	}
	var doomed []Key
	for k, r := range c.store.All() {
		if p.Route != "" && k.Route != p.Route || host != "" && k.Host != host {
			continue
		}
		if matchPurge(p, k, r) {
			doomed = append(doomed, k)
		}
	}
	for _, k := range doomed {
		if _, ok := c.store.Invalidate(k); ok {
			n++
		}
	}
	c.metrics.purged.Add(uint64(n))
	return n, nil
}

func matchPurge(p PurgeRequest, k Key, r *resource) bool {
	switch {
	case p.Path != "":
		return k.Target == p.Path
	case p.Prefix != "":
		path := k.Target
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		return pathHasPrefix(path, p.Prefix)
	default:
		for _, e := range r.variants {
			for _, t := range e.tags {
				if t == p.Tag {
					return true
				}
			}
		}
		return false
	}
}
