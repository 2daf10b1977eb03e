// Package h1 is the proxy's own HTTP/1.1 server engine (server.engine:
// lbsys, the default) for plain-text listeners: Server serves a handler
// the way net/http.Server does, without the per-request machinery a proxy
// does not need. Response is its http.ResponseWriter; the proxy reaches it
// (through its own wrappers) to cut an answer short (Response.Abort) and to
// learn, for the access log, what of an answer never left (Response.Failed).
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbsys/lbsys/internal/proxy/httpfield"
)

// Server is the proxy's own HTTP/1.1 server for plain-text listeners
// (server.engine: lbsys, the default). It parses requests with net/http's
// own parser (readRequest, net/http.Server's reader: the same request-line,
// header and body framing rules, smuggling checks included; the plainest
// requests take parseSimple, a shorter way to exactly the same result) and
// hands them to the same handler; what it leaves out is per-request machinery the
// proxy does not need and pays for on every request with net/http.Server:
//
//   - a goroutine and a read syscall per request to watch for the client
//     closing the connection (net/http's background read), and the
//     per-request cancelable context it cancels;
//   - the response writer's second buffering layer and content sniffing
//     (a proxy must not invent a Content-Type anyway).
//
// Measured on loopback with a 1 KiB answer, serving costs ~0.8 CPU-seconds
// per 100k requests this way against ~1.2 with net/http.Server; see the
// issue notes. TLS listeners (and HTTP/2) stay on net/http.Server.
//
// Differences a user can see: the request context is not canceled when the
// client goes away (so timeouts.abort_on_client_close needs the net_http
// engine, and the configuration says so), HTTP/1.0 requests are answered
// with Connection: close, a chunked request closes the connection after
// its answer, and an absolute-form request whose Host header names another
// authority than its target is refused (net/http ignores that Host). It is
// never more lenient than net/http.Server: FuzzH1Differential (in
// internal/proxy) checks that.
//
// The exported fields mean what net/http.Server's of the same names do;
// set them before Serve.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ErrorLog          *log.Logger

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	conns      map[*h1Conn]struct{}
	inShutdown atomic.Bool
}

// BodyDrainTimeout bounds reading what is left of a request body the
// handler did not read (a 404, a 413, an endpoint that answered before
// reading it), together with a byte cap (maxDrainBytes): reading it keeps
// the connection for the next request, but a client that announced a body
// and does not send it must not hold the connection. The proxy applies the
// same bound on net/http.Server.
const BodyDrainTimeout = 2 * time.Second

// maxDrainBytes is the most of an unread body read to keep the connection
// (net/http.Server's maxPostHandlerReadBytes); a larger rest costs more
// than a new connection.
const maxDrainBytes = 256 << 10

// errServerClosed mirrors http.ErrServerClosed so callers treat both
// engines alike.
var errServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.inShutdown.Load() {
		s.mu.Unlock()
		ln.Close()
		return errServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*h1Conn]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return errServerClosed
			}
			if retryableAccept(err) {
				// Out of file descriptors and the like: the listener is
				// fine and connections wait in its backlog; back off as
				// net/http does (5ms doubling to 1s) instead of spinning,
				// or of giving up for good while /healthz says ok.
				if backoff == 0 {
					backoff = 5 * time.Millisecond
				} else if backoff *= 2; backoff > time.Second {
					backoff = time.Second
				}
				s.logf("accept error: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := newH1Conn(s, rw)
		s.mu.Lock()
		if s.inShutdown.Load() {
			s.mu.Unlock()
			rw.Close()
			return errServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// retryableAccept reports an Accept error that leaves the listener usable:
// a timeout, or a resource or connection error of one accept (EMFILE,
// ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, ...). net/http retries on
// net.Error.Temporary, which is deprecated; these are the errnos behind it.
func retryableAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range [...]syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Shutdown stops accepting, closes idle connections, lets active requests
// finish (their connections close afterwards) and waits until every
// connection is gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.closeListeners()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops at once: listeners and every connection are closed.
func (s *Server) Close() error {
	s.inShutdown.Store(true)
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.rwc.Close()
		delete(s.conns, c)
	}
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		ln.Close()
	}
}

// closeIdle closes connections waiting for a request and returns how many
// connections remain.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.rwc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) forget(c *h1Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	}
}

