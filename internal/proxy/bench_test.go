package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkForward measures the proxy's cost per request over loopback with
// a raw keep-alive client (so the client adds no allocations): ns/op is
// client+proxy+backend wall time on this machine, allocs/op is what the
// proxy and the backend allocate. Run with -benchmem; compare with
// BenchmarkBackendDirect to see the proxy's share.
func BenchmarkForward(b *testing.B) {
	for _, policy := range []string{"round_robin", "least_request"} {
		b.Run(policy, func(b *testing.B) {
			bs := []*testBackend{newFastBackend(b), newFastBackend(b), newFastBackend(b)}
			px := startProxy(b, renderConfig(b, baseConfig+`
services:
  - name: app
    policy: `+policy+`
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    health:
      active: {path: /healthz, interval: 5s}
`, bs...))
			runRawClient(b, strings.TrimPrefix(px.url, "http://"))
		})
	}
}

// BenchmarkBackendDirect is the same client against one backend directly.
func BenchmarkBackendDirect(b *testing.B) {
	runRawClient(b, newFastBackend(b).addr)
}

func newFastBackend(b testing.TB) *testBackend {
	body := []byte(strings.Repeat("x", 1024))
	return newCustomBackend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}))
}

func runRawClient(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /item/1 HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: bench\r\n\r\n")
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, 64<<10)
	readOne := func() {
		// Parse just enough: headers up to the blank line, then the body
		// of the announced length.
		n := -1
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
			if len(line) > 16 && strings.EqualFold(string(line[:15]), "Content-Length:") {
				fmt.Sscanf(string(line[15:]), "%d", &n)
			}
		}
		if n < 0 {
			b.Fatal("no Content-Length")
		}
		if _, err := io.ReadFull(br, buf[:n]); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ { // warm the pools
		c.Write(req)
		readOne()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		readOne()
	}
}
