package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy/h1"
)

// failingListener makes the accepts of a connection fail: the next
// connection is held back (as in the listen backlog) while Accept returns
// err fails times, then handed out.
type failingListener struct {
	net.Listener
	mu      sync.Mutex
	fails   int
	err     error
	pending net.Conn
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if c := l.pending; c != nil {
		if l.fails > 0 {
			l.fails--
			l.mu.Unlock()
			return nil, l.err
		}
		l.pending = nil
		l.mu.Unlock()
		return c, nil
	}
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fails > 0 {
		l.fails--
		l.pending = c
		return nil, l.err
	}
	return c, nil
}

func (l *failingListener) failNext(n int, err error) {
	l.mu.Lock()
	l.fails, l.err = n, err
	l.mu.Unlock()
}

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// TestAcceptErrorsBackOffAndServe: running out of file descriptors makes
// accept fail; the listener backs off and keeps serving (the lbsys engine
// used to stop accepting for good while /healthz said ok), and the
// failures are counted. An accept error that is not retryable stops the
// listener, and /healthz says so.
func TestAcceptErrorsBackOffAndServe(t *testing.T) {
	b := newBackend(t, "b")
	var fl *failingListener
	px := startProxyWith(t, renderConfig(t, baseConfig+`
services:
  - {name: app, endpoints: [{address: "{{.B0}}"}]}
`, b), func(o *Options) {
		o.Listen = func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			fl = &failingListener{Listener: ln}
			return fl, nil
		}
	})
	errnos := []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED}
	if testEngine == config.EngineNetHTTP {
		errnos = errnos[:2] // net/http retries only what Errno.Temporary calls temporary
	}
	for _, errno := range errnos {
		fl.failNext(4, acceptErr(errno))
		// The next accept fails; a new connection waits in the backlog
		// and is served after the backoff.
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(px.url + "/x")
		if err != nil {
			t.Fatalf("after %v on accept: %v", errno, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("after %v on accept: status %d", errno, resp.StatusCode)
		}
	}
	if m := metricsText(t, px); !strings.Contains(m, fmt.Sprintf(`lbsys_accept_errors_total{listener="main"} %d`, 4*len(errnos))) {
		t.Errorf("accept errors not counted:\n%s", grepLines(m, "accept_errors"))
	}
	if s, body, _ := do(t, "GET", px.admin+"/healthz", "", nil); s != 200 {
		t.Errorf("/healthz %d %q while serving", s, body)
	}

	fl.failNext(1, errors.New("listener broken for good"))
	c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := c.Get(px.url + "/x"); err == nil {
		resp.Body.Close()
	}
	eventually(t, 5*time.Second, "/healthz to report the stopped listener", func() bool {
		s, body, _ := do(t, "GET", px.admin+"/healthz", "", nil)
		return s == http.StatusServiceUnavailable && strings.Contains(body, "listener main") && strings.Contains(body, "broken for good")
	})
}

// TestAcceptSurvivesFDExhaustion provokes a real EMFILE: a child process
// runs the lbsys engine with RLIMIT_NOFILE just above what it has open, this
// test opens more connections than it can accept, then closes the first
// ones; the server must accept and answer the rest.
func TestAcceptSurvivesFDExhaustion(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc and RLIMIT_NOFILE")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDExhaustionChild$", "-test.v")
	cmd.Env = append(os.Environ(), "LBSYS_FD_CHILD=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := bufio.NewReader(stdout)
	var addr string
	var spare int
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" {
		line, err := out.ReadString('\n')
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("child did not start: %v\n%s", err, stderr.String())
		}
		fmt.Sscanf(line, "LISTENING %s %d", &addr, &spare)
	}
	go io.Copy(io.Discard, out)

	// More connections than the child has descriptors left: the first
	// ones are accepted, the rest wait in the backlog while accept fails.
	n := spare + 3
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	ask := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := ask(conns[0]); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	// Free descriptors in the child: close the accepted connections.
	for i := 0; i < spare; i++ {
		conns[i].Close()
	}
	for i := spare; i < n; i++ {
		if err := ask(conns[i]); err != nil {
			t.Fatalf("connection %d, made while the child was out of descriptors: %v\nchild log:\n%s", i, err, stderr.String())
		}
	}
	// The child logged its EMFILE before it could answer these; the copy
	// of its stderr into the buffer may still be on its way.
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "too many open files") {
		if time.Now().After(deadline) {
			t.Fatalf("the child never ran out of descriptors, so the test proved nothing; its log:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFDExhaustionChild is the child of TestAcceptSurvivesFDExhaustion.
func TestFDExhaustionChild(t *testing.T) {
	if os.Getenv("LBSYS_FD_CHILD") != "1" {
		t.Skip("runs as TestAcceptSurvivesFDExhaustion's child only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &h1.Server{ReadHeaderTimeout: 10 * time.Second, ErrorLog: logToStderr(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	const spare = 3
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	// ReadDir's own descriptor is closed again: len(entries)-1 are open.
	lim.Cur = uint64(len(entries) - 1 + spare)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTENING %s %d\n", ln.Addr(), spare)
	go srv.Serve(ln)
	// The parent kills it; the bound only keeps an orphan from living on.
	time.Sleep(60 * time.Second)
}

func logToStderr() *log.Logger { return log.New(os.Stderr, "", 0) }

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
