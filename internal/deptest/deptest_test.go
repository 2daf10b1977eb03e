package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// purePackages must stay free of I/O, the wall clock and global randomness.
// Later decision packages (admission, the Gaia FSM) join this list.
var purePackages = []string{"balance", "health", "admission", "forecast", "gaia/fsm", "sim", "planner"}

func TestPurePackagesMakeNoForbiddenCalls(t *testing.T) {
	for _, p := range purePackages {
		v, err := CheckCalls("../" + p)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			t.Errorf("internal/%s: %s", p, x)
		}
	}
}

func TestPurePackagesDoNotDependOnNetHTTP(t *testing.T) {
	for _, p := range purePackages {
		out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", "github.com/lbsys/lbsys/internal/"+p).Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for dec.More() {
			var pkg struct{ ImportPath string }
			if err := dec.Decode(&pkg); err != nil {
				t.Fatal(err)
			}
			for _, bad := range ForbiddenImports {
				if pkg.ImportPath == bad {
					t.Errorf("internal/%s depends on %s (directly or through another package)", p, bad)
				}
			}
		}
	}
}

// TestCheckerCatchesViolations keeps the checker honest: a fixture breaking
// each rule must be reported.
func TestCheckerCatchesViolations(t *testing.T) {
	v, err := CheckCalls("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range v {
		got = append(got, x.What)
	}
	joined := strings.Join(got, "; ")
	for _, want := range []string{"imports net/http", "uses time.Sleep", "uses time.Now", "uses math/rand/v2.IntN"} {
		if !strings.Contains(joined, want) {
			t.Errorf("checker missed %q; reported: %s", want, joined)
		}
	}
}
