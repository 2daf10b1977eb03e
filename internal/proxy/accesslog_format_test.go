package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var logTime = time.Date(2026, 3, 1, 12, 4, 5, 123456789, time.FixedZone("", -7*3600))

// fullEntry is a proxied request with every field set.
func fullEntry() accessEntry {
	return accessEntry{
		Time: logTime, Listener: "public", Client: "10.0.0.7", ForwardedClient: "203.0.113.9",
		Method: "GET", Host: "shop.example", Path: "/catalog/products/p1", Proto: "HTTP/1.1",
		Status: 200, BytesIn: 0, BytesOut: 1024,
		Duration: 12345678 * time.Nanosecond, Upstream: 10 * time.Millisecond,
		Service: "catalog", Route: "public#0", Endpoint: "127.0.0.1:9001", Attempts: 1,
		Policy: "peak_ewma", Decision: decisionPick, Cache: cacheNone,
		RequestID: "r-1", UserAgent: "curl/8.0", Referer: "https://shop.example/",
	}
}

// TestAccessLogFormats pins both formats byte for byte: field order and
// names are a contract with whatever parses the logs.
func TestAccessLogFormats(t *testing.T) {
	tests := []struct {
		name     string
		entry    func(e *accessEntry)
		combined string
		json     string
	}{
		{
			name:     "proxied request",
			entry:    func(*accessEntry) {},
			combined: `10.0.0.7 - - [01/Mar/2026:12:04:05 -0700] "GET /catalog/products/p1 HTTP/1.1" 200 1024 "https://shop.example/" "curl/8.0" listener="public" host="shop.example" service="catalog" route="public#0" upstream="127.0.0.1:9001" attempts=1 policy="peak_ewma" decision="pick" cache="none" error=- duration_ms=12.346 upstream_ms=10.000 bytes_in=0 forwarded_client="203.0.113.9" request_id="r-1"`,
			json:     `{"time":"2026-03-01T19:04:05.123Z","listener":"public","client":"10.0.0.7","forwarded_client":"203.0.113.9","method":"GET","host":"shop.example","path":"/catalog/products/p1","query":"","protocol":"HTTP/1.1","status":200,"bytes_in":0,"bytes_out":1024,"duration_ms":12.346,"upstream_ms":10.000,"service":"catalog","route":"public#0","upstream":"127.0.0.1:9001","attempts":1,"policy":"peak_ewma","decision":"pick","cache":"none","error":"","request_id":"r-1","user_agent":"curl/8.0","referer":"https://shop.example/"}`,
		},
		{
			name: "not routed: absent fields",
			entry: func(e *accessEntry) {
				*e = accessEntry{Time: logTime, Listener: "public", Client: "::1", Method: "GET", Path: "/nowhere",
					Proto: "HTTP/1.0", Status: 404, BytesOut: 30, Cache: cacheNone, Error: "no_route"}
			},
			combined: `::1 - - [01/Mar/2026:12:04:05 -0700] "GET /nowhere HTTP/1.0" 404 30 "-" "-" listener="public" host=- service=- route=- upstream=- attempts=0 policy=- decision=- cache="none" error="no_route" duration_ms=0.000 upstream_ms=- bytes_in=0 forwarded_client=- request_id=-`,
			json:     `{"time":"2026-03-01T19:04:05.123Z","listener":"public","client":"::1","forwarded_client":"","method":"GET","host":"","path":"/nowhere","query":"","protocol":"HTTP/1.0","status":404,"bytes_in":0,"bytes_out":30,"duration_ms":0.000,"upstream_ms":0.000,"service":"","route":"","upstream":"","attempts":0,"policy":"","decision":"","cache":"none","error":"no_route","request_id":"","user_agent":"","referer":""}`,
		},
		{
			name: "retried, shed and query",
			entry: func(e *accessEntry) {
				e.Query, e.Attempts, e.Decision, e.Status, e.Error = "q=shoes&page=2", 3, decisionShed[2], 503, "overloaded"
			},
			combined: `10.0.0.7 - - [01/Mar/2026:12:04:05 -0700] "GET /catalog/products/p1?q=shoes&page=2 HTTP/1.1" 503 1024 "https://shop.example/" "curl/8.0" listener="public" host="shop.example" service="catalog" route="public#0" upstream="127.0.0.1:9001" attempts=3 policy="peak_ewma" decision="shed: priority sheddable" cache="none" error="overloaded" duration_ms=12.346 upstream_ms=10.000 bytes_in=0 forwarded_client="203.0.113.9" request_id="r-1"`,
			json:     `{"time":"2026-03-01T19:04:05.123Z","listener":"public","client":"10.0.0.7","forwarded_client":"203.0.113.9","method":"GET","host":"shop.example","path":"/catalog/products/p1","query":"q=shoes&page=2","protocol":"HTTP/1.1","status":503,"bytes_in":0,"bytes_out":1024,"duration_ms":12.346,"upstream_ms":10.000,"service":"catalog","route":"public#0","upstream":"127.0.0.1:9001","attempts":3,"policy":"peak_ewma","decision":"shed: priority sheddable","cache":"none","error":"overloaded","request_id":"r-1","user_agent":"curl/8.0","referer":"https://shop.example/"}`,
		},
		{
			name: "injection attempts are escaped",
			entry: func(e *accessEntry) {
				e.Path = "/a\r\nb\" 200 0 \"x"
				e.Query = "k=\x00\x7f\xff"
				e.UserAgent = "ua\" listener=\"evil\nnext line"
				e.Referer = `back\slash`
				e.RequestID = "id\twith tab"
				e.ForwardedClient = "1.2.3.4\" x=\"y"
				e.Host = "h\u2028ost"
			},
			combined: `10.0.0.7 - - [01/Mar/2026:12:04:05 -0700] "GET /a\x0D\x0Ab\x22\x20200\x200\x20\x22x?k=\x00\x7F\xFF HTTP/1.1" 200 1024 "back\x5Cslash" "ua\x22 listener=\x22evil\x0Anext line" listener="public" host="h\xE2\x80\xA8ost" service="catalog" route="public#0" upstream="127.0.0.1:9001" attempts=1 policy="peak_ewma" decision="pick" cache="none" error=- duration_ms=12.346 upstream_ms=10.000 bytes_in=0 forwarded_client="1.2.3.4\x22 x=\x22y" request_id="id\x09with tab"`,
			json:     `{"time":"2026-03-01T19:04:05.123Z","listener":"public","client":"10.0.0.7","forwarded_client":"1.2.3.4\" x=\"y","method":"GET","host":"h\u2028ost","path":"/a\r\nb\" 200 0 \"x","query":"k=\u0000\u007f\ufffd","protocol":"HTTP/1.1","status":200,"bytes_in":0,"bytes_out":1024,"duration_ms":12.346,"upstream_ms":10.000,"service":"catalog","route":"public#0","upstream":"127.0.0.1:9001","attempts":1,"policy":"peak_ewma","decision":"pick","cache":"none","error":"","request_id":"id\twith tab","user_agent":"ua\" listener=\"evil\nnext line","referer":"back\\slash"}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := fullEntry()
			tc.entry(&e)
			if got := string(appendCombined(nil, &e)); got != tc.combined+"\n" {
				t.Errorf("combined:\n got %s\nwant %s", got, tc.combined)
			}
			if got := string(appendJSON(nil, &e)); got != tc.json+"\n" {
				t.Errorf("json:\n got %s\nwant %s", got, tc.json)
			}
		})
	}
}

// TestAccessLogTruncation: a field longer than its cap is cut and marked,
// so one request cannot write a megabyte line.
func TestAccessLogTruncation(t *testing.T) {
	e := fullEntry()
	e.UserAgent = strings.Repeat("a", 5000)
	e.Path = "/" + strings.Repeat("p", 10000)
	line := appendCombined(nil, &e)
	if len(line) > 6000 {
		t.Fatalf("line of %d bytes", len(line))
	}
	f, err := parseCombined(string(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("a", maxLogAgent) + truncMark; f["user_agent"] != want {
		t.Errorf("user agent %d bytes, want %d", len(f["user_agent"]), len(want))
	}
	if want := e.Path[:maxLogPath] + truncMark; f["path"] != want {
		t.Errorf("path %d bytes, want %d", len(f["path"]), len(want))
	}
	var obj map[string]any
	if err := json.Unmarshal(appendJSON(nil, &e), &obj); err != nil {
		t.Fatal(err)
	}
	if ua := obj["user_agent"].(string); len(ua) != maxLogAgent+len(truncMark) {
		t.Errorf("json user agent %d bytes", len(ua))
	}
}

// TestCLFTimeCache: the cached stamp follows the second and the zone.
func TestCLFTimeCache(t *testing.T) {
	utc := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{utc, "01/Mar/2026:12:00:00 +0000"},
		{utc.Add(400 * time.Millisecond), "01/Mar/2026:12:00:00 +0000"},
		{utc.Add(time.Second), "01/Mar/2026:12:00:01 +0000"},
		{utc.Add(time.Second).In(time.FixedZone("", 3600)), "01/Mar/2026:13:00:01 +0100"},
		{utc, "01/Mar/2026:12:00:00 +0000"},
	} {
		if got := string(appendCLFTime(nil, tc.t)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.t, got, tc.want)
		}
	}
}

// TestJSONTimeCache: the cached stamp follows the second; milliseconds
// are the instant's own; every zone is written as UTC.
func TestJSONTimeCache(t *testing.T) {
	utc := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{utc, "2026-03-01T12:00:00.000Z"},
		{utc.Add(7 * time.Millisecond), "2026-03-01T12:00:00.007Z"},
		{utc.Add(999999999), "2026-03-01T12:00:00.999Z"},
		{utc.Add(time.Second + 42*time.Millisecond), "2026-03-01T12:00:01.042Z"},
		{utc.Add(time.Second).In(time.FixedZone("", -7*3600)), "2026-03-01T12:00:01.000Z"},
		{utc.Add(-time.Hour), "2026-03-01T11:00:00.000Z"},
	} {
		if got := string(appendJSONTime(nil, tc.t)); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.t, got, tc.want)
		}
		if want := tc.t.UTC().Format("2006-01-02T15:04:05.000Z07:00"); tc.want != want {
			t.Errorf("case %v: the table says %s, time.Format %s", tc.t, tc.want, want)
		}
	}
}

// combinedFields are the names parseCombined gives the nine NCSA fields.
var combinedFields = []string{"client", "ident", "user", "time", "request", "status", "bytes_out", "referer", "user_agent"}

// parseCombined reads a combined line back as the documented grammar
// says: nine NCSA fields (the request line split into method, path, query
// and protocol), then ` key=value` pairs where a value is `-`, a number or
// a quoted string; \xHH escapes undone. It is strict: anything else is an
// error, so it doubles as the check that a line cannot be misread.
func parseCombined(line string) (map[string]string, error) {
	if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 || strings.Contains(line, "\r") {
		return nil, fmt.Errorf("not one line: %q", line)
	}
	s := line[:len(line)-1]
	out := map[string]string{}
	var err error
	next := func(name string) {
		if err != nil {
			return
		}
		var v string
		switch {
		case name == "time":
			if !strings.HasPrefix(s, "[") {
				err = fmt.Errorf("%s: no [", name)
				return
			}
			i := strings.IndexByte(s, ']')
			if i < 0 {
				err = fmt.Errorf("%s: no ]", name)
				return
			}
			v, s = s[1:i], s[i+1:]
		case strings.HasPrefix(s, `"`):
			i := strings.IndexByte(s[1:], '"')
			if i < 0 {
				err = fmt.Errorf("%s: unterminated quote", name)
				return
			}
			v, s = s[1:i+1], s[i+2:]
			if name == "request" {
				break // split on its (unescaped) spaces first
			}
			if v, err = unescapeLog(v); err != nil {
				return
			}
		default:
			i := strings.IndexByte(s, ' ')
			if i < 0 {
				i = len(s)
			}
			v, s = s[:i], s[i:]
			if v, err = unescapeLog(v); err != nil {
				return
			}
		}
		out[name] = v
		if name != "user_agent" {
			if !strings.HasPrefix(s, " ") {
				err = fmt.Errorf("%s: no space after it", name)
				return
			}
			s = s[1:]
		}
	}
	for _, f := range combinedFields {
		next(f)
	}
	if err != nil {
		return nil, err
	}
	req := strings.Split(out["request"], " ")
	if len(req) != 3 {
		return nil, fmt.Errorf("request line %q has %d parts", out["request"], len(req))
	}
	target, query, _ := strings.Cut(req[1], "?")
	for i, p := range []*string{&req[0], &req[2], &target, &query} {
		if *p, err = unescapeLog(*p); err != nil {
			return nil, fmt.Errorf("request line part %d: %w", i, err)
		}
	}
	out["method"], out["protocol"], out["path"], out["query"] = req[0], req[2], target, query
	if out["request"], err = unescapeLog(out["request"]); err != nil {
		return nil, err
	}
	for s != "" {
		if !strings.HasPrefix(s, " ") {
			return nil, fmt.Errorf("pairs: no space before %q", s)
		}
		s = s[1:]
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("pairs: no key in %q", s)
		}
		key := s[:eq]
		if strings.ContainsAny(key, ` "`) {
			return nil, fmt.Errorf("pairs: bad key %q", key)
		}
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, `"`) {
			i := strings.IndexByte(s[1:], '"')
			if i < 0 {
				return nil, fmt.Errorf("%s: unterminated quote", key)
			}
			if v, err = unescapeLog(s[1 : i+1]); err != nil {
				return nil, err
			}
			s = s[i+2:]
		} else {
			i := strings.IndexByte(s, ' ')
			if i < 0 {
				i = len(s)
			}
			v, s = s[:i], s[i:]
			if v == "-" {
				v = ""
			} else if _, err := strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("%s: unquoted value %q is not a number", key, v)
			}
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s twice", key)
		}
		out[key] = v
	}
	return out, nil
}

