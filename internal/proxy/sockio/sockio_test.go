package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, the first wrapped.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	s := New(c)
	if s == nil {
		t.Fatal("New returned nil for a TCP connection")
	}
	return s, peer
}

// TestConnReadWrite: bytes go both ways unchanged, including a write far
// larger than the socket buffers (it must wait for the peer and still be
// whole) and reads that wait for data; the end of the stream is io.EOF.
func TestConnReadWrite(t *testing.T) {
	s, peer := pair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	if n, err := s.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the peer read %d bytes, not what was written", len(b))
	}
	go func() {
		time.Sleep(20 * time.Millisecond) // the read waits first
		peer.Write([]byte("hello"))
		peer.(*net.TCPConn).CloseWrite()
	}()
	b, err := io.ReadAll(readerOnly{s})
	if string(b) != "hello" || err != nil {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if n, err := s.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := s.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}
}

type readerOnly struct{ io.Reader }

// TestConnErrors: a deadline, a closed connection and a reset peer fail
// as they do with net.Conn, so callers' errors.Is and net.Error checks
// keep working.
func TestConnErrors(t *testing.T) {
	t.Run("read deadline", func(t *testing.T) {
		s, _ := pair(t)
		s.c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := s.Read(make([]byte, 8))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err = %v, want a timeout", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("err = %#v, want a *net.OpError for read", err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		s, _ := pair(t) // the peer never reads
		s.c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := s.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n >= 64<<20 {
			t.Fatalf("Write = %d, %v; want a timeout part way", n, err)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		s, _ := pair(t)
		go func() { time.Sleep(20 * time.Millisecond); s.c.Close() }()
		if _, err := s.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("err = %v, want net.ErrClosed", err)
		}
	})
	t.Run("reset by the peer", func(t *testing.T) {
		s, peer := pair(t)
		peer.(*net.TCPConn).SetLinger(0)
		peer.Close() // RST
		time.Sleep(20 * time.Millisecond)
		_, err := s.Read(make([]byte, 8))
		var oe *net.OpError
		if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" || oe.Addr == nil {
			t.Fatalf("Read err = %#v, want a read *net.OpError wrapping ECONNRESET", err)
		}
		if _, err := s.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Write err = %v, want EPIPE or ECONNRESET", err)
		}
	})
}

// TestConnConcurrent: concurrent readers and writers (net.Conn allows
// them) neither race (go test -race) nor lose or mix bytes of one write.
func TestConnConcurrent(t *testing.T) {
	s, peer := pair(t)
	const writers, each = 4, 200
	msg := bytes.Repeat([]byte{'m'}, 100)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				if _, err := s.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() { io.Copy(peer, peer) }() // echo
	s.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var mu sync.Mutex
	total := 0
	var rg sync.WaitGroup
	for i := 0; i < 2; i++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			buf := make([]byte, 512)
			for {
				mu.Lock()
				done := total >= writers*each*len(msg)
				mu.Unlock()
				if done {
					return
				}
				n, err := s.Read(buf)
				mu.Lock()
				total += n
				if total >= writers*each*len(msg) {
					// Wake the other reader, which may wait for
					// bytes that are not coming.
					s.c.SetReadDeadline(time.Now())
				}
				done = total >= writers*each*len(msg)
				mu.Unlock()
				if err != nil {
					if !done {
						t.Error(err)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	rg.Wait()
	if total != writers*each*len(msg) {
		t.Fatalf("read %d bytes back, want %d", total, writers*each*len(msg))
	}
}

// TestNewWithoutDescriptor: a connection without a file descriptor gets
// no Conn (callers keep its own Read and Write).
func TestNewWithoutDescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if New(a) != nil {
		t.Fatal("New(net.Pipe) is not nil")
	}
}

// TestQuiet: an open connection with nothing to read is quiet; one with
// unread bytes or whose peer closed it is not, and peeking consumes
// nothing.
func TestQuiet(t *testing.T) {
	s, peer := pair(t)
	quiet := func() bool {
		q := false
		if err := s.raw.Control(func(fd uintptr) { q = Quiet(fd) }); err != nil {
			t.Fatal(err)
		}
		return q
	}
	if !quiet() {
		t.Fatal("an open, idle connection is not quiet")
	}
	peer.Write([]byte("x"))
	time.Sleep(20 * time.Millisecond)
	if quiet() {
		t.Fatal("a connection with a byte to read is quiet")
	}
	if b := make([]byte, 4); func() bool { n, _ := s.Read(b); return n != 1 || b[0] != 'x' }() {
		t.Fatal("the peeked byte was consumed")
	}
	peer.Close()
	time.Sleep(20 * time.Millisecond)
	if quiet() {
		t.Fatal("a connection its peer closed is quiet")
	}
}
