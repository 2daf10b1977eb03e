package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/admission"
	"github.com/lbsys/lbsys/internal/config"
	"github.com/lbsys/lbsys/internal/proxy/h1"
)

// Access logs (issue #14 item 5): one line per request a listener answers,
// in the combined or json format (accesslog_format.go), written through a
// bounded queue by one writer per file (accesslog_sink.go).
//
// The request path pays for it only on listeners that log. There, the
// listener handler wraps the response writer (status, bytes) and the
// request body (bytes), and puts a record in the request's context, where
// the route's transport notes the endpoint, the attempts, the upstream
// time and the policy's decision, and the error handler the proxy's own
// error reason. The line is formatted on the request's goroutine when the
// handler returns and queued without waiting; a full queue drops the line
// and counts it. On listeners that do not log, the hooks are a nil check
// in the handler and a bool test in the transport: no allocation, no
// context lookup.
//
// The record is read and written only on the request's goroutine, before
// the handler returns (the transport and the cache's fetches run there),
// which is what lets it be pooled.

// accessLog is one listener's access log in one configuration generation.
type accessLog struct {
	px         *Proxy
	key        string // the listener's listen address (generation key)
	listener   string
	json       bool
	query      bool
	sample     float64
	errorsOnly bool
	sink       *logSink
	drops      *accessDrops
	// rand draws the sampling decision; tests replace it.
	rand func() float64
}

// accessKey is the context key of a request's *accessRecord.
type accessKey struct{}

// accessRecord follows one request on a logged listener.
type accessRecord struct {
	e         accessEntry
	al        *accessLog
	rt        *route // nil until routed
	w         logWriter
	body      countingBody
	trusted   []netip.Prefix
	fromStore bool // answered by the cache from its store
}

var accessRecords = sync.Pool{New: func() any { return new(accessRecord) }}

// logWriter is the response writer of a logged request: it notes the
// final status, the body bytes and whether the answer reached the client
// whole, and passes everything else through: http.Flusher and FlushError,
// http.Hijacker, io.ReaderFrom, and Unwrap for http.ResponseController
// (deadlines, and abortResponse's way to the lbsys engine's response).
type logWriter struct {
	http.ResponseWriter
	rec      *accessRecord
	status   int
	bytes    int64 // body bytes handed to the server
	flushed  int64 // bytes at the last successful flush: they left the server's buffers
	declared int64 // the final response's Content-Length, -1 if none
	failed   bool  // a write or flush failed: the client did not get the answer whole
}

// final notes the final status and the length it announces.
func (w *logWriter) final(code int) {
	w.status = code
	if v := w.ResponseWriter.Header()["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.declared = n
		}
	}
}

// WriteHeader notes the final status; informational ones (103) pass.
func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.final(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts the body bytes the client was sent.
func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.final(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	w.noteErr(err)
	return n, err
}

// noteErr notes a write or flush error that leaves the client an
// incomplete answer; the errors of a call the server refused without
// harm (a body where none is allowed, beyond the Content-Length, no
// flushing on this writer) do not.
func (w *logWriter) noteErr(err error) {
	if err != nil && err != http.ErrBodyNotAllowed && err != http.ErrContentLength &&
		err != http.ErrHijacked && !errors.Is(err, http.ErrNotSupported) {
		w.failed = true
	}
}

// ReadFrom lets io.Copy use the server's own ReadFrom (net/http's sends a
// file with sendfile), counting what it copied. An error, the source's or
// the client's, leaves the answer incomplete.
func (w *logWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.final(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		bp := copyBufs.Get().(*[]byte)
		n, err = io.CopyBuffer(writerOnly{w.ResponseWriter}, src, *bp)
		copyBufs.Put(bp)
	}
	w.bytes += n
	if err != nil {
		w.failed = true
	}
	return n, err
}

// writerOnly hides every method but Write, so that io.CopyBuffer uses
// the buffer it is given.
type writerOnly struct{ io.Writer }

// Flush keeps streamed responses streaming for callers that type-assert
// http.Flusher.
func (w *logWriter) Flush() { w.FlushError() }

// FlushError is Flush with the error, for http.ResponseController.
func (w *logWriter) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if err == nil {
		w.flushed = w.bytes
	}
	w.noteErr(err)
	return err
}

