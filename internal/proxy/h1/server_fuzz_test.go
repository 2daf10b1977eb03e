package h1

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// FuzzH1Server feeds arbitrary bytes to the proxy's HTTP/1.1 server: it
// must answer or close, never panic or hang, whatever a client sends.
func FuzzH1Server(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
		"GET / HTTP/1.0\r\n\r\n",
		"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &Server{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 4096,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, io.LimitReader(r.Body, 1<<16))
				w.Header().Set("Content-Type", "text/plain")
				io.WriteString(w, r.Method+" "+r.URL.Path)
			})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c := newH1Conn(srv, server)
		srv.conns = map[*h1Conn]struct{}{c: {}}
		done := make(chan struct{})
		go func() { defer close(done); c.serve() }()
		client.SetDeadline(time.Now().Add(3 * time.Second))
		// Send everything, then half-close: the server sees the end of
		// input and must finish.
		go func() {
			client.Write(in)
			client.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(io.Discard, client)
		client.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatalf("server did not finish with input %q", in)
		}
	})
}
