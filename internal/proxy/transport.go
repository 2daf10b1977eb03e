package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is the connection pool to one endpoint.
//
// It replaces http.Transport on the data path. http.Transport runs two
// goroutines per connection (readLoop, writeLoop) and hands every request and
// response across channels; on a proxy pinned to one core that scheduling is
// a large share of the CPU per request. Here the request's own goroutine
// writes the request and reads the response on a pooled connection, and the
// connection goes back to the pool when the body reaches EOF.
type upstream struct {
	addr        string
	dialTimeout time.Duration
	idleTimeout time.Duration

	mu      sync.Mutex
	idle    []*pconn // LIFO: the most recently used connection is the warmest
	maxIdle int
	closed  bool
}

type pconn struct {
	up     *upstream
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
	// dl is the deadline currently set on conn (zero: none).
	dl time.Time
}

var (
	brPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	bwPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

func newUpstream(addr string, dialTimeout, idleTimeout time.Duration, maxIdle int) *upstream {
	return &upstream{addr: addr, dialTimeout: dialTimeout, idleTimeout: idleTimeout, maxIdle: maxIdle}
}

// setLimits applies new pool settings after a reload.
func (u *upstream) setLimits(dialTimeout, idleTimeout time.Duration, maxIdle int) {
	u.mu.Lock()
	u.dialTimeout, u.idleTimeout, u.maxIdle = dialTimeout, idleTimeout, maxIdle
	var drop []*pconn
	if len(u.idle) > maxIdle {
		drop = append(drop, u.idle[:len(u.idle)-maxIdle]...)
		u.idle = append(u.idle[:0], u.idle[len(u.idle)-maxIdle:]...)
	}
	u.mu.Unlock()
	for _, pc := range drop {
		pc.close()
	}
}

// errDial marks a failure to connect: nothing was sent, so any request may be
// retried elsewhere.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect to endpoint: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// get returns a pooled connection, or dials a new one. When fresh is set, a
// pooled connection is used only if a non-blocking read shows the peer has
// not closed it (for requests that must never be sent twice).
func (u *upstream) get(now time.Time, fresh bool) (*pconn, error) {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			dt := u.dialTimeout
			u.mu.Unlock()
			return u.dial(dt)
		}
		pc := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		idleTimeout := u.idleTimeout
		u.mu.Unlock()
		if idleTimeout > 0 && now.Sub(pc.idleAt) > idleTimeout {
			pc.close()
			continue
		}
		if fresh && !pc.alive() {
			pc.close()
			continue
		}
		pc.reused = true
		return pc, nil
	}
}

func (u *upstream) dial(timeout time.Duration) (*pconn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	c, err := d.Dial("tcp", u.addr)
	if err != nil {
		return nil, &dialError{err}
	}
	br := brPool.Get().(*bufio.Reader)
	br.Reset(c)
	bw := bwPool.Get().(*bufio.Writer)
	bw.Reset(c)
	return &pconn{up: u, conn: c, br: br, bw: bw}, nil
}

// alive probes an idle connection with a non-blocking read: a closed peer
// shows as EOF, a live one as a timeout. Costs one syscall.
func (pc *pconn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false // unsolicited bytes: the stream is out of sync
	}
	pc.conn.SetReadDeadline(aLongTimeAgo)
	_, err := pc.br.Peek(1)
	pc.dl = aLongTimeAgo
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// put returns a healthy connection to the pool.
func (pc *pconn) put(now time.Time) {
	u := pc.up
	// The deadline left on the connection is harmless while it idles: the
	// next exchange sets or clears it first, and idle connections are never
	// read (alive uses its own deadline).
	pc.idleAt = now
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.maxIdle {
		u.mu.Unlock()
		pc.close()
		return
	}
	u.idle = append(u.idle, pc)
	u.mu.Unlock()
}

func (pc *pconn) close() {
	pc.conn.Close()
	if pc.br != nil {
		pc.br.Reset(nil)
		brPool.Put(pc.br)
		pc.br = nil
	}
	if pc.bw != nil {
		pc.bw.Reset(nil)
		bwPool.Put(pc.bw)
		pc.bw = nil
	}
}

