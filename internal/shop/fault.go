package shop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"time"

	"github.com/lbsys/lbsys/internal/textutil"
)

// Fault is the fault injected into one instance. The zero Fault is a
// healthy instance. Setting a Fault replaces the previous one as a whole.
type Fault struct {
	// Slow multiplies the service time (1 or 0 = normal).
	Slow float64
	// ErrorRate is the share of requests answered 500 at once, before any
	// work is done (so a retry is always safe), 0..1.
	ErrorRate float64
	// Hang holds every request (without a worker, answering nothing) until
	// the fault changes or the client gives up.
	Hang bool
	// Crash closes the listener and every open connection at once, like a
	// killed process: clients see resets, new connections are refused, and
	// checkouts in progress on the instance stop where they are.
	Crash bool
	// RestartAfter, with Crash, listens again after this delay with a fresh
	// process's state: no fault and a cold start. Without it a crashed
	// instance stays down until SetFault is called again.
	RestartAfter time.Duration
}

// faultWire is Fault's JSON form (docs/shop-api.md).
type faultWire struct {
	Slow         *float64 `json:"slow"`
	ErrorRate    *float64 `json:"error_rate"`
	Hang         *bool    `json:"hang"`
	Crash        *bool    `json:"crash"`
	RestartAfter *string  `json:"restart_after"`
}

// MarshalJSON writes every field, with slow 1 for normal speed, so that GET
// /_shop/fault shows the complete state.
func (f Fault) MarshalJSON() ([]byte, error) {
	slow := f.slowFactor()
	ra := ""
	if f.RestartAfter > 0 {
		ra = f.RestartAfter.String()
	}
	return json.Marshal(faultWire{Slow: &slow, ErrorRate: &f.ErrorRate, Hang: &f.Hang, Crash: &f.Crash, RestartAfter: &ra})
}

// UnmarshalJSON reads the documented body strictly: unknown fields and
// out-of-range values are errors that say what to write instead.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var w faultWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("fault: %w (fields: slow, error_rate, hang, crash, restart_after)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("fault: trailing data after the JSON object")
	}
	var out Fault
	if w.Slow != nil {
		out.Slow = *w.Slow
	}
	if w.ErrorRate != nil {
		out.ErrorRate = *w.ErrorRate
	}
	if w.Hang != nil {
		out.Hang = *w.Hang
	}
	if w.Crash != nil {
		out.Crash = *w.Crash
	}
	if w.RestartAfter != nil && *w.RestartAfter != "" {
		d, err := textutil.ParseDuration(*w.RestartAfter)
		if err != nil {
			return fmt.Errorf("fault: restart_after %q: write a duration such as \"5s\", \"500ms\" or \"1d\"", *w.RestartAfter)
		}
		out.RestartAfter = d
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*f = out
	return nil
}

// Validate reports a fault that cannot be applied.
func (f Fault) Validate() error {
	switch {
	case !(f.Slow >= 0 && f.Slow <= 1000):
		return fmt.Errorf("fault: slow %v: use a factor from 0 to 1000 (1 = normal speed, 3 = three times slower)", f.Slow)
	case !(f.ErrorRate >= 0 && f.ErrorRate <= 1):
		return fmt.Errorf("fault: error_rate %v: use a share between 0 and 1", f.ErrorRate)
	case f.RestartAfter < 0:
		return fmt.Errorf("fault: restart_after %v is negative", f.RestartAfter)
	case f.RestartAfter > 0 && !f.Crash:
		return fmt.Errorf("fault: restart_after only makes sense with \"crash\": true")
	}
	return nil
}

func (f Fault) slowFactor() float64 {
	if f.Slow == 0 {
		return 1
	}
	return f.Slow
}

// faultState is the installed fault plus a channel closed when it is
// replaced, which wakes requests held by Hang.
type faultState struct {
	f       Fault
	changed chan struct{}
}

// isLoopback reports whether an http.Request.RemoteAddr ("ip:port") is a
// loopback address (127.0.0.0/8 or ::1, also in IPv4-mapped form). Fault
// injection can take an instance down, so only the same host may use it.
// A proxy on the same host is loopback too: see proxied.
func isLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// proxied reports whether a request came through a proxy: every common one
// (lbsys always) adds one of these headers. A proxy on the same host
// connects from loopback, so the address alone cannot tell.
func proxied(h http.Header) bool {
	for _, k := range [...]string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip", "Via"} {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// serveFault answers GET and POST /_shop/fault: only with Config.FaultAPI,
// only from loopback, never through a proxy.
func (c *call) serveFault() {
	if !c.g.cfg.FaultAPI {
		c.replyError(http.StatusNotFound, "not_found", "fault injection over HTTP is off; start the shop with --fault-api to turn it on")
		return
	}
	if !isLoopback(c.r.RemoteAddr) {
		c.replyError(http.StatusForbidden, "forbidden", "fault injection is for loopback clients only")
		return
	}
	if proxied(c.r.Header) {
		c.replyError(http.StatusForbidden, "forbidden", "fault injection is refused through a proxy; call the instance's own address")
		return
	}
	switch c.r.Method {
	case http.MethodGet:
		c.replyJSON(http.StatusOK, c.inst.currentFault())
	case http.MethodPost:
		body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 4096))
		if err != nil {
			c.replyError(http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
			return
		}
		var f Fault
		if len(bytes.TrimSpace(body)) == 0 {
			body = []byte("{}")
		}
		if err := json.Unmarshal(body, &f); err != nil {
			c.replyError(http.StatusBadRequest, "bad_fault", err.Error())
			return
		}
		if f.Crash {
			// Answer first, then crash: the caller learns the fault took,
			// and its own connection closes cleanly after the answer while
			// every other one is reset.
			c.w.Header().Set("Connection", "close")
			c.replyJSON(http.StatusOK, f)
			http.NewResponseController(c.w).Flush()
			c.inst.setFault(f, connFrom(c.r.Context()))
			return
		}
		c.inst.setFault(f, nil)
		c.replyJSON(http.StatusOK, f)
	default:
		c.w.Header().Set("Allow", "GET, POST")
		c.replyError(http.StatusMethodNotAllowed, "method_not_allowed", "use GET or POST")
	}
}
