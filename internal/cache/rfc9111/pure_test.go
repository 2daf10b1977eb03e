package rfc9111

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/deptest"
)

// TestPure keeps DESIGN.md principle 2 for the cache's decisions: no
// net/http (not even through another package), no wall clock, no global
// randomness.
func TestPure(t *testing.T) {
	v, err := deptest.CheckCalls(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range v {
		t.Error(x)
	}
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var pkg struct{ ImportPath string }
		if err := dec.Decode(&pkg); err != nil {
			t.Fatal(err)
		}
		for _, bad := range deptest.ForbiddenImports {
			if pkg.ImportPath == bad {
				t.Errorf("rfc9111 depends on %s", bad)
			}
		}
	}
}
