package loadgen

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// samplePrefix is fakeShop's key of a request: method and path, with the
// product id cut from product and stock pages.
func samplePrefix(method, target string) string {
	u, err := url.Parse(target)
	if err != nil {
		return method + " " + target
	}
	p := u.Path
	for _, pre := range []string{"/catalog/products/", "/inventory/stock/"} {
		if strings.HasPrefix(p, pre) {
			p = pre
		}
	}
	return method + " " + p
}

// TestSampleRequestsCoverEveryRequestSent: SampleRequests, which the
// example proxy configuration is checked against, lists every kind of
// request the generator sends in either mode (and nothing it never sends).
func TestSampleRequestsCoverEveryRequestSent(t *testing.T) {
	samples := map[string]bool{}
	for _, r := range SampleRequests() {
		samples[samplePrefix(r.Method, r.Path)] = true
	}
	shop := newFakeShop()
	target := startFakeShop(t, shop)
	all, err := ParseFunnel("browse=1,product=1,cart=1,checkout=1")
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{Mode: ModeSessions, Funnel: all, Think: -1},
		{Mode: ModeRequests},
	} {
		cfg.Target, cfg.Duration, cfg.Rate, cfg.Seed = target, 500*time.Millisecond, Constant(400), 3
		if _, err := Run(context.Background(), cfg, nil); err != nil {
			t.Fatal(err)
		}
	}
	shop.mu.Lock()
	defer shop.mu.Unlock()
	for k := range shop.paths {
		if !samples[k] {
			t.Errorf("the generator sent %s, which SampleRequests does not list", k)
		}
	}
	for k := range samples {
		if shop.paths[k] == 0 {
			t.Errorf("SampleRequests lists %s, which the generator never sent", k)
		}
	}
}
