package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// BenchmarkCache is BenchmarkForward's client against a route that caches:
// "hit" answers every request from the store (the origin is not
// contacted after the warm-up), "miss" forwards every request through the
// cache (the origin's answers may not be stored: no-store), the cost of
// the cache's path over the plain one. Compare with
// BenchmarkForward/round_robin.
func BenchmarkCache(b *testing.B) {
	body := []byte(strings.Repeat("x", 1024))
	for _, tc := range []struct{ name, cacheControl string }{{"hit", "max-age=3600"}, {"miss", "no-store"}} {
		b.Run(tc.name, func(b *testing.B) {
			be := newCustomBackend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Cache-Control", tc.cacheControl)
				w.Write(body)
			}))
			px := startProxy(b, renderConfig(b, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    cache: {enabled: true}
`, be))
			runRawClient(b, strings.TrimPrefix(px.url, "http://"))
		})
	}
}
