package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The page and its assets. The vendored uPlot README (versions and sums)
// stays out: it is for people updating the files, not for browsers.
//
//go:embed assets/index.html assets/app.js assets/app.css assets/vendor/uplot/uPlot.iife.min.js assets/vendor/uplot/uPlot.min.css assets/vendor/uplot/LICENSE
var assetFS embed.FS

type asset struct {
	body  []byte
	ctype string
	etag  string
}

// assets maps a path under /ui/ to its file, read once.
var assets = sync.OnceValue(func() map[string]asset {
	types := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8", "": "text/plain; charset=utf-8"}
	out := map[string]asset{}
	for _, name := range []string{"index.html", "app.js", "app.css", "vendor/uplot/uPlot.iife.min.js",
		"vendor/uplot/uPlot.min.css", "vendor/uplot/LICENSE"} {
		b, err := assetFS.ReadFile("assets/" + name)
		if err != nil {
			panic("ui: embedded asset missing: " + name) // a build defect, caught by every test
		}
		sum := sha256.Sum256(b)
		out[name] = asset{body: b, ctype: types[path.Ext(name)], etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return out
})

// contentSecurityPolicy allows the page its own scripts, styles and API
// calls and nothing else: text from directives (reasons, event names) is
// shown with textContent, and even a mistake there could not load or send
// anything elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Register mounts the page, its assets and the JSON API on mux:
//
//	GET /               the page (also GET /ui/)
//	GET /ui/{file}      app.js, app.css, vendor/uplot/…
//	GET /api/ui/series  per-second samples: ?since=UNIX (exclusive) &limit=N &service=NAME
//	GET /api/ui/timeline  directive changes after ?after=SEQ, incidents, events
//	GET /api/ui/state   services and endpoints now
func (c *Collector) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serveAsset(w, r, "index.html") })
	mux.HandleFunc("GET /ui/{file...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if name == "" {
			name = "index.html"
		}
		serveAsset(w, r, name)
	})
	mux.HandleFunc("GET /api/ui/series", c.handleSeries)
	mux.HandleFunc("GET /api/ui/timeline", c.handleTimeline)
	mux.HandleFunc("GET /api/ui/state", c.handleState)
}

func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := assets()[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no UI file %q: the page is at / (or /ui/)", name))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// Revalidated on every load (a 304 when unchanged), so a proxy that
	// was upgraded serves its own page at once.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	writeJSONBytes(w, status, append(b, '\n'))
}

// SeriesQuery is what GET /api/ui/series asks for.
type SeriesQuery struct {
	// Since is exclusive, in unix seconds: frames strictly after it
	// (math.MinInt64: from the oldest).
	Since int64
	// Limit is the number of newest frames at most.
	Limit int
	// Service, when set, keeps one service.
	Service string
}

// ParseSeriesQuery reads since, limit and service. since is unix seconds
// (an integer or a decimal number) or an RFC 3339 time; limit is 1 to
// window (more is clamped to window).
func ParseSeriesQuery(since, limit, service string, window int) (SeriesQuery, error) {
	q := SeriesQuery{Since: math.MinInt64, Limit: window, Service: service}
	if s := strings.TrimSpace(since); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			q.Since = n
		} else if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e15 {
			q.Since = int64(math.Floor(f))
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			q.Since = t.Unix()
		} else {
			return q, fmt.Errorf("since: want unix seconds (1764237600) or an RFC 3339 time (2025-11-27T10:00:00Z), got %q", clip(since, 64))
		}
	}
	if l := strings.TrimSpace(limit); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit: want a whole number of seconds from 1 to %d, got %q", window, clip(limit, 64))
		}
		q.Limit = min(n, window)
	}
	if len(service) > 256 {
		return q, fmt.Errorf("service: at most 256 bytes")
	}
	return q, nil
}

func (c *Collector) handleSeries(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := ParseSeriesQuery(v.Get("since"), v.Get("limit"), v.Get("service"), c.opts.Window)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSONBytes(w, http.StatusOK, c.AppendSeries(nil, q))
}

// seriesFields are the per-service arrays of GET /api/ui/series, in the
// order the page reads them.
var seriesFields = []struct {
	name string
	get  func(*sample) float64
}{
	{"rps", func(s *sample) float64 { return s.rps }},
	{"forecast", func(s *sample) float64 { return s.forecast }},
	{"forecast_hi", func(s *sample) float64 { return s.forecastHi }},
	{"endpoints", func(s *sample) float64 { return s.endpoints }},
	{"endpoints_total", func(s *sample) float64 { return s.endpointsAll }},
	{"replica_floor", func(s *sample) float64 { return s.floor }},
	{"admission_limit", func(s *sample) float64 { return s.limit }},
	{"in_flight", func(s *sample) float64 { return s.inFlight }},
	{"error_rate", func(s *sample) float64 { return s.errRate }},
	{"p99_ms", func(s *sample) float64 { return s.p99 }},
}

