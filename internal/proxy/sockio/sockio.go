// Package sockio reads and writes the proxy's TCP connections with raw
// system calls, made from the runtime poller's callbacks (syscall.RawConn),
// instead of net.Conn's Read and Write.
//
// Why: every system call net.Conn makes goes through the runtime's
// entersyscall, and when the runtime's monitor thread (sysmon) sleeps
// because the process had nothing to run, entering a system call wakes it,
// after which it polls every 20 µs for a while. A proxy under load goes
// idle and busy again thousands of times a second (every time all its
// connections wait on the network), so sysmon ran about 3,000 times a
// second on one core, each time a context switch for it and one for the
// thread it interrupted: about a tenth of lbsys's CPU per request
// (issue #16's measurements). The sockets are non-blocking, so a raw
// read or write returns at once (EAGAIN when it would wait) and never
// needs the monitor to hand its processor to another thread; the waiting
// is left to the poller, as net.Conn does. Deadlines and closing work as
// with net.Conn: RawConn's wait honours them.
package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn does a connection's reads and writes with raw system calls. Its
// methods are safe for concurrent use, as net.Conn's are.
type Conn struct {
	c       net.Conn
	raw     syscall.RawConn
	rd, wr  op
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// op is one direction's state, shared with its callback.
type op struct {
	mu  sync.Mutex
	p   []byte
	n   int
	err error
}

// New returns a Conn for c, or nil when c has no file descriptor to use
// (a TLS connection, net.Pipe, a wrapper that hides it).
func New(c net.Conn) *Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Conn{c: c, raw: raw}
	s.readFn, s.writeFn = s.readStep, s.writeStep
	return s
}

// Read reads as net.Conn's Read does: at least one byte, or an error
// (io.EOF at the end of the stream, a timeout past the read deadline).
func (s *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rd.mu.Lock()
	defer s.rd.mu.Unlock()
	s.rd.p, s.rd.n, s.rd.err = p, 0, nil
	err := s.raw.Read(s.readFn)
	n := s.rd.n
	s.rd.p = nil
	if err != nil {
		return n, s.opError("read", err)
	}
	return n, s.rd.err
}

func (s *Conn) readStep(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, s.rd.p)
		switch errno {
		case 0:
			if n == 0 {
				s.rd.err = io.EOF
			}
			s.rd.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		default:
			s.rd.err = s.opError("read", os.NewSyscallError("read", errno))
			return true
		}
	}
}

// Write writes all of p, as net.Conn's Write does, unless an error (the
// write deadline, a reset) stops it.
func (s *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wr.mu.Lock()
	defer s.wr.mu.Unlock()
	s.wr.p, s.wr.n, s.wr.err = p, 0, nil
	err := s.raw.Write(s.writeFn)
	n := s.wr.n
	s.wr.p = nil
	if err != nil {
		return n, s.opError("write", err)
	}
	return n, s.wr.err
}

func (s *Conn) writeStep(fd uintptr) bool {
	for s.wr.n < len(s.wr.p) {
		n, errno := WriteFD(fd, s.wr.p[s.wr.n:])
		switch errno {
		case 0:
			if n == 0 {
				// A socket takes at least a byte or says why not;
				// as net.Conn, do not spin on a write that does
				// neither.
				s.wr.err = s.opError("write", io.ErrUnexpectedEOF)
				return true
			}
			s.wr.n += n
		case syscall.EAGAIN:
			return false // wait until writable
		default:
			s.wr.err = s.opError("write", os.NewSyscallError("write", errno))
			return true
		}
	}
	return true
}

// WriteFD makes one write system call on fd, retried on EINTR: for
// callbacks that already hold a connection's descriptor.
func WriteFD(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	for {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if errno != syscall.EINTR {
			if errno != 0 {
				return 0, errno
			}
			return int(n), 0
		}
	}
}

func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// opError describes err as net.Conn's methods do (a *net.OpError naming
// the operation and both addresses); RawConn's own errors (a deadline, a
// closed connection) keep what errors.Is and net.Error see in them.
func (s *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		if oe.Op == "raw-"+op {
			e := *oe
			e.Op = op
			return &e
		}
		return err
	}
	return &net.OpError{Op: op, Net: s.c.LocalAddr().Network(), Source: s.c.LocalAddr(), Addr: s.c.RemoteAddr(), Err: err}
}

// Quiet reports whether a socket has nothing to read and is open: one
// non-blocking peek that finds nothing (EAGAIN). The end of the stream,
// unread bytes or an error make it false. Meant for an idle connection
// whose peer has nothing to say, e.g. a pooled upstream connection.
func Quiet(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno != syscall.EINTR {
			return errno == syscall.EAGAIN
		}
	}
}
