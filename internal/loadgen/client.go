package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Client is a lean HTTP/1.1 keep-alive client for one target.
//
// It exists because net/http's Transport runs two goroutines per connection
// and parses every header into a map: at tens of thousands of requests per
// second on one core that bookkeeping, not the network, would limit the
// generator (and a limited generator silently becomes closed-loop). Here
// the request's goroutine writes the request and reads the response on a
// pooled connection, headers are scanned for the few the generator needs
// and bodies are discarded unread. Safe for concurrent use.
type Client struct {
	addr string // dialled
	host string // Host header

	mu     sync.Mutex
	idle   []*conn // LIFO: the warmest connection first
	live   map[*conn]struct{}
	closed bool
	// maxIdle bounds the idle connections kept: more in-flight requests
	// than this still get connections, but these are closed afterwards.
	maxIdle int
	dials   atomic.Int64
	dialing int       // dials in progress (at most maxConcurrentDials)
	waiters []*waiter // requests waiting for a connection, FIFO
}

type conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
	dl time.Time // the deadline set on nc
}

// Request is one request to send. Strings are borrowed, not copied.
type Request struct {
	Method string
	Path   string // with the query
	// Cookie is the Cookie header value ("" for none).
	Cookie string
	// IdempotencyKey is sent as Idempotency-Key when not empty.
	IdempotencyKey string
	// Body is sent as application/json when not nil.
	Body []byte
}

// Response is what the generator keeps of a response.
type Response struct {
	Status int
	// Cookies receives the "name=value" part of every Set-Cookie header
	// (appended; pass a slice of length 0 to reuse its memory).
	Cookies []string
	// BodyBytes is the length of the discarded body.
	BodyBytes int64
	// Reason is the X-Lbsys-Error (the proxy's) or X-Shop-Error (the
	// shop's) header of an error response (status >= 400), at most
	// maxReasonLen bytes: why it failed, for the summary's top errors.
	// Empty for other responses, so a success allocates nothing for it.
	Reason string
}

// maxReasonLen bounds Response.Reason: reasons are short codes
// ("no_route", "overloaded"), and the summary keeps a few of them.
const maxReasonLen = 64

// printable copies b with every byte outside printable ASCII as '?': a
// reason is shown on a terminal and in JSON as sent by the target.
func printable(b []byte) string {
	out := []byte(string(b))
	for i, c := range out {
		if c < 0x20 || c > 0x7e {
			out[i] = '?'
		}
	}
	return string(out)
}

// ErrorKind classifies a request that did not get a response, or got an
// error status.
type ErrorKind uint8

// Error kinds, as reported in summaries.
const (
	KindNone       ErrorKind = iota
	KindConnect              // could not connect: nothing was sent
	KindTimeout              // no complete response before the deadline
	KindReset                // the connection failed after connecting (closed, reset, malformed response)
	KindStatus4xx            // a 4xx response
	KindStatus5xx            // a 5xx response
	KindDropped              // no in-flight slot: never sent
	KindUnfinished           // still in flight when the run ended and was cut
	numKinds
)

var kindNames = [numKinds]string{"none", "connect", "timeout", "reset", "status_4xx", "status_5xx", "dropped", "unfinished"}

// String returns the kind's name as used in summaries ("status_5xx").
func (k ErrorKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// RequestError is a failed exchange with its kind.
type RequestError struct {
	Kind ErrorKind
	Err  error
}

// Error returns the kind and the cause.
func (e *RequestError) Error() string { return e.Kind.String() + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

// KindOf returns the kind of an error returned by Client.Do.
func KindOf(err error) ErrorKind {
	if err == nil {
		return KindNone
	}
	var re *RequestError
	if errors.As(err, &re) {
		return re.Kind
	}
	return KindReset
}

// errClientClosed is the cause of requests cut by Close.
var errClientClosed = errors.New("client closed at the end of the run")

// NewClient returns a client that dials addr (host:port) and sends host as
// the Host header. maxIdle bounds the idle connections kept for reuse.
func NewClient(addr, host string, maxIdle int) *Client {
	return &Client{addr: addr, host: host, live: map[*conn]struct{}{}, maxIdle: max(maxIdle, 1)}
}

// Close closes every connection, idle or busy: requests in flight fail at
// once with KindUnfinished. The run calls it when the drain time is over.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	live := make([]*conn, 0, len(c.live))
	for cn := range c.live {
		live = append(live, cn)
	}
	c.idle = nil
	waiters := c.waiters
	c.waiters = nil
	c.mu.Unlock()
	for _, w := range waiters {
		w.ch <- handoff{}
	}
	for _, cn := range live {
		cn.nc.Close()
	}
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Conns returns the number of open connections (for tests and reports).
func (c *Client) Conns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.live)
}

