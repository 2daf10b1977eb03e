package directive

import (
	"fmt"
	"time"
)

// The directive stream, after Envoy's xDS: each proxy's agent long-polls the
// coordinator's leader with the version it runs and the nonce of the last
// response it received. The request that follows a response acknowledges it
// (ACK: Version is the new version) or refuses it (NACK: Rejected and Error
// set, Version still the last good one). A NACKed version is not sent again;
// the next version is.
//
//	POST /v1/agent/watch   body WatchRequest  -> 200 WatchResponse
//	POST /v1/agent/report  body Report        -> 204
//
// A coordinator that is not the leader answers 307 with the leader's URL in
// Location and ErrorBody.Leader, or 503 when no leader is known (no
// quorum). Every call carries `Authorization: Bearer <token>` of a token
// with the agent role.

// WatchPath and ReportPath are the stream's endpoints on the coordinator.
const (
	WatchPath  = "/v1/agent/watch"
	ReportPath = "/v1/agent/report"
)

// WatchRequest is one long poll.
type WatchRequest struct {
	// Proxy identifies the proxy (unique in the fleet).
	Proxy string `json:"proxy"`
	// Version is the version the proxy runs now (0: none).
	Version uint64 `json:"version"`
	// Cluster is the cluster that committed Version ("" when the proxy
	// runs no directive, or one from before cluster IDs). A coordinator of
	// another cluster refuses the request with 409 and ErrorBody.Cluster:
	// the same version number means different content in another cluster.
	Cluster string `json:"cluster,omitempty"`
	// Nonce is the nonce of the response this request answers ("" on the
	// first request).
	Nonce string `json:"nonce,omitempty"`
	// Rejected and Error make this request a NACK of version Rejected.
	Rejected uint64 `json:"rejected,omitempty"`
	Error    string `json:"error,omitempty"`
	// ReportIntervalMs is the reporting interval the agent uses now; the
	// coordinator answers early when it wants another one.
	ReportIntervalMs int64 `json:"report_interval_ms,omitempty"`
	// WaitMs bounds how long the coordinator may hold the request when it
	// has nothing new. Default and maximum are the coordinator's.
	WaitMs int64 `json:"wait_ms,omitempty"`
}

// Validate checks a request's fields.
func (r *WatchRequest) Validate() error {
	switch {
	case r.Proxy == "" || len(r.Proxy) > 256:
		return fmt.Errorf("proxy: required, at most 256 bytes")
	case (r.Rejected != 0) != (r.Error != ""):
		return fmt.Errorf("rejected and error go together: a NACK names the refused version and why")
	case len(r.Error) > 8192:
		return fmt.Errorf("error: at most 8192 bytes")
	case r.ReportIntervalMs < 0 || r.WaitMs < 0:
		return fmt.Errorf("report_interval_ms and wait_ms must be >= 0")
	case r.Cluster != "" && !ValidClusterID(r.Cluster):
		return fmt.Errorf("cluster: %q is not a cluster ID (1 to 64 of a-z, 0-9, -)", truncate(r.Cluster, 80))
	}
	return nil
}

// WatchResponse answers a long poll.
type WatchResponse struct {
	// Version is what the proxy should run.
	Version uint64 `json:"version"`
	// Cluster is the answering coordinator's cluster ID; Directive.Cluster
	// is the same.
	Cluster string `json:"cluster,omitempty"`
	// Nonce identifies this response; the next request echoes it.
	Nonce string `json:"nonce"`
	// Directive is present when Version differs from the request's and
	// was not NACKed by this proxy; absent when nothing changed before the
	// wait ended.
	Directive *Directive `json:"directive,omitempty"`
	// Canary is true when this proxy is in a running canary.
	Canary bool `json:"canary,omitempty"`
	// ReportIntervalMs > 0 asks the agent to send a Report this often
	// (during a canary window); 0 stops reports.
	ReportIntervalMs int64 `json:"report_interval_ms"`
	// Leader is the answering leader's URL.
	Leader string `json:"leader,omitempty"`
}

// Report carries a proxy's traffic statistics, per service, since it began
// reporting or applied its current version (whichever is later).
type Report struct {
	Proxy   string `json:"proxy"`
	Version uint64 `json:"version"`
	// Cluster of Version (see WatchRequest.Cluster).
	Cluster  string                  `json:"cluster,omitempty"`
	Since    time.Time               `json:"since"`
	Services map[string]ServiceStats `json:"services"`
}

// Validate checks a report's fields.
func (r *Report) Validate() error {
	if r.Proxy == "" || len(r.Proxy) > 256 {
		return fmt.Errorf("proxy: required, at most 256 bytes")
	}
	if r.Cluster != "" && !ValidClusterID(r.Cluster) {
		return fmt.Errorf("cluster: %q is not a cluster ID (1 to 64 of a-z, 0-9, -)", truncate(r.Cluster, 80))
	}
	if len(r.Services) > MaxServices {
		return fmt.Errorf("services: at most %d", MaxServices)
	}
	for name, s := range r.Services {
		if s.Requests < 0 || s.Errors < 0 || s.Errors > s.Requests || !finite(s.P99Ms) || s.P99Ms < 0 {
			return fmt.Errorf("services[%s]: want 0 <= errors <= requests and a finite p99_ms >= 0", name)
		}
	}
	return nil
}

// ServiceStats summarises one service's traffic on one proxy.
type ServiceStats struct {
	Requests int64 `json:"requests"`
	// Errors are 5xx responses and proxy-generated errors.
	Errors int64 `json:"errors"`
	// P99Ms is the 99th percentile latency in milliseconds (the
	// request-weighted mean of per-second p99s).
	P99Ms float64 `json:"p99_ms"`
}

// ErrorBody is the JSON body of every error the coordinator returns.
type ErrorBody struct {
	Error string `json:"error"`
	// Leader is the leader's URL when the answering node is not the leader.
	Leader string `json:"leader,omitempty"`
	// Outcome is "unknown" when a write may still commit later (the leader
	// lost its quorum after accepting it); the client must not treat it as
	// acknowledged and may retry with the same idempotency key.
	Outcome string `json:"outcome,omitempty"`
	// Errors lists validation problems by field path.
	Errors []FieldError `json:"errors,omitempty"`
	// Cluster is the coordinator's cluster ID on a 409 that refuses a
	// proxy running a version of another cluster.
	Cluster string `json:"cluster,omitempty"`
}
