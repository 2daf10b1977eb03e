package shop

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
)

// An instance is one HTTP server of a group. It lives through incarnations:
// each start (or restart after an injected crash) binds the same address and
// gets a fresh listener, http.Server, worker pool and cold start, like a
// new process; the store is the "database" and survives.
type instance struct {
	g     *Group
	index int
	name  string
	speed float64
	lat   *logNormal

	mu         sync.Mutex // guards addr, crashed, closed, restart, restartGen and incarnation changes
	addr       string
	crashed    bool
	closed     bool
	restart    clock.Timer
	restartGen uint64

	inc   atomic.Pointer[incarnation]
	fault atomic.Pointer[faultState]

	requests atomic.Int64 // service requests (not /healthz or /_shop)
	rejected atomic.Int64 // 503 overloaded
	injected atomic.Int64 // 500 injected
	crashes  atomic.Int64
	inflight atomic.Int64 // service requests in the instance, queued and hung included
}

// incarnation is one life of an instance, from listen to crash or close.
type incarnation struct {
	inst    *instance
	srv     *http.Server
	ln      net.Listener
	pool    *pool
	started time.Time
	// ctx ends when the incarnation dies. Work that outlives the client's
	// request (a checkout's downstream calls, a store transaction) runs
	// under it, so a crash stops it where it is, as killing a process does.
	ctx    context.Context
	cancel context.CancelFunc
	served chan struct{} // closed when Serve has returned

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	dead   bool
}

// call is one request being served.
type call struct {
	g    *Group
	inst *instance
	inc  *incarnation
	w    http.ResponseWriter
	r    *http.Request
	arg  string // the path parameter of the endpoint, if any
}

// endpoint is one operation of a service.
type endpoint struct {
	cost   float64 // service-time multiplier, see capacity.go
	handle func(*call)
}

// serviceDef is what makes a group a catalog, a cart, …
type serviceDef struct {
	// route finds the endpoint of a request. With no endpoint, a non-empty
	// allow means the path exists for those methods (405), else 404.
	route func(method, path string) (ep *endpoint, arg, allow string)
	// state is the service's part of /_shop/stats.
	state func(ctx context.Context, g *Group) (map[string]int64, error)
}

type connKey struct{}

// connFrom returns the connection a request arrived on (set by ConnContext).
func connFrom(ctx context.Context) net.Conn {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	return c
}

// startLocked binds the instance's address and serves a new incarnation.
func (s *instance) startLocked() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return err
	}
	s.addr = ln.Addr().String()
	inc := &incarnation{
		inst:    s,
		ln:      ln,
		pool:    newPool(s.g.cfg.Workers, s.g.cfg.Queue, s.g.cfg.QueueTimeout),
		started: s.g.clock.Now(),
		served:  make(chan struct{}),
		conns:   map[net.Conn]struct{}{},
	}
	inc.ctx, inc.cancel = context.WithCancel(context.Background())
	inc.srv = &http.Server{
		Handler:           inc,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
		ConnState:         inc.track,
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
	}
	s.inc.Store(inc)
	s.crashed = false
	go func() {
		inc.srv.Serve(ln)
		close(inc.served)
	}()
	return nil
}

// track keeps the set of open connections, so that a crash can reset them.
func (inc *incarnation) track(c net.Conn, st http.ConnState) {
	inc.connMu.Lock()
	defer inc.connMu.Unlock()
	switch st {
	case http.StateNew:
		if inc.dead {
			c.Close()
			return
		}
		inc.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(inc.conns, c)
	}
}

// kill ends the incarnation like a killed process: the listener closes (new
// connects are refused) and every connection but keep is reset (RST, via
// SO_LINGER 0, so clients see "connection reset" as they would). keep is
// the connection that asked for the crash; it closes after its answer.
//
// Connections close before the incarnation's context is cancelled, so that
// no request woken by the cancellation can still get an answer out.
func (inc *incarnation) kill(keep net.Conn) {
	defer inc.cancel()
	inc.ln.Close()
	inc.connMu.Lock()
	inc.dead = true
	conns := make([]net.Conn, 0, len(inc.conns))
	for c := range inc.conns {
		if c != keep {
			conns = append(conns, c)
		}
	}
	inc.connMu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
}

