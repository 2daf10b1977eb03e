package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/balance"
	"github.com/lbsys/lbsys/internal/steer"
)

// Status is the body of GET /status.
type Status struct {
	ConfigVersion string          `json:"config_version"`
	Draining      bool            `json:"draining"`
	Listeners     []ListenerInfo  `json:"listeners"`
	Services      []ServiceStatus `json:"services"`
	// Coordinator is the directive agent's state (absent without one).
	Coordinator *CoordinatorStatus `json:"coordinator,omitempty"`
	// Cache is the response cache's state (absent while nothing caches).
	Cache *CacheStatus `json:"cache,omitempty"`
}

// ListenerInfo describes one listener and its routes.
type ListenerInfo struct {
	Name   string      `json:"name"`
	Listen string      `json:"listen"`
	Addr   string      `json:"addr,omitempty"`
	Routes []RouteInfo `json:"routes"`
}

// RouteInfo describes one route.
type RouteInfo struct {
	Name       string   `json:"name"`
	Host       string   `json:"host,omitempty"`
	PathPrefix string   `json:"path_prefix"`
	Methods    []string `json:"methods,omitempty"`
	Service    string   `json:"service"`
}

// Status returns the proxy's current view.
func (px *Proxy) Status() Status {
	g := px.gen.Load()
	now := px.clock.Now()
	st := Status{ConfigVersion: g.version, Draining: px.draining.Load()}
	for _, l := range g.cfg.Listeners {
		li := ListenerInfo{Name: l.Name, Listen: l.Listen, Addr: px.Addr(l.Listen)}
		for _, r := range l.Routes {
			li.Routes = append(li.Routes, RouteInfo{Name: r.Name, Host: r.Match.Host, PathPrefix: r.Match.PathPrefix,
				Methods: r.Match.Methods, Service: r.Service})
		}
		st.Listeners = append(st.Listeners, li)
	}
	names := make([]string, 0, len(g.services))
	for n := range g.services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st.Services = append(st.Services, g.services[n].status(now))
	}
	st.Coordinator = px.coordinatorStatus()
	st.Cache = px.cacheStatus(g)
	return st
}

func (px *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(px.reg, promhttp.HandlerOpts{ErrorLog: px.stdLog}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, px.Status())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if px.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if stopped := px.stoppedListeners(); len(stopped) > 0 {
			http.Error(w, strings.Join(stopped, "\n"), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /telemetry", func(w http.ResponseWriter, r *http.Request) {
		since := time.Time{}
		if v := r.URL.Query().Get("since"); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since: want an RFC 3339 time such as 2026-11-27T10:00:00Z"})
				return
			}
			since = t
		}
		recs := px.ring.Since(since, r.URL.Query().Get("service"))
		if recs == nil {
			recs = nil
		}
		writeJSON(w, http.StatusOK, map[string]any{"records": recs})
	})
	mux.Handle("POST /directive", px.requireToken(http.HandlerFunc(px.handleDirective)))
	mux.HandleFunc("GET /explain", px.handleExplain) // explain.go
	px.mountUI(mux)                                  // ui.go: GET /, /ui/, /api/ui/…
	mux.Handle("POST /reload", px.requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := px.ReloadFile()
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "config_version": px.Version()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "reloaded", "config_version": v})
	})))
	px.mountCache(mux) // cache.go: POST /cache/purge
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			// A body must arrive in time, and what a handler leaves
			// unread (a 401, a 404, /reload) is drained by net/http after
			// it returns: bound both, or a client that announces a body
			// and never sends it holds the connection for good.
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(adminBodyTimeout))
			defer rc.SetReadDeadline(time.Now().Add(bodyDrainTimeout))
		}
		mux.ServeHTTP(w, r)
	})
}

// adminBodyTimeout bounds reading an admin request's body (a directive is
// at most 1 MiB of JSON).
const adminBodyTimeout = 10 * time.Second

