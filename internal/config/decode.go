package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/cache/settings"
	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// maxFileBytes bounds what Load reads: a configuration file is a few
// kilobytes; anything near this size is a mistake (a log or binary given
// by accident), and refusing it early gives a clearer error than the YAML
// parser's.
const maxFileBytes = 16 << 20

// Parse reads a configuration from YAML, strictly (internal/yamlstrict):
// unknown fields, repeated keys, wrong types, more than one document and an
// empty file are errors. It then fills defaults and validates every field.
// On failure the error is an ErrorList holding every problem found, each
// with its field path and line.
func Parse(data []byte) (cfg *Config, err error) {
	// The decoder and the checks must never crash the proxy, least of all
	// on a hot reload; a panic is reported as a problem with the file.
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

	d := yamlstrict.NewDecoder(len(data), decodeOptions)
	cfg = new(Config)
	d.Decode(root, reflect.ValueOf(cfg).Elem(), "", 0)
	decodeErrs := fromStrict(d.Errors())

	c := &checker{
		lines:  d.Lines(),
		set:    d.Written(),
		labels: d.Labels(),
		root:   root.Line,
	}
	c.labelsFor(cfg)
	if !d.Exhausted() {
		// After the budget ran out the Config is a truncated fragment;
		// validating it would only add noise to the one error that matters.
		c.applyDefaults(cfg)
		c.validate(cfg)
	}

	errs := append(decodeErrs, c.suppressCascades(decodeErrs, d.Suppressed())...)
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

// parseDocument returns the root mapping of the single document in data.
func parseDocument(data []byte) (*yaml.Node, *Error) {
	root, perr := yamlstrict.Parse(data)
	switch {
	case perr != nil:
		return nil, fromStrictOne(perr)
	case root == nil:
		return nil, emptyFileError()
	case root.Kind != yaml.MappingNode:
		return nil, &Error{Line: root.Line, Msg: fmt.Sprintf("the top level must be a mapping with `listeners:` and `services:`, got %s", describe(root))}
	}
	return root, nil
}

func emptyFileError() *Error {
	return &Error{Msg: "the file is empty: it needs at least `listeners:` and `services:`; see examples/lbsys.yaml"}
}

// decodeOptions are the configuration's YAML: services and listeners are
// named by their names in paths (services[catalog]); routes and
// endpoints, often unnamed, by their index.
var decodeOptions = yamlstrict.Options{
	Labelled: func(path string) bool { return path == "services" || path == "listeners" },
	Custom:   DecodeTypes,
}

var (
	byteSizeType  = reflect.TypeFor[ByteSize]()
	cacheSizeType = reflect.TypeFor[settings.ByteSize]()
	policyType    = reflect.TypeFor[Policy]()
)

// DecodeTypes decodes the configuration's types that have a YAML form of
// their own (sizes such as 64KiB; a policy written as a name or as a
// mapping) with the decoder's paths and lines. It is the Custom hook of
// yamlstrict.Options for any file that embeds configuration types (the
// simulator's scenarios do).
func DecodeTypes(d *yamlstrict.Decoder, n *yaml.Node, v reflect.Value, path string, depth int) bool {
	switch v.Type() {
	case byteSizeType, cacheSizeType:
		if n.Kind != yaml.ScalarNode {
			d.Errorf(n.Line, path, "expected a size such as 65536, 64KiB or 10MB, got %s", describe(n))
			return true
		}
		b, err := ParseByteSize(n.Value)
		if err != nil {
			d.Errorf(n.Line, path, "%v", err)
			return true
		}
		v.SetInt(int64(b))
		return true
	case policyType:
		decodePolicy(d, n, v.Addr().Interface().(*Policy), path, depth)
		return true
	}
	return false
}

// fromStrict turns the decoder's problems into this package's.
func fromStrict(errs []*yamlstrict.Error) []*Error {
	out := make([]*Error, len(errs))
	for i, e := range errs {
		out[i] = fromStrictOne(e)
	}
	return out
}

func fromStrictOne(e *yamlstrict.Error) *Error { return e.InFile("") }

func isNull(n *yaml.Node) bool { return yamlstrict.IsNull(n) }

func describe(n *yaml.Node) string { return yamlstrict.Describe(n) }

// sliceLabels names list items in paths as the decoder does.
func sliceLabels(names []string) []string { return yamlstrict.ListLabels(names) }

// joinRel joins a path relative to a field onto the field's path.
func joinRel(path, rel string) string { return yamlstrict.JoinRel(path, rel) }
