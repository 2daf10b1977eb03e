package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"

	"github.com/lbsys/lbsys/internal/proxy/httpfield"
)

// readSimpleResponse parses the common endpoint answer without
// http.ReadResponse's generality: an HTTP/1.1 final response (status 200
// to 999 but 204 and 304) to a request other than HEAD or CONNECT, whose header block
// is already wholly buffered, has CRLF line endings, only token field
// names and values without control characters, no continuation lines, one
// Content-Length of plain digits, and no Transfer-Encoding, Trailer,
// Connection or Pragma field. For such a response net/http's parser
// makes exactly what this makes (same Status, header map, values trimmed
// of blanks, fixed-length body ending in io.ErrUnexpectedEOF when cut
// short); for anything else it returns ok false having consumed nothing,
// and the caller uses http.ReadResponse. It waits (reads) only for the
// first bytes: a header block that is not all there takes the general
// path.
//
// What it saves is allocation and copying: the header block becomes one
// string whose substrings are the field names and values, instead of a
// string per line and per value, a transfer reader and two body wrappers.
func readSimpleResponse(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	if req.Method == http.MethodHead || req.Method == http.MethodConnect {
		return nil, false
	}
	if _, err := br.Peek(1); err != nil {
		return nil, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 || !bytes.HasPrefix(buf, http11) {
		return nil, false
	}
	block := string(buf[:end+2]) // each line with its CRLF
	line, rest, _ := strings.Cut(block, "\r\n")
	status := strings.TrimLeft(line[len("HTTP/1.1 "):], " ")
	if len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return nil, false
	}
	code := 0
	for i := 0; i < 3; i++ {
		c := status[i]
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified || !httpfield.ValidValue(status) {
		return nil, false
	}
	n := strings.Count(rest, "\r\n")
	strs := make([]string, n)
	h := make(http.Header, n)
	cl := int64(-1)
	for i := 0; rest != ""; i++ {
		line, rest, _ = strings.Cut(rest, "\r\n")
		k, v, ok := strings.Cut(line, ":")
		if !ok || !httpfield.ValidName(k) || strings.IndexByte(line, '\n') >= 0 {
			return nil, false
		}
		v = strings.Trim(v, " \t")
		if !httpfield.ValidValue(v) {
			return nil, false
		}
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Transfer-Encoding", "Trailer", "Connection", "Pragma":
			return nil, false
		case "Content-Length":
			if cl >= 0 || v == "" || len(v) > 18 {
				return nil, false
			}
			cl = 0
			for j := 0; j < len(v); j++ {
				if v[j] < '0' || v[j] > '9' {
					return nil, false
				}
				cl = cl*10 + int64(v[j]-'0')
			}
		}
		strs[i] = v
		if vv, ok := h[k]; ok {
			h[k] = append(vv, v)
		} else {
			h[k] = strs[i : i+1 : i+1]
		}
	}
	if cl < 0 {
		return nil, false
	}
	br.Discard(end + 4)
	resp := &http.Response{
		Status: status, StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: cl, Request: req, Body: http.NoBody,
	}
	if cl > 0 {
		resp.Body = &fixedBody{r: br, n: cl}
	}
	return resp, true
}

var (
	http11 = []byte("HTTP/1.1 ")
	crlf2  = []byte("\r\n\r\n")
)

// fixedBody is a response body of known length read from the connection:
// io.EOF with its last bytes, io.ErrUnexpectedEOF when the connection ends
// first (as net/http's body reader).
type fixedBody struct {
	r *bufio.Reader
	n int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err == nil && b.n == 0 {
		err = io.EOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }
