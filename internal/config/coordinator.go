package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

const defaultCoordinatorTokenEnv = "LBSYS_COORDINATOR_TOKEN"

func (ch *checker) coordinatorDefaults(c *Coordinator) {
	defStr(&c.TokenEnv, defaultCoordinatorTokenEnv)
	ch.defDur(&c.Wait, "coordinator.wait", 20*time.Second, false)
}

func (ch *checker) validateCoordinator(c *Coordinator) {
	for i, u := range c.URLs {
		if err := CheckCoordinatorURL(u); err != nil {
			ch.errf(fmt.Sprintf("coordinator.urls[%d]", i), "%v", err)
		}
	}
	if c.Wait < time.Second || c.Wait > 5*time.Minute {
		ch.errf("coordinator.wait", "must be between 1s and 5m, got %s", c.Wait)
	}
	if c.ProxyID != "" && !validProxyID(c.ProxyID) {
		ch.errf("coordinator.proxy_id", "%s: use letters, digits, `.`, `_` and `-` (at most 128)", quote(c.ProxyID))
	}
	if c.TokenFile != "" && strings.TrimSpace(c.TokenFile) != c.TokenFile {
		ch.errf("coordinator.token_file", "has leading or trailing spaces; remove them")
	}
}

// CheckCoordinatorURL checks one coordinator base URL (also used for the
// proxy's --coordinator flag).
func CheckCoordinatorURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("%s is not a coordinator base URL; write it as http://host:port (e.g. http://127.0.0.1:7101)", quote(s))
	}
	return nil
}

func validProxyID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// Token returns the agent's bearer token: the first line of TokenFile when
// set (an empty or unreadable file is an error), else the variable named
// by TokenEnv ("" when unset: the coordinator then refuses the agent).
func (c Coordinator) Token() (string, error) {
	if c.TokenFile != "" {
		s, err := readSecretFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("coordinator.token_file: %w", err)
		}
		return s, nil
	}
	if c.TokenEnv == "" {
		return "", nil
	}
	return strings.TrimSpace(os.Getenv(c.TokenEnv)), nil
}