// h1Conn is one client connection.
type h1Conn struct {
	srv    *Server
	rwc    net.Conn
	remote string
	lr     *io.LimitedReader // under br: bounds the header block
	br     *bufio.Reader
	bw     *bufio.Writer
	idle   atomic.Bool // waiting for the next request (safe to close)
	// writeDeadline: the handler set one; cleared before the next request.
	writeDeadline bool
	// rdl is the read deadline last set on rwc (zero: none).
	rdl  time.Time
	resp Response // reused for every request of the connection
}

var (
	h1ReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	h1WriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func newH1Conn(s *Server, rwc net.Conn) *h1Conn {
	c := &h1Conn{srv: s, rwc: rwc, remote: rwc.RemoteAddr().String()}
	c.lr = &io.LimitedReader{R: rwc, N: 1<<63 - 1}
	c.br = h1ReaderPool.Get().(*bufio.Reader)
	c.br.Reset(c.lr)
	c.bw = h1WriterPool.Get().(*bufio.Writer)
	c.bw.Reset(rwc)
	c.idle.Store(true)
	return c
}

// headerLimit is how many bytes the request line and headers may take.
func (c *h1Conn) headerLimit() int64 {
	n := c.srv.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return int64(n) + 4096 // net/http's slack for the request line
}

func (c *h1Conn) serve() {
	hijacked := false
	defer func() {
		if r := recover(); r != nil && r != http.ErrAbortHandler {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			c.srv.logf("panic serving %s: %v\n%s", c.remote, r, buf)
		}
		c.srv.forget(c)
		if !hijacked {
			c.rwc.Close()
			c.br.Reset(nil)
			h1ReaderPool.Put(c.br)
			c.bw.Reset(nil)
			h1WriterPool.Put(c.bw)
		}
	}()
	first := true
	limit := c.headerLimit()
	for {
		// The header limit counts from the first byte of this request,
		// including any already buffered (pipelined).
		c.lr.N = limit - int64(c.br.Buffered())
		if c.writeDeadline {
			c.rwc.SetWriteDeadline(time.Time{})
			c.writeDeadline = false
		}
		c.idle.Store(true)
		if c.srv.inShutdown.Load() {
			return
		}
		// Wait for the next request: the idle timeout between requests,
		// the header timeout before the first.
		wait := c.srv.IdleTimeout
		if first || wait <= 0 {
			wait = c.srv.ReadHeaderTimeout
		}
		if wait > 0 {
			c.armReadDeadline(time.Now(), wait)
		} else {
			c.setReadDeadline(time.Time{})
		}
		// On a keep-alive connection whose client waits for each answer
		// this read finds nothing (EAGAIN) before the goroutine parks.
		// The upstream side saves that call by writing the request from
		// the poller's callback and parking at once (upstream.flushAwait);
		// here that would lose requests: arming the poller forgets any
		// readiness it saw before, so a pipelined request or a client's
		// FIN that came in while the answer was being made would wake
		// nobody until the idle timeout (FuzzH1Differential's seeds, which
		// half-close after sending, hang on it). An endpoint cannot
		// answer before it is asked; a client can send before it is
		// answered. Arming the poller before the request is read, and
		// serving it from within that RawConn.Read's callback, fails
		// too: a FIN that came with the request is reported in the
		// same wake-up, and only a read after the answer sees it
		// (TestH1SeesWhatCameDuringAnAnswer; measured, that variant
		// saved about 1% of the CPU anyway).
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		c.idle.Store(false)
		first = false
		if d := c.srv.ReadHeaderTimeout; d > 0 && wait != d && !c.headerBuffered() {
			// Whole header blocks already read are parsed without reading
			// the connection: only a partial one needs the header timeout.
			c.setReadDeadline(time.Now().Add(d))
		}
		req := parseSimple(c.br, c.lr.N+int64(c.br.Buffered()))
		var err error
		if req == nil {
			req, err = readRequest(c.br)
		}
		if err != nil {
			if c.lr.N <= 0 {
				c.plainError(http.StatusRequestHeaderFieldsTooLarge, "431 Request Header Fields Too Large")
				return
			}
			var ne net.Error
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &ne) && ne.Timeout()) {
				return // the client went away or stalled: nobody to answer
			}
			c.plainError(http.StatusBadRequest, "400 Bad Request: "+err.Error())
			return
		}
		c.lr.N = 1<<63 - 1
		if msg, code := checkRequest(req); code != 0 {
			c.plainError(code, msg)
			return
		}
		req.RemoteAddr = c.remote
		body := &h1Body{rc: req.Body, c: c}
		if req.ContentLength == 0 && len(req.TransferEncoding) == 0 {
			body.eof = true
		} else {
			// Reading the body has no deadline, as with net/http's
			// defaults; the proxy's request timeout bounds the exchange.
			// Without a body nothing reads the connection until the next
			// request, whose wait sets its own: the deadline can stay.
			c.setReadDeadline(time.Time{})
		}
		if v := req.Header.Get("Expect"); v != "" {
			// As net/http.Server: an expectation other than 100-continue
			// is refused whatever the protocol version; 100 Continue is
			// only sent to HTTP/1.1 clients.
			if !httpHeaderIs(v, "100-continue") {
				c.plainError(http.StatusExpectationFailed, "417 Expectation Failed")
				return
			}
			body.expect100 = req.ProtoAtLeast(1, 1)
			req.Header.Del("Expect") // handled here, hop by hop
		}
		req.Body = body

		w := &c.resp
		*w = Response{c: c, req: req, header: w.header, cl: -1}
		if w.header == nil {
			w.header = make(http.Header, 8)
		} else {
			clear(w.header)
		}
		c.srv.Handler.ServeHTTP(w, req)
		if w.hijacked {
			hijacked = true
			return
		}
		if err := w.finish(); err != nil {
			return
		}
		if w.closeAfter || req.Close || c.srv.inShutdown.Load() {
			return
		}
		// Leftover request body: read a little of it to keep the
		// connection, as net/http does; a big one costs more than a
		// new connection.
		if !body.eof && !body.drain(req) {
			return
		}
	}
}

