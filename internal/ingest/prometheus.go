package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lbsys/lbsys/internal/store"
)

// PrometheusOptions configure a query_range import.
type PrometheusOptions struct {
	// URL is the Prometheus base URL, e.g. http://127.0.0.1:9090.
	URL   string
	Query string
	// Start and End bound the range; Start is aligned down to a multiple
	// of Step so that re-running an import asks for the same instants (and
	// changes nothing).
	Start, End time.Time
	Step       time.Duration
	// Service names the series' service; when empty, each result series'
	// ServiceLabel label does (default "service").
	Service      string
	ServiceLabel string
	// EndpointLabel names the label read as the endpoint (default
	// "endpoint"; absent means a service-level series).
	EndpointLabel string
	// Metric names the stored metric. Default: the result's __name__ label
	// when the query keeps it, else "query_" and 8 hex digits of the
	// query's SHA-256 (stable, so re-running a query updates its series).
	Metric string
	// ChunkPoints bounds the steps per request (Prometheus refuses more
	// than 11,000 points per series). Default 10,000.
	ChunkPoints   int
	AllowNegative bool
	Client        *http.Client
	Retry         Retry
}

// promResponse is the envelope of the HTTP API
// (https://prometheus.io/docs/prometheus/latest/querying/api/#format-overview).
type promResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// PromSeries is one series of a range-query result.
type PromSeries struct {
	Labels map[string]string
	Values []PromValue
}

// PromValue is one [time, "value"] pair; Problem is set when the pair
// cannot be read.
type PromValue struct {
	Time    time.Time
	Value   float64
	Problem *Problem
}

