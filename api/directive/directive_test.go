package directive

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const good = `{
  "schema": 1,
  "services": {
    "catalog": {
      "weights": {"127.0.0.1:9001": 1, "127.0.0.1:9002": 2.5, "127.0.0.1:9003": 0},
      "slow_start": [{"endpoint": "127.0.0.1:9003", "from": 0.1, "to": 1, "duration": "60s", "start": "2026-11-27T12:00:00Z"}],
      "admission": {"seed": 120, "min": 50, "cap": 400},
      "cache": {"warm": ["/catalog/items?page=1", "/catalog/top"], "ttl_hints": [{"path_prefix": "/catalog/", "ttl": "30s"}]},
      "scale": {"replicas": 6, "current": 4, "by": "2026-11-27T11:50:00Z"},
      "why": {"model": "gbdt@2026-11-27", "blessed": true,
              "forecast": [{"at": "2026-11-27T12:00:00Z", "rps": 1800, "lo": 1500, "hi": 2100}],
              "features": {"flash_sale": 1, "rps_lag_1d": 950}, "expected_effect": "p99 < 200ms through the flash sale"}
    },
    "cart": {"admission": {"cap": 300}}
  }
}`

func TestParseGood(t *testing.T) {
	d, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	c := d.Services["catalog"]
	if c.Weights["127.0.0.1:9002"] != 2.5 || c.SlowStart[0].Duration.Std() != time.Minute || c.Admission.Cap != 400 ||
		c.Cache.TTLHints[0].TTL.Std() != 30*time.Second || c.Scale.Replicas != 6 || !c.Why.Blessed {
		t.Fatalf("parsed %+v", c)
	}
	// Round trip through JSON keeps the content.
	b, _ := json.Marshal(d)
	d2, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(d, d2) || len(Diff(d, d2)) != 0 {
		t.Fatalf("round trip changed the directive: %v", Diff(d, d2))
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		name string
		json string
		want string
	}{
		{"no schema", `{"services": {}}`, `schema: required`},
		{"future schema", `{"schema": 2, "services": {}}`, `schema: unsupported schema 2`},
		{"no services", `{"schema": 1}`, `services: required`},
		{"unknown field", `{"schema": 1, "services": {}, "extra": 1}`, `unknown field "extra"`},
		{"trailing", `{"schema": 1, "services": {}} {}`, `data after the first value`},
		{"bad name", `{"schema": 1, "services": {"Catalog": {}}}`, `services[Catalog]: invalid service name`},
		{"null service", `{"schema": 1, "services": {"a": null}}`, `services[a]: null`},
		{"negative weight", `{"schema": 1, "services": {"a": {"weights": {"127.0.0.1:1": -1}}}}`, `services[a].weights[127.0.0.1:1]: must be a finite number between 0`},
		{"all zero", `{"schema": 1, "services": {"a": {"weights": {"127.0.0.1:1": 0}}}}`, `every listed endpoint has weight 0`},
		{"bad endpoint", `{"schema": 1, "services": {"a": {"weights": {"web1": 1}}}}`, `"web1" is not host:port`},
		{"ramp no endpoint", `{"schema": 1, "services": {"a": {"slow_start": [{"from": 0, "to": 1, "duration": "1s"}]}}}`, `slow_start[0].endpoint: required`},
		{"ramp dup", `{"schema": 1, "services": {"a": {"slow_start": [{"endpoint": "h:1", "to": 1, "duration": "1s"}, {"endpoint": "h:1", "to": 1, "duration": "1s"}]}}}`, `already ramped by slow_start[0]`},
		{"ramp duration", `{"schema": 1, "services": {"a": {"slow_start": [{"endpoint": "h:1", "to": 1, "duration": "0s"}]}}}`, `slow_start[0].duration: must be > 0`},
		{"bad duration", `{"schema": 1, "services": {"a": {"slow_start": [{"endpoint": "h:1", "to": 1, "duration": "soon"}]}}}`, `want a Go duration`},
		{"admission empty", `{"schema": 1, "services": {"a": {"admission": {}}}}`, `admission: empty`},
		{"admission min>cap", `{"schema": 1, "services": {"a": {"admission": {"min": 10, "cap": 5}}}}`, `admission.min: min (10) must not exceed cap (5)`},
		{"admission seed>cap", `{"schema": 1, "services": {"a": {"admission": {"seed": 10, "cap": 5}}}}`, `admission.seed: seed (10) must not exceed cap (5)`},
		{"admission negative", `{"schema": 1, "services": {"a": {"admission": {"seed": -1}}}}`, `seed, min and cap must be between 0`},
		{"warm relative", `{"schema": 1, "services": {"a": {"cache": {"warm": ["items"]}}}}`, `cache.warm[0]: "items" must start with /`},
		{"warm space", `{"schema": 1, "services": {"a": {"cache": {"warm": ["/a b"]}}}}`, `space or control character`},
		{"warm dup", `{"schema": 1, "services": {"a": {"cache": {"warm": ["/a", "/a"]}}}}`, `repeats warm[0]`},
		{"ttl zero", `{"schema": 1, "services": {"a": {"cache": {"ttl_hints": [{"path_prefix": "/", "ttl": "0s"}]}}}}`, `ttl_hints[0].ttl: must be > 0`},
		{"scale negative", `{"schema": 1, "services": {"a": {"scale": {"replicas": -1}}}}`, `scale.replicas: must be between 0`},
		{"bad cluster", `{"schema": 1, "cluster": "Prod Cluster", "services": {}}`, `cluster: "Prod Cluster" is not a cluster ID`},
		{"long cluster", `{"schema": 1, "cluster": "` + strings.Repeat("a", 65) + `", "services": {}}`, `is not a cluster ID`},
		{"why no model", `{"schema": 1, "services": {"a": {"why": {"blessed": true}}}}`, `why.model: required`},
		{"forecast lo>hi", `{"schema": 1, "services": {"a": {"why": {"model": "m", "forecast": [{"at": "2026-01-01T00:00:00Z", "rps": 1, "lo": 3, "hi": 2}]}}}}`, `lo (3) above hi (2)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`{"schema": 1, "services": {"a": {"weights": {"h:1": -1}, "scale": {"replicas": -2}}}}`))
	var ve *ValidationError
	// The negative weight, no weight above 0, and the scale.
	if !errors.As(err, &ve) || len(ve.Errors) != 3 {
		t.Fatalf("want every problem listed, got %v", err)
	}
}

func TestValidateNonFinite(t *testing.T) {
	d := &Directive{Schema: 1, Services: map[string]*Service{"a": {Weights: map[string]float64{"h:1": math.NaN()}}}}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "finite") {
		t.Fatalf("NaN weight: %v", err)
	}
	d = &Directive{Schema: 1, Services: map[string]*Service{"a": {Why: &Why{Model: "m", Features: map[string]float64{"x": math.Inf(1)}}}}}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "features[x]") {
		t.Fatalf("Inf feature: %v", err)
	}
}

func TestDiff(t *testing.T) {
	a, _ := Parse([]byte(`{"schema": 1, "services": {"catalog": {"weights": {"h:1": 1, "h:2": 2}}, "cart": {"admission": {"cap": 10}}}}`))
	b, _ := Parse([]byte(`{"schema": 1, "services": {"catalog": {"weights": {"h:1": 1, "h:2": 3, "h:3": 1}, "scale": {"replicas": 4}}}}`))
	got := FormatDiff(Diff(a, b))
	want := `services[cart].admission.cap: 10 -> (none)
services[catalog].scale.replicas: (none) -> 4
services[catalog].weights[h:2]: 2 -> 3
services[catalog].weights[h:3]: (none) -> 1
`
	if got != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", got, want)
	}
	if FormatDiff(Diff(a, a)) != "no changes\n" {
		t.Fatal("diff of a directive with itself is not empty")
	}
	// Versions do not count as content.
	a2 := a.Clone()
	a2.Version, a2.Change = 7, 3
	if !Equal(a, a2) || len(Diff(a, a2)) != 0 {
		t.Fatal("version made a difference")
	}
	// An empty service differs from an absent one.
	c, _ := Parse([]byte(`{"schema": 1, "services": {"x": {}}}`))
	if d := Diff(nil, c); len(d) != 1 || d[0].Path != "services[x]" {
		t.Fatalf("empty service: %v", d)
	}
}

func TestWeightMoves(t *testing.T) {
	a, _ := Parse([]byte(`{"schema": 1, "services": {"s": {"weights": {"h:1": 1, "h:2": 2, "h:4": 0}}}}`))
	b, _ := Parse([]byte(`{"schema": 1, "services": {"s": {"weights": {"h:1": 1.1, "h:2": 1, "h:3": 1.5, "h:4": 1}}}}`))
	m := WeightMoves(a, b)
	if len(m) != 4 {
		t.Fatalf("moves %+v", m)
	}
	if !math.IsInf(m[0].Percent, 1) || m[0].Endpoint != "h:4" {
		t.Errorf("from 0: %+v", m[0])
	}
	if m[1].Endpoint != "h:2" || m[1].Percent != 50 || m[2].Endpoint != "h:3" || m[2].Percent != 50 {
		t.Errorf("moves %+v", m)
	}
	if math.Abs(m[3].Percent-10) > 1e-9 {
		t.Errorf("h:1 moved %v%%", m[3].Percent)
	}
}

func TestStreamMessages(t *testing.T) {
	for _, c := range []struct {
		r    WatchRequest
		want string
	}{
		{WatchRequest{}, "proxy: required"},
		{WatchRequest{Proxy: "p", Rejected: 3}, "rejected and error go together"},
		{WatchRequest{Proxy: "p", WaitMs: -1}, ">= 0"},
	} {
		if err := c.r.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.r, err, c.want)
		}
	}
	r := Report{Proxy: "p", Services: map[string]ServiceStats{"a": {Requests: 1, Errors: 2}}}
	if err := r.Validate(); err == nil {
		t.Error("errors > requests accepted")
	}
}

// TestClusterIsCoordinatorAssigned: the cluster ID is kept through a round
// trip, is not content (Equal, Diff, Content ignore it), and is checked in
// stream messages.
func TestClusterIsCoordinatorAssigned(t *testing.T) {
	d, err := Parse([]byte(`{"schema": 1, "version": 3, "cluster": "c0ffee-1", "services": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Cluster != "c0ffee-1" {
		t.Fatalf("cluster %q", d.Cluster)
	}
	other := d.Clone()
	other.Cluster = "another"
	if !Equal(d, other) || len(Diff(d, other)) != 0 || d.Content().Cluster != "" {
		t.Fatal("the cluster ID must not count as content")
	}
	for _, c := range []struct {
		msg  any
		want string
	}{
		{&WatchRequest{Proxy: "p", Cluster: "UPPER"}, "cluster"},
		{&Report{Proxy: "p", Cluster: "a b"}, "cluster"},
		{&WatchRequest{Proxy: "p", Cluster: "abc-123"}, ""},
	} {
		var err error
		switch m := c.msg.(type) {
		case *WatchRequest:
			err = m.Validate()
		case *Report:
			err = m.Validate()
		}
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.msg, err, c.want)
		}
	}
}