// setReadDeadline sets the connection's read deadline (zero clears it)
// unless it is the one already set.
func (c *h1Conn) setReadDeadline(t time.Time) error {
	if t.Equal(c.rdl) {
		return nil
	}
	c.rdl = t
	return c.rwc.SetReadDeadline(t)
}

// armReadDeadline bounds the wait for the next request to d from now. It
// may fire up to d/32 late: a deadline already set within that slack is
// kept, which saves a timer update on most requests of a busy keep-alive
// connection (the upstream connections do the same, internal/proxy/upstream's
// pconn.setDeadline).
func (c *h1Conn) armReadDeadline(now time.Time, d time.Duration) {
	want := now.Add(d)
	slack := d / 32
	if c.rdl.Before(want) || c.rdl.After(want.Add(slack)) {
		c.setReadDeadline(want.Add(slack / 2))
	}
}

// headerBuffered reports whether the buffered bytes hold the end of a
// header block, so that parsing the next request reads nothing more from
// the connection.
func (c *h1Conn) headerBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(b, crlf2) || bytes.Contains(b, lf2)
}

var crlf2, lf2 = []byte("\r\n\r\n"), []byte("\n\n")

// checkRequest applies net/http.Server's checks beyond its parser
// (net/http's conn.readRequest), and removes the Host header from the map as
// it does, plus two of its own:
//
//   - field names are checked as there: the parser accepts a name with a
//     space before the colon ("Transfer-Encoding : chunked") and does not
//     frame by it, while a lenient backend would; forwarded, it makes the
//     two ends of the proxy disagree about where the request ends.
//   - an absolute-form target (RFC 9112 §3.2.2) gives the host, and the
//     Host header HTTP/1.1 still requires must name the same authority, so
//     that nothing downstream reads another host than the one the request
//     was routed by. net/http ignores the Host header then; this server is
//     stricter.
func checkRequest(req *http.Request) (string, int) {
	if req.ProtoMajor != 1 {
		return "505 HTTP Version Not Supported", http.StatusHTTPVersionNotSupported
	}
	hosts, haveHost := req.Header["Host"]
	if req.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && req.Method != http.MethodConnect {
		return "400 Bad Request: missing required Host header", http.StatusBadRequest
	}
	if len(hosts) == 1 && !httpfield.ValidHost(hosts[0]) {
		return "400 Bad Request: malformed Host header", http.StatusBadRequest
	}
	if err := httpfield.CheckNames(req.Header, "header"); err != nil {
		return "400 Bad Request: " + err.Error(), http.StatusBadRequest
	}
	if req.URL.Host != "" && len(hosts) > 0 && !strings.EqualFold(hosts[0], req.URL.Host) {
		return "400 Bad Request: the Host header does not name the authority of the request target", http.StatusBadRequest
	}
	if !httpfield.ValidHost(req.Host) {
		return "400 Bad Request: malformed host in the request target", http.StatusBadRequest
	}
	delete(req.Header, "Host")
	return "", 0
}