// maxConcurrentDials bounds the connections being opened at once. After a
// stall (a GC pause, a preempted core) hundreds of requests come due
// together; each would dial its own connection, and a dial costs several
// requests' worth of CPU on both ends, so the catch-up could cost more than
// the backlog and never end. Requests beyond the bound wait for the first
// connection that frees up or for a dial slot, whichever comes first; the
// wait is part of their latency (measured from the schedule).
const maxConcurrentDials = 16

// handoff passes a free connection or a dial slot to a waiting request; the
// zero value means the client was closed.
type handoff struct {
	cn   *conn
	dial bool
}

type waiter struct{ ch chan handoff }

var errWaitTimeout = &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}

// get returns an idle connection (reused = true) or dials one.
func (c *Client) get(deadline time.Time) (*conn, bool, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, errClientClosed
	}
	if n := len(c.idle); n > 0 {
		cn := c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, true, nil
	}
	if c.dialing < maxConcurrentDials {
		c.dialing++
		c.mu.Unlock()
		return c.dial(deadline)
	}
	w := &waiter{ch: make(chan handoff, 1)}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()

	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var h handoff
	select {
	case h = <-w.ch:
	case <-t.C:
		c.mu.Lock()
		for i, x := range c.waiters {
			if x == w {
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				c.mu.Unlock()
				return nil, false, errWaitTimeout
			}
		}
		c.mu.Unlock()
		// Handed something just as the wait ended: pass it on.
		h = <-w.ch
		switch {
		case h.cn != nil:
			c.put(h.cn)
		case h.dial:
			c.dialDone()
		}
		return nil, false, errWaitTimeout
	}
	switch {
	case h.cn != nil:
		return h.cn, true, nil
	case h.dial:
		return c.dial(deadline)
	}
	return nil, false, errClientClosed
}

// dial opens a connection; the caller holds a dial slot.
func (c *Client) dial(deadline time.Time) (*conn, bool, error) {
	c.dials.Add(1)
	d := net.Dialer{Deadline: deadline}
	nc, err := d.Dial("tcp", c.addr)
	c.dialDone()
	if err != nil {
		return nil, false, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true) // default in Go; explicit because latency is what we measure
	}
	cn := &conn{nc: nc, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 2<<10)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, false, errClientClosed
	}
	c.live[cn] = struct{}{}
	c.mu.Unlock()
	return cn, false, nil
}

// dialDone passes a dial slot to the first waiter, or frees it.
func (c *Client) dialDone() {
	c.mu.Lock()
	if len(c.waiters) > 0 && !c.closed {
		w := c.popWaiter()
		c.mu.Unlock()
		w.ch <- handoff{dial: true}
		return
	}
	c.dialing--
	c.mu.Unlock()
}

// popWaiter removes the first waiter; c.mu is held.
func (c *Client) popWaiter() *waiter {
	w := c.waiters[0]
	c.waiters[0] = nil
	c.waiters = c.waiters[1:]
	return w
}

func (c *Client) put(cn *conn) {
	c.mu.Lock()
	if len(c.waiters) > 0 && !c.closed {
		w := c.popWaiter()
		c.mu.Unlock()
		w.ch <- handoff{cn: cn}
		return
	}
	if !c.closed && len(c.idle) < c.maxIdle {
		c.idle = append(c.idle, cn)
		c.mu.Unlock()
		return
	}
	delete(c.live, cn)
	c.mu.Unlock()
	cn.nc.Close()
}

func (c *Client) discard(cn *conn) {
	c.mu.Lock()
	delete(c.live, cn)
	c.mu.Unlock()
	cn.nc.Close()
}

// Do sends req and reads the response into resp. now is the send time (the
// caller has read the clock already) and deadline bounds the whole exchange,
// connecting included. A connection the server closed while it was idle is
// detected (no response byte at all) and the request sent once more on a
// fresh connection, but only if it is safe to repeat (GET, HEAD or an
// Idempotency-Key), as net/http does.
func (c *Client) Do(req *Request, now, deadline time.Time, resp *Response) error {
	for attempt := 0; ; attempt++ {
		cn, reused, err := c.get(deadline)
		if err != nil {
			switch {
			case errors.Is(err, errClientClosed):
				return &RequestError{KindUnfinished, err}
			case err == errWaitTimeout:
				// No connection freed up before the deadline: the
				// request timed out inside the generator, which is
				// behind (and says so in its lag).
				return &RequestError{KindTimeout, err}
			}
			return &RequestError{KindConnect, err}
		}
		cn.setDeadline(now, deadline)
		keep, err := cn.roundTrip(req, c.host, resp)
		if err == nil {
			if keep {
				c.put(cn)
			} else {
				c.discard(cn)
			}
			return nil
		}
		c.discard(cn)
		if reused && attempt == 0 && errors.Is(err, errNothingReceived) && replayable(req) && !c.isClosed() {
			continue
		}
		return c.classify(err)
	}
}