// closeIdle closes pooled connections idle longer than the idle timeout (all
// of them when force is set, e.g. when the endpoint is removed).
func (u *upstream) closeIdle(now time.Time, force bool) {
	u.mu.Lock()
	var drop []*pconn
	keep := u.idle[:0]
	for _, pc := range u.idle {
		if force || (u.idleTimeout > 0 && now.Sub(pc.idleAt) > u.idleTimeout) {
			drop = append(drop, pc)
		} else {
			keep = append(keep, pc)
		}
	}
	for i := len(keep); i < len(u.idle); i++ {
		u.idle[i] = nil
	}
	u.idle = keep
	if force {
		u.closed = true
	}
	u.mu.Unlock()
	for _, pc := range drop {
		pc.close()
	}
}

func (u *upstream) idleCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.idle)
}

// exchangeHooks receives the end of a response body.
type exchangeHooks interface {
	// bodyDone is called once, when the response body reached EOF, failed or
	// was closed; n is the number of body bytes read.
	bodyDone(n int64, err error)
}

var aLongTimeAgo = time.Unix(1, 0)

// noStop stands in for context.AfterFunc's stop when nothing is watched.
func noStop() bool { return true }

// exchange sends req on a connection to u and reads the response headers.
// headerDeadline bounds the wait for headers (zero: none); bodyDeadline
// bounds the whole exchange (zero: none). With watch set, the client going
// away (ctx done) cuts the exchange at once. The returned response's Body
// must be read to EOF or closed; hooks.bodyDone is then called.
func (u *upstream) exchange(ctx context.Context, watch bool, req *http.Request, now time.Time, fresh bool,
	headerDeadline, bodyDeadline time.Time, hooks exchangeHooks) (*http.Response, error) {

	pc, err := u.get(now, fresh)
	if err != nil {
		return nil, err
	}
	c := pc.conn
	pc.setDeadline(now, headerDeadline, bodyDeadline)
	// Abort the exchange when the client goes away: unblock any read or
	// write on the connection.
	stop := noStop
	if watch {
		stop = context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	}

	if err := writeRequest(pc.bw, req); err != nil {
		stop()
		pc.close()
		return nil, classifyIOError(ctx, err)
	}
	resp, err := readResponse(pc.br, req)
	if err != nil {
		stop()
		pc.close()
		return nil, classifyIOError(ctx, err)
	}
	if !headerDeadline.IsZero() && headerDeadline != bodyDeadline {
		c.SetDeadline(bodyDeadline) // zero clears
		pc.dl = bodyDeadline
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		uc := &upgradedConn{pc: pc, stop: stop, hooks: hooks}
		resp.Body = uc
		return resp, nil
	}
	b := &upstreamBody{pc: pc, rc: resp.Body, stop: stop, hooks: hooks,
		reusable: !resp.Close && !req.Close}
	resp.Body = b
	if resp.ContentLength == 0 || req.Method == http.MethodHead {
		// Nothing to read: release the connection now rather than when the
		// proxy gets round to closing the body.
		b.finish(nil)
	}
	return resp, nil
}

// setDeadline arms the connection for one exchange. A single deadline for
// the whole exchange (the usual case: a request timeout, no per-try timeout)
// may fire up to 1/32 of the timeout late: then the deadline already set by
// the previous exchange on this connection is usually good enough and the
// timer is not touched, which saves a timer update per request. Per-try
// (header) deadlines are always exact.
func (pc *pconn) setDeadline(now, headerDeadline, bodyDeadline time.Time) {
	switch {
	case headerDeadline.IsZero() && bodyDeadline.IsZero():
		if !pc.dl.IsZero() {
			pc.conn.SetDeadline(time.Time{})
			pc.dl = time.Time{}
		}
	case headerDeadline.IsZero() || headerDeadline.Equal(bodyDeadline):
		want := bodyDeadline
		if want.IsZero() {
			want = headerDeadline
		}
		slack := want.Sub(now) / 32
		if pc.dl.Before(want) || pc.dl.After(want.Add(slack)) {
			pc.dl = want.Add(slack / 2)
			pc.conn.SetDeadline(pc.dl)
		}
	default:
		pc.conn.SetDeadline(headerDeadline)
		pc.dl = headerDeadline
	}
}

// readResponse reads the final response, skipping 1xx interim responses
// other than 101.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
		// 100 Continue and 103 Early Hints carry no body.
	}
}

// upstreamError is an attempt's transport failure after the connection was
// made, classified for retry decisions and the client's error response.
type upstreamError struct {
	kind string // "reset", "timeout" or "canceled"
	err  error
}

