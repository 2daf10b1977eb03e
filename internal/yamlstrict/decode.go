package yamlstrict

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/textutil"
)

// MaxDepth bounds nesting. The schemas are at most seven levels deep;
// policy options may nest a little more. Deeper input is either hostile or
// an alias cycle, and recursing on it would only burn stack.
const MaxDepth = 64

// Options adapt the decoder to a schema.
type Options struct {
	// Labelled reports whether the items of the list at path are named in
	// paths by their `name` field (services[catalog]) rather than by their
	// index (routes[0]); names are what operators search for. Nil: every
	// list whose items have names.
	Labelled func(path string) bool
	// Custom decodes the types the schema gives a form of its own (sizes,
	// a policy written as a name or a mapping). It reports whether it
	// handled v; it is called for every non-null value.
	Custom func(d *Decoder, n *yaml.Node, v reflect.Value, path string, depth int) bool
}

// Decoder walks a yaml.Node tree and a Go value together, so that every
// problem is reported with its field path and line. It records where each
// field was written (for later validation messages) and which fields were
// written at all (so that an explicit 0 is told apart from an absent one).
type Decoder struct {
	opts Options
	errs []*Error
	// lines maps field paths to the line of their key (or list item).
	lines map[string]int
	// set holds the paths of fields written with a non-null value.
	set map[string]bool
	// labels are the bracket labels of the labelled lists, by path.
	labels map[string][]string
	// suppress holds paths whose validation errors would only repeat a
	// decoding error (the field a misspelt key was probably meant to be).
	suppress map[string]bool
	// budget bounds the nodes visited, so that alias expansion ("billion
	// laughs") cannot make decoding explode.
	budget    int
	exhausted bool
}

// NewDecoder returns a decoder for a document of inputLen bytes (the node
// budget grows with it).
func NewDecoder(inputLen int, o Options) *Decoder {
	return &Decoder{
		opts:     o,
		lines:    map[string]int{},
		set:      map[string]bool{},
		labels:   map[string][]string{},
		suppress: map[string]bool{},
		budget:   min(1<<18, 10_000+20*inputLen),
	}
}

// Errors returns the problems found so far, in the order found (see Sort).
func (d *Decoder) Errors() []*Error { return d.errs }

// Lines maps field paths to the line they were written on.
func (d *Decoder) Lines() map[string]int { return d.lines }

// Written holds the paths of fields written with a non-null value.
func (d *Decoder) Written() map[string]bool { return d.set }

// Labels returns the bracket labels of each labelled list, by path.
func (d *Decoder) Labels() map[string][]string { return d.labels }

// Suppressed holds the paths a misspelt key was probably meant to be:
// "missing field" errors there would only repeat the unknown-field one.
func (d *Decoder) Suppressed() map[string]bool { return d.suppress }

// Exhausted reports whether decoding stopped at the node budget or the
// depth limit: the value is then a truncated fragment, not worth
// validating.
func (d *Decoder) Exhausted() bool { return d.exhausted }

// Errorf records a problem at line and path.
func (d *Decoder) Errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Record notes that path was written, with a non-null value, at line
// (for a Custom decoder that fills fields itself).
func (d *Decoder) Record(path string, line int) {
	d.lines[path] = line
	d.set[path] = true
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	timeType        = reflect.TypeFor[time.Time]()
	nodeType        = reflect.TypeFor[yaml.Node]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// Join appends a field name to a path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > MaxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is an explicit or implicit null (`key:` with
// nothing after it).
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}

// Describe names what a node is, for "expected X, got Y" messages.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		if IsNull(n) {
			return "nothing (null)"
		}
		return Quote(n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an unknown kind of node"
}

// take charges one node against the budget and the depth limit.
func (d *Decoder) take(n *yaml.Node, path string, depth int) bool {
	if d.exhausted {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.exhausted = true
		d.Errorf(n.Line, path, "the document expands to too many values (through aliases); write the values out instead of nesting aliases")
		return false
	}
	if depth > MaxDepth {
		d.exhausted = true
		d.Errorf(n.Line, path, "nested more than %d levels deep (an alias that contains itself?); flatten it", MaxDepth)
		return false
	}
	return true
}

