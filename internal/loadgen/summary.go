package loadgen

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Summary is the final report of a run; `lbsys load --format json` prints
// it as JSON.
//
// Counting: every scheduled request is either sent (Requests) or dropped
// (Errors.Dropped). A sent request ends as a response (Responses, of which
// OK are 2xx/3xx and the rest Errors.Status4xx/Status5xx), a transport
// error (Errors.Connect, Timeout, Reset) or Unfinished (cut at the end of
// the run). So Requests = Responses + Connect + Timeout + Reset +
// Unfinished, and the classes add up to the totals.
type Summary struct {
	Target    string `json:"target"`
	Mode      string `json:"mode"`
	Arrivals  string `json:"arrivals"`
	Seed      uint64 `json:"seed"`
	Cancelled bool   `json:"cancelled"` // stopped early (Ctrl-C)
	// DurationS is the scheduled part of the run; ElapsedS adds the drain.
	DurationS float64 `json:"duration_s"`
	ElapsedS  float64 `json:"elapsed_s"`
	// TargetRPS is the mean target rate over the run (requests/s).
	TargetRPS float64 `json:"target_rps"`
	// AchievedRPS is Requests per second of schedule (the configured
	// duration, or the part before a cancel): what was actually sent.
	AchievedRPS float64 `json:"achieved_rps"`
	// ResponseRPS is Responses per second of schedule.
	ResponseRPS float64 `json:"response_rps"`

	Requests   int64       `json:"requests"`
	Responses  int64       `json:"responses"`
	OK         int64       `json:"ok"`
	Unfinished int64       `json:"unfinished"`
	Errors     ErrorCounts `json:"errors"`
	// ErrorRate is Errors.Total over the requests that ended: sent and
	// not cut at the end (Requests − Unfinished), plus the dropped ones.
	// 0 when none ended.
	ErrorRate float64 `json:"error_rate"`
	// TopErrors are the most frequent errors by class, kind, status and
	// reason, most frequent first (at most ten): what to fix first.
	TopErrors []ErrorReason `json:"top_errors,omitempty"`
	// Latency is from each request's scheduled send time to the end of its
	// response, over responses and timeouts.
	Latency Latency                 `json:"latency_ms"`
	Classes map[string]ClassSummary `json:"classes"`

	// Checkouts is the number of completed checkouts (200 from /checkout).
	Checkouts int64           `json:"checkouts"`
	Sessions  *SessionSummary `json:"sessions,omitempty"`

	// Late is the number of sends more than LateAfterMs behind schedule;
	// MaxLagMs the largest lag; Lag its distribution over all sends.
	Late        int64   `json:"late"`
	LateAfterMs float64 `json:"late_after_ms"`
	MaxLagMs    float64 `json:"max_lag_ms"`
	Lag         Latency `json:"lag_ms"`

	// TraceGaps counts the gaps of a replayed trace within the replayed
	// span: short ones bridged by interpolation, long ones held at the
	// last value.
	TraceGaps struct {
		Interpolated int `json:"interpolated"`
		Held         int `json:"held"`
	} `json:"trace_gaps"`

	// ConnectionsOpened counts the TCP connections the generator dialled.
	ConnectionsOpened int64 `json:"connections_opened"`
	// ProcessCPUSeconds is the CPU time (user + system) of the whole
	// process during the run: the generator's cost when run by the CLI.
	ProcessCPUSeconds float64 `json:"process_cpu_s"`
}

// ErrorCounts counts failures by kind; Total is their sum (drops
// included, unfinished requests not: those are the run's end, not the
// target's fault).
type ErrorCounts struct {
	Connect   int64 `json:"connect"`
	Timeout   int64 `json:"timeout"`
	Status5xx int64 `json:"status_5xx"`
	Status4xx int64 `json:"status_4xx"`
	Dropped   int64 `json:"dropped"`
	Reset     int64 `json:"reset"`
	Total     int64 `json:"total"`
}

