// Package upstream is the proxy's HTTP/1.1 client side: a Pool of
// connections to one endpoint, on which Exchange sends a request and reads
// its response, in the request's own goroutine. It replaces http.Transport
// on the data path; the proxy (internal/proxy) decides which endpoint,
// when to retry (DialError, Error's Kind) and what to do with the response
// (Hooks).
package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/proxy/httpfield"
	"github.com/lbsys/lbsys/internal/proxy/sockio"
)

// Pool is the connection pool to one endpoint.
//
// It replaces http.Transport on the data path. http.Transport runs two
// goroutines per connection (readLoop, writeLoop) and hands every request and
// response across channels; on a proxy pinned to one core that scheduling is
// a large share of the CPU per request. Here the request's own goroutine
// writes the request and reads the response on a pooled connection, and the
// connection goes back to the pool when the body reaches EOF.
type Pool struct {
	clock       clock.Clock // the proxy's: when connections went idle
	addr        string
	dialTimeout time.Duration
	idleTimeout time.Duration
	tunnelIdle  time.Duration // upgraded connections; 0: no limit

	mu      sync.Mutex
	idle    []*pconn // LIFO: the most recently used connection is the warmest
	maxIdle int
	closed  bool
}

type pconn struct {
	up     *Pool
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
	// dl is the deadline currently set on conn (zero: none).
	dl time.Time

	// raw is conn's file descriptor access (nil when conn has none), for
	// flushAwait; await is its callback, made once per connection. fd and
	// rawWrite are set while the callback writes; awaited and awaitErr
	// are its state.
	raw      syscall.RawConn
	sock     *sockio.Conn // conn's reads and writes (nil: conn's own)
	await    func(fd uintptr) bool
	fd       uintptr
	rawWrite bool
	awaited  bool
	awaitErr error
}

