// Package httpfield holds the header field checks shared by both
// directions of the data plane: the HTTP/1.1 server engine (internal/proxy/h1)
// on what it reads and writes to clients, and the upstream connection pools
// (internal/proxy/upstream) on what they write to and read from endpoints.
//
// net/http's parser (net/textproto) accepts a field name with spaces before
// the colon ("Transfer-Encoding : chunked", see go.dev/issue/34540) and
// leaves it uncanonicalized, so the framing code never sees it while a
// lenient peer may frame by it. net/http.Server refuses such requests after
// parsing and its response writer drops such names; the proxy's own server
// and its upstream writer must do the same, or they forward the field
// verbatim and two parsers disagree about where a message ends (request
// smuggling, response splitting). Every name the proxy writes passes
// ValidName, every value ValidValue.
package httpfield

import (
	"fmt"
	"net/http"
)

// tokenChars marks the bytes of an RFC 9110 §5.6.2 token: a field name is a
// token.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidName reports whether s is a token, i.e. a field name a
// conforming parser reads as the same name.
func ValidName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// ValidValue reports whether s may be written as a field value: no
// control characters but HTAB (so no CR, LF or NUL that could end the line
// or the header block early) and no DEL, the rule net/http's parser applies
// on input (RFC 9110 §5.5).
func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Error names a header field that may not be written or trusted.
type Error struct {
	Where string // "request header", "response trailer", ...
	Name  string
	Value bool // the value, not the name, is the problem
}

func (e *Error) Error() string {
	if e.Value {
		return fmt.Sprintf("invalid %s %q: its value contains a control character (CR, LF, NUL...)", e.Where, e.Name)
	}
	return fmt.Sprintf("invalid %s name %q: a field name is a token (letters, digits and !#$%%&'*+-.^_`|~), with no space before the colon", e.Where, e.Name)
}

// Check returns an error (an *Error) naming the first field of h whose
// name or value may not be written; where says what h is in the message.
func Check(h http.Header, where string) error {
	for k, vs := range h {
		if !ValidName(k) {
			return &Error{Where: where, Name: k}
		}
		for _, v := range vs {
			if !ValidValue(v) {
				return &Error{Where: where, Name: k, Value: true}
			}
		}
	}
	return nil
}

// CheckNames is Check for names only: for headers whose values the parser
// has already checked.
func CheckNames(h http.Header, where string) error {
	for k := range h {
		if !ValidName(k) {
			return &Error{Where: where, Name: k}
		}
	}
	return nil
}

// ValidHost accepts the characters a Host header may hold (reg-name, IPv6
// literal, port); it refuses controls, spaces and delimiters.
func ValidHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_' || c == '~' ||
			c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' ||
			c == '+' || c == ',' || c == ';' || c == '=' || c == '%':
		default:
			return false
		}
	}
	return true
}
