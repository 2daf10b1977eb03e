package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// Access logs through the real proxy: real backends and clients on
// 127.0.0.1, both server engines (TestAccessLogNetHTTPEngine), both
// formats, every line read back with the parsers a user would write.

// readAccessLog returns the lines of an access log file, each parsed into
// field name → value (numbers as written; absent values "").
func readAccessLog(t *testing.T, path, format string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasSuffix(l, "\n") {
			continue // empty, or a write in progress: every line ends with a newline
		}
		if format == config.AccessLogCombined {
			f, err := parseCombined(l)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			out = append(out, f)
			continue
		}
		dec := json.NewDecoder(strings.NewReader(l))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("%s: %v in %q", path, err, l)
		}
		if len(obj) != len(accessJSONFields) {
			t.Fatalf("%d fields in %s", len(obj), l)
		}
		f := map[string]string{}
		for k, v := range obj {
			f[k] = fmt.Sprint(v)
		}
		if f["upstream_ms"] == "0.000" && f["attempts"] == "0" {
			f["upstream_ms"] = "" // as combined writes it: absent
		}
		out = append(out, f)
	}
	return out
}

// waitAccessLines waits until the file holds at least n lines.
func waitAccessLines(t *testing.T, path, format string, n int) []map[string]string {
	t.Helper()
	var lines []map[string]string
	eventually(t, 10*time.Second, fmt.Sprintf("%d lines in %s", n, path), func() bool {
		lines = readAccessLog(t, path, format)
		return len(lines) >= n
	})
	return lines
}

// findLine returns the one line whose path is path (with this method).
func findLine(t *testing.T, lines []map[string]string, method, path string) map[string]string {
	t.Helper()
	var found map[string]string
	for _, l := range lines {
		if l["path"] == path && l["method"] == method {
			if found != nil {
				t.Fatalf("two lines for %s %s", method, path)
			}
			found = l
		}
	}
	if found == nil {
		t.Fatalf("no line for %s %s in %v", method, path, lines)
	}
	return found
}