// AppendSeries appends the JSON answer of GET /api/ui/series to b:
//
//	{"window_seconds":600,"last":T,"t":[unix seconds…],
//	 "services":[{"name":"catalog","rps":[…],"forecast":[…],…,
//	   "ahead":{"floor_by":T|null,"floor_until":T|null,"t":[T,…],
//	            "forecast":[…],"forecast_hi":[…],"replica_floor":[…]}}]}
//
// Every array of a service is aligned with t; null is "no value" (no
// traffic for a rate or latency, no forecast, no admission control, or
// the service did not exist in that second). ahead is what the running
// directive says of the coming seconds: its forecast, upper band and
// replica floor from last (its first point) to the forecast's end, at
// most an hour and 360 points, with the floor's ready-by and lapse times;
// null when it says nothing of them. It is sent whole with every answer
// that has a new second of the service, and replaces the previous one.
// The answer is written by hand: the arrays are the bulk of the page's
// traffic, once a second per viewer.
func (c *Collector) AppendSeries(b []byte, q SeriesQuery) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The frames after Since, at most Limit of the newest.
	first := c.n
	for i := c.n - 1; i >= 0 && c.frameAt(i).t > q.Since; i-- {
		first = i
	}
	if c.n-first > q.Limit {
		first = c.n - q.Limit
	}
	var last int64
	if c.n > 0 {
		last = c.frameAt(c.n - 1).t
	}
	b = append(b, `{"window_seconds":`...)
	b = strconv.AppendInt(b, int64(c.opts.Window), 10)
	b = append(b, `,"last":`...)
	b = strconv.AppendInt(b, last, 10)
	b = append(b, `,"t":[`...)
	for i := first; i < c.n; i++ {
		if i > first {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, c.frameAt(i).t, 10)
	}
	b = append(b, `],"services":[`...)
	var names []string
	seen := map[string]bool{}
	for i := first; i < c.n; i++ {
		for _, s := range c.frameAt(i).samples {
			if !seen[s.name] && (q.Service == "" || s.name == q.Service) {
				seen[s.name] = true
				names = append(names, s.name)
			}
		}
	}
	sort.Strings(names)
	col := make([]*sample, c.n-first)
	for k, name := range names {
		for i := first; i < c.n; i++ {
			col[i-first] = nil
			fr := c.frameAt(i)
			for j := range fr.samples {
				if fr.samples[j].name == name {
					col[i-first] = &fr.samples[j]
					break
				}
			}
		}
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = strconv.AppendQuote(b, name)
		for _, f := range seriesFields {
			b = append(b, ',', '"')
			b = append(b, f.name...)
			b = append(b, `":[`...)
			for i, s := range col {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendNum(b, s, f.get)
			}
			b = append(b, ']')
		}
		b = append(b, `,"ahead":`...)
		if c.n > 0 && c.aheadOf(&c.aheadBuf, name, float64(last)) {
			b = appendAhead(b, &c.aheadBuf)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendAhead writes a service's coming seconds (see ahead): times in
// unix seconds to the millisecond, figures as the arrays of the past.
func appendAhead(b []byte, a *ahead) []byte {
	arr := func(b []byte, key string, vs []float64, digits int) []byte {
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, `":[`...)
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendFloat(b, v, digits)
		}
		return append(b, ']')
	}
	b = append(b, `{"floor_by":`...)
	b = appendTime(b, a.by)
	b = append(b, `,"floor_until":`...)
	b = appendTime(b, a.until)
	b = arr(b, "t", a.t, -1)
	b = arr(b, "forecast", a.rps, 6)
	b = arr(b, "forecast_hi", a.hi, 6)
	b = arr(b, "replica_floor", a.floor, 6)
	return append(b, '}')
}

// appendTime writes unix seconds to the millisecond, or null.
func appendTime(b []byte, t float64) []byte {
	if math.IsNaN(t) || math.IsInf(t, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, math.Round(t*1000)/1000, 'f', -1, 64)
}