// Hijack hands the connection over for an upgrade (WebSocket): the proxy
// then writes the 101 on the connection itself, so the status is noted
// here.
func (w *logWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

// Unwrap is for http.ResponseController.
func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// netHTTPResponseBuffer is how many body bytes net/http.Server holds in a
// response's own buffer before they reach the connection (its
// bufferBeforeChunkingSize; HTTP/2's handlerChunkWriteSize is twice that):
// an answer aborted by a panic loses them.
const netHTTPResponseBuffer = 2 << 10

// settle decides, once the handler has returned or panicked, whether the
// client got the answer whole, and how many body bytes reached it. An
// answer is cut short (logResponseAborted) when the handler ended in a
// panic (http.ErrAbortHandler: how the forwarder, and ReverseProxy, end an
// answer whose body could not be copied on net/http), when the lbsys
// engine's response was aborted or failed (abortResponse marks it, without
// a panic), when a write failed, or when fewer body bytes than the
// announced Content-Length were written. What an abort discards of the
// server's buffers never reached the client: on the lbsys engine that is
// known exactly; on net/http the count is a lower bound, at most
// netHTTPResponseBuffer (HTTP/2: twice that) short.
func (w *logWriter) settle(panicked bool, http2 bool) (aborted bool) {
	aborted = panicked || w.failed
	if unsent, failed := w.h1Failed(); failed {
		aborted = true
		// The response is closed without a flush: what is still in the
		// connection's buffer (possibly the header too) is dropped.
		w.bytes = max(0, w.bytes-int64(unsent))
	} else if panicked {
		held := int64(netHTTPResponseBuffer)
		if http2 {
			held *= 2
		}
		w.bytes = max(w.flushed, w.bytes-held, 0)
	}
	if w.declared > w.bytes && w.status != http.StatusNotModified && w.status != http.StatusNoContent &&
		w.rec.e.Method != http.MethodHead {
		aborted = true
	}
	return aborted
}

// h1Failed is h1.Response.Failed of the lbsys engine's response under w
// (false on net/http.Server).
func (w *logWriter) h1Failed() (unsent int, failed bool) {
	rw := w.ResponseWriter
	for {
		switch x := rw.(type) {
		case *h1.Response:
			return x.Failed()
		case interface{ Unwrap() http.ResponseWriter }:
			rw = x.Unwrap()
		default:
			return 0, false
		}
	}
}

// countingBody counts the request body bytes read from the client.
type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// serveLogged serves a request of a listener that logs, then logs it.
func (h *listenerHandler) serveLogged(g *generation, lr *listenerRoutes, w http.ResponseWriter, r *http.Request) {
	al := lr.alog
	rec := accessRecords.Get().(*accessRecord)
	rec.al, rec.trusted = al, g.trusted
	rec.e.Time = h.px.now()
	rec.begin(r)
	rec.w = logWriter{ResponseWriter: w, rec: rec, declared: -1}
	// A shallow copy carries the record: the server keeps the request it
	// made, whose Body it inspects after the handler (net/http looks for
	// its own types there).
	r = r.WithContext(context.WithValue(r.Context(), accessKey{}, rec))
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		rec.body = countingBody{rc: r.Body}
		r.Body = &rec.body
	}
	// An answer cut short mid-body on net/http ends in a panic
	// (http.ErrAbortHandler): it is logged too, once, and the panic goes
	// on to the server, which closes the connection. Any other panic is
	// an answer cut short as well.
	defer func() {
		if p := recover(); p != nil {
			al.finish(rec, true)
			panic(p)
		}
	}()
	h.serve(g, lr, &rec.w, r, rec)
	al.finish(rec, false)
}

// logResponseAborted is the error of a logged answer that was cut short
// (the endpoint's body failed, or the client could not be written to): the
// client got an incomplete response, or none. The proxy sends no
// X-Lbsys-Error for it (the header was already under way).
const logResponseAborted = "response_aborted"

