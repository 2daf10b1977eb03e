package gaia

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// Principal is who a bearer token speaks for.
type Principal struct {
	Name  string
	Roles []string
}

// Tokens maps bearer tokens to principals. Tokens are kept only as SHA-256
// digests, so a map lookup does not compare secrets byte by byte.
type Tokens struct {
	by map[[32]byte]Principal
}

// NewTokens returns an empty table.
func NewTokens() *Tokens { return &Tokens{by: map[[32]byte]Principal{}} }

var knownRoles = []string{fsm.RoleViewer, fsm.RoleProposer, fsm.RoleApprover, fsm.RoleAgent, fsm.RoleAdmin}

// Add registers a token.
func (t *Tokens) Add(token, name string, roles ...string) error {
	switch {
	case len(token) < 16:
		return fmt.Errorf("token of %q: at least 16 characters (use e.g. `openssl rand -hex 16`)", name)
	case name == "" || name == fsm.System:
		return fmt.Errorf("token name %q: required and not %q (reserved for the coordinator itself)", name, fsm.System)
	case len(roles) == 0:
		return fmt.Errorf("token of %q: give at least one role of %s", name, strings.Join(knownRoles, ", "))
	}
	for _, r := range roles {
		if !slices.Contains(knownRoles, r) {
			return fmt.Errorf("token of %q: unknown role %q; roles are %s", name, r, strings.Join(knownRoles, ", "))
		}
	}
	t.by[sha256.Sum256([]byte(token))] = Principal{Name: name, Roles: roles}
	return nil
}

// Lookup returns the principal of a token.
func (t *Tokens) Lookup(token string) (Principal, bool) {
	if t == nil || token == "" {
		return Principal{}, false
	}
	p, ok := t.by[sha256.Sum256([]byte(token))]
	return p, ok
}

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.by)
}

// LoadTokens reads a tokens file: one token per line as
//
//	<token> <name> <role>[,<role>...]
//
// Blank lines and lines starting with # are ignored.
func LoadTokens(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	return ParseTokens(f, path)
}

// ParseTokens parses the tokens file format.
func ParseTokens(r io.Reader, name string) (*Tokens, error) {
	t := NewTokens()
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		fields := strings.Fields(s)
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want `<token> <name> <role>[,<role>...]`, got %d fields", name, line, len(fields))
		}
		if err := t.Add(fields[0], fields[1], strings.Split(fields[2], ",")...); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}