// appendFloat writes v with at most digits significant digits (-1: a
// time, to the millisecond), or null.
func appendFloat(b []byte, v float64, digits int) []byte {
	if digits < 0 {
		return appendTime(b, v)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', digits, 64)
}

// frameAt is the i-th frame from the oldest.
func (c *Collector) frameAt(i int) *frame { return &c.frames[(c.head+i)%len(c.frames)] }

// appendNum writes a value with at most 6 significant digits (plenty for
// a chart), or null.
func appendNum(b []byte, s *sample, get func(*sample) float64) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendFloat(b, get(s), 6)
}

// Timeline is the body of GET /api/ui/timeline.
type Timeline struct {
	// Seq is the newest change's sequence number; a client asks for
	// ?after=Seq next. A Seq below the client's own means the proxy
	// restarted: start over.
	Seq     uint64   `json:"seq"`
	SLO     SLO      `json:"slo"`
	Changes []Change `json:"changes"`
	// Incidents and Events are sent whole (they are short and an open
	// incident changes in place).
	Incidents []Incident `json:"incidents"`
	Events    []Event    `json:"events"`
}

// Timeline returns the directive changes after seq (all of them when seq
// is beyond the newest), the incidents and the events.
func (c *Collector) Timeline(after uint64) Timeline {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := Timeline{Seq: c.seq, SLO: c.opts.SLO, Changes: []Change{},
		Incidents: append([]Incident{}, c.incidents...), Events: append([]Event{}, c.events...)}
	if after > c.seq {
		after = 0
	}
	for _, ch := range c.changes {
		if ch.Seq > after {
			t.Changes = append(t.Changes, ch)
		}
	}
	return t
}

func (c *Collector) handleTimeline(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if s := strings.TrimSpace(r.URL.Query().Get("after")); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after: want the seq of the last change you have (a whole number >= 0), got %q", clip(s, 64)))
			return
		}
		after = n
	}
	writeJSON(w, http.StatusOK, c.Timeline(after))
}

// StateView is the body of GET /api/ui/state.
type StateView struct {
	// Time is the newest telemetry second the UI has (zero before the
	// first).
	Time          time.Time    `json:"time,omitzero"`
	ConfigVersion string       `json:"config_version"`
	Coordinator   *Coordinator `json:"coordinator,omitempty"`
	// DirectiveVersion is the directive the proxy runs (0: none).
	DirectiveVersion uint64 `json:"directive_version"`
	WindowSeconds    int    `json:"window_seconds"`
	SLO              SLO    `json:"slo"`
	// Replay, when set, is how the page labels its time axis (see
	// Collector.SetReplay).
	Replay   *Replay       `json:"replay,omitempty"`
	Services []ServiceView `json:"services"`
}

// ServiceView is one service now, with what the directive asks of it.
type ServiceView struct {
	ServiceState
	// SLOMinutes counts the minutes of incidents that ended within the
	// window.
	SLOMinutes int `json:"slo_violation_minutes"`
	// Directive is the service's section of the running directive (nil:
	// none).
	Directive *ChangeService `json:"directive,omitempty"`
}

// State returns the services now, with each endpoint's last second of
// telemetry and directive weight.
func (c *Collector) State() StateView {
	st := c.src.State()
	c.mu.Lock()
	defer c.mu.Unlock()
	v := StateView{ConfigVersion: st.ConfigVersion, Coordinator: st.Coordinator, WindowSeconds: c.opts.Window,
		SLO: c.opts.SLO, Replay: c.replay.Load(), Services: make([]ServiceView, 0, len(st.Services))}
	if c.n > 0 {
		v.Time = time.Unix(c.frameAt(c.n-1).t, 0).UTC()
	}
	if c.dir != nil {
		v.DirectiveVersion = c.dir.Version
	}
	horizon := v.Time.Add(-time.Duration(c.opts.Window) * time.Second)
	for _, s := range st.Services {
		sv := ServiceView{ServiceState: s}
		sv.Endpoints = append([]Endpoint(nil), s.Endpoints...)
		var sec = c.section(s.Name)
		for i := range sv.Endpoints {
			e := &sv.Endpoints[i]
			if st, ok := c.eps[epKey{s.Name, e.ID}]; ok {
				e.RPS, e.Errors, e.P99ms = st.requests, st.errors, st.p99
			}
			if sec != nil {
				if w, ok := sec.Weights[e.ID]; ok {
					e.DirectiveWeight = &w
				}
			}
		}
		if sec != nil {
			cs := describeSection(s.Name, sec, true)
			sv.Directive = &cs
		}
		for _, inc := range c.incidents {
			if inc.Service == s.Name && inc.End.After(horizon) {
				sv.SLOMinutes += inc.Minutes
			}
		}
		v.Services = append(v.Services, sv)
	}
	return v
}

func (c *Collector) handleState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.State())
}
