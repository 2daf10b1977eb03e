package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// holdServer serves on a loopback listener a handler that, for the path
// /hold, signals started and waits for release. The idle timeout is long:
// a connection whose wait missed a wake-up would sit out the whole of it.
func holdServer(t *testing.T, started chan<- struct{}, release <-chan struct{}) (*Server, string) {
	t.Helper()
	srv := &Server{ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 30 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				started <- struct{}{}
				<-release
			}
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, r.Method+" "+r.URL.Path)
		})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String()
}

func readAnswer(t *testing.T, br *bufio.Reader, want string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("waiting for %q: %v", want, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
}

// TestH1SeesWhatCameDuringAnAnswer: whatever a client sent while an
// answer was being made (a pipelined request, a request with a body, a
// half-close, a request and a half-close together) is acted on as soon as
// the answer is out, not after the idle timeout: the test's read deadline
// is far below it.
//
// It pins down why the serve loop reads after each answer even though a
// keep-alive client has usually sent nothing yet (a read that finds
// nothing, EAGAIN, once per request): parking on the runtime's poller
// without that read would miss, among others, a FIN that came together with
// the last request read, since the poller reported both in one wake-up.
// Such a connection, and a client waiting for its end, would sit out the
// idle timeout ("request then half-close" below, and the "sent together"
// case).
func TestH1SeesWhatCameDuringAnAnswer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		during string // sent while /hold is being answered
		fin    bool   // then half-close
		want   []string
	}{
		{name: "pipelined request", during: "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n", want: []string{"GET /2"}},
		{name: "request with a body", during: "POST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", want: []string{"POST /3"}},
		{name: "half-close", fin: true},
		{name: "request then half-close", during: "GET /4 HTTP/1.1\r\nHost: x\r\n\r\n", fin: true, want: []string{"GET /4"}},
		{name: "partial header", during: "GET /5 HTTP/1.1\r\nHo", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			_, addr := holdServer(t, started, release)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			// A first exchange, so that the connection waits after an
			// answer.
			io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
			c.SetDeadline(time.Now().Add(10 * time.Second))
			readAnswer(t, br, "GET /1")
			io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
			<-started
			if tc.during != "" {
				io.WriteString(c, tc.during)
			}
			if tc.fin {
				c.(*net.TCPConn).CloseWrite()
			}
			time.Sleep(20 * time.Millisecond) // let it reach the socket before the answer
			close(release)
			readAnswer(t, br, "GET /hold")
			for _, w := range tc.want {
				readAnswer(t, br, w)
			}
			if tc.name == "partial header" {
				// The rest of the header follows later: the request is
				// read under the header timeout, then answered.
				io.WriteString(c, "st: x\r\n\r\n")
				readAnswer(t, br, "GET /5")
			}
			if tc.fin {
				closedWithin(t, c, br, 5*time.Second, "after the client's half-close")
				return
			}
			// The connection still serves, from the poller again.
			io.WriteString(c, "GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
			readAnswer(t, br, "GET /last")
		})
	}
}

// TestH1RequestAndHalfCloseTogether: a client that sends its request and
// half-closes at once (a script's printf | nc) gets the answer and then the
// end of the connection, without waiting for the idle timeout.
func TestH1RequestAndHalfCloseTogether(t *testing.T) {
	_, addr := holdServer(t, nil, nil)
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
		readAnswer(t, br, "GET /1")
		// Request and FIN in one go, while the connection waits.
		io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
		c.(*net.TCPConn).CloseWrite()
		readAnswer(t, br, "GET /2")
		closedWithin(t, c, br, 5*time.Second, "after the request and the half-close")
		c.Close()
	}
}
