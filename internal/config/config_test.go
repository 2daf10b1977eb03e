package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// base is the smallest valid file. Its services[web] mapping ends at line
// 9, so cases append service fields at 4 spaces and get line 10.
const base = `listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - service: web
services:
  - name: web
    endpoints:
      - address: 127.0.0.1:9001
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error, each must appear
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"comments only", "# nothing here\n", []string{"the file is empty"}},
		{"null document", "---\n", []string{"the file is empty"}},
		{"two documents", base + "---\n" + base, []string{"line 10: the file holds more than one YAML document"}},
		{"syntax error", base + "  - name: [\n", []string{"line 10: invalid YAML: did not find expected node content"}},
		{"top level is a list", "- a\n", []string{"line 1: the top level must be a mapping with `listeners:` and `services:`, got a list"}},
		{"unknown top-level field", "listner: []\n" + base,
			[]string{"line 1: listner: unknown field: did you mean `listeners`? allowed fields here: admin, cache, coordinator, listeners, server, services, telemetry"}},
		{"unknown field with suggestion", base + "        wieght: 2\n",
			[]string{"line 10: services[web].endpoints[0].wieght: unknown field: did you mean `weight`? allowed fields here: address, weight"}},
		{"unknown field without suggestion", base + "    colour: blue\n",
			[]string{"line 10: services[web].colour: unknown field: allowed fields here: admission, affinity, cache, endpoints, health, name, policy, priority, retries, timeouts, upstream"}},
		{"misspelt required field is not reported twice", "listeners:\n  - listen: 127.0.0.1:8080\n    routes:\n      - servce: web\nservices:\n  - name: web\n    endpoints: [{address: 127.0.0.1:9001}]\n",
			[]string{"line 4: listeners[0].routes[0].servce: unknown field: did you mean `service`?"}},
		{"duplicate key", base + "    name: web2\n", []string{"line 10: services[web].name: set twice (first at line 7); keep one"}},
		{"bad duration", base + "    health:\n      active:\n        interval: abc\n",
			[]string{`line 12: services[web].health.active.interval: cannot use "abc" as a duration: write a number with a unit, such as 500ms, 5s or 1m30s`}},
		{"duration without unit", base + "    health:\n      active:\n        interval: 5\n",
			[]string{"line 12: services[web].health.active.interval: cannot use 5 as a duration: a unit is required, e.g. 5s or 5ms"}},
		{"quoted integer", base + "        weight: \"x\"\n", []string{`line 10: services[web].endpoints[0].weight: cannot use "x" as a whole number; remove the quotes`}},
		{"fractional integer", base + "        weight: 1.5\n", []string{`line 10: services[web].endpoints[0].weight: cannot use "1.5" as a whole number (no fraction)`}},
		{"weight zero", base + "        weight: 0\n", []string{"line 10: services[web].endpoints[0].weight: must be between 1 and 10000, got 0; to take an endpoint out of rotation"}},
		{"weight too large", base + "        weight: 10001\n", []string{"services[web].endpoints[0].weight: must be between 1 and 10000, got 10001"}},
		{"non-finite float", base + "    health: {panic_threshold: .nan}\n", []string{`services[web].health.panic_threshold: cannot use ".nan" as a number (it must be finite)`}},
		{"bool expected", "admin: {allow_remote: yes}\n" + base, []string{`line 1: admin.allow_remote: cannot use "yes" as true or false`}},
		{"list expected", "listeners: x\nservices: 3\n", []string{
			`line 1: listeners: expected a list, got "x"; write [x] for a list of one`,
			`line 2: services: expected a list, got "3"`}},
		{"endpoint as scalar", "listeners: [{listen: 127.0.0.1:8080, routes: [{service: web}]}]\nservices:\n  - name: web\n    endpoints: [127.0.0.1:9001]\n",
			[]string{"line 4: services[web].endpoints[0]: expected a mapping with fields address, weight, got \"127.0.0.1:9001\"; write it as `address: 127.0.0.1:9001`"}},
		{"no listeners or services", "admin: {}\n", []string{
			"line 1: listeners: at least one listener is required",
			"line 1: services: at least one service is required"}},
		{"missing listen", "listeners:\n  - routes: [{service: web}]\nservices: [{name: web, endpoints: [{address: 127.0.0.1:9001}]}]\n",
			[]string{"line 2: listeners[0].listen: required: set host:port, e.g. 127.0.0.1:8080"}},
		{"listen without port", "listeners:\n  - listen: 127.0.0.1\n    routes: [{service: web}]\nservices: [{name: web, endpoints: [{address: 127.0.0.1:9001}]}]\n",
			[]string{`line 2: listeners[0].listen: cannot use "127.0.0.1" as an address: missing port in address; write host:port`}},
		{"named port", "listeners:\n  - listen: 127.0.0.1:http\n    routes: [{service: web}]\nservices: [{name: web, endpoints: [{address: 127.0.0.1:9001}]}]\n",
			[]string{`listeners[0].listen: port "http" of "127.0.0.1:http" is not a number from 0 to 65535`}},
		{"missing service name", "listeners: [{listen: 127.0.0.1:8080, routes: [{service: web}]}]\nservices:\n  - endpoints: [{address: 127.0.0.1:9001}]\n",
			[]string{"line 3: services[0].name: required: give the service a name", `listeners[0].routes[0].service: unknown service "web"`}},
		{"invalid service name", strings.Replace(base, "name: web", "name: Web", 1) + "", []string{
			`line 7: services[Web].name: invalid service name "Web": use lower-case letters, digits, ` + "`_` and `-`" + `, starting with a letter or digit (e.g. "web")`}},
		{"duplicate service names", base + "  - name: web\n    endpoints: [{address: 127.0.0.1:9002}]\n",
			[]string{`line 10: services[1].name: duplicate service name "web": already used by services[web] (line 7); service names must be unique`}},
		{"bad priority", base + "    priority: high\n", []string{`line 10: services[web].priority: unknown priority "high": use critical, normal or sheddable`}},
		{"no endpoints", "listeners: [{listen: 127.0.0.1:8080, routes: [{service: web}]}]\nservices:\n  - name: web\n    endpoints: []\n",
			[]string{"line 4: services[web].endpoints: at least one endpoint is required"}},
		{"duplicate endpoint", base + "      - address: 127.0.0.1:9001\n",
			[]string{`line 10: services[web].endpoints[1].address: duplicate endpoint "127.0.0.1:9001": already listed as services[web].endpoints[0]`}},
		{"endpoint with scheme", strings.Replace(base, "address: 127.0.0.1:9001", `address: "http://127.0.0.1:9001"`, 1),
			[]string{`line 9: services[web].endpoints[0].address: "http://127.0.0.1:9001" has a scheme; remove it`}},
		{"endpoint port zero", strings.Replace(base, "127.0.0.1:9001", "127.0.0.1:0", 1),
			[]string{`services[web].endpoints[0].address: port "0" of "127.0.0.1:0" is not a number from 1 to 65535`}},
		{"unknown policy", base + "    policy: least_requests\n",
			[]string{`line 10: services[web].policy.name: unknown policy "least_requests": did you mean ` + "`least_request`" + `? registered policies: least_request, maglev, peak_ewma, prequal, random, ring_hash, round_robin, weighted`}},
		{"policy of wrong shape", base + "    policy: [a]\n",
			[]string{"line 10: services[web].policy: expected a policy name such as `least_request`, or a mapping"}},
		{"bad policy option value", base + "    policy:\n      name: least_request\n      options:\n        choice_count: 1\n",
			[]string{"line 13: services[web].policy.options.choice_count: policy least_request rejected its options: must be between 2 and 16, got 1"}},
		{"unknown policy option", base + "    policy:\n      name: least_request\n      options:\n        choice_cont: 3\n",
			[]string{"line 13: services[web].policy.options.choice_cont: unknown field: did you mean `choice_count`? allowed fields here: active_request_bias, choice_count"}},
		{"policy option of wrong type", base + "    policy: {name: ring_hash, options: {epsilon: lots}}\n",
			[]string{`line 10: services[web].policy.options.epsilon: cannot use "lots" as a number`}},
		{"negative policy option", base + "    policy: {name: ring_hash, options: {epsilon: -1}}\n",
			[]string{"line 10: services[web].policy.options.epsilon: policy ring_hash rejected its options"}},
		{"options for a policy without options", base + "    policy: {name: round_robin, options: {x: 3}}\n",
			[]string{"line 10: services[web].policy.options.x: unknown field: nothing may be set here; remove it"}},
		{"scalar options for a policy without options", base + "    policy: {name: round_robin, options: 3}\n",
			[]string{`line 10: services[web].policy.options: takes no settings; remove it (got "3")`}},
		{"route to unknown service", strings.Replace(base, "- service: web", "- service: wbe", 1),
			[]string{"line 5: listeners[public].routes[0].service: unknown service \"wbe\": did you mean `web`? defined services: web"}},
		{"route without service", strings.Replace(base, "- service: web", "- name: r", 1),
			[]string{"line 5: listeners[public].routes[0].service: required: name the service that receives matching requests (services: web)"}},
		{"no routes", "listeners:\n  - listen: 127.0.0.1:8080\nservices: [{name: web, endpoints: [{address: 127.0.0.1:9001}]}]\n",
			[]string{"line 2: listeners[0].routes: at least one route is required"}},
		{"path prefix without slash", strings.Replace(base, "- service: web", "- {service: web, match: {path_prefix: api}}", 1),
			[]string{`line 5: listeners[public].routes[0].match.path_prefix: must start with ` + "`/`" + `, got "api"; write "/api"`}},
		{"lower-case method", strings.Replace(base, "- service: web", "- {service: web, match: {methods: [get]}}", 1),
			[]string{`line 5: listeners[public].routes[0].match.methods[0]: methods are case-sensitive; write "GET"`}},
		{"invalid method", strings.Replace(base, "- service: web", `- {service: web, match: {methods: ["P T"]}}`, 1),
			[]string{`listeners[public].routes[0].match.methods[0]: "P T" is not an HTTP method`}},
		{"bad host pattern", strings.Replace(base, "- service: web", `- {service: web, match: {host: "shop.*.com"}}`, 1),
			[]string{"listeners[public].routes[0].match.host: invalid host \"shop.*.com\": `*` is only allowed as a leading `*.`"}},
		{"host with port", strings.Replace(base, "- service: web", `- {service: web, match: {host: "shop.example.com:8080"}}`, 1),
			[]string{"listeners[public].routes[0].match.host: invalid host \"shop.example.com:8080\": remove the port"}},
		{"shadowed route", strings.Replace(base, "- service: web", "- service: web\n      - {service: web, match: {path_prefix: /cart}}", 1),
			[]string{"line 6: listeners[public].routes[1]: can never match: listeners[public].routes[0] (line 5) comes first"}},
		{"duplicate route names", strings.Replace(base, "- service: web", "- {service: web, name: a, match: {path_prefix: /a}}\n      - {service: web, name: a}", 1),
			[]string{`line 6: listeners[public].routes[1].name: duplicate route name "a"`}},
		{"tls without key", strings.Replace(base, "    routes:", "    tls: {cert_file: cert.pem}\n    routes:", 1),
			[]string{"line 4: listeners[public].tls.key_file: required with tls"}},
		{"empty optional section", base + "    health:\n      active:\n",
			[]string{"line 11: services[web].health.active: is empty; write `active: {}` to enable it with its defaults, or remove the line"}},
		{"explicit zero interval", base + "    health: {active: {interval: 0s}}\n",
			[]string{"line 10: services[web].health.active.interval: must be greater than 0; remove the line to use the default 5s"}},
		{"negative duration", base + "    timeouts: {connect: -1s}\n",
			[]string{"services[web].timeouts.connect: must be greater than 0, got -1s"}},
		{"timeout not below interval", base + "    health: {active: {interval: 1s, timeout: 1s}}\n",
			[]string{"line 10: services[web].health.active.timeout: 1s must be shorter than interval (1s)"}},
		{"bad thresholds", base + "    health: {active: {healthy_threshold: -1}}\n",
			[]string{"services[web].health.active.healthy_threshold: must be at least 1, got -1"}},
		{"bad status ranges", base + "    health:\n      active:\n        expected_statuses: [\"600\", 299-200, 2xx]\n", []string{
			`line 12: services[web].health.active.expected_statuses[0]: invalid status range "600": statuses lie within 100..599`,
			`line 12: services[web].health.active.expected_statuses[1]: invalid status range "299-200": the range is reversed (write "200-299")`,
			`line 12: services[web].health.active.expected_statuses[2]: invalid status range "2xx": statuses are three-digit numbers`}},
		{"empty status list", base + "    health: {active: {expected_statuses: []}}\n",
			[]string{"services[web].health.active.expected_statuses: is empty; list at least one status range"}},
		{"percent out of range", base + "    health: {panic_threshold: 150, outlier: {max_ejection_percent: -1}}\n", []string{
			"services[web].health.panic_threshold: must be a percentage from 0 to 100, got 150",
			"services[web].health.outlier.max_ejection_percent: must be a percentage from 0 to 100, got -1"}},
		{"outlier times reversed", base + "    health: {outlier: {base_ejection_time: 10m, max_ejection_time: 1m}}\n",
			[]string{"services[web].health.outlier.max_ejection_time: 1m is shorter than base_ejection_time (10m)"}},
		{"slow start without window", base + "    health: {slow_start: {aggression: 2}}\n",
			[]string{"services[web].health.slow_start.window: required: set the ramp length"}},
		{"slow start zero aggression", base + "    health: {slow_start: {window: 30s, aggression: 0}}\n",
			[]string{"services[web].health.slow_start.aggression: must be greater than 0; remove the line to use the default 1"}},
		{"retries", base + "    retries: {attempts: 11, on: [5xxx, reset, reset], backoff_base: 1s}\n", []string{
			"line 10: services[web].retries.attempts: must be between 0 and 10, got 11",
			"line 10: services[web].retries.on[0]: unknown retry condition \"5xxx\": did you mean `5xx`?",
			`line 10: services[web].retries.on[2]: "reset" is listed twice`,
			"line 10: services[web].retries.backoff_base: 1s is longer than backoff_max (250ms)"}},
		{"empty retry conditions", base + "    retries: {on: []}\n",
			[]string{"services[web].retries.on: is empty; list at least one condition, or set `attempts: 0` to turn retries off"}},
		{"per-try timeout too long", base + "    retries: {per_try_timeout: 40s}\n",
			[]string{"services[web].retries.per_try_timeout: 40s is not shorter than timeouts.request (30s)"}},
		{"unknown affinity type", base + "    affinity: {type: sticky}\n",
			[]string{`line 10: services[web].affinity.type: unknown affinity type "sticky": use none, cookie or hash`}},
		{"hash with both keys", base + "    affinity: {type: hash, hash: {header: X-A, cookie: b}}\n",
			[]string{"services[web].affinity.hash: set exactly one of `header` and `cookie`, not both"}},
		{"hash without key", base + "    affinity: {type: hash}\n",
			[]string{"services[web].affinity.hash: hash affinity needs a key"}},
		{"hash settings without type", base + "    affinity: {hash: {header: X-A}}\n",
			[]string{`services[web].affinity.hash: is set but affinity.type is "none"; set ` + "`type: hash`"}},
		{"bad cookie name", base + "    affinity: {type: cookie, cookie: {name: \"a b\"}}\n",
			[]string{`services[web].affinity.cookie.name: "a b" is not a valid cookie name`}},
		{"bad CIDR", base + "server:\n  trusted_proxies: [10.0.0.0/33]\n",
			[]string{`line 11: server.trusted_proxies[0]: cannot use "10.0.0.0/33" as a trusted proxy: write a CIDR such as 10.0.0.0/8`}},
		{"non-loopback admin", base + "admin:\n  listen: 0.0.0.0:9901\n",
			[]string{`line 11: admin.listen: "0.0.0.0:9901" listens on 0.0.0.0, which is not a loopback address;`, "`admin.allow_remote: true`"}},
		{"non-ASCII path prefix", strings.Replace(base, "      - service: web\n", "      - {service: web, match: {path_prefix: /café}}\n", 1),
			[]string{`path_prefix: "/café" contains non-ASCII characters; write them percent-encoded as clients send them, e.g. "/caf%C3%A9"`}},
		{"admin on all interfaces", base + "admin:\n  listen: :9901\n",
			[]string{"admin.listen: \":9901\" listens on all interfaces"}},
		{"remote admin without a token", base + "admin:\n  listen: 0.0.0.0:9901\n  allow_remote: true\n  token_env: LBSYS_TEST_UNSET_TOKEN\n",
			[]string{"line 12: admin.allow_remote: is true but no admin token is configured: set admin.token_file, or the variable LBSYS_TEST_UNSET_TOKEN"}},
		{"listen conflicts with admin", strings.Replace(base, "127.0.0.1:8080", "127.0.0.1:9901", 1),
			[]string{`line 3: listeners[public].listen: "127.0.0.1:9901" conflicts with admin.listen 127.0.0.1:9901 (the default): both bind port 9901`}},
		{"wildcard listen conflict", "listeners:\n  - {name: public, listen: \":8080\", routes: [{service: web}]}\n  - {listen: 127.0.0.2:8080, routes: [{service: web}]}\nservices: [{name: web, endpoints: [{address: 127.0.0.1:9001}]}]\n",
			[]string{`line 3: listeners[1].listen: "127.0.0.2:8080" conflicts with listeners[public].listen :8080 (line 2): both bind port 8080`}},
		{"server limits", base + "server: {max_header_bytes: 1XB, read_header_timeout: 0s}\n", []string{
			`line 10: server.max_header_bytes: invalid size "1XB"`,
			"line 10: server.read_header_timeout: must be greater than 0; remove the line to use the default 10s"}},
		{"telemetry", base + "telemetry: {ring_seconds: -5}\n", []string{"line 10: telemetry.ring_seconds: must be at least 1, got -5"}},
		{"upstream", base + "    upstream: {max_idle_per_endpoint: 0}\n", []string{"services[web].upstream.max_idle_per_endpoint: must be greater than 0; remove the line to use the default 256"}},
		{"merge of a scalar", base + "    <<: 3\n", []string{"line 10: services[web]: `<<` must merge an anchored mapping"}},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + base, []string{"line 1: a: unknown field"}},
		{"self-referencing alias", base + "    health: &h {slow_start: {window: 1s}, <<: *h}\n",
			[]string{"line 10: services[web].health: nested more than 64 levels deep (an alias that contains itself?); flatten it"}},
	}
	// Cases where one cause must give exactly one message.
	counts := map[string]int{
		"misspelt required field is not reported twice": 1,
		"self-referencing alias":                        1,
		"explicit zero interval":                        1,
		"weight zero":                                   1,
		"slow start zero aggression":                    1,
	}
	names := map[string]bool{}
	for _, tt := range tests {
		if names[tt.name] {
			t.Fatalf("duplicate case name %q", tt.name)
		}
		names[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors containing %q", cfg, tt.want)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config alongside an error")
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T is not a non-empty ErrorList: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain\n  %s\ngot:\n%v", w, err)
				}
			}
			if n := counts[tt.name]; n != 0 && len(list) != n {
				t.Errorf("%d problems, want %d:\n%v", len(list), n, err)
			}
			for i := 1; i < len(list); i++ {
				if list[i-1].Line > list[i].Line {
					t.Errorf("errors not sorted by line:\n%v", err)
				}
			}
			// The same input gives the same message (map iteration must
			// not leak into it).
			_, again := Parse([]byte(tt.yaml))
			if again.Error() != err.Error() {
				t.Errorf("unstable message:\n%v\nvs\n%v", err, again)
			}
		})
	}
	for name := range counts {
		if !names[name] {
			t.Errorf("counts names a case that does not exist: %q", name)
		}
	}
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
	}
}

// TestSelfReferenceTerminates is the fuzzing lesson: an anchor that merges
// itself must end in an error, not a stack overflow.
func TestAliasCycleTerminates(t *testing.T) {
	in := "x: &x [*x, *x]\n" + base + "    policy: {name: least_request, options: &o {a: *o}}\n"
	if _, err := Parse([]byte(in)); err == nil {
		t.Fatal("want an error")
	}
}

func TestAliasExpansionIsBounded(t *testing.T) {
	// 10 routes, each an alias of a route whose methods list is an alias of
	// a 10-item list, each item ... a shallow "billion laughs" against the
	// listener/route/method nesting. The budget must stop it quickly.
	var b strings.Builder
	b.WriteString("services: [{name: web, endpoints: [{address: 127.0.0.1:9001}]}]\n")
	b.WriteString("listeners:\n  - &l {listen: 127.0.0.1:8080, routes: [&r {service: web, match: {methods: &m [GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET,GET]}}")
	for range 2000 {
		b.WriteString(", *r")
	}
	b.WriteString("]}\n")
	for range 2000 {
		b.WriteString("  - *l\n")
	}
	start := time.Now()
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "expands to too many values") {
		t.Fatalf("want the expansion limit, got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDefaults(t *testing.T) {
	in := base + `    health:
      active: {}
      slow_start: {window: 10s}
    affinity: {type: cookie}
