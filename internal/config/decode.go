package config

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// maxFileBytes bounds what Load reads: a configuration file is a few
// kilobytes; anything near this size is a mistake (a log or binary given
// by accident), and refusing it early gives a clearer error than the YAML
// parser's.
const maxFileBytes = 16 << 20

// maxDepth bounds nesting. The schema itself is at most seven levels deep;
// policy options may nest a little more. Deeper input is either hostile or
// an alias cycle, and recursing on it would only burn stack.
const maxDepth = 64

// Parse reads a configuration from YAML, strictly: unknown fields, wrong
// types, more than one document and an empty file are errors. It then fills
// defaults and validates every field. On failure the error is an ErrorList
// holding every problem found, each with its field path and line.
func Parse(data []byte) (cfg *Config, err error) {
	// yaml.v3 is mature but not panic-proof on every input; a config file
	// must never crash the proxy, least of all on a hot reload.
	defer func() {
		if r := recover(); r != nil {
			cfg = nil
			err = ErrorList{{Msg: fmt.Sprintf("cannot parse the file (internal error: %v); please report this with the file attached", r)}}
		}
	}()

	root, perr := parseDocument(data)
	if perr != nil {
		return nil, ErrorList{perr}
	}

	d := newDecoder(len(data))
	cfg = new(Config)
	d.decode(root, reflect.ValueOf(cfg).Elem(), "", 0)

	c := &checker{
		lines:  d.lines,
		set:    d.set,
		labels: d.labels,
		root:   root.Line,
	}
	c.labelsFor(cfg)
	if !d.exhausted {
		// After the budget ran out the Config is a truncated fragment;
		// validating it would only add noise to the one error that matters.
		c.applyDefaults(cfg)
		c.validate(cfg)
	}

	errs := append(d.errs, c.suppressCascades(d.errs, d.suppress)...)
	if len(errs) > 0 {
		return nil, sortErrors(errs)
	}
	sum := sha256.Sum256(data)
	cfg.version = hex.EncodeToString(sum[:])[:12]
	return cfg, nil
}

// Load reads and parses the file at path. Errors name the file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w; check the path given with --config", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("config: %s is larger than %d MiB; is it really the configuration file?", path, maxFileBytes>>20)
	}
	cfg, err := Parse(data)
	if err != nil {
		var list ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				e.File = path
			}
			return nil, list
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Version identifies the exact bytes the configuration was parsed from: the
// first 12 hex digits of their SHA-256. It is reported by /status and in
// telemetry so that one can tell which file every replica runs, and it is
// the right way to ask "did the file change?" (Configs hold functions and
// cannot be compared with ==). Empty for a Config not made by Parse or Load.
func (c *Config) Version() string { return c.version }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// parseDocument returns the root mapping of the single document in data.
func parseDocument(data []byte) (*yaml.Node, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, emptyFileError()
		}
		return nil, syntaxError(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{Line: extra.Line, Msg: "the file holds more than one YAML document (separated by `---`); lbsys reads exactly one: merge them or remove the extra one"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, emptyFileError()
	}
	root := doc.Content[0]
	if isNull(root) {
		return nil, emptyFileError()
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Line: root.Line, Msg: fmt.Sprintf("the top level must be a mapping with `listeners:` and `services:`, got %s", describe(root))}
	}
	return root, nil
}

func emptyFileError() *Error {
	return &Error{Msg: "the file is empty: it needs at least `listeners:` and `services:`; see examples/lbsys.yaml"}
}

// syntaxError turns a yaml.v3 error ("yaml: line 3: did not find expected
// key") into an Error with the line split out.
func syntaxError(err error) *Error {
	msg := err.Error()
	e := &Error{}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e.Msg = "invalid YAML: " + msg + " (check the indentation and quoting around this line)"
	return e
}

