package textutil

import "testing"

func TestClosest(t *testing.T) {
	names := []string{"interval", "path", "timeout"}
	for _, tc := range []struct{ in, want string }{
		{"intervall", "interval"},
		{"Timeot", "timeout"},
		{"pth", "path"},
		{"path", ""},    // itself: no suggestion
		{"zzzzzzz", ""}, // nothing close
		{string(make([]byte, 100)), ""},
	} {
		if got := Closest(tc.in, names); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if d := Levenshtein("kitten", "sitting"); d != 3 {
		t.Errorf("Levenshtein = %d, want 3", d)
	}
}