`
	cfg, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Listen != "127.0.0.1:9901" || cfg.Admin.TokenEnv != "LBSYS_ADMIN_TOKEN" || cfg.Admin.AllowRemote {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	wantServer := Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, WriteTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
		MaxRequestBodyBytes: 10 << 20, DrainTimeout: 30 * time.Second, Engine: EngineLbsys}
	if !reflect.DeepEqual(cfg.Server, wantServer) {
		t.Errorf("server = %+v, want %+v", cfg.Server, wantServer)
	}
	l := cfg.Listeners[0]
	if l.Name != "public" || l.Routes[0].Name != "public#0" || l.Routes[0].Match.PathPrefix != "/" {
		t.Errorf("listener = %+v", l)
	}
	s := cfg.Services[0]
	if s.Priority != "normal" || s.Endpoints[0].Weight != 1 || s.Policy.Name != "round_robin" {
		t.Errorf("service = %+v", s)
	}
	wantActive := ActiveHealth{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 3, ExpectedStatuses: []string{"200-399"}}
	if !reflect.DeepEqual(*s.Health.Active, wantActive) {
		t.Errorf("active = %+v, want %+v", *s.Health.Active, wantActive)
	}
	o := s.Health.Outlier
	if o.Disabled || *o.Consecutive5xx != 5 || *o.ConsecutiveGatewayFailure != 3 || o.BaseEjectionTime != 30*time.Second ||
		o.MaxEjectionTime != 300*time.Second || *o.MaxEjectionPercent != 50 {
		t.Errorf("outlier = %+v", o)
	}
	if *s.Health.PanicThreshold != 50 {
		t.Errorf("panic_threshold = %v", *s.Health.PanicThreshold)
	}
	if ss := *s.Health.SlowStart; ss != (SlowStart{Window: 10 * time.Second, Aggression: 1, MinWeightPercent: 10}) {
		t.Errorf("slow_start = %+v", ss)
	}
	r := s.Retries
	if *r.Attempts != 2 || !reflect.DeepEqual(r.On, []string{"connect_failure", "reset", "gateway_error"}) || r.PerTryTimeout != 0 ||
		*r.BudgetPercent != 20 || *r.MinRetryConcurrency != 3 || r.BackoffBase != 25*time.Millisecond ||
		r.BackoffMax != 250*time.Millisecond || r.MaxBodyBytes != 64<<10 {
		t.Errorf("retries = %+v", r)
	}
	if s.Timeouts != (Timeouts{Connect: 2 * time.Second, Request: 30 * time.Second, Idle: 60 * time.Second, TunnelIdle: 5 * time.Minute}) {
		t.Errorf("timeouts = %+v", s.Timeouts)
	}
	a := s.Affinity
	if a.Type != "cookie" || a.Cookie != (CookieAffinity{Name: "lbsys_affinity", SecretEnv: "LBSYS_AFFINITY_SECRET"}) ||
		a.Hash.Epsilon != 0.25 || a.Hash.VirtualNodes != 100 {
		t.Errorf("affinity = %+v", a)
	}
	if s.Upstream.MaxIdlePerEndpoint != 256 || cfg.Telemetry.RingSeconds != 600 {
		t.Errorf("upstream = %+v, telemetry = %+v", s.Upstream, cfg.Telemetry)
	}
	if f, err := s.BalancerFactory(); err != nil || f == nil || f() == nil {
		t.Errorf("BalancerFactory() = (nil: %t), %v", f == nil, err)
	}

	// Without `active:` there are no active checks; without `affinity:`
	// the type is none.
	cfg, err = Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Services[0]; s.Health.Active != nil || s.Health.SlowStart != nil || s.Affinity.Type != "none" {
		t.Errorf("absent sections were filled: %+v", s.Health)
	}
	// A listener without a name is named by its address.
	cfg, err = Parse([]byte(strings.Replace(base, "  - name: public\n    listen", "  - listen", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Listeners[0]; l.Name != "127.0.0.1:8080" || l.Routes[0].Name != "127.0.0.1:8080#0" {
		t.Errorf("listener = %+v", l)
	}
}

// TestExplicitZero checks that pointer fields and zero-means-off fields
// keep an explicit 0 instead of taking the default.
func TestExplicitZero(t *testing.T) {
	in := base + `    health:
      panic_threshold: 0
      outlier: {consecutive_5xx: 0, consecutive_gateway_failure: 0, max_ejection_percent: 0}
      slow_start: {window: 5s, min_weight_percent: 0}
    retries: {attempts: 0, budget_percent: 0, min_retry_concurrency: 0, backoff_base: 0s, backoff_max: 0, max_body_bytes: 0}
    timeouts: {request: 0s}