// decoder walks a yaml.Node tree and a Go value together, so that every
// problem is reported with its field path and line, and records where each
// field was written (for later validation messages) and which fields were
// written at all (so that an explicit 0 is told apart from an absent field).
type decoder struct {
	errs []*Error
	// lines maps field paths to the line of their key (or list item).
	lines map[string]int
	// set holds the paths of fields written with a non-null value.
	set map[string]bool
	// labels are the bracket labels of the services and listeners lists.
	labels map[string][]string
	// suppress holds paths whose validation errors would only repeat a
	// decoding error (the field a misspelt key was probably meant to be).
	suppress map[string]bool
	// budget bounds the number of nodes visited, so that alias expansion
	// ("billion laughs") cannot make parsing explode.
	budget    int
	exhausted bool
}

func newDecoder(inputLen int) *decoder {
	return &decoder{
		lines:    map[string]int{},
		set:      map[string]bool{},
		labels:   map[string][]string{},
		suppress: map[string]bool{},
		budget:   min(1<<18, 10_000+20*inputLen),
	}
}

func (d *decoder) errf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	byteSizeType    = reflect.TypeFor[ByteSize]()
	policyType      = reflect.TypeFor[Policy]()
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// joinPath appends a field name to a path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing (null)"
		}
		return quote(n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "a " + kindName(n.Kind)
}

// take charges one node against the budget and the depth limit.
func (d *decoder) take(n *yaml.Node, path string, depth int) bool {
	if d.exhausted {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.exhausted = true
		d.errf(n.Line, path, "the document expands to too many values (through aliases); write the values out instead of nesting aliases")
		return false
	}
	if depth > maxDepth {
		d.exhausted = true
		d.errf(n.Line, path, "nested more than %d levels deep (an alias that contains itself?); flatten it", maxDepth)
		return false
	}
	return true
}

// decode fills v from n. path is v's field path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.take(n, path, depth) {
		return
	}
	line := n.Line
	if n = resolve(n); n == nil {
		d.errf(line, path, "alias chain too long; refer to the anchored value directly")
		return
	}
	t := v.Type()
	if isNull(n) {
		// A null leaves the field unset, as if it were absent, except for an
		// optional section: `active:` with nothing under it looks like it
		// enables active checks but would not, so say so.
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem() != nodeType {
			key := path[strings.LastIndexAny(path, ".]")+1:]
			d.errf(line, path, "is empty; write `%s: {}` to enable it with its defaults, or remove the line", key)
		}
		return
	}
	d.set[path] = true

	switch t {
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case byteSizeType:
		if n.Kind != yaml.ScalarNode {
			d.errf(n.Line, path, "expected a size such as 65536, 64KiB or 10MB, got %s", describe(n))
			return
		}
		b, err := ParseByteSize(n.Value)
		if err != nil {
			d.errf(n.Line, path, "%v", err)
			return
		}
		v.SetInt(int64(b))
		return
	case policyType:
		d.decodePolicy(n, v.Addr().Interface().(*Policy), path, depth)
		return
	case nodeType:
		if c := d.copyNode(n, path, depth); c != nil {
			v.Set(reflect.ValueOf(*c))
		}
		return
	}
	if v.CanAddr() && reflect.PointerTo(t).Implements(unmarshalerType) {
		d.callUnmarshaler(n, v, path, depth)
		return
	}

	switch t.Kind() {
	case reflect.Pointer:
		// Decode into a fresh value and keep it only if it decoded cleanly,
		// so a bad scalar does not leave a misleading explicit zero behind.
		fresh := reflect.New(t.Elem())
		before := len(d.errs)
		d.decode(n, fresh.Elem(), path, depth)
		if len(d.errs) == before || t.Elem().Kind() == reflect.Struct {
			v.Set(fresh)
		}
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.Slice:
		d.decodeSlice(n, v, path, depth)
	case reflect.Map:
		d.decodeMap(n, v, path, depth)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errf(n.Line, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		d.decodeScalar(n, v, path)
	default:
		// Types the schema does not use (interfaces, arrays...) may still
		// appear in a policy's options; let yaml.v3 handle them, strictly.
		d.strictFallback(n, v, path, depth)
	}
}

func (d *decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	const hint = "write a number with a unit, such as 500ms, 5s or 1m30s"
	if n.Kind != yaml.ScalarNode {
		d.errf(n.Line, path, "expected a duration (%s), got %s", hint, describe(n))
		return
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == 0 {
			v.SetInt(0)
			return
		}
		d.errf(n.Line, path, "cannot use %s as a duration: a unit is required, e.g. %ss or %sms", n.Value, n.Value, n.Value)
		return
	case "!!str":
		dur, err := time.ParseDuration(strings.TrimSpace(n.Value))
		if err != nil {
			d.errf(n.Line, path, "cannot use %s as a duration: %s", quote(n.Value), hint)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	d.errf(n.Line, path, "cannot use %s as a duration: %s", describe(n), hint)
}

// decodeScalar decodes booleans and numbers more strictly than yaml.v3,
// which would silently truncate 1.5 to 1 for an integer field.
func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	kind := v.Kind()
	want := map[reflect.Kind]string{reflect.Bool: "true or false", reflect.Float32: "a number", reflect.Float64: "a number"}[kind]
	if want == "" {
		want = "a whole number"
	}
	if n.Kind != yaml.ScalarNode {
		d.errf(n.Line, path, "expected %s, got %s", want, describe(n))
		return
	}
	tag := n.ShortTag()
	fail := func(extra string) {
		hint := ""
		if tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			hint = "; remove the quotes"
		}
		d.errf(n.Line, path, "cannot use %s as %s%s%s", quote(n.Value), want, extra, hint)
	}
	switch kind {
	case reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			fail("")
			return
		}
		v.SetBool(b)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			fail("")
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) || v.OverflowFloat(f) {
			fail(" (it must be finite)")
			return
		}
		v.SetFloat(f)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if tag != "!!int" || n.Decode(&u) != nil || v.OverflowUint(u) {
			fail(" (non-negative, in range)")
			return
		}
		v.SetUint(u)
	default:
		var i int64
		if tag != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			extra := ""
			if tag == "!!float" {
				extra = " (no fraction)"
			}
			fail(extra)
			return
		}
		v.SetInt(i)
	}
}

// fieldInfo is one settable field of a struct, by its YAML name.
type fieldInfo struct {
	name  string
	index []int
}

type structInfo struct {
	fields []fieldInfo // in declaration order
	byName map[string]fieldInfo
	names  []string // sorted, for messages
}

var structInfos sync.Map // reflect.Type → *structInfo

// getStructInfo mirrors yaml.v3's field naming: the yaml tag, else the
// lower-cased field name; `-` skips; `,inline` flattens a struct.
func getStructInfo(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: map[string]fieldInfo{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if _, dup := si.byName[name]; dup {
				continue
			}
			fi := fieldInfo{name: name, index: idx}
			si.fields = append(si.fields, fi)
			si.byName[name] = fi
			si.names = append(si.names, name)
		}
	}
	walk(t, nil)
	slices.Sort(si.names)
	actual, _ := structInfos.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	si := getStructInfo(v.Type())
	if n.Kind != yaml.MappingNode && len(si.names) == 0 {
		d.errf(n.Line, path, "takes no settings; remove it (got %s)", describe(n))
		return
	}
	if n.Kind != yaml.MappingNode {
		hint := ""
		if _, ok := si.byName["address"]; ok && n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf("; write it as `address: %s`", n.Value)
		}
		d.errf(n.Line, path, "expected a mapping with fields %s, got %s%s", listNames(si.names), describe(n), hint)
		return
	}
	d.decodeFields(n, v, path, depth, si, map[string]bool{}, true)
}

