package proxy

import (
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The access log's two line formats. Both are written by hand into a
// pooled buffer: encoding/json and fmt would allocate per field, and the
// line is built on the request's goroutine.
//
// combined is the NCSA combined format (what NGINX and Apache write, so
// existing tools read the first nine fields) followed by lbsys's fields as
// ` key=value` pairs in a fixed order. A value is `-` (absent), a number,
// or a double-quoted string. Inside quotes, and in the request line, every
// byte below 0x20 or above 0x7e, the double quote and the backslash are
// written as \xHH (NGINX's escaping), and in the request line the space
// too, so a line is always one line, its quotes always pair, and the
// original bytes can be recovered exactly. No client-supplied byte is ever
// written outside quotes.
//
// json is one object per line with the fields of accessJSONFields, always
// all of them, in that order; strings are escaped as encoding/json does
// (invalid UTF-8 becomes U+FFFD), absent strings are "" and absent numbers
// 0.

// Field length caps, in bytes of the original value: a line stays bounded
// whatever a client sends (a request target may be 64 KiB), and a longer
// value ends with "..." to say it was cut.
const (
	maxLogPath    = 4096
	maxLogQuery   = 4096
	maxLogAgent   = 512
	maxLogReferer = 1024
	maxLogShort   = 256 // host, forwarded client, names, request id
	truncMark     = "..."
)

// accessEntry is one request as the access log writes it: plain values,
// so that the formatters are tested and fuzzed without a proxy.
type accessEntry struct {
	Time            time.Time // when the request reached the proxy
	Listener        string
	Client          string // the peer's IP address
	ForwardedClient string // the client a trusted proxy forwarded for; "" if none
	Method          string
	Host            string
	Path            string // escaped path, without the query
	Query           string // raw query, "" unless access_log.query is on
	Proto           string
	Status          int
	BytesIn         int64 // request body bytes read from the client
	BytesOut        int64 // response body bytes written to the client
	Duration        time.Duration
	Upstream        time.Duration // the last attempt's time to response headers
	Service         string
	Route           string
	Endpoint        string // the last endpoint tried; "" if none
	Attempts        int
	Policy          string
	Decision        string // one of the decision* constants
	Cache           string // one of the cache* constants
	Error           string // the X-Lbsys-Error reason of an answer the proxy made
	RequestID       string
	UserAgent       string
	Referer         string
}

// How the endpoint (or the answer) was chosen: the policy's decision as the
// access log reports it. Constant strings, so noting one costs nothing.
const (
	decisionNone        = ""               // not routed, or failed before a pick
	decisionPick        = "pick"           // the service's policy chose
	decisionSticky      = "sticky"         // a valid affinity cookie named the endpoint
	decisionHash        = "hash"           // hash affinity's bounded-load ring chose
	decisionRetry       = "retry"          // the answering endpoint was picked on a retry
	decisionNoEndpoint  = "no endpoint"    // nothing eligible to pick
	decisionCacheHit    = "cache hit"      // answered from the response cache
	decisionCacheStale  = "cache stale"    // answered stale from the response cache
	decisionPanicSuffix = " (panic)"       // picked while the service was in panic mode
	decisionShedPrefix  = "shed: priority" // admission refused the request
)

var (
	decisionPanic = map[string]string{
		decisionPick:   decisionPick + decisionPanicSuffix,
		decisionSticky: decisionSticky + decisionPanicSuffix,
		decisionHash:   decisionHash + decisionPanicSuffix,
		decisionRetry:  decisionRetry + decisionPanicSuffix,
	}
	decisionShed = [...]string{
		decisionShedPrefix + " critical",
		decisionShedPrefix + " normal",
		decisionShedPrefix + " sheddable",
	}
)

// Cache status of a request (the `cache` field).
const (
	cacheNone        = "none"        // the route does not cache
	cacheHit         = "hit"         // answered from the store, fresh
	cacheStale       = "stale"       // answered from the store, stale
	cacheMiss        = "miss"        // forwarded; the response may have been stored
	cacheRevalidated = "revalidated" // a stored response was validated (304) and served
	cacheBypass      = "bypass"      // a cached route forwarded without looking (method, Range, ...)
)

// appendCombined appends one combined line, with its newline.
func appendCombined(b []byte, e *accessEntry) []byte {
	b = appendUnquoted(b, e.Client)
	b = append(b, " - - ["...)
	b = appendCLFTime(b, e.Time)
	b = append(b, `] "`...)
	b = appendEscaped(b, e.Method, maxLogShort, true)
	b = append(b, ' ')
	b = appendEscaped(b, e.Path, maxLogPath, true)
	if e.Query != "" {
		b = append(b, '?')
		b = appendEscaped(b, e.Query, maxLogQuery, true)
	}
	b = append(b, ' ')
	b = appendEscaped(b, e.Proto, maxLogShort, true)
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.BytesOut, 10)
	b = append(b, ' ')
	b = appendQuotedOrDash(b, e.Referer, maxLogReferer)
	b = append(b, ' ')
	b = appendQuotedOrDash(b, e.UserAgent, maxLogAgent)

	b = appendKV(b, "listener", e.Listener)
	b = appendKV(b, "host", e.Host)
	b = appendKV(b, "service", e.Service)
	b = appendKV(b, "route", e.Route)
	b = appendKV(b, "upstream", e.Endpoint)
	b = append(b, " attempts="...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = appendKV(b, "policy", e.Policy)
	b = appendKV(b, "decision", e.Decision)
	b = appendKV(b, "cache", e.Cache)
	b = appendKV(b, "error", e.Error)
	b = append(b, " duration_ms="...)
	b = appendMillis(b, e.Duration)
	b = append(b, " upstream_ms="...)
	if e.Attempts > 0 {
		b = appendMillis(b, e.Upstream)
	} else {
		b = append(b, '-')
	}
	b = append(b, " bytes_in="...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = appendKV(b, "forwarded_client", e.ForwardedClient)
	b = appendKV(b, "request_id", e.RequestID)
	return append(b, '\n')
}

// accessJSONFields are the json format's field names, in order; docs and
// tests refer to this list.
var accessJSONFields = []string{
	"time", "listener", "client", "forwarded_client", "method", "host", "path", "query", "protocol",
	"status", "bytes_in", "bytes_out", "duration_ms", "upstream_ms", "service", "route", "upstream",
	"attempts", "policy", "decision", "cache", "error", "request_id", "user_agent", "referer",
}

// appendJSON appends one JSON object, with its newline.
func appendJSON(b []byte, e *accessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = appendJSONTime(b, e.Time)
	b = append(b, '"')
	b = appendJSONField(b, "listener", e.Listener, maxLogShort)
	b = appendJSONField(b, "client", e.Client, maxLogShort)
	b = appendJSONField(b, "forwarded_client", e.ForwardedClient, maxLogShort)
	b = appendJSONField(b, "method", e.Method, maxLogShort)
	b = appendJSONField(b, "host", e.Host, maxLogShort)
	b = appendJSONField(b, "path", e.Path, maxLogPath)
	b = appendJSONField(b, "query", e.Query, maxLogQuery)
	b = appendJSONField(b, "protocol", e.Proto, maxLogShort)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, e.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, e.Duration)
	b = append(b, `,"upstream_ms":`...)
	b = appendMillis(b, e.Upstream)
	b = appendJSONField(b, "service", e.Service, maxLogShort)
	b = appendJSONField(b, "route", e.Route, maxLogShort)
	b = appendJSONField(b, "upstream", e.Endpoint, maxLogShort)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = appendJSONField(b, "policy", e.Policy, maxLogShort)
	b = appendJSONField(b, "decision", e.Decision, maxLogShort)
	b = appendJSONField(b, "cache", e.Cache, maxLogShort)
	b = appendJSONField(b, "error", e.Error, maxLogShort)
	b = appendJSONField(b, "request_id", e.RequestID, maxLogShort)
	b = appendJSONField(b, "user_agent", e.UserAgent, maxLogAgent)
	b = appendJSONField(b, "referer", e.Referer, maxLogReferer)
	return append(b, "}\n"...)
}

// appendMillis writes d in milliseconds with microsecond precision.
func appendMillis(b []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	return strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// appendKV appends ` key="value"`, or ` key=-` for an empty value.
func appendKV(b []byte, key, v string) []byte {
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	if v == "" {
		return append(b, '-')
	}
	b = append(b, '"')
	b = appendEscaped(b, v, maxLogShort, false)
	return append(b, '"')
}

// appendQuotedOrDash appends "value", or "-" for an empty value (the
// combined format's convention for a missing Referer or User-Agent).
func appendQuotedOrDash(b []byte, v string, max int) []byte {
	b = append(b, '"')
	if v == "" {
		b = append(b, '-')
	} else {
		b = appendEscaped(b, v, max, false)
	}
	return append(b, '"')
}

// appendUnquoted appends a field written outside quotes (the client
// address, which the proxy takes from the socket), escaping spaces too so
// it can never split into two fields; "-" when empty.
func appendUnquoted(b []byte, v string) []byte {
	if v == "" {
		return append(b, '-')
	}
	return appendEscaped(b, v, maxLogShort, true)
}

// hexDigits are NGINX's (upper case) for \xHH; jsonHex encoding/json's.
const (
	hexDigits = "0123456789ABCDEF"
	jsonHex   = "0123456789abcdef"
)

// appendEscaped writes s, cut to max bytes, with control bytes, bytes
// above 0x7e, `"` and `\` (and the space when space is set) as \xHH. Runs
// of plain bytes are copied at once: most values have nothing to escape.
func appendEscaped(b []byte, s string, max int, space bool) []byte {
	cut := false
	if len(s) > max {
		s, cut = s[:max], true
	}
	esc := &escQuoted
	if space {
		esc = &escRequestLine
	}
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !esc[c] {
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		start = i + 1
	}
	b = append(b, s[start:]...)
	if cut {
		b = append(b, truncMark...)
	}
	return b
}

// escQuoted and escRequestLine mark the bytes appendEscaped escapes inside
// quotes and in the request line (where the space separates fields).
var escQuoted, escRequestLine = escapeTables()

func escapeTables() (quoted, line [256]bool) {
	for c := range 256 {
		quoted[c] = c < 0x20 || c > 0x7e || c == '"' || c == '\\'
		line[c] = quoted[c] || c == ' '
	}
	return quoted, line
}

// appendJSONField appends `,"name":"value"`.
func appendJSONField(b []byte, name, v string, max int) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, v, max)
}