func errorCounts(c *classCounts) ErrorCounts {
	e := ErrorCounts{
		Connect:   c.kinds[KindConnect],
		Timeout:   c.kinds[KindTimeout],
		Status5xx: c.kinds[KindStatus5xx],
		Status4xx: c.kinds[KindStatus4xx],
		Dropped:   c.kinds[KindDropped],
		Reset:     c.kinds[KindReset],
	}
	e.Total = e.Connect + e.Timeout + e.Status5xx + e.Status4xx + e.Dropped + e.Reset
	return e
}

// ErrorReason is one kind of error of a run and how often it happened.
type ErrorReason struct {
	// Class is the endpoint class ("inventory"); Kind the error kind
	// ("status_4xx", "connect", …); Status the HTTP status (0 without a
	// response).
	Class  string `json:"class"`
	Kind   string `json:"kind"`
	Status int    `json:"status,omitempty"`
	// Reason is the answer's X-Lbsys-Error (the proxy's: "no_route",
	// "overloaded", …) or X-Shop-Error header, or for an exchange without
	// a response what went wrong ("connection refused …").
	Reason string `json:"reason,omitempty"`
	Count  int64  `json:"count"`
	// Example is the first request that failed so: "GET /inventory/stock/p0001".
	Example string `json:"example"`
}

// String formats the reason for a person: "inventory: 404 no_route ×1200
// (e.g. GET /inventory/stock/p0001)".
func (r ErrorReason) String() string {
	var b strings.Builder
	b.WriteString(r.Class)
	b.WriteString(": ")
	if r.Status > 0 {
		b.WriteString(strconv.Itoa(r.Status))
	} else {
		b.WriteString(r.Kind)
	}
	if r.Reason != "" {
		b.WriteString(" ")
		b.WriteString(r.Reason)
	}
	fmt.Fprintf(&b, " ×%d", r.Count)
	if r.Example != "" {
		fmt.Fprintf(&b, " (e.g. %s)", r.Example)
	}
	return b.String()
}

// maxTopErrors is how many error reasons a summary lists.
const maxTopErrors = 10

// topErrors sorts the counted reasons, most frequent first (ties in a
// fixed order, so equal runs print equal summaries).
func topErrors(reasons map[errorKey]*reasonCount, other int64) []ErrorReason {
	out := make([]ErrorReason, 0, len(reasons))
	for k, rc := range reasons {
		ex := rc.method + " " + rc.path
		if rc.path == "" {
			ex = ""
		}
		out = append(out, ErrorReason{Class: k.class.String(), Kind: k.kind.String(), Status: k.status, Reason: k.reason, Count: rc.n, Example: ex})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		if a.Status != b.Status {
			return a.Status < b.Status
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Reason < b.Reason
	})
	if len(out) > maxTopErrors {
		out = out[:maxTopErrors]
	}
	if other > 0 && len(out) < maxTopErrors {
		out = append(out, ErrorReason{Class: "other", Kind: "other", Reason: "more distinct errors than the generator keeps apart", Count: other})
	}
	return out
}

// CheckErrorRate returns an error when more than max (a fraction, 0.05 =
// 5%) of the run's ended requests failed, naming the rate and the top
// reasons, so that a run against a misconfigured target does not pass for
// a measurement. max <= 0 disables the check; a run in which nothing ended
// passes.
func (s Summary) CheckErrorRate(max float64) error {
	if max <= 0 || s.ErrorRate <= max {
		return nil
	}
	ended := s.Requests - s.Unfinished + s.Errors.Dropped
	var top []string
	hint := ""
	for i, r := range s.TopErrors {
		if i < 3 {
			top = append(top, r.String())
		}
		switch {
		case r.Reason == "no_route" && hint == "":
			hint = "; no_route: the proxy has no route for these paths: add one to its config (listeners[].routes; examples/lbsys.yaml routes every path lbsys load sends)"
		case strings.HasPrefix(r.Reason, "connection refused") && hint == "":
			hint = "; connection refused: nothing listens on --target (start the proxy or the shop first)"
		}
	}
	return fmt.Errorf("error rate %s (%d of %d requests) is above --max-error-rate %s; top errors: %s%s",
		percent(s.ErrorRate), s.Errors.Total, ended, percent(max), strings.Join(top, "; "), hint)
}

