package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"github.com/lbsys/lbsys/internal/proxy/httpfield"
)

// parseSimple parses the most common request, with fewer allocations
// than net/http's reader: a whole header block already buffered in br, an
// HTTP/1.1 request line whose target is a plain origin-form path (and
// query), header fields that are plain name: value lines, and nothing that
// gives net/http's reader more to do (a body, a Pragma, a Connection other
// than keep-alive or close, Expect, a missing or repeated Host...). It
// returns nil, and consumes nothing, for anything else, which readRequest
// then parses. What it returns is what readRequest would return for the same
// bytes (FuzzParseSimple checks that, field by field); maxBytes is the
// header limit, beyond which it leaves the request to readRequest too.
func parseSimple(br *bufio.Reader, maxBytes int64) *http.Request {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, crlf2)
	if end < 0 || int64(end+4) > maxBytes {
		return nil
	}
	// Lines are split at CRLF. A bare CR or LF (which net/http's reader
	// takes as a line end too) is then inside a method, target, version,
	// name or value, whose checks below refuse it.
	s := string(buf[:end+2])
	line, rest, _ := strings.Cut(s, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || method == http.MethodConnect || !httpfield.ValidName(method) {
		return nil
	}
	u := simpleTarget(target)
	if u == nil {
		return nil
	}
	n := strings.Count(rest, "\r\n")
	strs := make([]string, n)
	h := make(http.Header, n)
	host := ""
	closeConn := false
	for i := 0; i < n; i++ {
		var kv string
		kv, rest, _ = strings.Cut(rest, "\r\n")
		k, v, ok := strings.Cut(kv, ":")
		if !ok || !httpfield.ValidName(k) {
			return nil
		}
		v = strings.Trim(v, " \t")
		for j := 0; j < len(v); j++ {
			if c := v[j]; (c < ' ' && c != '\t') || c >= 0x7f {
				return nil
			}
		}
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Host":
			if _, seen := h[k]; seen {
				return nil
			}
			host = v
		case "Connection":
			switch {
			case httpHeaderIs(v, "keep-alive"):
			case httpHeaderIs(v, "close"):
				closeConn = true
			default:
				return nil
			}
			if _, seen := h[k]; seen {
				return nil
			}
		case "Content-Length", "Transfer-Encoding", "Trailer", "Pragma", "Expect":
			return nil
		}
		strs[i] = v
		if vv, seen := h[k]; seen {
			h[k] = append(vv, v)
		} else {
			h[k] = strs[i : i+1 : i+1]
		}
	}
	if _, ok := h["Host"]; !ok {
		return nil
	}
	br.Discard(end + 4)
	return &http.Request{
		Method: method, URL: u, RequestURI: target,
		Proto: proto, ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: host, Close: closeConn, Body: http.NoBody,
	}
}

// pathChars are the bytes of a path that url.ParseRequestURI keeps as
// they are (no RawPath), and queryChars those a raw query may hold.
var pathChars, queryChars = func() (p, q [256]bool) {
	for c := 0x21; c < 0x7f; c++ {
		q[c] = true
	}
	for _, c := range "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/$&+,:;=@" {
		p[c] = true
	}
	return p, q
}()

// simpleTarget returns the URL of an origin-form target whose path needs
// no unescaping, or nil for anything else.
func simpleTarget(t string) *url.URL {
	if len(t) == 0 || t[0] != '/' || strings.HasPrefix(t, "//") {
		return nil
	}
	path, query, hasQuery := strings.Cut(t, "?")
	for i := 0; i < len(path); i++ {
		if !pathChars[path[i]] {
			return nil
		}
	}
	if hasQuery {
		if query == "" {
			return nil // ForceQuery: left to net/url
		}
		for i := 0; i < len(query); i++ {
			if !queryChars[query[i]] {
				return nil
			}
		}
	}
	return &url.URL{Path: path, RawQuery: query}
}