// Decode fills v from n. path is v's field path; depth its nesting.
func (d *Decoder) Decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.take(n, path, depth) {
		return
	}
	line := n.Line
	if n = resolve(n); n == nil {
		d.Errorf(line, path, "alias chain too long; refer to the anchored value directly")
		return
	}
	t := v.Type()
	if IsNull(n) {
		// A null leaves the field unset, as if it were absent, except for an
		// optional section: `active:` with nothing under it looks like it
		// enables active checks but would not, so say so.
		if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem() != nodeType && t.Elem() != timeType {
			key := path[strings.LastIndexAny(path, ".]")+1:]
			d.Errorf(line, path, "is empty; write `%s: {}` to enable it with its defaults, or remove the line", key)
		}
		return
	}
	d.set[path] = true

	if d.opts.Custom != nil && d.opts.Custom(d, n, v, path, depth) {
		return
	}
	switch t {
	case durationType:
		d.decodeDuration(n, v, path)
		return
	case timeType:
		d.decodeTime(n, v, path)
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
		d.Decode(n, fresh.Elem(), path, depth)
		if len(d.errs) == before || t.Elem().Kind() == reflect.Struct {
			v.Set(fresh)
		}
	case reflect.Struct:
		d.Struct(n, v, path, depth)
	case reflect.Slice:
		d.decodeSlice(n, v, path, depth)
	case reflect.Map:
		d.decodeMap(n, v, path, depth)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.Errorf(n.Line, path, "expected a string, got %s", Describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		d.decodeScalar(n, v, path)
	default:
		// Types the schemas do not use (interfaces, arrays...) may still
		// appear in a policy's options; let yaml.v3 handle them, strictly.
		d.strictFallback(n, v, path, depth)
	}
}

func (d *Decoder) decodeDuration(n *yaml.Node, v reflect.Value, path string) {
	const hint = "write a number with a unit, such as 500ms, 5s or 1m30s"
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n.Line, path, "expected a duration (%s), got %s", hint, Describe(n))
		return
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == 0 {
			v.SetInt(0)
			return
		}
		d.Errorf(n.Line, path, "cannot use %s as a duration: a unit is required, e.g. %ss or %sms", n.Value, n.Value, n.Value)
		return
	case "!!str":
		dur, err := time.ParseDuration(strings.TrimSpace(n.Value))
		if err != nil {
			d.Errorf(n.Line, path, "cannot use %s as a duration: %s", Quote(n.Value), hint)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	d.Errorf(n.Line, path, "cannot use %s as a duration: %s", Describe(n), hint)
}

// timeLayouts are the accepted forms of a time; one without a zone is UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}

// ParseTime reads a time as written in a file: RFC 3339, or a date and
// time without a zone (UTC), or a date.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s is not a time: write e.g. 2026-11-27T09:00:00Z or \"2026-11-27 09:00\" (UTC)", Quote(s))
}

func (d *Decoder) decodeTime(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n.Line, path, "expected a time such as 2026-11-27T09:00:00Z, got %s", Describe(n))
		return
	}
	t, err := ParseTime(n.Value)
	if err != nil {
		d.Errorf(n.Line, path, "%v", err)
		return
	}
	v.Set(reflect.ValueOf(t))
}

