package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/cache/settings"
)

// TestCacheSections: the cache sections decode strictly into the cache's
// own types, get the cache's defaults, and a route's section replaces its
// service's.
func TestCacheSections(t *testing.T) {
	in := `cache:
  max_bytes: 32MiB
  stale_if_error: 30s
  coalesce: {wait_timeout: 2s}
  warm: {rate: 2.5, headers: {Accept-Encoding: gzip}}
listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - name: search
        match: {path_prefix: /catalog/search}
        service: catalog
        cache: {enabled: false}
      - name: catalog
        service: catalog
services:
  - name: catalog
    endpoints: [{address: 127.0.0.1:9001}]
    cache: {enabled: true, weight: 4, tag_header: Cache-Tag, max_object_bytes: 256KiB}
`
	cfg, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cache
	want := settings.Config{MaxBytes: 32 << 20, MaxObjectBytes: 1 << 20, MaxVariants: 8, MaxVaryFields: 8, HeuristicFraction: 0.1,
		MaxHeuristic: time.Hour, StaleIfError: 30 * time.Second, Keep: 10 * time.Minute, FetchTimeout: 30 * time.Second, PassTTL: 10 * time.Second,
		Coalesce: settings.CoalesceConfig{MaxWaiters: 1000, WaitTimeout: 2 * time.Second, MaxBackground: 64},
		Warm:     settings.WarmConfig{Rate: 2.5, Burst: 10, Queue: 10000, Headers: map[string]string{"Accept-Encoding": "gzip"}}}
	if c.Warm.Headers["Accept-Encoding"] != "gzip" {
		t.Errorf("warm headers %v", c.Warm.Headers)
	}
	c.Warm.Headers, want.Warm.Headers = nil, nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("cache = %+v\nwant    %+v", c, want)
	}
	svc := &cfg.Services[0]
	search, catalog := &cfg.Listeners[0].Routes[0], &cfg.Listeners[0].Routes[1]
	if rc := search.CacheConfig(svc); rc.Enabled || rc.Weight != 1 || rc.TagHeader != "Surrogate-Key" {
		t.Errorf("search route cache = %+v, want its own section with defaults", rc)
	}
	if rc := catalog.CacheConfig(svc); !rc.Enabled || rc.Weight != 4 || rc.TagHeader != "Cache-Tag" || rc.MaxObjectBytes != 256<<10 {
		t.Errorf("catalog route cache = %+v, want the service's", rc)
	}
	// Off by default.
	plain, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if rc := plain.Listeners[0].Routes[0].CacheConfig(&plain.Services[0]); rc.Enabled {
		t.Error("a route caches without opting in")
	}
	if plain.Cache.MaxBytes != settings.DefaultMaxBytes {
		t.Errorf("default max_bytes %d", plain.Cache.MaxBytes)
	}
}

// TestCacheErrors: every problem of a cache section is reported at its
// field path and line, with what to write.
func TestCacheErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown field", "cache: {max_byte: 1MiB}\n" + base,
			[]string{"line 1: cache.max_byte: unknown field: did you mean `max_bytes`?"}},
		{"bad size", "cache:\n  max_bytes: lots\n" + base,
			[]string{`line 2: cache.max_bytes: invalid size "lots"`}},
		{"too small", "cache:\n  max_bytes: 1000\n" + base,
			[]string{"line 2: cache.max_bytes: 1000 bytes is too small to be useful"}},
		{"object above an eighth", "cache:\n  max_bytes: 8MiB\n  max_object_bytes: 2MiB\n" + base,
			[]string{"line 3: cache.max_object_bytes: 2097152 bytes is more than max_bytes/8"}},
		{"explicit zero", "cache:\n  coalesce:\n    max_waiters: 0\n" + base,
			[]string{"line 3: cache.coalesce.max_waiters: must be greater than 0; remove the line to use the default 1000"}},
		{"bad duration", "cache:\n  keep: soon\n" + base,
			[]string{`line 2: cache.keep: cannot use "soon" as a duration`}},
		{"credentials in warm headers", "cache:\n  warm:\n    headers:\n      Cookie: a=b\n" + base,
			[]string{"line 4: cache.warm.headers[Cookie]: warm requests must not carry credentials"}},
		{"service weight", base + "    cache:\n      weight: 9\n",
			[]string{"line 11: services[web].cache.weight: must be in (0, 8], got 9"}},
		{"service weight zero", base + "    cache:\n      weight: 0\n",
			[]string{"line 11: services[web].cache.weight: must be greater than 0; remove the line to use the default 1"}},
		{"empty tag header", base + "    cache:\n      tag_header: ''\n",
			[]string{"line 11: services[web].cache.tag_header: is empty; write - for no purge tags"}},
		{"bad tag header", base + "    cache: {tag_header: 'Cache Tag'}\n",
			[]string{`line 10: services[web].cache.tag_header: "Cache Tag" is not a valid header field name`}},
		{"route section", "listeners:\n  - name: public\n    listen: 127.0.0.1:8080\n    routes:\n      - service: web\n        cache: {enabled: true, max_object_bytes: 2GiB}\nservices:\n  - name: web\n    endpoints: [{address: 127.0.0.1:9001}]\n",
			[]string{"line 6: listeners[public].routes[0].cache.max_object_bytes: must be between 0 and 1GiB"}},
		{"cached route names must be unique", `listeners:
  - name: a
    listen: 127.0.0.1:8080
    routes: [{name: shop, service: web}]
  - name: b
    listen: 127.0.0.1:8081
    routes: [{name: shop, service: web}]
services:
  - name: web
    endpoints: [{address: 127.0.0.1:9001}]
    cache: {enabled: true}
`, []string{"line 7: listeners[b].routes[0].name: route name \"shop\" is also the name of listeners[a].routes[0] (line 4), which caches too"}},
		{"cookie affinity with allow_set_cookie", base + "    affinity: {type: cookie}\n    cache: {enabled: true, allow_set_cookie: true}\n",
			[]string{"services[web].cache.allow_set_cookie: cannot be true on a route of services[web], which uses cookie affinity"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain\n  %s\ngot:\n%s", w, err)
				}
			}
		})
	}
	// Unnamed cached routes on two listeners get distinct default names.
	two := `listeners:
  - {name: a, listen: 127.0.0.1:8080, routes: [{service: web}]}
  - {name: b, listen: 127.0.0.1:8081, routes: [{service: web}]}
services:
  - {name: web, endpoints: [{address: 127.0.0.1:9001}], cache: {enabled: true}}
`
	if _, err := Parse([]byte(two)); err != nil {
		t.Errorf("default route names collide: %v", err)
	}
	// Named alike, they collide.
	if _, err := Parse([]byte(strings.ReplaceAll(two, "routes: [{service: web}]", "routes: [{name: r, service: web}]"))); err == nil {
		t.Error("two cached routes named r accepted")
	}
}