// checkFields compares the fields of want; "<>0" means a positive number.
func checkLogFields(t *testing.T, what string, line map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got := line[k]
		if v == "<>0" {
			if f, err := strconv.ParseFloat(got, 64); err != nil || f <= 0 {
				t.Errorf("%s: %s = %q, want a positive number", what, k, got)
			}
			continue
		}
		if got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

const accessLogConfig = `
admin: {listen: 127.0.0.1:0}
server: {trusted_proxies: [127.0.0.1, "::1"]}
listeners:
  - name: main
    listen: 127.0.0.1:0
    access_log: {path: "LOG", format: FORMAT}
    routes:
      - {name: retry, match: {path_prefix: /retry}, service: flaky}
      - {name: browse, match: {path_prefix: /browse}, service: shop, priority: sheddable}
      - {name: checkout, match: {path_prefix: /checkout}, service: shop, priority: critical}
      - {name: cached, match: {path_prefix: /fresh}, service: cached}
      - {name: sticky, match: {path_prefix: /cart}, service: cart}
      - {name: echo, match: {path_prefix: /echo}, service: echo}
services:
  - name: flaky
    endpoints: [{address: "{{.B0}}", weight: 10000}, {address: "{{.B1}}"}]
    retries: {attempts: 2, backoff_base: 1ms, backoff_max: 2ms}
    health: {outlier: {disabled: true}}
  - name: shop
    endpoints: [{address: "{{.B2}}"}]
    admission: {min_limit: 1, max_limit: 1, initial_limit: 1}
  - name: cached
    endpoints: [{address: "{{.B3}}"}]
    cache: {enabled: true}
  - name: cart
    policy: least_request
    endpoints: [{address: "{{.B1}}"}, {address: "{{.B4}}"}]
    affinity: {type: cookie, cookie: {name: sticky}}
  - name: echo
    endpoints: [{address: "{{.B4}}"}]
`

// TestAccessLogThroughProxy: every kind of answer leaves one line with the
// right fields: a retried request (attempts, the endpoint that answered,
// the trusted forwarded client, no query), a shed one, cache miss and
// hit, a sticky pick, a request body, a proxy error before routing, and a
// request crafted to break the line.
func TestAccessLogThroughProxy(t *testing.T) {
	for _, format := range []string{config.AccessLogJSON, config.AccessLogCombined} {
		t.Run(format, func(t *testing.T) { testAccessLogThroughProxy(t, format) })
	}
}

func testAccessLogThroughProxy(t *testing.T, format string) {
	bad, good := newBackend(t, "bad"), newBackend(t, "good")
	bad.status.Store(503)
	release := make(chan struct{})
	var held atomic.Int64
	slow := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held.Add(1)
		<-release
		io.WriteString(w, "done")
	}))
	origin := newCacheOrigin(t)
	echo := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	yaml := strings.NewReplacer("LOG", logPath, "FORMAT", format).Replace(accessLogConfig)
	px := startProxy(t, renderConfig(t, yaml, bad, good, slow, origin.testBackend, echo))

	// A retried GET, forwarded by a trusted proxy for 203.0.113.9.
	code, _, _ := do(t, "GET", px.url+"/retry/1?token=s3cret", "", map[string]string{
		"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "req-42", "User-Agent": "test-agent/1", "Referer": "https://shop.test/",
		"Host": "shop.test"})
	if code != 200 {
		t.Fatalf("retry: %d", code)
	}
	// Admission: a critical request holds the only slot; a sheddable one
	// is shed.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		do(t, "POST", px.url+"/checkout/pay", "x", map[string]string{"Idempotency-Key": "k1"})
	}()
	eventually(t, 5*time.Second, "the checkout at the backend", func() bool { return held.Load() == 1 })
	if code, _, _ := do(t, "GET", px.url+"/browse/shoes", "", nil); code != 503 {
		t.Fatalf("browse while full: %d", code)
	}
	close(release)
	wg.Wait()
	// The cache: a miss, then a hit.
	get(t, px, "/fresh/a", nil)
	if _, _, h := get(t, px, "/fresh/a", nil); h.Get("X-Cache") != "HIT" {
		t.Fatalf("second /fresh/a: X-Cache %q", h.Get("X-Cache"))
	}
	// Cookie affinity: a pick, then the cookie's endpoint.
	_, _, h := do(t, "GET", px.url+"/cart/1", "", nil)
	cookie := h.Get("Set-Cookie")
	if cookie == "" {
		t.Fatal("no affinity cookie")
	}
	do(t, "GET", px.url+"/cart/2", "", map[string]string{"Cookie": strings.Split(cookie, ";")[0]})
	// A body both ways.
	if code, body, _ := do(t, "POST", px.url+"/echo/x", "hello world", nil); code != 200 || body != "hello world" {
		t.Fatalf("echo: %d %q", code, body)
	}
	// No route.
	if code, _, _ := do(t, "GET", px.url+"/nowhere", "", nil); code != 404 {
		t.Fatalf("no route: %d", code)
	}
	// A User-Agent and a Referer that try to end the line or fake fields
	// (Go's client refuses to send CR/LF, a raw connection does not care).
	resp, _ := rawExchange(t, strings.TrimPrefix(px.url, "http://"),
		"GET /echo/%22inj HTTP/1.1\r\nHost: x\r\nUser-Agent: a\" listener=\"evil\" \xff\r\nReferer: r\\\"\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("crafted request: %d", resp.StatusCode)
	}

	lines := waitAccessLines(t, logPath, format, 10)
	if len(lines) != 10 {
		t.Errorf("%d lines, want 10", len(lines))
	}
	for _, l := range lines {
		if l["listener"] != "main" || l["client"] != "127.0.0.1" || l["protocol"] != "HTTP/1.1" {
			t.Errorf("line %v: listener, client or protocol wrong", l)
		}
	}
	checkLogFields(t, "retried GET", findLine(t, lines, "GET", "/retry/1"), map[string]string{
		"status": "200", "service": "flaky", "route": "retry", "upstream": good.addr, "attempts": "2",
		"policy": "round_robin", "decision": "retry", "cache": "none", "error": "", "query": "",
		"forwarded_client": "203.0.113.9", "request_id": "req-42", "user_agent": "test-agent/1",
		"referer": "https://shop.test/", "host": "shop.test", "bytes_out": strconv.Itoa(len("good GET /retry/1")),
		"duration_ms": "<>0", "upstream_ms": "<>0",
	})
	checkLogFields(t, "shed GET", findLine(t, lines, "GET", "/browse/shoes"), map[string]string{
		"status": "503", "service": "shop", "route": "browse", "attempts": "0", "upstream": "",
		"decision": "shed: priority sheddable", "error": "overloaded", "upstream_ms": "", "forwarded_client": "",
	})
	checkLogFields(t, "admitted POST", findLine(t, lines, "POST", "/checkout/pay"), map[string]string{
		"status": "200", "route": "checkout", "attempts": "1", "decision": "pick", "upstream": slow.addr, "bytes_in": "1",
	})
	var miss, hit map[string]string
	for _, l := range lines {
		if l["path"] == "/fresh/a" {
			if l["cache"] == "miss" {
				miss = l
			} else {
				hit = l
			}
		}
	}
	if miss == nil || hit == nil {
		t.Fatalf("cache lines: miss %v, hit %v", miss, hit)
	}
	checkLogFields(t, "cache miss", miss, map[string]string{"attempts": "1", "decision": "pick", "upstream": origin.addr, "route": "cached"})
	checkLogFields(t, "cache hit", hit, map[string]string{"cache": "hit", "attempts": "0", "decision": "cache hit", "upstream": "", "policy": "", "status": "200"})
	first, second := findLine(t, lines, "GET", "/cart/1"), findLine(t, lines, "GET", "/cart/2")
	checkLogFields(t, "first cart", first, map[string]string{"decision": "pick", "policy": "least_request"})
	checkLogFields(t, "second cart", second, map[string]string{"decision": "sticky", "upstream": first["upstream"]})
	checkLogFields(t, "echo", findLine(t, lines, "POST", "/echo/x"), map[string]string{"bytes_in": "11", "bytes_out": "11", "status": "200"})
	checkLogFields(t, "no route", findLine(t, lines, "GET", "/nowhere"), map[string]string{
		"status": "404", "error": "no_route", "service": "", "route": "", "attempts": "0", "decision": "", "cache": "none"})
	crafted := findLine(t, lines, "GET", "/echo/%22inj")
	checkLogFields(t, "crafted", crafted, map[string]string{"listener": "main", "status": "200", "route": "echo"})
	if format == config.AccessLogCombined {
		// Combined keeps the bytes (escaped); JSON makes invalid UTF-8
		// U+FFFD, as encoding/json does.
		checkLogFields(t, "crafted", crafted, map[string]string{"user_agent": "a\" listener=\"evil\" \xff", "referer": `r\"`})
	} else {
		checkLogFields(t, "crafted", crafted, map[string]string{"user_agent": "a\" listener=\"evil\" \ufffd", "referer": `r\"`})
	}
}