// decodeFields decodes the keys of one mapping into v. seen holds the keys
// already decoded from a mapping of higher precedence: explicit keys win
// over merged (`<<: *anchor`) ones, and earlier merge sources over later.
func (d *decoder) decodeFields(n *yaml.Node, v reflect.Value, path string, depth int, si *structInfo, seen map[string]bool, top bool) {
	local := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, val)
			continue
		}
		if k = resolve(k); k == nil || k.Kind != yaml.ScalarNode {
			d.errf(n.Content[i].Line, path, "keys must be plain field names (allowed: %s)", listNames(si.names))
			continue
		}
		name := k.Value
		f, ok := si.byName[name]
		if !ok {
			s := suggest(name, si.names)
			if s != "" {
				d.suppress[joinPath(path, s)] = true
			}
			if len(si.names) == 0 {
				d.errf(k.Line, joinPath(path, name), "unknown field: nothing may be set here; remove it")
				continue
			}
			d.errf(k.Line, joinPath(path, name), "unknown field: %sallowed fields here: %s", didYouMean(name, si.names), listNames(si.names))
			continue
		}
		if first, dup := local[name]; dup {
			if top {
				d.errf(k.Line, joinPath(path, name), "set twice (first at line %d); keep one", first)
			}
			continue
		}
		local[name] = k.Line
		if seen[name] {
			continue
		}
		seen[name] = true
		child := joinPath(path, name)
		d.lines[child] = k.Line
		d.decode(val, v.FieldByIndex(f.index), child, depth+1)
	}
	for _, m := range merges {
		line := m.Line
		m = resolve(m)
		var sources []*yaml.Node
		switch {
		case m == nil:
		case m.Kind == yaml.MappingNode:
			sources = []*yaml.Node{m}
		case m.Kind == yaml.SequenceNode:
			for _, s := range m.Content {
				if s = resolve(s); s != nil && s.Kind == yaml.MappingNode {
					sources = append(sources, s)
				} else {
					sources = nil
					break
				}
			}
		}
		if sources == nil {
			d.errf(line, path, "`<<` must merge an anchored mapping (`<<: *name`) or a list of them")
			continue
		}
		for _, s := range sources {
			if !d.take(s, path, depth+1) {
				return
			}
			d.decodeFields(s, v, path, depth+1, si, seen, false)
		}
	}
}

// labelledLists are the lists whose items are named in paths by their
// `name` (services[catalog]) rather than their index, because names are
// what operators search for.
var labelledLists = map[string]bool{"services": true, "listeners": true}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf("; write [%s] for a list of one", n.Value)
		}
		d.errf(n.Line, path, "expected a list, got %s%s", describe(n), hint)
		return
	}
	var labels []string
	if labelledLists[path] {
		names := make([]string, len(n.Content))
		for i, item := range n.Content {
			names[i] = scalarField(resolve(item), "name")
		}
		labels = sliceLabels(names)
		d.labels[path] = labels
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		label := strconv.Itoa(i)
		if labels != nil {
			label = labels[i]
		}
		child := path + "[" + label + "]"
		d.lines[child] = item.Line
		d.decode(item, s.Index(i), child, depth+1)
	}
	v.Set(s)
}

