package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/lbsys/lbsys/internal/textutil"
	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// Error is one problem found in a configuration file. Its message names the
// file (when loaded from one), the YAML line (when known), the field path in
// the form `services[catalog].health.active.interval`, what is wrong and how
// to fix it, so an operator can act on it without reading the source.
type Error struct {
	// File is the path given to Load; empty for Parse.
	File string
	// Line is the 1-based YAML line the problem is attributed to; 0 when
	// unknown (for example for a Config built in Go and checked by Validate).
	Line int
	// Path is the field path, empty for problems with the file as a whole.
	Path string
	// Msg says what is wrong and how to fix it.
	Msg string
}

// Error formats the problem as "file: line N: path: message", leaving out
// the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
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

// ErrorList is every problem found in one file, sorted by line so that the
// message reads top to bottom like the file and is stable for tests. Parse
// returns all problems at once rather than the first, so one edit-run cycle
// fixes them all.
type ErrorList []*Error

// Error joins the problems one per line.
func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap exposes the individual problems to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sortErrors orders problems by line, then path, then message, and drops
// exact duplicates, like yamlstrict.Sort.
func sortErrors(errs []*Error) ErrorList {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Msg, b.Msg))
	})
	return ErrorList(slices.CompactFunc(errs, func(a, b *Error) bool {
		return a.Line == b.Line && a.Path == b.Path && a.Msg == b.Msg
	}))
}

// Located implements yamlstrict.Located: a Policy decoded by yaml.v3
// through UnmarshalYAML inside another strict decode keeps its paths and
// lines.
func (l ErrorList) Located() []*yamlstrict.Error {
	out := make([]*yamlstrict.Error, len(l))
	for i, e := range l {
		out[i] = &yamlstrict.Error{Line: e.Line, Path: e.Path, Msg: e.Msg}
	}
	return out
}

// didYouMean renders the suggestion clause for s, or "" when nothing is close.
func didYouMean(s string, candidates []string) string { return yamlstrict.DidYouMean(s, candidates) }

// quote renders a user value for a message, shortened so that a pasted blob
// does not drown the message.
func quote(s string) string { return yamlstrict.Quote(s) }

// listNames joins names for a message, capped so that a file with hundreds
// of services still produces a readable error.
func listNames(names []string) string { return yamlstrict.ListNames(names) }

// suggest returns the candidate closest to s within edit distance 2, or ""
// when none is that close.
func suggest(s string, candidates []string) string { return textutil.Closest(s, candidates) }