// ParsePromMatrix reads a query_range answer body. An error means the body
// is not a successful matrix answer at all; unreadable pairs come back with
// a Problem each.
func ParsePromMatrix(body []byte) ([]PromSeries, []string, error) {
	var env promResponse
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, nil, fmt.Errorf("not a Prometheus API answer: %w", err)
	}
	if env.Status != "success" {
		return nil, env.Warnings, fmt.Errorf("prometheus: %s: %s", env.ErrorType, env.Error)
	}
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string   `json:"metric"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(env.Data, &data); err != nil {
		return nil, env.Warnings, fmt.Errorf("prometheus: data: %w", err)
	}
	if data.ResultType != "matrix" {
		return nil, env.Warnings, fmt.Errorf("prometheus: result type %q, want matrix (a range query)", data.ResultType)
	}
	out := make([]PromSeries, 0, len(data.Result))
	for _, r := range data.Result {
		s := PromSeries{Labels: r.Metric, Values: make([]PromValue, 0, len(r.Values))}
		for _, pair := range r.Values {
			s.Values = append(s.Values, parsePromPair(pair))
		}
		out = append(out, s)
	}
	return out, env.Warnings, nil
}

func parsePromPair(pair []json.RawMessage) PromValue {
	if len(pair) != 2 {
		return PromValue{Problem: &Problem{Reason: store.ReasonMalformed, Detail: fmt.Sprintf("a sample has %d elements, want [time, \"value\"]", len(pair))}}
	}
	var ts float64
	if err := json.Unmarshal(pair[0], &ts); err != nil || math.IsNaN(ts) || ts < 0 || ts > 1e11 {
		return PromValue{Problem: &Problem{Reason: store.ReasonUnparseableTime, Detail: fmt.Sprintf("sample time %s is not Unix seconds", pair[0])}}
	}
	var vs string
	if err := json.Unmarshal(pair[1], &vs); err != nil {
		return PromValue{Problem: &Problem{Reason: store.ReasonNotANumber, Detail: fmt.Sprintf("sample value %s is not a quoted number", pair[1])}}
	}
	sec := math.Floor(ts)
	t := time.Unix(int64(sec), int64(math.Round((ts-sec)*1e3))*int64(time.Millisecond)).UTC()
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil {
		return PromValue{Time: t, Problem: &Problem{Reason: store.ReasonNotANumber, Detail: fmt.Sprintf("sample value %q is not a number", vs)}}
	}
	return PromValue{Time: t, Value: v}
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}

// ImportPrometheus runs a range query in chunks and stores every result
// series.
func ImportPrometheus(ctx context.Context, run *Run, o PrometheusOptions) error {
	base, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("prometheus: --url %q: want a URL such as http://127.0.0.1:9090", o.URL)
	}
	if strings.TrimSpace(o.Query) == "" {
		return errors.New("prometheus: --query is required")
	}
	if o.Step < time.Second || o.Step%time.Second != 0 {
		return fmt.Errorf("prometheus: --step %v: want whole seconds, at least 1s", o.Step)
	}
	if !o.End.After(o.Start) {
		return fmt.Errorf("prometheus: the range %s .. %s is empty", o.Start.Format(time.RFC3339), o.End.Format(time.RFC3339))
	}
	if o.ChunkPoints <= 0 || o.ChunkPoints > 11000 {
		o.ChunkPoints = 10_000
	}
	if o.ServiceLabel == "" {
		o.ServiceLabel = "service"
	}
	if o.EndpointLabel == "" {
		o.EndpointLabel = "endpoint"
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	defaultMetric := o.Metric
	if defaultMetric == "" {
		h := sha256.Sum256([]byte(o.Query))
		defaultMetric = "query_" + hex.EncodeToString(h[:4])
	}
	sink := NewPointSink(run, "prometheus")
	sink.AllowNegative = o.AllowNegative
	start := o.Start.Truncate(o.Step)
	endpoint := base.String() + "/api/v1/query_range"
	chunk := time.Duration(o.ChunkPoints-1) * o.Step
	warned := map[string]bool{}
	for cs := start; !cs.After(o.End); cs = cs.Add(chunk + o.Step) {
		ce := cs.Add(chunk)
		if ce.After(o.End) {
			ce = o.End
		}
		form := url.Values{}
		form.Set("query", o.Query)
		form.Set("start", strconv.FormatInt(cs.Unix(), 10))
		form.Set("end", strconv.FormatInt(ce.Unix(), 10))
		form.Set("step", strconv.FormatFloat(o.Step.Seconds(), 'f', -1, 64))
		_, body, err := o.Retry.do(ctx, o.Client, func() (*http.Request, error) {
			// POST keeps long queries out of URL length limits (API docs:
			// "URL-encode these parameters directly in the request body").
			req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
			if err == nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			return req, err
		})
		if err != nil {
			var he *HTTPError
			if errors.As(err, &he) {
				var env promResponse
				if json.Unmarshal([]byte(he.Body), &env) == nil && env.Error != "" {
					// Keep "giving up after N attempts" when retries ran out.
					how, _, _ := strings.Cut(err.Error(), ": ")
					if !strings.HasPrefix(how, "giving up") && !strings.HasPrefix(how, "the server asks") {
						how = ""
					} else {
						how += ": "
					}
					return fmt.Errorf("prometheus: %s%s: %s (%s)", how, env.ErrorType, env.Error, he.URL)
				}
			}
			return fmt.Errorf("prometheus: %w", err)
		}
		series, warnings, err := ParsePromMatrix(body)
		for _, w := range warnings {
			if !warned[w] {
				warned[w] = true
				run.Note("prometheus warning: %s", w)
			}
		}
		if err != nil {
			return err
		}
		loc := fmt.Sprintf("%s[%s..%s]", endpoint, cs.UTC().Format(time.RFC3339), ce.UTC().Format(time.RFC3339))
		taken := map[store.SeriesKey]string{}
		for _, s := range series {
			labels := labelString(s.Labels)
			key := store.SeriesKey{Service: o.Service, Endpoint: s.Labels[o.EndpointLabel], Metric: defaultMetric}
			if key.Service == "" {
				key.Service = s.Labels[o.ServiceLabel]
			}
			if o.Metric == "" && s.Labels["__name__"] != "" {
				key.Metric = s.Labels["__name__"]
			}
			sloc := loc + labels
			if key.Service == "" {
				run.Quarantine(Problem{sloc, store.ReasonMissingField,
					fmt.Sprintf("series %s (%d samples) has no %q label and no --service was given", labels, len(s.Values), o.ServiceLabel), labels})
				continue
			}
			if other, dup := taken[key]; dup {
				run.Quarantine(Problem{sloc, store.ReasonDuplicateID,
					fmt.Sprintf("series %s (%d samples) maps to %s like %s: aggregate with by (%s) or set --service-label", labels, len(s.Values), key, other, o.ServiceLabel), labels})
				continue
			}
			taken[key] = labels
			for _, v := range s.Values {
				raw := fmt.Sprintf("%s %v", labels, v.Value)
				if v.Problem != nil {
					p := *v.Problem
					p.Location, p.Raw = sloc, raw
					run.Quarantine(p)
					continue
				}
				// A range query answers inside the range it was asked;
				// a sample elsewhere (a server bug, a proxy in between
				// rewriting answers) is no data of this range, and a far
				// one would become its series' "latest" time.
				if v.Time.Before(cs) || v.Time.After(ce) {
					run.Quarantine(Problem{fmt.Sprintf("%s@%d", sloc, v.Time.Unix()), store.ReasonInvalidValue,
						fmt.Sprintf("sample time %s is outside the range asked for (%s .. %s)", v.Time.Format(time.RFC3339),
							cs.UTC().Format(time.RFC3339), ce.UTC().Format(time.RFC3339)), raw})
					continue
				}
				if err := sink.Add(ctx, key, v.Time, v.Value, fmt.Sprintf("%s@%d", sloc, v.Time.Unix()), raw); err != nil {
					return err
				}
			}
		}
		if err := sink.Flush(ctx); err != nil {
			return err
		}
	}
	return nil
}
