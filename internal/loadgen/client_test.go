package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawRequest is a request as a raw test server read it.
type rawRequest struct {
	line    string
	headers map[string]string // lower-case names
	body    []byte
}

// readRawRequest reads one HTTP/1.1 request (Content-Length bodies only).
func readRawRequest(br *bufio.Reader) (*rawRequest, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	r := &rawRequest{line: strings.TrimRight(line, "\r\n"), headers: map[string]string{}}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, _ := strings.Cut(l, ":")
		r.headers[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	if cl := r.headers["content-length"]; cl != "" {
		n, _ := strconv.Atoi(cl)
		r.body = make([]byte, n)
		if _, err := io.ReadFull(br, r.body); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// rawServer serves each connection with handle on 127.0.0.1 and returns
// its address and a counter of accepted connections.
func rawServer(t testing.TB, handle func(c net.Conn, br *bufio.Reader)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), &accepted
}

// scripted answers every request on a connection with the next of resps
// (cycling), and hands the requests to got.
func scripted(got chan<- *rawRequest, resps ...string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			r, err := readRawRequest(br)
			if err != nil {
				return
			}
			if got != nil {
				got <- r
			}
			resp := resps[i%len(resps)]
			if resp == "" { // hang up without answering
				return
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	}
}

func doOnce(c *Client, req *Request, timeout time.Duration) (Response, error) {
	var resp Response
	now := time.Now()
	err := c.Do(req, now, now.Add(timeout), &resp)
	return resp, err
}

func TestClientParsesResponses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resp       string
		status     int
		body       int64
		cookies    []string
		reused     bool // a second request reuses the connection
		wantKind   ErrorKind
		head, post bool
	}{
		{name: "content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", status: 200, body: 5, reused: true},
		{name: "chunked with extension and trailer", resp: "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n", status: 201, body: 9, reused: true},
		{name: "set-cookie", resp: "HTTP/1.1 200 OK\r\nset-cookie: shop_session=abc123; Path=/; HttpOnly\r\nSet-Cookie: other=1\r\nContent-Length: 0\r\n\r\n", status: 200, cookies: []string{"shop_session=abc123", "other=1"}, reused: true},
		{name: "connection close", resp: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", status: 200, body: 2},
		{name: "http/1.0", resp: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: 2},
		{name: "http/1.0 keep-alive", resp: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", status: 200, body: 2, reused: true},
		{name: "interim 100 then 200", resp: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, body: 1, reused: true},
		{name: "204 has no body", resp: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, reused: true},
		{name: "head has no body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", status: 200, reused: true, head: true},
		{name: "503", resp: "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy", status: 503, body: 4, reused: true, post: true},
		{name: "bad status line", resp: "HTTP/1.1 OK\r\n\r\n", wantKind: KindReset},
		{name: "bad content-length", resp: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantKind: KindReset},
		{name: "bad chunk size", resp: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantKind: KindReset},
		{name: "truncated body", resp: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", wantKind: KindTimeout},
		{name: "header line too long", resp: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", wantKind: KindReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, accepted := rawServer(t, scripted(nil, tc.resp))
			c := NewClient(addr, "shop.test", 4)
			defer c.Close()
			req := &Request{Method: "GET", Path: "/x"}
			if tc.head {
				req.Method = "HEAD"
			}
			if tc.post {
				req = &Request{Method: "POST", Path: "/checkout", IdempotencyKey: "k1"}
			}
			resp, err := doOnce(c, req, 300*time.Millisecond)
			if tc.wantKind != KindNone {
				if KindOf(err) != tc.wantKind {
					t.Fatalf("err %v (kind %v), want kind %v", err, KindOf(err), tc.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || resp.BodyBytes != tc.body {
				t.Fatalf("status %d body %d, want %d %d", resp.Status, resp.BodyBytes, tc.status, tc.body)
			}
			if strings.Join(resp.Cookies, "|") != strings.Join(tc.cookies, "|") {
				t.Fatalf("cookies %q, want %q", resp.Cookies, tc.cookies)
			}
			if _, err := doOnce(c, req, time.Second); err != nil {
				t.Fatal(err)
			}
			want := int64(2)
			if tc.reused {
				want = 1
			}
			if got := accepted.Load(); got != want {
				t.Fatalf("%d connections for 2 requests, want %d", got, want)
			}
		})
	}
}

func TestClientRequestWireFormat(t *testing.T) {
	got := make(chan *rawRequest, 2)
	addr, _ := rawServer(t, scripted(got, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	c := NewClient(addr, "127.0.0.1:8080", 4)
	defer c.Close()
	body := []byte(`{"product_id":"p0001","qty":1}`)
	if _, err := doOnce(c, &Request{Method: "POST", Path: "/cart/items", Body: body, Cookie: "shop_session=s1"}, time.Second); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.line != "POST /cart/items HTTP/1.1" || r.headers["host"] != "127.0.0.1:8080" || r.headers["cookie"] != "shop_session=s1" ||
		r.headers["content-type"] != "application/json" || !bytes.Equal(r.body, body) || r.headers["idempotency-key"] != "" {
		t.Fatalf("request %+v body %q", r, r.body)
	}
	if _, err := doOnce(c, &Request{Method: "POST", Path: "/checkout", IdempotencyKey: "lg-1-7"}, time.Second); err != nil {
		t.Fatal(err)
	}
	r = <-got
	if r.headers["idempotency-key"] != "lg-1-7" || r.headers["content-length"] != "0" || r.headers["cookie"] != "" {
		t.Fatalf("checkout request %+v", r)
	}
}

func TestClientErrorKinds(t *testing.T) {
	// Connect: a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	c := NewClient(dead, "x", 1)
	if _, err := doOnce(c, &Request{Method: "GET", Path: "/"}, time.Second); KindOf(err) != KindConnect {
		t.Fatalf("refused: %v", err)
	}

	// Timeout: a server that reads and never answers.
	hang := make(chan struct{})
	defer close(hang)
	addr, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		<-hang
	})
	c = NewClient(addr, "x", 1)
	start := time.Now()
	if _, err := doOnce(c, &Request{Method: "GET", Path: "/"}, 100*time.Millisecond); KindOf(err) != KindTimeout {
		t.Fatalf("hang: %v", err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("timed out early after %v", el)
	}

	// Reset: the server hangs up without answering (fresh connection, so
	// no retry).
	addr, _ = rawServer(t, scripted(nil, ""))
	c = NewClient(addr, "x", 1)
	if _, err := doOnce(c, &Request{Method: "GET", Path: "/"}, time.Second); KindOf(err) != KindReset {
		t.Fatalf("hang-up: %v", err)
	}

	// Unfinished: Close cuts a request in flight.
	addr, _ = rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		<-hang
	})
	c = NewClient(addr, "x", 1)
	errc := make(chan error, 1)
	go func() {
		_, err := doOnce(c, &Request{Method: "GET", Path: "/"}, 10*time.Second)
		errc <- err
	}()
	for c.Conns() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if err := <-errc; KindOf(err) != KindUnfinished {
		t.Fatalf("closed: %v", err)
	}
	if _, err := doOnce(c, &Request{Method: "GET", Path: "/"}, time.Second); KindOf(err) != KindUnfinished {
		t.Fatalf("after close: %v", err)
	}
}

// A keep-alive connection the server closed while idle: a request that is
// safe to repeat goes again on a new connection; a POST without a key
// does not (it might have been processed).
func TestClientStaleConnection(t *testing.T) {
	// The server answers one request per connection, then closes it
	// without saying so.
	var got atomic.Int64
	addr, accepted := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err != nil {
			return
		}
		got.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	c := NewClient(addr, "x", 4)
	defer c.Close()
	for i, tc := range []struct {
		req  Request
		kind ErrorKind
	}{
		{Request{Method: "GET", Path: "/a"}, KindNone},
		{Request{Method: "GET", Path: "/b"}, KindNone},                                // stale: retried
		{Request{Method: "POST", Path: "/checkout", IdempotencyKey: "k"}, KindNone},   // stale, keyed: retried
		{Request{Method: "POST", Path: "/cart/items", Body: []byte("{}")}, KindReset}, // stale, unkeyed: not retried
		{Request{Method: "POST", Path: "/cart/items", Body: []byte("{}")}, KindNone},  // fresh connection
		{Request{Method: "GET", Path: "/c"}, KindNone},                                // stale: retried
	} {
		if i > 0 {
			// Let the server's close reach us, so the stale case is real.
			time.Sleep(10 * time.Millisecond)
		}
		_, err := doOnce(c, &tc.req, time.Second)
		if KindOf(err) != tc.kind {
			t.Fatalf("request %d (%s %s): %v, want kind %v", i, tc.req.Method, tc.req.Path, err, tc.kind)
		}
	}
	if got.Load() != 5 || accepted.Load() != 5 {
		t.Fatalf("server saw %d requests on %d connections", got.Load(), accepted.Load())
	}
}

// FuzzReadResponse: no response bytes make the parser panic or loop.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), false)
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\n"), false)
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 204 x\r\nSet-Cookie: a=b; c\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		var resp Response
		keep, err := readResponse(bufio.NewReaderSize(bytes.NewReader(data), 4096), head, &resp)
		if err == nil && (resp.Status < 100 || resp.Status > 999) {
			t.Fatalf("accepted status %d", resp.Status)
		}
		if err != nil && keep {
			t.Fatal("keep-alive after an error")
		}
		if resp.BodyBytes < 0 || resp.BodyBytes > int64(len(data)) {
			t.Fatalf("body %d of %d input bytes", resp.BodyBytes, len(data))
		}
	})
}

// trivialBackend answers every request with a fixed 1 KiB response and
// allocates nothing per request, so a benchmark's allocations are the
// client's.
func trivialBackend(tb testing.TB) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	addr, _ := rawServer(tb, func(c net.Conn, br *bufio.Reader) {
		for {
			// Requests without bodies: read to the blank line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
	return addr
}

// BenchmarkClient measures one goroutine's sequential requests to a
// trivial backend on loopback: the client's cost per request (the backend
// runs in the same process, so ns/op includes it; allocs/op is the
// client's alone). b.N requests; req/s is reported.
func BenchmarkClient(b *testing.B) {
	addr := trivialBackend(b)
	c := NewClient(addr, "127.0.0.1", 4)
	defer c.Close()
	req := &Request{Method: "GET", Path: "/catalog/products/p0001", Cookie: "shop_session=abc"}
	var resp Response
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		now := time.Now()
		resp.Cookies = resp.Cookies[:0]
		if err := c.Do(req, now, now.Add(5*time.Second), &resp); err != nil || resp.Status != 200 {
			b.Fatal(err, resp.Status)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func TestKindOf(t *testing.T) {
	if KindOf(nil) != KindNone || KindOf(errors.New("x")) != KindReset || KindOf(&RequestError{KindTimeout, io.EOF}) != KindTimeout {
		t.Fatal("KindOf")
	}
	if KindTimeout.String() != "timeout" || ErrorKind(200).String() != "kind(200)" {
		t.Fatal("names")
	}
}

// A burst of simultaneous requests opens connections at most
// maxConcurrentDials at a time; the others wait for a connection or a dial
// slot, and all complete. Close cuts whatever is still waiting or in flight.
func TestClientBurst(t *testing.T) {
	addr := delayBackend(t, 20*time.Millisecond)
	c := NewClient(addr, "x", 1000)
	defer c.Close()
	const n = 100
	var wg sync.WaitGroup
	var failed atomic.Int64
	var maxDialing atomic.Int64
	stop := make(chan struct{})
	go func() { // sample the number of dials in progress
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.mu.Lock()
			d := int64(c.dialing)
			c.mu.Unlock()
			if d > maxDialing.Load() {
				maxDialing.Store(d)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := doOnce(c, &Request{Method: "GET", Path: "/"}, 5*time.Second); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if failed.Load() != 0 || c.dials.Load() > n || maxDialing.Load() > maxConcurrentDials {
		t.Fatalf("%d failed, %d dials, up to %d at once", failed.Load(), c.dials.Load(), maxDialing.Load())
	}

	addr, _ = hangingBackend(t)
	c2 := NewClient(addr, "x", 1000)
	kinds := make(chan ErrorKind, n)
	for range n {
		go func() {
			_, err := doOnce(c2, &Request{Method: "GET", Path: "/"}, 30*time.Second)
			kinds <- KindOf(err)
		}()
	}
	for c2.Conns() < n/2 {
		time.Sleep(time.Millisecond)
	}
	c2.Close()
	for range n {
		if k := <-kinds; k != KindUnfinished {
			t.Fatalf("request cut by Close: kind %v", k)
		}
	}
}
