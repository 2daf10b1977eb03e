package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// Answers cut short, streaming and the writer's pass-through, through the
// real proxy on both engines (TestAccessLogNetHTTPEngine runs them on
// net/http.Server).

// loggedProxy starts a proxy whose listener logs in json to a new file,
// with one service app on the given backend and no retries.
func loggedProxy(t *testing.T, b *testBackend) (*testProxy, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.log")
	yaml := strings.Replace(baseConfig, "    routes: [{service: app}]", "    access_log: {path: \""+path+"\", format: json}\n    routes: [{service: app}]", 1)
	px := startProxy(t, renderConfig(t, yaml+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}], retries: {attempts: 0}}
`, b))
	return px, path
}

// freshClient is a client whose connections are not shared with other
// tests: a cut answer closes its connection.
func freshClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

// TestAccessLogAbortedResponse: an endpoint that closes its connection in
// the middle of a body leaves the client an incomplete answer. Each is
// logged once, with error response_aborted and the body bytes that reached
// the client, and the client sees the cut (on net/http that takes the
// handler's panic reaching the server: swallowed, the chunked answer
// would end with its last chunk and look complete).
func TestAccessLogAbortedResponse(t *testing.T) {
	const bigSent = 200 << 10
	cut := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		switch r.URL.Path {
		case "/small": // 10 of 100 bytes: it all stays in the servers' buffers
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		case "/big": // 200 KiB of 1 MiB
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
			brw.WriteString(strings.Repeat("x", bigSent))
		case "/chunked": // three chunks, no last chunk
			brw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 3 {
				brw.WriteString("a\r\n0123456789\r\n")
			}
		case "/ok":
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		brw.Flush()
	}))
	px, path := loggedProxy(t, cut)
	client := freshClient()
	received := map[string]int64{}
	for _, p := range []string{"/small", "/big", "/chunked"} {
		resp, err := client.Get(px.url + p)
		if err != nil {
			received[p] = 0 // no answer at all: nothing of it left the proxy
			continue
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: the client read %d bytes and %v, want an unexpected EOF (a cut it can see)", p, n, err)
		}
		received[p] = n
	}
	// The last line comes after every line of the cut answers: a second
	// line for one of them would be written before it.
	if resp, err := client.Get(px.url + "/ok"); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	lines := waitAccessLines(t, path, config.AccessLogJSON, 4)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4: %v", len(lines), lines)
	}
	checkLogFields(t, "ok", findLine(t, lines, "GET", "/ok"), map[string]string{"status": "200", "bytes_out": "2", "error": ""})
	for _, p := range []string{"/small", "/big", "/chunked"} {
		l := findLine(t, lines, "GET", p)
		checkLogFields(t, p, l, map[string]string{"status": "200", "error": "response_aborted", "attempts": "1", "upstream": cut.addr})
		logged, err := strconv.ParseInt(l["bytes_out"], 10, 64)
		if err != nil {
			t.Fatalf("%s: bytes_out %q", p, l["bytes_out"])
		}
		// The lbsys engine knows what it dropped; net/http hides up to
		// its response buffer.
		slack := int64(0)
		if testEngine == config.EngineNetHTTP {
			slack = netHTTPResponseBuffer
		}
		if got := received[p]; logged > got || got > logged+slack {
			t.Errorf("%s: bytes_out %d, the client received %d (allowed: %d more)", p, logged, got, slack)
		}
	}
	if received["/chunked"] != 30 {
		t.Errorf("/chunked: the client received %d bytes, want the 30 sent (streamed: flushed as they came)", received["/chunked"])
	}
	if received["/big"] < bigSent-2*32<<10 {
		t.Errorf("/big: the client received %d bytes of the %d sent", received["/big"], bigSent)
	}
}

// TestAccessLogClientGoneMidBody: a client that goes away while a streamed
// body is being sent is logged once as response_aborted, with part of the
// body.
func TestAccessLogClientGoneMidBody(t *testing.T) {
	const chunk, chunks = 1 << 10, 5000
	stopped := make(chan int, 1)
	stream := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		buf := []byte(strings.Repeat("s", chunk))
		i := 0
		for ; i < chunks; i++ { // bounded: about 5 s when nobody stops it
			if _, err := w.Write(buf); err != nil {
				break
			}
			if rc.Flush() != nil || r.Context().Err() != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		stopped <- i
	}))
	px, path := loggedProxy(t, stream)
	resp, err := freshClient().Get(px.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, chunk)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // an unread body: the connection closes
	select {
	case n := <-stopped:
		if n == chunks {
			t.Fatalf("the endpoint sent its whole body: the proxy did not notice the client leaving")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the endpoint is still streaming")
	}
	lines := waitAccessLines(t, path, config.AccessLogJSON, 1)
	time.Sleep(50 * time.Millisecond)
	if lines = readAccessLog(t, path, config.AccessLogJSON); len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(lines), lines)
	}
	checkLogFields(t, "client gone", lines[0], map[string]string{"status": "200", "error": "response_aborted", "bytes_out": "<>0"})
	if n, _ := strconv.Atoi(lines[0]["bytes_out"]); n >= chunk*chunks {
		t.Errorf("bytes_out %d: the whole body", n)
	}
}

// TestAccessLogStreaming: a streamed answer still streams through the
// logging writer: the endpoint sends its second part only once the client
// has the first, which needs every flush to reach the client.
func TestAccessLogStreaming(t *testing.T) {
	got := make(chan struct{})
	waited := make(chan bool, 1)
	stream := newCustomBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-got:
			waited <- true
		case <-time.After(5 * time.Second):
			waited <- false
		}
		io.WriteString(w, "data: second\n\n")
	}))
	px, path := loggedProxy(t, stream)
	resp, err := freshClient().Get(px.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); err != nil || l != "data: first\n" {
		t.Fatalf("first event: %q %v", l, err)
	}
	close(got)
	if !<-waited {
		t.Fatal("the client's signal did not reach the endpoint")
	}
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: second\n\n" {
		t.Fatalf("rest: %q %v", rest, err)
	}
	lines := waitAccessLines(t, path, config.AccessLogJSON, 1)
	checkLogFields(t, "stream", lines[0], map[string]string{"status": "200", "bytes_out": "27", "error": ""})
}

// readerFromRecorder is a recorder whose ReadFrom the writer must use.
type readerFromRecorder struct {
	*httptest.ResponseRecorder
	calls int
}

func (r *readerFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.calls++
	return io.Copy(r.ResponseRecorder, src)
}

// TestLogWriterPassThrough: the logging writer passes io.ReaderFrom (to
// the server's own, or by copying), flushes, and counts what it passed; an
// error while copying marks the answer cut short, a writer that cannot
// flush does not.
func TestLogWriterPassThrough(t *testing.T) {
	rf := &readerFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	w := &logWriter{ResponseWriter: rf, declared: -1}
	if n, err := w.ReadFrom(io.LimitReader(strings.NewReader("hello world"), 5)); n != 5 || err != nil {
		t.Fatalf("ReadFrom: %d %v", n, err)
	}
	if rf.calls != 1 || rf.Body.String() != "hello" || w.bytes != 5 || w.status != http.StatusOK || w.failed {
		t.Fatalf("through the server's ReadFrom: calls %d body %q bytes %d status %d failed %v", rf.calls, rf.Body, w.bytes, w.status, w.failed)
	}

	rec := httptest.NewRecorder() // no ReadFrom
	w = &logWriter{ResponseWriter: rec, declared: -1}
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(http.StatusAccepted)
	n, err := io.Copy(w, io.MultiReader(io.LimitReader(strings.NewReader("abcdef"), 3), iotest.ErrReader(errors.New("endpoint gone"))))
	if n != 3 || err == nil || rec.Body.String() != "abc" || w.bytes != 3 || w.status != http.StatusAccepted || w.declared != 100 || !w.failed {
		t.Fatalf("copied: %d %v body %q bytes %d status %d declared %d failed %v", n, err, rec.Body, w.bytes, w.status, w.declared, w.failed)
	}
	if _, ok := any(w).(http.Flusher); !ok {
		t.Fatal("not a Flusher")
	}
	if err := http.NewResponseController(w).Flush(); err != nil || !rec.Flushed || w.flushed != 3 {
		t.Fatalf("flush: %v flushed %v at %d", err, rec.Flushed, w.flushed)
	}

	w = &logWriter{ResponseWriter: struct{ http.ResponseWriter }{httptest.NewRecorder()}, declared: -1}
	if err := w.FlushError(); !errors.Is(err, http.ErrNotSupported) || w.failed {
		t.Fatalf("a writer that cannot flush: %v, failed %v", err, w.failed)
	}
	if _, _, err := w.Hijack(); err == nil || w.status != 0 {
		t.Fatalf("a writer that cannot hijack: %v, status %d", err, w.status)
	}
}

// TestLogWriterSettle: the decision on an answer, without a server: a
// short body against its Content-Length is cut, except where no body is
// sent; a panic on net/http counts the bytes past its buffer or flushed.
func TestLogWriterSettle(t *testing.T) {
	for _, tc := range []struct {
		method                   string
		status                   int
		declared, bytes, flushed int64
		failed, panicked, http2  bool
		aborted                  bool
		sent                     int64
	}{
		{method: "GET", status: 200, declared: 10, bytes: 10, sent: 10},
		{method: "GET", status: 200, declared: -1, bytes: 10, sent: 10},
		{method: "GET", status: 200, declared: 10, bytes: 4, aborted: true, sent: 4},
		{method: "HEAD", status: 200, declared: 10, bytes: 0, sent: 0},
		{method: "GET", status: 304, declared: 10, bytes: 0, sent: 0},
		{method: "GET", status: 204, declared: 10, bytes: 0, sent: 0},
		{method: "GET", status: 200, declared: -1, bytes: 10, failed: true, aborted: true, sent: 10},
		{method: "GET", status: 200, declared: -1, bytes: 1000, flushed: 600, panicked: true, aborted: true, sent: 600},
		{method: "GET", status: 200, declared: -1, bytes: 5000, flushed: 600, panicked: true, aborted: true, sent: 5000 - netHTTPResponseBuffer},
		{method: "GET", status: 200, declared: -1, bytes: 5000, panicked: true, http2: true, aborted: true, sent: 5000 - 2*netHTTPResponseBuffer},
		{method: "GET", status: 200, declared: 1 << 20, bytes: 100, panicked: true, aborted: true, sent: 0},
	} {
		name := fmt.Sprintf("%+v", tc)
		rec := &accessRecord{}
		rec.e.Method = tc.method
		rec.w = logWriter{ResponseWriter: httptest.NewRecorder(), rec: rec, status: tc.status, declared: tc.declared,
			bytes: tc.bytes, flushed: tc.flushed, failed: tc.failed}
		if got := rec.w.settle(tc.panicked, tc.http2); got != tc.aborted || rec.w.bytes != tc.sent {
			t.Errorf("%s: aborted %v, sent %d", name, got, rec.w.bytes)
		}
	}
}