var (
	brPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	bwPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

// NewPool returns the pool for the endpoint at addr (host:port). clk is the
// proxy's clock, for how long connections idled; dialTimeout bounds a
// connect, idleTimeout how long a connection may idle in the pool (0: no
// limit), tunnelIdle how long an upgraded connection may carry no byte
// either way (0: no limit), and maxIdle how many connections are kept.
func NewPool(clk clock.Clock, addr string, dialTimeout, idleTimeout, tunnelIdle time.Duration, maxIdle int) *Pool {
	return &Pool{clock: clk, addr: addr, dialTimeout: dialTimeout, idleTimeout: idleTimeout, tunnelIdle: tunnelIdle, maxIdle: maxIdle}
}

// SetLimits applies new pool settings after a reload (as NewPool's).
func (u *Pool) SetLimits(dialTimeout, idleTimeout, tunnelIdle time.Duration, maxIdle int) {
	u.mu.Lock()
	u.dialTimeout, u.idleTimeout, u.tunnelIdle, u.maxIdle = dialTimeout, idleTimeout, tunnelIdle, maxIdle
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

// DialError is Exchange's failure to connect: nothing was sent, so any
// request may be retried elsewhere.
type DialError struct{ err error }

func (e *DialError) Error() string { return "connect to endpoint: " + e.err.Error() }
func (e *DialError) Unwrap() error { return e.err }

// get returns a pooled connection, or dials a new one. When fresh is set, a
// pooled connection is used only if a non-blocking read shows the peer has
// not closed it (for requests that must never be sent twice).
func (u *Pool) get(now time.Time, fresh bool) (*pconn, error) {
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

func (u *Pool) dial(timeout time.Duration) (*pconn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	c, err := d.Dial("tcp", u.addr)
	if err != nil {
		return nil, &DialError{err}
	}
	pc := &pconn{up: u, conn: c, sock: sockio.New(c)}
	pc.br = brPool.Get().(*bufio.Reader)
	if pc.sock != nil {
		pc.br.Reset(pc.sock)
	} else {
		pc.br.Reset(c)
	}
	pc.bw = bwPool.Get().(*bufio.Writer)
	pc.bw.Reset(pc)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			pc.raw = raw
			pc.await = pc.flushInAwait
		}
	}
	return pc, nil
}

// write writes p to the connection (sockio's raw system calls when it
// has a descriptor).
func (pc *pconn) write(p []byte) (int, error) {
	if pc.sock != nil {
		return pc.sock.Write(p)
	}
	return pc.conn.Write(p)
}

// Write is the buffered writer's way to the connection. Inside
// flushAwait's callback it writes to the descriptor directly, without
// waiting: what the socket does not take at once is written the usual way.
func (pc *pconn) Write(p []byte) (int, error) {
	if !pc.rawWrite {
		return pc.write(p)
	}
	n, errno := sockio.WriteFD(pc.fd, p)
	if errno == 0 && n == len(p) {
		return n, nil
	}
	if errno != 0 && errno != syscall.EAGAIN {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: pc.conn.LocalAddr(), Addr: pc.conn.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
	}
	m, err := pc.write(p[n:])
	return n + m, err
}

// flushAwait sends the buffered request and waits until the connection has
// something to read (the response), or its read deadline passes. A plain
// Flush followed by a read costs a read that finds nothing yet (EAGAIN)
// before the goroutine parks; here the runtime's poller is armed first
// (RawConn.Read), the request written from its callback, and the
// goroutine parks until the answer is there: one system call less per
// request. Errors of the wait itself are left to the read that follows,
// which meets them again (a deadline, a closed connection).
//
// The wait ends on what arrives after the poller is armed. An endpoint
// that closed the connection before (a FIN that came while it idled in
// the pool) answers the request with a reset, which ends it too; one
// that only shut down its sending side and lingers would not, so
// connections that idled long enough for an endpoint to time them out
// (AwaitMaxIdle) take the plain flush.
func (pc *pconn) flushAwait() error {
	if pc.raw == nil || pc.br.Buffered() > 0 || pc.bw.Buffered() == 0 {
		return pc.bw.Flush()
	}
	pc.awaited, pc.awaitErr = false, nil
	if err := pc.raw.Read(pc.await); err != nil && !pc.awaited {
		// The callback never ran (e.g. the read deadline had passed):
		// nothing was written.
		return pc.bw.Flush()
	}
	return pc.awaitErr
}

// AwaitMaxIdle is how long a pooled connection may have idled and still
// be flushed with flushAwait: well below any endpoint's keep-alive
// timeout. Exported for internal/proxy's TestAwaitAfterEndpointClosed,
// which pauses past it.
const AwaitMaxIdle = 250 * time.Millisecond

func (pc *pconn) flushInAwait(fd uintptr) bool {
	if pc.awaited {
		return true // readable now
	}
	pc.awaited = true
	pc.fd, pc.rawWrite = fd, true
	pc.awaitErr = pc.bw.Flush()
	pc.rawWrite = false
	return pc.awaitErr != nil // on success, wait for the answer
}

// alive probes an idle connection with one non-blocking peek at its
// socket: nothing to read means the endpoint still holds it open; the end
// of the stream (the endpoint closed it), bytes nobody asked for or an
// error mean it must not carry a request. (A read under a deadline already
// past cannot tell: net.Conn fails it before it reads.)
func (pc *pconn) alive() bool {
	if pc.br.Buffered() > 0 {
		return false // unsolicited bytes: the stream is out of sync
	}
	if pc.raw == nil {
		return true // no descriptor to look at (never so for TCP)
	}
	quiet := false
	if err := pc.raw.Control(func(fd uintptr) { quiet = sockio.Quiet(fd) }); err != nil {
		return false
	}
	return quiet
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

// CloseIdle closes pooled connections idle longer than the idle timeout
// (all of them when force is set, e.g. when the endpoint is removed; the
// pool then keeps no connection any more). now is the proxy's clock.
func (u *Pool) CloseIdle(now time.Time, force bool) {
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

// IdleCount returns the number of pooled (idle) connections.
func (u *Pool) IdleCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.idle)
}

// Hooks receives the end of a response body.
type Hooks interface {
	// BodyDone is called once, when the response body reached EOF, failed or
	// was closed; n is the number of body bytes read. At EOF (err nil) the
	// response's Trailer is filled in and not yet passed on.
	BodyDone(n int64, err error)
}

var aLongTimeAgo = time.Unix(1, 0)

// noStop stands in for context.AfterFunc's stop when nothing is watched.
func noStop() bool { return true }

// Exchange sends req on a connection to u and reads the response headers.
// now is the proxy's clock (pool bookkeeping), wall the wall clock at the
// same moment; headerDeadline bounds the wait for headers (zero: none) and
// bodyDeadline the whole exchange (zero: none), both on the wall clock. With watch set, the client going
// away (ctx done) cuts the exchange at once. The returned response's Body
// must be read to EOF or closed; hooks.BodyDone is then called. With
// fresh set, a pooled connection is used only if it is still open (for
// requests that must never be sent twice).
//
// A failure is a *DialError (nothing sent), an *httpfield.Error (a field
// of req may not be written: nothing sent) or an *Error.
func (u *Pool) Exchange(ctx context.Context, watch bool, req *http.Request, now, wall time.Time, fresh bool,
	headerDeadline, bodyDeadline time.Time, hooks Hooks) (*http.Response, error) {

	pc, err := u.get(now, fresh)
	if err != nil {
		return nil, err
	}
	c := pc.conn
	pc.setDeadline(wall, headerDeadline, bodyDeadline)
	// Abort the exchange when the client goes away: unblock any read or
	// write on the connection.
	stop := noStop
	if watch {
		stop = context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	}

	err = writeRequestBuffered(pc.bw, req)
	if err == nil {
		if pc.idleAt.IsZero() || now.Sub(pc.idleAt) < AwaitMaxIdle {
			err = pc.flushAwait()
		} else {
			err = pc.bw.Flush()
		}
	}
	if err != nil {
		stop()
		pc.close()
		if fe := (*httpfield.Error)(nil); errors.As(err, &fe) {
			return nil, err // nothing was sent: not the endpoint's doing
		}
		return nil, classifyIOError(ctx, err)
	}
	resp, err := readResponse(pc.br, req)
	if err != nil {
		stop()
		pc.close()
		if fe := (*httpfield.Error)(nil); errors.As(err, &fe) {
			return nil, &Error{Kind: "invalid", err: err}
		}
		return nil, classifyIOError(ctx, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// A tunnel outlives the request: its deadlines (timeouts.request)
		// no longer apply, only the idle limit does.
		c.SetDeadline(time.Time{})
		pc.dl = time.Time{}
		u.mu.Lock()
		idle := u.tunnelIdle
		u.mu.Unlock()
		uc := &upgradedConn{pc: pc, stop: stop, hooks: hooks}
		uc.watchIdle(idle)
		resp.Body = uc
		return resp, nil
	}
	if !headerDeadline.IsZero() && headerDeadline != bodyDeadline {
		c.SetDeadline(bodyDeadline) // zero clears
		pc.dl = bodyDeadline
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
// other than 101. A field name that is not a token makes the response
// unusable (an *httpfield.Error): http.ReadResponse accepts "Content-Length : 5"
// without framing by it, and passed on to the client it could be framed by
// a lenient one (response splitting). net/http's parser has checked the
// values.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		if resp, ok := readSimpleResponse(br, req); ok {
			return resp, nil // its names are tokens: checked as it parsed them
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			if err := httpfield.CheckNames(resp.Header, "response header"); err != nil {
				return nil, err
			}
			if err := httpfield.CheckNames(resp.Trailer, "response trailer"); err != nil {
				return nil, err
			}
			return resp, nil
		}
		// 100 Continue and 103 Early Hints carry no body and are not
		// passed on.
	}
}

// Error is an exchange's failure after the connection was made,
// classified for retry decisions and the client's error response.
type Error struct {
	Kind string // "reset", "timeout", "canceled" or "invalid" (a malformed response)
	err  error
}

func (e *Error) Error() string { return e.Kind + ": " + e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

func classifyIOError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return &Error{Kind: "timeout", err: ctxErr}
		}
		return &Error{Kind: "canceled", err: ctxErr}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &Error{Kind: "timeout", err: err}
	}
	return &Error{Kind: "reset", err: err}
}