// decodeScalar decodes booleans and numbers by their YAML tag, more
// strictly than yaml.v3, which would truncate 1.5 to 1 for an integer and
// read the string "5" as a number.
func (d *Decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	kind := v.Kind()
	want := map[reflect.Kind]string{reflect.Bool: "true or false", reflect.Float32: "a number", reflect.Float64: "a number"}[kind]
	if want == "" {
		want = "a whole number"
	}
	if n.Kind != yaml.ScalarNode {
		d.Errorf(n.Line, path, "expected %s, got %s", want, Describe(n))
		return
	}
	tag := n.ShortTag()
	fail := func(extra string) {
		hint := ""
		if tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			hint = "; remove the quotes"
		}
		d.Errorf(n.Line, path, "cannot use %s as %s%s%s", Quote(n.Value), want, extra, hint)
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

// Field is a struct field as the decoder names it in YAML.
type Field struct {
	Name  string
	Index []int // for reflect.Value.FieldByIndex
}

// Fields lists the YAML fields of struct type t in declaration order, as
// the decoder reads them (yaml tag, else the lower-cased name; inline
// structs flattened), so that documentation tests can walk a schema.
func Fields(t reflect.Type) []Field {
	si := getStructInfo(t)
	out := make([]Field, len(si.fields))
	for i, f := range si.fields {
		out[i] = Field{Name: f.name, Index: f.index}
	}
	return out
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
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
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

// Struct decodes a mapping into the struct v, field by field.
func (d *Decoder) Struct(n *yaml.Node, v reflect.Value, path string, depth int) {
	si := getStructInfo(v.Type())
	if n.Kind != yaml.MappingNode && len(si.names) == 0 {
		d.Errorf(n.Line, path, "takes no settings; remove it (got %s)", Describe(n))
		return
	}
	if n.Kind != yaml.MappingNode {
		hint := ""
		if _, ok := si.byName["address"]; ok && n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf("; write it as `address: %s`", n.Value)
		}
		d.Errorf(n.Line, path, "expected a mapping with fields %s, got %s%s", ListNames(si.names), Describe(n), hint)
		return
	}
	d.decodeFields(n, v, path, depth, si, map[string]bool{}, true)
}

// decodeFields decodes the keys of one mapping into v. seen holds the keys
// already decoded from a mapping of higher precedence: explicit keys win
// over merged (`<<: *anchor`) ones, and earlier merge sources over later.
func (d *Decoder) decodeFields(n *yaml.Node, v reflect.Value, path string, depth int, si *structInfo, seen map[string]bool, top bool) {
	local := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, val)
			continue
		}
		if k = resolve(k); k == nil || k.Kind != yaml.ScalarNode {
			d.Errorf(n.Content[i].Line, path, "keys must be plain field names (allowed: %s)", ListNames(si.names))
			continue
		}
		name := k.Value
		f, ok := si.byName[name]
		if !ok {
			if s := textutil.Closest(name, si.names); s != "" {
				d.suppress[Join(path, s)] = true
			}
			if len(si.names) == 0 {
				d.Errorf(k.Line, Join(path, name), "unknown field: nothing may be set here; remove it")
				continue
			}
			d.Errorf(k.Line, Join(path, name), "unknown field: %sallowed fields here: %s", DidYouMean(name, si.names), ListNames(si.names))
			continue
		}
		if first, dup := local[name]; dup {
			if top {
				d.Errorf(k.Line, Join(path, name), "set twice (first at line %d); keep one", first)
			}
			continue
		}
		local[name] = k.Line
		if seen[name] {
			continue
		}
		seen[name] = true
		child := Join(path, name)
		d.lines[child] = k.Line
		d.Decode(val, v.FieldByIndex(f.index), child, depth+1)
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
			d.Errorf(line, path, "`<<` must merge an anchored mapping (`<<: *name`) or a list of them")
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

func (d *Decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = fmt.Sprintf("; write [%s] for a list of one", n.Value)
		}
		d.Errorf(n.Line, path, "expected a list, got %s%s", Describe(n), hint)
		return
	}
	var labels []string
	if d.opts.Labelled == nil || d.opts.Labelled(path) {
		names := make([]string, len(n.Content))
		for i, item := range n.Content {
			names[i] = scalarField(resolve(item), "name")
		}
		labels = ListLabels(names)
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
		d.Decode(item, s.Index(i), child, depth+1)
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
			if val := resolve(n.Content[i+1]); val != nil && val.Kind == yaml.ScalarNode && !IsNull(val) {
				return val.Value
			}
			return ""
		}
	}
	return ""
}

var labelRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,63}$`)

// ListLabels picks the bracket label of each list item from its name:
// the name when that is short, safe to print and unique, else the item's
// index. All-digit names would be mistaken for indexes, so they get the
// index too. Decoding labels lists this way; validation that builds paths
// from a decoded value calls it to name items the same.
func ListLabels(names []string) []string {
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

func (d *Decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.strictFallback(n, v, path, depth)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(n.Line, path, "expected a mapping, got %s", Describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.Errorf(n.Content[i].Line, path, "keys must be plain strings")
			continue
		}
		child := Join(path, k.Value)
		if l, dup := first[k.Value]; dup {
			d.Errorf(k.Line, child, "set twice (first at line %d); keep one", l)
			continue
		}
		first[k.Value] = k.Line
		d.lines[child] = k.Line
		elem := reflect.New(t.Elem()).Elem()
		d.Decode(n.Content[i+1], elem, child, depth+1)
		v.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), elem)
	}
}

// callUnmarshaler hands n to a type's own UnmarshalYAML, after resolving
// aliases so it never sees a dangling anchor.
func (d *Decoder) callUnmarshaler(n *yaml.Node, v reflect.Value, path string, depth int) {
	c := d.copyNode(n, path, depth)
	if c == nil {
		return
	}
	if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(c); err != nil {
		d.addForeign(err, n.Line, path)
	}
}

// strictFallback decodes n with yaml.v3 itself, with unknown fields as
// errors.
func (d *Decoder) strictFallback(n *yaml.Node, v reflect.Value, path string, depth int) {
	c := d.copyNode(n, path, depth)
	if c == nil {
		return
	}
	if err := strictDecode(c, v.Addr().Interface()); err != nil {
		d.addForeign(err, n.Line, path)
	}
}

// strictDecode decodes a node with unknown fields as errors. yaml.Node's
// Decode ignores KnownFields, so the node is encoded again and decoded
// through a Decoder.
func strictDecode(n *yaml.Node, into any) error {
	data, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(into)
}

// Located is implemented by errors that carry their own lines and paths
// (an UnmarshalYAML that decodes with this package): the decoder keeps
// them, with paths relative to the value it handed over.
type Located interface {
	error
	Located() []*Error
}

// addForeign records an error from outside the decoder (an UnmarshalYAML
// method). Errors that carry a path are kept as they are; yaml.v3's
// "line N:" prefixes refer to re-encoded text and give way to the node's
// own line.
func (d *Decoder) addForeign(err error, line int, path string) {
	var loc Located
	if errors.As(err, &loc) {
		for _, e := range loc.Located() {
			d.errs = append(d.errs, &Error{Line: cmp.Or(e.Line, line), Path: JoinRel(path, e.Path), Msg: e.Msg})
		}
		return
	}
	var one *Error
	if errors.As(err, &one) {
		d.errs = append(d.errs, &Error{Line: cmp.Or(one.Line, line), Path: JoinRel(path, one.Path), Msg: one.Msg})
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			d.Errorf(line, path, "%s", stripYAMLLine(m))
		}
		return
	}
	d.Errorf(line, path, "%s", stripYAMLLine(strings.TrimPrefix(err.Error(), "yaml: ")))
}

var yamlInnerLineRE = regexp.MustCompile(`^(yaml: )?line \d+: `)

func stripYAMLLine(s string) string { return yamlInnerLineRE.ReplaceAllString(s, "") }

// JoinRel joins a relative path (from an error made without context) onto
// the path of the node it was about: "" keeps path, "[3]" is appended as
// an index, anything else as a field.
func JoinRel(path, rel string) string {
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
// dropped, so that it can be kept (policy options outlive the parse),
// encoded again on its own, and walked without following aliases.
func (d *Decoder) copyNode(n *yaml.Node, path string, depth int) *yaml.Node {
	if !d.take(n, path, depth) {
		return nil
	}
	line := n.Line
	if n = resolve(n); n == nil {
		d.Errorf(line, path, "alias chain too long; refer to the anchored value directly")
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

// DecodeNode decodes n (kept from an earlier parse, such as a policy's
// options) into the value into points to, strictly, with paths under
// path. The errors are sorted.
func DecodeNode(n *yaml.Node, into any, path string, o Options) []*Error {
	rv := reflect.ValueOf(into)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return []*Error{{Line: n.Line, Path: path, Msg: fmt.Sprintf("cannot decode into %T, which is not a non-nil pointer (a bug in lbsys)", into)}}
	}
	d := NewDecoder(0, o)
	d.Decode(n, rv.Elem(), path, 0)
	return Sort(d.errs)
}
