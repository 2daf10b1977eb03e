package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/store"
)

// Defaults of StoreSource.
const (
	DefaultMetric      = "requests"
	DefaultWindow      = 14 * 24 * time.Hour
	DefaultMaxUpstream = 4
)

// DefaultTxServices are the services whose request rate is the
// transaction rate (transaction velocity features) when present.
var DefaultTxServices = []string{"checkout", "payment"}

// DefaultFunnelServices are the session-funnel stages, in order (the demo
// shop's browse → cart → checkout → payment), whose request rates give the
// funnel distribution when at least two of them have series.
var DefaultFunnelServices = []string{"catalog", "cart", "checkout", "payment"}

// ErrNoSeries says the store holds no series the source could read.
var ErrNoSeries = errors.New("no series to forecast")

// eventReach is how far around the window calendar events are read: the
// time-to and time-since features look a week each way.
const eventReach = 8 * 24 * time.Hour

// StoreSource reads the examples from the embedded store: for every
// service (and, with Endpoints, every endpoint) its request series at the
// store's 1-minute resolution over Window, with whatever exogenous inputs
// the store holds —
//
//   - coupling: the request series of the services that call it (the
//     CMDB graph's direct dependents: in the graph an edge A → B says A
//     depends on B, so A's load flows into B), at most MaxUpstream of
//     them, the busiest first;
//   - transaction velocity: the summed request rate of TxServices other
//     than the series' own service;
//   - session funnel: the request rates of the FunnelServices stages (at
//     least two with data); the model uses their distribution over the
//     stages, reduced by an SVD, as a leading indicator (more sessions
//     reaching cart now, more checkouts soon);
//   - ITIL: open incidents per step and change windows of the service and
//     of its direct dependencies (an incident in payment shows in
//     checkout's load);
//   - calendar events by category, for every series or, when the event
//     names services, for theirs.
//
// An input the store lacks is absent, never zero (except the incident
// count: once the store has any incident in the window, a service without
// one has zero open). Every series is put on one grid (a model needs one
// step): the coarsest native step among the services read, at least one
// minute, each step the mean of its 1-minute buckets.
//
// The window ends at Until or, when that is zero, at the newest point of
// the series read, so that unchanged data gives byte-identical examples
// and the runner's cache skips everything downstream.
type StoreSource struct {
	Store *store.Store
	// Services to forecast (empty: every service with a Metric series).
	Services []string
	// Endpoints adds a series per endpoint of each service.
	Endpoints bool
	// Metric is the load metric (default "requests").
	Metric string
	// Window is how much history is read (default 14 days).
	Window time.Duration
	// Until ends the window (zero: the newest point).
	Until time.Time
	// Lookahead is how far past the window change windows and calendar
	// events are read: the longest horizon.
	Lookahead time.Duration
	// Step overrides the grid step (zero: inferred, see above).
	Step time.Duration
	// TxServices and TxMetric name the transaction-rate series (default
	// DefaultTxServices and Metric).
	TxServices []string
	TxMetric   string
	// FunnelServices are the funnel stages in order (nil:
	// DefaultFunnelServices; empty: no funnel input). Read with Metric.
	FunnelServices []string
	// MaxUpstream bounds the coupling inputs per series (default 4).
	MaxUpstream int

	mu      sync.Mutex
	origins map[string]SeriesOrigin
}

// SeriesOrigin says where an example series came from in the store.
type SeriesOrigin struct {
	Name     string `json:"name"`
	Service  string `json:"service"`
	Endpoint string `json:"endpoint,omitempty"`
	// Series are the store series read for it: one, or the endpoint
	// series of a service that has no service-level series (summed).
	Series []int64 `json:"series"`
	// Refs are the stored data it and its inputs came from.
	Refs []string `json:"refs"`
	// Upstream and Transactions name the services of the coupling and
	// transaction inputs; Incidents, Changes and Events count the
	// tickets and calendar occurrences that concern it.
	Upstream     []string `json:"upstream,omitempty"`
	Transactions []string `json:"transactions,omitempty"`
	// Funnel names the funnel stages read, in order.
	Funnel    []string `json:"funnel,omitempty"`
	Incidents int      `json:"incidents,omitempty"`
	Changes   int      `json:"changes,omitempty"`
	Events    int      `json:"events,omitempty"`
	// Points is the number of steps with a value.
	Points int           `json:"points"`
	Step   time.Duration `json:"step"`
	From   time.Time     `json:"from"`
	To     time.Time     `json:"to"`
}

