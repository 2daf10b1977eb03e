package ingest

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry is the retry policy of the HTTP sources (Prometheus, ServiceNow):
// network errors, 429 and 5xx answers (500, 502, 503, 504) are retried with
// exponential backoff and full jitter ("Exponential Backoff And Jitter",
// AWS Architecture Blog, 2015); a Retry-After header (seconds or an HTTP
// date, RFC 9110 §10.2.3) is honoured instead when present, up to
// MaxRetryAfter. Other 4xx answers are not retried: they will not get
// better (a wrong query, a wrong password).
type Retry struct {
	// Attempts in all, including the first. Default 5.
	Attempts int
	// Base is the first backoff; it doubles per attempt up to Max.
	// Defaults 500ms and 30s.
	Base, Max time.Duration
	// MaxRetryAfter caps a server's Retry-After. Default 5 minutes.
	MaxRetryAfter time.Duration
	// Sleep waits d or until ctx ends; tests replace it to record waits
	// without spending them. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, when set, hears about each retry (for progress output).
	OnRetry func(attempt int, wait time.Duration, why string)
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Base <= 0 {
		r.Base = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 30 * time.Second
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = 5 * time.Minute
	}
	if r.Sleep == nil {
		r.Sleep = sleepCtx
	}
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxBody bounds a response read into memory.
const maxBody = 512 << 20

// HTTPError is a non-retryable (or finally failed) HTTP answer.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	body := e.Body
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.Status, http.StatusText(e.Status), strings.TrimSpace(body))
}

func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryAfter reads a Retry-After header relative to now; ok is false when
// absent or unreadable.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil && secs >= 0 {
		// Past 292 years the product wraps negative, and a negative wait
		// would retry at once the server that asked us to stay away.
		if secs > math.MaxInt64/int64(time.Second) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// do sends the request made by newReq until it succeeds (2xx), fails for
// good, or the attempts run out. It returns the whole body of a 2xx answer.
func (r Retry) do(ctx context.Context, c *http.Client, newReq func() (*http.Request, error)) (*http.Response, []byte, error) {
	r = r.withDefaults()
	var lastErr error
	for attempt := 1; ; attempt++ {
		req, err := newReq()
		if err != nil {
			return nil, nil, err
		}
		req = req.WithContext(ctx)
		var wait time.Duration
		var hinted bool
		resp, err := c.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
			resp.Body.Close()
			switch {
			case rerr != nil:
				err = fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Redacted(), rerr)
			case len(body) > maxBody:
				return resp, nil, fmt.Errorf("%s %s: answer larger than %d MiB: ask for smaller pages", req.Method, req.URL.Redacted(), maxBody>>20)
			case resp.StatusCode >= 200 && resp.StatusCode < 300:
				return resp, body, nil
			case !retryable(resp.StatusCode):
				return resp, body, &HTTPError{req.Method, req.URL.Redacted(), resp.StatusCode, string(body)}
			default:
				err = &HTTPError{req.Method, req.URL.Redacted(), resp.StatusCode, string(body)}
				wait, hinted = retryAfter(resp.Header.Get("Retry-After"), time.Now())
			}
		} else {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
		}
		lastErr = err
		if attempt >= r.Attempts {
			return resp, nil, fmt.Errorf("giving up after %d attempts: %w", attempt, lastErr)
		}
		if hinted {
			if wait > r.MaxRetryAfter {
				return resp, nil, fmt.Errorf("the server asks to retry after %v (more than %v): try later: %w", wait, r.MaxRetryAfter, lastErr)
			}
		} else {
			ceil := min(r.Max, r.Base<<min(attempt-1, 20))
			wait = time.Duration(rand.Int64N(int64(ceil)) + 1)
		}
		if r.OnRetry != nil {
			r.OnRetry(attempt, wait, lastErr.Error())
		}
		if err := r.Sleep(ctx, wait); err != nil {
			return nil, nil, err
		}
	}
}