server: {drain_timeout: 0s}
`
	cfg, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	h := s.Health
	if *h.PanicThreshold != 0 || *h.Outlier.Consecutive5xx != 0 || *h.Outlier.ConsecutiveGatewayFailure != 0 ||
		*h.Outlier.MaxEjectionPercent != 0 || h.SlowStart.MinWeightPercent != 0 {
		t.Errorf("health = %+v", h)
	}
	r := s.Retries
	if *r.Attempts != 0 || *r.BudgetPercent != 0 || *r.MinRetryConcurrency != 0 || r.BackoffBase != 0 || r.BackoffMax != 0 || r.MaxBodyBytes != 0 {
		t.Errorf("retries = %+v", r)
	}
	if s.Timeouts.Request != 0 || cfg.Server.DrainTimeout != 0 {
		t.Errorf("timeouts = %+v, drain = %v", s.Timeouts, cfg.Server.DrainTimeout)
	}
}

func readExample(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "lbsys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExample(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "lbsys.yaml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Version()) != 12 {
		t.Errorf("Version() = %q", cfg.Version())
	}
	byName := map[string]*Service{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		byName[s.Name] = s
		if f, err := s.BalancerFactory(); err != nil || f == nil {
			t.Errorf("%s: BalancerFactory() = (nil: %t), %v", s.Name, f == nil, err)
		}
	}
	if len(byName) != 5 || byName["inventory"] == nil || cfg.Listeners[0].Listen != "127.0.0.1:8080" || cfg.Admin.Listen != "127.0.0.1:9901" {
		t.Fatalf("unexpected shape: %+v", cfg)
	}
	if c := byName["catalog"]; c.Policy.Name != "least_request" || c.Health.Active == nil || c.Health.SlowStart == nil {
		t.Errorf("catalog = %+v", c)
	}
	if c := byName["cart"]; c.Affinity.Type != "cookie" {
		t.Errorf("cart = %+v", c.Affinity)
	}
	if c := byName["checkout"]; c.Priority != "critical" || c.Affinity.Type != "hash" || c.Affinity.Hash.Header != "X-Session-Id" {
		t.Errorf("checkout = %+v", c)
	}
	if c := byName["payment"]; c.Priority != "critical" || *c.Retries.Attempts != 2 {
		t.Errorf("payment = %+v", c)
	}
	nets, err := cfg.Server.TrustedNets()
	if err != nil || len(nets) != 2 {
		t.Errorf("TrustedNets() = %v, %v", nets, err)
	}

	// Round trip: strict yaml.v3 decoding of the same file, plus defaults,
	// must agree with Parse. This pins the walker to yaml.v3's semantics.
	var direct Config
	dec := yaml.NewDecoder(strings.NewReader(string(readExample(t))))
	dec.KnownFields(true)
	if err := dec.Decode(&direct); err != nil {
		t.Fatal(err)
	}
	direct.SetDefaults()
	if err := direct.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := range direct.Services {
		// Factories are functions and never DeepEqual; compare the rest.
		direct.Services[i].balancer, cfg.Services[i].balancer = nil, nil
	}
	direct.version = cfg.version
	if !reflect.DeepEqual(&direct, cfg) {
		t.Errorf("yaml.v3 and Parse disagree:\n%+v\n%+v", direct, *cfg)
	}
}

// errorReportYAML and errorReport are quoted in docs/config.md ("Errors");
// keep them in sync when a message changes.
const errorReportYAML = `listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes:
      - match: {path_prefix: /catalog}
        service: catalgo