// Origins returns where each series of the last Examples call came
// from, by name.
func (s *StoreSource) Origins() []SeriesOrigin {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SeriesOrigin, 0, len(s.origins))
	for _, o := range s.origins {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Origin returns where a series of the last Examples call came from.
func (s *StoreSource) Origin(name string) (SeriesOrigin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.origins[name]
	return o, ok
}

func (s *StoreSource) metric() string {
	if s.Metric == "" {
		return DefaultMetric
	}
	return s.Metric
}

// SeriesName names the example series of a service or endpoint.
func SeriesName(service, endpoint string) string {
	if endpoint == "" {
		return service
	}
	return service + "/" + strings.TrimPrefix(endpoint, "/")
}

// load is the store series that make up one service's (or endpoint's)
// load: one series, or several to sum.
type load struct {
	service, endpoint string
	ids               []int64
	last              time.Time
}

// serviceLoads groups the series of one metric by service: the
// service-level series, else the sum of the endpoints'.
func serviceLoads(all []store.Series) (svc map[string]load, eps map[string][]load) {
	svc, eps = map[string]load{}, map[string][]load{}
	for _, x := range all {
		l := load{service: x.Service, endpoint: x.Endpoint, ids: []int64{x.ID}, last: x.Last}
		if x.Endpoint == "" {
			svc[x.Service] = l
			continue
		}
		eps[x.Service] = append(eps[x.Service], l)
	}
	for name, l := range eps {
		if _, ok := svc[name]; ok {
			continue
		}
		sum := load{service: name}
		for _, e := range l {
			sum.ids = append(sum.ids, e.ids...)
			if e.last.After(sum.last) {
				sum.last = e.last
			}
		}
		svc[name] = sum
	}
	return svc, eps
}

// Examples implements Source.
func (s *StoreSource) Examples(ctx context.Context) (*Examples, error) {
	if s.Store == nil {
		return nil, errors.New("store source: no store")
	}
	metric := s.metric()
	window := s.Window
	if window <= 0 {
		window = DefaultWindow
	}
	all, err := s.Store.ListSeries(ctx, store.SeriesFilter{Metric: metric})
	if err != nil {
		return nil, err
	}
	loads, eps := serviceLoads(all)
	if len(loads) == 0 {
		return nil, fmt.Errorf("%w: the store %s has no %q series; ingest some first (lbsys ingest telemetry|csv|prometheus)",
			ErrNoSeries, s.Store.Path(), metric)
	}
	services := s.Services
	if len(services) == 0 {
		for name := range loads {
			services = append(services, name)
		}
	}
	services = slices.Clone(services)
	sort.Strings(services)
	services = slices.Compact(services)
	var missing []string
	for _, name := range services {
		if _, ok := loads[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		have := make([]string, 0, len(loads))
		for name := range loads {
			have = append(have, name)
		}
		sort.Strings(have)
		return nil, fmt.Errorf("%w: no %q series for service %s in the store (it has: %s)", ErrNoSeries, metric,
			strings.Join(missing, ", "), strings.Join(have, ", "))
	}

	// The targets: every service, and its endpoints when asked.
	type target struct {
		origin SeriesOrigin
		load   load
	}
	var targets []*target
	for _, name := range services {
		l := loads[name]
		targets = append(targets, &target{origin: SeriesOrigin{Name: SeriesName(name, ""), Service: name}, load: l})
		if s.Endpoints {
			for _, e := range eps[name] {
				targets = append(targets, &target{origin: SeriesOrigin{Name: SeriesName(name, e.endpoint), Service: name, Endpoint: e.endpoint}, load: e})
			}
		}
	}

	// The window ends at the newest point of the targets (floored to the
	// minute, that minute included), unless told otherwise.
	to := s.Until
	if to.IsZero() {
		for _, t := range targets {
			if t.load.last.After(to) {
				to = t.load.last
			}
		}
		if to.IsZero() {
			return nil, fmt.Errorf("%w: the %q series of %s have no points", ErrNoSeries, metric, strings.Join(services, ", "))
		}
		to = to.Truncate(time.Minute).Add(time.Minute)
	}
	to = to.UTC()
	from := to.Add(-window)

	// Everything that may be read: targets, callers, transaction services.
	g, err := s.Store.Graph(ctx)
	if err != nil {
		return nil, err
	}
	callers := map[string][]string{} // service → calling services with a load
	deps := map[string][]string{}    // service → graph keys it depends on directly
	keyOf := map[string]string{}
	for _, name := range services {
		key, ok := g.Resolve(name)
		if !ok {
			continue
		}
		keyOf[name] = key
		deps[name] = g.DependsOn(key)
		for _, c := range g.DependedOnBy(key) {
			n, ok := g.Node(c)
			if !ok || n.Service == "" || n.Service == name {
				continue
			}
			if _, ok := loads[n.Service]; ok {
				callers[name] = append(callers[name], n.Service)
			}
		}
	}
	txMetric := s.TxMetric
	if txMetric == "" {
		txMetric = metric
	}
	txNames := s.TxServices
	if txNames == nil {
		txNames = DefaultTxServices
	}
	txLoads := map[string]load{}
	if txMetric == metric {
		for _, n := range txNames {
			if l, ok := loads[n]; ok {
				txLoads[n] = l
			}
		}
	} else {
		txAll, err := s.Store.ListSeries(ctx, store.SeriesFilter{Metric: txMetric})
		if err != nil {
			return nil, err
		}
		tl, _ := serviceLoads(txAll)
		for _, n := range txNames {
			if l, ok := tl[n]; ok {
				txLoads[n] = l
			}
		}
	}
	idset := map[int64]bool{}
	for _, t := range targets {
		for _, id := range t.load.ids {
			idset[id] = true
		}
	}
	for _, cs := range callers {
		for _, c := range cs {
			for _, id := range loads[c].ids {
				idset[id] = true
			}
		}
	}
	for _, l := range txLoads {
		for _, id := range l.ids {
			idset[id] = true
		}
	}
	funnelNames := s.FunnelServices
	if funnelNames == nil {
		funnelNames = DefaultFunnelServices
	}
	var funnel []string
	for _, n := range funnelNames {
		if l, ok := loads[n]; ok && !slices.Contains(funnel, n) {
			funnel = append(funnel, n)
			for _, id := range l.ids {
				idset[id] = true
			}
		}
	}
	ids := make([]int64, 0, len(idset))
	for id := range idset {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	pts, err := s.Store.RangeMany(ctx, ids, from, to, store.Minute)
	if err != nil {
		return nil, err
	}

	// One grid for every series.
	step := s.Step
	if step <= 0 {
		step = time.Minute
		for _, t := range targets {
			for _, id := range t.load.ids {
				ts := make([]int64, len(pts[id]))
				for i, p := range pts[id] {
					ts[i] = p.T
				}
				step = max(step, modalStep(ts))
			}
		}
	}
	step = max(time.Minute, step.Truncate(time.Minute))
	stepMs := step.Milliseconds()
	// The grid starts at the first point of any target (a store younger
	// than the window yields no leading steps of nothing).
	first := to.UnixMilli()
	for _, t := range targets {
		for _, id := range t.load.ids {
			if p := pts[id]; len(p) > 0 {
				first = min(first, p[0].T)
			}
		}
	}
	if first == to.UnixMilli() {
		return nil, fmt.Errorf("%w: no %q points of %s between %s and %s", ErrNoSeries, metric, strings.Join(services, ", "),
			from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	g0 := floorMs(max(from.UnixMilli(), first), stepMs)
	n := int((floorMs(to.UnixMilli()-1, stepMs) + stepMs - g0) / stepMs)
	gridStart := time.UnixMilli(g0).UTC()
	cache := map[string][]float64{}
	grid := func(l load) []float64 {
		k := fmt.Sprint(l.ids)
		if v, ok := cache[k]; ok {
			return v
		}
		v := sumOnGrid(pts, l.ids, g0, stepMs, n)
		cache[k] = v
		return v
	}
	gridSeries := func(name string, v []float64) *forecast.Series {
		return &forecast.Series{Name: name, Start: gridStart, Step: step, Values: slices.Clone(v)}
	}

	// ITIL and calendar inputs.
	horizonEnd := to.Add(max(s.Lookahead, 0))
	incidents, err := s.Store.Incidents(ctx, store.TicketQuery{From: from, To: to})
	if err != nil {
		return nil, err
	}
	changes, err := s.Store.Changes(ctx, store.TicketQuery{From: from, To: horizonEnd})
	if err != nil {
		return nil, err
	}
	events, err := s.Store.Events(ctx, store.EventQuery{From: from.Add(-eventReach), To: horizonEnd.Add(eventReach)})
	if err != nil {
		return nil, err
	}
	// concerns says whether a ticket is about the service or one of its
	// direct dependencies.
	concerns := func(t store.Ticket, service string) bool {
		node := t.Service
		if node == "" && t.CI != "" {
			node, _ = g.Resolve(t.CI)
		} else if k, ok := g.Resolve(node); ok {
			node = k
		}
		if node == "" {
			return false
		}
		if node == service || node == keyOf[service] {
			return true
		}
		return slices.Contains(deps[service], node)
	}

	ex := &Examples{Source: "store:" + filepath.Base(s.Store.Path())}
	globalCals := map[string]bool{}
	for _, e := range events {
		if len(e.Services) == 0 {
			ex.Events = append(ex.Events, toEvents(e)...)
			globalCals[e.Calendar] = true
		}
	}
	origins := map[string]SeriesOrigin{}
	for _, t := range targets {
		o := t.origin
		o.Series = slices.Clone(t.load.ids)
		o.Step, o.From, o.To = step, gridStart, gridStart.Add(time.Duration(n)*step)
		refs := map[string]bool{}
		for _, id := range t.load.ids {
			refs[store.SeriesRef(id)] = true
		}
		r := RawSeries{Name: o.Name, Step: step}
		for i, v := range grid(t.load) {
			if !math.IsNaN(v) {
				r.T = append(r.T, g0+int64(i)*stepMs)
				r.V = append(r.V, v)
			}
		}
		o.Points = len(r.T)
		exo := &forecast.Exogenous{}
		// Coupling: the busiest callers first.
		cs := slices.Clone(callers[o.Service])
		sort.SliceStable(cs, func(i, j int) bool {
			mi, mj := meanKnown(grid(loads[cs[i]])), meanKnown(grid(loads[cs[j]]))
			if mi != mj {
				return mi > mj
			}
			return cs[i] < cs[j]
		})
		maxUp := s.MaxUpstream
		if maxUp <= 0 {
			maxUp = DefaultMaxUpstream
		}
		for _, c := range cs {
			if len(o.Upstream) == maxUp {
				break
			}
			v := grid(loads[c])
			if !anyKnown(v) {
				continue
			}
			exo.Upstream = append(exo.Upstream, gridSeries("upstream:"+c, v))
			o.Upstream = append(o.Upstream, c)
			for _, id := range loads[c].ids {
				refs[store.SeriesRef(id)] = true
			}
		}
		if len(o.Upstream) > 0 {
			refs["cmdb:graph"] = true
		}
		// Transaction velocity from the other transaction services.
		var txIDs []int64
		for _, name := range slices.Sorted(maps.Keys(txLoads)) {
			if name == o.Service {
				continue
			}
			if anyKnown(grid(txLoads[name])) {
				o.Transactions = append(o.Transactions, name)
				txIDs = append(txIDs, txLoads[name].ids...)
			}
		}
		if len(txIDs) > 0 {
			exo.Transactions = gridSeries("transactions:"+strings.Join(o.Transactions, "+"), sumOnGrid(pts, txIDs, g0, stepMs, n))
			for _, id := range txIDs {
				refs[store.SeriesRef(id)] = true
			}
		}
		// Session funnel: the stages' rates, when two or more have data.
		var stages []*forecast.Series
		var stageNames []string
		for _, name := range funnel {
			if v := grid(loads[name]); anyKnown(v) {
				stages = append(stages, gridSeries("funnel:"+name, v))
				stageNames = append(stageNames, name)
			}
		}
		if len(stages) >= 2 {
			exo.Funnel = stages
			o.Funnel = stageNames
			for _, name := range stageNames {
				for _, id := range loads[name].ids {
					refs[store.SeriesRef(id)] = true
				}
			}
		}
		// Open incidents per step, once the store has any in the window.
		if len(incidents) > 0 {
			open := make([]float64, n)
			for _, tk := range incidents {
				if !concerns(tk, o.Service) {
					continue
				}
				o.Incidents++
				lo := max(0, int(floorMs(tk.Start.UnixMilli()-g0, stepMs)/stepMs))
				hi := n
				if !tk.End.IsZero() {
					hi = min(n, int((tk.End.UnixMilli()-g0+stepMs-1)/stepMs))
				}
				for i := lo; i < hi; i++ {
					open[i]++
				}
			}
			exo.Incidents = gridSeries("incidents:"+o.Service, open)
			refs["tickets:"+store.Incident] = true
		}
		for _, tk := range changes {
			if !concerns(tk, o.Service) {
				continue
			}
			end := tk.End
			if end.IsZero() {
				end = horizonEnd
			}
			if !end.After(tk.Start) {
				end = tk.Start.Add(time.Hour)
			}
			exo.Changes = append(exo.Changes, forecast.Event{Start: tk.Start.UTC(), End: end.UTC(), Category: "change"})
			o.Changes++
		}
		if o.Changes > 0 {
			refs["tickets:"+store.Change] = true
		}
		for _, e := range events {
			if len(e.Services) == 0 {
				o.Events++
				refs["events:"+e.Calendar] = true
				continue
			}
			if slices.Contains(e.Services, o.Service) {
				r.Events = append(r.Events, toEvents(e)...)
				o.Events++
				refs["events:"+e.Calendar] = true
			}
		}
		if len(exo.Upstream) > 0 || exo.Transactions != nil || len(exo.Funnel) > 0 || exo.Incidents != nil || len(exo.Changes) > 0 {
			r.Exo = exo
		}
		o.Refs = slices.Sorted(maps.Keys(refs))
		r.Refs = o.Refs
		ex.Series = append(ex.Series, r)
		origins[o.Name] = o
	}
	sort.Slice(ex.Series, func(i, j int) bool { return ex.Series[i].Name < ex.Series[j].Name })
	s.mu.Lock()
	s.origins = origins
	s.mu.Unlock()
	return ex, nil
}

// toEvents turns a calendar occurrence into forecast events, one per
// category (an instant lasts an hour, as a premiere or a launch does).
func toEvents(e store.Event) []forecast.Event {
	end := e.End
	if !end.After(e.Start) {
		end = e.Start.Add(time.Hour)
	}
	cats := e.Categories
	if len(cats) == 0 {
		cats = []string{"event"}
	}
	var out []forecast.Event
	for _, c := range cats {
		c = strings.Map(func(r rune) rune {
			if r == ' ' || r == '/' || r == ',' {
				return '_'
			}
			return r
		}, strings.ToLower(strings.TrimSpace(c)))
		if c == "" {
			c = "event"
		}
		out = append(out, forecast.Event{Start: e.Start.UTC(), End: end.UTC(), Category: c})
	}
	return out
}

// sumOnGrid puts the 1-minute points of the series ids on the grid of n
// steps of stepMs from g0: each step is the mean of its minutes, summed
// over the series (NaN where none has a value).
func sumOnGrid(pts map[int64][]store.Point, ids []int64, g0, stepMs int64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	sum := make([]float64, n)
	cnt := make([]int, n)
	for _, id := range ids {
		clear(sum)
		clear(cnt)
		for _, p := range pts[id] {
			i := int((p.T - g0) / stepMs)
			if p.T < g0 || i >= n {
				continue
			}
			sum[i] += p.V
			cnt[i]++
		}
		for i := range out {
			if cnt[i] == 0 {
				continue
			}
			if math.IsNaN(out[i]) {
				out[i] = 0
			}
			out[i] += sum[i] / float64(cnt[i])
		}
	}
	return out
}

func floorMs(t, step int64) int64 {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}

func meanKnown(v []float64) float64 {
	var s float64
	k := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			s += x
			k++
		}
	}
	if k == 0 {
		return 0
	}
	return s / float64(k)
}

func anyKnown(v []float64) bool {
	for _, x := range v {
		if !math.IsNaN(x) {
			return true
		}
	}
	return false
}
