package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// The proxy's tests run on the default engine (the proxy's own HTTP/1.1
// server). TestNetHTTPEngine runs the client-facing ones again on
// net/http.Server, so both engines keep the same behaviour.
func TestNetHTTPEngine(t *testing.T) {
	testEngine = config.EngineNetHTTP
	defer func() { testEngine = "" }()
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"Routing", TestRouting},
		{"ForwardedHeadersAndHopByHop", TestForwardedHeadersAndHopByHop},
		{"StreamingBothWays", TestStreamingBothWays},
		{"WebSocketUpgradePassesThrough", TestWebSocketUpgradePassesThrough},
		{"ProxyErrorsAreShortAndLabelled", TestProxyErrorsAreShortAndLabelled},
		{"ServerHardening", TestServerHardening},
		{"RetriesRespectIdempotency", TestRetriesRespectIdempotency},
		{"CookieAffinity", TestCookieAffinity},
		{"ReloadUnderLoadLosesNothing", TestReloadUnderLoadLosesNothing},
		{"H1Protocol", TestH1Protocol},
		{"StalledRequestBodyIsCutOff", TestStalledRequestBodyIsCutOff},
		{"HeaderNameSmuggling", TestHeaderNameSmuggling},
		{"UpstreamInvalidFieldsAre502", TestUpstreamInvalidFieldsAre502},
		{"ChunkedRequestClosesConnection", TestChunkedRequestClosesConnection},
		{"AbsoluteFormHost", TestAbsoluteFormHost},
		{"AmbiguousPathsAreRefused", TestAmbiguousPathsAreRefused},
		{"AcceptErrorsBackOffAndServe", TestAcceptErrorsBackOffAndServe},
		{"UnsentBodyDoesNotHoldConnection", TestUnsentBodyDoesNotHoldConnection},
		{"WriteTimeoutCutsStalledReader", TestWriteTimeoutCutsStalledReader},
		{"TunnelOutlivesRequestTimeout", TestTunnelOutlivesRequestTimeout},
		{"ForwardRequestFields", TestForwardRequestFields},
		{"ForwardResponseFields", TestForwardResponseFields},
		{"CutBodyIsNotComplete", TestCutBodyIsNotComplete},
		{"CachedCutBodyIsNotComplete", TestCachedCutBodyIsNotComplete},
		{"UnaskedSwitchIs502", TestUnaskedSwitchIs502},
	} {
		t.Run(tc.name, tc.f)
	}
}

// rawExchange writes raw bytes to the proxy and reads one response.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestH1Protocol checks HTTP/1.1 details the server itself is responsible
// for, on whichever engine is under test.
func TestH1Protocol(t *testing.T) {
	b := newBackend(t, "b")
	echo := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/trailer" {
			// An announced trailer and one set after the body.
			w.Header().Set("Trailer", "X-Checksum")
			w.WriteHeader(200)
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Checksum", "abc")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
			return
		}
		if r.URL.Path == "/nolen" {
			// No Content-Length: the proxy must frame it (chunked).
			w.(http.Flusher).Flush()
		}
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
	}))
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {match: {path_prefix: /echo}, service: echo}
      - {match: {path_prefix: /nolen}, service: echo}
      - {match: {path_prefix: /trailer}, service: echo}
      - {service: app}
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
  - {name: echo, endpoints: [{address: "{{.B1}}"}]}
