package main

// Where `lbsys ingest servicenow` takes its credentials from: files named by
// --token-file / --password-file, or SERVICENOW_TOKEN, SERVICENOW_USER and
// SERVICENOW_PASSWORD. A fake instance on 127.0.0.1 (plain http is allowed
// only on loopback) records the Authorization header of every request, so
// each case checks the credential that actually went over the wire. Its
// answers follow the Table API reference (GET /now/table/{tableName}, the
// {"result": [...]} envelope; a 401 with {"error": {"message", "detail"},
// "status": "failure"}):
// https://www.servicenow.com/docs/r/api-reference/rest-apis/c_TableAPI.html

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// authRecorder is a ServiceNow instance with no records that accepts one
// Authorization header and remembers every one it was sent.
type authRecorder struct {
	want string
	mu   sync.Mutex
	got  []string
}

func (a *authRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.got = append(a.got, r.Header.Get("Authorization"))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !strings.HasPrefix(r.URL.Path, "/api/now/table/") {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"message":"Invalid URL","detail":null},"status":"failure"}`))
		return
	}
	if r.Header.Get("Authorization") != a.want {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}`))
		return
	}
	w.Header().Set("X-Total-Count", "0")
	w.Write([]byte(`{"result":[]}`))
}

func (a *authRecorder) headers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// clearSNEnv empties every SERVICENOW_* variable for the test (restored
// afterwards), so the developer's own environment cannot leak in.
func clearSNEnv(t *testing.T) {
	for _, k := range []string{"SERVICENOW_USER", "SERVICENOW_PASSWORD", "SERVICENOW_TOKEN"} {
		t.Setenv(k, "")
	}
}

func TestIngestServiceNowSecretSources(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := file("token", "file-token\n")
	tokenCRLF := file("token-crlf", "  crlf-token \r\nsecond line is ignored\n")
	tokenCR := file("token-cr", "cr-token\rsecond line (old Mac line ends)\r")
	passwordFile := file("password", "file-pass\n")
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags []string
		want  string // the Authorization header the instance must receive
	}{
		{"token from the environment", map[string]string{"SERVICENOW_TOKEN": "env-token"}, nil, "Bearer env-token"},
		{"token from a file, trailing newline trimmed", nil, []string{"--token-file", tokenFile}, "Bearer file-token"},
		{"token file: first line only, CR and spaces trimmed", nil, []string{"--token-file", tokenCRLF}, "Bearer crlf-token"},
		{"token file: a lone CR ends the line", nil, []string{"--token-file", tokenCR}, "Bearer cr-token"},
		{"token file wins over SERVICENOW_TOKEN", map[string]string{"SERVICENOW_TOKEN": "env-token"}, []string{"--token-file", tokenFile}, "Bearer file-token"},
		{"basic auth from the environment", map[string]string{"SERVICENOW_USER": "lbsys", "SERVICENOW_PASSWORD": "env-pass"}, nil, basic("lbsys", "env-pass")},
		{"password from a file", map[string]string{"SERVICENOW_USER": "lbsys"}, []string{"--password-file", passwordFile}, basic("lbsys", "file-pass")},
		{"password file wins over SERVICENOW_PASSWORD", map[string]string{"SERVICENOW_USER": "lbsys", "SERVICENOW_PASSWORD": "env-pass"},
			[]string{"--password-file", passwordFile}, basic("lbsys", "file-pass")},
		{"--user wins over SERVICENOW_USER", map[string]string{"SERVICENOW_USER": "env-user", "SERVICENOW_PASSWORD": "env-pass"},
			[]string{"--user", "flag-user"}, basic("flag-user", "env-pass")},
		{"a token wins over a password", map[string]string{"SERVICENOW_USER": "lbsys", "SERVICENOW_PASSWORD": "env-pass", "SERVICENOW_TOKEN": "env-token"},
			nil, "Bearer env-token"},
		{"a token wins over a password file", map[string]string{"SERVICENOW_USER": "lbsys", "SERVICENOW_TOKEN": "env-token"},
			[]string{"--password-file", passwordFile}, "Bearer env-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSNEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			sn := &authRecorder{want: tc.want}
			srv := httptest.NewServer(sn) // 127.0.0.1
			defer srv.Close()
			db := filepath.Join(t.TempDir(), "lbsys.db")
			args := append([]string{"--store", db, "servicenow", "--instance", srv.URL, "--tables", "cmdb_ci_service"}, tc.flags...)
			out, err := runIngest(t, args...)
			if err != nil || !strings.Contains(out, "servicenow: 0 inserted") {
				t.Fatalf("err = %v, headers sent %q\n%s", err, sn.headers(), out)
			}
			if got := sn.headers(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("Authorization sent %q, want [%q]", got, tc.want)
			}
			for _, secret := range []string{"env-token", "file-token", "crlf-token", "env-pass", "file-pass"} {
				if strings.Contains(out, secret) {
					t.Errorf("the output shows the secret %q:\n%s", secret, out)
				}
			}
		})
	}
}

func TestIngestServiceNowSecretErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty", "")
	blank := write("blank", " \n")
	secondLine := write("second-line", "\nthe-token\n")
	control := write("control", "tok\x00en\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags []string
		want  []string
	}{
		{"missing token file", nil, []string{"--token-file", missing}, []string{"--token-file", missing, "no such file"}},
		{"missing password file", map[string]string{"SERVICENOW_USER": "lbsys"}, []string{"--password-file", missing}, []string{"--password-file", missing, "no such file"}},
		{"token file is a directory", nil, []string{"--token-file", dir}, []string{"--token-file", dir}},
		{"empty token file", nil, []string{"--token-file", empty}, []string{"--token-file", empty, "empty"}},
		{"blank password file", map[string]string{"SERVICENOW_USER": "lbsys"}, []string{"--password-file", blank}, []string{"--password-file", blank, "empty"}},
		{"the secret is not on the first line", nil, []string{"--token-file", secondLine}, []string{"--token-file", secondLine, "first line"}},
		{"a control character in the secret", nil, []string{"--token-file", control}, []string{"--token-file", control, "control character at byte 3"}},
		// An empty file must not fall back to other credentials in the
		// environment: that would authenticate as someone else, silently.
		{"empty token file with basic auth in the environment", map[string]string{"SERVICENOW_USER": "lbsys", "SERVICENOW_PASSWORD": "env-pass"},
			[]string{"--token-file", empty}, []string{"--token-file", empty, "empty"}},
		{"empty password file with a token in the environment", map[string]string{"SERVICENOW_USER": "lbsys", "SERVICENOW_TOKEN": "env-token"},
			[]string{"--password-file", empty}, []string{"--password-file", empty, "empty"}},
		{"no credentials at all", nil, nil, []string{"no credentials", "SERVICENOW_TOKEN", "--token-file", "--password-file"}},
		{"a password without a user", map[string]string{"SERVICENOW_PASSWORD": "env-pass"}, nil, []string{"no credentials", "SERVICENOW_USER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearSNEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			sn := &authRecorder{want: "never"}
			srv := httptest.NewServer(sn)
			defer srv.Close()
			db := filepath.Join(t.TempDir(), "lbsys.db")
			_, err := runIngest(t, append([]string{"--store", db, "servicenow", "--instance", srv.URL, "--tables", "cmdb_ci_service"}, tc.flags...)...)
			var ue usageError
			if err == nil || !errors.As(err, &ue) {
				t.Fatalf("err = %v, want a usage error (exit 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := sn.headers(); len(got) != 0 {
				t.Errorf("the instance was called (Authorization %q) although the credentials were refused", got)
			}
			if _, err := os.Stat(db); err == nil {
				t.Errorf("the store was created although the command was refused")
			}
		})
	}
}

// A wrong secret read from a file reaches the instance, which answers 401:
// a runtime failure (exit 1) whose message points at the token's source.
func TestIngestServiceNowSecretRejected(t *testing.T) {
	clearSNEnv(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("old-token-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sn := &authRecorder{want: "Bearer fresh"}
	srv := httptest.NewServer(sn)
	defer srv.Close()
	_, err := runIngest(t, "--store", filepath.Join(t.TempDir(), "lbsys.db"), "servicenow", "--instance", srv.URL,
		"--tables", "cmdb_ci_service", "--token-file", tokenFile)
	var ue usageError
	if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "--token-file") {
		t.Fatalf("err = %v, want a runtime error naming the 401 and --token-file", err)
	}
	if strings.Contains(err.Error(), "old-token-123") {
		t.Errorf("the error shows the token: %v", err)
	}
	if got := sn.headers(); len(got) != 1 || got[0] != "Bearer old-token-123" {
		t.Errorf("Authorization sent %q", got)
	}
}

// The help text states the sources and their precedence the tests above
// check, so users learn it without reading the code.
func TestIngestServiceNowHelpDescribesSecrets(t *testing.T) {
	out, err := runIngest(t, "servicenow", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SERVICENOW_USER", "SERVICENOW_PASSWORD", "--password-file", "SERVICENOW_TOKEN", "--token-file",
		"first line", "wins over the environment", "the token is used", "never on the command line", "stays in the store"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
}
