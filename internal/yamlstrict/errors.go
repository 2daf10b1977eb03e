// Package yamlstrict reads the YAML files lbsys is configured with (the
// proxy configuration, simulator scenarios) the same strict way: exactly
// one document; unknown fields, repeated keys, values of the wrong kind and
// durations without a unit are errors; and every error names the line and
// the field path (`services[catalog].health.active.interval`) so that an
// operator can fix the file without reading the source.
//
// yaml.v3 is the parser. Its own syntax errors name the line where the
// enclosing block started (and, for most parser errors, that line's
// 0-based number), not the line to fix; Parse finds the line to fix (see
// syntaxLine). Decoding walks the yaml.Node tree and the Go value together
// instead of using yaml.v3's Decode, because that reports neither paths
// nor, through yaml.Node.Decode, unknown fields.
package yamlstrict

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lbsys/lbsys/internal/textutil"
)

// Error is one problem: the 1-based line it is attributed to (0 when not
// tied to a line), the field path (empty for the document as a whole) and
// what is wrong and how to fix it. Callers add the file name in their own
// error types.
type Error struct {
	Line int
	Path string
	Msg  string
}

// Error formats the problem as "line N: path: message", leaving out the
// parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Sort orders problems by line, then path, then message, and drops exact
// duplicates (the same alias expanded twice reports its problem twice), so
// that a message reads top to bottom like the file and is stable in tests.
func Sort(errs []*Error) []*Error {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.CompactFunc(errs, func(a, b *Error) bool {
		return a.Line == b.Line && a.Path == b.Path && a.Msg == b.Msg
	})
}

// Quote renders a user value for a message, shortened so that a pasted
// blob does not drown the message.
func Quote(s string) string {
	const max = 60
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}

// ListNames joins names for a message, capped so that a list of hundreds
// of services still gives a readable error.
func ListNames(names []string) string {
	const max = 12
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-max)
	}
	return strings.Join(names, ", ")
}

// DidYouMean renders the suggestion clause for a misspelt s ("did you mean
// `weight`? "), or "" when no candidate is within edit distance 2.
func DidYouMean(s string, candidates []string) string {
	if c := textutil.Closest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean `%s`? ", c)
	}
	return ""
}