func httpHeaderIs(v, want string) bool {
	if len(v) != len(want) {
		return false
	}
	for i := 0; i < len(v); i++ {
		a, b := v[i], want[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// plainError answers a request the server could not hand to the handler
// and marks the connection for closing.
func (c *h1Conn) plainError(code int, msg string) {
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n",
		code, http.StatusText(code), len(msg)+1, msg)
	c.bw.Flush()
}

// h1Body is the request body: it sends 100 Continue on first read when the
// client asked for it, and remembers whether it was read to the end.
type h1Body struct {
	rc        io.ReadCloser
	c         *h1Conn
	n         int64 // bytes read
	expect100 bool
	eof       bool
	closed    bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.expect100 {
		b.expect100 = false
		if !b.c.resp.wroteHeader {
			b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := b.c.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.closed = true
	return nil
}

// drain reads what is left of the body, at most maxDrainBytes within
// BodyDrainTimeout, and reports whether the connection can carry another
// request. A client that announced a body and stalls would otherwise hold
// the connection (and its goroutine) for good.
func (b *h1Body) drain(req *http.Request) bool {
	if b.expect100 {
		return false // the client is still waiting to send it: close
	}
	if cl := req.ContentLength; cl > 0 && cl-b.n > maxDrainBytes {
		return false // known to be too much: do not read any of it
	}
	b.c.setReadDeadline(time.Now().Add(BodyDrainTimeout))
	_, err := io.CopyN(io.Discard, b.rc, maxDrainBytes)
	return err == io.EOF
}

// Response is the http.ResponseWriter of Server.
type Response struct {
	c           *h1Conn
	req         *http.Request
	header      http.Header
	status      int
	wroteHeader bool
	hijacked    bool
	cl          int64 // declared Content-Length, -1 if none
	written     int64
	chunked     bool
	noBody      bool
	closeAfter  bool
	trailers    []string // the Trailer header as sent
	err         error
}

// Header implements http.ResponseWriter.
func (w *Response) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter.
func (w *Response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	bw := w.c.bw
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Informational (e.g. 103 Early Hints): sent at once, the final
		// response follows.
		w.writeStatusLine(code)
		w.writeHeaderLines(false)
		bw.WriteString("\r\n")
		w.err = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.header
	if v := h.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			h.Del("Content-Length") // not ours to trust: frame it ourselves
		}
	}
	switch {
	case w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusSwitchingProtocols:
		w.noBody = true
	case w.cl >= 0:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
		h.Del("Transfer-Encoding")
	default:
		w.closeAfter = true // HTTP/1.0 without a length: the close ends it
	}
	// A chunked request closes the connection after its answer: RFC 9112
	// §6.1 requires it when the request also had a Content-Length (a sign
	// of a smuggling attempt), and net/http's parser removes that header
	// without saying it was there, so every chunked request is treated so.
	if !w.req.ProtoAtLeast(1, 1) || w.req.Close || len(w.req.TransferEncoding) > 0 ||
		w.c.srv.inShutdown.Load() || httpHeaderIs(h.Get("Connection"), "close") {
		w.closeAfter = true
	}
	if w.chunked {
		w.trailers = h["Trailer"]
	}
	w.writeStatusLine(code)
	w.writeHeaderLines(true)
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

func (w *Response) writeStatusLine(code int) {
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10)) // no escaping array
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

// writeHeaderLines writes the header map; final responses leave out the
// framing and connection headers the server sets itself. A field whose name
// is not a token or whose value holds a control character is dropped, as
// net/http's response writer drops invalid names: written, it could end the
// header block early or be framed by a lenient client.
func (w *Response) writeHeaderLines(final bool) {
	bw := w.c.bw
	for k, vs := range w.header {
		if final && (k == "Connection" || k == "Transfer-Encoding" || strings.HasPrefix(k, http.TrailerPrefix)) {
			continue
		}
		if !httpfield.ValidName(k) {
			w.c.srv.logf("dropped response header with an invalid name %q", k)
			continue
		}
		for _, v := range vs {
			if !httpfield.ValidValue(v) {
				w.c.srv.logf("dropped response header %s: its value has a control character", k)
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// Write implements http.ResponseWriter.
func (w *Response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		w.closeAfter = true
		return 0, http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush implements http.Flusher (ReverseProxy flushes streamed responses).
func (w *Response) Flush() { w.FlushError() }

// FlushError is Flush with the error, for http.ResponseController.
func (w *Response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	w.err = w.c.bw.Flush()
	return w.err
}

// SetReadDeadline bounds reading the rest of the request (its body), for
// http.ResponseController; the next request's wait resets it.
func (w *Response) SetReadDeadline(t time.Time) error {
	if w.hijacked {
		return http.ErrHijacked
	}
	return w.c.setReadDeadline(t)
}

// SetWriteDeadline bounds writing the response, for
// http.ResponseController.
func (w *Response) SetWriteDeadline(t time.Time) error {
	if w.hijacked {
		return http.ErrHijacked
	}
	w.c.writeDeadline = true
	return w.c.rwc.SetWriteDeadline(t)
}

// Hijack implements http.Hijacker, for protocol upgrades (WebSocket).
func (w *Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		return nil, nil, errors.New("hijack after the response header was written")
	}
	w.hijacked = true
	c := w.c
	c.rwc.SetDeadline(time.Time{})
	c.srv.forget(c)
	return c.rwc, bufio.NewReadWriter(c.br, c.bw), nil
}

// errAborted marks a response whose body was cut short (Abort).
var errAborted = errors.New("response aborted: its body could not be copied whole")

// Abort marks the response as cut short: when the handler returns, the
// connection closes without ending the body (no last chunk, no flush of
// what is buffered), so the client cannot take it for complete. The proxy
// calls it where net/http.Server needs a panic(http.ErrAbortHandler).
func (w *Response) Abort() {
	w.closeAfter = true
	if w.err == nil {
		w.err = errAborted
	}
}

// Failed reports whether the response failed or was aborted, so that the
// connection closes without sending what is still buffered, and if so how
// many bytes that is (the header's included, if it was never flushed).
// A hijacked response reports false. Meant for after the handler returned
// (the access log).
func (w *Response) Failed() (unsent int, failed bool) {
	if w.hijacked || w.err == nil {
		return 0, false
	}
	return w.c.bw.Buffered(), true
}

// finish ends the response: the header if none was written, the last
// chunk, and a flush. An error means the connection is unusable.
func (w *Response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n")
		w.writeTrailers()
		w.c.bw.WriteString("\r\n")
	} else if w.cl >= 0 && w.written < w.cl && !w.noBody {
		// The handler promised more than it wrote (an upstream cut
		// mid-body): the client must not take the next bytes as this
		// body's end.
		w.c.bw.Flush()
		return errors.New("response shorter than its Content-Length")
	}
	return w.c.bw.Flush()
}

// writeTrailers writes the trailer fields of a chunked response: those
// announced in the Trailer header before WriteHeader and set afterwards,
// and those set under http.TrailerPrefix (what ReverseProxy does for
// trailers it did not announce).
func (w *Response) writeTrailers() {
	bw := w.c.bw
	for k, vs := range w.header {
		name, prefixed := strings.CutPrefix(k, http.TrailerPrefix)
		if !prefixed {
			if !w.announced(k) {
				continue
			}
		}
		name = http.CanonicalHeaderKey(name)
		switch name {
		case "", "Content-Length", "Transfer-Encoding", "Trailer", "Connection", "Host":
			continue // framing and routing fields are not allowed in trailers
		}
		if !httpfield.ValidName(name) {
			w.c.srv.logf("dropped response trailer with an invalid name %q", name)
			continue
		}
		for _, v := range vs {
			if !httpfield.ValidValue(v) {
				continue
			}
			bw.WriteString(name)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// announced reports whether the response header named key in its Trailer
// field.
func (w *Response) announced(key string) bool {
	for _, list := range w.trailers {
		for _, f := range strings.Split(list, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == key {
				return true
			}
		}
	}
	return false
}

// httpDate returns the current time in the Date header format, cached per
// second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &cachedDate{sec: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[cachedDate]