// setFault installs f. A crash kills the current incarnation and, with
// RestartAfter, schedules a new one; a fault without crash on a crashed
// instance restarts it at once.
func (s *instance) setFault(f Fault, keep net.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("shop: instance is closed")
	}
	s.restartGen++
	if s.restart != nil {
		s.restart.Stop()
		s.restart = nil
	}
	// Kill before installing the crash fault: installing wakes requests
	// held by a hang, which must find their incarnation dead.
	if f.Crash && !s.crashed {
		s.crashed = true
		s.crashes.Add(1)
		s.inc.Load().kill(keep)
		s.g.log.Warn("shop: instance crashed (injected)", "instance", s.name, "addr", s.addr, "restart_after", f.RestartAfter)
	}
	s.installFault(f)
	if !f.Crash && s.crashed {
		if err := s.startLocked(); err != nil {
			return err
		}
		s.g.log.Info("shop: instance restarted", "instance", s.name, "url", "http://"+s.addr)
	}
	if f.Crash && f.RestartAfter > 0 {
		gen := s.restartGen
		s.restart = s.g.clock.AfterFunc(f.RestartAfter, func() { s.restartAfterCrash(gen, 0) })
	}
	return nil
}

func (s *instance) installFault(f Fault) {
	old := s.fault.Swap(&faultState{f: f, changed: make(chan struct{})})
	if old != nil {
		close(old.changed)
	}
}

// restartAfterCrash brings a crashed instance back as a fresh process: no
// fault, cold again. If the port is briefly taken it tries again, for up
// to about 5 seconds.
func (s *instance) restartAfterCrash(gen uint64, try int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.crashed || gen != s.restartGen {
		return
	}
	s.installFault(Fault{})
	if err := s.startLocked(); err != nil {
		if try < 50 {
			s.restart = s.g.clock.AfterFunc(100*time.Millisecond, func() { s.restartAfterCrash(gen, try+1) })
			return
		}
		s.g.log.Error("shop: restart failed", "instance", s.name, "addr", s.addr, "err", err)
		return
	}
	s.g.log.Info("shop: instance restarted", "instance", s.name, "url", "http://"+s.addr)
}

// close ends the instance for good (no restart).
func (s *instance) close() *incarnation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.restart != nil {
		s.restart.Stop()
	}
	inc := s.inc.Load()
	if !s.crashed {
		inc.kill(nil)
	}
	return inc
}

func (s *instance) currentFault() Fault { return s.fault.Load().f }

// serviceTime is how long a request of the given cost holds a worker:
// a log-normal draw × cost × slow-fault × cold factor ÷ speed.
func (s *instance) serviceTime(cost, slow float64, started time.Time) time.Duration {
	base := s.lat.draw()
	if base == 0 {
		return 0
	}
	k := 1.0
	if cfg := &s.g.cfg; cfg.Warmup > 0 && cfg.ColdFactor > 1 {
		k = coldFactor(s.g.clock.Now().Sub(started), cfg.Warmup, cfg.ColdFactor)
	}
	return time.Duration(base * cost * slow * k / s.speed * float64(time.Second))
}

// ServeHTTP is the request pipeline: route, fault, admission, service
// time, then the endpoint's work. /healthz and /_shop/* bypass the worker
// pool: they are the operator's and the balancer's view, and must answer
// when the instance is saturated.
func (inc *incarnation) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := inc.inst
	g := s.g
	if !g.enter() {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	defer g.exit()
	c := &call{g: g, inst: s, inc: inc, w: w, r: r}
	switch r.URL.Path {
	case "/healthz":
		c.serveHealth()
		return
	case "/_shop/stats":
		c.serveStats()
		return
	case "/_shop/fault":
		c.serveFault()
		return
	}
	ep, arg, allow := g.svc.route(r.Method, r.URL.Path)
	if ep == nil {
		if allow != "" {
			w.Header().Set("Allow", allow)
			c.replyError(http.StatusMethodNotAllowed, "method_not_allowed", "use "+allow)
			return
		}
		c.replyError(http.StatusNotFound, "not_found", "no such path in the "+g.cfg.Service+" API (see docs/shop-api.md)")
		return
	}
	c.arg = arg
	s.requests.Add(1)
	s.inflight.Add(1)
	defer s.inflight.Add(-1)

	fs := s.fault.Load()
	for fs.f.Hang {
		select {
		case <-fs.changed:
			fs = s.fault.Load()
		case <-r.Context().Done():
			abandon()
		case <-inc.ctx.Done():
			abandon()
		}
	}
	if fs.f.ErrorRate > 0 && s.lat.float() < fs.f.ErrorRate {
		s.injected.Add(1)
		w.Header().Set("X-Shop-Error", "injected")
		c.replyError(http.StatusInternalServerError, "injected_fault", "error injected by /_shop/fault; nothing was done")
		return
	}
	if err := inc.pool.acquire(r.Context(), inc.ctx.Done()); err != nil {
		if err == errGone {
			abandon()
		}
		s.rejected.Add(1)
		w.Header().Set("Retry-After", "1")
		w.Header().Set("X-Shop-Error", "overloaded")
		c.replyError(http.StatusServiceUnavailable, "overloaded", err.Error()+": the instance is at capacity; retry later or elsewhere")
		return
	}
	defer inc.pool.release()
	if !hold(r.Context(), inc.ctx.Done(), s.serviceTime(ep.cost, fs.f.slowFactor(), inc.started)) {
		abandon()
	}
	ep.handle(c)
}