// scalarField returns the value of key in mapping n, if it is a scalar.
func scalarField(n *yaml.Node, key string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Value == key {
			if val := resolve(n.Content[i+1]); val != nil && val.Kind == yaml.ScalarNode && !isNull(val) {
				return val.Value
			}
			return ""
		}
	}
	return ""
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}$`)

// sliceLabels picks the bracket label of each list item: its name when that
// is short, safe to print and unique, else its index. All-digit names would
// be mistaken for indexes, so they get the index too.
func sliceLabels(names []string) []string {
	labels := make([]string, len(names))
	used := map[string]bool{}
	for i, name := range names {
		if labelRE.MatchString(name) && strings.Trim(name, "0123456789") != "" && !used[name] {
			used[name] = true
			labels[i] = name
		} else {
			labels[i] = strconv.Itoa(i)
		}
	}
	return labels
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.strictFallback(n, v, path, depth)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errf(n.Line, path, "expected a mapping, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errf(n.Content[i].Line, path, "keys must be plain strings")
			continue
		}
		child := joinPath(path, k.Value)
		d.lines[child] = k.Line
		elem := reflect.New(t.Elem()).Elem()
		d.decode(n.Content[i+1], elem, child, depth+1)
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), elem)
	}
}

// callUnmarshaler hands n to a type's own UnmarshalYAML (found in policy
// options), after resolving aliases so it never sees a dangling anchor.
func (d *decoder) callUnmarshaler(n *yaml.Node, v reflect.Value, path string, depth int) {
	c := d.copyNode(n, path, depth)
	if c == nil {
		return
	}
	if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(c); err != nil {
		d.addForeign(err, n.Line, path)
	}
}

// strictFallback decodes n with yaml.v3 itself, with unknown fields as
// errors. yaml.Node.Decode ignores KnownFields, so the node is re-encoded
// and decoded through a Decoder.
func (d *decoder) strictFallback(n *yaml.Node, v reflect.Value, path string, depth int) {
	c := d.copyNode(n, path, depth)
	if c == nil {
		return
	}
	if err := strictDecode(c, v.Addr().Interface()); err != nil {
		d.addForeign(err, n.Line, path)
	}
}

func strictDecode(n *yaml.Node, into any) error {
	data, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(into)
}

// addForeign records an error that came from outside this package (a
// policy, an UnmarshalYAML method). Errors that already carry a path are
// kept as they are; yaml.v3's "line N:" prefixes refer to re-encoded text
// and are dropped in favour of the node's own line.
func (d *decoder) addForeign(err error, line int, path string) {
	var list ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			d.errs = append(d.errs, &Error{Line: cmp.Or(e.Line, line), Path: joinRel(path, e.Path), Msg: e.Msg})
		}
		return
	}
	var one *Error
	if errors.As(err, &one) {
		d.errs = append(d.errs, &Error{Line: cmp.Or(one.Line, line), Path: joinRel(path, one.Path), Msg: one.Msg})
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			d.errf(line, path, "%s", stripYAMLLine(m))
		}
		return
	}
	d.errf(line, path, "%s", stripYAMLLine(strings.TrimPrefix(err.Error(), "yaml: ")))
}

var yamlInnerLineRE = regexp.MustCompile(`^(yaml: )?line \d+: `)

func stripYAMLLine(s string) string { return yamlInnerLineRE.ReplaceAllString(s, "") }

// joinRel joins a relative path (from an error made without context) onto
// the path of the node it was about.
func joinRel(path, rel string) string {
	switch {
	case rel == "":
		return path
	case path == "":
		return rel
	case strings.HasPrefix(rel, "["):
		return path + rel
	}
	return path + "." + rel
}

// copyNode returns a deep copy of n with aliases expanded and anchors
// dropped, so that it can be stored (policy options outlive the parse),
// re-encoded on its own, and walked without following aliases.
func (d *decoder) copyNode(n *yaml.Node, path string, depth int) *yaml.Node {
	if !d.take(n, path, depth) {
		return nil
	}
	line := n.Line
	if n = resolve(n); n == nil {
		d.errf(line, path, "alias chain too long; refer to the anchored value directly")
		return nil
	}
	c := &yaml.Node{
		Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value,
		HeadComment: n.HeadComment, LineComment: n.LineComment, FootComment: n.FootComment,
		Line: n.Line, Column: n.Column,
	}
	if len(n.Content) > 0 {
		c.Content = make([]*yaml.Node, 0, len(n.Content))
		for _, child := range n.Content {
			cc := d.copyNode(child, path, depth+1)
			if cc == nil {
				return nil
			}
			c.Content = append(c.Content, cc)
		}
	}
	return c
}