// TestAccessLogNetHTTPEngine runs the access log tests on net/http.Server.
func TestAccessLogNetHTTPEngine(t *testing.T) {
	testEngine = config.EngineNetHTTP
	defer func() { testEngine = "" }()
	t.Run("ThroughProxy", TestAccessLogThroughProxy)
	t.Run("ErrorsOnlyAndSample", TestAccessLogErrorsOnlyAndSample)
	t.Run("Query", TestAccessLogQuery)
	t.Run("Reload", TestAccessLogReload)
	t.Run("Upgrade", TestAccessLogUpgrade)
	t.Run("AbortedResponse", TestAccessLogAbortedResponse)
	t.Run("ClientGoneMidBody", TestAccessLogClientGoneMidBody)
	t.Run("Streaming", TestAccessLogStreaming)
}

// TestAccessLogErrorsOnlyAndSample: errors_only keeps exactly the errors;
// sample keeps the share of successes the random draw selects, and every
// error whatever the draw.
func TestAccessLogErrorsOnlyAndSample(t *testing.T) {
	b := newBackend(t, "b")
	dir := t.TempDir()
	errLog, sampled := filepath.Join(dir, "errors.log"), filepath.Join(dir, "sampled.log")
	// Draws cycle 0.1, 0.3, 0.5, 0.7, 0.9: with sample 0.5, two successes
	// in five are kept.
	var n atomic.Int64
	old := accessSampleRand
	accessSampleRand = func() float64 { return float64((n.Add(1)-1)%5)*0.2 + 0.1 }
	defer func() { accessSampleRand = old }()
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: errors
    listen: 127.0.0.1:0
    access_log: {path: "`+errLog+`", errors_only: true}
    routes: [{match: {path_prefix: /app}, service: app}]
  - name: sampled
    listen: 127.0.0.2:0
    access_log: {path: "`+sampled+`", sample: 0.5, format: json}
    routes: [{match: {path_prefix: /app}, service: app}]
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    retries: {attempts: 0}
`, b))
	g := px.gen.Load()
	var errURL, sampledURL string
	for key, lr := range g.listeners {
		switch lr.name {
		case "errors":
			errURL = "http://" + px.Addr(key)
		case "sampled":
			sampledURL = "http://" + px.Addr(key)
		}
	}
	for _, base := range []string{errURL, sampledURL} {
		for i := 0; i < 10; i++ {
			do(t, "GET", base+"/app/ok", "", nil)
		}
		do(t, "GET", base+"/none", "", nil) // no_route: a proxy error
		b.status.Store(500)
		do(t, "GET", base+"/app/fail", "", nil)
		b.status.Store(404)
		do(t, "GET", base+"/app/missing", "", nil) // the backend's 404: not an error
		b.status.Store(200)
	}
	// The sampled listener drew 11 times (10 ok + the 404): draws 0.1 and
	// 0.3 of each five are kept: ok #1, #2, #6, #7 and the 404 (#11).
	lines := waitAccessLines(t, sampled, config.AccessLogJSON, 7)
	errs := waitAccessLines(t, errLog, config.AccessLogCombined, 2)
	px.Close() // flushed; nothing more can arrive
	lines, errs = readAccessLog(t, sampled, config.AccessLogJSON), readAccessLog(t, errLog, config.AccessLogCombined)
	if len(errs) != 2 || errs[0]["path"] != "/none" || errs[1]["path"] != "/app/fail" || errs[1]["status"] != "500" {
		t.Errorf("errors_only: %v", errs)
	}
	var ok, other []string
	for _, l := range lines {
		if l["path"] == "/app/ok" {
			ok = append(ok, l["status"])
		} else {
			other = append(other, l["path"])
		}
	}
	if len(ok) != 4 || strings.Join(other, ",") != "/none,/app/fail,/app/missing" {
		t.Errorf("sampled: %d successes %v and %v; want 4 and /none,/app/fail,/app/missing", len(ok), ok, other)
	}
}

// TestAccessLogQuery: the query string is logged only when asked for.
func TestAccessLogQuery(t *testing.T) {
	b := newBackend(t, "b")
	dir := t.TempDir()
	for _, tc := range []struct {
		query bool
		want  string
	}{{false, ""}, {true, "q=shoes&token=s3cret"}} {
		for _, format := range []string{config.AccessLogCombined, config.AccessLogJSON} {
			path := filepath.Join(dir, fmt.Sprintf("%v-%s.log", tc.query, format))
			px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    access_log: {path: "`+path+`", format: `+format+`, query: `+strconv.FormatBool(tc.query)+`}
    routes: [{service: app}]
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
`, b))
			do(t, "GET", px.url+"/search?q=shoes&token=s3cret", "", nil)
			px.Close()
			lines := readAccessLog(t, path, format)
			if len(lines) != 1 || lines[0]["path"] != "/search" || lines[0]["query"] != tc.want {
				t.Errorf("query %v, %s: %v", tc.query, format, lines)
			}
			raw, _ := os.ReadFile(path)
			if !tc.query && strings.Contains(string(raw), "s3cret") {
				t.Errorf("query off, but the log holds it: %s", raw)
			}
		}
	}
}