func (e *upstreamError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

func classifyIOError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &upstreamError{kind: "timeout", err: ctxErr}
		}
		return &upstreamError{kind: "canceled", err: ctxErr}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &upstreamError{kind: "timeout", err: err}
	}
	return &upstreamError{kind: "reset", err: err}
}

// upstreamBody wraps a response body: it returns the connection to the pool
// at EOF and reports the end of the exchange exactly once.
type upstreamBody struct {
	pc       *pconn
	rc       io.ReadCloser
	stop     func() bool
	hooks    exchangeHooks
	n        int64
	reusable bool
	done     bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err != nil {
		if err == io.EOF {
			b.finish(nil)
		} else {
			b.finish(err)
		}
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if !b.done {
		// Closed before EOF: the rest of the body is unread, so the
		// connection cannot be reused.
		b.reusable = false
		b.finish(errBodyClosedEarly)
	}
	return nil
}

var errBodyClosedEarly = errors.New("response body closed before the end")

func (b *upstreamBody) finish(err error) {
	if b.done {
		return
	}
	b.done = true
	// If the abort callback already ran, the connection's deadline is in the
	// past: it must not go back to the pool.
	aborted := !b.stop()
	if err == nil && b.reusable && !aborted {
		b.pc.put(time.Now())
	} else {
		b.pc.close()
	}
	if b.hooks != nil {
		b.hooks.bodyDone(b.n, err)
	}
}

// upgradedConn is the body of a 101 response: the raw connection, readable
// and writable, as httputil.ReverseProxy expects for protocol upgrades.
type upgradedConn struct {
	pc    *pconn
	stop  func() bool
	hooks exchangeHooks
	n     atomic.Int64 // read by both copy directions' goroutines
	once  sync.Once
}

func (u *upgradedConn) Read(p []byte) (int, error) {
	n, err := u.pc.br.Read(p)
	u.n.Add(int64(n))
	return n, err
}

func (u *upgradedConn) Write(p []byte) (int, error) { return u.pc.conn.Write(p) }

func (u *upgradedConn) Close() error {
	u.once.Do(func() {
		u.stop()
		u.pc.conn.Close()
		if u.hooks != nil {
			u.hooks.bodyDone(u.n.Load(), nil)
		}
	})
	return nil
}

// writeRequest writes req in HTTP/1.1 wire format. The common case (no body
// or a body of known length) is written directly; anything unusual
// (chunked bodies, trailers) goes through http.Request.Write.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if req.ContentLength < 0 || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		if err := req.Write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	if req.URL.Opaque != "" {
		bw.WriteString(req.URL.Opaque)
	} else {
		p := req.URL.EscapedPath()
		if p == "" {
			p = "/"
		}
		bw.WriteString(p)
		if req.URL.ForceQuery || req.URL.RawQuery != "" {
			bw.WriteByte('?')
			bw.WriteString(req.URL.RawQuery)
		}
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue // ReverseProxy's way of saying "send no User-Agent"
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			writeHeaderValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if req.ContentLength > 0 || bodyMethod(req.Method) {
		bw.WriteString("Content-Length: ")
		var buf [20]byte
		bw.Write(strconv.AppendInt(buf[:0], req.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if req.ContentLength > 0 && req.Body != nil {
		n, err := io.CopyN(bw, req.Body, req.ContentLength)
		req.Body.Close()
		if err != nil {
			if err == io.EOF {
				return errShortBody(n, req.ContentLength)
			}
			return err
		}
	} else if req.Body != nil {
		req.Body.Close()
	}
	return bw.Flush()
}

func errShortBody(n, want int64) error {
	return errors.New("request body shorter than its Content-Length: " + strconv.FormatInt(n, 10) + " of " + strconv.FormatInt(want, 10) + " bytes")
}

// bodyMethod reports methods whose requests conventionally carry a
// Content-Length even when empty.
func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// writeHeaderValue writes v, replacing CR and LF (which the server already
// rejects on input, but a header added by a hook might contain) with spaces
// so a value can never split the header block.
func writeHeaderValue(bw *bufio.Writer, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			b := []byte(v)
			for j := i; j < len(b); j++ {
				if b[j] == '\r' || b[j] == '\n' {
					b[j] = ' '
				}
			}
			bw.Write(b)
			return
		}
	}
	bw.WriteString(v)
}
