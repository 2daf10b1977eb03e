package settings

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// cacheYAML is the shape phase 2 gives the configuration file: the shared
// cache section and a per-route section.
type cacheYAML struct {
	Cache Config      `yaml:"cache"`
	Route RouteConfig `yaml:"route"`
}

func decodeStrict(data []byte) (cacheYAML, error) {
	var v cacheYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&v)
	return v, err
}

func TestConfigYAML(t *testing.T) {
	v, err := decodeStrict([]byte(`
cache:
  max_bytes: 256MiB
  max_object_bytes: 2MB
  max_variants: 4
  heuristic_fraction: 0.2
  max_heuristic: 30m
  stale_if_error: 1m
  keep: 1h
  fetch_timeout: 20s
  pass_ttl: 5s
  coalesce: {max_waiters: 50, wait_timeout: 2s, max_background: 8}
  warm: {rate: 5, burst: 20, queue: 100, headers: {Accept-Encoding: gzip}}
route:
  enabled: true
  weight: 4
  allow_set_cookie: false
  allow_authorization: true
  tag_header: Cache-Tag
`))
	if err != nil {
		t.Fatal(err)
	}
	c := v.Cache
	if c.MaxBytes != 256<<20 || c.MaxObjectBytes != 2e6 || c.MaxVariants != 4 || c.HeuristicFraction != 0.2 ||
		c.MaxHeuristic != 30*time.Minute || c.StaleIfError != time.Minute || c.Keep != time.Hour || c.FetchTimeout != 20*time.Second ||
		c.Coalesce.MaxWaiters != 50 || c.Coalesce.WaitTimeout != 2*time.Second || c.Warm.Rate != 5 || c.Warm.Headers["Accept-Encoding"] != "gzip" {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if r := v.Route; !r.Enabled || r.Weight != 4 || !r.AllowAuthorization || r.TagHeader != "Cache-Tag" || r.Validate() != nil {
		t.Errorf("route %+v", r)
	}
	if _, err := decodeStrict([]byte("cache:\n  max_byte: 1MiB\n")); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := decodeStrict([]byte("cache:\n  max_bytes: lots\n")); err == nil || !strings.Contains(err.Error(), "64KiB") {
		t.Errorf("bad size: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.MaxBytes != DefaultMaxBytes || c.MaxObjectBytes != DefaultMaxObjectBytes || c.Coalesce.WaitTimeout != DefaultWaitTimeout ||
		c.Warm.Rate != DefaultWarmRate || c.Keep != DefaultKeep {
		t.Errorf("defaults %+v", c)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("the zero config must be valid: %v", err)
	}
	if r := (RouteConfig{}).WithDefaults(); r.Weight != 1 || r.TagHeader != DefaultTagHeader || r.Enabled {
		t.Errorf("route defaults %+v", r)
	}
	// A small cache gets a proportionally small object limit by default.
	if c := (Config{MaxBytes: 2 << 20}).WithDefaults(); c.MaxObjectBytes != 256<<10 {
		t.Errorf("max_object_bytes default for a 2MiB cache: %d", c.MaxObjectBytes)
	}
}

// TestConfigValidate: every problem is reported at once, each at its field
// path, saying what to write.
func TestConfigValidate(t *testing.T) {
	err := Config{
		MaxBytes: 1000, MaxObjectBytes: 2 << 30, MaxVariants: 100, HeuristicFraction: 2, StaleIfError: -1,
		Coalesce: CoalesceConfig{MaxWaiters: -1, WaitTimeout: time.Hour},
		Warm:     WarmConfig{Rate: -1, Headers: map[string]string{"Authorization": "x", "Bad Name": "y"}},
	}.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("got %v", err)
	}
	paths := map[string]bool{}
	for _, f := range ce.Errors {
		paths[f.Path] = true
		if f.Msg == "" {
			t.Errorf("%s: empty message", f.Path)
		}
	}
	for _, p := range []string{"max_bytes", "max_object_bytes", "max_variants", "heuristic_fraction", "stale_if_error",
		"coalesce.max_waiters", "coalesce.wait_timeout", "warm.rate", "warm.headers[Authorization]", "warm.headers[Bad Name]"} {
		if !paths[p] {
			t.Errorf("no error at %s in %v", p, err)
		}
	}
	rerr := RouteConfig{Weight: 9, TagHeader: "bad header", MaxObjectBytes: -1}.Validate()
	for _, p := range []string{"weight:", "tag_header:", "max_object_bytes:"} {
		if rerr == nil || !strings.Contains(rerr.Error(), p) {
			t.Errorf("route error lacks %s: %v", p, rerr)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"512": 512, "64KiB": 64 << 10, "10MB": 10e6, "1GiB": 1 << 30, " 2 MiB ": 2 << 20, "0": 0} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "1TB", "abc", "99999999999GiB", "1.5MiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"64KiB", "10MB", "7", "1GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err == nil && n < 0 {
			t.Fatalf("%q parsed to a negative size", s)
		}
	})
}
