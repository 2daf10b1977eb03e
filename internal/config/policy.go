package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// UnmarshalYAML accepts the two spellings of a policy: a bare name
// (`policy: least_request`) for the common case, and a mapping
// (`policy: {name: least_request, options: {choice_count: 3}}`) when
// options are needed. It only checks the shape; the name and the options are
// checked by Validate, against the balance registry. Parse does not go
// through this method (it has the same logic with full paths); it serves
// code that decodes a Service with yaml.v3 directly.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	d := yamlstrict.NewDecoder(0, decodeOptions)
	decodePolicy(d, n, p, "policy", 0)
	if errs := d.Errors(); len(errs) > 0 {
		return sortErrors(fromStrict(errs))
	}
	return nil
}

// decodePolicy is UnmarshalYAML with the decoder's path and line tracking.
func decodePolicy(d *yamlstrict.Decoder, n *yaml.Node, p *Policy, path string, depth int) {
	switch n.Kind {
	case yaml.ScalarNode:
		*p = Policy{Name: n.Value}
		d.Record(path+".name", n.Line)
	case yaml.MappingNode:
		d.Struct(n, reflect.ValueOf(p).Elem(), path, depth)
	default:
		d.Errorf(n.Line, path, "expected a policy name such as `least_request`, or a mapping `{name: least_request, options: {...}}`, got %s", describe(n))
	}
}

// BalancerFactory returns the factory of the service's balancing policy.
// After Parse, Load or Validate it is the factory built while validating, so
// the proxy does not decode the options twice and the error is nil. For a
// Service that was never validated it builds one now (without caching it,
// so the method stays safe for concurrent use); the error then says what is
// wrong with the policy.
func (s *Service) BalancerFactory() (func() balance.Balancer, error) {
	if s.balancer != nil {
		return s.balancer, nil
	}
	ch := &checker{}
	cp := *s
	ch.validatePolicy(&cp, "policy")
	if len(ch.errs) > 0 {
		return nil, sortErrors(ch.errs)
	}
	return cp.balancer, nil
}

// validatePolicy resolves the policy name in the balance registry and lets
// the policy validate its options; it keeps the factory on the Service.
func (ch *checker) validatePolicy(s *Service, p string) {
	name := s.Policy.Name
	if _, ok := balance.Lookup(name); !ok {
		names := balance.Names()
		ch.errf(p+".name", "unknown policy %s: %sregistered policies: %s", quote(name), didYouMean(name, names), listNames(names))
		return
	}
	opts := &s.Policy.Options
	optsPath := p + ".options"
	hasOpts := opts.Kind != 0 && !isNull(opts)

	var decode func(any) error
	var captured []*Error
	called := false
	if hasOpts {
		decode = func(into any) error {
			called = true
			rv := reflect.ValueOf(into)
			if rv.Kind() != reflect.Pointer || rv.IsNil() {
				return fmt.Errorf("policy %s decodes its options into %T, which is not a non-nil pointer (a bug in the policy)", name, into)
			}
			if errs := fromStrict(yamlstrict.DecodeNode(opts, into, optsPath, decodeOptions)); len(errs) > 0 {
				captured = append(captured, errs...)
				return sortErrors(slices.Clone(errs))
			}
			return nil
		}
	}
	factory, err := balance.New(name, decode)
	switch {
	case len(captured) > 0:
		// The decoder's errors carry exact paths and lines; prefer them to
		// whatever the policy made of them.
		ch.errs = append(ch.errs, captured...)
		return
	case err != nil:
		msg := err.Error()
		path, line := optionErrorPath(opts, optsPath, msg)
		if line == 0 {
			line = ch.line(path)
		}
		// "choice_count: must be ..." already names the field the path now
		// ends with; say it once.
		if key := path[len(optsPath):]; key != "" {
			msg = strings.TrimPrefix(msg, key[1:]+": ")
		}
		ch.errs = append(ch.errs, &Error{Line: line, Path: path, Msg: fmt.Sprintf("policy %s rejected its options: %s", name, msg)})
		return
	case hasOpts && !called && !(opts.Kind == yaml.MappingNode && len(opts.Content) == 0):
		ch.errf(optsPath, "policy %s takes no options; remove `options:`", name)
		return
	case factory == nil:
		ch.errf(p+".name", "policy %s returned no balancer (a bug in lbsys; please report it)", name)
		return
	}
	s.balancer = factory
}

// optionErrorPath attributes a policy's error message to the option it
// names, when it names exactly one that is in the file: "choice_count must
// be at least 2" points at options.choice_count and its line.
func optionErrorPath(opts *yaml.Node, optsPath, msg string) (string, int) {
	if opts.Kind != yaml.MappingNode {
		return optsPath, opts.Line
	}
	path, line, found := optsPath, opts.Line, ""
	for i := 0; i+1 < len(opts.Content); i += 2 {
		k := opts.Content[i]
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			continue
		}
		if regexp.MustCompile(`\b`+regexp.QuoteMeta(k.Value)+`\b`).MatchString(msg) && len(k.Value) > len(found) {
			found, path, line = k.Value, optsPath+"."+k.Value, k.Line
		}
	}
	return path, line
}
