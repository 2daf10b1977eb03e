package directive

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Change is one difference between two directives, at a field path such as
// `services[catalog].weights[127.0.0.1:9001]`. From or To is "" when the
// field is absent on that side.
type Change struct {
	Path string `json:"path"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

func (c Change) String() string {
	from, to := c.From, c.To
	if from == "" {
		from = "(none)"
	}
	if to == "" {
		to = "(none)"
	}
	return fmt.Sprintf("%s: %s -> %s", c.Path, truncate(from, 120), truncate(to, 120))
}

// Diff lists the content differences from a to b (nil means an empty
// directive), sorted by path. Lists (ramps, warm paths, forecasts) compare
// as whole values; maps (weights, features) per key. Version, change and
// commit time are not compared.
func Diff(a, b *Directive) []Change {
	fa, fb := flatten(a), flatten(b)
	var out []Change
	for p, va := range fa {
		if vb, ok := fb[p]; !ok {
			out = append(out, Change{Path: p, From: va})
		} else if va != vb {
			out = append(out, Change{Path: p, From: va, To: vb})
		}
	}
	for p, vb := range fb {
		if _, ok := fa[p]; !ok {
			out = append(out, Change{Path: p, To: vb})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// FormatDiff renders a diff one change per line ("no changes" if empty).
func FormatDiff(cs []Change) string {
	if len(cs) == 0 {
		return "no changes\n"
	}
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func flatten(d *Directive) map[string]string {
	out := map[string]string{}
	if d == nil {
		return out
	}
	for name, s := range d.Services {
		p := "services[" + name + "]"
		if s == nil {
			continue
		}
		raw, err := json.Marshal(s)
		if err != nil {
			out[p] = "(unencodable)"
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		if len(m) == 0 {
			out[p] = "{}" // present but empty: still differs from absent
			continue
		}
		flattenValue(out, p, m)
	}
	return out
}

func flattenValue(out map[string]string, path string, v any) {
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		for k, x := range m {
			flattenValue(out, path+key(k), x)
		}
		return
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "p99 < 200ms", not "p99 \u003c 200ms"
	enc.Encode(v)
	out[path] = strings.TrimSuffix(b.String(), "\n")
}

// key writes identifier-like keys as .name and the rest (endpoint addresses,
// feature names) as [key].
func key(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r == '_') {
			return "[" + k + "]"
		}
	}
	return "." + k
}

// WeightMove is how much one endpoint's weight changes between two
// directives.
type WeightMove struct {
	Service  string
	Endpoint string
	From, To float64
	// Percent is |To-From|/From×100; +Inf when From is 0 and To is not.
	Percent float64
}

// WeightMoves lists every endpoint whose weight differs between a and b,
// largest move first. A weight that is not listed counts as 1 (the
// proxy's meaning of a missing weight), so adding a service with weight 2
// moves that endpoint by 100%.
func WeightMoves(a, b *Directive) []WeightMove {
	type k struct{ svc, ep string }
	eps := map[k]bool{}
	weights := func(d *Directive, svc string) map[string]float64 {
		if d == nil || d.Services[svc] == nil {
			return nil
		}
		return d.Services[svc].Weights
	}
	for _, d := range []*Directive{a, b} {
		if d == nil {
			continue
		}
		for svc, s := range d.Services {
			if s == nil {
				continue
			}
			for ep := range s.Weights {
				eps[k{svc, ep}] = true
			}
		}
	}
	var out []WeightMove
	for e := range eps {
		from, to := 1.0, 1.0
		if w, ok := weights(a, e.svc)[e.ep]; ok {
			from = w
		}
		if w, ok := weights(b, e.svc)[e.ep]; ok {
			to = w
		}
		if from == to {
			continue
		}
		pct := math.Inf(1)
		if from != 0 {
			pct = math.Abs(to-from) / from * 100
		}
		out = append(out, WeightMove{Service: e.svc, Endpoint: e.ep, From: from, To: to, Percent: pct})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Percent != out[j].Percent {
			return out[i].Percent > out[j].Percent
		}
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Endpoint < out[j].Endpoint
	})
	return out
}