// requireToken guards mutating calls with the configured bearer token.
func (px *Proxy) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if p := px.adminAuth.Load(); p != nil {
			want = *p
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if (want == "" || !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1) && r.ContentLength != 0 {
			// Refused without reading the body: close rather than drain it.
			w.Header().Set("Connection", "close")
		}
		if want == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbsys"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no admin token configured: set admin.token_file or the variable named by admin.token_env (default LBSYS_ADMIN_TOKEN)"})
			return
		}
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbsys"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// DirectiveRequest is the body of POST /directive: a manual (or, until the
// coordinator streams them, pipeline-made) directive for one service.
type DirectiveRequest struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// Weights per endpoint address; an endpoint left out keeps factor 1.
	Weights map[string]float64 `json:"weights,omitempty"`
	Ramps   []struct {
		Endpoint string   `json:"endpoint"`
		From     float64  `json:"from"`
		To       float64  `json:"to"`
		Start    string   `json:"start,omitempty"` // RFC 3339; default now
		Duration Duration `json:"duration"`
	} `json:"ramps,omitempty"`
	// Clear removes the service's directive (back to plain peak_ewma).
	Clear     bool                `json:"clear,omitempty"`
	Admission *AdmissionDirective `json:"admission,omitempty"`
	// Cache gives the service's cached routes TTL hints and a warm list
	// (the directive schema's cache section).
	Cache *directive.Cache `json:"cache,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON.
type Duration time.Duration

// UnmarshalJSON parses "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("duration: want \"30s\" or a number of seconds")
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

func (px *Proxy) handleDirective(w http.ResponseWriter, r *http.Request) {
	var req DirectiveRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad directive: " + err.Error()})
		return
	}
	// Reloads wait: the directive is checked against the service as it
	// is and applied to that same service.
	px.reloadMu.Lock()
	defer px.reloadMu.Unlock()
	svc := px.gen.Load().services[req.Service]
	if svc == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no service %q", req.Service)})
		return
	}
	// The request becomes a directive section, derived and checked by the
	// same code as a streamed one (steer.Plan): whole or not at all.
	next := &directive.Service{Weights: req.Weights, Cache: req.Cache}
	now := px.clock.Now()
	for i, rr := range req.Ramps {
		r := directive.Ramp{Endpoint: rr.Endpoint, From: rr.From, To: rr.To, Duration: directive.Duration(rr.Duration)}
		if rr.Start != "" {
			t, err := time.Parse(time.RFC3339, rr.Start)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("ramps[%d].start: want RFC 3339: %v", i, err)})
				return
			}
			r.Start = &t
		}
		next.SlowStart = append(next.SlowStart, r)
	}
	if a := req.Admission; a != nil {
		if a.Min < 0 || a.Max < 0 || a.Seed < 0 {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": fmt.Sprintf("admission: min, max and seed must not be negative, got %d, %d and %d", a.Min, a.Max, a.Seed)})
			return
		}
		next.Admission = &directive.Admission{Min: a.Min, Cap: a.Max, Seed: a.Seed}
	}
	caps := svc.caps()
	if (req.Clear || req.Weights != nil || len(req.Ramps) > 0) && !caps.Directed {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": fmt.Sprintf("policy %s does not take weights or slow_start; set `policy: weighted` for this service in the proxy configuration", caps.Policy)})
		return
	}
	if req.Clear {
		next.Weights, next.SlowStart = nil, nil
	}
	ch, err := steer.Plan(nil, next, caps, 0, now, false)
	if err == nil {
		switch {
		case req.Clear:
			ch.Weights, ch.ClearWeights = nil, true
		case ch.Weights == nil && req.Weights != nil:
			// "weights": {} installs a directive of factor 1 everywhere.
			ch.Weights = &balance.Directive{Weights: req.Weights}
		}
		if ch.Weights != nil {
			ch.Weights.Version = req.Version
		}
		err = svc.applyChange(ch, caps)
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	px.applyCacheChange(px.gen.Load(), req.Service, ch)
	writeJSON(w, http.StatusOK, map[string]string{"result": "applied", "service": req.Service, "version": req.Version})
}
