package proxy

import (
	"net/http"
	"strconv"
	"time"
)

// Reasons for responses the proxy generates itself. Each is sent in the
// X-Lbsys-Error header so a client, a log or a test can tell a proxy error
// from a backend's.
const (
	reasonNoRoute         = "no_route"
	reasonNoHealthy       = "no_healthy_upstream"
	reasonConnectFailure  = "upstream_connect_failure"
	reasonReset           = "upstream_reset"
	reasonTimeout         = "upstream_timeout"
	reasonInvalidResponse = "upstream_invalid_response"
	reasonInvalidHeader   = "invalid_header"
	reasonAmbiguousPath   = "ambiguous_path"
	reasonBodyTooLarge    = "request_body_too_large"
	reasonBadRequestBody  = "request_body_error"
	reasonBodyTimeout     = "request_body_timeout"
	reasonClientCanceled  = "client_canceled"
	reasonBadGateway      = "bad_gateway"
	reasonShuttingDown    = "shutting_down"
	reasonOverloaded      = "overloaded"
	headerError           = "X-Lbsys-Error"
	headerLoad            = "X-Lbsys-Load"
	statusClientCanceled  = 499 // nginx's convention, for metrics only
	retryAfterNoHealthy   = "1"
	retryAfterOverloaded  = "1"
	maxErrorBodyExplainer = 128
)

// proxyError is an error the proxy answers itself.
type proxyError struct {
	status   int
	reason   string
	endpoint string    // last endpoint tried, "" if none
	ep       *endpoint // the same, for metrics
	err      error
	start    time.Time // when the request reached the proxy
	bytesIn  int64
}

func (e *proxyError) Error() string {
	s := e.reason + " (" + strconv.Itoa(e.status) + ")"
	if e.endpoint != "" {
		s += " endpoint " + e.endpoint
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *proxyError) Unwrap() error { return e.err }

// explanation is the short body sent with a proxy error.
func explanation(reason string) string {
	switch reason {
	case reasonNoRoute:
		return "no route matches this request\n"
	case reasonNoHealthy:
		return "no healthy endpoint for this service\n"
	case reasonConnectFailure:
		return "could not connect to an endpoint\n"
	case reasonReset:
		return "the endpoint closed the connection before responding\n"
	case reasonTimeout:
		return "the endpoint did not respond in time\n"
	case reasonInvalidResponse:
		return "the endpoint sent a malformed response\n"
	case reasonInvalidHeader:
		return "the request has a header field that cannot be forwarded\n"
	case reasonAmbiguousPath:
		return "the request path has dot-segments or encoded separators that backends may read differently\n"
	case reasonBodyTooLarge:
		return "request body too large\n"
	case reasonBadRequestBody:
		return "could not read the request body\n"
	case reasonBodyTimeout:
		return "the request body did not arrive in time\n"
	case reasonShuttingDown:
		return "proxy is shutting down\n"
	case reasonOverloaded:
		return "service overloaded, retry later\n"
	}
	return "bad gateway\n"
}

// writeProxyError writes a short error response.
func writeProxyError(w http.ResponseWriter, status int, reason string) {
	noteProxyError(w, reason)
	h := w.Header()
	h.Set(headerError, reason)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	switch reason {
	case reasonNoHealthy:
		h.Set("Retry-After", retryAfterNoHealthy)
	case reasonOverloaded:
		h.Set("Retry-After", retryAfterOverloaded)
	}
	w.WriteHeader(status)
	w.Write([]byte(explanation(reason)))
}
