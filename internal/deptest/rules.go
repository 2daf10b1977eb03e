package deptest

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Rule is one architecture rule of docs/design.md as an import rule: the
// packages it binds may not have a forbidden package in their import
// closure (directly or through others), and, for decision code, may not
// call the wall clock, timers, sleeps or the global random source.
//
// Patterns are relative to the module ("internal/proxy"); "p/..." is p
// and every package below it.
type Rule struct {
	// Name identifies the rule in messages and in Known.
	Name string
	// Principle is what the rule keeps true, in docs/design.md's words.
	Principle string
	// Fix tells someone who broke the rule what to do instead.
	Fix string
	// Packages are the packages the rule binds; Except the ones among them
	// it does not.
	Packages, Except []string
	// Forbid are module packages that may not be in the bound packages'
	// import closure, Allow the ones among them that may; ForbidStd are
	// import paths outside the module (the standard library's net/http).
	Forbid, Allow, ForbidStd []string
	// Tests: the imports of the bound packages' _test.go files count too
	// (and what those imports import in turn). A test that needs a
	// forbidden package (an end-to-end test of both planes) belongs in a
	// package the rule does not bind.
	Tests bool
	// NoCalls: the bound packages' non-test files may not call the
	// functions of forbiddenCalls (CheckCalls).
	NoCalls bool
}

// The planes, as docs/design.md's layout places the packages.
var (
	// dataPlane serves requests: the proxy, its configuration, its agent
	// and the decision code it runs.
	dataPlane = []string{"internal/proxy/...", "internal/config/...", "internal/agent/...", "internal/balance/...",
		"internal/admission/...", "internal/health/...", "internal/cache/...", "internal/retry/...", "internal/steer/..."}
	// controlPlane decides and learns: the coordinator, the pipeline and
	// what feeds it, the forecasters, planners, scalers and controllers,
	// the live loop and the demo's local scaler.
	controlPlane = []string{"internal/gaia/...", "internal/pipeline/...", "internal/ingest/...", "internal/store/...",
		"internal/forecast/...", "internal/planner/...", "internal/control/...", "internal/scaler/...",
		"internal/liveloop/...", "internal/fleet/..."}
	// PurePackages are the decision packages of principle 2. The
	// simulator runs them as they run in production.
	PurePackages = []string{"internal/balance", "internal/health", "internal/admission", "internal/retry",
		"internal/steer", "internal/cache/rfc9111", "internal/gaia/fsm", "internal/forecast", "internal/planner",
		"internal/scaler", "internal/control", "internal/calendar", "internal/sim"}
)

// Rules is every architecture rule the test enforces.
var Rules = []Rule{
	{
		Name: "data-plane",
		Principle: "the data plane never waits on the control plane, and the proxy never imports the coordinator's " +
			"or the pipeline's packages: the planes share only api/directive (principles 1 and 4)",
		Fix:      "take what the data plane needs from a directive (api/directive), or move the shared code to a package of neither plane",
		Packages: dataPlane,
		Forbid:   append([]string{"internal/sim/...", "internal/demo/...", "cmd/..."}, controlPlane...),
		Tests:    true,
	},
	{
		Name: "control-plane",
		Principle: "the control plane and the data plane share only api/directive: the coordinator never imports " +
			"the proxy, and the pipeline changes production only by proposing changes to Gaia (principle 4)",
		Fix:      "send a directive through Gaia instead of calling the data plane; a test of both planes together belongs in a package of neither",
		Packages: controlPlane,
		Forbid:   dataPlane,
		Tests:    true,
	},
	{
		Name: "simulator",
		Principle: "the simulator runs the production decision code, never the data plane's I/O (the proxy, its " +
			"agent, the cache's store, servers and processes): the loop closes in it with the same code, on simulated time",
		Fix:      "move the decision the simulator needs into a pure package that the data plane and the simulator both import",
		Packages: []string{"internal/sim/..."},
		Forbid: []string{"internal/proxy/...", "internal/agent/...", "internal/cache/...", "internal/stub/...",
			"internal/shop/...", "internal/loadgen/...", "internal/fleet/...", "internal/gaia/...", "internal/store/...",
			"internal/ingest/...", "internal/pipeline/...", "internal/liveloop/...", "internal/demo/...",
			"internal/dashboard/...", "cmd/..."},
		// The cache's rules and its settings' types are decisions and
		// data, not the cache's store.
		Allow: []string{"internal/cache/rfc9111/...", "internal/cache/settings/..."},
		Tests: true,
	},
	{
		Name: "pure",
		Principle: "decisions are pure: time, randomness and observations arrive as arguments, so the simulator " +
			"runs the exact production code and tests are deterministic (principle 2)",
		Fix:       "pass the clock (a time.Time or clock.Clock), the random source (*rand.Rand) or the bytes in as arguments; do the I/O in the caller",
		Packages:  PurePackages,
		ForbidStd: ForbiddenImports,
		NoCalls:   true,
		Tests:     true,
	},
	{
		Name: "api",
		Principle: "api/ holds the contracts between the planes and their clients (the directive schema, the " +
			"change API): they stand alone, so that every side can import them without importing the others",
		Fix:      "keep the wire types and their validation in api/; the behaviour behind them stays in internal/",
		Packages: []string{"api/..."},
		Forbid:   []string{"internal/...", "cmd/..."},
		Tests:    true,
	},
	{
		Name: "proposers",
		Principle: "the pipeline changes production only by proposing a change to Gaia: proposers speak the change " +
			"API (api/change) through internal/gaia/client, never the coordinator's state machine or server (principle 4)",
		Fix:      "use api/change's types and internal/gaia/client's calls",
		Packages: []string{"internal/pipeline/...", "internal/liveloop/...", "internal/control/..."},
		Forbid:   []string{"internal/gaia/..."},
		Allow:    []string{"internal/gaia/client/..."},
		Tests:    true,
	},
}