// TestAccessLogClientGone: a client that leaves before the answer is
// logged with 499 and client_canceled. It needs the net_http engine, the
// one that notices a client leaving (abort_on_client_close).
func TestAccessLogClientGone(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "late")
	}))
	defer close(release)
	path := filepath.Join(t.TempDir(), "access.log")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
server: {engine: net_http}
listeners:
  - name: main
    listen: 127.0.0.1:0
    access_log: {path: "`+path+`", format: json}
    routes: [{service: app}]
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    timeouts: {abort_on_client_close: true}
`, slow))
	c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-arrived
	c.Close()
	lines := waitAccessLines(t, path, config.AccessLogJSON, 1)
	checkLogFields(t, "client gone", lines[0], map[string]string{"status": "499", "error": "client_canceled", "bytes_out": "0", "attempts": "1"})
}

// TestAccessLogReload: a reload that changes the path writes the next
// lines to the new file (and closes the old one); one that removes the
// section stops the log; the drop counter exists per listener.
func TestAccessLogReload(t *testing.T) {
	b := newBackend(t, "b")
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	cfg := func(section string) string {
		return renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
`+section+`
    routes: [{service: app}]
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
`, b)
	}
	px := startProxy(t, cfg(`    access_log: {path: "`+first+`"}`))
	do(t, "GET", px.url+"/one", "", nil)
	waitAccessLines(t, first, config.AccessLogCombined, 1)
	reload := func(section string) {
		t.Helper()
		if err := os.WriteFile(px.path, []byte(cfg(section)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := px.ReloadFile(); err != nil {
			t.Fatal(err)
		}
	}
	reload(`    access_log: {path: "` + second + `", format: json}`)
	do(t, "GET", px.url+"/two", "", nil)
	lines := waitAccessLines(t, second, config.AccessLogJSON, 1)
	if lines[0]["path"] != "/two" {
		t.Errorf("after the reload: %v", lines)
	}
	if old := readAccessLog(t, first, config.AccessLogCombined); len(old) != 1 || old[0]["path"] != "/one" {
		t.Errorf("old file: %v", old)
	}
	if v := metric(t, px, `lbsys_access_log_dropped_total{listener="main",reason="queue_full"}`); v != 0 {
		t.Errorf("dropped counter %v, want 0 (and exposed)", v)
	}
	reload("")
	do(t, "GET", px.url+"/three", "", nil)
	px.Close()
	if got := readAccessLog(t, second, config.AccessLogJSON); len(got) != 1 {
		t.Errorf("lines after the log was removed: %v", got)
	}
	if px.sinks != nil {
		t.Errorf("sinks left open after Close: %v", px.sinks)
	}
}

// TestAccessLogReloadFailureChangesNothing: a reload naming a file that
// cannot be opened fails whole and the old file keeps its lines.
func TestAccessLogReloadFailureChangesNothing(t *testing.T) {
	b := newBackend(t, "b")
	dir := t.TempDir()
	good := filepath.Join(dir, "a.log")
	base := `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    access_log: {path: "LOG"}
    routes: [{service: app}]
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
`
	px := startProxy(t, renderConfig(t, strings.Replace(base, "LOG", good, 1), b))
	os.WriteFile(px.path, []byte(renderConfig(t, strings.Replace(base, "LOG", filepath.Join(dir, "missing", "a.log"), 1), b)), 0o600)
	_, err := px.ReloadFile()
	if err == nil || !strings.Contains(err.Error(), "listeners[main].access_log.path") {
		t.Fatalf("reload: %v", err)
	}
	do(t, "GET", px.url+"/after", "", nil)
	if lines := waitAccessLines(t, good, config.AccessLogCombined, 1); lines[0]["path"] != "/after" {
		t.Errorf("%v", lines)
	}
}

// TestAccessLogUpgrade: a WebSocket upgrade is logged with 101 when the
// tunnel closes (the proxy writes the 101 on the hijacked connection, not
// through the response writer).
func TestAccessLogUpgrade(t *testing.T) {
	ws := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}))
	path := filepath.Join(t.TempDir(), "access.log")
	yaml := strings.Replace(baseConfig, "    routes: [{service: app}]", "    access_log: {path: \""+path+"\", format: json}\n    routes: [{service: app}]", 1)
	px := startProxy(t, renderConfig(t, yaml+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, ws))
	c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(c, "hi\n")
	if got, err := br.ReadString('\n'); err != nil || got != "echo hi\n" {
		t.Fatalf("tunnel: %q %v", got, err)
	}
	c.Close()
	lines := waitAccessLines(t, path, config.AccessLogJSON, 1)
	checkLogFields(t, "upgrade", lines[0], map[string]string{"status": "101", "path": "/ws", "attempts": "1", "decision": "pick", "error": "", "bytes_out": "0"})
}