func replayable(req *Request) bool {
	return req.Method == "GET" || req.Method == "HEAD" || req.IdempotencyKey != ""
}

func (c *Client) classify(err error) error {
	switch {
	case c.isClosed():
		return &RequestError{KindUnfinished, err}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &RequestError{KindTimeout, err}
	default:
		return &RequestError{KindReset, err}
	}
}

// setDeadline arms the connection for one exchange. Updating a
// connection's deadline resets a runtime timer, a measurable cost per
// request; so a deadline already set within 1/32 of the timeout after the
// wanted one is kept: a timeout may fire up to ~3% late, never early.
func (cn *conn) setDeadline(now, want time.Time) {
	if want.IsZero() {
		if !cn.dl.IsZero() {
			cn.nc.SetDeadline(time.Time{})
			cn.dl = time.Time{}
		}
		return
	}
	slack := want.Sub(now) / 32
	if cn.dl.Before(want) || cn.dl.After(want.Add(slack)) {
		cn.dl = want.Add(slack / 2)
		cn.nc.SetDeadline(cn.dl)
	}
}

// errNothingReceived marks a connection that failed before any response
// byte arrived: on a reused connection, the server had closed it idle.
var errNothingReceived = errors.New("connection closed before any response byte")

type protocolError string

func (e protocolError) Error() string { return "malformed response: " + string(e) }

// roundTrip writes req and reads the response; keep reports whether the
// connection can carry another request.
func (cn *conn) roundTrip(req *Request, host string, resp *Response) (keep bool, err error) {
	if err := writeRequest(cn.bw, req, host); err != nil {
		if isPeerClosed(err) {
			return false, errors.Join(errNothingReceived, err)
		}
		return false, err
	}
	return readResponse(cn.br, req.Method == "HEAD", resp)
}

func writeRequest(bw *bufio.Writer, req *Request, host string) error {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.Path)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\nUser-Agent: lbsys-load\r\n")
	if req.Cookie != "" {
		bw.WriteString("Cookie: ")
		bw.WriteString(req.Cookie)
		bw.WriteString("\r\n")
	}
	if req.IdempotencyKey != "" {
		bw.WriteString("Idempotency-Key: ")
		bw.WriteString(req.IdempotencyKey)
		bw.WriteString("\r\n")
	}
	if req.Body != nil {
		bw.WriteString("Content-Type: application/json\r\n")
	}
	if req.Body != nil || req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH" {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], int64(len(req.Body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	bw.Write(req.Body)
	return bw.Flush()
}

func isPeerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// maxHeaderLines bounds a response's header block.
const maxHeaderLines = 256

// readResponse reads one final response (skipping 1xx interim ones),
// keeping the status and Set-Cookie values and discarding the body.
func readResponse(br *bufio.Reader, head bool, resp *Response) (keep bool, err error) {
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if first && len(line) == 0 && isPeerClosed(err) {
				return false, errors.Join(errNothingReceived, err)
			}
			return false, readErr(err, "status line")
		}
		first = false
		status, minor, err := parseStatusLine(line)
		if err != nil {
			return false, err
		}
		keep = minor >= 1 // HTTP/1.0 closes unless it says keep-alive
		contentLength := int64(-1)
		chunked := false
		for n := 0; ; n++ {
			if n >= maxHeaderLines {
				return false, protocolError("more than " + strconv.Itoa(maxHeaderLines) + " header lines")
			}
			line, err := br.ReadSlice('\n')
			if err != nil {
				return false, readErr(err, "header")
			}
			line = trimCRLF(line)
			if len(line) == 0 {
				break
			}
			if line[0] == ' ' || line[0] == '\t' {
				continue // obsolete line folding: a continuation of a header we ignore
			}
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return false, protocolError("header line without a colon")
			}
			name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
			switch {
			case equalFold(name, "content-length"):
				v, ok := parseDecimal(value)
				if !ok || (contentLength >= 0 && v != contentLength) {
					return false, protocolError("bad Content-Length " + strconv.Quote(string(value)))
				}
				contentLength = v
			case equalFold(name, "transfer-encoding"):
				if bytes.Contains(bytes.ToLower(value), []byte("chunked")) {
					chunked = true
				}
			case equalFold(name, "connection"):
				v := bytes.ToLower(value)
				if bytes.Contains(v, []byte("close")) {
					keep = false
				} else if bytes.Contains(v, []byte("keep-alive")) && minor == 0 {
					keep = true
				}
			case status >= 400 && resp.Reason == "" && (equalFold(name, "x-lbsys-error") || equalFold(name, "x-shop-error")):
				resp.Reason = printable(value[:min(len(value), maxReasonLen)])
			case equalFold(name, "set-cookie"):
				nv := value
				if i := bytes.IndexByte(nv, ';'); i >= 0 {
					nv = nv[:i]
				}
				if nv = bytes.TrimSpace(nv); len(nv) > 0 {
					resp.Cookies = append(resp.Cookies, string(nv))
				}
			}
		}
		if status >= 100 && status < 200 && status != 101 {
			continue // interim response; the final one follows
		}
		resp.Status = status
		switch {
		case head || status == 204 || status == 304 || status == 101:
			resp.BodyBytes = 0
		case chunked:
			n, err := discardChunked(br)
			resp.BodyBytes = n
			if err != nil {
				return false, err
			}
		case contentLength >= 0:
			n, err := br.Discard(int(contentLength))
			resp.BodyBytes = int64(n)
			if err != nil {
				return false, readErr(err, "body")
			}
		default:
			// No length: the body runs to the end of the connection.
			n, err := io.Copy(io.Discard, br)
			resp.BodyBytes = n
			if err != nil {
				return false, readErr(err, "body")
			}
			keep = false
		}
		if status == 101 {
			keep = false
		}
		return keep, nil
	}
}

