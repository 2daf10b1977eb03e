package sim

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/lbsys/lbsys/internal/textutil"
	"io"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ScenarioError is one problem in a scenario file: where (file, line, field
// path such as `services[catalog].workers`) and what to do about it.
type ScenarioError struct {
	// File is the name the scenario was parsed under.
	File string
	// Line is 1-based; 0 when not tied to a line.
	Line int
	// Path is the field, e.g. services[catalog].workers; empty for the
	// file as a whole.
	Path string
	// Msg says what is wrong and what to write instead.
	Msg string
}

// Error formats the problem as "file:line: path: message", leaving out the
// unknown parts.
func (e *ScenarioError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ScenarioErrors is every problem found, sorted by line, so one edit fixes
// them all.
type ScenarioErrors []*ScenarioError

// Error joins the problems one per line.
func (l ScenarioErrors) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// decoder walks a yaml.Node tree and a Go value together, strictly: an
// unknown or repeated key, a value of the wrong kind, a duration without a
// unit are all errors naming the field path and line. It records the line
// of every field written, so that later validation can point at lines too
// and tell an explicit zero from an absent field. (yaml.v3's own
// KnownFields decoding reports lines but not paths, and yaml.Node.Decode
// ignores KnownFields altogether.)
type decoder struct {
	errs   ScenarioErrors
	lines  map[string]int
	budget int // nodes still allowed: aliases must not expand a small file into a huge one
}

const (
	maxDecodeDepth = 32
	maxDecodeNodes = 200_000
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	nodeType     = reflect.TypeFor[yaml.Node]()
)

var (
	yamlLineRE  = regexp.MustCompile(`^yaml: line (\d+): `)
	innerLineRE = regexp.MustCompile(`\n\s*line \d+: `)
)

// decodeYAML parses data (one YAML document, a mapping) into out, a pointer
// to a struct.
func decodeYAML(data []byte, out any) (map[string]int, ScenarioErrors) {
	d := &decoder{lines: map[string]int{}, budget: maxDecodeNodes}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ScenarioErrors{{Msg: "the scenario is empty: it needs at least `duration:`, `load:` and `services:`"}}
		}
		return nil, ScenarioErrors{syntaxError(err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, ScenarioErrors{{Line: extra.Line, Msg: "more than one YAML document (separated by ---): a scenario file holds exactly one"}}
	case !errors.Is(err, io.EOF):
		return nil, ScenarioErrors{syntaxError(err)}
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		line := 0
		if len(doc.Content) == 1 {
			line = doc.Content[0].Line
		}
		return nil, ScenarioErrors{{Line: line, Msg: "the top level must be a mapping (name:, duration:, load:, services:, ...)"}}
	}
	d.decode(doc.Content[0], reflect.ValueOf(out).Elem(), "", 0)
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	return d.lines, d.errs
}

func syntaxError(err error) *ScenarioError {
	msg := err.Error()
	e := &ScenarioError{}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e.Msg = "invalid YAML: " + msg + " (check indentation and quoting around this line)"
	return e
}

func (d *decoder) errf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &ScenarioError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if depth > maxDecodeDepth {
		d.errf(n, path, "nested too deeply")
		return
	}
	if d.budget--; d.budget < 0 {
		if d.budget == -1 {
			d.errf(n, path, "the document expands to more than %d values (aliases?): write it out plainly", maxDecodeNodes)
		}
		return
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
		depth++
		if depth > maxDecodeDepth {
			d.errf(n, path, "alias nested too deeply")
			return
		}
	}
	if path != "" {
		if _, seen := d.lines[path]; !seen {
			d.lines[path] = n.Line
		}
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent: keep the zero value (defaults apply)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, depth+1)
	case reflect.Struct:
		if v.Type() == timeType {
			d.decodeTime(n, v, path)
			return
		}
		d.decodeStruct(n, v, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errf(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), path+"["+elemLabel(c, i)+"]", depth+1)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errf(n, path, "want a mapping, got %s", describe(n))
			return
		}
		if v.Type().Key().Kind() != reflect.String {
			d.errf(n, path, "unsupported map key type")
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.errf(k, path, "keys must be plain names")
				continue
			}
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.errf(k, path+"."+k.Value, "given twice")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, path+"."+k.Value, depth+1)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	default:
		d.decodeScalar(n, v, path)
	}
}

