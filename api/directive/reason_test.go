package directive

import (
	"strings"
	"testing"
)

func TestReasonsRoundTripAndValidate(t *testing.T) {
	good := `{"schema":1,"services":{"catalog":{
	  "weights":{"10.0.0.1:80":2},"weights_why":{"text":"weights ∝ capacity","driver":"capacity"},
	  "admission":{"seed":120,"why":{"text":"seed = ⌈1800 rps × 0.04 s / 0.6⌉","driver":"event","event":"flash-sale 2026-11-27T10:00:00Z","load_rps":1800}},
	  "scale":{"replicas":30,"until":"2026-11-27T10:50:00Z","why":{"text":"floor 30","driver":"event","per_replica_rps":100,"at":"2026-11-27T10:00:00Z"}},
	  "cache":{"warm":["/products/1"],"why":{"text":"hot keys of the sale"}}}}}`
	d, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	lines := d.Services["catalog"].Explain()
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "weights: ") || !strings.HasPrefix(lines[3], "scale: floor 30") {
		t.Errorf("explain: %q", lines)
	}
	if s := d.Services["catalog"].Scale; s.Until == nil || s.Until.Hour() != 10 {
		t.Errorf("until not read: %+v", s)
	}
	for _, tc := range []struct{ body, path string }{
		{`"scale":{"replicas":3,"why":{"text":" "}}`, "services[catalog].scale.why.text"},
		{`"scale":{"replicas":3,"until":"1870-01-01T00:00:00Z"}`, "services[catalog].scale.until"},
		{`"admission":{"seed":3,"why":{"text":"x","load_rps":-1}}`, "services[catalog].admission.why.load_rps"},
		{`"weights":{"a:1":1},"weights_why":{"text":""}`, "services[catalog].weights_why.text"},
	} {
		_, err := Parse([]byte(`{"schema":1,"services":{"catalog":{` + tc.body + `}}}`))
		if err == nil || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: error %v, want one naming %s", tc.body, err, tc.path)
		}
	}
}

func TestWriteExplanation(t *testing.T) {
	d, err := Parse([]byte(`{"schema":1,"version":7,"services":{
	  "catalog":{"scale":{"replicas":30,"until":"2026-11-27T10:50:00Z","why":{"text":"floor 30 for the flash sale","driver":"event","event":"flash-sale 2026-11-27T10:00:00Z","load_rps":1800,"per_replica_rps":100,"expected_effect":"ready before the sale"}},
	             "admission":{"seed":120},
	             "why":{"model":"ensemble@run/model-1","blessed":true,"forecast":[{"at":"2026-11-27T10:00:00Z","rps":900,"hi":1100},{"at":"2026-11-27T10:05:00Z","rps":1700,"hi":1900}]}},
	  "cart":{"weights":{"a:1":2},"weights_why":{"text":"capacity"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteExplanation(&b, d, "catalog"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"directive version 7", "service catalog", "at least 30 replicas", "until 2026-11-27T10:50:00Z",
		"why: floor 30 for the flash sale", "event flash-sale 2026-11-27T10:00:00Z", "capacity 100 rps per replica", "expected effect: ready before the sale",
		"admission: seed 120", "why: (no reason recorded)", "upper-band peak 1900 rps at 2026-11-27T10:05:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "service cart") {
		t.Error("another service explained")
	}
	if err := WriteExplanation(&b, d, "payment"); err == nil || !strings.Contains(err.Error(), "catalog, cart") && !strings.Contains(err.Error(), "cart, catalog") {
		t.Errorf("unknown service: %v", err)
	}
}

// TestWriteExplanationCache: the warm list shows with its paths (the
// first ten, then a count), its TTL hints and its why.
func TestWriteExplanationCache(t *testing.T) {
	var warm []string
	for i := 1; i <= 12; i++ {
		warm = append(warm, `"/catalog/products/p`+string(rune('a'+i))+`"`)
	}
	d, err := Parse([]byte(`{"schema":1,"services":{"catalog":{"cache":{"warm":[` + strings.Join(warm, ",") + `],
	  "ttl_hints":[{"path_prefix":"/catalog/products","ttl":"7m"}],
	  "why":{"text":"warm 12 paths: 12 paths \"Jackets\" features","driver":"event","event":"flash-sale 2026-11-27T10:00:00Z","expected_effect":"hit ratio at the sale's start"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := WriteExplanation(&b, d, ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"cache: 12 paths to warm, 1 TTL hints", "warm: /catalog/products/pb /catalog/products/pc", "/catalog/products/pk … and 2 more",
		"ttl hint: /catalog/products fresh for 7m0s", `why: warm 12 paths: 12 paths "Jackets" features`, "event flash-sale 2026-11-27T10:00:00Z",
		"expected effect: hit ratio at the sale's start"} {
		if !strings.Contains(out, want) {
			t.Errorf("explanation lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "/catalog/products/pl") {
		t.Errorf("more than ten paths listed:\n%s", out)
	}
}