// abandon ends a request without an answer: the client left, or the
// instance crashed. Returning normally would make net/http send an empty
// 200 on a connection that may still be open; http.ErrAbortHandler makes it
// drop the connection instead, which is what a dead process does. Deferred
// bookkeeping (worker, in-flight count) still runs.
func abandon() { panic(http.ErrAbortHandler) }

func (c *call) serveHealth() {
	status, body := http.StatusOK, "ok"
	switch {
	case c.g.draining.Load():
		status, body = http.StatusServiceUnavailable, "draining"
	case c.g.cfg.ReadyAfter > 0 && c.g.clock.Now().Sub(c.g.started) < c.g.cfg.ReadyAfter:
		// Not ready yet: a pod's readiness probe failing while it starts
		// (caches to load, connections to open), so that nothing routes
		// to it before ReadyAfter.
		status, body = http.StatusServiceUnavailable, "starting"
	}
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.setLoad()
	c.w.WriteHeader(status)
	io.WriteString(c.w, body)
}

// Stats is an instance's /_shop/stats. The service's state summary (see
// docs/shop-api.md) is in State and, in JSON, flattened into the top level.
type Stats struct {
	Instance       string           `json:"instance"`        // <service>-<index>
	Service        string           `json:"service"`         // the service's name
	Addr           string           `json:"addr"`            // listen address
	Requests       int64            `json:"requests"`        // service requests received (not /healthz, /_shop/*)
	InFlight       int64            `json:"in_flight"`       // service requests in the instance, queued and hung included (the rif of X-Lbsys-Load)
	QueueLength    int64            `json:"queue_length"`    // requests waiting for a worker
	Busy           int              `json:"busy"`            // workers serving
	Workers        int              `json:"workers"`         // workers in all
	Utilization    float64          `json:"utilization"`     // Busy / Workers (the util of X-Lbsys-Load)
	BusySeconds    float64          `json:"busy_seconds"`    // ∫ busy workers dt since the instance started (worker·seconds): mean utilisation over an interval = Δ / (workers × interval)
	Rejected       int64            `json:"rejected"`        // 503 overloaded answers
	InjectedErrors int64            `json:"injected_errors"` // 500 answers injected by error_rate
	Crashes        int64            `json:"crashes"`         // injected crashes
	Crashed        bool             `json:"crashed"`         // down now
	Speed          float64          `json:"speed"`           // service time divisor
	ColdFactor     float64          `json:"cold_factor"`     // current cold-start multiplier
	Fault          Fault            `json:"fault"`           // current fault
	State          map[string]int64 `json:"-"`               // the service's summary, flattened in JSON
}

// MarshalJSON flattens State into the object.
func (st Stats) MarshalJSON() ([]byte, error) {
	type plain Stats
	b, err := json.Marshal(plain(st))
	if err != nil || len(st.State) == 0 {
		return b, err
	}
	m, err := json.Marshal(st.State)
	if err != nil {
		return nil, err
	}
	out := append(b[:len(b)-1], ',')
	return append(out, m[1:]...), nil
}

func (s *instance) stats(ctx context.Context) (Stats, error) {
	s.mu.Lock()
	addr, crashed := s.addr, s.crashed
	s.mu.Unlock()
	inc := s.inc.Load()
	busy := inc.pool.busy()
	cfg := &s.g.cfg
	st := Stats{
		Instance:       s.name,
		Service:        cfg.Service,
		Addr:           addr,
		Requests:       s.requests.Load(),
		InFlight:       s.inflight.Load(),
		QueueLength:    inc.pool.queued(),
		Busy:           busy,
		Workers:        cfg.Workers,
		Utilization:    float64(busy) / float64(cfg.Workers),
		BusySeconds:    inc.pool.busyTime().Seconds(),
		Rejected:       s.rejected.Load(),
		InjectedErrors: s.injected.Load(),
		Crashes:        s.crashes.Load(),
		Crashed:        crashed,
		Speed:          s.speed,
		ColdFactor:     coldFactor(s.g.clock.Now().Sub(inc.started), cfg.Warmup, cfg.ColdFactor),
		Fault:          s.currentFault(),
	}
	var err error
	st.State, err = s.g.svc.state(ctx, s.g)
	return st, err
}

func (c *call) serveStats() {
	if c.r.Method != http.MethodGet {
		c.w.Header().Set("Allow", "GET")
		c.replyError(http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	st, err := c.inst.stats(c.inc.ctx)
	if err != nil {
		c.replyStoreError(err)
		return
	}
	c.replyJSON(http.StatusOK, st)
}