services:
  - name: catalog
    policy:
      name: least_request
      options:
        choice_count: 1
    endpoints:
      - address: 127.0.0.1:9001
        wieght: 2
    health:
      active:
        interval: 1s
        timeout: 2s
        expected_statuses: ["200-299", "600"]
`

const errorReport = "lbsys.yaml:6: listeners[public].routes[0].service: unknown service \"catalgo\": did you mean `catalog`? defined services: catalog\n" +
	"lbsys.yaml:12: services[catalog].policy.options.choice_count: policy least_request rejected its options: must be between 2 and 16, got 1\n" +
	"lbsys.yaml:15: services[catalog].endpoints[0].wieght: unknown field: did you mean `weight`? allowed fields here: address, weight\n" +
	"lbsys.yaml:19: services[catalog].health.active.timeout: 2s must be shorter than interval (1s), or probes would overlap; lower the timeout or raise the interval\n" +
	"lbsys.yaml:20: services[catalog].health.active.expected_statuses[1]: invalid status range \"600\": statuses lie within 100..599; write a status such as \"204\" or a range such as \"200-299\""

// TestErrorReport pins a whole multi-error report, byte for byte.
func TestErrorReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lbsys.yaml")
	if err := os.WriteFile(path, []byte(errorReportYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.ReplaceAll(err.Error(), path, "lbsys.yaml")
	if got != errorReport {
		t.Errorf("got:\n%s\nwant:\n%s", got, errorReport)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), errorReport) || !strings.Contains(string(doc), errorReportYAML) {
		t.Error("docs/config.md does not quote the current error report and its input; update the Errors section")
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte(base+"    priority: high\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":10: services[web].priority: ") {
		t.Errorf("Load error = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestVersion(t *testing.T) {
	a, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse([]byte(base + "# a comment changes the version\n"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(base))
	if want := hex.EncodeToString(sum[:])[:12]; a.Version() != want || b.Version() == want || len(b.Version()) != 12 {
		t.Errorf("versions %q %q, want %q for the first", a.Version(), b.Version(), want)
	}
	if (&Config{}).Version() != "" {
		t.Error("a Config built in Go has a version")
	}
}

func TestPolicyForms(t *testing.T) {
	for _, in := range []string{
		"policy: least_request\n",
		"policy: {name: least_request}\n",
		"policy: {name: least_request, options: {choice_count: 3}}\n",
		"policy: {name: least_request, options: }\n",
	} {
		var s struct {
			Policy Policy `yaml:"policy"`
		}
		if err := yaml.Unmarshal([]byte(in), &s); err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if s.Policy.Name != "least_request" {
			t.Errorf("%q: name %q", in, s.Policy.Name)
		}
		svc := Service{Policy: s.Policy}
		if f, err := svc.BalancerFactory(); err != nil || f == nil {
			t.Errorf("%q: BalancerFactory() = (nil: %t), %v", in, f == nil, err)
		}
	}
	var s struct {
		Policy Policy `yaml:"policy"`
	}
	err := yaml.Unmarshal([]byte("policy: {nam: x}\n"), &s)
	if err == nil || !strings.Contains(err.Error(), "policy.nam: unknown field: did you mean `name`?") {
		t.Errorf("unknown key: %v", err)
	}
	svc := Service{Policy: Policy{Name: "nope"}}
	if _, err := svc.BalancerFactory(); err == nil || !strings.Contains(err.Error(), `unknown policy "nope"`) {
		t.Errorf("unvalidated unknown policy: %v", err)
	}
}

func TestMergeKeys(t *testing.T) {
	in := `x-defaults: &defaults
  priority: critical
  timeouts: {connect: 1s}