// begin notes what the log needs of the request before anything changes
// its header (setForwarded rewrites X-Forwarded-For).
func (rec *accessRecord) begin(r *http.Request) {
	e := &rec.e
	e.Listener = rec.al.listener
	e.Client = hostOnly(r.RemoteAddr)
	e.Method = r.Method
	e.Host = r.Host
	e.Path = r.URL.EscapedPath()
	if rec.al.query {
		e.Query = r.URL.RawQuery
	}
	e.Proto = r.Proto
	h := r.Header
	e.UserAgent = firstValue(h["User-Agent"])
	e.Referer = firstValue(h["Referer"])
	e.RequestID = firstValue(h["X-Request-Id"])
	e.ForwardedClient = forwardedClient(e.Client, h["X-Forwarded-For"], rec.trusted)
}

func firstValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// forwardedClient returns the client a chain of trusted proxies forwarded
// for: from a trusted peer, the right-most X-Forwarded-For entry that is
// not itself a trusted proxy (entries to its left could be forged by that
// client), or the left-most when all are trusted. "" when the peer is not
// trusted or sent no X-Forwarded-For.
func forwardedClient(peer string, xff []string, trusted []netip.Prefix) string {
	if len(trusted) == 0 || len(xff) == 0 {
		return ""
	}
	if a, err := netip.ParseAddr(peer); err != nil || !inPrefixes(a.Unmap(), trusted) {
		return ""
	}
	last := ""
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			item := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				item, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			a, err := netip.ParseAddr(item)
			if err != nil || !inPrefixes(a.Unmap(), trusted) {
				return item
			}
			last = item
		}
	}
	return last
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// accessFrom returns the record of a request on a logged listener, nil
// otherwise. Callers test route.logs first: the context lookup is for
// logged requests only.
func accessFrom(r *http.Request) *accessRecord {
	rec, _ := r.Context().Value(accessKey{}).(*accessRecord)
	return rec
}

// noteShed records that admission refused the request.
func noteShed(r *http.Request, policy string, prio admission.Priority) {
	if rec := accessFrom(r); rec != nil {
		rec.e.Policy = policy
		if int(prio) < len(decisionShed) {
			rec.e.Decision = decisionShed[prio]
		}
	}
}

// noteAccess records what the transport did for the request: it may run
// more than once for one client request (the cache asks again after a 304
// for another representation), so attempts add up and the last endpoint
// is the one reported.
func (st *reqState) noteAccess(r *http.Request, err error) {
	rec := accessFrom(r)
	if rec == nil {
		return
	}
	e := &rec.e
	e.Attempts += st.attempts
	e.Policy = st.snap.set.policy
	if st.ep != nil {
		e.Endpoint = st.ep.be.ID
		e.Upstream = st.hdrLat
	}
	d := decisionPick
	switch {
	case st.attempts == 0:
		var pe *proxyError
		if errors.As(err, &pe) && pe.reason == reasonNoHealthy {
			e.Decision = decisionNoEndpoint
		}
		return
	case st.attempts > 1:
		d = decisionRetry
	case st.sticky:
		d = decisionSticky
	case st.info.HasHash:
		d = decisionHash
	}
	if st.snap.panic {
		d = decisionPanic[d]
	}
	e.Decision = d
}

// noteProxyError records the reason of an answer the proxy makes itself
// on the writer of a logged request (w may be wrapped, e.g. by the cache).
func noteProxyError(w http.ResponseWriter, reason string) {
	for {
		switch x := w.(type) {
		case *logWriter:
			x.rec.e.Error = reason
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return
		}
	}
}

