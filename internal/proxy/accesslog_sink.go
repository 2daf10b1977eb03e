package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// MetricAccessLogDropped counts access log lines that were not written,
// by listener and reason: queue_full (the writer is behind, typically a
// slow disk), write_error (the write failed, e.g. a full disk) or closed
// (the line came after its file was closed, at shutdown or after a reload
// removed the log).
const MetricAccessLogDropped = "lbsys_access_log_dropped_total"

// Reasons of MetricAccessLogDropped.
const (
	dropQueueFull  = "queue_full"
	dropWriteError = "write_error"
	dropClosed     = "closed"
)

// Sizes of the writer's queue and batches. A line is ~300-500 bytes, so a
// full queue holds a few MB: about a quarter of a second at 40k requests
// per second, enough to ride out a slow fsync or a disk hiccup; beyond
// that lines are dropped and counted rather than the requests waiting.
const (
	accessQueueLines = 8192
	accessBatchBytes = 64 << 10
	// accessCloseWait bounds how long closing a sink waits for its writer
	// to flush: a disk that blocks for good must not block shutdown.
	accessCloseWait = 5 * time.Second
	// accessFileMode is the mode of a log file the proxy creates: the
	// log holds client addresses and paths, so it is not world-readable.
	accessFileMode = 0o640
)

func newAccessDropped(reg prometheus.Registerer) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricAccessLogDropped,
		Help: "Access log lines not written, by listener and reason (queue_full, write_error, closed).",
	}, []string{telemetry.LabelListener, telemetry.LabelReason})
	reg.MustRegister(v)
	return v
}

// logLine is one formatted line on its way to a sink. drops counts it if
// it is lost after it was queued.
type logLine struct {
	b     []byte
	drops *accessDrops
}

var logLines = sync.Pool{New: func() any { return &logLine{b: make([]byte, 0, 512)} }}

func getLogLine() *logLine { return logLines.Get().(*logLine) }

func putLogLine(l *logLine) {
	if cap(l.b) > 64<<10 {
		return // a freak long line: let it go rather than pin it
	}
	l.b, l.drops = l.b[:0], nil
	logLines.Put(l)
}

// accessDrops are one listener's drop counters.
type accessDrops struct {
	queueFull, writeError, closed prometheus.Counter
}

func newAccessDrops(v *prometheus.CounterVec, listener string) *accessDrops {
	return &accessDrops{
		queueFull:  v.WithLabelValues(listener, dropQueueFull),
		writeError: v.WithLabelValues(listener, dropWriteError),
		closed:     v.WithLabelValues(listener, dropClosed),
	}
}

// logSink owns one output (a file, stdout or stderr): a bounded queue of
// formatted lines and one goroutine that writes them in batches. Requests
// only ever try to queue (send never blocks); the goroutine alone touches
// the file, so reopening it needs no lock on the request path.
type logSink struct {
	key  string // config.AccessLog.Key: the absolute path, stdout or stderr
	path string // as configured, for messages
	log  *slog.Logger

	mu     sync.RWMutex // send holds it shared; close exclusively
	closed bool
	ch     chan *logLine

	reopenCh chan chan error
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	// Owned by run.
	out      io.Writer
	file     *os.File // nil for stdout, stderr and test writers
	batch    []byte
	owners   []*accessDrops // one per line in batch
	failing  bool           // the last write failed (log once per streak)
	openFile func(string) (*os.File, error)
}

// openAccessFile opens path for appending, creating it with
// accessFileMode.
func openAccessFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, accessFileMode)
}

// openSink opens the output a listener's access log names and starts its
// writer.
func openSink(a *config.AccessLog, log *slog.Logger) (*logSink, error) {
	s := &logSink{key: a.Key(), path: a.Path, log: log, openFile: openAccessFile}
	switch a.Path {
	case config.AccessLogStdout:
		s.out = os.Stdout
	case config.AccessLogStderr:
		s.out = os.Stderr
	default:
		f, err := s.openFile(a.Path)
		if err != nil {
			return nil, fmt.Errorf("access_log.path: %w; check that the directory exists and that the proxy may write there", err)
		}
		s.file, s.out = f, f
	}
	s.start(accessQueueLines)
	return s, nil
}

// newWriterSink is a sink on any writer (tests).
func newWriterSink(w io.Writer, queue int, log *slog.Logger) *logSink {
	s := &logSink{key: "test", path: "test", log: log, out: w, openFile: openAccessFile}
	s.start(queue)
	return s
}

