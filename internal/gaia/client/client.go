// Package client talks to the Gaia coordinator's HTTP API: a client that
// finds the leader, retries safely and keeps idempotency keys. The wire
// types it sends and receives are api/change's. The CLI uses it, and so can
// the pipeline, which changes production only by proposing changes here
// (DESIGN.md). It imports neither Raft nor the coordinator's state machine.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// Error is a refusal by the coordinator.
type Error struct {
	Status int
	URL    string
	Body   directive.ErrorBody
}

func (e *Error) Error() string {
	msg := e.Body.Error
	for _, fe := range e.Body.Errors {
		msg += "\n  " + fe.String()
	}
	if e.Body.Outcome == "unknown" {
		msg += "\n  (the change may still commit once a majority is back: check with `lbsys change list` before retrying, or retry with the same --idempotency-key)"
	}
	return fmt.Sprintf("%s: %d %s: %s", e.URL, e.Status, http.StatusText(e.Status), msg)
}

// UnknownOutcomeError: a write reached a coordinator (or a leader accepted
// it and lost its majority) and no answer confirmed or refused it before
// the deadline. It may have been applied.
type UnknownOutcomeError struct {
	Method, Path string
	// Key is the request's idempotency key ("" if it had none): the same
	// request with the same key is safe to send again, the coordinator
	// answers with the first result.
	Key string
	// Attempts is how many times the request was sent.
	Attempts int
	Err      error
}

func (e *UnknownOutcomeError) Error() string {
	s := fmt.Sprintf("outcome unknown: %s %s may have been applied (sent %d time(s), no confirmation before the deadline; last error: %v)", e.Method, e.Path, e.Attempts, e.Err)
	if e.Key != "" {
		s += fmt.Sprintf("; it carried idempotency key %q: sending it again with that key is safe (a coordinator that applied it answers with the first result)", e.Key)
	} else {
		s += "; it had no idempotency key: check whether it took effect before sending it again"
	}
	return s
}

func (e *UnknownOutcomeError) Unwrap() error { return e.Err }

// NewKey returns a random idempotency key (32 hex digits).
func NewKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b)
}

// Client calls one coordinator cluster.
type Client struct {
	// URLs of members; the client starts with the member that answered as
	// leader last, follows redirects to the leader, and asks the others
	// when one is unreachable.
	URLs  []string
	Token string
	HTTP  *http.Client
	// AttemptTimeout bounds one request (default 8s: longer than a
	// coordinator waits for a commit). The caller's context bounds the
	// whole call with its retries.
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between rounds through
	// every member (defaults 50ms and 1s, jittered).
	MinBackoff, MaxBackoff time.Duration

	mu     sync.Mutex
	leader string // base URL of the last member that answered as leader
}

// New returns a client. Each call retries until its context's deadline
// (one round through the members when the context has none).
func New(urls []string, token string) *Client {
	for i, u := range urls {
		urls[i] = strings.TrimSuffix(u, "/")
	}
	return &Client{URLs: urls, Token: token, HTTP: &http.Client{
		Transport:     &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, MaxIdleConnsPerHost: 2},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// maxHops bounds how many leader redirects one attempt follows: a hint can
// be stale (it names a leader that just died), and two members could point
// at each other during an election.
const maxHops = 3

// idempotencyKey returns the key a request body carries ("" if none).
func idempotencyKey(in any) string {
	switch r := in.(type) {
	case change.ProposeRequest:
		return r.IdempotencyKey
	case *change.ProposeRequest:
		return r.IdempotencyKey
	case change.RollbackRequest:
		return r.IdempotencyKey
	case *change.RollbackRequest:
		return r.IdempotencyKey
	case change.DecisionRequest:
		return r.IdempotencyKey
	case *change.DecisionRequest:
		return r.IdempotencyKey
	}
	return ""
}

// attempt is the result of sending a request once.
type attempt struct {
	status int
	header http.Header
	body   []byte
	err    error
	// sent: the whole request was written, so the coordinator may have
	// acted on it even without an answer.
	sent bool
}

func (c *Client) send(ctx context.Context, method, target string, body []byte, key string) (a attempt) {
	to := c.AttemptTimeout
	if to <= 0 {
		to = 8 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	// The request may have reached the coordinator unless the connection
	// was never made (a dial error): "written" is not proof enough either
	// way, because WroteRequest may run on the transport's goroutine after
	// Do returned.
	var wrote atomic.Bool
	defer func() { a.sent = wrote.Load() || a.err != nil && !isDialError(a.err) || a.err == nil }()
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, target, rd)
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.status, a.header = resp.StatusCode, resp.Header
	if a.body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20)); err != nil {
		a.err, a.status = err, 0
	}
	return a
}

