package cache

import (
	"net/http"
	"net/http/httputil"
	"net/url"
)

// ProxyOrigin is a plain Origin for a single upstream URL, built on
// httputil.ReverseProxy and an http.RoundTripper: for tests, tools and
// deployments without lbsys's proxy. The proxy supplies its own Origin
// (balancing, retries, telemetry).
type ProxyOrigin struct {
	target    *url.URL
	transport http.RoundTripper
	rp        *httputil.ReverseProxy
}

// NewProxyOrigin forwards to target (scheme and host; its path is
// ignored) through transport (nil: http.DefaultTransport).
func NewProxyOrigin(target *url.URL, transport http.RoundTripper) *ProxyOrigin {
	if transport == nil {
		transport = http.DefaultTransport
	}
	o := &ProxyOrigin{target: target, transport: transport}
	o.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = target.Scheme
			pr.Out.URL.Host = target.Host
			pr.Out.Host = pr.In.Host // virtual hosts keep the client's Host
			pr.SetXForwarded()
		},
		Transport: transport,
	}
	return o
}

// RoundTrip implements Origin: the request goes to the target with its
// hop-by-hop fields removed.
func (o *ProxyOrigin) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.RequestURI = ""
	out.URL.Scheme = o.target.Scheme
	out.URL.Host = o.target.Host
	removeHopByHop(out.Header)
	return o.transport.RoundTrip(out)
}

// ServeHTTP implements Origin.
func (o *ProxyOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) { o.rp.ServeHTTP(w, r) }

func removeHopByHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range splitComma(f) {
			h.Del(name)
		}
	}
	for _, f := range [...]string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		delete(h, f)
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if f := trimSpace(s[start:i]); f != "" {
				out = append(out, f)
			}
			start = i + 1
		}
	}
	return out
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// Handler returns an http.Handler that serves every request through the
// cache on one route: a caching reverse proxy in front of origin. When the
// origin cannot be reached and nothing stored may be served, it answers
// 502 Bad Gateway.
func (c *Cache) Handler(rt *Route, origin Origin) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Serve(w, r, rt, origin); err != nil {
			if r.Context().Err() != nil {
				return // the client left
			}
			h := w.Header()
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Cache-Status", statusName+"; fwd=miss; detail=origin-unreachable")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("bad gateway: the origin could not be reached\n"))
		}
	})
}
