package rfc9111

import "time"

// ParseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) in any of its three
// formats: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the obsolete
// RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6
// 08:49:37 1994"). Names are matched case-insensitively (senders get the
// case wrong; the meaning is plain), everything else strictly: a two-digit
// year, a missing comma, doubled spaces, dashes or dots in the wrong format,
// a one-digit hour or a zone other than GMT make the date invalid, and
// invalid dates in Expires mean "already expired" (§5.3).
//
// now resolves the RFC 850 two-digit year: §5.6.7 of RFC 9110 reads a year
// that would be more than 50 years in the future as the most recent past
// year with those digits.
func ParseHTTPDate(s string, now time.Time) (time.Time, bool) {
	if len(s) < 24 || len(s) > 40 {
		return time.Time{}, false
	}
	// IMF-fixdate: exactly 29 bytes.
	if len(s) == 29 && s[3] == ',' {
		if _, ok := dayName(s[0:3]); !ok || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || s[25] != ' ' {
			return time.Time{}, false
		}
		day, ok1 := digits(s[5:7])
		mon, ok2 := monthName(s[8:11])
		year, ok3 := digits(s[12:16])
		if !ok1 || !ok2 || !ok3 || !equalFoldASCII(s[26:29], "GMT") {
			return time.Time{}, false
		}
		return build(year, mon, day, s[17:25])
	}
	// asctime: "Sun Nov  6 08:49:37 1994", 24 bytes.
	if len(s) == 24 && s[3] == ' ' {
		if _, ok := dayName(s[0:3]); !ok || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
			return time.Time{}, false
		}
		mon, ok1 := monthName(s[4:7])
		var day int
		var ok2 bool
		if s[8] == ' ' {
			day, ok2 = digits(s[9:10])
		} else {
			day, ok2 = digits(s[8:10])
		}
		year, ok3 := digits(s[20:24])
		if !ok1 || !ok2 || !ok3 {
			return time.Time{}, false
		}
		return build(year, mon, day, s[11:19])
	}
	// RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT": a full day name, then 23
	// fixed bytes.
	comma := -1
	for i := 0; i < len(s) && i < 10; i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 || len(s)-comma != 24 {
		return time.Time{}, false
	}
	if d, ok := dayName(s[:3]); !ok || !equalFoldASCII(s[:comma], longDays[d]) {
		return time.Time{}, false
	}
	r := s[comma+1:] // " 06-Nov-94 08:49:37 GMT"
	if r[0] != ' ' || r[3] != '-' || r[7] != '-' || r[10] != ' ' || r[19] != ' ' {
		return time.Time{}, false
	}
	day, ok1 := digits(r[1:3])
	mon, ok2 := monthName(r[4:7])
	yy, ok3 := digits(r[8:10])
	if !ok1 || !ok2 || !ok3 || !equalFoldASCII(r[20:23], "GMT") {
		return time.Time{}, false
	}
	year := now.UTC().Year()/100*100 + yy
	if year > now.UTC().Year()+50 {
		year -= 100
	}
	return build(year, mon, day, r[11:19])
}

// build checks the clock part "08:49:37" and the calendar date.
func build(year int, mon time.Month, day int, clock string) (time.Time, bool) {
	if clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	hh, ok1 := digits(clock[0:2])
	mm, ok2 := digits(clock[3:5])
	ss, ok3 := digits(clock[6:8])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	if ss == 60 {
		ss = 59 // a leap second: close enough for caching
	}
	t := time.Date(year, mon, day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day { // 31 Nov normalised to 1 Dec: not a date
		return time.Time{}, false
	}
	return t, true
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(s) > 0
}

var shortDays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
var longDays = [7]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func dayName(s string) (int, bool) {
	for i, d := range shortDays {
		if equalFoldASCII(s, d) {
			return i, true
		}
	}
	return 0, false
}

func monthName(s string) (time.Month, bool) {
	for i, m := range months {
		if equalFoldASCII(s, m) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// FormatHTTPDate writes t as an IMF-fixdate.
func FormatHTTPDate(t time.Time) string {
	return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
}
