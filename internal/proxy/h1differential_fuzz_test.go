package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy/httpfield"
)

// FuzzH1Differential runs the same bytes through two proxies on loopback,
// one on the lbsys engine and one on net/http.Server, each in front of a
// recording backend with a strict parser of its own. The lbsys engine must
// accept and frame every input as net/http.Server does, or be stricter:
// the requests it forwards are a prefix of those net/http forwards, equal
// in method, target, host, framing and body. And whatever either forwards
// must be canonical: every field name a token, every value free of control
// characters, exactly one of Content-Length and chunked (or neither), a
// body exactly as long as its framing says.
func FuzzH1Differential(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 27\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\n\r\n",
		"GET http://x/abs HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://x/abs HTTP/1.1\r\n\r\n",
		"GET http://x/abs HTTP/1.1\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x y\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
		"GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\n\n",
		"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	d := newDifferential(f)
	f.Fuzz(func(t *testing.T, in []byte) { d.check(t, in) })
}

// differential is the pair of proxies FuzzH1Differential compares.
type differential struct {
	recs  [2]*framingRecorder // lbsys, net_http
	addrs [2]string
}

func newDifferential(tb testing.TB) *differential {
	d := &differential{recs: [2]*framingRecorder{newFramingRecorder(tb), newFramingRecorder(tb)}}
	for i, engine := range []string{config.EngineLbsys, config.EngineNetHTTP} {
		px := startProxy(tb, fmt.Sprintf(`
admin: {listen: 127.0.0.1:0}
server: {engine: %s, read_header_timeout: 2s, max_request_body_bytes: 64KiB}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - name: app
    endpoints: [{address: "%s"}]
    retries: {attempts: 0}
    health: {outlier: {disabled: true}}
    timeouts: {request: 3s}
`, engine, d.recs[i].addr))
		d.addrs[i] = strings.TrimPrefix(px.url, "http://")
	}
	return d
}

// check sends in to both proxies and compares what reached the backends;
// it returns the requests the lbsys engine and net/http forwarded.
func (d *differential) check(t *testing.T, in []byte) (own, ref []framing) {
	var got [2][]framing
	for i := range d.addrs {
		d.recs[i].reset()
		exchangeAll(t, d.addrs[i], in)
		got[i] = d.recs[i].take()
		for _, fr := range got[i] {
			if fr.problem != "" {
				t.Fatalf("engine %d forwarded a non-canonical request (%s) for input %q", i, fr.problem, in)
			}
		}
	}
	own, ref = got[0], got[1]
	if len(own) > len(ref) {
		t.Fatalf("the lbsys engine forwarded %d requests where net/http forwarded %d, for input %q:\nlbsys: %+v\nnet/http: %+v", len(own), len(ref), in, own, ref)
	}
	for i := range own {
		if !own[i].same(ref[i]) {
			t.Fatalf("request %d framed differently for input %q:\nlbsys:    %+v\nnet/http: %+v", i, in, own[i], ref[i])
		}
	}
	return own, ref
}

// TestDifferentialHarness shows the harness sees what it must: requests
// both engines forward, and those only net/http forwards.
func TestDifferentialHarness(t *testing.T) {
	d := newDifferential(t)
	for _, tc := range []struct {
		in            string
		wantOwn, want int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, 1},
		{"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 2, 2},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 1, 1},
		{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 0, 0},
		{"GET http://x/ HTTP/1.1\r\nHost: y\r\n\r\n", 0, 1},
	} {
		own, ref := d.check(t, []byte(tc.in))
		if len(own) != tc.wantOwn || len(ref) != tc.want {
			t.Errorf("%q: forwarded %d (lbsys) and %d (net/http), want %d and %d", tc.in, len(own), len(ref), tc.wantOwn, tc.want)
		}
	}
}

// exchangeAll writes in, half-closes, and reads until the proxy closes the
// connection (a stuck proxy fails the test after 5s).
func exchangeAll(t *testing.T, addr string, in []byte) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(io.Discard, c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the proxy at %s neither answered nor closed for input %q", addr, in)
		}
	}
}

// framing is one request as a backend received it.
type framing struct {
	method, target, host string
	kind                 string // "length", "chunked" or "none"
	body                 string
	problem              string // why it is not canonical; "" if it is
}

func (a framing) same(b framing) bool {
	return a.method == b.method && a.target == b.target && a.host == b.host && a.kind == b.kind && a.body == b.body
}

// framingRecorder is a backend that parses strictly what the proxy sends
// and records it; it answers every complete request with a short 200.
type framingRecorder struct {
	addr string
	mu   sync.Mutex
	got  []framing
}

