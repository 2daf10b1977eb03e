package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// accessBase is base with an access_log section on the listener, whose
// fields follow at 6 spaces from line 6.
const accessBase = `listeners:
  - name: public
    listen: 127.0.0.1:8080
    routes: [{service: web}]
    access_log:
`

const accessServices = `services:
  - name: web
    endpoints: [{address: 127.0.0.1:9001}]
`

// TestAccessLogSection: the section is off by default, decodes strictly,
// and gets its defaults.
func TestAccessLogSection(t *testing.T) {
	plain, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Listeners[0].AccessLog != nil {
		t.Fatal("access log on without being configured")
	}

	tests := []struct {
		name string
		yaml string
		want AccessLog
	}{
		{"defaults", "      path: /var/log/lbsys/access.log\n",
			AccessLog{Path: "/var/log/lbsys/access.log", Format: "combined", Sample: 1}},
		{"every field", "      path: stdout\n      format: json\n      query: true\n      sample: 0.25\n      errors_only: true\n",
			AccessLog{Path: "stdout", Format: "json", Query: true, Sample: 0.25, ErrorsOnly: true}},
		{"flow style", "      {path: stderr, sample: 1}\n",
			AccessLog{Path: "stderr", Format: "combined", Sample: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(accessBase + tc.yaml + accessServices))
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Listeners[0].AccessLog
			if got == nil || *got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("defaults do not validate: %v", err)
			}
		})
	}
}

// TestAccessLogErrors: every problem is reported at its field path and
// line, with what to write instead.
func TestAccessLogErrors(t *testing.T) {
	two := func(a, b string) string {
		return `listeners:
  - name: a
    listen: 127.0.0.1:8080
    routes: [{service: web}]
    access_log: ` + a + `
  - name: b
    listen: 127.0.0.1:8081
    routes: [{service: web}]
    access_log: ` + b + "\n" + accessServices
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown field", accessBase + "      path: a.log\n      fromat: json\n" + accessServices,
			[]string{"line 7: listeners[public].access_log.fromat: unknown field: did you mean `format`?"}},
		{"empty section", accessBase + accessServices,
			[]string{"line 5: listeners[public].access_log: is empty; write `access_log: {}`"}},
		{"no path", "listeners:\n  - name: public\n    listen: 127.0.0.1:8080\n    routes: [{service: web}]\n    access_log: {format: json}\n" + accessServices,
			[]string{"line 5: listeners[public].access_log.path: required: name the file to append to"}},
		{"bad format", accessBase + "      path: a.log\n      format: common\n" + accessServices,
			[]string{`line 7: listeners[public].access_log.format: unknown format "common": use combined`}},
		{"misspelt format", accessBase + "      path: a.log\n      format: jsno\n" + accessServices,
			[]string{"did you mean `json`?"}},
		{"sample above 1", accessBase + "      path: a.log\n      sample: 10\n" + accessServices,
			[]string{"line 7: listeners[public].access_log.sample: must be a share in (0, 1] such as 0.1 (one request in ten), got 10"}},
		{"negative sample", accessBase + "      path: a.log\n      sample: -0.5\n" + accessServices,
			[]string{"line 7: listeners[public].access_log.sample: must be a share in (0, 1]"}},
		{"sample zero", accessBase + "      path: a.log\n      sample: 0\n" + accessServices,
			[]string{"line 7: listeners[public].access_log.sample: is 0, which would log nothing but errors: write `errors_only: true`"}},
		{"sample not a number", accessBase + "      path: a.log\n      sample: most\n" + accessServices,
			[]string{`line 7: listeners[public].access_log.sample: cannot use "most" as a number`}},
		{"errors_only not a bool", accessBase + "      path: a.log\n      errors_only: 1\n" + accessServices,
			[]string{`line 7: listeners[public].access_log.errors_only: cannot use "1" as true or false`}},
		{"path with spaces", accessBase + "      path: ' a.log'\n" + accessServices,
			[]string{`line 6: listeners[public].access_log.path: " a.log" has leading or trailing spaces`}},
		{"path with a newline", accessBase + "      path: \"a\\nb.log\"\n" + accessServices,
			[]string{`line 6: listeners[public].access_log.path: "a\nb.log" contains control characters`}},
		{"directory", accessBase + "      path: /var/log/\n" + accessServices,
			[]string{`line 6: listeners[public].access_log.path: "/var/log/" ends with a separator: name a file in that directory, e.g. "/var/log/access.log"`}},
		{"two formats in one file", two("{path: /tmp/x/access.log}", "{path: /tmp/x/../x/access.log, format: json}"),
			[]string{`line 9: listeners[b].access_log.format: "json" differs from the format of listeners[a].access_log (line 5), which writes to the same file`}},
		{"the telemetry file", "telemetry: {jsonl_path: /tmp/t.jsonl}\n" + accessBase + "      path: /tmp/t.jsonl\n" + accessServices,
			[]string{`line 7: listeners[public].access_log.path: "/tmp/t.jsonl" is also telemetry.jsonl_path (line 1); give the access log its own file`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain\n  %s\ngot:\n%s", w, err)
				}
			}
		})
	}

	// Sharing a file with one format is fine; the standard streams are one
	// output too, so two formats there are refused like in a file.
	if _, err := Parse([]byte(two("{path: /tmp/x/access.log}", "{path: /tmp/x/access.log, format: combined}"))); err != nil {
		t.Errorf("one file, one format refused: %v", err)
	}
	if _, err := Parse([]byte(two("{path: stdout}", "{path: stdout, format: json}"))); err == nil ||
		!strings.Contains(err.Error(), "listeners[b].access_log.format") {
		t.Errorf("two formats on stdout: %v", err)
	}
}

// TestAccessLogKey: the same file spelt two ways is one output.
func TestAccessLogKey(t *testing.T) {
	abs, err := filepath.Abs("access.log")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"stdout", "stdout"},
		{"stderr", "stderr"},
		{"access.log", abs},
		{"./access.log", abs},
		{"/var/log/../log/a.log", "/var/log/a.log"},
	} {
		if got := (&AccessLog{Path: tc.path}).Key(); got != tc.want {
			t.Errorf("Key(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