// TestAccessLogDecisions: the decisions the proxy test above does not
// reach: hash affinity, a pick in panic mode, and no eligible endpoint.
func TestAccessLogDecisions(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	path := filepath.Join(t.TempDir(), "access.log")
	px, clk := startProxyClock(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    access_log: {path: "`+path+`", format: json}
    routes:
      - {match: {path_prefix: /hash}, service: hashed}
      - {match: {path_prefix: /panic}, service: panicky}
      - {match: {path_prefix: /down}, service: down}
services:
  - name: hashed
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}]
    affinity: {type: hash, hash: {header: X-User}}
  - name: panicky
    endpoints: [{address: "{{.B0}}"}, {address: "{{.B1}}"}, {address: "{{.B2}}"}]
    health:
      active: {path: /healthz, interval: 10s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
      panic_threshold: 50
  - name: down
    endpoints: [{address: "{{.B2}}"}]
    health:
      active: {path: /healthz, interval: 10s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
      panic_threshold: 0
`, a, b, c))
	a.healthCode.Store(500)
	c.healthCode.Store(500)
	eventually(t, 5*time.Second, "panic mode and the down service down", func() bool {
		clk.Advance(11 * time.Second) // a probe round
		panicking, down := false, false
		for _, s := range status(t, px).Services {
			switch s.Name {
			case "panicky":
				panicking = s.Panic
			case "down":
				down = len(s.Endpoints) == 1 && !s.Endpoints[0].Available
			}
		}
		return panicking && down
	})
	do(t, "GET", px.url+"/hash/1", "", map[string]string{"X-User": "u-17"})
	do(t, "GET", px.url+"/panic/1", "", nil)
	eventually(t, 5*time.Second, "no endpoint for /down", func() bool {
		code, _, _ := do(t, "GET", px.url+"/down/1", "", nil)
		return code == 503
	})
	lines := waitAccessLines(t, path, config.AccessLogJSON, 3)
	checkLogFields(t, "hash", findLine(t, lines, "GET", "/hash/1"), map[string]string{"decision": "hash", "attempts": "1"})
	checkLogFields(t, "panic", findLine(t, lines, "GET", "/panic/1"), map[string]string{"decision": "pick (panic)", "attempts": "1"})
	var down map[string]string
	for _, l := range lines {
		if l["path"] == "/down/1" && l["status"] == "503" {
			down = l
		}
	}
	if down == nil {
		t.Fatalf("no 503 line for /down/1: %v", lines)
	}
	checkLogFields(t, "no endpoint", down, map[string]string{"decision": "no endpoint", "attempts": "0", "error": "no_healthy_upstream", "upstream": ""})
}
