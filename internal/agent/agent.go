// Package agent is the proxy's side of the Gaia directive stream: it
// long-polls the coordinator's leader with the version it runs and the
// nonce of the last response, validates each new directive, has the proxy
// apply it whole (or not at all), and ACKs or NACKs it with the error. The
// last good directive is persisted to disk so that a proxy restarted while
// no coordinator is reachable starts from it.
//
// The agent never sits on the request path (DESIGN.md principle 1): it runs
// on its own goroutine and changes the proxy only through Applier. When no
// coordinator is reachable it keeps the last good directive and reports
// itself degraded (Status.Degraded and the lbsys_agent_degraded metric)
// once polls have failed for Options.DegradedRounds full rounds and
// Options.DegradedAfter, so one failed round (a leader election) does not
// flap it.
//
// Versions belong to a coordinator cluster (directive.Directive.Cluster):
// the agent runs versions of one cluster, never goes back to an older
// version of it (it NACKs one), and refuses directives of another cluster
// until its operator resets it (the state file removed, e.g. by
// `lbsys coordinator reset-agent`): a rebuilt cluster numbers its versions
// from 1 again, with other content.
//
// It imports only api/directive from the control plane (principle 4).
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/api/directive"
)

// Applier installs a directive in the data plane.
type Applier interface {
	// Apply installs d whole, or returns an error having changed nothing.
	Apply(d *directive.Directive) error
}

// ApplierFunc adapts a function to Applier.
type ApplierFunc func(d *directive.Directive) error

// Apply calls f.
func (f ApplierFunc) Apply(d *directive.Directive) error { return f(d) }

// StatsFunc returns per-service traffic statistics since a time (for canary
// reports).
type StatsFunc func(since time.Time) map[string]directive.ServiceStats