// percent formats a fraction as a percentage with the digits it needs.
func percent(x float64) string {
	return strconv.FormatFloat(math.Round(x*1000)/10, 'f', -1, 64) + "%"
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

func latencyOf(h *hdr.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	q := func(p float64) float64 { return roundMs(float64(h.ValueAtQuantile(p)) / 1e3) }
	return Latency{
		Count: h.TotalCount(),
		Mean:  roundMs(h.Mean() / 1e3),
		P50:   q(50),
		P90:   q(90),
		P99:   q(99),
		P999:  q(99.9),
		Max:   roundMs(float64(h.Max()) / 1e3),
	}
}

// roundMs keeps microsecond precision.
func roundMs(v float64) float64 { return math.Round(v*1e3) / 1e3 }

// ClassSummary is the report of one endpoint class.
type ClassSummary struct {
	Requests  int64       `json:"requests"`
	Responses int64       `json:"responses"`
	OK        int64       `json:"ok"`
	Errors    ErrorCounts `json:"errors"`
	Latency   Latency     `json:"latency_ms"`
}

// SessionSummary is the sessions mode's report. Started = Completed +
// Abandoned + Unfinished; Dropped sessions never started.
type SessionSummary struct {
	Started    int64 `json:"started"`
	Completed  int64 `json:"completed"`
	Abandoned  int64 `json:"abandoned"`
	Unfinished int64 `json:"unfinished"`
	Dropped    int64 `json:"dropped"`
	// CheckoutRetries counts repeated checkouts (same Idempotency-Key).
	CheckoutRetries int64 `json:"checkout_retries"`
	// CheckoutRejected counts 4xx answers to checkout (out of stock,
	// declined, empty cart).
	CheckoutRejected int64 `json:"checkout_rejected"`
	// Reached counts the sessions that started each funnel step.
	Reached map[string]int64 `json:"reached"`
	// Funnel is the configured conversion; RequestsPer the expected
	// requests per session that turns the request rate into a session
	// rate.
	Funnel      string  `json:"funnel"`
	RequestsPer float64 `json:"requests_per_session"`
}

// Second is the figures of one second of a run, for the live line and the
// timeline.
type Second struct {
	// T is the second's number (1 = the first second); Elapsed the time
	// since the start at its end (the last one may be partial).
	T       int
	Elapsed time.Duration
	// TargetRPS is the mean target rate over the second.
	TargetRPS float64
	// Sent, Completed (responses), Errors (drops included) happened in
	// this second; RPS is Completed per second.
	Sent, Completed, Errors int64
	RPS                     float64
	// P50 and P99 are over the requests finished in this second.
	P50, P99 time.Duration
	// InFlight and Sessions are the requests in flight and sessions alive
	// at the end of the second.
	InFlight, Sessions int64
	Late               int64
	Checkouts          int64
	Abandoned          int64
}

// Line formats the live progress line.
func (s Second) Line() string {
	return fmt.Sprintf("[%5.1fs] target %7.0f/s  sent %6d  done %6d  rps %7.0f  err %4d  p50 %8s  p99 %8s  inflight %5d  late %d",
		s.Elapsed.Seconds(), s.TargetRPS, s.Sent, s.Completed, s.RPS, s.Errors, fmtMs(s.P50), fmtMs(s.P99), s.InFlight, s.Late)
}

func fmtMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + "ms"
}

// TimelineHeader is the header row of the --timeline CSV.
var TimelineHeader = []string{"t", "target_rps", "sent", "completed", "errors", "p50_ms", "p99_ms", "in_flight", "checkouts", "abandoned"}

