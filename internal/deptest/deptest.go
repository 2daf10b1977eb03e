// Package deptest enforces the architecture rules of docs/design.md as a
// test, after Tailscale's tstest/deptest. Each rule of Rules binds a set of
// packages and forbids packages in their import closure (their tests'
// imports included): the data plane never imports the control plane, the
// control plane shares only api/directive with the data plane, the
// simulator runs the decision code but not the data plane's I/O, api/
// stands alone, proposers reach the coordinator only through its client,
// and the decision packages (PurePackages) neither depend on net nor read
// the wall clock, sleep, start timers or use the global random source:
// time and randomness arrive as arguments, so the simulator runs the same
// code as production.
//
// A violation names the import chain that breaks the rule, the rule's
// principle and the fix. testdata/planted is a module that breaks every
// rule once; the test checks that each rule reports it.
package deptest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ForbiddenImports may not appear in a pure package's dependency closure.
var ForbiddenImports = []string{"net/http", "net"}

// forbiddenCalls are package-level functions a pure package may not call,
// by import path.
var forbiddenCalls = map[string]map[string]bool{
	"time": {"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
		"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true},
	// The global generators; constructors (New, NewPCG, NewSource, …) are
	// fine because a seeded generator is an argument like any other.
	"math/rand": {"Int": true, "Intn": true, "Int31": true, "Int31n": true, "Int63": true, "Int63n": true,
		"Uint32": true, "Uint64": true, "Float32": true, "Float64": true, "Perm": true, "Shuffle": true,
		"Read": true, "Seed": true, "ExpFloat64": true, "NormFloat64": true},
	"math/rand/v2": {"Int": true, "IntN": true, "Int32": true, "Int32N": true, "Int64": true, "Int64N": true,
		"Uint": true, "UintN": true, "Uint32": true, "Uint32N": true, "Uint64": true, "Uint64N": true,
		"Float32": true, "Float64": true, "Perm": true, "Shuffle": true, "N": true,
		"ExpFloat64": true, "NormFloat64": true},
}

// Violation is one broken rule.
type Violation struct {
	Pos  string
	What string
}

func (v Violation) String() string { return v.Pos + ": " + v.What }

// CheckCalls parses the non-test Go files of dir and reports calls of
// forbidden functions and imports of forbidden packages.
func CheckCalls(dir string) ([]Violation, error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Violation
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		// Map local import names to paths.
		local := map[string]string{}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range ForbiddenImports {
				if path == bad {
					out = append(out, Violation{fset.Position(imp.Pos()).String(), "imports " + path})
				}
			}
			n := path[strings.LastIndex(path, "/")+1:]
			if path == "math/rand/v2" {
				n = "rand"
			}
			if imp.Name != nil {
				n = imp.Name.Name
			}
			local[n] = path
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			path, ok := local[id.Name]
			if !ok {
				return true
			}
			if forbiddenCalls[path][sel.Sel.Name] {
				out = append(out, Violation{fset.Position(sel.Pos()).String(), fmt.Sprintf("uses %s.%s", path, sel.Sel.Name)})
			}
			return true
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pos < out[j].Pos })
	return out, nil
}
