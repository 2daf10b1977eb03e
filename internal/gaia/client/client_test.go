package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/change"
	"github.com/lbsys/lbsys/api/directive"
)

// dedupServer plays a coordinator leader that dedups proposals by
// idempotency key, as Gaia's state machine does; dropFirst answers the
// first n requests by closing the connection after reading them (the
// change is made, the answer is lost).
type dedupServer struct {
	srv       *httptest.Server
	mu        sync.Mutex
	keys      map[string]uint64
	requests  int
	dropFirst int
}

func newDedup(t *testing.T, dropFirst int) *dedupServer {
	d := &dedupServer{keys: map[string]uint64{}, dropFirst: dropFirst}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req change.ProposeRequest
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		d.mu.Lock()
		d.requests++
		id, ok := d.keys[req.IdempotencyKey]
		if !ok || req.IdempotencyKey == "" {
			id = uint64(len(d.keys) + 1)
			d.keys[req.IdempotencyKey+"#"+string(rune(len(d.keys)))] = id // count every change made
			if req.IdempotencyKey != "" {
				d.keys[req.IdempotencyKey] = id
			}
		}
		drop := d.requests <= d.dropFirst
		d.mu.Unlock()
		if drop {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(change.Change{ID: id, State: change.Authorize})
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// count is how many requests reached the server.
func (d *dedupServer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requests
}

// changes is how many distinct changes the server made.
func (d *dedupServer) changes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for k := range d.keys {
		if strings.Contains(k, "#") {
			n++
		}
	}
	return n
}

func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func fast(c *Client) *Client {
	c.MinBackoff, c.MaxBackoff, c.AttemptTimeout = 5*time.Millisecond, 20*time.Millisecond, time.Second
	return c
}

func proposal() change.ProposeRequest {
	return change.ProposeRequest{Type: change.Normal, Reason: "r", Directive: &directive.Directive{Schema: 1, Services: map[string]*directive.Service{}}}
}

// TestLostAnswerIsRetriedWithTheSameKey (issue #13 item 11): the answer to
// a proposal is lost after the coordinator made the change; the client
// sends it again with the same idempotency key (safe: the coordinator
// dedups), and one change exists. Before, it re-sent it to the next
// coordinator without a key, and two changes existed.
func TestLostAnswerIsRetriedWithTheSameKey(t *testing.T) {
	d := newDedup(t, 1)
	c := fast(New([]string{d.srv.URL}, "tok"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := c.Propose(ctx, proposal())
	if err != nil || ch.ID != 1 {
		t.Fatalf("propose: %+v %v", ch, err)
	}
	if d.count() != 2 || d.changes() != 1 {
		t.Fatalf("%d requests made %d changes; want 2 requests, 1 change", d.count(), d.changes())
	}
}

// TestUnconfirmedWriteIsOutcomeUnknown: a keyed write whose answers are
// always lost ends, at the deadline, with UnknownOutcomeError carrying the
// key; a write without a key is never re-sent.
func TestUnconfirmedWriteIsOutcomeUnknown(t *testing.T) {
	d := newDedup(t, 1<<30)
	c := fast(New([]string{d.srv.URL}, "tok"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := proposal()
	req.IdempotencyKey = "my-key-1"
	_, err := c.Propose(ctx, req)
	var u *UnknownOutcomeError
	if !errors.As(err, &u) || u.Key != "my-key-1" || u.Attempts < 2 || !strings.Contains(err.Error(), `idempotency key "my-key-1"`) {
		t.Fatalf("err %v", err)
	}
	if d.changes() != 1 {
		t.Fatalf("%d changes", d.changes())
	}
	// No key (a raw Do): sent once, then unknown at once.
	d2 := newDedup(t, 1<<30)
	c2 := fast(New([]string{d2.srv.URL, d.srv.URL}, "tok"))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	before := d.count()
	err = c2.Do(ctx2, http.MethodPost, "/v1/changes", proposal(), nil)
	if !errors.As(err, &u) || u.Key != "" || d2.count() != 1 || d.count() != before {
		t.Fatalf("keyless write: %v; requests %d and %d", err, d2.count(), d.count()-before)
	}
}

// TestFailsOverOnlyOnDialErrors: an unreachable member is skipped at once
// (nothing was sent), and the write reaches the next.
func TestFailsOverOnlyOnDialErrors(t *testing.T) {
	d := newDedup(t, 0)
	c := fast(New([]string{deadURL(t), d.srv.URL}, "tok"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Propose(ctx, proposal()); err != nil || d.count() != 1 {
		t.Fatalf("%v, %d requests", err, d.count())
	}
	if c.order()[0] != d.srv.URL {
		t.Fatalf("the answering leader is not tried first next time: %v", c.order())
	}
}

// TestStaleLeaderHintAndElection: the only member given redirects to a
// leader that is dead, then answers 503 (election), then redirects to the
// new leader; the call succeeds within its deadline. Before, the first
// dead hint ended it with "no coordinator reachable".
func TestStaleLeaderHintAndElection(t *testing.T) {
	leader := newDedup(t, 0)
	dead := deadURL(t)
	var calls atomic.Int32
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case n <= 3:
			w.Header().Set("Location", dead+r.URL.RequestURI())
			w.WriteHeader(http.StatusTemporaryRedirect)
			json.NewEncoder(w).Encode(directive.ErrorBody{Error: "not the leader", Leader: dead})
		case n <= 5:
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(directive.ErrorBody{Error: "no quorum: commit delayed until a majority is reachable"})
		default:
			w.Header().Set("Location", leader.srv.URL+r.URL.RequestURI())
			w.WriteHeader(http.StatusTemporaryRedirect)
			json.NewEncoder(w).Encode(directive.ErrorBody{Error: "not the leader", Leader: leader.srv.URL})
		}
	}))
	defer follower.Close()
	c := fast(New([]string{follower.URL}, "tok"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := c.Propose(ctx, proposal())
	if err != nil || ch.ID != 1 || leader.changes() != 1 {
		t.Fatalf("%+v %v", ch, err)
	}
	// A definitive refusal is not retried.
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(directive.ErrorBody{Error: "alice lacks the approver role"})
	}))
	defer refuse.Close()
	before := calls.Load()
	_, err = fast(New([]string{refuse.URL}, "tok")).Decide(ctx, 1, "approve", "ok")
	var ce *Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || calls.Load() != before+1 {
		t.Fatalf("403: %v after %d calls", err, calls.Load()-before)
	}
}

// TestNoDeadlineMeansOneRound: without a deadline (the coordinator's own
// join loop) a call gives up after one round instead of spinning.
func TestNoDeadlineMeansOneRound(t *testing.T) {
	err := fast(New([]string{deadURL(t), deadURL(t)}, "tok")).Do(context.Background(), http.MethodGet, "/v1/status", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "no coordinator reachable") {
		t.Fatalf("%v", err)
	}
}

// TestUnreachableClusterFailsFast: when no member accepts a connection
// for three rounds, the call ends long before its deadline (a mistyped URL
// must not cost the whole --timeout); during an election members answer,
// so that case retries (TestStaleLeaderHintAndElection).
func TestUnreachableClusterFailsFast(t *testing.T) {
	c := fast(New([]string{deadURL(t), deadURL(t)}, "tok"))
	c.MinBackoff, c.MaxBackoff = 50*time.Millisecond, time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Propose(ctx, proposal())
	if err == nil || !strings.Contains(err.Error(), "no coordinator reachable") || time.Since(start) > 3*time.Second {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	var u *UnknownOutcomeError
	if errors.As(err, &u) {
		t.Fatal("nothing was sent, yet the outcome is called unknown")
	}
}
