package textutil

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// durationHint ends every ParseDuration error: the forms it reads.
const durationHint = "write a number and a unit (ns, us, ms, s, m, h, d or w), e.g. 90s, 30m, 2h, 1d, 2w or 1d12h"

// errTooLong is the error of a duration past what time.Duration holds.
var errTooLong = errors.New("longer than a time.Duration holds (about 292 years)")

// ParseDuration reads a duration as time.ParseDuration does ("90m",
// "1h30m", "250ms", "-2s") and also in days and weeks: "1d", "2w",
// "1d12h", "1.5d". Forecast horizons and history windows are naturally
// said in days and weeks, and time.ParseDuration refuses both (issue #16:
// `--horizons 1d` was refused).
//
// A day is exactly 24 hours and a week 7 days: these are spans of elapsed
// time, not calendar days, so a daylight-saving change does not stretch
// them. Without a d or w term the result (and the acceptance) is exactly
// time.ParseDuration's.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration: " + durationHint)
	}
	body := s
	neg := false
	if body[0] == '-' || body[0] == '+' {
		neg = body[0] == '-'
		body = body[1:]
	}
	// Split into number+unit terms. Terms in d or w are scaled here; the
	// others are left to time.ParseDuration, which keeps its rounding and
	// its range for the units it knows.
	var (
		days   time.Duration
		sawDW  bool
		others strings.Builder
	)
	for rest := body; rest != ""; {
		i := 0
		for i < len(rest) && (rest[i] == '.' || ('0' <= rest[i] && rest[i] <= '9')) {
			i++
		}
		j := i
		for j < len(rest) && rest[j] != '.' && (rest[j] < '0' || rest[j] > '9') {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		if unit != "d" && unit != "w" {
			others.WriteString(num)
			others.WriteString(unit)
			continue
		}
		sawDW = true
		per := 24 * time.Hour
		if unit == "w" {
			per = 7 * 24 * time.Hour
		}
		d, err := scaleTerm(num, per)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: %s%s: %v; %s", s, num, unit, err, durationHint)
		}
		if days > math.MaxInt64-d {
			return 0, fmt.Errorf("%q is not a duration: %v", s, errTooLong)
		}
		days += d
	}
	if !sawDW {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration: %s", s, durationHint)
		}
		return d, nil
	}
	var d time.Duration
	if others.Len() > 0 {
		var err error
		if d, err = time.ParseDuration(others.String()); err != nil {
			return 0, fmt.Errorf("%q is not a duration: %s", s, durationHint)
		}
	}
	if days > math.MaxInt64-d {
		return 0, fmt.Errorf("%q is not a duration: %v", s, errTooLong)
	}
	if neg {
		return -(days + d), nil
	}
	return days + d, nil
}

// scaleTerm is num (digits, maybe with a fraction) times per. The whole
// part is scaled exactly; the fraction within a nanosecond.
func scaleTerm(num string, per time.Duration) (time.Duration, error) {
	ip, fp, _ := strings.Cut(num, ".")
	if (ip == "" && fp == "") || strings.Contains(fp, ".") {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	var d time.Duration
	if ip != "" {
		n, err := strconv.ParseInt(ip, 10, 64)
		if err != nil || n > int64(math.MaxInt64/per) {
			return 0, errTooLong
		}
		d = time.Duration(n) * per
	}
	var frac time.Duration
	if fp != "" {
		// Digits past the 18th cannot change a nanosecond of a week.
		fp = fp[:min(len(fp), 18)]
		f, err := strconv.ParseUint(fp, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", num)
		}
		frac = time.Duration(float64(f) / math.Pow10(len(fp)) * float64(per))
	}
	if d > math.MaxInt64-frac {
		return 0, errTooLong
	}
	return d + frac, nil
}

// FormatDuration writes d the way ParseDuration reads it: in the largest
// of w, d, h, m and s that divides it ("2w", "1d", "90m"), else as
// time.Duration.String does ("1.5s").
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return d.String()
}
