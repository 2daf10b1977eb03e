package deptest

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The module's root and the planted module, each listed once per test
// binary (go list takes seconds on two cores).
var (
	moduleGraph  = sync.OnceValues(func() (*Graph, error) { return LoadGraph(filepath.Join("..", "..")) })
	plantedDir   = filepath.Join("testdata", "planted")
	plantedGraph = sync.OnceValues(func() (*Graph, error) { return LoadGraph(plantedDir) })
)

func load(t *testing.T, f func() (*Graph, error)) *Graph {
	t.Helper()
	g, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRulesHold applies every rule to the module. A violation fails the
// test with the import chain that breaks the rule, unless Known lists it;
// a Known entry that no longer occurs fails too, so the list only shrinks.
func TestRulesHold(t *testing.T) {
	g := load(t, moduleGraph)
	for i := range Rules {
		r := &Rules[i]
		t.Run(r.Name, func(t *testing.T) {
			fs, err := r.Check(g, filepath.Join("..", ".."))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[int]bool{}
			for _, f := range fs {
				k := slices.IndexFunc(Known, f.known)
				if k < 0 {
					t.Error(f.String())
					continue
				}
				seen[k] = true
				t.Logf("known violation, left for its owner: %s (%s)", f.String(), Known[k].Why)
			}
			for k, kv := range Known {
				if kv.Rule == r.Name && !seen[k] {
					t.Errorf("Known lists %s reaching %s (tests: %v) against rule %s, which no longer happens: remove it from Known", kv.Package, kv.To, kv.Test, kv.Rule)
				}
			}
		})
	}
}

// TestRulesBindRealPackages keeps the table honest: a pattern that matches
// no package (a package renamed or moved) would silently stop a rule.
func TestRulesBindRealPackages(t *testing.T) {
	g := load(t, moduleGraph)
	var rels []string
	for _, p := range g.Own {
		rels = append(rels, strings.TrimPrefix(p, g.Module+"/"))
	}
	for _, r := range Rules {
		for _, group := range [][]string{r.Packages, r.Except, r.Forbid, r.Allow} {
			for _, pat := range group {
				if !slices.ContainsFunc(rels, func(rel string) bool { return match(pat, rel) }) {
					t.Errorf("rule %s: pattern %q matches no package of the module: update the rule", r.Name, pat)
				}
			}
		}
	}
	for _, k := range Known {
		if !slices.ContainsFunc(Rules, func(r Rule) bool { return r.Name == k.Rule }) {
			t.Errorf("Known names rule %q, which does not exist", k.Rule)
		}
	}
}

// TestRulesCatchPlantedViolations runs every rule on testdata/planted, a
// module that breaks each rule once (and has imports each rule allows):
// each rule must report exactly its planted violation. A rule without a
// planted violation fails the test, so a new rule comes with one.
func TestRulesCatchPlantedViolations(t *testing.T) {
	g := load(t, plantedGraph)
	want := map[string][]string{
		"data-plane":    {"internal/proxy: internal/proxy → internal/relay → internal/gaia"},
		"control-plane": {"internal/gaia: internal/gaia [test] → internal/agent"},
		"simulator":     {"internal/sim: internal/sim → internal/cache"},
		"pure": {"internal/balance: internal/balance → internal/wire → net/http",
			"internal/balance: uses time.Now at " + filepath.Join(plantedDir, "internal", "balance", "balance.go") + ":12:32"},
		"api":       {"api/directive: api/directive → internal/clock"},
		"proposers": {"internal/pipeline: internal/pipeline → internal/gaia/fsm"},
	}
	for i := range Rules {
		r := &Rules[i]
		t.Run(r.Name, func(t *testing.T) {
			w, ok := want[r.Name]
			if !ok {
				t.Fatalf("rule %s has no planted violation in testdata/planted: plant one and list it here", r.Name)
			}
			fs, err := r.Check(g, plantedDir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				what := f.Where
				if f.Call {
					what = f.To + " at " + f.Where
				}
				got = append(got, f.Package+": "+what)
				// The message says who, through what, which rule and
				// what to do.
				msg := f.String()
				for _, part := range []string{f.Package, f.Where, "rule " + `"` + r.Name + `"`, r.Principle, "Fix: " + r.Fix} {
					if !strings.Contains(msg, part) {
						t.Errorf("message %q lacks %q", msg, part)
					}
				}
			}
			slices.Sort(got)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Errorf("rule %s reported\n  %s\nwant\n  %s", r.Name, strings.Join(got, "\n  "), strings.Join(w, "\n  "))
			}
		})
	}
}

// TestCheckerCatchesViolations keeps the call checker honest: a fixture
// breaking each rule must be reported.
func TestCheckerCatchesViolations(t *testing.T) {
	v, err := CheckCalls("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range v {
		got = append(got, x.What)
	}
	joined := strings.Join(got, "; ")
	for _, want := range []string{"imports net/http", "uses time.Sleep", "uses time.Now", "uses math/rand/v2.IntN"} {
		if !strings.Contains(joined, want) {
			t.Errorf("checker missed %q; reported: %s", want, joined)
		}
	}
}

// FuzzParseGraph: whatever go list prints, reading it never panics, and
// walking the graph it returns ends (import cycles included).
func FuzzParseGraph(f *testing.F) {
	f.Add([]byte(`{"ImportPath":"m/a","Imports":["m/b","net/http"],"Module":{"Path":"m"}}
{"ImportPath":"m/a [m/a.test]","Imports":["m/c"],"ForTest":"m/a"}
{"ImportPath":"m/a_test [m/a.test]","Imports":["m/a [m/a.test]","m/d"],"ForTest":"m/a"}
{"ImportPath":"m/a.test","Imports":["m/a_test [m/a.test]"]}`))
	f.Add([]byte(`{"ImportPath":" [","ForTest":" ["}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := parseGraph("m", bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range g.Own {
			g.reach(p, true)
		}
	})
}
