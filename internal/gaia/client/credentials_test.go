package client

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t")
	os.WriteFile(file, []byte("  from-file  \nsecond\n"), 0o600)
	empty := filepath.Join(dir, "e")
	os.WriteFile(empty, []byte("\n"), 0o600)
	cases := []struct {
		name, file, tok, admin, want, err string
	}{
		{"file wins", file, "env", "admin", "from-file", ""},
		{"LBSYS_TOKEN", "", " env ", "admin", "env", ""},
		{"the admin token last", "", "", "admin", "admin", ""},
		{"none", "", "", "", "", ""},
		{"empty file is an error", empty, "env", "", "", "the first line is empty"},
		{"missing file", filepath.Join(dir, "missing"), "env", "", "", "no such file"},
	}
	for _, tc := range cases {
		t.Setenv("LBSYS_TOKEN", tc.tok)
		t.Setenv("LBSYS_COORDINATOR_TOKEN", tc.admin)
		got, err := Token(tc.file)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q %v, want an error with %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestParseURLs(t *testing.T) {
	got, err := ParseURLs(" http://a:1, ,https://b:2 ")
	if err != nil || !reflect.DeepEqual(got, []string{"http://a:1", "https://b:2"}) {
		t.Errorf("%v %v", got, err)
	}
	if _, err := ParseURLs("a:1"); err == nil || !strings.Contains(err.Error(), `"a:1": want http://host:port`) {
		t.Errorf("no scheme: %v", err)
	}
}
