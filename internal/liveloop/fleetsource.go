package liveloop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/fleet"
)

// The fleet's state (replicas ready, starting and waiting; their
// utilisation; how long new ones took to start) is what the controller
// learns a replica's capacity and the startup lead from. In the demo the
// local scaler tells it (internal/fleet). A deployment's controller reads
// it from one of two sources:
//
//   - FleetFile: a JSON document the autoscaler's side publishes (a URL or
//     a file an adapter rewrites), the format in docs/controller.md;
//   - ProxyFleet, without one: ready replicas are the endpoints the
//     proxies find available, utilisation comes from the replicas' own
//     load reports when they serve them (lbsys shop's GET /_shop/stats),
//     nothing is known of starting or waiting replicas or of startups.
//
// Without utilisation no replica capacity is learned, and the scaler sets
// no floor (its decisions say so): the controller then plans admission
// bounds and weights only.

// DefaultLoadReportPath is where lbsys shop serves its load report: the
// busy time of its workers so far and their number.
const DefaultLoadReportPath = "/_shop/stats"

// ProxyFleet is the fleet as the proxies and the replicas see it.
type ProxyFleet struct {
	Proxies  *Proxies
	Services []string
	// LoadReportPath is read on every available endpoint for its
	// utilisation ("" reads none): a JSON object with busy_seconds (worker
	// time busy since start, real seconds) and workers, as lbsys shop
	// serves it at DefaultLoadReportPath. Two reads a minute apart give
	// the mean utilisation in between.
	LoadReportPath string
	// Client reads the load reports (default: a 2 s timeout).
	Client *http.Client
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger

	mu    sync.Mutex
	usage map[string]usageRead // endpoint → its last report
	none  map[string]time.Time // endpoint → when it answered without one
}

type usageRead struct {
	busy    float64
	workers int
	at      time.Time
}

// noReportRetry is how long an endpoint that serves no load report is
// left alone before it is asked again (it may be replaced by one that
// does, at the same address).
const noReportRetry = time.Hour

func (f *ProxyFleet) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Snapshot implements Fleet.
func (f *ProxyFleet) Snapshot() []fleet.ServiceState {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	views, errs := f.Proxies.Services(ctx)
	for u, err := range errs {
		f.Proxies.log().Warn("controller: a proxy's status was not read; its view of the endpoints is missing this minute", "proxy", u, "err", err)
	}
	var out []fleet.ServiceState
	for _, s := range f.Services {
		v := views[s]
		st := fleet.ServiceState{Service: s, Ready: len(v.Available), Addrs: v.Available, Util: math.NaN()}
		if f.LoadReportPath != "" {
			st.Util = f.utilisation(ctx, v.Available)
		}
		out = append(out, st)
	}
	return out
}

// Startups implements Fleet: the proxies do not see replicas start.
func (f *ProxyFleet) Startups() map[string][]time.Duration { return nil }

// utilisation is the mean utilisation of the endpoints since their last
// reports: NaN when fewer than half of them have one to compare with.
func (f *ProxyFleet) utilisation(ctx context.Context, addrs []string) float64 {
	if len(addrs) == 0 {
		return math.NaN()
	}
	type res struct {
		addr string
		u    usageRead
		err  error
	}
	now := f.now()
	f.mu.Lock()
	if f.usage == nil {
		f.usage, f.none = map[string]usageRead{}, map[string]time.Time{}
	}
	var ask []string
	for _, a := range addrs {
		if t, ok := f.none[a]; ok && now.Sub(t) < noReportRetry {
			continue
		}
		ask = append(ask, a)
	}
	f.mu.Unlock()
	results := make(chan res, len(ask))
	sem := make(chan struct{}, 8) // at most 8 reads at once
	for _, a := range ask {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := f.readReport(ctx, a)
			u.at = f.now()
			results <- res{a, u, err}
		}()
	}
	sum, n := 0.0, 0
	f.mu.Lock()
	defer f.mu.Unlock()
	for range ask {
		r := <-results
		if r.err != nil {
			if errors.Is(r.err, errNoReport) {
				f.none[r.addr] = now
			}
			delete(f.usage, r.addr)
			f.log().Debug("controller: no load report", "endpoint", r.addr, "err", r.err)
			continue
		}
		prev, ok := f.usage[r.addr]
		f.usage[r.addr] = r.u
		dt := r.u.at.Sub(prev.at).Seconds()
		if !ok || dt <= 0 || r.u.busy < prev.busy || r.u.workers != prev.workers {
			continue // first report, or the replica restarted
		}
		sum += math.Min(1, (r.u.busy-prev.busy)/(dt*float64(r.u.workers)))
		n++
	}
	if n == 0 || 2*n < len(addrs) {
		return math.NaN()
	}
	return sum / float64(n)
}

