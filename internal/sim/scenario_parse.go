package sim

import (
	"fmt"
	"strings"

	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// Reading a scenario: decode strictly, fill defaults, validate, and report
// every error with its file, line and path.

// ParseScenario decodes and validates a scenario. name labels errors
// (usually the file name).
func ParseScenario(data []byte, name string) (*Scenario, error) {
	sc := &Scenario{}
	lines, errs := decodeYAML(data, sc)
	if len(errs) > 0 {
		for _, e := range errs {
			e.File = name
		}
		return nil, errs
	}
	sc.file = name
	sc.lines = lines
	if sc.Name == "" {
		base := name[strings.LastIndexAny(name, `/\`)+1:]
		sc.Name = strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
	}
	v := &validator{sc: sc}
	sc.defaults(v)
	sc.validate(v)
	if len(v.errs) > 0 {
		return nil, yamlstrict.SortFile(v.errs)
	}
	return sc, nil
}

// set reports whether path was written in the file.
func (sc *Scenario) set(path string) bool {
	_, ok := sc.lines[path]
	return ok
}

type validator struct {
	sc   *Scenario
	errs ScenarioErrors
}

func (v *validator) errf(path, format string, args ...any) {
	line := v.sc.lines[path]
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = v.sc.lines[p]
	}
	v.errs = append(v.errs, &ScenarioError{File: v.sc.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}
