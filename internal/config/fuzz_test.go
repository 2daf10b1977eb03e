package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that no input makes Parse panic or hang, and that what
// it accepts is valid. Seeded with the example, so new inputs are minimized
// slowly (the example is 4 KB); add -fuzzminimizetime=2s for more execs.
func FuzzParse(f *testing.F) {
	f.Add(readExample(f))
	f.Add([]byte(base))
	f.Add([]byte(""))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(base + "    policy: {name: least_request, options: {choice_count: 1}}\n"))
	f.Add([]byte(base + "    health: {active: {interval: abc, expected_statuses: [600]}}\n"))
	f.Add([]byte("x: &x [*x]\n" + base + "    <<: *x\n"))
	f.Add([]byte(base + "    <<: [{priority: critical}, {priority: normal}]\n"))
	f.Add([]byte("listeners: [{listen: \"[::1]:80\", routes: [{service: a, match: {host: '*.x'}}]}]\nservices: [{name: a, endpoints: [{address: a:1}]}]\n"))
	f.Add([]byte("cache: {max_bytes: 8MiB, coalesce: {wait_timeout: 1s}, warm: {headers: {Accept-Encoding: gzip}}}\n" + base + "    cache: {enabled: true, weight: 4, tag_header: Cache-Tag}\n"))
	f.Add([]byte("listeners: [{listen: \"127.0.0.1:1\", routes: [{service: a, cache: {enabled: true, max_object_bytes: 1KiB}}]}]\nservices: [{name: a, endpoints: [{address: a:1}], cache: {weight: 0}}]\ncache: {max_bytes: 0}\n"))
	f.Add([]byte("listeners: [{listen: \"127.0.0.1:1\", routes: [{service: a}], access_log: {path: /tmp/a.log, format: json, sample: 0.5, query: true}}]\nservices: [{name: a, endpoints: [{address: a:1}]}]\ntelemetry: {jsonl_path: /tmp/a.log}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer has no hang detection of its own (a stuck worker looks
		// like one that is minimizing: 0 execs/sec). Crash instead, so the
		// input is saved.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("Parse hangs on %q", data))
			}
		}()
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			// Parse recovers panics so that a reload cannot crash the
			// proxy; for the fuzzer a recovered panic is still a bug.
			if strings.Contains(err.Error(), "internal error") {
				t.Fatal(err)
			}
			return
		}
		if len(cfg.Version()) != 12 {
			t.Fatalf("version %q", cfg.Version())
		}
		// A parsed config is valid, and defaults are a fixed point.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		for i := range cfg.Services {
			if f, err := cfg.Services[i].BalancerFactory(); err != nil || f == nil {
				t.Fatalf("service %d: no balancer factory: %v", i, err)
			}
		}
		if _, err := cfg.Server.TrustedNets(); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkParseExample(b *testing.B) {
	data := readExample(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