func newFramingRecorder(tb testing.TB) *framingRecorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &framingRecorder{addr: ln.Addr().String()}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	return r
}

func (r *framingRecorder) reset() {
	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
}

func (r *framingRecorder) take() []framing {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]framing(nil), r.got...)
}

func (r *framingRecorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		fr, ok := readFraming(br)
		if !ok {
			return // incomplete: the proxy gave up on it, nothing to record
		}
		r.mu.Lock()
		r.got = append(r.got, fr)
		r.mu.Unlock()
		if fr.problem != "" {
			return // the stream can no longer be trusted
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

// readFraming parses one request by RFC 9112 with no leniency at all.
func readFraming(br *bufio.Reader) (framing, bool) {
	var fr framing
	bad := func(format string, args ...any) {
		if fr.problem == "" {
			fr.problem = fmt.Sprintf(format, args...)
		}
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return fr, false
	}
	if !strings.HasSuffix(line, "\r\n") {
		bad("request line without CRLF: %q", line)
		return fr, true
	}
	parts := strings.Split(strings.TrimSuffix(line, "\r\n"), " ")
	if len(parts) != 3 || parts[2] != "HTTP/1.1" || !httpfield.ValidName(parts[0]) || parts[1] == "" {
		bad("request line %q", line)
		return fr, true
	}
	for _, c := range []byte(parts[1]) {
		// Raw bytes above 0x7f (UTF-8 in a query) are not RFC 3986, but
		// both engines pass them on and they cannot end a line or a
		// field; spaces and controls could.
		if c <= ' ' || c == 0x7f {
			bad("request target %q", parts[1])
		}
	}
	if t := parts[1]; !strings.HasPrefix(t, "/") && t != "*" {
		bad("request target %q is not in origin form", t)
	}
	fr.method, fr.target = parts[0], parts[1]
	var lengths, codings, hosts []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fr, false
		}
		if line == "\r\n" {
			break
		}
		if !strings.HasSuffix(line, "\r\n") {
			bad("header line without CRLF: %q", line)
			return fr, true
		}
		name, value, ok := strings.Cut(strings.TrimSuffix(line, "\r\n"), ":")
		switch {
		case !ok:
			bad("header line without a colon: %q", line)
		case !httpfield.ValidName(name):
			bad("header name %q", name)
		case !httpfield.ValidValue(value):
			bad("header value %q", value)
		}
		value = strings.Trim(value, " \t")
		switch strings.ToLower(name) {
		case "content-length":
			lengths = append(lengths, value)
		case "transfer-encoding":
			codings = append(codings, value)
		case "host":
			hosts = append(hosts, value)
		}
	}
	if len(hosts) != 1 {
		bad("%d Host fields", len(hosts))
	} else {
		fr.host = hosts[0]
	}
	switch {
	case len(lengths) > 0 && len(codings) > 0:
		bad("both Content-Length %q and Transfer-Encoding %q", lengths, codings)
	case len(lengths) > 1:
		bad("%d Content-Length fields", len(lengths))
	case len(codings) > 1 || (len(codings) == 1 && codings[0] != "chunked"):
		bad("Transfer-Encoding %q", codings)
	}
	if fr.problem != "" {
		return fr, true
	}
	var body []byte
	switch {
	case len(lengths) == 1:
		fr.kind = "length"
		n, err := strconv.ParseUint(lengths[0], 10, 31)
		if err != nil || (len(lengths[0]) > 1 && lengths[0][0] == '0') {
			bad("Content-Length %q", lengths[0])
			return fr, true
		}
		body = make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return fr, false
		}
	case len(codings) == 1:
		fr.kind = "chunked"
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return fr, false
			}
			size, err := strconv.ParseUint(strings.TrimSuffix(line, "\r\n"), 16, 31)
			if err != nil || !strings.HasSuffix(line, "\r\n") {
				bad("chunk size line %q", line)
				return fr, true
			}
			if size == 0 {
				break
			}
			chunk := make([]byte, size+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return fr, false
			}
			if string(chunk[size:]) != "\r\n" {
				bad("chunk not ended by CRLF")
				return fr, true
			}
			body = append(body, chunk[:size]...)
		}
		for { // trailer section
			line, err := br.ReadString('\n')
			if err != nil {
				return fr, false
			}
			if line == "\r\n" {
				break
			}
			name, value, ok := strings.Cut(strings.TrimSuffix(line, "\r\n"), ":")
			if !ok || !httpfield.ValidName(name) || !httpfield.ValidValue(value) || !strings.HasSuffix(line, "\r\n") {
				bad("trailer line %q", line)
				return fr, true
			}
		}
	default:
		fr.kind = "none"
	}
	fr.body = string(body)
	return fr, true
}
