package config

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecretBytes bounds the line read from a token or key file: secrets are
// short, and a wrong path pointing at a large file should fail fast.
const maxSecretBytes = 64 << 10

// Token returns the admin bearer token: the first line of TokenFile when set
// (an empty or unreadable file is an error, because the operator clearly
// meant to configure a token), else the value of the environment variable
// named by TokenEnv. An empty result means no token is configured, and the
// admin API then refuses mutating calls.
func (a Admin) Token() (string, error) {
	if a.TokenFile != "" {
		s, err := readSecretFile(a.TokenFile)
		if err != nil {
			return "", fmt.Errorf("admin.token_file: %w", err)
		}
		return s, nil
	}
	if a.TokenEnv == "" {
		return "", nil
	}
	return strings.TrimSpace(os.Getenv(a.TokenEnv)), nil
}

// Secret returns the HMAC key that signs affinity cookies: the first line
// of SecretFile when set (an empty or unreadable file is an error), else the
// value of the environment variable named by SecretEnv. A nil result means
// none is configured; the proxy then uses a random per-process key, so
// cookies do not survive a restart and replicas do not honour each other's.
func (c CookieAffinity) Secret() ([]byte, error) {
	if c.SecretFile != "" {
		s, err := readSecretFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("affinity.cookie.secret_file: %w", err)
		}
		return []byte(s), nil
	}
	if c.SecretEnv == "" {
		return nil, nil
	}
	if v := strings.TrimSpace(os.Getenv(c.SecretEnv)); v != "" {
		return []byte(v), nil
	}
	return nil, nil
}

// readSecretFile returns the trimmed first line of a file. Only the first
// line counts so that a trailing newline, or a comment on later lines,
// does not become part of the secret.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w; check that the file exists and is readable by the proxy's user", err)
	}
	defer f.Close()
	r := bufio.NewReader(io.LimitReader(f, maxSecretBytes))
	line, err := r.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s: the first line is empty; write the secret on the first line", path)
	}
	return line, nil
}