// isDialError reports whether err happened before a connection existed
// (refused, unreachable, dial timeout, name resolution): then nothing was
// sent and the next member may be asked at once.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// order is the members to try: the last leader first.
func (c *Client) order() []string {
	c.mu.Lock()
	l := c.leader
	c.mu.Unlock()
	out := make([]string, 0, len(c.URLs)+1)
	if l != "" {
		out = append(out, l)
	}
	for _, u := range c.URLs {
		if u != l {
			out = append(out, u)
		}
	}
	return out
}

func baseOf(target, path string) string {
	if i := strings.Index(target, "/v1/"); i > 0 {
		return target[:i]
	}
	return strings.TrimSuffix(target, path)
}

// Do sends one call and decodes the answer into out (if not nil).
//
// It tries the members in turn and follows leader redirects (at most
// maxHops per member, keeping the token, which Go's client would drop
// across hosts). When a member cannot be reached (nothing was sent) it
// asks the next at once; when a request was sent but not answered, a
// redirect led to a member that is gone, or a member answered 503 (no
// leader yet, no quorum, "outcome unknown"), it retries after a pause,
// through every member, until the context's deadline: a new leader is
// usually elected well within it. When no member accepts a connection for
// three rounds in a row, nothing is up (or the URLs are wrong) and it
// gives up early. Writes are re-sent only when
// that is safe: with an idempotency key (which the coordinator dedups by),
// or when the call is idempotent (GET, PUT, DELETE, join, snapshot). A
// write without a key that may have been applied is not re-sent: the call
// ends with an *UnknownOutcomeError, as does a keyed write that was sent
// and never confirmed before the deadline.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	if len(c.URLs) == 0 {
		return errors.New("no coordinator URL: pass --coordinator http://host:port")
	}
	key := idempotencyKey(in)
	replaySafe := method != http.MethodPost || key != "" || path == "/v1/join" || path == "/v1/snapshot"
	_, hasDeadline := ctx.Deadline()
	minB, maxB := c.MinBackoff, c.MaxBackoff
	if minB <= 0 {
		minB = 50 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(time.Second, minB)
	}
	backoff := minB
	var lastErr error
	maybeApplied, sends := false, 0
	// refusedRounds counts rounds in a row in which no member accepted a
	// connection: then nothing is up (or the URLs are wrong), unlike
	// during an election, where a majority answers.
	refusedRounds := 0
	unknown := func(err error) error {
		return &UnknownOutcomeError{Method: method, Path: path, Key: key, Attempts: sends, Err: err}
	}
	for round := 0; ; round++ {
		allRefused := true
		for _, base := range c.order() {
			target := base + path
			for hops := 0; ; hops++ {
				if hops > maxHops {
					lastErr = fmt.Errorf("%s: more than %d leader redirects", base, maxHops)
					break
				}
				a := c.send(ctx, method, target, body, key)
				if a.sent {
					sends++
				}
				if a.err == nil || !isDialError(a.err) {
					allRefused = false
				}
				if a.err != nil {
					lastErr = a.err
					if ctx.Err() != nil {
						break
					}
					if a.sent && method != http.MethodGet {
						if !replaySafe {
							return unknown(a.err)
						}
						maybeApplied = true
					}
					break // next member
				}
				if a.status == http.StatusTemporaryRedirect && a.header.Get("Location") != "" {
					target = a.header.Get("Location")
					continue
				}
				if a.status >= 300 {
					e := &Error{Status: a.status, URL: target}
					if json.Unmarshal(a.body, &e.Body) != nil || e.Body.Error == "" {
						e.Body.Error = strings.TrimSpace(string(a.body))
					}
					if a.status != http.StatusServiceUnavailable {
						return e // a definitive answer
					}
					lastErr = e
					if e.Body.Outcome == "unknown" {
						if !replaySafe {
							return unknown(e)
						}
						maybeApplied = true
					}
					break // no leader, or no quorum: try the others, then pause
				}
				c.mu.Lock()
				c.leader = baseOf(target, path)
				c.mu.Unlock()
				if out != nil && len(a.body) > 0 {
					if err := json.Unmarshal(a.body, out); err != nil {
						return fmt.Errorf("%s: bad answer: %w", target, err)
					}
				}
				return nil
			}
			if ctx.Err() != nil {
				break
			}
		}
		if allRefused {
			refusedRounds++
		} else {
			refusedRounds = 0
		}
		if !hasDeadline || ctx.Err() != nil || refusedRounds >= 3 {
			break
		}
		t := time.NewTimer(backoff/2 + mrand.N(backoff/2+1))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil {
			break
		}
		backoff = min(2*backoff, maxB)
	}
	if maybeApplied {
		return unknown(lastErr)
	}
	if ce := new(Error); errors.As(lastErr, &ce) {
		return fmt.Errorf("no coordinator could serve it before the deadline (%s): %w", strings.Join(c.URLs, ", "), lastErr)
	}
	return fmt.Errorf("no coordinator reachable (%s): %w", strings.Join(c.URLs, ", "), lastErr)
}