// Known are the violations that exist in the tree today, reported (t.Log)
// but not failing the test, each with why it is still there. A known
// violation that disappears fails the test until it is removed from here,
// so the list only shrinks; a new one fails at once. It is empty today:
// the end-to-end tests that made internal/gaia and internal/ingest reach
// the data plane live in internal/e2e, a package of neither plane.
var Known = []KnownViolation{}

// KnownViolation names one violation of Known: Package (its tests, when
// Test) reaches To against Rule.
type KnownViolation struct {
	Rule, Package, To string
	Test              bool
	Why               string
}

// Finding is one broken rule.
type Finding struct {
	Rule *Rule
	// Package is the bound package (module-relative); To the forbidden
	// package, or the forbidden call.
	Package, To string
	// Test: the chain starts in the package's tests.
	Test bool
	// Call: the finding is a forbidden call, not an import.
	Call bool
	// Where is the import chain, or file:line of a call.
	Where string
}

// String is the message a developer reads: who, through which chain,
// which rule and its principle, and what to do.
func (f Finding) String() string {
	var what string
	switch {
	case f.Call:
		what = fmt.Sprintf("%s %s at %s", f.Package, f.To, f.Where)
	case f.Test:
		what = fmt.Sprintf("%s's tests depend on %s through %s", f.Package, f.To, f.Where)
	default:
		what = fmt.Sprintf("%s depends on %s through %s", f.Package, f.To, f.Where)
	}
	return fmt.Sprintf("%s: this breaks rule %q — %s. Fix: %s.", what, f.Rule.Name, f.Rule.Principle, f.Rule.Fix)
}

// known reports whether k names f.
func (f Finding) known(k KnownViolation) bool {
	return f.Rule.Name == k.Rule && f.Package == k.Package && f.To == k.To && f.Test == k.Test
}

// match reports whether the module-relative path matches a pattern.
func match(pattern, rel string) bool {
	if p, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == p || strings.HasPrefix(rel, p+"/")
	}
	return rel == pattern
}

func matchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if match(p, rel) {
			return true
		}
	}
	return false
}

// Bound returns the module-relative packages of g that r binds.
func (r *Rule) Bound(g *Graph) []string {
	var out []string
	for _, p := range g.Own {
		rel := strings.TrimPrefix(p, g.Module+"/")
		if rel == p {
			continue // the module's root package
		}
		if matchAny(r.Packages, rel) && !matchAny(r.Except, rel) {
			out = append(out, rel)
		}
	}
	return out
}

// forbidden reports whether the import path breaks r.
func (r *Rule) forbidden(g *Graph, path string) bool {
	for _, s := range r.ForbidStd {
		if path == s {
			return true
		}
	}
	rel, ok := strings.CutPrefix(path, g.Module+"/")
	if !ok {
		return false
	}
	return matchAny(r.Forbid, rel) && !matchAny(r.Allow, rel)
}

// Check applies the rule to g (whose module lives in dir, for the call
// check) and returns what breaks it: for each bound package, each
// forbidden package it reaches, by its shortest chain.
func (r *Rule) Check(g *Graph, dir string) ([]Finding, error) {
	var out []Finding
	for _, rel := range r.Bound(g) {
		path := g.Module + "/" + rel
		reach := g.reach(path, r.Tests)
		var hits []string
		for to := range reach {
			if r.forbidden(g, to) {
				hits = append(hits, to)
			}
		}
		sort.Strings(hits)
		for _, to := range hits {
			c := reach[to]
			// Report only the first forbidden package on a chain: the
			// one behind it is the same mistake.
			first := true
			for _, mid := range c.Path[1 : len(c.Path)-1] {
				if r.forbidden(g, mid) {
					first = false
				}
			}
			if first {
				out = append(out, Finding{Rule: r, Package: rel, To: strings.TrimPrefix(to, g.Module+"/"), Test: c.Test, Where: c.Format(g.Module)})
			}
		}
		if r.NoCalls {
			vs, err := CheckCalls(filepath.Join(dir, filepath.FromSlash(rel)))
			if err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
			for _, v := range vs {
				if strings.HasPrefix(v.What, "imports ") {
					continue // reported above, with its chain
				}
				out = append(out, Finding{Rule: r, Package: rel, To: v.What, Call: true, Where: v.Pos})
			}
		}
	}
	return out, nil
}
