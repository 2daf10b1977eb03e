package gaia

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPlanesShareOnlyTheDirectiveContract keeps DESIGN.md principle 4: the
// data plane (proxy, agent) never imports the coordinator, and the
// coordinator never imports the data plane; api/directive is all they share.
func TestPlanesShareOnlyTheDirectiveContract(t *testing.T) {
	const mod = "github.com/lbsys/lbsys/"
	for _, c := range []struct{ pkg, forbidden string }{
		{"internal/proxy", "internal/gaia"},
		{"internal/agent", "internal/gaia"},
		{"internal/gaia", "internal/proxy"},
		{"internal/gaia", "internal/agent"},
		{"api/directive", "internal/"},
	} {
		out, err := exec.Command("go", "list", "-deps", mod+c.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", c.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, mod+c.forbidden) {
				t.Errorf("%s depends on %s", c.pkg, dep)
			}
		}
	}
}