// Propose creates a change. Without an idempotency key it gets a random
// one, so that retries after a lost answer cannot create a second change.
func (c *Client) Propose(ctx context.Context, r change.ProposeRequest) (*change.Change, error) {
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = NewKey()
	}
	var ch change.Change
	return &ch, c.Do(ctx, http.MethodPost, "/v1/changes", r, &ch)
}

// Decide approves, rejects or cancels a change (with a random idempotency
// key; Decision takes one).
func (c *Client) Decide(ctx context.Context, id uint64, action, reason string) (*change.Change, error) {
	return c.Decision(ctx, id, action, change.DecisionRequest{Reason: reason})
}

// Decision approves, rejects or cancels a change; a request without an
// idempotency key gets a random one.
func (c *Client) Decision(ctx context.Context, id uint64, action string, r change.DecisionRequest) (*change.Change, error) {
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = NewKey()
	}
	var ch change.Change
	return &ch, c.Do(ctx, http.MethodPost, fmt.Sprintf("/v1/changes/%d/%s", id, action), r, &ch)
}

// Rollback creates a rollback change (with a random idempotency key when
// it has none).
func (c *Client) Rollback(ctx context.Context, r change.RollbackRequest) (*change.Change, error) {
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = NewKey()
	}
	var ch change.Change
	return &ch, c.Do(ctx, http.MethodPost, "/v1/rollback", r, &ch)
}

// Change returns one change with its audit trail and diff.
func (c *Client) Change(ctx context.Context, id uint64) (*change.ChangeView, error) {
	var v change.ChangeView
	return &v, c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/changes/%d", id), nil, &v)
}

// Changes lists changes, newest first ("open" lists those not closed or
// canceled).
func (c *Client) Changes(ctx context.Context, state string, limit int) ([]change.ChangeSummary, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Changes []change.ChangeSummary `json:"changes"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/changes?"+q.Encode(), nil, &out)
	return out.Changes, err
}

// Directive returns a version (0: the stable one). stale reads whichever
// member answers instead of the leader.
func (c *Client) Directive(ctx context.Context, version uint64, stale bool) (*directive.Directive, error) {
	q := url.Values{}
	if version != 0 {
		q.Set("version", strconv.FormatUint(version, 10))
	}
	if stale {
		q.Set("stale", "1")
	}
	var d directive.Directive
	return &d, c.Do(ctx, http.MethodGet, "/v1/directive?"+q.Encode(), nil, &d)
}

// Status returns the answering member's status.
func (c *Client) Status(ctx context.Context) (*change.Status, error) {
	var s change.Status
	return &s, c.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
}