func (s *logSink) start(queue int) {
	s.ch = make(chan *logLine, queue)
	s.reopenCh = make(chan chan error)
	s.stop = make(chan struct{})
	s.done = make(chan struct{})
	s.batch = make([]byte, 0, accessBatchBytes)
	go s.run()
}

// send queues a line without ever waiting. It returns the reason the line
// was dropped, or "" when it was queued (the sink then owns l).
func (s *logSink) send(l *logLine) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return dropClosed
	}
	select {
	case s.ch <- l:
		return ""
	default:
		return dropQueueFull
	}
}

// run writes queued lines until close: it batches whatever is queued and
// writes when the queue runs dry or the batch is full, so a quiet proxy's
// lines appear at once and a busy one's in few large writes.
func (s *logSink) run() {
	defer close(s.done)
	for {
		select {
		case l := <-s.ch:
			s.add(l)
			if len(s.ch) == 0 || len(s.batch) >= accessBatchBytes {
				s.flush()
			}
		case reply := <-s.reopenCh:
			s.flush()
			reply <- s.reopen()
		case <-s.stop:
			// close has set closed under the lock: nothing more can be
			// queued, so emptying the channel writes everything accepted.
			for {
				select {
				case l := <-s.ch:
					s.add(l)
					if len(s.batch) >= accessBatchBytes {
						s.flush()
					}
					continue
				default:
				}
				break
			}
			s.flush()
			if s.file != nil {
				if err := s.file.Close(); err != nil {
					s.log.Warn("access log: closing the file failed", "path", s.path, "err", err)
				}
			}
			return
		}
	}
}

func (s *logSink) add(l *logLine) {
	s.batch = append(s.batch, l.b...)
	s.owners = append(s.owners, l.drops)
	putLogLine(l)
}

// flush writes the batch. On failure its lines are counted as dropped and
// the batch is discarded: keeping it would only grow memory while the
// disk stays full.
func (s *logSink) flush() {
	if len(s.batch) == 0 {
		return
	}
	_, err := s.out.Write(s.batch)
	if err != nil {
		for _, d := range s.owners {
			if d != nil {
				d.writeError.Inc()
			}
		}
		if !s.failing {
			s.log.Error("access log: write failed; lines are dropped (lbsys_access_log_dropped_total{reason=\"write_error\"}) until writes succeed again",
				"path", s.path, "lines", len(s.owners), "err", err)
		}
		s.failing = true
	} else if s.failing {
		s.failing = false
		s.log.Info("access log: writes succeed again", "path", s.path)
	}
	s.batch = s.batch[:0]
	clear(s.owners)
	s.owners = s.owners[:0]
}

// reopen opens the path again (after logrotate renamed the file) and
// switches to it; on failure it keeps writing to the open file, so lines
// still land somewhere, and says why.
func (s *logSink) reopen() error {
	if s.file == nil {
		return nil // stdout, stderr: nothing to reopen
	}
	f, err := s.openFile(s.path)
	if err != nil {
		return fmt.Errorf("access log %s: reopening: %w; still writing to the file opened before", s.path, err)
	}
	old := s.file
	s.file, s.out = f, f
	if err := old.Close(); err != nil {
		s.log.Warn("access log: closing the rotated file failed", "path", s.path, "err", err)
	}
	return nil
}

// Reopen asks the writer to reopen its file and waits for the answer, at
// most wait: a writer stuck on a blocked disk does not stall the caller
// (the signal loop) for good.
func (s *logSink) Reopen(wait time.Duration) error {
	reply := make(chan error, 1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.reopenCh <- reply:
	case <-s.done:
		return nil
	case <-t.C:
		return fmt.Errorf("access log %s: the writer did not take the reopen request within %v (a blocked disk?); try again", s.path, wait)
	}
	select {
	case err := <-reply:
		return err
	case <-t.C:
		return fmt.Errorf("access log %s: reopening took longer than %v", s.path, wait)
	}
}

// close stops accepting lines, lets the writer write what was queued and
// close the file, and waits for it at most wait.
func (s *logSink) close(wait time.Duration) error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
	})
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-s.done:
		return nil
	case <-t.C:
		return errors.New("access log " + s.path + ": the writer did not finish within " + wait.String() + "; queued lines may be lost")
	}
}
