package proxy

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is the body of GET /status.
type Status struct {
	ConfigVersion string          `json:"config_version"`
	Draining      bool            `json:"draining"`
	Listeners     []ListenerInfo  `json:"listeners"`
	Services      []ServiceStatus `json:"services"`
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
	mux.Handle("POST /reload", px.requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := px.ReloadFile()
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error(), "config_version": px.Version()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "reloaded", "config_version": v})
	})))
	return mux
}

// requireToken guards mutating calls with the configured bearer token.
func (px *Proxy) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if p := px.adminAuth.Load(); p != nil {
			want = *p
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
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
