package proxy

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/config"
)

// blockingWriter blocks every Write until released, like a disk that
// stopped answering.
type blockingWriter struct {
	entered chan struct{} // one value per Write that started
	release chan struct{}
	mu      sync.Mutex
	data    []byte
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.data = append(w.data, p...)
	return len(p), nil
}

func (w *blockingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.data)
}

func testDrops(t *testing.T) (*prometheus.Registry, *accessDrops) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return reg, newAccessDrops(newAccessDropped(reg), "main")
}

// dropCount reads lbsys_access_log_dropped_total{listener, reason} from reg.
func dropCount(t *testing.T, reg prometheus.Gatherer, listener, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != MetricAccessLogDropped {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if got["listener"] == listener && got["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func line(s string, d *accessDrops) *logLine {
	l := getLogLine()
	l.b = append(l.b, s...)
	l.drops = d
	return l
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestAccessSinkFullQueueDrops: with the writer stuck, sends past the
// queue's size return at once as drops; nothing waits for the disk. When
// the disk answers again, every queued line is written, in order.
func TestAccessSinkFullQueueDrops(t *testing.T) {
	bw := newBlockingWriter()
	const queue = 4
	s := newWriterSink(bw, queue, quietLog)
	reg, drops := testDrops(t)
	al := &accessLog{sink: s, drops: drops}

	// The first line is taken by the writer, which then blocks in Write.
	if r := s.send(line("l0\n", drops)); r != "" {
		t.Fatalf("first line: %s", r)
	}
	<-bw.entered
	start := time.Now()
	dropped := 0
	for i := 1; i <= queue+10; i++ {
		e := accessEntry{Path: "/x"}
		before := dropCount(t, reg, "main", dropQueueFull)
		al.write(&e)
		if dropCount(t, reg, "main", dropQueueFull) > before {
			dropped++
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("sending %d lines to a stuck writer took %v", queue+10, took)
	}
	if dropped != 10 {
		t.Errorf("%d lines dropped, want 10 (queue of %d)", dropped, queue)
	}
	if got := dropCount(t, reg, "main", dropQueueFull); got != 10 {
		t.Errorf("queue_full counter %v, want 10", got)
	}
	close(bw.release) // the disk answers again
	if err := s.close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	got := bw.String()
	if n := strings.Count(got, "\n"); n != 1+queue {
		t.Errorf("%d lines written, want %d:\n%s", n, 1+queue, got)
	}
	if !strings.HasPrefix(got, "l0\n") {
		t.Errorf("order lost: %q", got)
	}
	// After close, lines are refused and counted as closed.
	e := accessEntry{}
	al.write(&e)
	if got := dropCount(t, reg, "main", dropClosed); got != 1 {
		t.Errorf("closed counter %v after a write to a closed sink", got)
	}
}

type failingWriter struct{ fail bool }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fail {
		return 0, errors.New("no space left on device")
	}
	return len(p), nil
}

// TestAccessSinkWriteErrorsAreCounted: lines a failed write loses are
// counted per line, and writing resumes when the disk does.
func TestAccessSinkWriteErrorsAreCounted(t *testing.T) {
	fw := &failingWriter{fail: true}
	s := &logSink{key: "t", path: "t", log: quietLog, out: fw}
	reg, drops := testDrops(t)
	for i := 0; i < 3; i++ {
		s.add(line("x\n", drops))
	}
	s.flush()
	if got := dropCount(t, reg, "main", dropWriteError); got != 3 {
		t.Errorf("write_error %v, want 3", got)
	}
	fw.fail = false
	s.add(line("y\n", drops))
	s.flush()
	if got := dropCount(t, reg, "main", dropWriteError); got != 3 {
		t.Errorf("write_error %v after a good write, want 3", got)
	}
	if len(s.batch) != 0 || len(s.owners) != 0 {
		t.Error("batch kept after flush")
	}
}

// TestAccessSinkReopen: after the file is renamed (logrotate), Reopen
// makes new lines land in a new file at the configured path, and the
// lines before it stay in the renamed one. A reopen that fails keeps the
// old file.
func TestAccessSinkReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	s, err := openSink(&config.AccessLog{Path: path}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(time.Second)
	_, drops := testDrops(t)
	waitFor := func(p, want string) {
		t.Helper()
		eventually(t, 5*time.Second, want+" in "+p, func() bool {
			b, _ := os.ReadFile(p)
			return strings.Contains(string(b), want)
		})
	}
	s.send(line("before\n", drops))
	waitFor(path, "before")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != accessFileMode&^umask(t) {
		t.Errorf("mode %v, %v; want %v", fi.Mode().Perm(), err, os.FileMode(accessFileMode)&^umask(t))
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	s.send(line("renamed\n", drops)) // still the open file: the rotated one
	waitFor(path+".1", "renamed")
	if err := s.Reopen(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	s.send(line("after\n", drops))
	waitFor(path, "after")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if string(old) != "before\nrenamed\n" || string(cur) != "after\n" {
		t.Errorf("rotated %q, new %q", old, cur)
	}

	// The directory goes away: reopening fails, lines keep going to the
	// file that is open.
	if err := os.Rename(dir, dir+"-gone"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(dir+"-gone", dir)
	if err := s.Reopen(5 * time.Second); err == nil || !strings.Contains(err.Error(), "still writing to the file opened before") {
		t.Fatalf("reopen in a missing directory: %v", err)
	}
	s.send(line("kept\n", drops))
	waitFor(filepath.Join(dir+"-gone", "access.log"), "kept")
}

// TestAccessSinkOpenError names the field and what to check.
func TestAccessSinkOpenError(t *testing.T) {
	_, err := openSink(&config.AccessLog{Path: filepath.Join(t.TempDir(), "no", "such", "dir", "a.log")}, quietLog)
	if err == nil || !strings.Contains(err.Error(), "access_log.path:") || !strings.Contains(err.Error(), "check that the directory exists") {
		t.Fatalf("error %v", err)
	}
}

// umask returns the process's umask, which the created file's mode is
// subject to.
func umask(t *testing.T) os.FileMode {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o777)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ fi.Mode().Perm()
}
