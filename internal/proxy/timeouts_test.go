package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// closedWithin reads c until the peer closes it and fails the test if that
// takes longer than limit.
func closedWithin(t *testing.T, c net.Conn, br *bufio.Reader, limit time.Duration, what string) {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the connection was still open after %v", what, limit)
	}
}

// TestUnsentBodyDoesNotHoldConnection: a client that announces a request
// body and never sends it gets its answer (404, 413, 400) and the
// connection is closed within a bound, on both engines (issue #13 item 4:
// the unread body was drained with no deadline, holding the connection
// forever).
func TestUnsentBodyDoesNotHoldConnection(t *testing.T) {
	b := newBackend(t, "b")
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
server: {max_request_body_bytes: 1KiB}
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes: [{match: {path_prefix: /app}, service: app}]
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	addr := strings.TrimPrefix(px.url, "http://")
	for _, tc := range []struct {
		name, head string
		want       int
	}{
		{"404", "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 404},
		{"404 chunked", "POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 404},
		{"413", "POST /app HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 413},
		{"400", "POST /app/../x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tc.head+"abc") // part of the body, then nothing
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			closedWithin(t, c, br, 2*bodyDrainTimeout, tc.name)
		})
	}
	if b.hits.Load() != 0 {
		t.Errorf("a refused request reached the backend")
	}
}

// TestAdminUnsentBodyDoesNotHoldConnection: the same for the admin API's
// refusals (401 without a token, 404).
func TestAdminUnsentBodyDoesNotHoldConnection(t *testing.T) {
	b := newBackend(t, "b")
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b))
	addr := strings.TrimPrefix(px.admin, "http://")
	for _, head := range []string{
		"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
		"POST /directive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 100\r\n\r\n",
		"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, head)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 401 && resp.StatusCode != 404 {
			t.Fatalf("%q: status %d", head, resp.StatusCode)
		}
		closedWithin(t, c, br, 2*bodyDrainTimeout, head)
		c.Close()
	}
}

// TestWriteTimeoutCutsStalledReader: a client that stops reading a large
// response is disconnected after server.write_timeout (both engines), so
// the endpoint's connection is freed too.
func TestWriteTimeoutCutsStalledReader(t *testing.T) {
	var wrote atomic.Int64
	var writeErr atomic.Bool
	big := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for i := 0; i < 2048; i++ { // 64 MiB, far beyond socket buffers
			if _, err := w.Write(chunk); err != nil {
				writeErr.Store(true)
				return
			}
			wrote.Add(int64(len(chunk)))
		}
	}))
	px := startProxy(t, renderConfig(t, `
admin: {listen: 127.0.0.1:0}
server: {write_timeout: 300ms}
listeners:
  - {name: main, listen: 127.0.0.1:0, routes: [{service: app}]}
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    timeouts: {request: 0s}
`, big))
	c, err := net.Dial("tcp", strings.TrimPrefix(px.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	// Do not read: the proxy's writes stall, it must give up and drop
	// the exchange, which the backend sees as a failed write.
	eventually(t, 5*time.Second, "the backend's write to fail", writeErr.Load)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the client connection is still open after the write timeout (%d bytes read)", n)
	}
	if n >= 64<<20 {
		t.Fatalf("the whole response was delivered: nothing was cut")
	}
}

// wsBackend answers an upgrade with 101 and echoes lines.
func wsBackend(t *testing.T) *testBackend {
	return newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	}))
}

func upgrade(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}

// TestTunnelOutlivesRequestTimeout: an upgraded connection is not cut at
// timeouts.request (it was: the tunnel inherited the request's deadline);
// it stays up while bytes flow and closes once idle for tunnel_idle.
func TestTunnelOutlivesRequestTimeout(t *testing.T) {
	ws := wsBackend(t)
	px := startProxy(t, renderConfig(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "{{.B0}}"}]
    timeouts: {request: 200ms, tunnel_idle: 600ms}
`, ws))
	addr := strings.TrimPrefix(px.url, "http://")
	c, br := upgrade(t, addr)
	defer c.Close()
	// Talk for 3× the request timeout, never idle for long.
	start := time.Now()
	for i := 0; time.Since(start) < 600*time.Millisecond; i++ {
		msg := fmt.Sprintf("m%d\n", i)
		io.WriteString(c, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != "echo "+msg {
			t.Fatalf("after %v (request timeout 200ms): got %q, %v", time.Since(start), got, err)
		}
		time.Sleep(50 * time.Millisecond) // pacing, not synchronisation
	}
	// Now idle: closed after tunnel_idle, not before.
	idleFrom := time.Now()
	closedWithin(t, c, br, 5*time.Second, "idle tunnel")
	if el := time.Since(idleFrom); el < 500*time.Millisecond {
		t.Errorf("the idle tunnel closed after %v, before tunnel_idle (600ms)", el)
	}
}
