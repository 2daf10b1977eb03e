package proxy

import (
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkForwardAccessLog is BenchmarkForward/round_robin with the
// listener's access log on, written to a file: compare its ns/op and
// allocs/op with BenchmarkForward/round_robin for the cost per request.
func BenchmarkForwardAccessLog(b *testing.B) {
	for _, format := range []string{"combined", "json"} {
		b.Run(format, func(b *testing.B) {
			bs := []*testBackend{newFastBackend(b), newFastBackend(b), newFastBackend(b)}
			path := filepath.Join(b.TempDir(), "access.log")
			cfg := strings.Replace(baseConfig, "    routes: [{service: app}]",
				"    access_log: {path: \""+path+"\", format: "+format+"}\n    routes: [{service: app}]", 1)
			px := startProxy(b, renderConfig(b, cfg+`
services:
  - name: app
    policy: round_robin
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    health:
      active: {path: /healthz, interval: 5s}
`, bs...))
			runRawClient(b, strings.TrimPrefix(px.url, "http://"))
		})
	}
}

// BenchmarkAccessLogFormat is the formatting alone, on the request's
// goroutine: what a logged request pays beyond the record's bookkeeping.
func BenchmarkAccessLogFormat(b *testing.B) {
	e := fullEntry()
	e.UserAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	for _, tc := range []struct {
		name string
		f    func([]byte, *accessEntry) []byte
	}{{"combined", appendCombined}, {"json", appendJSON}} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				buf = tc.f(buf[:0], &e)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
