package gaia

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

	"github.com/lbsys/lbsys/api/directive"
)

// trickle is a client that sends a request's headers, then its body one
// byte at a time (every 20 ms, at most 1000 bytes), the way a slow or
// hostile client holds a connection open.
type trickle struct {
	conn net.Conn
	stop chan struct{}
	done chan struct{}
}

// startTrickle opens a connection to addr and sends method path with the
// given headers; chunked bodies are sent as one-byte chunks.
func startTrickle(t *testing.T, addr, method, path, token string, chunked bool) *trickle {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var h strings.Builder
	fmt.Fprintf(&h, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", method, path, addr)
	if token != "" {
		fmt.Fprintf(&h, "Authorization: Bearer %s\r\n", token)
	}
	if chunked {
		h.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		h.WriteString("Content-Length: 100000\r\n\r\n") // under net/http's 256 KiB drain: it would read it all
	}
	if _, err := io.WriteString(conn, h.String()); err != nil {
		t.Fatal(err)
	}
	tr := &trickle{conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		piece := "{"
		if chunked {
			piece = "1\r\n{\r\n"
		}
		for i := 0; i < 1000; i++ {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(conn, piece); err != nil {
				return // the server closed the connection
			}
			piece = strings.ReplaceAll(piece, "{", " ")
		}
	}()
	t.Cleanup(func() {
		select {
		case <-tr.stop:
		default:
			close(tr.stop)
		}
		conn.Close()
		<-tr.done
	})
	return tr
}

// TestRefusalsDoNotWaitForTheBody: answers sent before a body is read
// (401, 403, 503 while halted, a bad change id) reach a client that keeps
// trickling a body at once, with Connection: close, and the server closes
// the connection within unreadBodyGrace instead of draining the body for
// as long as the client sends it; a body the API does read must arrive
// within bodyReadTimeout (408, connection closed). Without the fix net/http
// reads up to 256 KiB of the body before it even sends the answer.
func TestRefusalsDoNotWaitForTheBody(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 1500 * time.Millisecond // the decode case waits this long
	t.Cleanup(func() { bodyReadTimeout = old })

	c := newCluster(t, 1, nil)
	c.leader()
	halted := newCluster(t, 1, nil)
	halted.leader()
	halted.nodes[0].halt("test: halted on purpose")

	for _, tc := range []struct {
		name       string
		cluster    *cluster
		method     string
		path       string
		token      string
		chunked    bool
		wantStatus int
		// within is how long after the answer the connection must be
		// closed by.
		within time.Duration
		// answerBy is how long after the headers the answer must come.
		answerBy time.Duration
	}{
		{"401 without a token", c, "POST", "/v1/changes", "", false, http.StatusUnauthorized, unreadBodyGrace, time.Second},
		{"401 chunked", c, "POST", "/v1/changes", "", true, http.StatusUnauthorized, unreadBodyGrace, time.Second},
		{"403 without the role", c, "POST", "/v1/changes", viewerTok, false, http.StatusForbidden, unreadBodyGrace, time.Second},
		{"403 agent-only path", c, "POST", directive.WatchPath, aliceTok, true, http.StatusForbidden, unreadBodyGrace, time.Second},
		{"400 bad change id", c, "POST", "/v1/changes/x/approve", bobTok, false, http.StatusBadRequest, unreadBodyGrace, time.Second},
		{"503 while halted", halted, "POST", "/v1/changes", carolTok, false, http.StatusServiceUnavailable, unreadBodyGrace, time.Second},
		{"408 body too slow", c, "POST", "/v1/changes", carolTok, false, http.StatusRequestTimeout, time.Second, bodyReadTimeout + time.Second},
		{"408 chunked body too slow", c, "POST", "/v1/changes", carolTok, true, http.StatusRequestTimeout, time.Second, bodyReadTimeout + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := time.Now()
			tr := startTrickle(t, tc.cluster.http[0], tc.method, tc.path, tc.token, tc.chunked)
			// Bound the whole exchange: a server that drains the body
			// never answers within it.
			tr.conn.SetReadDeadline(sent.Add(tc.answerBy + tc.within + 3*time.Second))
			br := bufio.NewReader(tr.conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer while the body trickles: %v", err)
			}
			answered := time.Now()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if d := answered.Sub(sent); d > tc.answerBy {
				t.Errorf("answered after %v, want within %v", d.Round(time.Millisecond), tc.answerBy)
			}
			if !resp.Close { // net/http reads Connection: close into Close
				t.Error("the answer lacks Connection: close")
			}
			// The server must close the connection although the client is
			// still sending: a read ends with EOF or a reset, not our
			// deadline.
			_, err = br.ReadByte()
			closed := time.Now()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection was still open %v after the answer", closed.Sub(answered).Round(time.Millisecond))
			}
			if err == nil {
				t.Fatal("the server sent more after its answer")
			}
			// unreadBodyGrace, plus net/http's half-close wait (500 ms)
			// and scheduling on a loaded machine.
			if d := closed.Sub(answered); d > tc.within+1500*time.Millisecond {
				t.Errorf("connection closed %v after the answer, want within %v", d.Round(time.Millisecond), tc.within)
			}
		})
	}
}

// TestRequestsWithoutBodyKeepTheirConnection: a refused GET has no body
// to wait for, so it keeps its keep-alive connection.
func TestRequestsWithoutBodyKeepTheirConnection(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.leader()
	conn, err := net.DialTimeout("tcp", c.http[0], 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for i, tok := range []string{"", viewerTok} {
		fmt.Fprintf(conn, "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", tok)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the same connection: %v", i+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Errorf("request %d (%d): Connection: close on a request without a body", i+1, resp.StatusCode)
		}
	}
}
