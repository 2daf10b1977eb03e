package h1

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// parseBoth parses in with parseSimple and with net/http's reader, each
// from its own buffered reader holding all of in, and returns both
// requests (nil where a parser declined or failed) and how many bytes each
// left buffered.
func parseBoth(t *testing.T, in string) (fast, slow *http.Request, fastLeft, slowLeft int) {
	t.Helper()
	size := max(len(in), 16)
	br := bufio.NewReaderSize(strings.NewReader(in), size)
	br.Peek(len(in))
	fast = parseSimple(br, int64(size)+1)
	fastLeft = br.Buffered()
	br2 := bufio.NewReaderSize(strings.NewReader(in), size)
	br2.Peek(len(in))
	slow, err := readRequest(br2)
	if err != nil {
		slow = nil
	}
	slowLeft = br2.Buffered()
	return
}

// TestParseSimple: the fast path takes the requests it is meant for (what
// browsers, load generators and health checkers send) and declines the
// rest without consuming anything; what it takes equals net/http's parse.
func TestParseSimple(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		fast bool
	}{
		{"minimal", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"browser", "GET /catalog/items?page=2&sort=price HTTP/1.1\r\nHost: shop.example:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nCookie: a=1; b=2\r\n\r\n", true},
		{"pipelined", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"lowercase names", "HEAD /h HTTP/1.1\r\nhost: x\r\nx-request-id: 7\r\nx-request-id: 8\r\n\r\n", true},
		{"odd names", "GET / HTTP/1.1\r\nHost: x\r\nx_under: 1\r\nX-1a: 2\r\nACCEPT: */*\r\nx-CamelCase-: 3\r\n!#$%&'*+-.^_`|~: 4\r\n\r\n", true},
		{"lowercase length", "GET / HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n", false},
		{"close", "DELETE /d HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", true},
		{"blank values", "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Tabs: \t v \t\r\n\r\n", true},
		{"escaped path", "GET /a%20b HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"empty query", "GET /a? HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"absolute form", "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"connect", "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", false},
		{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", false},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		{"no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", false},
		{"pragma", "GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", false},
		{"expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false},
		{"connection upgrade", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", false},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", false},
		{"folded line", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", false},
		{"bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n", false},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", false},
		{"obs-text", "GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xc3\xa9\r\n\r\n", false},
		{"partial", "GET / HTTP/1.1\r\nHost: x\r\n", false},
		{"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast, slow, fastLeft, slowLeft := parseBoth(t, tc.in)
			if (fast != nil) != tc.fast {
				t.Fatalf("fast path took it: %v, want %v", fast != nil, tc.fast)
			}
			if fast == nil {
				if fastLeft != len(tc.in) {
					t.Fatalf("declined but consumed %d bytes", len(tc.in)-fastLeft)
				}
				return
			}
			if !reflect.DeepEqual(fast, slow) || fastLeft != slowLeft {
				t.Fatalf("fast path differs from net/http's reader:\nfast %+v (left %d)\nslow %+v (left %d)", fast, fastLeft, slow, slowLeft)
			}
		})
	}
}

// FuzzParseSimple: whatever the input, a request the fast path takes is
// exactly what net/http's reader returns for it, and leaves the same bytes
// for the next request.
func FuzzParseSimple(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a/b;c=d?e=f&g=%41 HTTP/1.1\r\nHost: x:1\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\n\r\nNEXT",
		"PURGE /p HTTP/1.1\r\nhost:x\r\nAccept:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: keep-alive\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fast, slow, fastLeft, slowLeft := parseBoth(t, string(in))
		if fast == nil {
			if fastLeft != len(in) {
				t.Fatalf("declined %q but consumed %d bytes", in, len(in)-fastLeft)
			}
			return
		}
		if slow == nil {
			t.Fatalf("fast path took %q, which net/http's reader refuses", in)
		}
		if !reflect.DeepEqual(fast, slow) || fastLeft != slowLeft {
			t.Fatalf("input %q:\nfast %+v (left %d)\nslow %+v (left %d)", in, fast, fastLeft, slow, slowLeft)
		}
	})
}
