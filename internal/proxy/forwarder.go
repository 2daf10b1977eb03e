package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"github.com/lbsys/lbsys/internal/proxy/h1"
)

// forward sends a client request to its route's service and copies the
// answer back: what httputil.ReverseProxy did for every request, with the
// same rules (hop-by-hop fields dropped both ways, the forwarding fields
// of setForwarded, unparsable query parameters dropped, "Te: trailers"
// passed on, trailers announced and copied, streamed answers flushed as
// they come), minus what it costs per request for generality the proxy
// does not use: a deep clone of the request and its header, a client trace
// with its context and mutex, a response header map filled value by value,
// and a media type parsed to decide on flushing. The outbound request,
// its URL and its header map are pooled; the response's field values are
// shared with the client's header map, not copied.
//
// A request for a protocol upgrade (WebSocket) still goes through the
// route's ReverseProxy, whose tunnel code it needs.
func (px *Proxy) forward(w http.ResponseWriter, r *http.Request, rt *route, trusted []netip.Prefix) {
	if upgradeRequested(r.Header) {
		px.setForwarded(r, trusted)
		rt.rp.ServeHTTP(w, r)
		return
	}
	ob := outbounds.Get().(*outbound)
	out := ob.build(r, trusted)
	res, err := (&routeTransport{rt: rt}).RoundTrip(out)
	if err != nil {
		rt.rp.ErrorHandler(w, out, err)
		ob.release()
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		// Nobody asked to switch: a broken endpoint (ReverseProxy's
		// answer too). Closing the tunnel ends the exchange.
		res.Body.Close()
		rt.rp.ErrorHandler(w, out, errUnaskedSwitch)
		ob.release()
		return
	}
	h := w.Header()
	copyResponseHeader(h, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		h.Add("Trailer", strings.Join(names, ", "))
	}
	w.WriteHeader(res.StatusCode)
	if err := px.copyBody(w, res, streamed(res)); err != nil {
		res.Body.Close()
		ob.release()
		abortResponse(w)
		return
	}
	res.Body.Close() // fills res.Trailer
	ob.release()
	if len(res.Trailer) > 0 {
		// Trailers need chunked framing, even for a short body.
		http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		for k, vs := range res.Trailer {
			h[k] = append(h[k], vs...)
		}
		return
	}
	for k, vs := range res.Trailer {
		k = http.TrailerPrefix + k
		h[k] = append(h[k], vs...)
	}
}

// errUnaskedSwitch answers a 101 to a request that asked for no upgrade
// (a 502, as ReverseProxy answers it).
var errUnaskedSwitch = errors.New("the endpoint switched protocols (101) although the request asked for no upgrade")

// outbound is a pooled outbound request: the request, its URL, its header
// map (cleared, not reallocated, between requests), the body wrapper and
// the three forwarding values. It is released when the answer has been
// copied: nothing the transport keeps refers to it past the response's
// body.
type outbound struct {
	req  http.Request
	url  url.URL
	hdr  http.Header
	body noCloseBody
	fwd  [3]string
}

var outbounds = sync.Pool{New: func() any { return &outbound{hdr: make(http.Header, 16)} }}

func (ob *outbound) release() {
	hdr := ob.hdr
	clear(hdr)
	*ob = outbound{hdr: hdr}
	outbounds.Put(ob)
}

// noCloseBody keeps the transport from closing the client's request body
// (ReverseProxy's noopCloseReader): the server owns it, and closing it
// early could block on a body the client has not sent (100-continue).
type noCloseBody struct{ rc io.ReadCloser }

func (b *noCloseBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b *noCloseBody) Close() error               { return nil }

// build makes the outbound request for in: in's method, target, host,
// body and context; its end-to-end header fields (hop-by-hop ones and
// those the Connection field names are left out, as are forwarding fields
// from an untrusted peer); the forwarding fields setForwarded computes;
// "Te: trailers" when the client sent it; no User-Agent when it sent none.
// in is not changed.
func (ob *outbound) build(in *http.Request, trusted []netip.Prefix) *http.Request {
	out := &ob.req
	*out = *in
	ob.url = *in.URL
	out.URL = &ob.url
	out.Header = ob.hdr
	out.Close = false
	if in.ContentLength == 0 {
		out.Body = nil
	} else if in.Body != nil {
		ob.body.rc = in.Body
		out.Body = &ob.body
	}
	if in.Trailer != nil {
		// As ReverseProxy's clone: the names now, the values the body
		// fills in later stay on in's map.
		out.Trailer = in.Trailer.Clone()
	}

	ih, oh := in.Header, ob.hdr
	peerIP, trust := peerTrust(in.RemoteAddr, trusted)
	for k, vs := range ih {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade",
			"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host":
			continue
		case "X-Real-Ip":
			if !trust {
				continue
			}
		case "Forwarded":
			if !trust {
				continue
			}
		}
		oh[k] = vs[:len(vs):len(vs)] // shared, never appended to in place
	}
	if conn, ok := ih["Connection"]; ok {
		deleteConnectionFields(oh, conn)
		if trust {
			// ReverseProxy puts a trusted peer's Forwarded back after
			// removing what Connection names.
			if v, ok := ih["Forwarded"]; ok {
				oh["Forwarded"] = v[:len(v):len(v)]
			}
		}
	}
	if te, ok := ih["Te"]; ok && headerHasToken(te, "trailers") {
		oh["Te"] = teTrailers
	}
	out.URL.RawQuery = cleanQuery(out.URL.RawQuery)

	// The forwarding fields, computed as setForwarded does.
	if prior := ih["X-Forwarded-For"]; trust && len(prior) > 0 {
		ob.fwd[0] = strings.Join(prior, ", ") + ", " + peerIP
	} else {
		ob.fwd[0] = peerIP
	}
	if v := firstOf(ih["X-Forwarded-Proto"]); trust && v != "" {
		ob.fwd[1] = v
	} else if in.TLS != nil {
		ob.fwd[1] = "https"
	} else {
		ob.fwd[1] = "http"
	}
	if v := firstOf(ih["X-Forwarded-Host"]); trust && v != "" {
		ob.fwd[2] = v
	} else {
		ob.fwd[2] = in.Host
	}
	oh["X-Forwarded-For"] = ob.fwd[0:1:1]
	oh["X-Forwarded-Proto"] = ob.fwd[1:2:2]
	oh["X-Forwarded-Host"] = ob.fwd[2:3:3]
	if _, ok := oh["User-Agent"]; !ok {
		oh["User-Agent"] = emptyUA
	}

	// The transport dials the endpoint it picks; the URL only carries the
	// path and query. Host is the client's, as virtual-hosted backends
	// expect.
	out.URL.Scheme = "http"
	out.URL.Host = in.Host
	out.Host = in.Host
	return out
}