// Options configure an agent.
type Options struct {
	// Coordinators are the coordinators' base URLs (any member: the agent
	// follows redirects to the leader). At least one.
	Coordinators []string
	// Token is a bearer token with the agent role.
	Token string
	// ProxyID identifies this proxy in the fleet.
	ProxyID string
	// StateFile keeps the last good directive ("" = not persisted).
	StateFile string
	// Applier installs directives. Required.
	Applier Applier
	// Stats feeds canary reports (nil: no reports).
	Stats StatsFunc
	// Wait is the long-poll wait asked of the coordinator. Default 20s.
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a failed poll.
	// Defaults 50ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// DegradedRounds and DegradedAfter: the agent reports itself degraded
	// once polls failed for at least DegradedRounds full rounds through
	// every coordinator AND for at least DegradedAfter since the last
	// successful poll (or the start). Both, so that neither a quick round
	// of refusals during an election nor one slow timeout trips it.
	// Defaults 2 and 5s.
	DegradedRounds int
	DegradedAfter  time.Duration
	// Client is the HTTP client (default: one with a 2s dial timeout).
	Client *http.Client
	Logger *slog.Logger
	// Registerer receives the agent's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Status is the agent's state, for the proxy's /status.
type Status struct {
	ProxyID      string   `json:"proxy_id"`
	Coordinators []string `json:"coordinators"`
	// Leader is the coordinator that answered last.
	Leader    string `json:"leader,omitempty"`
	Connected bool   `json:"connected"`
	// Degraded is true when no coordinator could be reached on the last
	// round through all of them: the proxy keeps its last good directive.
	Degraded      bool      `json:"degraded"`
	DegradedSince time.Time `json:"degraded_since,omitzero"`
	// Version is the directive version applied (0: none), of coordinator
	// cluster Cluster; Source says where it came from: coordinator or disk.
	Version   uint64    `json:"version"`
	Cluster   string    `json:"cluster,omitempty"`
	Source    string    `json:"source,omitempty"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	Nonce     string    `json:"nonce,omitempty"`
	Canary    bool      `json:"canary"`
	// ReportIntervalMs > 0 while the coordinator asks for canary reports.
	ReportIntervalMs int64 `json:"report_interval_ms,omitempty"`
	// Rejected is the last version NACKed, with the reason.
	Rejected     uint64 `json:"rejected,omitempty"`
	RejectError  string `json:"reject_error,omitempty"`
	LastError    string `json:"last_error,omitempty"`
	PersistError string `json:"persist_error,omitempty"`
	// ClusterMismatch says why the coordinator's cluster is not the one
	// whose version this proxy runs ("" when they match): the proxy keeps
	// its directive and takes none from that cluster until it is reset.
	ClusterMismatch string `json:"cluster_mismatch,omitempty"`
}

// Agent is one proxy's directive watcher.
type Agent struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	st      Status
	current *directive.Directive
	// reportSince starts the current canary-report window.
	reportSince time.Time
	wake        chan struct{}
	// lastOK is the time of the last successful poll (or of Run's start):
	// the degraded rule counts from it.
	lastOK time.Time
}

// New checks the options and returns an agent; call Restore, then Run.
func New(o Options) (*Agent, error) {
	if len(o.Coordinators) == 0 {
		return nil, errors.New("agent: at least one coordinator URL is required")
	}
	for i, u := range o.Coordinators {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("coordinator URL %q: want http://host:port", u)
		}
		o.Coordinators[i] = strings.TrimSuffix(u, "/")
	}
	if o.ProxyID == "" {
		return nil, errors.New("agent: proxy ID required")
	}
	if o.Applier == nil {
		return nil, errors.New("agent: an Applier is required")
	}
	if o.Wait <= 0 {
		o.Wait = 20 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(2*time.Second, o.MinBackoff)
	}
	if o.DegradedRounds <= 0 {
		o.DegradedRounds = 2
	}
	if o.DegradedAfter <= 0 {
		o.DegradedAfter = 5 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	a := &Agent{opts: o, log: o.Logger.With("component", "agent"), wake: make(chan struct{}, 1)}
	a.st.ProxyID = o.ProxyID
	a.st.Coordinators = append([]string(nil), o.Coordinators...)
	a.metrics = newMetrics(o.Registerer)
	return a, nil
}

// Status returns a copy of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	st.Coordinators = append([]string(nil), a.st.Coordinators...)
	return st
}

// Directive returns the directive applied (nil: none). Never mutate it.
func (a *Agent) Directive() *directive.Directive {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

// Restore applies the persisted directive, if any. A proxy calls it before
// serving, so that it starts from its last good directive even when no
// coordinator is reachable. A missing file is not an error.
func (a *Agent) Restore() error {
	d, err := load(a.opts.StateFile)
	if err != nil || d == nil {
		return err
	}
	if err := a.opts.Applier.Apply(d); err != nil {
		return fmt.Errorf("persisted directive %s (version %d) no longer applies: %w", a.opts.StateFile, d.Version, err)
	}
	a.mu.Lock()
	a.current = d
	a.st.Version, a.st.Cluster, a.st.Source, a.st.AppliedAt = d.Version, d.Cluster, "disk", time.Now()
	a.mu.Unlock()
	a.metrics.version.Set(float64(d.Version))
	a.log.Info("started from the persisted directive", "version", d.Version, "cluster", d.Cluster, "file", a.opts.StateFile)
	return nil
}

// Run watches until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.reportLoop(ctx) }()
	defer wg.Wait()

	urls := a.opts.Coordinators
	idx := 0
	url := urls[0]
	failures, redirects := 0, 0
	backoff := a.opts.MinBackoff
	a.mu.Lock()
	a.lastOK = time.Now()
	a.mu.Unlock()
	for ctx.Err() == nil {
		resp, leader, err := a.watch(ctx, url)
		if err == nil && resp.Directive != nil {
			err = a.handle(resp)
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			failures, redirects, backoff = 0, 0, a.opts.MinBackoff
			a.connected(url, resp)
			continue
		case leader != "" && leader != url && redirects < 3:
			// Not the leader: go to the one it named, at once.
			redirects++
			url = leader
			continue
		}
		redirects = 0
		failures++
		a.failed(err, failures/len(urls))
		idx = (idx + 1) % len(urls)
		url = urls[idx]
		if failures%len(urls) == 0 {
			// A whole round failed: wait before the next one.
			sleep := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-ctx.Done():
				return
			case <-time.After(sleep):
			}
			backoff = min(2*backoff, a.opts.MaxBackoff)
		}
	}
}

// watch sends one long poll. It returns the response, or an error with the
// leader's URL when the coordinator named another leader.
func (a *Agent) watch(ctx context.Context, base string) (*directive.WatchResponse, string, error) {
	a.mu.Lock()
	req := directive.WatchRequest{Proxy: a.st.ProxyID, Version: a.st.Version, Cluster: a.st.Cluster, Nonce: a.st.Nonce,
		Rejected: a.st.Rejected, Error: a.st.RejectError, ReportIntervalMs: a.st.ReportIntervalMs, WaitMs: a.opts.Wait.Milliseconds()}
	a.mu.Unlock()
	// A little more than the wait: a coordinator that accepted the
	// connection but does not answer (stopped, overloaded) costs at most
	// this before the agent tries the next one.
	ctx, cancel := context.WithTimeout(ctx, a.opts.Wait+3*time.Second)
	defer cancel()
	var resp directive.WatchResponse
	leader, err := a.post(ctx, base+directive.WatchPath, req, &resp)
	if err != nil {
		return nil, leader, err
	}
	if resp.Directive != nil && resp.Directive.Version != resp.Version {
		// Checked here so that the NACK names the version offered.
		resp.Directive.Version = resp.Version
	}
	return &resp, "", nil
}

// post sends a JSON request and decodes a JSON answer. On 307 or a 503 that
// names a leader it returns the leader's base URL with an error.
func (a *Agent) post(ctx context.Context, url string, body, out any) (string, error) {
	b, _ := json.Marshal(body)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+a.opts.Token)
	resp, err := a.opts.Client.Do(hr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, directive.MaxBytes+64<<10))
	if err != nil {
		return "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if out == nil {
			return "", nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return "", fmt.Errorf("%s: bad answer: %w", url, err)
		}
		return "", nil
	case http.StatusNoContent:
		return "", nil
	}
	var eb directive.ErrorBody
	json.Unmarshal(raw, &eb)
	msg := eb.Error
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	err = fmt.Errorf("%s: %s: %s", url, resp.Status, msg)
	if resp.StatusCode == http.StatusConflict && eb.Cluster != "" {
		err = &clusterError{cluster: eb.Cluster, err: err}
	}
	return strings.TrimSuffix(eb.Leader, "/"), err
}

// clusterError is a coordinator's refusal of a proxy that runs a version
// of another cluster.
type clusterError struct {
	cluster string
	err     error
}

func (e *clusterError) Error() string { return e.err.Error() }

func (a *Agent) connected(url string, resp *directive.WatchResponse) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.Degraded {
		a.log.Info("coordinator reachable again; leaving degraded mode", "leader", url)
	}
	a.st.Connected, a.st.Degraded, a.st.DegradedSince, a.st.LastError = true, false, time.Time{}, ""
	a.st.ClusterMismatch = ""
	a.lastOK = time.Now()
	a.st.Leader = url
	if resp.Leader != "" {
		a.st.Leader = resp.Leader
	}
	a.st.Nonce = resp.Nonce
	if resp.ReportIntervalMs != a.st.ReportIntervalMs {
		if a.st.ReportIntervalMs == 0 {
			a.reportSince = time.Now()
		}
		a.st.ReportIntervalMs = resp.ReportIntervalMs
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	a.st.Canary = resp.Canary
	a.metrics.degraded.Set(0)
}

// failed records a failed poll; rounds is how many full rounds through
// every coordinator failed in a row.
func (a *Agent) failed(err error, rounds int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.Connected = false
	a.st.LastError = err.Error()
	var ce *clusterError
	if errors.As(err, &ce) {
		if a.st.ClusterMismatch == "" {
			a.log.Error("the coordinator belongs to another cluster than the directive this proxy runs: it keeps its directive and takes none from that cluster; reset the agent to move it", "runs", a.st.Cluster, "coordinator", ce.cluster, "err", err)
		}
		a.st.ClusterMismatch = fmt.Sprintf("this proxy runs version %d of cluster %s; the coordinator is cluster %s", a.st.Version, a.st.Cluster, ce.cluster)
	}
	a.metrics.watchErrors.Inc()
	if rounds >= a.opts.DegradedRounds && time.Since(a.lastOK) >= a.opts.DegradedAfter && !a.st.Degraded {
		a.st.Degraded, a.st.DegradedSince = true, time.Now()
		a.metrics.degraded.Set(1)
		a.log.Warn("no coordinator reachable: degraded mode, serving the last good directive", "version", a.st.Version, "failed_rounds", rounds, "since", a.lastOK, "err", err)
	}
}

// handle validates and applies a directive from the stream; the next poll
// carries the ACK (new version) or the NACK (rejected version and error).
// A directive of another cluster than the one the proxy runs is neither
// applied nor answered: handle returns an error, and the poll counts as
// failed.
func (a *Agent) handle(resp *directive.WatchResponse) error {
	d := resp.Directive
	if d.Cluster == "" {
		d.Cluster = resp.Cluster
	}
	a.mu.Lock()
	cur := a.current
	a.mu.Unlock()
	if cur != nil && cur.Cluster != "" && d.Cluster != cur.Cluster {
		return &clusterError{cluster: d.Cluster, err: fmt.Errorf("directive version %d is of cluster %q, and this proxy runs version %d of cluster %s: refused (not applied, not acknowledged); reset the agent to move it to the new cluster", d.Version, d.Cluster, cur.Version, cur.Cluster)}
	}
	if cur != nil && cur.Cluster == "" && d.Cluster != "" {
		a.log.Info("adopting the coordinator's cluster ID (the running directive has none: written before cluster IDs, or restored from such a file)", "cluster", d.Cluster)
	}
	err := d.Validate()
	if err == nil && d.Version == 0 {
		err = errors.New("version: 0 is not a committed version")
	}
	if err == nil && cur != nil && cur.Cluster != "" && d.Version < cur.Version {
		err = fmt.Errorf("version %d is older than version %d this proxy runs, of the same cluster %s: versions only grow, so the coordinator lost committed state (restored from an old backup?); refusing to go back", d.Version, cur.Version, cur.Cluster)
	}
	if err == nil {
		err = a.opts.Applier.Apply(d)
	}
	if err != nil {
		a.mu.Lock()
		a.st.Rejected, a.st.RejectError = d.Version, truncate(err.Error(), 4000)
		a.mu.Unlock()
		a.metrics.applies.WithLabelValues("nack").Inc()
		a.log.Warn("directive refused (NACK); keeping the last good one", "version", d.Version, "err", err)
		return nil
	}
	perr := persist(a.opts.StateFile, d)
	now := time.Now()
	a.mu.Lock()
	a.current = d
	a.st.Version, a.st.Cluster, a.st.Source, a.st.AppliedAt = d.Version, d.Cluster, "coordinator", now
	a.st.Rejected, a.st.RejectError = 0, ""
	a.st.PersistError = ""
	if perr != nil {
		a.st.PersistError = perr.Error()
	}
	if a.st.ReportIntervalMs > 0 {
		a.reportSince = now // a new version starts a new window
	}
	a.mu.Unlock()
	a.metrics.applies.WithLabelValues("ack").Inc()
	a.metrics.version.Set(float64(d.Version))
	if perr != nil {
		a.log.Error("directive applied but not persisted; a restart without coordinator would lose it", "version", d.Version, "err", perr)
	} else {
		a.log.Info("directive applied (ACK)", "version", d.Version, "cluster", d.Cluster, "canary", resp.Canary)
	}
	return nil
}

// reportLoop sends canary-window statistics while the coordinator asks.
func (a *Agent) reportLoop(ctx context.Context) {
	for {
		a.mu.Lock()
		interval := time.Duration(a.st.ReportIntervalMs) * time.Millisecond
		a.mu.Unlock()
		var tick <-chan time.Time
		var t *time.Timer
		if interval > 0 && a.opts.Stats != nil {
			t = time.NewTimer(interval)
			tick = t.C
		}
		fired := false
		select {
		case <-ctx.Done():
		case <-a.wake:
		case <-tick:
			fired = true
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		if !fired {
			continue
		}
		a.mu.Lock()
		rep := directive.Report{Proxy: a.st.ProxyID, Version: a.st.Version, Cluster: a.st.Cluster, Since: a.reportSince}
		leader := a.st.Leader
		a.mu.Unlock()
		if leader == "" {
			continue
		}
		rep.Services = a.opts.Stats(rep.Since)
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := a.post(rctx, leader+directive.ReportPath, rep, nil)
		cancel()
		if err != nil {
			a.log.Debug("canary report not delivered", "err", err)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