// finish completes the record, decides whether to log it, formats and
// queues the line, and recycles the record. panicked: the handler is
// ending in a panic.
func (al *accessLog) finish(rec *accessRecord, panicked bool) {
	e := &rec.e
	e.Duration = al.px.now().Sub(e.Time)
	if rec.w.settle(panicked, strings.HasPrefix(e.Proto, "HTTP/2")) && e.Error == "" {
		e.Error = logResponseAborted
	}
	e.Status = rec.w.status
	if e.Status == 0 {
		if e.Error == reasonClientCanceled {
			e.Status = statusClientCanceled // nothing was sent: the client left
		} else {
			e.Status = http.StatusOK // what the server sends for an empty answer
		}
	}
	e.BytesOut = rec.w.bytes
	e.BytesIn = rec.body.n
	e.Cache = cacheNone
	if rt := rec.rt; rt != nil {
		e.Service, e.Route = rt.svc.name, rt.name
		if rt.cache != nil {
			e.Cache = rec.cacheStatus(rec.w.ResponseWriter.Header())
			if rec.fromStore {
				e.Decision = decisionCacheHit
				if e.Cache == cacheStale {
					e.Decision = decisionCacheStale
				}
			}
		}
	}
	isErr := e.Status >= 500 || e.Error != ""
	if isErr || !(al.errorsOnly || (al.sample < 1 && al.rand() >= al.sample)) {
		al.write(e)
	}
	*rec = accessRecord{}
	accessRecords.Put(rec)
}

// write formats e and queues the line, counting it when it is dropped.
func (al *accessLog) write(e *accessEntry) {
	l := getLogLine()
	if al.json {
		l.b = appendJSON(l.b, e)
	} else {
		l.b = appendCombined(l.b, e)
	}
	l.drops = al.drops
	reason := al.sink.send(l)
	if reason == dropClosed && al.px != nil {
		// A reload replaced this listener's file while the request ran:
		// the line goes to the listener's current file, if it still logs.
		if cur := al.px.currentAccessLog(al.key); cur != nil && cur.sink != al.sink {
			reason = cur.sink.send(l)
		}
	}
	switch reason {
	case "":
		return
	case dropQueueFull:
		al.drops.queueFull.Inc()
	default:
		al.drops.closed.Inc()
	}
	putLogLine(l)
}

// cacheStatus classifies a cached route's answer from what the cache did
// and the Cache-Status member it added (RFC 9211): the last member is the
// nearest cache's, and a member that is not lbsys's came from upstream.
func (rec *accessRecord) cacheStatus(h http.Header) string {
	if rec.fromStore {
		// The cache sets X-Cache itself on everything it serves.
		switch firstValue(h["X-Cache"]) {
		case "STALE":
			return cacheStale
		case "MISS":
			return cacheMiss // only-if-cached with nothing stored: a 504 of its own
		}
		return cacheHit
	}
	cs := h["Cache-Status"]
	if len(cs) == 0 {
		return cacheBypass
	}
	m, ok := strings.CutPrefix(cs[len(cs)-1], "lbsys;")
	if !ok {
		return cacheBypass
	}
	fwd := ""
	if i := strings.Index(m, "fwd="); i >= 0 {
		fwd = m[i+len("fwd="):]
		if j := strings.IndexByte(fwd, ';'); j >= 0 {
			fwd = fwd[:j]
		}
		fwd = strings.TrimSpace(fwd)
	}
	switch fwd {
	case "":
		return cacheHit
	case "bypass", "method":
		return cacheBypass
	case "stale":
		if strings.Contains(m, "fwd-status=304") {
			return cacheRevalidated
		}
	}
	return cacheMiss
}

// ---- configuration ----

// accessSetup is what apply prepares for the access logs before changing
// anything: the sink of every output the new configuration names.
type accessSetup struct {
	sinks map[string]*logSink // by config.AccessLog.Key
	fresh []*logSink          // opened for this configuration
}

// prepareAccessLogs opens the outputs cfg adds and reuses the running
// ones (a file is reopened by SIGUSR1, not by a reload that keeps its
// path). On error nothing stays open.
func (px *Proxy) prepareAccessLogs(cfg *config.Config) (*accessSetup, error) {
	px.mu.Lock()
	cur := px.sinks
	px.mu.Unlock()
	as := &accessSetup{sinks: map[string]*logSink{}}
	for _, l := range cfg.Listeners {
		a := l.AccessLog
		if a == nil {
			continue
		}
		key := a.Key()
		if _, ok := as.sinks[key]; ok {
			continue
		}
		if s, ok := cur[key]; ok {
			as.sinks[key] = s
			continue
		}
		s, err := openSink(a, px.log)
		if err != nil {
			as.abort()
			return nil, fmt.Errorf("listeners[%s].%w", l.Name, err)
		}
		as.sinks[key] = s
		as.fresh = append(as.fresh, s)
	}
	return as, nil
}

