package proxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

func TestExplainWithDirective(t *testing.T) {
	px, _, _, a, b := startUIProxy(t, func(a, b string) *directive.Directive {
		return uiDirective(1, a, b, 1, 3, time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC))
	})
	eventually(t, 5*time.Second, "the directive applied", func() bool { return px.appliedDirective() != nil })

	status, text, h := do(t, "GET", px.admin+"/explain?service=app", "", map[string]string{"Accept": "text/plain"})
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %s\n%s", status, h.Get("Content-Type"), text)
	}
	for _, want := range []string{
		// What the directive asks and why (directive.WriteExplanation).
		"directive version 1 (change 41)",
		"service app",
		"scale: at least 4 replicas by 2031-03-01T12:05:00Z",
		"why: floor 4 for the sale",
		"from: driver event; event flash-sale 2031-03-01T12:05:00Z; load 500 rps; capacity 150 rps per replica",
		"expected effect: p99 under 200 ms during the sale",
		"admission: seed 50, min 0, cap 300",
		"why: cap 300 = 2 × peak concurrency",
		"evidence: model ensemble@7 (blessed true)",
		"upper-band peak 450 rps",
		// What the picks read now.
		"== What the picks read now",
		"service app: policy weighted",
		"admission: limit ",
		"policy state:",
		"endpoints: 2 configured, 2 in rotation; panic: no",
		"ENDPOINT", "DIRECTIVE",
		"coordinator: connected to ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/explain lacks %q:\n%s", want, text)
		}
	}
	// Each endpoint's row carries its directive weight.
	for addr, w := range map[string]string{a.addr: " 1 ", b.addr: " 3 "} {
		row := grepLines(text, addr)
		if !strings.Contains(row, "in rotation") || !strings.Contains(strings.Join(strings.Fields(row), "  "), strings.TrimSpace(w)) {
			t.Errorf("row of %s: %q", addr, row)
		}
	}
	if strings.Contains(text, "service web") || strings.Contains(text, "payments") {
		t.Errorf("?service=app explained web too:\n%s", text)
	}

	// Every service: web has no section of the directive.
	_, all, _ := do(t, "GET", px.admin+"/explain", "", nil)
	if !strings.Contains(all, "directive version 1 has no section for service web: it runs its configured policy") ||
		!strings.Contains(all, "service web: policy round_robin") ||
		!strings.Contains(all, "service payments is not on this proxy") || !strings.Contains(all, "at least 3 replicas") {
		t.Errorf("/explain:\n%s", all)
	}

	// JSON on request.
	for _, hdr := range []map[string]string{{"Accept": "application/json"}, {"Accept": "text/plain;q=0.5, application/json"}, nil} {
		url := px.admin + "/explain?service=app"
		if hdr == nil {
			url += "&format=json"
		}
		status, body, h := do(t, "GET", url, "", hdr)
		var ex Explanation
		if status != 200 || h.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &ex) != nil {
			t.Fatalf("%v: %d %s %.300s", hdr, status, h.Get("Content-Type"), body)
		}
		if ex.Directive == nil || ex.Directive.Version != 1 || len(ex.Services) != 1 {
			t.Fatalf("%v: %+v", hdr, ex)
		}
		s := ex.Services[0]
		if s.Directive == nil || s.Directive.Scale.Why.Text != "floor 4 for the sale" || len(s.Reasons) != 3 ||
			s.Now.Policy != "weighted" || s.Now.Admission == nil || len(s.Now.Endpoints) != 2 || s.Now.PolicyState == nil {
			t.Errorf("%v: service %+v", hdr, s)
		}
	}
}

