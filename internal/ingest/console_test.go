package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("LBSYS_TEST_SECRET", "from-env")
	cases := []struct {
		name, file, want, err string
	}{
		{"no file: the environment", "", "from-env", ""},
		{"first line, trimmed", write("a", "  s3cret \nsecond line\n"), "s3cret", ""},
		{"CRLF", write("b", "s3cret\r\n"), "s3cret", ""},
		{"lone CR", write("c", "s3cret\rrest"), "s3cret", ""},
		{"empty first line is an error, not the environment", write("d", "\nlater\n"), "", "the first line is empty"},
		{"control character", write("e", "se\x00cret\n"), "", "control character at byte 2"},
		{"missing file", filepath.Join(dir, "missing"), "", "no such file"},
	}
	for _, tc := range cases {
		got, err := Secret(tc.file, "LBSYS_TEST_SECRET")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q, %v; want an error with %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// FuzzSecret: whatever a secret file holds, Secret never returns a secret
// with a line end or another control character (it would go into an
// Authorization header).
func FuzzSecret(f *testing.F) {
	for _, s := range []string{"secret", " secret \r\nrest", "\n", "a\x7fb", "tab\tinside"} {
		f.Add(s)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "secret")
	f.Fuzz(func(t *testing.T, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := Secret(path, "LBSYS_FUZZ_UNSET")
		if err != nil {
			return
		}
		if v == "" {
			t.Fatalf("empty secret from %q without an error", s)
		}
		for _, c := range v {
			if c < 0x20 && c != '\t' || c == 0x7f {
				t.Fatalf("secret from %q has a control character: %q", s, v)
			}
		}
	})
}