listeners: [{listen: 127.0.0.1:8080, routes: [{service: a}, {service: b, match: {path_prefix: /b}}]}]
services:
  - <<: *defaults
    name: a
    endpoints: [{address: 127.0.0.1:9001}]
  - <<: *defaults
    name: b
    priority: sheddable
    endpoints: [{address: 127.0.0.1:9002}]
`
	// x-defaults is not a field: merges need the anchor somewhere, and the
	// schema has no place for it, so the file must say so.
	if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), "x-defaults: unknown field") {
		t.Fatalf("want unknown field x-defaults, got %v", err)
	}
	// Anchoring inside the first service works.
	in = `listeners: [{listen: 127.0.0.1:8080, routes: [{service: a, match: {path_prefix: /a}}, {service: b}]}]
services:
  - &a
    name: a
    priority: critical
    timeouts: {connect: 1s}
    endpoints: [{address: 127.0.0.1:9001}]
  - <<: *a
    name: b
    priority: sheddable
`
	cfg, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Services[1]
	if b.Name != "b" || b.Priority != "sheddable" || b.Timeouts.Connect != time.Second || b.Endpoints[0].Address != "127.0.0.1:9001" {
		t.Errorf("merged service = %+v", b)
	}
}

func TestGoBuiltConfig(t *testing.T) {
	c := &Config{
		Listeners: []Listener{{Listen: "127.0.0.1:0", Routes: []Route{{Service: "web"}}}},
		Services:  []Service{{Name: "web", Endpoints: []Endpoint{{Address: "127.0.0.1:9001"}}, Policy: Policy{Name: "least_request"}}},
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if f, err := c.Services[0].BalancerFactory(); err != nil || f == nil {
		t.Fatalf("BalancerFactory() = (nil: %t), %v", f == nil, err)
	}
	c.Services[0].Endpoints = append(c.Services[0].Endpoints, Endpoint{Address: "127.0.0.1:9001", Weight: 1})
	err := c.Validate()
	if err == nil || err.Error() != `services[web].endpoints[1].address: duplicate endpoint "127.0.0.1:9001": already listed as services[web].endpoints[0]; to give it more traffic raise its weight instead` {
		t.Errorf("Validate() = %v", err)
	}
}

func TestParseStatusRanges(t *testing.T) {
	got, err := ParseStatusRanges([]string{"200-299", "304", " 404 "})
	if err != nil || !reflect.DeepEqual(got, [][2]int{{200, 299}, {304, 304}, {404, 404}}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "99", "600", "1000", "300-200", "2xx", "200-", "-200", "200-299-300", "+20"} {
		if _, err := ParseStatusRanges([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTrustedNets(t *testing.T) {
	s := Server{TrustedProxies: []string{"10.0.0.0/8", "10.1.2.3", "fd00::/8", "::1", "192.168.1.7/24"}}
	nets, err := s.TrustedNets()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "10.1.2.3/32", "fd00::/8", "::1/128", "192.168.1.0/24"}
	for i, n := range nets {
		if n.String() != want[i] {
			t.Errorf("nets[%d] = %v, want %v", i, n, want[i])
		}
	}
	if _, err := (Server{TrustedProxies: []string{"example.com"}}).TrustedNets(); err == nil {
		t.Error("host name accepted")
	}
}

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  s3cret \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LBSYS_TEST_TOKEN", "from-env")

	tests := []struct {
		a       Admin
		want    string
		wantErr string
	}{
		{Admin{TokenFile: file, TokenEnv: "LBSYS_TEST_TOKEN"}, "s3cret", ""},
		{Admin{TokenEnv: "LBSYS_TEST_TOKEN"}, "from-env", ""},
		{Admin{TokenEnv: "LBSYS_TEST_UNSET_VARIABLE"}, "", ""},
		{Admin{}, "", ""},
		{Admin{TokenFile: empty}, "", "the first line is empty"},
		{Admin{TokenFile: filepath.Join(dir, "missing")}, "", "no such file"},
	}
	for _, tt := range tests {
		got, err := tt.a.Token()
		if got != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v.Token() = %q, %v; want %q, %q", tt.a, got, err, tt.want, tt.wantErr)
		}
	}

	c := CookieAffinity{SecretFile: file}
	if key, err := c.Secret(); err != nil || string(key) != "s3cret" {
		t.Errorf("Secret() = %q, %v", key, err)
	}
	c = CookieAffinity{SecretEnv: "LBSYS_TEST_TOKEN"}
	if key, err := c.Secret(); err != nil || string(key) != "from-env" {
		t.Errorf("Secret() = %q, %v", key, err)
	}
	c = CookieAffinity{SecretEnv: "LBSYS_TEST_UNSET_VARIABLE"}
	if key, err := c.Secret(); err != nil || key != nil {
		t.Errorf("Secret() = %q, %v", key, err)
	}
	c = CookieAffinity{SecretFile: empty}
	if _, err := c.Secret(); err == nil {
		t.Error("empty secret file accepted")
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"address", "weight"}
	for in, want := range map[string]string{"wieght": "weight", "adress": "address", "Weight": "weight", "zzz": "", "weight": ""} {
		if got := suggest(in, cands); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDocsCoverEveryField keeps docs/config.md honest: every YAML field
// name of the schema must appear in it.
func TestDocsCoverEveryField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ == reflect.TypeFor[yaml.Node]() {
			return
		}
		seen[typ] = true
		for _, f := range yamlstrict.Fields(typ) {
			if !strings.Contains(string(doc), "`"+f.Name+"`") {
				t.Errorf("docs/config.md does not mention `%s` (%s)", f.Name, typ.Name())
			}
			walk(typ.FieldByIndex(f.Index).Type)
		}
	}
	walk(reflect.TypeFor[Config]())
}

func TestAdmissionAndRoutePriority(t *testing.T) {
	good := `