// upstreamBody wraps a response body: it returns the connection to the pool
// at EOF and reports the end of the exchange exactly once.
type upstreamBody struct {
	pc       *pconn
	rc       io.ReadCloser
	stop     func() bool
	hooks    Hooks
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
		b.finish(ErrBodyClosedEarly)
	}
	return nil
}

// ErrBodyClosedEarly is the error Hooks.BodyDone gets when the response
// body was closed before its end.
var ErrBodyClosedEarly = errors.New("response body closed before the end")

// DropInvalidTrailers removes the fields of a response trailer that may not
// be passed on: trailers arrive after the body, when the response can no
// longer be refused, so they are dropped instead.
func DropInvalidTrailers(h http.Header) {
	for k, vs := range h {
		if !validTrailer(k) {
			delete(h, k)
			continue
		}
		for _, v := range vs {
			if !httpfield.ValidValue(v) {
				delete(h, k)
				break
			}
		}
	}
}

func (b *upstreamBody) finish(err error) {
	if b.done {
		return
	}
	b.done = true
	// If the abort callback already ran, the connection's deadline is in the
	// past: it must not go back to the pool.
	aborted := !b.stop()
	if err == nil && b.reusable && !aborted {
		b.pc.put(b.pc.up.clock.Now())
	} else {
		b.pc.close()
	}
	if b.hooks != nil {
		b.hooks.BodyDone(b.n, err)
	}
}

