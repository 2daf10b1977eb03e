package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExplainFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "d.json")
	os.WriteFile(f, []byte(`{"schema":1,"version":3,"services":{"catalog":{"scale":{"replicas":12,"why":{"text":"floor 12 for the sale","driver":"event"}}}}}`), 0o644)
	run := func(args ...string) (string, error) {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"explain"}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("--file", f, "--service", "catalog")
	if err != nil || !strings.Contains(out, "at least 12 replicas") || !strings.Contains(out, "why: floor 12 for the sale") {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := run("--file", f, "--service", "cart"); err == nil || !strings.Contains(err.Error(), "it has catalog") {
		t.Errorf("unknown service: %v", err)
	}
	os.WriteFile(f, []byte(`{"schema":1,"services":{"catalog":{"scale":{"replicas":-1}}}}`), 0o644)
	if _, err := run("--file", f); err == nil || !strings.Contains(err.Error(), "scale.replicas") {
		t.Errorf("invalid directive: %v", err)
	}
}
