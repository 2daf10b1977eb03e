package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
// exact duplicates (the same alias expanded twice reports the same problem
// twice).
func sortErrors(errs []*Error) ErrorList {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Msg, b.Msg))
	})
	return ErrorList(slices.CompactFunc(errs, func(a, b *Error) bool {
		return a.Line == b.Line && a.Path == b.Path && a.Msg == b.Msg
	}))
}

// suggest returns the candidate closest to s within edit distance 2, or ""
// when none is that close. Ties go to the first candidate, so callers pass
// sorted candidates for stable messages.
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		if d := levenshtein(ls, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b (insertions, deletions,
// substitutions), computed over bytes: field and policy names are ASCII.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Long input cannot be a typo of a short name; skip the quadratic work.
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean renders the suggestion clause for s, or "" when nothing is close.
func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf("did you mean `%s`? ", c)
	}
	return ""
}

// quote renders a user value for a message, shortened so that a pasted blob
// does not drown the message.
func quote(s string) string {
	const max = 60
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}

// listNames joins names for a message, capped so that a file with hundreds
// of services still produces a readable error.
func listNames(names []string) string {
	const max = 12
	if len(names) > max {
		return strings.Join(names[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-max)
	}
	return strings.Join(names, ", ")
}
