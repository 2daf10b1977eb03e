package yamlstrict

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type endpoint struct {
	Address string `yaml:"address"`
	Weight  int    `yaml:"weight"`
}

type service struct {
	Name      string            `yaml:"name"`
	Endpoints []endpoint        `yaml:"endpoints"`
	Timeout   time.Duration     `yaml:"timeout"`
	Ratio     float64           `yaml:"ratio"`
	Enabled   bool              `yaml:"enabled"`
	Start     time.Time         `yaml:"start"`
	Labels    map[string]string `yaml:"labels"`
	Active    *struct {
		Path string `yaml:"path"`
	} `yaml:"active"`
}

type file struct {
	Services []service `yaml:"services"`
	// Extra is decoded by yaml.v3 itself (an interface), after the
	// decoder expanded its aliases.
	Extra any `yaml:"extra"`
}

// decode parses and decodes data into a file, returning the sorted
// problems as "line N: path: message" strings.
func decode(data string) (*file, *Decoder, []string) {
	var out []string
	root, perr := Parse([]byte(data))
	if perr != nil {
		return nil, nil, []string{perr.Error()}
	}
	if root == nil {
		return nil, nil, []string{"empty"}
	}
	f := &file{}
	d := NewDecoder(len(data), Options{})
	d.Decode(root, reflect.ValueOf(f).Elem(), "", 0)
	for _, e := range Sort(d.Errors()) {
		out = append(out, e.Error())
	}
	return f, d, out
}

const base = `services:
  - name: catalog
    endpoints:
      - address: 127.0.0.1:9001
`

// TestErrorMessages: each kind of problem, with its exact line and path.
func TestErrorMessages(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // the whole error list
	}{
		{"unknown field", base + "        wieght: 2\n",
			[]string{"line 5: services[catalog].endpoints[0].wieght: unknown field: did you mean `weight`? allowed fields here: address, weight"}},
		{"unknown field, nothing close", base + "    colour: blue\n",
			[]string{"line 5: services[catalog].colour: unknown field: allowed fields here: active, enabled, endpoints, labels, name, ratio, start, timeout"}},
		{"wrong type: list for a string", base + "    name2: x\n    timeout: [1s]\n",
			[]string{"line 5: services[catalog].name2: unknown field: did you mean `name`? allowed fields here: active, enabled, endpoints, labels, name, ratio, start, timeout",
				"line 6: services[catalog].timeout: expected a duration (write a number with a unit, such as 500ms, 5s or 1m30s), got a list"}},
		{"wrong type: quoted number", base + "        weight: \"3\"\n",
			[]string{`line 5: services[catalog].endpoints[0].weight: cannot use "3" as a whole number; remove the quotes`}},
		{"wrong type: fraction", base + "        weight: 1.5\n",
			[]string{`line 5: services[catalog].endpoints[0].weight: cannot use "1.5" as a whole number (no fraction)`}},
		{"wrong type: yes is not a bool", base + "    enabled: yes\n",
			[]string{`line 5: services[catalog].enabled: cannot use "yes" as true or false`}},
		{"wrong type: not finite", base + "    ratio: .inf\n",
			[]string{`line 5: services[catalog].ratio: cannot use ".inf" as a number (it must be finite)`}},
		{"wrong type: scalar for a list", "services: catalog\n",
			[]string{`line 1: services: expected a list, got "catalog"; write [catalog] for a list of one`}},
		{"duration without unit", base + "    timeout: 5\n",
			[]string{"line 5: services[catalog].timeout: cannot use 5 as a duration: a unit is required, e.g. 5s or 5ms"}},
		{"bad time", base + "    start: tomorrow\n",
			[]string{`line 5: services[catalog].start: "tomorrow" is not a time: write e.g. 2026-11-27T09:00:00Z or "2026-11-27 09:00" (UTC)`}},
		{"duplicate key", base + "    name: web\n",
			[]string{"line 5: services[catalog].name: set twice (first at line 2); keep one"}},
		{"duplicate map key", base + "    labels: {team: a, team: b}\n",
			[]string{"line 5: services[catalog].labels.team: set twice (first at line 5); keep one"}},
		{"empty section", base + "    active:\n",
			[]string{"line 5: services[catalog].active: is empty; write `active: {}` to enable it with its defaults, or remove the line"}},
		{"syntax: bad indentation", base + "   timeout: 1s\n",
			[]string{"line 5: invalid YAML: did not find expected '-' indicator (check the indentation and quoting around this line)"}},
		{"syntax: tab", base + "\ttimeout: 1s\n",
			[]string{"line 5: invalid YAML: found a tab character that violates indentation (check the indentation and quoting around this line)"}},
		{"syntax: unclosed flow", "services:\n  - name: a\n    labels: {team: a\n  - name: b\n",
			[]string{"line 3: invalid YAML: did not find expected ',' or '}' (check the indentation and quoting around this line)"}},
		{"syntax: unterminated quote", "services:\n  - name: \"a\n    endpoints: []\n  - name: b\n",
			[]string{"line 2: invalid YAML: found unexpected end of stream (check the indentation and quoting around this line)"}},
		{"syntax: a second document", base + "---\nservices: []\n",
			[]string{"line 5: the file holds more than one YAML document (separated by `---`); it must hold exactly one: merge them or remove the extra one"}},
		{"merged keys: explicit wins, typo found at its line", "defaults: &d {weight: 2, adress: x}\n" + "services:\n  - name: a\n    endpoints:\n      - <<: *d\n        address: 127.0.0.1:1\n",
			[]string{"line 1: defaults: unknown field: allowed fields here: extra, services",
				"line 1: services[a].endpoints[0].adress: unknown field: did you mean `address`? allowed fields here: address, weight"}},
		{"aliases that expand too much", "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nextra: *e\n",
			nil}, // checked below: one budget error, no hang
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, got := decode(tc.yaml)
			if tc.want == nil {
				if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "too many values") {
					t.Fatalf("got %q, want the node budget error", got)
				}
				return
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestDecodes: what is written arrives, with lines and written-ness.
func TestDecodes(t *testing.T) {
	f, d, errs := decode(base + "        weight: 0\n    timeout: 0\n    start: 2026-11-27 09:00\n    labels: {team: shop}\n    active: {}\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s := f.Services[0]
	if s.Name != "catalog" || s.Endpoints[0].Address != "127.0.0.1:9001" || s.Labels["team"] != "shop" || s.Active == nil ||
		!s.Start.Equal(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", s)
	}
	if !d.Written()["services[catalog].endpoints[0].weight"] || d.Lines()["services[catalog].endpoints[0].weight"] != 5 {
		t.Error("an explicit zero is not recorded as written at its line")
	}
	if d.Written()["services[catalog].ratio"] {
		t.Error("an absent field is recorded as written")
	}
}

// TestSyntaxLineOnTheExample: breaking examples/lbsys.yaml in the ways
// people do reports the line that was broken (issue #16: yaml.v3 named
// the line where the enclosing block began, 0-based).
func TestSyntaxLineOnTheExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "lbsys.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	find := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("examples/lbsys.yaml has no line %q", prefix)
		return 0
	}
	cases := []struct {
		name   string
		at     string // the line to break, by its start
		broken string
	}{
		// yaml.v3 alone said: 2 lines early (the enclosing list's first
		// line, 0-based), then 1 early three times (the enclosing block),
		// then right (a scanner error without context).
		{"indentation off by one", "    priority: sheddable", "   priority: sheddable\n"},
		{"tab", "    endpoints:", "\tendpoints:\n"},
		{"unclosed flow list", "  trusted_proxies:", "  trusted_proxies: [\"127.0.0.1/32\", \"::1\"\n"},
		{"unterminated quote", "  listen: 127.0.0.1:9901", "  listen: \"127.0.0.1:9901\n"},
		{"colon in a value", "        interval: 5s", "        interval: 5s: 10s\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			i := find(tc.at)
			broken := append([]string(nil), lines...)
			broken[i] = tc.broken
			_, perr := Parse([]byte(strings.Join(broken, "")))
			if perr == nil {
				t.Fatal("no error")
			}
			if perr.Line != i+1 {
				t.Errorf("line %d, want %d (the broken line): %v", perr.Line, i+1, perr)
			}
		})
	}
}