func TestExplainErrorsAndNoDirective(t *testing.T) {
	a := newBackend(t, "a")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, a))
	_, text, _ := do(t, "GET", px.admin+"/explain", "", nil)
	for _, want := range []string{"coordinator: none configured", "no directive: every service runs its configured policy", "service app: policy "} {
		if !strings.Contains(text, want) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
	for _, c := range []struct {
		name, url   string
		hdr         map[string]string
		status      int
		ctype, want string
	}{
		{"unknown service, text", "/explain?service=cart", nil, 404, "text/plain", `no service "cart" on this proxy; it has app`},
		{"unknown service, JSON", "/explain?service=cart", map[string]string{"Accept": "application/json"}, 404, "application/json", `no service \"cart\" on this proxy; it has app`},
		{"bad format", "/explain?format=xml", nil, 400, "application/json", "format: want json or text"},
	} {
		status, body, h := do(t, "GET", px.admin+c.url, "", c.hdr)
		if status != c.status || !strings.HasPrefix(h.Get("Content-Type"), c.ctype) || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s %s", c.name, status, h.Get("Content-Type"), body)
		}
	}
}

func TestExplainFormat(t *testing.T) {
	for _, c := range []struct {
		format, accept string
		json           bool
	}{
		{"", "", false},
		{"", "text/plain", false},
		{"", "*/*", false},
		{"", "application/json", true},
		{"", "application/*", true},
		{"", "application/json, text/plain", false}, // a tie: text
		{"", "text/plain;q=0.9, application/json", true},
		{"", "text/*;q=0.1, application/json;q=0.2", true},
		{"", "application/json;q=0, */*", false},
		{"", "application/json;q=abc", false}, // a range that does not parse is ignored
		{"", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false}, // a browser
		{"json", "text/plain", true},
		{"text", "application/json", false},
	} {
		got, err := explainFormat(c.format, c.accept)
		if err != nil || got != c.json {
			t.Errorf("format %q, Accept %q: JSON %v (%v), want %v", c.format, c.accept, got, err, c.json)
		}
	}
}

func TestDescribeLines(t *testing.T) {
	got := describeLines(map[string]any{
		"policy":   "prequal",
		"probes":   []map[string]any{{"id": "a", "rif": 2}, {"id": "b", "rif": 0}},
		"fallback": map[string]any{"policy": "peak_ewma", "decay": 10.5},
		"weights":  []float64{1, 2},
		"by":       map[string]any{"127.0.0.1:80": 2},
		"empty":    map[string]any{},
		"big":      uint64(1) << 60,
	})
	want := []string{
		"big: 1152921504606846976",
		"by[127.0.0.1:80]: 2",
		"empty: {}",
		"fallback.decay: 10.5",
		"fallback.policy: \"peak_ewma\"",
		"policy: \"prequal\"",
		"probes[0]: {\"id\":\"a\",\"rif\":2}",
		"probes[1]: {\"id\":\"b\",\"rif\":0}",
		"weights: [1,2]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := describeLines(nil); len(got) != 1 || got[0] != "(none)" {
		t.Errorf("nil: %q", got)
	}
	if got := describeLines(func() {}); !strings.HasPrefix(got[0], "(cannot be shown") {
		t.Errorf("unencodable: %q", got)
	}
}

// FuzzExplainFormat: any ?format= and Accept header gives an answer or an
// error, never a panic, and JSON only when asked for in some way.
func FuzzExplainFormat(f *testing.F) {
	for _, s := range []string{"application/json", "text/plain;q=0.5, application/json;q=0.6", "*/*;q=", ";;,,/", "application/json;q=1e400", "a/b;q=NaN"} {
		f.Add("", s)
	}
	f.Add("JSON", "")
	f.Add("yaml", "text/plain")
	f.Fuzz(func(t *testing.T, format, accept string) {
		asJSON, err := explainFormat(format, accept)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "format: ") {
				t.Fatalf("error without its field: %v", err)
			}
			return
		}
		if asJSON && !strings.Contains(strings.ToLower(format+accept), "json") && !strings.Contains(strings.ToLower(accept), "application/") {
			t.Fatalf("JSON for format %q Accept %q", format, accept)
		}
		for _, q := range []float64{acceptQ(accept, "application", "json"), acceptQ(accept, "text", "plain")} {
			if q < 0 || q > 1 || q != q {
				t.Fatalf("q %v for %q", q, accept)
			}
		}
	})
}
