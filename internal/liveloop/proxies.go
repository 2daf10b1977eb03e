package liveloop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/telemetry"
)

// Proxies reads the admin APIs of the proxies a controller runs for
// (`lbsys controller --proxy-admin`): their per-second telemetry (GET
// /telemetry), which the loop sums across them, and what they run each
// service with (GET /status). It is the Telemetry of a controller that
// runs as its own process; in process (the demo) the proxy itself is.
//
// A proxy that does not answer is left out of that minute and logged: its
// traffic is missing from the minute (the loop has no way to estimate
// it), so the controller sees less load than there was while it is
// unreachable.
type Proxies struct {
	// URLs are the admin listeners' base URLs (http://127.0.0.1:9901).
	URLs []string
	// Client is the HTTP client (default: a 5 s timeout).
	Client *http.Client
	// MaxBytes bounds one answer (default 64 MiB: an hour of per-second
	// records of a few dozen services and endpoints).
	MaxBytes int64
	Log      *slog.Logger
}

func (p *Proxies) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return &http.Client{Timeout: 5 * time.Second}
}

func (p *Proxies) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *Proxies) maxBytes() int64 {
	if p.MaxBytes > 0 {
		return p.MaxBytes
	}
	return 64 << 20
}

// get reads base+path into a body bounded by MaxBytes.
func (p *Proxies) get(ctx context.Context, base, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBytes()+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the answer: %w", req.URL.Path, err)
	}
	if int64(len(b)) > p.maxBytes() {
		return nil, fmt.Errorf("GET %s: the answer is larger than %d bytes", req.URL.Path, p.maxBytes())
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", req.URL.Path, resp.Status, firstLine(b))
	}
	return b, nil
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// each runs f for every proxy at once and returns the errors by URL.
func (p *Proxies) each(f func(i int, base string) error) map[string]error {
	var (
		mu   sync.Mutex
		errs = map[string]error{}
		wg   sync.WaitGroup
	)
	for i, u := range p.URLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i, u); err != nil {
				mu.Lock()
				errs[u] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// Telemetry implements Telemetry: every proxy's records since the time
// (and of the service, when one is named), together; the loop sums them.
func (p *Proxies) Telemetry(since time.Time, service string) []telemetry.Record {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, errs := p.ReadTelemetry(ctx, since, service)
	for u, err := range errs {
		p.log().Warn("controller: a proxy's telemetry was not read; this minute misses its traffic",
			"proxy", u, "err", err, "fix", "check that the proxy runs and that --proxy-admin names its admin listener (admin.listen)")
	}
	return recs
}

// ReadTelemetry reads every proxy's records since the time; errs has the
// proxies that failed, by URL.
func (p *Proxies) ReadTelemetry(ctx context.Context, since time.Time, service string) ([]telemetry.Record, map[string]error) {
	q := url.Values{}
	if !since.IsZero() {
		// RFC 3339 drops the fraction: a little more is read, never less
		// (the loop keeps the minute's records).
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if service != "" {
		q.Set("service", service)
	}
	path := "/telemetry"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	per := make([][]telemetry.Record, len(p.URLs))
	errs := p.each(func(i int, base string) error {
		b, err := p.get(ctx, base, path)
		if err != nil {
			return err
		}
		recs, err := ParseTelemetry(b)
		if err != nil {
			return fmt.Errorf("GET /telemetry: %w", err)
		}
		per[i] = recs
		return nil
	})
	var out []telemetry.Record
	for _, r := range per {
		out = append(out, r...)
	}
	return out, errs
}

// ParseTelemetry reads the answer of a proxy's GET /telemetry:
// {"records": [...]}. Fields it does not know are ignored (a newer proxy
// may add some); a record with a negative count, a non-finite latency or
// no time or service is an error naming it.
func ParseTelemetry(b []byte) ([]telemetry.Record, error) {
	var doc struct {
		Records []telemetry.Record `json:"records"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not the telemetry JSON of an lbsys proxy ({\"records\": [...]}): %w", err)
	}
	for i, r := range doc.Records {
		switch {
		case r.Time.IsZero() || r.Service == "":
			return nil, fmt.Errorf("records[%d]: no ts or service", i)
		case r.Requests < 0 || r.Errors < 0 || r.InFlight < 0:
			return nil, fmt.Errorf("records[%d] (%s at %s): negative count", i, r.Service, r.Time.Format(time.RFC3339))
		case !finite(r.P50ms) || !finite(r.P90ms) || !finite(r.P99ms) || r.P50ms < 0 || r.P99ms < 0:
			return nil, fmt.Errorf("records[%d] (%s at %s): latency not a finite, non-negative number", i, r.Service, r.Time.Format(time.RFC3339))
		}
	}
	return doc.Records, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// ServiceView is what the proxies say about one service: how they run it
// (the controller plans admission bounds only where every proxy runs an
// admission limiter, and weights only where every proxy takes them: a
// directive a proxy cannot apply is refused whole) and which of its
// endpoints serve.
type ServiceView struct {
	Name string
	// Proxies is how many proxies have the service.
	Proxies int
	// Admission and Weighted hold when every proxy that has the service
	// runs admission control for it, and the weighted policy.
	Admission, Weighted bool
	// Endpoints are the addresses configured on any proxy; Available those
	// available (healthy, not ejected) on at least one, sorted.
	Endpoints, Available []string
}

// statusDoc is the part of a proxy's GET /status the controller reads.
type statusDoc struct {
	Services []struct {
		Name      string          `json:"name"`
		Policy    string          `json:"policy"`
		Admission json.RawMessage `json:"admission"`
		Endpoints []struct {
			ID        string `json:"id"`
			Available bool   `json:"available"`
		} `json:"endpoints"`
	} `json:"services"`
}

// ParseStatus reads the services of a proxy's GET /status answer (fields
// it does not need are ignored).
func ParseStatus(b []byte) (map[string]ServiceView, error) {
	var doc statusDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not the /status JSON of an lbsys proxy: %w", err)
	}
	out := map[string]ServiceView{}
	for i, s := range doc.Services {
		if s.Name == "" {
			return nil, fmt.Errorf("services[%d]: no name", i)
		}
		v := ServiceView{Name: s.Name, Proxies: 1, Weighted: s.Policy == "weighted",
			Admission: len(s.Admission) > 0 && string(s.Admission) != "null"}
		for _, e := range s.Endpoints {
			if e.ID == "" {
				continue
			}
			v.Endpoints = append(v.Endpoints, e.ID)
			if e.Available {
				v.Available = append(v.Available, e.ID)
			}
		}
		sort.Strings(v.Endpoints)
		sort.Strings(v.Available)
		out[s.Name] = v
	}
	return out, nil
}

// Services reads every proxy's /status and merges the views; errs has the
// proxies that failed, by URL.
func (p *Proxies) Services(ctx context.Context) (map[string]ServiceView, map[string]error) {
	per := make([]map[string]ServiceView, len(p.URLs))
	errs := p.each(func(i int, base string) error {
		b, err := p.get(ctx, base, "/status")
		if err != nil {
			return err
		}
		v, err := ParseStatus(b)
		if err != nil {
			return fmt.Errorf("GET /status: %w", err)
		}
		per[i] = v
		return nil
	})
	return mergeViews(per), errs
}

// mergeViews joins the proxies' views of each service: the capabilities
// every proxy has, the endpoints any proxy has or finds available.
func mergeViews(per []map[string]ServiceView) map[string]ServiceView {
	out := map[string]ServiceView{}
	for _, m := range per {
		for name, v := range m {
			cur, ok := out[name]
			if !ok {
				out[name] = v
				continue
			}
			cur.Proxies++
			cur.Admission = cur.Admission && v.Admission
			cur.Weighted = cur.Weighted && v.Weighted
			cur.Endpoints = union(cur.Endpoints, v.Endpoints)
			cur.Available = union(cur.Available, v.Available)
			out[name] = cur
		}
	}
	return out
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range append(append([]string(nil), a...), b...) {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// CheckServices reads the proxies and says what is wrong for a controller
// of services: a proxy that does not answer, or a service some proxy does
// not have (a directive naming it would be ignored there, and its traffic
// through that proxy would be missing).
func (p *Proxies) CheckServices(ctx context.Context, services []string) (map[string]ServiceView, error) {
	if len(p.URLs) == 0 {
		return nil, errors.New("no proxy admin URL")
	}
	views, errs := p.Services(ctx)
	if len(errs) > 0 {
		var msgs []string
		for _, u := range p.URLs {
			if err := errs[u]; err != nil {
				msgs = append(msgs, fmt.Sprintf("%s: %v", u, err))
			}
		}
		return nil, fmt.Errorf("the proxies' admin API did not answer (is --proxy-admin each proxy's admin.listen, and do they run?): %s", strings.Join(msgs, "; "))
	}
	var missing []string
	for _, s := range services {
		if v, ok := views[s]; !ok || v.Proxies < len(p.URLs) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		var have []string
		for name, v := range views {
			if v.Proxies == len(p.URLs) {
				have = append(have, name)
			}
		}
		sort.Strings(have)
		return nil, fmt.Errorf("service %s is not configured on every proxy (all of them have: %s); name services as the proxies' configuration does",
			strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	return views, nil
}