// elemLabel names a list element by its name field when it has one
// (services[catalog]) and by index otherwise (failures[0]).
func elemLabel(n *yaml.Node, i int) string {
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" && n.Content[j+1].Kind == yaml.ScalarNode && n.Content[j+1].Value != "" {
				return n.Content[j+1].Value
			}
		}
	}
	return strconv.Itoa(i)
}

type fieldInfo struct {
	name  string
	index int
}

func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, fieldInfo{name, i})
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "want a mapping of fields, got %s", describe(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "keys must be plain field names")
			continue
		}
		if k.Value == "<<" {
			d.errf(k, path, "merge keys (<<) are not supported: write the fields out")
			continue
		}
		p := joinPath(path, k.Value)
		if seen[k.Value] {
			d.errf(k, p, "given twice: keep one")
			continue
		}
		seen[k.Value] = true
		fi := -1
		for _, f := range fields {
			if f.name == k.Value {
				fi = f.index
			}
		}
		if fi < 0 {
			d.errf(k, p, "unknown field%s; known fields here: %s", suggest(k.Value, fields), fieldNames(fields))
			continue
		}
		d.lines[p] = k.Line
		d.decode(val, v.Field(fi), p, depth+1)
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldNames(fs []fieldInfo) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

// suggest proposes the closest known field for a misspelt one.
func suggest(got string, fs []fieldInfo) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.name
	}
	best := textutil.Closest(got, names)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func (d *decoder) decodeTime(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errf(n, path, "want a time such as 2026-11-27T09:00:00Z, got %s", describe(n))
		return
	}
	t, err := parseCalendarTime(n.Value)
	if err != nil {
		d.errf(n, path, "%v", err)
		return
	}
	v.Set(reflect.ValueOf(t))
}

// calendarLayouts are the accepted time forms; times without a zone are UTC.
var calendarLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}

func parseCalendarTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range calendarLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: write e.g. 2026-11-27T09:00:00Z or \"2026-11-27 09:00\" (UTC)", s)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errf(n, path, "want a single value, got %s", describe(n))
		return
	}
	s := n.Value
	switch {
	case v.Type() == durationType:
		dur, err := time.ParseDuration(s)
		if err != nil {
			if _, nerr := strconv.ParseFloat(s, 64); nerr == nil && s != "0" {
				d.errf(n, path, "%q has no unit: write e.g. 30s, 250ms or 2m", s)
			} else if s == "0" {
				v.SetInt(0)
			} else {
				d.errf(n, path, "%q is not a duration: write e.g. 30s, 250ms or 2m", s)
			}
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil || n.Tag != "!!bool" {
			d.errf(n, path, "want true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case v.Kind() >= reflect.Int && v.Kind() <= reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.errf(n, path, "want a whole number, got %q", s)
			return
		}
		v.SetInt(i)
	case v.Kind() >= reflect.Uint && v.Kind() <= reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowUint(u) {
			d.errf(n, path, "want a whole number >= 0, got %q", s)
			return
		}
		v.SetUint(u)
	case v.Kind() == reflect.Float32 || v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.errf(n, path, "want a finite number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.errf(n, path, "unsupported field type %s", v.Type())
	}
}

// strictNodeDecode decodes a yaml.Node kept verbatim (policy options) into
// a policy's options struct, rejecting unknown fields: the node is encoded
// again and decoded with KnownFields, because yaml.Node.Decode would
// silently ignore unknown ones.
func strictNodeDecode(n *yaml.Node, into any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		// The lines yaml.v3 reports are of the re-encoded node, not of the
		// file: drop them (the caller adds the option's own line).
		msg := yamlLineRE.ReplaceAllString(err.Error(), "")
		msg = innerLineRE.ReplaceAllString(msg, " ")
		return errors.New(strings.TrimPrefix(strings.TrimPrefix(msg, "yaml: "), "unmarshal errors: "))
	}
	return nil
}