var teTrailers = []string{"trailers"}

// peerTrust returns the peer's address as forwarded (RemoteAddr without
// the port) and whether it is a trusted proxy, whose forwarding fields are
// kept.
func peerTrust(remote string, trusted []netip.Prefix) (string, bool) {
	peerIP := hostOnly(remote)
	if len(trusted) == 0 {
		return peerIP, false
	}
	a, err := netip.ParseAddr(peerIP)
	if err != nil {
		return peerIP, false
	}
	return peerIP, prefixesContain(trusted, a.Unmap())
}

// firstOf returns a field's first value, "" when it has none.
func firstOf(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// prefixesContain reports whether a is in one of ps.
func prefixesContain(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// deleteConnectionFields removes the fields a Connection field names
// (RFC 9110 §7.6.1).
func deleteConnectionFields(h http.Header, conn []string) {
	for _, v := range conn {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			name = strings.Trim(name, " \t")
			switch {
			case name == "":
			case asciiEqualFold(name, "close"):
				delete(h, "Close")
			case asciiEqualFold(name, "keep-alive"):
				delete(h, "Keep-Alive")
			default:
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
}

// upgradeRequested reports a request for a protocol switch: Connection
// names "upgrade" (and then Upgrade says to what).
func upgradeRequested(h http.Header) bool {
	conn, ok := h["Connection"]
	return ok && headerHasToken(conn, "upgrade")
}

// headerHasToken reports whether a comma-separated field's values hold
// token, compared without regard to ASCII case.
func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if asciiEqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold compares two strings ignoring ASCII case only (field
// names and tokens are ASCII; Unicode folding would match "ſ" with "s").
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// cleanQuery drops the query parameters a Go backend could not parse: a
// query with a semicolon or a malformed percent-escape is re-encoded from
// what url.ParseQuery makes of it, as ReverseProxy does (go.dev/issue/25192:
// proxies and backends that split on ";" differently disagree about the
// parameters). A query without either passes unchanged.
func cleanQuery(q string) string {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return reencodeQuery(q)
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return reencodeQuery(q)
			}
			i += 2
		}
	}
	return q
}

func reencodeQuery(q string) string {
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// copyResponseHeader copies an endpoint's response fields to the client's
// header, leaving out the hop-by-hop ones and those its Connection field
// names. A field the client's header does not have yet takes the
// response's values slice itself (capped, so that a later Add copies).
func copyResponseHeader(dst, src http.Header) {
	if conn, ok := src["Connection"]; ok {
		deleteConnectionFields(src, conn)
	}
	for k, vs := range src {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		if cur, ok := dst[k]; ok {
			dst[k] = append(cur, vs...)
		} else {
			dst[k] = vs[:len(vs):len(vs)]
		}
	}
}

// streamed reports an answer whose bytes must reach the client as they
// come (ReverseProxy's flush interval -1): server-sent events, and any
// body of unknown length.
func streamed(res *http.Response) bool {
	if res.ContentLength == -1 {
		return true
	}
	ct := firstOf(res.Header["Content-Type"])
	if ct == "" {
		return false
	}
	base, _, _ := strings.Cut(ct, ";")
	return asciiEqualFold(strings.TrimSpace(base), "text/event-stream")
}

// copyBody copies the response body to the client. A streamed one
// (flush set) gets its header sent at once and every piece flushed as it
// is written. A read error other than the end of the body is logged (as
// ReverseProxy logs it); either error is returned.
func (px *Proxy) copyBody(w http.ResponseWriter, res *http.Response, flush bool) error {
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
		rc.Flush()
	}
	if res.ContentLength == 0 {
		return nil
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			if werr != nil {
				return werr
			}
			if m != n {
				return io.ErrShortWrite
			}
			if rc != nil {
				rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			if rerr != context.Canceled {
				px.stdLog.Printf("proxy: reading the response body from the endpoint: %v", rerr)
			}
			return rerr
		}
	}
}

// abortResponse ends an answer whose body could not be copied whole, so
// that the client cannot take it for complete. On the lbsys engine the
// response is marked: the connection closes without the last chunk. On
// net/http.Server, http.ErrAbortHandler does the same (and is what
// ReverseProxy raises).
func abortResponse(w http.ResponseWriter) {
	for {
		switch x := w.(type) {
		case *h1.Response:
			x.Abort()
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			panic(http.ErrAbortHandler)
		}
	}
}
