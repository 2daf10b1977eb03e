// Package client talks to the Gaia coordinator's HTTP API: the wire types
// of its people-and-pipeline API and a client that finds the leader. The
// CLI uses it, and so can the pipeline, which changes production only by
// proposing changes here (DESIGN.md). It does not import Raft.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/gaia/fsm"
)

// ProposeRequest is the body of POST /v1/changes.
type ProposeRequest struct {
	Type      fsm.Type             `json:"type"`
	Reason    string               `json:"reason"`
	Directive *directive.Directive `json:"directive"`
	NotBefore time.Time            `json:"not_before,omitzero"`
	NoCanary  bool                 `json:"no_canary,omitempty"`
	// IdempotencyKey makes a retried proposal return the first change.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// IfStable: only if the stable version is (and stays, until the change
	// is implemented) this one; see fsm.Propose.
	IfStable uint64 `json:"if_stable,omitempty"`
}

// DecisionRequest is the body of approve, reject and cancel.
type DecisionRequest struct {
	Reason string `json:"reason"`
}

// RollbackRequest is the body of POST /v1/rollback: restore ToVersion, or
// the version that was stable before Change.
type RollbackRequest struct {
	ToVersion      uint64   `json:"to_version,omitempty"`
	Change         uint64   `json:"change,omitempty"`
	Type           fsm.Type `json:"type,omitempty"`
	Reason         string   `json:"reason"`
	IdempotencyKey string   `json:"idempotency_key,omitempty"`
}

// JoinRequest is the body of POST /v1/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// ChangeView is GET /v1/changes/{id}: the change, its audit trail and its
// diff against the version it was implemented on (or the stable version).
type ChangeView struct {
	*fsm.Change
	Audit []fsm.AuditEntry   `json:"audit"`
	Diff  []directive.Change `json:"diff"`
}

// ChangeSummary is one line of GET /v1/changes.
type ChangeSummary struct {
	ID        uint64      `json:"id"`
	Type      fsm.Type    `json:"type"`
	State     fsm.State   `json:"state"`
	Requester string      `json:"requester"`
	Reason    string      `json:"reason"`
	Version   uint64      `json:"version,omitempty"`
	Outcome   fsm.Outcome `json:"outcome,omitempty"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// Status is GET /v1/status.
type Status struct {
	ID           string         `json:"id"`
	RaftState    string         `json:"raft_state"`
	Leader       string         `json:"leader"`
	LeaderURL    string         `json:"leader_url,omitempty"`
	Term         uint64         `json:"term"`
	LastIndex    uint64         `json:"last_index"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Members      []fsm.Member   `json:"members"`
	Voters       []string       `json:"voters"`
	Stable       uint64         `json:"stable"`
	Latest       uint64         `json:"latest"`
	Live         bool           `json:"live"`
	Active       uint64         `json:"active_change,omitempty"`
	Canary       *fsm.Canary    `json:"canary,omitempty"`
	Proxies      []fsm.Proxy    `json:"proxies"`
	Policy       fsm.Policy     `json:"policy"`
	Now          time.Time      `json:"fsm_time"`
	Pending      map[string]int `json:"changes_by_state"`
}

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

// Client calls one coordinator cluster.
type Client struct {
	// URLs of members; the client starts with the first that answers and
	// follows redirects to the leader.
	URLs  []string
	Token string
	HTTP  *http.Client
}

// New returns a client with a 10s default timeout per call.
func New(urls []string, token string) *Client {
	for i, u := range urls {
		urls[i] = strings.TrimSuffix(u, "/")
	}
	return &Client{URLs: urls, Token: token, HTTP: &http.Client{
		Timeout:       15 * time.Second,
		Transport:     &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Do sends one call and decodes the answer into out (if not nil). It tries
// each URL until one answers, and follows up to five leader redirects,
// keeping the token (Go's client would drop it across hosts).
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
	var lastErr error
	for _, base := range c.URLs {
		target := base + path
		for hops := 0; hops < 5; hops++ {
			var rd io.Reader
			if body != nil {
				rd = bytes.NewReader(body)
			}
			req, err := http.NewRequestWithContext(ctx, method, target, rd)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+c.Token)
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := c.HTTP.Do(req)
			if err != nil {
				lastErr = err
				break // next URL
			}
			raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			if err != nil {
				lastErr = err
				break
			}
			if resp.StatusCode == http.StatusTemporaryRedirect && resp.Header.Get("Location") != "" {
				target = resp.Header.Get("Location")
				continue
			}
			if resp.StatusCode >= 300 {
				e := &Error{Status: resp.StatusCode, URL: target}
				if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error == "" {
					e.Body.Error = strings.TrimSpace(string(raw))
				}
				return e
			}
			if out != nil && len(raw) > 0 {
				if err := json.Unmarshal(raw, out); err != nil {
					return fmt.Errorf("%s: bad answer: %w", target, err)
				}
			}
			return nil
		}
		if lastErr == nil {
			lastErr = fmt.Errorf("%s: too many redirects", base)
		}
	}
	return fmt.Errorf("no coordinator reachable (%s): %w", strings.Join(c.URLs, ", "), lastErr)
}

// Propose creates a change.
func (c *Client) Propose(ctx context.Context, r ProposeRequest) (*fsm.Change, error) {
	var ch fsm.Change
	return &ch, c.Do(ctx, http.MethodPost, "/v1/changes", r, &ch)
}

// Decide approves, rejects or cancels a change.
func (c *Client) Decide(ctx context.Context, id uint64, action, reason string) (*fsm.Change, error) {
	var ch fsm.Change
	return &ch, c.Do(ctx, http.MethodPost, fmt.Sprintf("/v1/changes/%d/%s", id, action), DecisionRequest{Reason: reason}, &ch)
}

// Rollback creates a rollback change.
func (c *Client) Rollback(ctx context.Context, r RollbackRequest) (*fsm.Change, error) {
	var ch fsm.Change
	return &ch, c.Do(ctx, http.MethodPost, "/v1/rollback", r, &ch)
}

// Change returns one change with its audit trail and diff.
func (c *Client) Change(ctx context.Context, id uint64) (*ChangeView, error) {
	var v ChangeView
	return &v, c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/changes/%d", id), nil, &v)
}

// Changes lists changes, newest first ("open" lists those not closed or
// canceled).
func (c *Client) Changes(ctx context.Context, state string, limit int) ([]ChangeSummary, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out struct {
		Changes []ChangeSummary `json:"changes"`
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
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
}
