package config

import (
	"github.com/lbsys/lbsys/internal/textutil"
	"github.com/lbsys/lbsys/internal/yamlstrict"
)

// Error is one problem found in a configuration file. Its message names the
// file (when loaded from one) and the YAML line (when known) as
// "file:line:", the field path in the form
// `services[catalog].health.active.interval`, what is wrong and how to fix
// it, so an operator can act on it without reading the source. It is the
// scenario files' error type too (yamlstrict.FileError): File is the path
// given to Load, empty for Parse; Line is 0 when unknown (a Config built in
// Go and checked by Validate); Path is empty for the file as a whole.
type Error = yamlstrict.FileError

// ErrorList is every problem found in one file, sorted by line so that the
// message reads top to bottom like the file and is stable for tests. Parse
// returns all problems at once rather than the first, so one edit-run cycle
// fixes them all. Through its Located method a Policy decoded by yaml.v3
// inside another strict decode keeps its paths and lines.
type ErrorList = yamlstrict.FileErrors

// sortErrors orders problems by line, then path, then message, and drops
// exact duplicates.
func sortErrors(errs []*Error) ErrorList { return yamlstrict.SortFile(errs) }

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