// upgradedConn is the body of a 101 response: the raw connection, readable
// and writable, as httputil.ReverseProxy expects for protocol upgrades.
// Every byte of the tunnel passes through it (the client's are written to
// it, the endpoint's read from it), so it alone can tell when the tunnel
// went idle: then it closes the endpoint's connection, which ends the
// tunnel on both sides (ReverseProxy closes the client's when a copy
// fails).
type upgradedConn struct {
	pc    *pconn
	stop  func() bool
	hooks Hooks
	n     atomic.Int64 // read by both copy directions' goroutines
	once  sync.Once

	idle  time.Duration
	last  atomic.Int64 // unix ns of the last byte either way
	timer *time.Timer  // nil without an idle limit
}

// watchIdle starts the idle watchdog (idle 0: none).
func (u *upgradedConn) watchIdle(idle time.Duration) {
	if idle <= 0 {
		return
	}
	u.idle = idle
	u.last.Store(time.Now().UnixNano())
	// Armed after the assignment, so checkIdle always finds the timer.
	u.timer = time.AfterFunc(math.MaxInt64, u.checkIdle)
	u.timer.Reset(idle)
}

func (u *upgradedConn) checkIdle() {
	quiet := time.Duration(time.Now().UnixNano() - u.last.Load())
	if quiet >= u.idle {
		u.pc.conn.Close()
		return
	}
	u.timer.Reset(u.idle - quiet)
}

func (u *upgradedConn) Read(p []byte) (int, error) {
	n, err := u.pc.br.Read(p)
	if n > 0 {
		u.n.Add(int64(n))
		if u.timer != nil {
			u.last.Store(time.Now().UnixNano())
		}
	}
	return n, err
}

func (u *upgradedConn) Write(p []byte) (int, error) {
	n, err := u.pc.write(p)
	if n > 0 && u.timer != nil {
		u.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (u *upgradedConn) Close() error {
	u.once.Do(func() {
		if u.timer != nil {
			u.timer.Stop()
		}
		u.stop()
		u.pc.conn.Close()
		if u.hooks != nil {
			u.hooks.BodyDone(u.n.Load(), nil)
		}
	})
	return nil
}

// writeRequest writes req in HTTP/1.1 wire format, with canonical framing
// only: a Content-Length, or (length unknown) chunked transfer coding, never
// both and never one taken from the client's header map. Every field name
// and value is checked before the first byte is written (an *httpfield.Error),
// so an invalid field never reaches the endpoint.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	if err := writeRequestBuffered(bw, req); err != nil {
		return err
	}
	return bw.Flush()
}

