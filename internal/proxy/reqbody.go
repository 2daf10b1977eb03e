package proxy

// Request bodies on their way to an endpoint: buffered for replay, or
// streamed with their read errors remembered (split from forward.go,
// issue #16).

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
)

// replayBody is a buffered request body that can be sent again.
type replayBody struct {
	buf    []byte
	off    int
	pooled *[]byte
}

var replayBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// bufferBody reads a request body of known length so retries can resend it.
func bufferBody(req *http.Request) (*replayBody, error) {
	n := int(req.ContentLength)
	rb := &replayBody{}
	if n <= 64<<10 {
		rb.pooled = replayBufs.Get().(*[]byte)
		rb.buf = (*rb.pooled)[:n]
	} else {
		rb.buf = make([]byte, n)
	}
	_, err := io.ReadFull(req.Body, rb.buf)
	req.Body.Close()
	if err != nil {
		rb.free()
		return nil, err
	}
	return rb, nil
}

func (b *replayBody) Read(p []byte) (int, error) {
	if b.off >= len(b.buf) {
		return 0, io.EOF
	}
	n := copy(p, b.buf[b.off:])
	b.off += n
	return n, nil
}

func (b *replayBody) Close() error { return nil }
func (b *replayBody) rewind()      { b.off = 0 }

// WriteTo lets io.Copy send the buffer in one write.
func (b *replayBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.buf[b.off:])
	b.off += n
	return int64(n), err
}

func (b *replayBody) free() {
	if b.pooled != nil {
		*b.pooled = (*b.pooled)[:0]
		replayBufs.Put(b.pooled)
		b.pooled = nil
	}
	b.buf = nil
}

// clientBody remembers read errors of the client's request body, so a
// client that sends less than it announced (or too much) gets a 4xx and the
// endpoint is not blamed for it.
type clientBody struct {
	rc  io.ReadCloser
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// clientBodyError maps a failure to read the client's body.
func clientBodyError(err error) *proxyError {
	if errors.As(err, new(*http.MaxBytesError)) {
		return &proxyError{status: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge, err: err}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &proxyError{status: http.StatusRequestTimeout, reason: reasonBodyTimeout, err: err}
	}
	return &proxyError{status: http.StatusBadRequest, reason: reasonBadRequestBody, err: err}
}
