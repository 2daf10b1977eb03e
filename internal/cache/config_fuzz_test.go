package cache

import (
	"bytes"
	"errors"
	"testing"

	"gopkg.in/yaml.v3"
)

// sections is the shape of the configuration file: the shared cache
// section and a route's section.
type sections struct {
	Cache Config      `yaml:"cache"`
	Route RouteConfig `yaml:"route"`
}

func decodeSections(data []byte) (sections, error) {
	var v sections
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&v)
	return v, err
}

// FuzzConfig: any YAML either fails to decode, fails validation with field
// errors, or builds a working cache; nothing panics.
func FuzzConfig(f *testing.F) {
	f.Add([]byte("cache:\n  max_bytes: 64MiB\n  coalesce: {max_waiters: 3}\nroute: {enabled: true, weight: 2}\n"))
	f.Add([]byte("cache: {max_object_bytes: 9GiB, warm: {rate: .5}}\n"))
	f.Add([]byte("route: {weight: -1, tag_header: '-'}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		v, err := decodeSections(data)
		if err != nil {
			return
		}
		if err := v.Cache.Validate(); err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || len(ce.Errors) == 0 {
				t.Fatalf("validation error without field errors: %v", err)
			}
			return
		}
		c, err := New(v.Cache, nil, nil)
		if err != nil {
			t.Fatalf("valid config refused by New: %v", err)
		}
		defer c.Close()
		if rerr := v.Route.Validate(); rerr == nil {
			if _, err := c.Route("r", v.Route); err != nil {
				t.Fatalf("valid route refused: %v", err)
			}
		}
	})
}