// appendJSONString writes s, cut to max bytes, as a JSON string the way
// encoding/json does: invalid UTF-8 bytes become U+FFFD, control
// characters and U+2028/U+2029 are \u-escaped; DEL too, which
// encoding/json leaves raw, so no terminal control byte reaches a log.
func appendJSONString(b []byte, s string, max int) []byte {
	cut := false
	if len(s) > max {
		s, cut = s[:max], true
	}
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	if cut {
		b = append(b, truncMark...)
	}
	return append(b, '"')
}

// clfStamp caches the combined format's time stamp for one second: the
// format is the costliest part of a line otherwise.
type clfStamp struct {
	sec int64
	loc *time.Location
	s   []byte
}

var clfCache atomic.Pointer[clfStamp]

// appendCLFTime appends t as 02/Jan/2006:15:04:05 -0700, in t's location.
func appendCLFTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	if c := clfCache.Load(); c != nil && c.sec == sec && c.loc == loc {
		return append(b, c.s...)
	}
	c := &clfStamp{sec: sec, loc: loc, s: t.AppendFormat(nil, "02/Jan/2006:15:04:05 -0700")}
	clfCache.Store(c)
	return append(b, c.s...)
}

// jsonStamp caches the json format's time up to the seconds, in UTC.
type jsonStamp struct {
	sec int64
	s   []byte
}

var jsonCache atomic.Pointer[jsonStamp]

// appendJSONTime appends t in UTC as 2006-01-02T15:04:05.000Z.
func appendJSONTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	c := jsonCache.Load()
	if c == nil || c.sec != sec {
		c = &jsonStamp{sec: sec, s: t.UTC().AppendFormat(nil, "2006-01-02T15:04:05")}
		jsonCache.Store(c)
	}
	b = append(b, c.s...)
	ms := t.Nanosecond() / int(time.Millisecond)
	return append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}