// CSV returns the timeline row of the second.
func (s Second) CSV() []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	return []string{
		strconv.Itoa(s.T), f(s.TargetRPS),
		strconv.FormatInt(s.Sent, 10), strconv.FormatInt(s.Completed, 10), strconv.FormatInt(s.Errors, 10),
		f(float64(s.P50) / 1e6), f(float64(s.P99) / 1e6),
		strconv.FormatInt(s.InFlight, 10), strconv.FormatInt(s.Checkouts, 10), strconv.FormatInt(s.Abandoned, 10),
	}
}

// WriteText writes the readable summary.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	status := ""
	if s.Cancelled {
		status = " (stopped early)"
	}
	fmt.Fprintf(&b, "lbsys load: %s mode, %s arrivals, seed %d, %.1f s%s against %s\n",
		s.Mode, s.Arrivals, s.Seed, s.DurationS, status, s.Target)
	fmt.Fprintf(&b, "rate       target %.1f/s, sent %.1f/s, responses %.1f/s\n", s.TargetRPS, s.AchievedRPS, s.ResponseRPS)
	fmt.Fprintf(&b, "requests   %d sent, %d responses (%d ok), %d unfinished, %d dropped\n",
		s.Requests, s.Responses, s.OK, s.Unfinished, s.Errors.Dropped)
	e := s.Errors
	fmt.Fprintf(&b, "errors     %d (%s): connect %d, timeout %d, reset %d, status_4xx %d, status_5xx %d, dropped %d\n",
		e.Total, percent(s.ErrorRate), e.Connect, e.Timeout, e.Reset, e.Status4xx, e.Status5xx, e.Dropped)
	for _, r := range s.TopErrors {
		fmt.Fprintf(&b, "           %s\n", r)
	}
	l := s.Latency
	fmt.Fprintf(&b, "latency    p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (from scheduled send; %d samples)\n",
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
	fmt.Fprintf(&b, "schedule   late %d (> %g ms behind), max lag %.3f ms, lag p99 %.3f ms\n", s.Late, s.LateAfterMs, s.MaxLagMs, s.Lag.P99)
	if s.TraceGaps.Interpolated+s.TraceGaps.Held > 0 {
		fmt.Fprintf(&b, "trace      gaps crossed: %d interpolated, %d held at the last value\n", s.TraceGaps.Interpolated, s.TraceGaps.Held)
	}
	if ss := s.Sessions; ss != nil {
		fmt.Fprintf(&b, "sessions   %d started, %d completed, %d abandoned, %d unfinished, %d dropped (funnel %s, %.2f requests/session)\n",
			ss.Started, ss.Completed, ss.Abandoned, ss.Unfinished, ss.Dropped, ss.Funnel, ss.RequestsPer)
		fmt.Fprintf(&b, "funnel     browse %d, product %d, cart %d, checkout %d\n",
			ss.Reached["browse"], ss.Reached["product"], ss.Reached["cart"], ss.Reached["checkout"])
		fmt.Fprintf(&b, "checkouts  %d completed, %d retries, %d rejected (4xx)\n", s.Checkouts, ss.CheckoutRetries, ss.CheckoutRejected)
	}
	if s.ProcessCPUSeconds > 0 {
		fmt.Fprintf(&b, "cpu        %.2f s (process), %d connections opened\n", s.ProcessCPUSeconds, s.ConnectionsOpened)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\trequests\tok\terrors\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	names := make([]string, 0, len(s.Classes))
	for n := range s.Classes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return classRank(names[i]) < classRank(names[j]) })
	for _, n := range names {
		c := s.Classes[n]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", n, c.Requests, c.OK, c.Errors.Total,
			c.Latency.P50, c.Latency.P90, c.Latency.P99, c.Latency.P999, c.Latency.Max)
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", s.Requests, s.OK, s.Errors.Total,
		l.P50, l.P90, l.P99, l.P999, l.Max)
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func classRank(name string) int {
	for i, n := range classNames {
		if n == name {
			return i
		}
	}
	return len(classNames)
}