// unescapeLog undoes \xHH; any other backslash is an error.
func unescapeLog(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) || s[i+1] != 'x' {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		n, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), nil
}

// FuzzAccessLogFormat: whatever bytes a client controls, a combined line
// is one line that parses back to exactly those bytes, and a json line is
// one valid object whose strings are what encoding/json makes of them.
func FuzzAccessLogFormat(f *testing.F) {
	f.Add("/a b", "q=1", "Mozilla/5.0", "https://x/", "id", "1.2.3.4", "shop", "GET", "HTTP/1.1")
	f.Add("/\r\n\"", "\x00", "\"\\", "\xff\xfe", "\u2028", "\"", "h\x7f", "M\"", "P \"")
	f.Add(strings.Repeat("/é", 3000), "", "", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, path, query, ua, ref, rid, fwd, host, method, proto string) {
		e := fullEntry()
		e.Path, e.Query, e.UserAgent, e.Referer, e.RequestID = path, query, ua, ref, rid
		e.ForwardedClient, e.Host, e.Method, e.Proto = fwd, host, method, proto
		// Names from the configuration are free text as well.
		e.Route, e.Listener = host, rid

		line := string(appendCombined(nil, &e))
		got, err := parseCombined(line)
		if err != nil {
			t.Fatalf("%v\n%s", err, line)
		}
		capped := func(s string, max int) string {
			if len(s) > max {
				return s[:max] + truncMark
			}
			return s
		}
		orDash := func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		}
		want := map[string]string{
			"method": capped(method, maxLogShort), "path": capped(path, maxLogPath), "protocol": capped(proto, maxLogShort),
			"user_agent": orDash(capped(ua, maxLogAgent)), "referer": orDash(capped(ref, maxLogReferer)),
			"request_id": capped(rid, maxLogShort), "forwarded_client": capped(fwd, maxLogShort),
			"host": capped(host, maxLogShort), "route": capped(host, maxLogShort), "listener": capped(rid, maxLogShort),
			"status": "200", "attempts": "1", "service": "catalog",
		}
		if query != "" {
			want["query"] = capped(query, maxLogQuery)
		}
		for k, v := range want {
			if got[k] != v && !(strings.Contains(capped(path, maxLogPath), "?") && (k == "path" || k == "query")) {
				t.Errorf("%s: got %q, want %q\n%s", k, got[k], v, line)
			}
		}
		if len(got) != len(combinedFields)+4+15 {
			t.Errorf("%d fields: %v\n%s", len(got), got, line)
		}

		js := appendJSON(nil, &e)
		if bytes.Count(js, []byte("\n")) != 1 || js[len(js)-1] != '\n' {
			t.Fatalf("json is not one line: %q", js)
		}
		if !json.Valid(js) {
			t.Fatalf("invalid json: %s", js)
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			t.Fatal(err)
		}
		if len(obj) != len(accessJSONFields) {
			t.Errorf("%d json fields, want %d", len(obj), len(accessJSONFields))
		}
		viaStd := func(s string) string {
			b, _ := json.Marshal(s)
			var back string
			json.Unmarshal(b, &back)
			return back
		}
		for k, v := range map[string]string{
			"path": capped(path, maxLogPath), "query": capped(query, maxLogQuery), "user_agent": capped(ua, maxLogAgent),
			"referer": capped(ref, maxLogReferer), "request_id": capped(rid, maxLogShort), "host": capped(host, maxLogShort),
			"method": capped(method, maxLogShort), "protocol": capped(proto, maxLogShort),
		} {
			if !reflect.DeepEqual(obj[k], viaStd(v)) {
				t.Errorf("json %s: got %q, want %q", k, obj[k], viaStd(v))
			}
		}
	})
}
