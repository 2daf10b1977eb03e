package admission

import (
	"strings"
	"testing"
)

// FuzzParsePriority: the configuration's priority names parse or are
// refused with the names that would do; a name round-trips.
func FuzzParsePriority(f *testing.F) {
	for _, s := range []string{"critical", "Normal", "SHEDDABLE", "", "urgent"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePriority(s)
		if err != nil {
			if !strings.Contains(err.Error(), "critical, normal or sheddable") {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if back, err := ParsePriority(p.String()); err != nil || back != p {
			t.Fatalf("%q → %v → %v, %v", s, p, back, err)
		}
	})
}