func readErr(err error, where string) error {
	if errors.Is(err, bufio.ErrBufferFull) {
		return protocolError(where + " line longer than 4 KiB")
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseStatusLine parses "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status, minor int, err error) {
	line = trimCRLF(line)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, 0, protocolError("status line " + strconv.Quote(string(line[:min(len(line), 40)])))
	}
	switch line[7] {
	case '0':
		minor = 0
	case '1':
		minor = 1
	default:
		return 0, 0, protocolError("HTTP version " + strconv.Quote(string(line[:8])))
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, 0, protocolError("status code " + strconv.Quote(string(line[9:12])))
		}
		status = status*10 + int(c-'0')
	}
	if status < 100 {
		return 0, 0, protocolError("status code " + strconv.Quote(string(line[9:12])))
	}
	return status, minor, nil
}

func trimCRLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// equalFold compares an ASCII header name with a lower-case constant.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// maxBodyLength bounds lengths parsed from headers (1 TiB), so arithmetic
// on them cannot overflow.
const maxBodyLength = 1 << 40

func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 13 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= maxBodyLength
}

// discardChunked reads a chunked body (RFC 9112 §7.1) to its end, trailers
// included, and returns the number of body bytes.
func discardChunked(br *bufio.Reader) (int64, error) {
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, readErr(err, "chunk size")
		}
		line = trimCRLF(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || len(line) > 10 {
			return total, protocolError("chunk size " + strconv.Quote(string(line)))
		}
		var size int64
		for _, c := range line {
			var d byte
			switch {
			case '0' <= c && c <= '9':
				d = c - '0'
			case 'a' <= c && c <= 'f':
				d = c - 'a' + 10
			case 'A' <= c && c <= 'F':
				d = c - 'A' + 10
			default:
				return total, protocolError("chunk size " + strconv.Quote(string(line)))
			}
			size = size<<4 | int64(d)
		}
		if size == 0 {
			for n := 0; ; n++ { // trailers up to the empty line
				if n >= maxHeaderLines {
					return total, protocolError("too many trailer lines")
				}
				line, err := br.ReadSlice('\n')
				if err != nil {
					return total, readErr(err, "trailer")
				}
				if len(trimCRLF(line)) == 0 {
					return total, nil
				}
			}
		}
		n, err := br.Discard(int(size))
		total += int64(n)
		if err != nil {
			return total, readErr(err, "chunk")
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return total, readErr(err, "chunk end")
		}
		if len(trimCRLF(line)) != 0 {
			return total, protocolError("chunk not followed by CRLF")
		}
	}
}

// transportReason names why an exchange got no response, in a few fixed
// words (the summary's top errors group by it, so it must not carry
// per-request detail such as a local port).
func transportReason(kind ErrorKind, err error) string {
	var pe protocolError
	switch {
	case kind == KindUnfinished:
		return "cut at the end of the run"
	case errors.Is(err, errWaitTimeout):
		return "no connection free before the timeout (the generator is behind)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the target listening?)"
	case kind == KindTimeout, errors.Is(err, os.ErrDeadlineExceeded):
		if kind == KindConnect {
			return "connect timed out"
		}
		return "no complete response within the timeout"
	case errors.As(err, &pe):
		return "malformed response"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed before the response ended"
	case kind == KindConnect:
		return "cannot connect"
	}
	return "connection failed"
}
