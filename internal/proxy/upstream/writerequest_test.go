package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lbsys/lbsys/internal/proxy/httpfield"
)

// TestWriteRequestRefusesInvalidFields: the upstream writer checks every
// name and value before writing anything, whatever put them there.
func TestWriteRequestRefusesInvalidFields(t *testing.T) {
	base := func() *http.Request {
		return &http.Request{Method: "GET", URL: &url.URL{Path: "/x"}, Host: "h", Header: http.Header{"Accept": {"*/*"}}}
	}
	cases := []struct {
		name string
		mod  func(*http.Request)
	}{
		{"name with a space", func(r *http.Request) { r.Header["Transfer-Encoding "] = []string{"chunked"} }},
		{"name with a colon", func(r *http.Request) { r.Header["A:b"] = []string{"c"} }},
		{"value with CRLF", func(r *http.Request) { r.Header.Set("X-A", "1\r\nContent-Length: 5") }},
		{"value with NUL", func(r *http.Request) { r.Header.Set("X-A", "1\x00") }},
		{"value with LF", func(r *http.Request) { r.Header.Set("X-A", "1\nX: y") }},
		{"host with CRLF", func(r *http.Request) { r.Host = "h\r\nX: y" }},
		{"method with a space", func(r *http.Request) { r.Method = "GET /evil" }},
		{"query with CRLF", func(r *http.Request) { r.URL.RawQuery = "a\r\nX: y" }},
	}
	for _, tc := range cases {
		req := base()
		tc.mod(req)
		var buf bytes.Buffer
		bw := bufio.NewWriter(&buf)
		err := writeRequest(bw, req)
		bw.Flush()
		var fe *httpfield.Error
		if !errors.As(err, &fe) {
			t.Errorf("%s: err %v, want a field error", tc.name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %q before refusing", tc.name, buf.String())
		}
	}
	// Client framing headers never pass; the writer frames itself.
	req := base()
	req.Method = "POST"
	req.ContentLength = 3
	req.Body = io.NopCloser(strings.NewReader("abc"))
	req.Header["Transfer-Encoding"] = []string{"chunked"}
	req.Header["Content-Length"] = []string{"99"}
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := writeRequest(bw, req); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); strings.Count(got, "Content-Length") != 1 || !strings.Contains(got, "Content-Length: 3\r\n") || strings.Contains(got, "chunked") {
		t.Errorf("framing: %q", got)
	}
	// A chunked body with trailers: valid ones are announced and sent,
	// framing and invalid ones are not.
	req = base()
	req.Method = "POST"
	req.ContentLength = -1
	req.Body = io.NopCloser(strings.NewReader("hello"))
	req.Trailer = http.Header{"X-Sum": {"1"}, "Bad Name": {"2"}, "Content-Length": {"7"}}
	buf.Reset()
	bw = bufio.NewWriter(&buf)
	if err := writeRequest(bw, req); err != nil {
		t.Fatal(err)
	}
	parsed, err := http.ReadRequest(bufio.NewReader(strings.NewReader(buf.String())))
	if err != nil {
		t.Fatalf("chunked request does not parse: %v\n%q", err, buf.String())
	}
	body, _ := io.ReadAll(parsed.Body)
	if string(body) != "hello" || parsed.Trailer.Get("X-Sum") != "1" || len(parsed.Trailer) != 1 {
		t.Errorf("chunked: body %q trailer %v\n%q", body, parsed.Trailer, buf.String())
	}
}