// TestSyntaxLineSkipsValidMultiLineValues: a flow collection or a quoted
// value spanning lines before the error is not mistaken for it.
func TestSyntaxLineSkipsValidMultiLineValues(t *testing.T) {
	data := "services:\n  - name: a\n    labels: {team: a,\n      tier: b}\n    endpoints: [\n      {address: x}]\n  - name: b\n   timeout: 1s\n"
	_, perr := Parse([]byte(data))
	if perr == nil || perr.Line != 8 {
		t.Fatalf("got %v, want an error at line 8", perr)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		if root, perr := Parse([]byte(in)); root != nil || perr != nil {
			t.Errorf("%q: root %v, error %v; want neither", in, root, perr)
		}
	}
}

func TestListLabels(t *testing.T) {
	got := ListLabels([]string{"catalog", "", "catalog", "123", "has space", "cart"})
	want := []string{"catalog", "1", "2", "3", "4", "cart"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestFileErrorFormat: the one form both the configuration and the
// scenarios print, each part left out when unknown, and SortFile's order.
func TestFileErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    FileError
		want string
	}{
		{FileError{File: "a.yaml", Line: 7, Path: "services[web].policy", Msg: "bad"}, "a.yaml:7: services[web].policy: bad"},
		{FileError{File: "a.yaml", Path: "services", Msg: "bad"}, "a.yaml: services: bad"},
		{FileError{File: "a.yaml", Line: 3, Msg: "bad"}, "a.yaml:3: bad"},
		{FileError{Line: 3, Path: "p", Msg: "bad"}, "line 3: p: bad"},
		{FileError{Msg: "bad"}, "bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.e, got, tc.want)
		}
	}
	if got := (&Error{Line: 3, Path: "p", Msg: "m"}).InFile("f.yaml").Error(); got != "f.yaml:3: p: m" {
		t.Errorf("InFile: got %q", got)
	}
	list := SortFile([]*FileError{
		{File: "f", Line: 9, Msg: "late"},
		{File: "f", Line: 2, Path: "b", Msg: "x"},
		{File: "f", Line: 2, Path: "a", Msg: "x"},
		{File: "f", Line: 9, Msg: "late"},
	})
	if got, want := list.Error(), "f:2: a: x\nf:2: b: x\nf:9: late"; got != want {
		t.Errorf("SortFile: got %q, want %q", got, want)
	}
	var one *FileError
	if !errors.As(error(list), &one) || one.Path != "a" {
		t.Errorf("errors.As through FileErrors: %v", one)
	}
}