listeners:
  - listen: 127.0.0.1:8080
    routes:
      - {match: {path_prefix: /catalog/search}, service: web, priority: sheddable}
      - {service: web}
services:
  - name: web
    endpoints: [{address: 127.0.0.1:9001}]
    admission: {min_limit: 5, max_limit: 200, initial_limit: 20}
`
	cfg, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Services[0].Admission == nil || cfg.Services[0].Admission.MaxLimit != 200 || cfg.Listeners[0].Routes[0].Priority != "sheddable" {
		t.Fatalf("parsed %+v", cfg.Services[0].Admission)
	}
	for _, c := range []struct{ yaml, want string }{
		{"    admission: {min_limit: 300, max_limit: 200}\n", "min_limit (300) must not exceed max_limit (200)"},
		{"    admission: {tolerance: 0.5}\n", "tolerance must be >= 1"},
		{"    admission: {min_limt: 3}\n", "did you mean `min_limit`?"},
	} {
		bad := strings.Replace(good, "    admission: {min_limit: 5, max_limit: 200, initial_limit: 20}\n", c.yaml, 1)
		if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.yaml, err, c.want)
		}
	}
	bad := strings.Replace(good, "priority: sheddable", "priority: vip", 1)
	if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), `routes[0].priority: unknown priority "vip"`) {
		t.Errorf("route priority: %v", err)
	}
}

// TestRemoteAdminNeedsToken: allow_remote is accepted only with a token
// source that can yield one (issue #13: a remote admin API without a token
// passed validation).
func TestRemoteAdminNeedsToken(t *testing.T) {
	head := "admin:\n  listen: 0.0.0.0:9901\n  allow_remote: true\n"
	t.Setenv("LBSYS_TEST_ADMIN_TOKEN", "")
	for _, tc := range []struct {
		name, admin, env string
		ok               bool
	}{
		{"no token", "  token_env: LBSYS_TEST_ADMIN_TOKEN\n", "", false},
		{"blank variable", "  token_env: LBSYS_TEST_ADMIN_TOKEN\n", "  ", false},
		{"token variable", "  token_env: LBSYS_TEST_ADMIN_TOKEN\n", "s3cret", true},
		{"token file (read at start)", "  token_file: /run/secrets/lbsys-admin\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LBSYS_TEST_ADMIN_TOKEN", tc.env)
			_, err := Parse([]byte(head + tc.admin + base))
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "admin.allow_remote: is true but no admin token")) {
				t.Fatalf("err %v, want the allow_remote error", err)
			}
		})
	}
}
