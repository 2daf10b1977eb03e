package shop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"
)

// upstream is checkout's client for its downstream calls: plain net/http
// with keep-alive, bounded waits, and retries of a call only when it is safe
// (a GET, or a request carrying an Idempotency-Key, which the downstream
// deduplicates).
type upstream struct {
	base        string
	tr          *http.Transport
	client      *http.Client
	attempts    int           // tries per call, the first included
	perTry      time.Duration // bound on one try
	backoffBase time.Duration
	backoffMax  time.Duration
}

// maxUpstreamBody bounds a downstream answer read into memory.
const maxUpstreamBody = 1 << 20

func newUpstream(base string) *upstream {
	tr := &http.Transport{
		Proxy: nil, // talk to the given URL, never an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256, // one busy checkout instance talks to one proxy
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
	return &upstream{
		base:        strings.TrimRight(base, "/"),
		tr:          tr,
		client:      &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		attempts:    4,
		perTry:      3 * time.Second,
		backoffBase: 10 * time.Millisecond,
		backoffMax:  200 * time.Millisecond,
	}
}

func (u *upstream) close() { u.tr.CloseIdleConnections() }

// upAnswer is a downstream answer.
type upAnswer struct {
	status int
	body   []byte
}

// call sends method path with the idempotency key and session cookie (each
// if not empty) and body. A transport error or a 5xx is retried with
// jittered exponential backoff (full jitter, as in the AWS Architecture
// Blog's "Exponential Backoff and Jitter", 2015) when the request is safe to
// repeat; other answers return at once. After the last try, the last 5xx
// is returned as an answer, a transport error as err. ctx bounds it all.
func (u *upstream) call(ctx context.Context, method, path, key, session string, body []byte) (upAnswer, error) {
	safe := method == http.MethodGet || method == http.MethodHead || key != ""
	var last upAnswer
	var lastErr error
	for try := 0; try < u.attempts; try++ {
		if try > 0 {
			if !safe {
				break
			}
			d := min(u.backoffMax, u.backoffBase<<(try-1))
			t := time.NewTimer(time.Duration(rand.Int64N(int64(d) + 1)))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return upAnswer{}, ctx.Err()
			}
		}
		last, lastErr = u.once(ctx, method, path, key, session, body)
		if lastErr == nil && last.status < 500 {
			return last, nil
		}
		if ctx.Err() != nil {
			return upAnswer{}, ctx.Err()
		}
	}
	if lastErr != nil {
		return upAnswer{}, lastErr
	}
	return last, nil
}

func (u *upstream) once(ctx context.Context, method, path, key, session string, body []byte) (upAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, u.perTry)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, rd)
	if err != nil {
		return upAnswer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if session != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: session})
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return upAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBody+1))
	if err != nil {
		return upAnswer{}, fmt.Errorf("reading %s %s: %w", method, path, err)
	}
	if len(b) > maxUpstreamBody {
		return upAnswer{}, errors.New("answer of " + method + " " + path + " is larger than 1 MiB")
	}
	return upAnswer{status: resp.StatusCode, body: b}, nil
}
