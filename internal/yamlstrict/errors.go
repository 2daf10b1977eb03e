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
func (e *Error) Error() string { return format("", e.Line, e.Path, e.Msg) }

// format writes "file:line: path: message", or "line N: path: message"
// without a file, leaving out the parts that are unknown.
func format(file string, line int, path, msg string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(line))
		}
		b.WriteString(": ")
	} else if line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(line))
		b.WriteString(": ")
	}
	if path != "" {
		b.WriteString(path)
		b.WriteString(": ")
	}
	b.WriteString(msg)
	return b.String()
}

// Sort orders problems by line, then path, then message, and drops exact
// duplicates (the same alias expanded twice reports its problem twice), so
// that a message reads top to bottom like the file and is stable in tests.
func Sort(errs []*Error) []*Error {
	return sortProblems(errs, func(e *Error) (int, string, string) { return e.Line, e.Path, e.Msg })
}

// sortProblems is Sort and SortFile: key gives a problem's line, path and
// message.
func sortProblems[E any](errs []E, key func(E) (int, string, string)) []E {
	slices.SortStableFunc(errs, func(a, b E) int {
		la, pa, ma := key(a)
		lb, pb, mb := key(b)
		return cmp.Or(cmp.Compare(la, lb), cmp.Compare(pa, pb), cmp.Compare(ma, mb))
	})
	return slices.CompactFunc(errs, func(a, b E) bool {
		la, pa, ma := key(a)
		lb, pb, mb := key(b)
		return la == lb && pa == pb && ma == mb
	})
}

// FileError is one problem in a named file, as the commands print it: the
// proxy configuration's (config.Error) and a simulator scenario's
// (sim.ScenarioError) are this type, so both files report alike.
type FileError struct {
	// File is the name the file was read under; empty when it was parsed
	// from memory.
	File string
	// Line is the 1-based line the problem is attributed to; 0 when not
	// tied to a line (a value built in Go and then validated).
	Line int
	// Path is the field path, such as services[catalog].health.active.interval;
	// empty for the file as a whole.
	Path string
	// Msg says what is wrong and how to fix it.
	Msg string
}

// Error formats the problem as "file:line: path: message" (the form
// editors and terminals open at the line), leaving out the parts that are
// unknown: "file: path: message" without a line, "line N: path: message"
// without a file.
func (e *FileError) Error() string { return format(e.File, e.Line, e.Path, e.Msg) }

// InFile gives a problem of the document the file's name.
func (e *Error) InFile(file string) *FileError {
	return &FileError{File: file, Line: e.Line, Path: e.Path, Msg: e.Msg}
}

// FileErrors is every problem found in one file, reported at once so that
// one edit fixes them all.
type FileErrors []*FileError

// SortFile is Sort for problems of a file.
func SortFile(errs []*FileError) FileErrors {
	return sortProblems(errs, func(e *FileError) (int, string, string) { return e.Line, e.Path, e.Msg })
}

// Error joins the problems one per line.
func (l FileErrors) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (l FileErrors) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Located implements Located: a value decoded through UnmarshalYAML inside
// another strict decode (a policy's options) keeps its problems' paths and
// lines.
func (l FileErrors) Located() []*Error {
	out := make([]*Error, len(l))
	for i, e := range l {
		out[i] = &Error{Line: e.Line, Path: e.Path, Msg: e.Msg}
	}
	return out
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
