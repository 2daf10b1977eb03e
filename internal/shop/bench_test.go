package shop

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardWriter is a reusable ResponseWriter, so that the "handler"
// benchmark counts the shop's allocations and not a recorder's.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkShopOverhead measures what the shop itself costs per request,
// with --latency 0, for a catalog product GET (route, fault check, worker
// admission, store read, JSON answer, load header):
//
//   - handler: the instance's ServeHTTP called in-process, no network;
//   - http: real HTTP/1.1 over loopback with keep-alive, in parallel, so
//     net/http's client and server are included.
//
// go test -run '^$' -bench ShopOverhead -benchmem ./internal/shop
func BenchmarkShopOverhead(b *testing.B) {
	cfg := testConfig(b, "catalog", 1)
	cfg.Workers, cfg.Queue = 64, 1024
	g := startGroup(b, cfg)

	b.Run("handler", func(b *testing.B) {
		inc := g.insts[0].inc.Load()
		req := httptest.NewRequest("GET", "/catalog/products/p0001", nil)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			inc.ServeHTTP(w, req)
		}
	})

	b.Run("http", func(b *testing.B) {
		url := g.URLs()[0] + "/catalog/products/p0001"
		client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	})
}
