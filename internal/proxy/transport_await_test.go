package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/proxy/upstream"
)

// closingBackend answers every request with a short 200 and keep-alive,
// then ends the connection after idle: closed at once, or (lingering) its
// sending side shut down while it keeps reading for linger, as servers with
// a lingering close do.
func closingBackend(t *testing.T, idle time.Duration, lingering bool, linger time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					c.SetReadDeadline(time.Now().Add(idle))
					if _, err := http.ReadRequest(br); err != nil {
						break // idle: end the connection
					}
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
				if lingering {
					c.(*net.TCPConn).CloseWrite()
					c.SetReadDeadline(time.Now().Add(linger))
					buf := make([]byte, 4096)
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestAwaitAfterEndpointClosed: a pooled connection the endpoint closed
// while it idled is not waited on for an answer that cannot come: closed
// at once, the request's write is answered with a reset (and retried);
// shut down and lingering, a connection that idled that long takes the
// plain path, whose read sees the end at once.
func TestAwaitAfterEndpointClosed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		idle      time.Duration
		lingering bool
		pause     time.Duration
	}{
		{"closed", 20 * time.Millisecond, false, 100 * time.Millisecond},
		{"lingering", upstream.AwaitMaxIdle + 100*time.Millisecond, true, upstream.AwaitMaxIdle + 300*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := closingBackend(t, tc.idle, tc.lingering, 10*time.Second)
			px := startProxy(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "`+addr+`"}]
`)
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; i < 3; i++ {
				if i > 0 {
					time.Sleep(tc.pause)
				}
				start := time.Now()
				resp, err := client.Get(px.url + "/x")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				var sb strings.Builder
				bufio.NewReader(resp.Body).WriteTo(&sb)
				resp.Body.Close()
				if resp.StatusCode != 200 || sb.String() != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, sb.String())
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("request %d took %v: the proxy waited on a connection the endpoint had ended", i, d)
				}
			}
		})
	}
}

// TestPostAfterEndpointClosed: a request that must not be sent twice (a
// POST without an Idempotency-Key) is never retried, so it must not be
// sent on a pooled connection the endpoint has closed: the pool looks
// (upstream's alive) and dials a new one, and the client gets the
// endpoint's answer, not a 502. The lingering case (the endpoint shut its
// sending side) is covered too.
func TestPostAfterEndpointClosed(t *testing.T) {
	for _, lingering := range []bool{false, true} {
		addr := closingBackend(t, 20*time.Millisecond, lingering, 10*time.Second)
		px := startProxy(t, baseConfig+`
services:
  - name: app
    endpoints: [{address: "`+addr+`"}]
`)
		client := &http.Client{Timeout: 5 * time.Second}
		for i := 0; i < 3; i++ {
			if i > 0 {
				time.Sleep(100 * time.Millisecond) // the endpoint ends the idle connection
			}
			resp, err := client.Post(px.url+"/order", "text/plain", strings.NewReader("one order"))
			if err != nil {
				t.Fatalf("lingering %v, request %d: %v", lingering, i, err)
			}
			var sb strings.Builder
			bufio.NewReader(resp.Body).WriteTo(&sb)
			resp.Body.Close()
			if resp.StatusCode != 200 || sb.String() != "ok" {
				t.Fatalf("lingering %v, request %d: %d %q", lingering, i, resp.StatusCode, sb.String())
			}
		}
	}
}