func (f *ProxyFleet) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}

// errNoReport: the endpoint answered, but with no load report (not an
// lbsys shop, or another path).
var errNoReport = errors.New("no load report at this path")

func (f *ProxyFleet) readReport(ctx context.Context, addr string) (usageRead, error) {
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+f.LoadReportPath, nil)
	if err != nil {
		return usageRead{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return usageRead{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return usageRead{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return usageRead{}, fmt.Errorf("%w (%s)", errNoReport, resp.Status)
	}
	busy, workers, err := ParseLoadReport(b)
	if err != nil {
		return usageRead{}, fmt.Errorf("%w: %v", errNoReport, err)
	}
	return usageRead{busy: busy, workers: workers}, nil
}

// ParseLoadReport reads a replica's load report: a JSON object with
// busy_seconds (its workers' busy time so far) and workers; other fields
// are ignored (lbsys shop's stats carry many).
func ParseLoadReport(b []byte) (busySeconds float64, workers int, err error) {
	var r struct {
		Busy    *float64 `json:"busy_seconds"`
		Workers *int     `json:"workers"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, 0, fmt.Errorf("not a load report (JSON with busy_seconds and workers): %w", err)
	}
	switch {
	case r.Busy == nil || r.Workers == nil:
		return 0, 0, errors.New("not a load report: busy_seconds and workers are required")
	case !finite(*r.Busy) || *r.Busy < 0:
		return 0, 0, fmt.Errorf("busy_seconds %v: want a finite number of seconds, zero or more", *r.Busy)
	case *r.Workers < 1:
		return 0, 0, fmt.Errorf("workers %d: want at least 1", *r.Workers)
	}
	return *r.Busy, *r.Workers, nil
}

// FleetFile reads the fleet's state from a JSON document the autoscaler's
// side publishes (docs/controller.md): a URL (http or https) read with
// GET, or a file read from disk, each minute. A document that cannot be
// read or is invalid leaves the minute without fleet state (the
// controller learns nothing from it) and is logged with the reason.
type FleetFile struct {
	// Source is the URL or the path.
	Source   string
	Services []string
	// Token, when set, is sent as a bearer token to a URL.
	Token  string
	Client *http.Client
	// Fallback, when set, gives the utilisation of a service the document
	// has none for (the replicas' load reports).
	Fallback *ProxyFleet
	// Factor converts the document's startups (wall-clock seconds) to the
	// loop's clock under compressed time (0 or 1: the wall clock).
	Factor float64
	Log    *slog.Logger

	mu       sync.Mutex
	last     *FleetDoc
	seenUpTo time.Time // startups reported up to here were taken
}

// FleetDoc is the fleet document.
type FleetDoc struct {
	Services []FleetService `json:"services"`
}

// FleetService is one service in the fleet document.
type FleetService struct {
	Service string `json:"service"`
	// Ready replicas serve; Starting ones were asked for and are not
	// ready; Pending ones wait for room (a node).
	Ready    int `json:"ready"`
	Starting int `json:"starting"`
	Pending  int `json:"pending"`
	// Util is the ready replicas' mean utilisation over the last minute
	// (busy over capacity, 0..1; absent: unknown).
	Util *float64 `json:"util,omitempty"`
	// Startups are recent replicas that became ready: when, and how long
	// after they were asked for. Each is taken once (by ReadyAt).
	Startups []FleetStartup `json:"startups,omitempty"`
}

// FleetStartup is one replica's startup.
type FleetStartup struct {
	ReadyAt time.Time `json:"ready_at"`
	Seconds float64   `json:"seconds"`
}

// ParseFleetDoc reads the fleet document strictly: unknown fields are
// errors (a misspelt "utilisation" must not silently mean "unknown"), as
// are negative counts, a utilisation outside 0..1 and startups without a
// time or a positive length.
func ParseFleetDoc(b []byte) (*FleetDoc, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d FleetDoc
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("fleet document: %w (the format is in docs/controller.md)", err)
	}
	if dec.More() {
		return nil, errors.New("fleet document: data after the JSON object")
	}
	seen := map[string]bool{}
	for i, s := range d.Services {
		where := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Service == "":
			return nil, fmt.Errorf("fleet document: %s: service is required", where)
		case seen[s.Service]:
			return nil, fmt.Errorf("fleet document: %s: service %q appears twice", where, s.Service)
		case s.Ready < 0 || s.Starting < 0 || s.Pending < 0:
			return nil, fmt.Errorf("fleet document: %s (%s): ready, starting and pending must be zero or more", where, s.Service)
		case s.Util != nil && !(*s.Util >= 0 && *s.Util <= 1):
			return nil, fmt.Errorf("fleet document: %s (%s): util %v: want a share from 0 to 1", where, s.Service, *s.Util)
		}
		seen[s.Service] = true
		for j, st := range s.Startups {
			if st.ReadyAt.IsZero() || !(st.Seconds > 0) || math.IsInf(st.Seconds, 0) {
				return nil, fmt.Errorf("fleet document: %s.startups[%d] (%s): want ready_at and seconds > 0", where, j, s.Service)
			}
		}
	}
	return &d, nil
}

// Read fetches and parses the document.
func (f *FleetFile) Read(ctx context.Context) (*FleetDoc, error) {
	var b []byte
	var err error
	if strings.HasPrefix(f.Source, "http://") || strings.HasPrefix(f.Source, "https://") {
		b, err = f.fetch(ctx)
	} else {
		b, err = readFileLimited(f.Source, 16<<20)
	}
	if err != nil {
		return nil, err
	}
	return ParseFleetDoc(b)
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

func (f *FleetFile) fetch(ctx context.Context) ([]byte, error) {
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.Source, nil)
	if err != nil {
		return nil, err
	}
	if f.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.Token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 16<<20 {
		return nil, errors.New("the fleet document is larger than 16 MiB")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", f.Source, resp.Status, firstLine(b))
	}
	return b, nil
}

// Snapshot implements Fleet. A service the document does not list has no
// state this minute (unknown, not zero replicas).
func (f *FleetFile) Snapshot() []fleet.ServiceState {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := f.Read(ctx)
	f.mu.Lock()
	f.last = d
	f.mu.Unlock()
	if err != nil {
		f.log().Warn("controller: the fleet document was not read; this minute has no fleet state", "source", f.Source, "err", err)
		return nil
	}
	var fallback map[string]fleet.ServiceState
	var out []fleet.ServiceState
	for _, name := range f.Services {
		var s *FleetService
		for i := range d.Services {
			if d.Services[i].Service == name {
				s = &d.Services[i]
			}
		}
		if s == nil {
			continue
		}
		st := fleet.ServiceState{Service: name, Ready: s.Ready, Starting: s.Starting, Pending: s.Pending, Util: math.NaN()}
		if s.Util != nil {
			st.Util = *s.Util
		} else if f.Fallback != nil {
			if fallback == nil {
				fallback = map[string]fleet.ServiceState{}
				for _, x := range f.Fallback.Snapshot() {
					fallback[x.Service] = x
				}
			}
			st.Util = fallback[name].Util
		}
		out = append(out, st)
	}
	return out
}

// Startups implements Fleet: the startups of the last document read that
// were not taken before.
func (f *FleetFile) Startups() map[string][]time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		return nil
	}
	out := map[string][]time.Duration{}
	upTo := f.seenUpTo
	for _, s := range f.last.Services {
		for _, st := range s.Startups {
			if !st.ReadyAt.After(f.seenUpTo) {
				continue
			}
			secs := st.Seconds
			if f.Factor > 0 {
				secs *= f.Factor
			}
			out[s.Service] = append(out[s.Service], time.Duration(secs*float64(time.Second)))
			if st.ReadyAt.After(upTo) {
				upTo = st.ReadyAt
			}
		}
	}
	f.seenUpTo = upTo
	return out
}

func (f *FleetFile) log() *slog.Logger {
	if f.Log != nil {
		return f.Log
	}
	return slog.Default()
}
