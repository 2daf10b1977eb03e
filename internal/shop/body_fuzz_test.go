package shop

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// FuzzRequestBodies: the shop's JSON request bodies (cart add, inventory
// reserve/commit/release, payment charge/void) are parsed strictly and
// validated; no body makes a real instance fail (5xx), hang or answer
// anything but JSON. FuzzFaultJSON covers the fault-injection body.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{`{"product_id":"p0001","qty":1}`, `{"order_id":"o1","lines":[{"product_id":"p0001","qty":2}]}`,
		`{"order_id":"o1"}`, `{"order_id":"o1","amount_cents":100,"currency":"EUR"}`, `{"charge_id":"c1"}`, `{}`, `null`, `[]`,
		`{"qty":1e400}`, `{"qty":-1}`, `{"lines":[null]}`, `{"x":1}`, `{"qty":1} {}`, ``} {
		f.Add([]byte(s))
	}
	var urls []string
	for svc, paths := range map[string][]string{"cart": {"/cart/items"},
		"inventory": {"/inventory/reserve", "/inventory/commit", "/inventory/release"}, "payment": {"/payment/charge", "/payment/void"}} {
		cfg := testConfig(f, svc, 1)
		g, err := Start(f.Context(), cfg)
		if err != nil {
			f.Fatalf("start %s: %v", svc, err)
		}
		f.Cleanup(func() { g.Close() })
		for _, p := range paths {
			urls = append(urls, g.URLs()[0]+p)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, u := range urls {
			req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "fuzz-key-1")
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatalf("POST %s: %v", u, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 || !json.Valid(b) {
				t.Fatalf("POST %s %q: %d %s", u, body, resp.StatusCode, b)
			}
		}
	})
}
