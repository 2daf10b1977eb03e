package simrun

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/control"
)

func TestParseSeeds(t *testing.T) {
	cases := []struct {
		list      string
		seed, def uint64
		want      []uint64
		err       string
	}{
		{"", 0, 7, []uint64{7}, ""},
		{"", 3, 7, []uint64{3}, ""},
		{"1-3", 9, 7, []uint64{1, 2, 3}, ""},
		{"1, 4,9", 0, 0, []uint64{1, 4, 9}, ""},
		{"5-2", 0, 0, nil, "low ≤ high"},
		{"0", 0, 0, nil, "seeds ≥ 1"},
		{"x", 0, 0, nil, "seeds ≥ 1"},
		{"1-5000", 0, 0, nil, "at most 1000"},
	}
	for _, tc := range cases {
		got, err := ParseSeeds(tc.list, tc.seed, tc.def)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseSeeds(%q): %v, want an error with %q", tc.list, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSeeds(%q, %d, %d) = %v, %v; want %v", tc.list, tc.seed, tc.def, got, err, tc.want)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	if got, err := ParsePolicies("", []string{"a"}); err != nil || !reflect.DeepEqual(got, []string{"a"}) {
		t.Errorf("default: %v %v", got, err)
	}
	if got, err := ParsePolicies("round_robin, peak_ewma", nil); err != nil || !reflect.DeepEqual(got, []string{"round_robin", "peak_ewma"}) {
		t.Errorf("list: %v %v", got, err)
	}
	if _, err := ParsePolicies("fastest", nil); err == nil || !strings.Contains(err.Error(), `unknown policy "fastest"`) {
		t.Errorf("unknown: %v", err)
	}
}

// TestOutDirDefault (issue #16): without --out, every run gets a new
// directory under the system's temporary directory, never the working
// tree, and never one a previous run wrote into.
func TestOutDirDefault(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	a, err := OutDir("", "flash/sale")
	if err != nil {
		t.Fatal(err)
	}
	b, err := OutDir("", "flash/sale")
	if err != nil {
		t.Fatal(err)
	}
	if a == b || filepath.Dir(a) != tmp || !strings.HasPrefix(filepath.Base(a), "lbsys-sim-flash_sale-") {
		t.Errorf("default directories %s and %s: want two new ones in %s", a, b, tmp)
	}
	named := filepath.Join(tmp, "x", "y")
	if got, err := OutDir(named, "s"); err != nil || got != named {
		t.Errorf("named: %s %v", got, err)
	}
	if st, err := os.Stat(named); err != nil || !st.IsDir() {
		t.Errorf("named directory not created: %v", err)
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("no-such"); err == nil || !strings.Contains(err.Error(), `no scenario named "no-such"`) {
		t.Errorf("unknown name: %v", err)
	}
	sc, err := Load("steady")
	if err != nil || sc.Name == "" {
		t.Fatalf("steady: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("duration: 1m\nload: {rate: 1}\nservices:\n  - name: a\n   workers: 2\n"), 0o644)
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml:5: invalid YAML") {
		t.Errorf("syntax error: %v, want it at line 5", err)
	}
}

// TestRunWritesAndSummarises runs a tiny scenario into the default
// directory: the files are there, and the summary is the report's.
func TestRunWritesAndSummarises(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	sc := filepath.Join(t.TempDir(), "tiny.yaml")
	os.WriteFile(sc, []byte("name: tiny\nduration: 1m\nclients: {mode: requests}\nload: {rate: 50}\nservices: [{name: a, replicas: 2}]\n"), 0o644)
	s, err := Load(sc)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Config{Scenario: s, Policies: []string{"round_robin"}, Controls: []string{"reactive"}, Seeds: []uint64{1}, Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"report.md", "results.json"} {
		if st, err := os.Stat(filepath.Join(res.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	if res.Comparison != nil || len(res.Runs) != 1 || res.Requests == 0 {
		t.Errorf("result %+v", res)
	}
	var b strings.Builder
	if err := res.WriteSummary(&b, "json"); err != nil {
		t.Fatal(err)
	}
	if written, _ := os.ReadFile(filepath.Join(res.Out, "results.json")); b.String() != string(written) {
		t.Error("the JSON summary is not results.json")
	}
	if _, err := Run(context.Background(), Config{Scenario: s, Policies: []string{"round_robin"}, Controls: []string{"psychic"}, Seeds: []uint64{1}, Quiet: true}); err == nil {
		t.Error("an unknown control ran")
	}
}

// The event confidence reaches every controller's setup, and a bad one is
// refused before anything runs.
func TestRunEventConfidence(t *testing.T) {
	var s control.Setup
	Config{EventConfidence: 0.8}.tune(&s)
	if s.Uplift.Upper != 0.8 {
		t.Errorf("EventConfidence 0.8: setup's Uplift.Upper %v", s.Uplift.Upper)
	}
	s = control.Setup{}
	Config{}.tune(&s)
	if s.Uplift.Upper != 0 {
		t.Errorf("no EventConfidence: setup's Uplift.Upper %v, want 0 (the default)", s.Uplift.Upper)
	}
	sc, err := Load("steady")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = Run(context.Background(), Config{Scenario: sc, Policies: []string{"round_robin"}, Controls: []string{"reactive"}, Seeds: []uint64{1}, Out: dir, Quiet: true, EventConfidence: 1.2})
	var invalid *InvalidError
	if !errors.As(err, &invalid) || !strings.Contains(err.Error(), "event confidence 1.2") {
		t.Errorf("EventConfidence 1.2: %v, want an InvalidError", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused run wrote %d entries into its directory", len(entries))
	}
}