// writeRequestBuffered is writeRequest without the final flush: the end
// of the request may still be in bw.
func writeRequestBuffered(bw *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	target, query := req.URL.Opaque, ""
	if target == "" {
		if target = req.URL.EscapedPath(); target == "" {
			target = "/"
		}
		query = req.URL.RawQuery
	}
	if err := checkRequestLine(req.Method, target, query, host); err != nil {
		return err
	}
	if err := httpfield.Check(req.Header, "request header"); err != nil {
		return err
	}
	chunked := req.ContentLength < 0 || len(req.TransferEncoding) > 0
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(target)
	if req.URL.Opaque == "" && (req.URL.ForceQuery || query != "") {
		bw.WriteByte('?')
		bw.WriteString(query)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // framing is the proxy's, never the client's
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue // ReverseProxy's way of saying "send no User-Agent"
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		writeTrailerNames(bw, req.Trailer)
	} else if req.ContentLength > 0 || bodyMethod(req.Method) {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	switch {
	case chunked:
		if err := writeChunked(bw, req); err != nil {
			return err
		}
	case req.ContentLength > 0 && req.Body != nil:
		n, err := io.CopyN(bw, req.Body, req.ContentLength)
		req.Body.Close()
		if err != nil {
			if err == io.EOF {
				return errShortBody(n, req.ContentLength)
			}
			return err
		}
	case req.Body != nil:
		req.Body.Close()
	}
	return nil
}

// checkRequestLine checks what goes into the request line and the Host
// field: the parsers in front have checked the client's, but a value the
// proxy computed (or a hook set) must not be able to split the request
// either.
func checkRequestLine(method, target, query, host string) error {
	if !httpfield.ValidName(method) { // a method is a token too
		return &httpfield.Error{Where: "request method", Name: method}
	}
	if !httpfield.ValidHost(host) {
		return &httpfield.Error{Where: "request header", Name: "Host", Value: true}
	}
	for _, s := range [...]string{target, query} {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c == 0x7f {
				return &httpfield.Error{Where: "request target", Name: target, Value: true}
			}
		}
	}
	return nil
}

// writeTrailerNames announces the request's trailer fields (valid names
// only: the others are not sent either).
func writeTrailerNames(bw *bufio.Writer, tr http.Header) {
	first := true
	for k := range tr {
		if !validTrailer(k) {
			continue
		}
		if first {
			bw.WriteString("Trailer: ")
			first = false
		} else {
			bw.WriteString(", ")
		}
		bw.WriteString(k)
	}
	if !first {
		bw.WriteString("\r\n")
	}
}

// validTrailer reports whether a trailer field may be forwarded: a valid
// name that is not a framing or routing field (RFC 9110 §6.5.1).
func validTrailer(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Content-Length", "Transfer-Encoding", "Trailer", "Host", "Connection":
		return false
	}
	return httpfield.ValidName(k)
}

// writeChunked sends the request body in chunked transfer coding, one chunk
// per read so that a streamed upload is not held back, then the trailer
// fields the body ended with (read only now: they arrive after the body).
func writeChunked(bw *bufio.Writer, req *http.Request) error {
	if req.Body != nil {
		bp := chunkBufs.Get().(*[]byte)
		buf := *bp
		var err error
		for {
			var n int
			n, err = req.Body.Read(buf)
			if n > 0 {
				bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(n), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:n])
				bw.WriteString("\r\n")
				if ferr := bw.Flush(); ferr != nil {
					err = ferr
					break
				}
			}
			if err != nil {
				break
			}
		}
		chunkBufs.Put(bp)
		req.Body.Close()
		if err != io.EOF {
			return err
		}
	}
	bw.WriteString("0\r\n")
	for k, vs := range req.Trailer {
		if !validTrailer(k) {
			continue
		}
		for _, v := range vs {
			if !httpfield.ValidValue(v) {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return nil
}

// chunkBufs are writeChunked's read buffers.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func errShortBody(n, want int64) error {
	return errors.New("request body shorter than its Content-Length: " + strconv.FormatInt(n, 10) + " of " + strconv.FormatInt(want, 10) + " bytes")
}

// bodyMethod reports methods whose requests conventionally carry a
// Content-Length even when empty.
func bodyMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}
