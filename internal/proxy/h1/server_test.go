package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawConn sends raw bytes to addr and returns everything read until the
// server closes the connection (or 5s pass).
func rawConn(t *testing.T, addr, raw string) string {
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
	out, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the server kept the connection open after answering %q; got %q", raw, out)
		}
	}
	return string(out)
}

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

// TestH1ResponseDropsInvalidFields: the lbsys engine never writes a
// response field a handler set with an invalid name or value (net/http's
// writer drops invalid names too).
func TestH1ResponseDropsInvalidFields(t *testing.T) {
	srv := &Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Length "] = []string{"0"}
		h["X-Split"] = []string{"a\r\nSet-Cookie: evil=1"}
		h.Set("X-Fine", "yes")
		h.Set("Trailer", "X-T")
		w.WriteHeader(200)
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		h.Set("X-T", "t\x00")
		h[http.TrailerPrefix+"Bad Trailer"] = []string{"x"}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	out := rawConn(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for _, bad := range []string{"Content-Length :", "evil", "Bad Trailer", "X-T: t"} {
		if strings.Contains(out, bad) {
			t.Errorf("%q was written: %q", bad, out)
		}
	}
	if !strings.Contains(out, "X-Fine: yes\r\n") {
		t.Errorf("valid header lost: %q", out)
	}
}

// TestH1DrainIsBounded: the lbsys engine's own drain of a body the handler
// left unread (here an answer without Connection: close) reads at most
// maxDrainBytes within BodyDrainTimeout; the connection survives when the
// rest arrives, and closes when it does not.
func TestH1DrainIsBounded(t *testing.T) {
	srv := &Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "early") })}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	read := func(br *bufio.Reader) {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	// The whole body arrives: the connection carries the next request.
	c, br := dial()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	read(br)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	read(br)
	c.Close()
	// The body stalls: closed after the drain deadline.
	c, br = dial()
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nhel")
	read(br)
	closedWithin(t, c, br, 2*BodyDrainTimeout, "stalled body")
	// Too much is left: closed at once, nothing read.
	c2, br2 := dial()
	defer c2.Close()
	fmt.Fprintf(c2, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", maxDrainBytes+1)
	read(br2)
	closedWithin(t, c2, br2, BodyDrainTimeout/2, "oversized body")
}
