// Package textutil holds small text helpers shared by the parsers:
// "did you mean" suggestions and the timestamp forms of trace files.
package textutil

import "strings"

// Closest returns the candidate closest to s (case-insensitively) within
// edit distance 2, or "" when none is that close or s is itself a
// candidate. Ties go to the first candidate, so callers pass sorted
// candidates for stable messages.
func Closest(s string, candidates []string) string {
	best, bestDist := "", 3
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		if d := Levenshtein(ls, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Levenshtein is the edit distance between a and b (insertions, deletions,
// substitutions), computed over bytes: field and policy names are ASCII.
// Inputs longer than 64 bytes cannot be a typo of a short name: they get a
// large distance without the quadratic work.
func Levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
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
