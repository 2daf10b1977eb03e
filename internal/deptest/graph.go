package deptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// Graph is a module's import graph as `go list -deps -test` reports it:
// every package the module's packages and their tests need, standard
// library included, with the imports of the packages' own code (Imports)
// apart from what only their tests add (TestImports). Test variants of a
// package ("p [q.test]") are folded into p: they import the same packages.
type Graph struct {
	// Module is the module path; the rules' patterns are relative to it.
	Module string
	// Imports maps an import path to the packages its non-test files
	// import.
	Imports map[string][]string
	// TestImports maps a module package to the packages its _test.go
	// files (package p and package p_test) import that its code does not.
	TestImports map[string][]string
	// Own lists the module's packages (the ones the rules can bind).
	Own []string
}

// LoadGraph lists the packages of the module in dir, and everything they
// and their tests depend on, with the go command. Packages that fail to
// load (a syntax error in someone's work in progress) are listed with
// whatever imports go list could read; the error is not the rules' to
// report.
func LoadGraph(dir string) (*Graph, error) {
	mod, err := run(dir, "go", "list", "-m", "-f", "{{.Path}}")
	if err != nil {
		return nil, err
	}
	out, err := run(dir, "go", "list", "-e", "-deps", "-test", "-json=ImportPath,Imports,ForTest,Module", "./...")
	if err != nil {
		return nil, err
	}
	return parseGraph(strings.TrimSpace(string(mod)), bytes.NewReader(out))
}

func run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	// The planted module in testdata is a module of its own: no
	// workspace may pull it into another.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s in %s: %v: %s", name, strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// base strips the test-variant suffix: "p [q.test]" → "p".
func base(path string) string {
	if i := strings.Index(path, " ["); i >= 0 {
		return path[:i]
	}
	return path
}

func parseGraph(module string, r io.Reader) (*Graph, error) {
	g := &Graph{Module: module, Imports: map[string][]string{}, TestImports: map[string][]string{}}
	type pkg struct {
		ImportPath string
		Imports    []string
		ForTest    string
		Module     *struct{ Path string }
	}
	testSide := map[string]map[string]bool{}
	own := map[string]bool{}
	dec := json.NewDecoder(r)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("reading go list output: %w", err)
		}
		if strings.HasSuffix(p.ImportPath, ".test") {
			continue // the generated test main
		}
		path := base(p.ImportPath)
		var imps []string
		for _, i := range p.Imports {
			imps = append(imps, base(i))
		}
		switch {
		case p.ForTest != "" && (path == p.ForTest || path == p.ForTest+"_test"):
			// The package under test compiled with its tests, or its
			// external test package: what they import is the tests'.
			if testSide[p.ForTest] == nil {
				testSide[p.ForTest] = map[string]bool{}
			}
			for _, i := range imps {
				testSide[p.ForTest][i] = true
			}
		case p.ForTest != "":
			// Another package recompiled for a test: same imports.
		default:
			g.Imports[path] = imps
			if p.Module != nil && p.Module.Path == module {
				own[path] = true
			}
		}
	}
	for p, set := range testSide {
		code := map[string]bool{p: true}
		for _, i := range g.Imports[p] {
			code[i] = true
		}
		var extra []string
		for i := range set {
			if !code[i] {
				extra = append(extra, i)
			}
		}
		sort.Strings(extra)
		g.TestImports[p] = extra
		own[p] = true
	}
	for p := range own {
		g.Own = append(g.Own, p)
	}
	sort.Strings(g.Own)
	return g, nil
}

// Chain is an import path from a package to a forbidden one: each element
// imports the next. Test is true when the first step is made by the first
// package's tests.
type Chain struct {
	Path []string
	Test bool
}

// Format renders the chain with the module prefix cut, e.g.
// "internal/proxy [test] → internal/x → net/http".
func (c Chain) Format(module string) string {
	var b strings.Builder
	for i, p := range c.Path {
		if i > 0 {
			b.WriteString(" → ")
		}
		b.WriteString(strings.TrimPrefix(p, module+"/"))
		if i == 0 && c.Test {
			b.WriteString(" [test]")
		}
	}
	return b.String()
}

// reach returns, for every package reachable from start, the shortest
// chain to it. With tests, start's test imports are first steps too (and
// chains through them are marked); beyond the first step only the
// packages' own imports count: a dependency's tests are not compiled in.
func (g *Graph) reach(start string, tests bool) map[string]Chain {
	type item struct {
		path []string
		test bool
	}
	seen := map[string]Chain{}
	var queue []item
	for _, i := range g.Imports[start] {
		queue = append(queue, item{[]string{start, i}, false})
	}
	if tests {
		for _, i := range g.TestImports[start] {
			queue = append(queue, item{[]string{start, i}, true})
		}
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		last := it.path[len(it.path)-1]
		if _, ok := seen[last]; ok || last == start {
			continue
		}
		seen[last] = Chain{Path: it.path, Test: it.test}
		for _, i := range g.Imports[last] {
			if _, ok := seen[i]; !ok {
				next := append(append([]string(nil), it.path...), i)
				queue = append(queue, item{next, it.test})
			}
		}
	}
	return seen
}
