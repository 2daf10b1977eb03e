// Package scenarios holds the simulator's named scenarios (`lbsys sim
// --scenario NAME`), embedded into the binary so that the command works from
// anywhere. The YAML files are the source: they live at the repository root,
// where people look for and edit them, and go:embed can only reach files in
// the embedding package's own directory, hence this small package next to
// them rather than inside internal/sim (which stays free of files and I/O).
// The format is internal/sim's Scenario.
package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.yaml calendars/*.ics
var files embed.FS

// Names returns the embedded scenario names, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Read returns the YAML of the named scenario.
func Read(name string) ([]byte, error) {
	b, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no scenario named %q: use one of %s, or a path to a YAML file", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// ReadFile returns a file the embedded scenarios reference (a calendar),
// by its path relative to scenarios/.
func ReadFile(path string) ([]byte, error) {
	b, err := files.ReadFile(strings.TrimPrefix(path, "./"))
	if err != nil {
		return nil, fmt.Errorf("%s is not among the files embedded with the scenarios", path)
	}
	return b, nil
}
