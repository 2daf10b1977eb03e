package upstream

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// compareWithNetHTTP parses in with readSimpleResponse and with
// http.ReadResponse: when the fast path takes it, both must agree on every
// field the proxy reads and on the body (bytes and final error); when it
// does not, it must have consumed nothing.
func compareWithNetHTTP(t *testing.T, in, method string) (took bool) {
	t.Helper()
	req := &http.Request{Method: method}
	br := bufio.NewReaderSize(strings.NewReader(in), 16<<10)
	got, ok := readSimpleResponse(br, req)
	if !ok {
		ref, err := http.ReadResponse(br, req) // must see the whole input
		want, werr := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), req)
		if (err == nil) != (werr == nil) || (err == nil && ref.StatusCode != want.StatusCode) {
			t.Fatalf("%q: declined, but consumed input (%v / %v)", in, err, werr)
		}
		return false
	}
	want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), req)
	if err != nil {
		t.Fatalf("%q: fast path took a response net/http refuses: %v", in, err)
	}
	if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.ContentLength != want.ContentLength ||
		got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) || len(got.TransferEncoding) != 0 || want.Trailer != nil {
		t.Fatalf("%q: differs from net/http:\nfast: %+v\nnet/http: %+v", in, got, want)
	}
	gb, gerr := io.ReadAll(got.Body)
	wb, werr := io.ReadAll(want.Body)
	if string(gb) != string(wb) || gerr != werr {
		t.Fatalf("%q: body %q, %v; net/http %q, %v", in, gb, gerr, wb, werr)
	}
	return true
}

func TestReadSimpleResponse(t *testing.T) {
	for _, tc := range []struct {
		in     string
		method string
		take   bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", "GET", true},
		{"HTTP/1.1 200 OK\r\ncontent-length:  3 \r\nx-a: 1\r\nX-A:2\r\nx-empty:\r\n\r\nabcEXTRA", "GET", true},
		{"HTTP/1.1  404 Not Found\r\nContent-Length: 0\r\n\r\n", "POST", true},
		{"HTTP/1.1 200\r\nContent-Length: 00010\r\n\r\n0123456789", "GET", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "GET", true}, // cut short: ErrUnexpectedEOF
		{"HTTP/1.1 599 Weird Reason é\r\nContent-Length: 1\r\nSet-Cookie: a=b\r\nSet-Cookie: c=d\r\n\r\nx", "GET", true},
		// declined: the general parser decides
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "HEAD", false},
		{"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"HTTP/1.1 304 Not Modified\r\n\r\n", "GET", false},
		{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nX: a\nb\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "GET", false}, // header block not all there
		{"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\nX: \x01\r\nContent-Length: 2\r\n\r\nhi", "GET", false},
		{"HTTP/1.1 200 OK\r\n\r\nbody until close", "GET", false},
	} {
		if took := compareWithNetHTTP(t, tc.in, tc.method); took != tc.take {
			t.Errorf("%q (%s): fast path took it: %v, want %v", tc.in, tc.method, took, tc.take)
		}
	}
}

// FuzzReadSimpleResponse: whatever the fast path takes, net/http reads the
// same way.
func FuzzReadSimpleResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nA: b\r\n\r\nhello")
	f.Add("HTTP/1.1 200 OK\r\ncontent-length:  3 \r\nx-a: 1\r\nX-A:2\r\n\r\nabc")
	f.Fuzz(func(t *testing.T, in string) {
		compareWithNetHTTP(t, in, "GET")
	})
}