`, b, echo))
	addr := strings.TrimPrefix(px.url, "http://")

	// Pipelined keep-alive requests are answered in order.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"b GET /one", "b GET /two"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != want {
			t.Fatalf("pipelined: got %q want %q", body, want)
		}
	}
	c.Close()

	cases := []struct {
		name, raw  string
		wantStatus int
		wantBody   string
		check      func(*http.Response) string
	}{
		{"HEAD has headers, no body", "HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "", nil},
		{"HTTP/1.0 is closed after the answer", "GET /x HTTP/1.0\r\n\r\n", 200, "b GET /x", func(r *http.Response) string {
			if !r.Close {
				return "HTTP/1.0 response should close"
			}
			return ""
		}},
		{"missing Host on 1.1 is 400", "GET /x HTTP/1.1\r\n\r\n", 400, "", nil},
		{"malformed request line is 400", "GARBAGE\r\n\r\n", 400, "", nil},
		{"bad header line is 400", "GET /x HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "", nil},
		{"chunked request body arrives whole", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 200, "POST /echo 11", nil},
		{"conflicting lengths are refused", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "", nil},
		{"unlengthed answer is chunked", "GET /nolen HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "GET /nolen 0", func(r *http.Response) string {
			if len(r.TransferEncoding) == 0 && r.ContentLength < 0 && !r.Close {
				return "no framing"
			}
			return ""
		}},
		{"response trailers reach the client", "GET /trailer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "body", func(r *http.Response) string {
			if got := r.Trailer.Get("X-Checksum"); got != "abc" {
				return fmt.Sprintf("announced trailer X-Checksum = %q, want abc (trailers %v)", got, r.Trailer)
			}
			if got := r.Trailer.Get("X-Late"); got != "late" {
				return fmt.Sprintf("unannounced trailer X-Late = %q, want late (trailers %v)", got, r.Trailer)
			}
			return ""
		}},
	}
	for _, tc := range cases {
		resp, body := rawExchange(t, addr, tc.raw)
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("%s: status %d, want %d (body %q)", tc.name, resp.StatusCode, tc.wantStatus, body)
			continue
		}
		if tc.wantBody != "" && body != tc.wantBody {
			t.Errorf("%s: body %q, want %q", tc.name, body, tc.wantBody)
		}
		if tc.check != nil {
			if msg := tc.check(resp); msg != "" {
				t.Errorf("%s: %s", tc.name, msg)
			}
		}
	}

	// Expect: 100-continue: the client waits for 100 before sending.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c2, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br2 := bufio.NewReader(c2)
	line, err := br2.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("expected 100 Continue first, got %q %v", line, err)
	}
	br2.ReadString('\n') // blank line after the 100
	io.WriteString(c2, "hello")
	resp, err := http.ReadResponse(br2, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "POST /echo 5" {
		t.Fatalf("after 100-continue: %d %q", resp.StatusCode, body)
	}
}

// TestStalledRequestBodyIsCutOff: a client that announces a body and stops
// sending it gets 408 within the request timeout instead of holding the
// exchange (and an upstream connection) forever, and the backend never
// sees a complete request.
func TestStalledRequestBodyIsCutOff(t *testing.T) {
	var complete atomic.Int64
	b := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if body, err := io.ReadAll(r.Body); err == nil && len(body) == 100 {
			complete.Add(1)
		}
	}))
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    timeouts: {request: 500ms}
`, b))
	addr := strings.TrimPrefix(px.url, "http://")
	for _, method := range []string{"POST", "PUT"} { // streamed, and buffered for replay
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		io.WriteString(c, method+" / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			t.Fatalf("%s: no answer to a stalled body: %v", method, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("X-Lbsys-Error") != "request_body_timeout" {
			t.Errorf("%s: stalled body: %d %q, want 408 request_body_timeout", method, resp.StatusCode, resp.Header.Get("X-Lbsys-Error"))
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("%s: answered after %v, want about the 500ms request timeout", method, el)
		}
	}
	if n := complete.Load(); n != 0 {
		t.Errorf("the backend saw %d complete requests", n)
	}
	// A body that arrives in time still goes through.
	if status, body, _ := do(t, "POST", px.url+"/", strings.Repeat("x", 100), nil); status != 200 {
		t.Errorf("prompt body: %d %q", status, body)
	}
	if complete.Load() != 1 {
		t.Errorf("the prompt body did not reach the backend whole")
	}
}
