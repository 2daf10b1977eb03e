package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/scenarios"
)

// TestEmbeddedScenariosParse: every scenario under scenarios/ is valid, and
// the ones that replay a trace find it.
func TestEmbeddedScenariosParse(t *testing.T) {
	names := scenarios.Names()
	for _, want := range []string{"steady", "diurnal", "flash-sale", "heterogeneous", "failure-mid-spike", "scale-out-cold-start", "nasa-replay"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("scenario %s missing from scenarios/ (have %v)", want, names)
		}
	}
	for _, n := range names {
		data, err := scenarios.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ParseScenario(data, n+".yaml")
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if sc.Name != n {
			t.Errorf("%s: name %q, want the file's name", n, sc.Name)
		}
		if err := sc.LoadTrace(func(p string) ([]byte, error) { return os.ReadFile(filepath.Join("../../scenarios", p)) }); err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if _, err := New(sc, Options{Policy: "round_robin"}); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// TestScenarioErrors: bad input is reported with the field path and the
// line, and with what to do.
func TestScenarioErrors(t *testing.T) {
	base := `duration: 1m
load: {rate: 10}
clients: {mode: requests}
services:
  - name: catalog
`
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown field with suggestion", base + "    wrokers: 4\n", []string{"s.yaml:6:", "services[catalog].wrokers", "unknown field", "did you mean `workers`?"}},
		{"duration without unit", "duration: 60\nload: {rate: 10}\nclients: {mode: requests}\nservices: [{name: a}]\n", []string{"s.yaml:1:", "duration", "a unit is required"}},
		{"wrong kind", base + "    workers: many\n", []string{"s.yaml:6:", "services[catalog].workers", "whole number"}},
		{"missing duration", "load: {rate: 10}\nservices: [{name: a}]\n", []string{"duration", "required"}},
		{"two load sources", "duration: 1m\nload: {rate: 10, curve: {base: 5}}\nclients: {mode: requests}\nservices: [{name: a}]\n", []string{"s.yaml:2:", "load", "exactly one"}},
		{"unknown service in a call", base + "    classes:\n      - name: x\n        calls: [{service: nope}]\n", []string{"s.yaml:8:", "calls[0].service", `unknown service "nope"`}},
		{"unknown class", "duration: 1m\nload: {rate: 10}\nclients: {mode: requests, mix: [{service: a, class: zz}]}\nservices: [{name: a}]\n", []string{"s.yaml:3:", "clients.mix[0].class", `no class "zz"`}},
		{"unknown policy", "duration: 1m\npolicies: [round_robin, fastest]\nload: {rate: 10}\nclients: {mode: requests}\nservices: [{name: a}]\n", []string{"s.yaml:2:", "policies[1]", `unknown policy "fastest"`}},
		{"bad policy option", base + "proxies:\n  policy_options:\n    prequal: {pool_sise: 4}\n", []string{"s.yaml:8:", "proxies.policy_options.prequal", "pool_sise"}},
		{"funnel grows", "duration: 1m\nload: {rate: 1}\nclients:\n  funnel:\n    - {name: a, reach: 1, requests: [{service: s}]}\n    - {name: b, reach: 2, requests: [{service: s}]}\nservices: [{name: s}]\n", []string{"s.yaml:6:", "clients.funnel[b].reach"}},
		{"call cycle", "duration: 1m\nload: {rate: 1}\nclients: {mode: requests}\nservices:\n  - name: a\n    classes: [{name: x, calls: [{service: b}]}]\n  - name: b\n    classes: [{name: y, calls: [{service: a}]}]\n", []string{"nest deeper than 4 (or form a cycle)"}},
		{"misspelt merged field", "duration: 1m\nload: {rate: 1}\nclients: {mode: requests}\nservices:\n  - <<: {name: a, wrokers: 2}\n", []string{"s.yaml:5:", "services[0].wrokers", "unknown field"}},
		{"duplicate key", base + "    workers: 2\n    workers: 3\n", []string{"s.yaml:7:", "services[catalog].workers", "set twice (first at line 6)"}},
		{"two documents", base + "---\nx: 1\n", []string{"more than one YAML document"}},
		{"syntax", "duration: 1m\nload: {rate: 10}\nservices:\n  - name: a\n   workers: 2\n", []string{"s.yaml:5:", "invalid YAML"}},
		{"empty", "", []string{"empty"}},
		{"scale plan without autoscale", base + "scale_plan: [{service: catalog, at: 1m, min_replicas: 3}]\n", []string{"scale_plan[0].service", "no autoscale"}},
		{"failure of a missing replica", base + "failures: [{service: catalog, replicas: [3], at: 10s}]\n", []string{"s.yaml:6:", "failures[0].replicas[0]", "does not exist"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario([]byte(tc.yaml), "s.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			var list ScenarioErrors
			if !errors.As(err, &list) {
				t.Fatalf("error %T, want ScenarioErrors", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if !strings.HasPrefix(msg, "s.yaml") {
				t.Errorf("error %q does not name the file", msg)
			}
		})
	}
}

// TestScenarioDefaults: absent fields take the documented defaults, and an
// explicit zero where zero means "none" is kept.
func TestScenarioDefaults(t *testing.T) {
	sc := mustParse(t, `duration: 1m
load: {rate: 10}
clients: {mode: requests}
services:
  - name: a
    autoscale: {max: 10}
  - name: b
    queue_timeout: 0s
    queue: 0
`)
	a, b := sc.Services[0], sc.Services[1]
	switch {
	case a.Workers != 8 || a.Queue != 64 || a.QueueTimeout != 500*time.Millisecond || a.ServiceTime.Mean != 20*time.Millisecond || *a.ServiceTime.CV != 0.5:
		t.Errorf("service defaults: %+v", a)
	case b.QueueTimeout != 0 || b.Queue != 0:
		t.Errorf("explicit zeros lost: queue %d, queue_timeout %v", b.Queue, b.QueueTimeout)
	case sc.Proxies.Timeout != 30*time.Second || *sc.Proxies.Retries.Attempts != 2 || sc.Proxies.Tick != 200*time.Millisecond:
		t.Errorf("proxy defaults: %+v", sc.Proxies)
	case len(sc.Clients.Mix) != 2 || sc.Clients.Mix[0].Class != "default" || sc.Clients.Mix[1].Weight != 1:
		t.Errorf("mix defaults: %+v", sc.Clients.Mix)
	case sc.Window != time.Minute || sc.Seed != 1 || !sc.Start.Equal(DefaultStart):
		t.Errorf("run defaults: window %v seed %d start %v", sc.Window, sc.Seed, sc.Start)
	}
	h := a.Autoscale
	if h.Min != 1 || h.SyncPeriod != 15*time.Second || *h.Tolerance != 0.1 || *h.ScaleDown.Stabilization != 300*time.Second ||
		len(h.ScaleUp.Policies) != 2 || h.ScaleUp.Policies[0] != (ScalePolicy{"pods", 4, 15 * time.Second}) ||
		h.ScaleUp.Policies[1] != (ScalePolicy{"percent", 100, 15 * time.Second}) || *h.ScaleUp.Stabilization != 0 {
		t.Errorf("HPA defaults: %+v up %+v down %+v", h, h.ScaleUp, h.ScaleDown)
	}
	shop := mustParse(t, strings.Replace(shortFlashSale, "clients: {mode: sessions, think: 500ms}", "", 1))
	if c := shop.Clients; c.Mode != "sessions" || len(c.Funnel) != 4 || !c.Funnel[3].Completes || c.Funnel[3].Retries != 2 || c.Think != time.Second {
		t.Errorf("client defaults: %+v", c)
	}
	// The default funnel references catalog etc.: without those services
	// the scenario must say so rather than crash.
	if _, err := ParseScenario([]byte("duration: 1m\nload: {rate: 1}\nservices: [{name: x}]\n"), "f"); err == nil || !strings.Contains(err.Error(), "unknown service \"catalog\"") {
		t.Errorf("default funnel over missing services: %v", err)
	}
}

// FuzzParseScenario: no input makes the parser panic, and what it accepts
// can be simulated for a moment without panicking.
func FuzzParseScenario(f *testing.F) {
	for _, n := range scenarios.Names() {
		data, _ := scenarios.Read(n)
		f.Add(data)
	}
	f.Add([]byte(shortFlashSale))
	f.Add([]byte("duration: 1m\nload: {rate: 10}\nservices: [{name: a, workers: 1, queue: -1}]\nclients: {mode: requests}\n"))
	f.Add([]byte("duration: 1m\nload: {rate: 50}\nclients: {mode: requests}\nservices: [{name: c, classes: [{name: p}], proxy_cache: {classes: [p], keys: 100, max_entries: 10, ttl: 1s, eviction: lru}}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\nservices: [*f, *f, *f, *f, *f, *f, *f, *f]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data, "fuzz.yaml")
		if err != nil {
			if sc != nil {
				t.Fatal("scenario returned with an error")
			}
			return
		}
		if sc.Load.Trace != nil {
			return // needs a file
		}
		// Keep the run tiny whatever the input asked for.
		sc.Duration = min(sc.Duration, 2*time.Second)
		sc.Window = time.Second
		for i := range sc.Services {
			sc.Services[i].Replicas = min(sc.Services[i].Replicas, 3)
			if a := sc.Services[i].Autoscale; a != nil {
				a.Min = min(a.Min, 3)
				a.Max = max(a.Min, min(a.Max, 4))
			}
			sc.Services[i].Workers = min(sc.Services[i].Workers, 8)
			if c := sc.Services[i].ProxyCache; c != nil {
				c.Keys, c.MaxEntries = min(c.Keys, 10000), min(c.MaxEntries, 10000)
			}
		}
		for i := range sc.Failures {
			sc.Failures[i].Replicas = nil
			if sc.Failures[i].Share == 0 {
				sc.Failures[i].Share = 0.5
			}
		}
		sc.Proxies.Count = min(sc.Proxies.Count, 3)
		if l := &sc.Load; l.Rate > 200 {
			l.Rate = 200
		}
		if c := sc.Load.Curve; c != nil {
			c.Base = min(c.Base, 200)
		}
		if s := sc.Load.Steps; s != nil {
			c := sc.Capacity(s.Service)
			s.From, s.To = min(s.From, 200/c), min(s.To, 200/c)
		}
		for _, ws := range [][]Window{sc.Load.FlashSales, sc.Load.Campaigns} {
			for i := range ws {
				ws[i].X = min(ws[i].X, 3)
			}
		}
		if _, err := Run(sc, Options{Policy: "least_request"}); err != nil {
			t.Fatalf("accepted scenario does not run: %v", err)
		}
	})
}

// TestHeterogeneousTextMatchesSpeeds: the heterogeneous scenario's comment
// and description state the speed range its YAML draws from.
func TestHeterogeneousTextMatchesSpeeds(t *testing.T) {
	data, err := scenarios.Read("heterogeneous")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseScenario(data, "heterogeneous.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := sc.Services[0].SpeedRange
	if r == nil {
		t.Fatal("no speed_range")
	}
	desc := fmt.Sprintf("speeds %.1fx-%.1fx", r.Min, r.Max)
	comment := fmt.Sprintf("at %.1fx to %.1fx its allocation", r.Min, r.Max)
	if !strings.Contains(sc.Description, desc) {
		t.Errorf("description %q does not say %q", sc.Description, desc)
	}
	if !strings.Contains(string(data), comment) {
		t.Errorf("the comment does not say %q", comment)
	}
}
