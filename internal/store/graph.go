package store

import (
	"slices"
	"sort"
)

// Graph is the dependency graph over CIs, for the pipeline's coupling
// features and the dashboard.
//
// A node is a service when its CIs name one (CI.Service), so the ServiceNow
// business service "checkout" and the Backstage component "checkout" are
// one node; other CIs (databases, hosts, APIs) are nodes of their own, keyed
// by CI ID. An edge A → B means "A depends on B": B is upstream of A, A is
// downstream of B (the Envoy sense: requests flow from downstream callers to
// upstream dependencies; a failure of B impacts its downstream). Edges come
// from depends_on and consumes_api relations, and from provides_api
// relations reversed (an API depends on the component that implements it),
// so "cart consumes the pricing API, provided by pricing" makes pricing
// upstream of cart.
type Graph struct {
	nodes map[string]*graphNode
	keyOf map[string]string // CI ID, CI name or service name → node key
}

type graphNode struct {
	info Node
	out  map[string]bool // dependencies
	in   map[string]bool // dependents
}

// Node describes one graph node.
type Node struct {
	// Key is the service name for service nodes, else the CI ID.
	Key     string
	Service string
	// Name is a display name (the service, or the CI's name).
	Name string
	// CIs are the IDs of the items merged into the node.
	CIs []string
}

// NewGraph builds the graph from items and relations. Relations whose ends
// are not among cis become nodes keyed by the raw ID (validation at the door
// normally keeps those out).
func NewGraph(cis []CI, rels []Relation) *Graph {
	g := &Graph{nodes: map[string]*graphNode{}, keyOf: map[string]string{}}
	for _, c := range cis {
		key := c.ID
		name := c.Name
		if c.Service != "" {
			key, name = c.Service, c.Service
		}
		n := g.node(key)
		n.info.Service = c.Service
		if n.info.Name == "" {
			n.info.Name = name
		}
		n.info.CIs = append(n.info.CIs, c.ID)
		g.keyOf[c.ID] = key
	}
	// Names resolve only where unambiguous and never shadow IDs or services.
	byName := map[string][]string{}
	for _, c := range cis {
		byName[c.Name] = append(byName[c.Name], g.keyOf[c.ID])
	}
	for name, keys := range byName {
		slices.Sort(keys)
		keys = slices.Compact(keys)
		if _, taken := g.keyOf[name]; !taken && len(keys) == 1 {
			g.keyOf[name] = keys[0]
		}
	}
	for key := range g.nodes {
		g.keyOf[key] = key
	}
	for _, r := range rels {
		var from, to string
		switch r.Kind {
		case KindDependsOn, KindConsumesAPI:
			from, to = r.Parent, r.Child
		case KindProvidesAPI:
			from, to = r.Child, r.Parent
		default:
			continue
		}
		fk, tk := g.keyFor(from), g.keyFor(to)
		if fk == tk {
			// Two CIs of one service depending on each other say nothing
			// about coupling between services.
			if from != to {
				continue
			}
		}
		g.node(fk).out[tk] = true
		g.node(tk).in[fk] = true
	}
	for _, n := range g.nodes {
		slices.Sort(n.info.CIs)
	}
	return g
}

func (g *Graph) keyFor(ciID string) string {
	if k, ok := g.keyOf[ciID]; ok {
		return k
	}
	g.keyOf[ciID] = ciID
	return ciID
}

func (g *Graph) node(key string) *graphNode {
	n := g.nodes[key]
	if n == nil {
		n = &graphNode{info: Node{Key: key, Name: key}, out: map[string]bool{}, in: map[string]bool{}}
		g.nodes[key] = n
	}
	return n
}

// Resolve maps a service name, CI ID or (unambiguous) CI name to its node
// key.
func (g *Graph) Resolve(s string) (string, bool) {
	k, ok := g.keyOf[s]
	return k, ok
}

// Nodes returns every node key, sorted.
func (g *Graph) Nodes() []string {
	out := make([]string, 0, len(g.nodes))
	for k := range g.nodes {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Node returns a node's description.
func (g *Graph) Node(key string) (Node, bool) {
	n, ok := g.nodes[key]
	if !ok {
		return Node{}, false
	}
	return n.info, true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DependsOn returns key's direct dependencies.
func (g *Graph) DependsOn(key string) []string {
	if n := g.nodes[key]; n != nil {
		return sortedKeys(n.out)
	}
	return nil
}

// DependedOnBy returns key's direct dependents.
func (g *Graph) DependedOnBy(key string) []string {
	if n := g.nodes[key]; n != nil {
		return sortedKeys(n.in)
	}
	return nil
}

// FanOut is the number of direct dependencies of key.
func (g *Graph) FanOut(key string) int {
	if n := g.nodes[key]; n != nil {
		return len(n.out)
	}
	return 0
}

// FanIn is the number of direct dependents of key.
func (g *Graph) FanIn(key string) int {
	if n := g.nodes[key]; n != nil {
		return len(n.in)
	}
	return 0
}

// Upstream returns everything key depends on, directly or transitively,
// sorted. key itself is included only when it lies on a cycle.
func (g *Graph) Upstream(key string) []string {
	return g.reach(key, func(n *graphNode) map[string]bool { return n.out })
}

// Downstream returns everything that depends on key, directly or
// transitively (its blast radius), sorted.
func (g *Graph) Downstream(key string) []string {
	return g.reach(key, func(n *graphNode) map[string]bool { return n.in })
}

func (g *Graph) reach(key string, next func(*graphNode) map[string]bool) []string {
	start := g.nodes[key]
	if start == nil {
		return nil
	}
	seen := map[string]bool{}
	stack := sortedKeys(next(start))
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[k] {
			continue
		}
		seen[k] = true
		for m := range next(g.nodes[k]) {
			if !seen[m] {
				stack = append(stack, m)
			}
		}
	}
	return sortedKeys(seen)
}

// Cycles returns the dependency cycles: each strongly connected component
// with more than one node, or a node that depends on itself, as a sorted
// list of keys; the list of cycles is sorted by first key. A cycle is not an
// error (services do call each other) but it defeats "upstream first"
// reasoning, so the pipeline and the dashboard report it.
func (g *Graph) Cycles() [][]string {
	// Tarjan's strongly connected components (Tarjan 1972), iterative so a
	// deep graph cannot overflow the stack.
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	next := 0
	type frame struct {
		key   string
		succ  []string
		child int
	}
	for _, root := range g.Nodes() {
		if _, done := index[root]; done {
			continue
		}
		work := []frame{{key: root, succ: sortedKeys(g.nodes[root].out)}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(work) > 0 {
			f := &work[len(work)-1]
			if f.child < len(f.succ) {
				w := f.succ[f.child]
				f.child++
				if _, seen := index[w]; !seen {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					work = append(work, frame{key: w, succ: sortedKeys(g.nodes[w].out)})
				} else if onStack[w] {
					low[f.key] = min(low[f.key], index[w])
				}
				continue
			}
			v := f.key
			work = work[:len(work)-1]
			if len(work) > 0 {
				p := work[len(work)-1].key
				low[p] = min(low[p], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			var comp []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 || g.nodes[v].out[v] {
				sort.Strings(comp)
				out = append(out, comp)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