// abort closes what prepareAccessLogs opened, for an apply that failed.
func (as *accessSetup) abort() {
	for _, s := range as.fresh {
		s.close(accessCloseWait)
	}
}

// newAccessLog builds a listener's access log for a new generation; nil
// when the listener does not log.
func (px *Proxy) newAccessLog(l *config.Listener, as *accessSetup) *accessLog {
	a := l.AccessLog
	if a == nil {
		return nil
	}
	return &accessLog{
		px: px, key: l.Listen, listener: l.Name,
		json: a.Format == config.AccessLogJSON, query: a.Query,
		sample: a.Sample, errorsOnly: a.ErrorsOnly,
		sink:  as.sinks[a.Key()],
		drops: newAccessDrops(px.accessDropped, l.Name),
		rand:  accessSampleRand,
	}
}

// accessSampleRand draws sampling decisions; tests replace it before
// starting a proxy to make sampling deterministic.
var accessSampleRand = rand.Float64

// commitAccessLogs makes as the running set of outputs, once the
// generation that uses it is published, and closes the outputs it no
// longer names (their queued lines are written first).
func (px *Proxy) commitAccessLogs(as *accessSetup) {
	px.mu.Lock()
	old := px.sinks
	px.sinks = as.sinks
	var retired []*logSink
	for key, s := range old {
		if as.sinks[key] != s {
			retired = append(retired, s)
			if px.retiring == nil {
				px.retiring = map[*logSink]bool{}
			}
			px.retiring[s] = true // Close waits for it too
		}
	}
	px.mu.Unlock()
	for _, s := range retired {
		go func() {
			if err := s.close(accessCloseWait); err != nil {
				px.log.Warn("access log not closed cleanly", "err", err)
			}
			px.mu.Lock()
			delete(px.retiring, s)
			px.mu.Unlock()
		}()
	}
}

// currentAccessLog is the access log of the listener with listen address
// key in the running generation, nil if it does not log.
func (px *Proxy) currentAccessLog(key string) *accessLog {
	if lr := px.gen.Load().listeners[key]; lr != nil {
		return lr.alog
	}
	return nil
}

// closeAccessLogs writes what is queued and closes every output (Close).
func (px *Proxy) closeAccessLogs() {
	px.mu.Lock()
	sinks := make([]*logSink, 0, len(px.sinks)+len(px.retiring))
	for _, s := range px.sinks {
		sinks = append(sinks, s)
	}
	for s := range px.retiring {
		sinks = append(sinks, s) // being closed: wait for the writer too
	}
	px.sinks = nil
	px.mu.Unlock()
	for _, s := range sinks {
		if err := s.close(accessCloseWait); err != nil {
			px.log.Warn("access log not closed cleanly", "err", err)
		}
	}
}

// accessReopenWait bounds how long ReopenAccessLogs waits for each writer.
const accessReopenWait = 5 * time.Second

// ReopenAccessLogs reopens every access log file at its configured path:
// after logrotate has renamed a file (`postrotate kill -USR1`), the proxy
// writes to a new file at the old name instead of the renamed one. Lines
// queued before the call are written to the old file. `lbsys proxy` calls
// it on the signals of ReopenSignals. A file that cannot be reopened keeps
// receiving lines and is named in the error.
func (px *Proxy) ReopenAccessLogs() error {
	px.mu.Lock()
	sinks := make([]*logSink, 0, len(px.sinks))
	for _, s := range px.sinks {
		sinks = append(sinks, s)
	}
	px.mu.Unlock()
	var errs []error
	for _, s := range sinks {
		if err := s.Reopen(accessReopenWait); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// IsReopenSignal reports whether s is one of ReopenSignals.
func IsReopenSignal(s os.Signal) bool {
	for _, r := range ReopenSignals() {
		if s == r {
			return true
		}
	}
	return false
}
