package sim

import (
	"errors"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// ScenarioError is one problem in a scenario file: where (file, line, field
// path such as `services[catalog].workers`) and what to do about it. It is
// the proxy configuration's error type too (yamlstrict.FileError), so both
// files report alike: "file:line: path: message".
type ScenarioError = yamlstrict.FileError

// ScenarioErrors is every problem found, sorted by line, so one edit fixes
// them all.
type ScenarioErrors = yamlstrict.FileErrors

// decodeOptions are the scenario's YAML: every list item with a name is
// named by it in paths (services[catalog]), others by index
// (failures[0]); the configuration types a scenario embeds (retries,
// health, admission) read as in the proxy's file.
var decodeOptions = yamlstrict.Options{Custom: config.DecodeTypes}

// decodeYAML parses data (one YAML document, a mapping) into out, a pointer
// to a struct, with internal/yamlstrict: the same strict reading and the
// same messages as the proxy's configuration. It returns the line of every
// field written, so that validation can point at lines too and tell an
// explicit zero from an absent field.
func decodeYAML(data []byte, out any) (map[string]int, ScenarioErrors) {
	root, perr := yamlstrict.Parse(data)
	switch {
	case perr != nil:
		return nil, ScenarioErrors{fromStrict(perr)}
	case root == nil:
		return nil, ScenarioErrors{{Msg: "the scenario is empty: it needs at least `duration:`, `load:` and `services:`"}}
	case root.Kind != yaml.MappingNode:
		return nil, ScenarioErrors{{Line: root.Line, Msg: "the top level must be a mapping (name:, duration:, load:, services:, ...), got " + yamlstrict.Describe(root)}}
	}
	d := yamlstrict.NewDecoder(len(data), decodeOptions)
	d.Decode(root, reflect.ValueOf(out).Elem(), "", 0)
	var errs ScenarioErrors
	for _, e := range yamlstrict.Sort(d.Errors()) {
		errs = append(errs, fromStrict(e))
	}
	return d.Lines(), errs
}

func fromStrict(e *yamlstrict.Error) *ScenarioError { return e.InFile("") }

// parseCalendarTime reads a time as the scenario's fields do (RFC 3339, or
// without a zone: UTC).
func parseCalendarTime(s string) (time.Time, error) { return yamlstrict.ParseTime(s) }

// strictNodeDecode decodes a yaml.Node kept verbatim (policy options) into
// a policy's options struct, strictly; the error names each bad option
// (the caller adds the options' own path and line).
func strictNodeDecode(n *yaml.Node, into any) error {
	errs := yamlstrict.DecodeNode(n, into, "", decodeOptions)
	if len(errs) == 0 {
		return nil
	}
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Msg
		if e.Path != "" {
			parts[i] = e.Path + ": " + e.Msg
		}
	}
	return errors.New(strings.Join(parts, "; "))
}
