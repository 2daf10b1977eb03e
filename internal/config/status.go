package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseStatusRanges parses expected_statuses items ("200", "200-299") into
// inclusive [lo, hi] pairs, for the proxy's health prober. Every item must
// lie within 100..599 with lo ≤ hi. Parse has already checked the items of a
// loaded Config, so the error only concerns other callers.
func ParseStatusRanges(items []string) ([][2]int, error) {
	out := make([][2]int, 0, len(items))
	for i, s := range items {
		r, err := parseStatusRange(s)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseStatusRange(s string) ([2]int, error) {
	bad := func(why string) ([2]int, error) {
		return [2]int{}, fmt.Errorf("invalid status range %s: %s; write a status such as \"204\" or a range such as \"200-299\"", quote(s), why)
	}
	loS, hiS, isRange := strings.Cut(s, "-")
	if !isRange {
		hiS = loS
	}
	lo, err1 := parseStatus(loS)
	hi, err2 := parseStatus(hiS)
	switch {
	case err1 != nil || err2 != nil:
		return bad("statuses are three-digit numbers")
	case lo < 100 || hi > 599:
		return bad("statuses lie within 100..599")
	case lo > hi:
		return bad(fmt.Sprintf("the range is reversed (write \"%d-%d\")", hi, lo))
	}
	return [2]int{lo, hi}, nil
}

func parseStatus(s string) (int, error) {
	s = strings.TrimSpace(s)
	if len(s) != 3 {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}
