package proxy

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/proxy/h1"
	"github.com/lbsys/lbsys/internal/proxy/sockio"
)

// Socket deadlines and the timers of I/O timeouts run on the wall clock:
// the kernel enforces them. Decisions and measurements on the request path
// (ejection, balancing feedback, admission, latency) use the proxy's clock
// (Options.Clock).

// bodyDrainTimeout bounds reading what is left of a request body the proxy
// did not forward (a 404, a 413, an endpoint that answered before reading
// it): the lbsys engine's own bound (h1.BodyDrainTimeout), applied on
// net/http.Server too.
const bodyDrainTimeout = h1.BodyDrainTimeout

// clientListener wraps a client listener: it counts failed accepts and
// gives every connection a write-progress deadline.
type clientListener struct {
	net.Listener
	errs         prometheus.Counter
	writeTimeout func() time.Duration // the configuration in effect
}

func (l *clientListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		// Both engines retry the errors that leave the listener usable;
		// the count shows an exhausted file-descriptor limit that the
		// proxy otherwise survives silently.
		if !errors.Is(err, net.ErrClosed) {
			l.errs.Inc()
		}
		return nil, err
	}
	return &clientConn{Conn: c, writeTimeout: l.writeTimeout(), sock: sockio.New(c)}, nil
}

// clientConn is a client connection whose writes must make progress within
// writeTimeout (server.write_timeout): a client that stops reading is cut
// off instead of holding a goroutine and an upstream connection. It works
// under both engines, TLS and hijacked (upgraded) connections alike,
// because it sits below all of them.
//
// The deadline is moved forward only when less than writeTimeout is left,
// to now + 1.5 × writeTimeout, so a busy keep-alive connection updates its
// timer about once per half timeout rather than once per write. A deadline
// set explicitly (http.ResponseController, the server's own) wins until
// it is cleared.
//
// Its reads and writes are sockio's raw system calls when the connection
// has a file descriptor (see internal/proxy/sockio for why).
type clientConn struct {
	net.Conn
	sock         *sockio.Conn // nil: the connection's own Read and Write
	writeTimeout time.Duration
	deadline     atomic.Int64 // unix ns of the write deadline set by Write; 0: none
	explicit     atomic.Bool
}

func (c *clientConn) Write(p []byte) (int, error) {
	if t := c.writeTimeout; t > 0 && !c.explicit.Load() {
		now := time.Now()
		if c.deadline.Load()-now.UnixNano() < int64(t) {
			d := now.Add(t + t/2)
			c.deadline.Store(d.UnixNano())
			c.Conn.SetWriteDeadline(d)
		}
	}
	if c.sock != nil {
		return c.sock.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *clientConn) Read(p []byte) (int, error) {
	if c.sock != nil {
		return c.sock.Read(p)
	}
	return c.Conn.Read(p)
}

func (c *clientConn) SetWriteDeadline(t time.Time) error {
	c.explicit.Store(!t.IsZero())
	c.deadline.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

func (c *clientConn) SetDeadline(t time.Time) error {
	c.explicit.Store(!t.IsZero())
	c.deadline.Store(0)
	return c.Conn.SetDeadline(t)
}

// CloseWrite half-closes when the connection can: net/http.Server does so
// before closing after an error answer, so that the client reads the
// answer instead of a reset.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
