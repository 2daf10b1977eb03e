package sim

import (
	"math"
	"time"

	"github.com/lbsys/lbsys/internal/control"
)

// Results is what `lbsys sim` writes to results.json: the scenario, and per
// policy the totals, the per-minute series and the incidents. It holds no
// wall-clock reading, so the same seed and scenario give the same bytes.
type Results struct {
	// Scenario and Description are the scenario's name and text.
	Scenario    string `json:"scenario"`
	Description string `json:"description,omitempty"`
	// Seed is the seed every policy ran with.
	Seed uint64 `json:"seed"`
	// Start is the calendar time of the first instant; DurationS the
	// simulated span; WindowS the length of a "minute" of the series.
	Start     time.Time `json:"start"`
	DurationS float64   `json:"duration_s"`
	WindowS   float64   `json:"window_s"`
	// Services describe the services, in the order of every per-service
	// list below.
	Services []ServiceInfo `json:"services"`
	// Policies are the runs, in the order asked for.
	Policies []*PolicyResult `json:"policies"`
}

// ServiceInfo describes a service's objective in the results.
type ServiceInfo struct {
	// Name of the service.
	Name string `json:"name"`
	// SLOP99Ms and SLOErrorRate are its objective.
	SLOP99Ms     float64 `json:"slo_p99_ms"`
	SLOErrorRate float64 `json:"slo_error_rate"`
	// InitialReplicas at the start; Autoscaled when an HPA runs it.
	InitialReplicas int  `json:"initial_replicas"`
	Autoscaled      bool `json:"autoscaled,omitempty"`
}

// PolicyResult is one policy's run.
type PolicyResult struct {
	// Policy is the balancing policy's name.
	Policy string `json:"policy"`
	// Control is the control in the loop: reactive (the autoscaler
	// alone), predictive, oracle, holt_winters or hourly.
	Control string `json:"control,omitempty"`
	// Directives is the number of directive versions applied; NACKs the
	// sections proxies refused; ControlNotes the controller's remarks.
	Directives   int      `json:"directives,omitempty"`
	NACKs        int      `json:"nacks,omitempty"`
	ControlNotes []string `json:"control_notes,omitempty"`
	// Events is, per announced event in the run, when the capacity its
	// peak needs was ready.
	Events []EventReadiness `json:"events,omitempty"`
	// CacheEvents are, per announced event in the run and cached
	// service, the proxies' cache hit ratio in the event's first minute.
	CacheEvents []CacheEventResult `json:"cache_events,omitempty"`
	// Totals are over the whole run and every service.
	Totals Totals `json:"totals"`
	// Services are per service, in Results.Services order.
	Services []ServiceTotals `json:"services"`
	// Incidents are runs of SLO-violation minutes, in the order they ended.
	Incidents []Incident `json:"incidents"`
	// Minutes is the per-window series.
	Minutes []Minute `json:"minutes"`
}

// Totals are over the whole run and every service. Requests count every
// proxy-level request (downstream calls included); latency is from the
// proxy receiving the request to its final answer, retries included.
type Totals struct {
	// Requests answered, and of them: OK (below 500), Errors (5xx and
	// transport failures), Sheds (refused by admission control, 503),
	// Timeouts (past the proxy's deadline, 504).
	Requests int64 `json:"requests"`
	OK       int64 `json:"ok"`
	Errors   int64 `json:"errors"`
	Sheds    int64 `json:"sheds"`
	Timeouts int64 `json:"timeouts"`
	// Unfinished were still in flight when the run ended.
	Unfinished int64 `json:"unfinished"`
	// Retries are the proxies' retries; BudgetExhausted the retries the
	// budget refused; ClientRetries the sessions' repeats of a failed step.
	Retries         int64 `json:"retries"`
	BudgetExhausted int64 `json:"retry_budget_exhausted"`
	ClientRetries   int64 `json:"client_retries"`
	// Sessions started, Checkouts completed, DropOffs (sessions that left
	// on an error or a slow answer).
	Sessions  int64 `json:"sessions"`
	Checkouts int64 `json:"checkouts"`
	DropOffs  int64 `json:"drop_offs"`
	// LostCheckouts are the drop-offs of sessions whose path would have
	// reached the checkout: orders lost to errors and slow answers.
	LostCheckouts int64 `json:"lost_checkouts"`
	// Latency over every request of every service, in ms.
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p99_9_ms"`
	MeanMs float64 `json:"mean_ms"`
	// ViolationMinutes sums every service's SLO-violation minutes;
	// AnyViolationMinutes counts minutes in which at least one service
	// violated its SLO; Incidents counts the incidents.
	ViolationMinutes    int `json:"slo_violation_minutes"`
	AnyViolationMinutes int `json:"any_violation_minutes"`
	Incidents           int `json:"incidents"`
	// ReplicaHours is what the replicas ran (from scheduling to the end of
	// their drain); Cost is that times each service's price.
	ReplicaHours float64 `json:"replica_hours"`
	Cost         float64 `json:"cost"`
	// Events is the number of simulation events processed.
	Events uint64 `json:"events"`
	// TraceGapMinutes are the windows inside gaps of a replayed trace.
	TraceGapMinutes int `json:"trace_gap_minutes,omitempty"`
}

// ServiceTotals are one service's totals (fields as in Totals).
type ServiceTotals struct {
	Name     string `json:"name"`
	Requests int64  `json:"requests"`
	OK       int64  `json:"ok"`
	Errors   int64  `json:"errors"`
	Sheds    int64  `json:"sheds"`
	Timeouts int64  `json:"timeouts"`
	Retries  int64  `json:"retries"`
	// ErrorRate is (errors + sheds + timeouts) / requests.
	ErrorRate float64 `json:"error_rate"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p99_9_ms"`
	MeanMs    float64 `json:"mean_ms"`
	// MeanQueueWaitMs is the exact mean wait for a worker, over every
	// start of service (0 for those that found a worker free).
	MeanQueueWaitMs  float64 `json:"mean_queue_wait_ms"`
	ViolationMinutes int     `json:"slo_violation_minutes"`
	ReplicaHours     float64 `json:"replica_hours"`
	Cost             float64 `json:"cost"`
	// MaxReplicas is the most replicas ready at a window's end.
	MaxReplicas int `json:"max_replicas"`
	// Cache is the proxies' response cache of the service (absent: not
	// cached).
	Cache *CacheTotals `json:"cache,omitempty"`
}

// CacheTotals are the proxies' response cache of one service over a run,
// all proxies together.
type CacheTotals struct {
	// Lookups are the requests of the cached classes; of them Hits were
	// answered fresh from a store, Collapsed waited for another request's
	// fetch of the same key, Misses fetched from a backend.
	Lookups   int64 `json:"lookups"`
	Hits      int64 `json:"hits"`
	Collapsed int64 `json:"collapsed"`
	Misses    int64 `json:"misses"`
	// HitRatio is Hits / Lookups (collapsed requests are not hits: they
	// wait for the origin, RFC 9211's fwd=uri-miss; collapsed).
	HitRatio float64 `json:"hit_ratio"`
	// WarmHits are hits on entries a warm fetch stored.
	WarmHits int64 `json:"warm_hits"`
	// WarmFetches are the warm fetches sent; WarmStored and WarmFailed
	// their outcomes; WarmSkipped the warm paths already fresh or in
	// flight (no fetch); WarmDropped those past the queue or of no page
	// of the cache.
	WarmFetches int64 `json:"warm_fetches"`
	WarmStored  int64 `json:"warm_stored"`
	WarmFailed  int64 `json:"warm_failed"`
	WarmSkipped int64 `json:"warm_skipped"`
	WarmDropped int64 `json:"warm_dropped"`
	// BackendSaved is the backend requests the cache spared: hits and
	// collapsed requests, less the warm fetches it made.
	BackendSaved int64 `json:"backend_saved"`
	// Evictions are entries the stores evicted for room.
	Evictions int64 `json:"evictions"`
}

// CacheEventResult is a cached service's hit ratio in the first minute of
// an announced event: when its featured pages turn hot.
type CacheEventResult struct {
	Service  string    `json:"service"`
	Category string    `json:"category"`
	Name     string    `json:"name,omitempty"`
	Start    time.Time `json:"start"`
	// Featured is the number of pages the event features in the cache's
	// key space.
	Featured int `json:"featured,omitempty"`
	// Lookups and Hits over [start, start+1m), all proxies.
	Lookups  int64   `json:"lookups"`
	Hits     int64   `json:"hits"`
	HitRatio float64 `json:"hit_ratio"`
}

// Minute is one window (a minute by default) of the run.
type Minute struct {
	// Minute is the window's index from the start.
	Minute int `json:"minute"`
	// OfferedRPS is the load curve's mean over the window.
	OfferedRPS float64 `json:"offered_rps"`
	// Sessions started, Checkouts completed, DropOffs in the window.
	Sessions  int64 `json:"sessions,omitempty"`
	Checkouts int64 `json:"checkouts,omitempty"`
	DropOffs  int64 `json:"drop_offs,omitempty"`
	// TraceGap marks a window inside a gap of the replayed trace.
	TraceGap bool `json:"trace_gap,omitempty"`
	// Services are per service, in Results.Services order.
	Services []ServiceMinute `json:"services"`
}

// ServiceMinute is one service's window (counts and latency as in Totals).
type ServiceMinute struct {
	Service  string  `json:"service"`
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	Sheds    int64   `json:"sheds"`
	Timeouts int64   `json:"timeouts"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p99_9_ms"`
	// ErrorRate is (errors + sheds + timeouts) / requests.
	ErrorRate float64 `json:"error_rate"`
	// GoodputRPS is successful answers per second.
	GoodputRPS float64 `json:"goodput_rps"`
	// UtilMean and UtilSpread are the mean and the max − min of the
	// replicas' CPU utilisation over the window (replicas up at least half
	// of it).
	UtilMean   float64 `json:"util_mean"`
	UtilSpread float64 `json:"util_spread"`
	// Replicas ready at the window's end.
	Replicas int `json:"replicas"`
	// Violation: p99 above the SLO or error rate above its limit.
	Violation bool `json:"violation,omitempty"`
	// OfferedRPS is the service's true expected load over the window (the
	// offered load through the service's share).
	OfferedRPS float64 `json:"offered_rps,omitempty"`
	// CacheLookups and CacheHits are the proxies' cache over the window
	// (cached services only).
	CacheLookups int64 `json:"cache_lookups,omitempty"`
	CacheHits    int64 `json:"cache_hits,omitempty"`
	// Floor is the replica minimum a controller's directive held at the
	// window's end; ExpectedRPS and ExpectedUpper what the controller
	// expected for the window (its forecast line and upper band).
	Floor         int     `json:"floor,omitempty"`
	ExpectedRPS   float64 `json:"expected_rps,omitempty"`
	ExpectedUpper float64 `json:"expected_upper,omitempty"`
}

// Incident is a run of consecutive SLO-violation minutes of one service.
type Incident struct {
	// Service in violation.
	Service string `json:"service"`
	// StartMinute is the first window; Minutes the run's length.
	StartMinute int `json:"start_minute"`
	Minutes     int `json:"minutes"`
	// WorstP99Ms and WorstErrors are the worst window's figures.
	WorstP99Ms  float64 `json:"worst_p99_ms"`
	WorstErrors float64 `json:"worst_error_rate"`
}

// collector accumulates the metrics of one run.
type collector struct {
	s       *Sim
	svcs    []svcAcc
	global  Minute
	totals  Totals
	minutes []Minute
	open    []*Incident // per service, the incident in progress
	incs    []Incident
	lastAt  int64
	prevAt  int64 // the start of the last closed window
	minIdx  int
	// cacheEvents are the announced events' first-minute cache figures.
	cacheEvents []CacheEventResult
}

type svcAcc struct {
	// curServed and curStartups accumulate the open window; served,
	// startups and endpoints are the last closed one's (for the loop).
	curServed   int64
	totServed   int64
	capSamples  []float64 // per window: answers/s over summed utilisation
	curStartups []int64
	served      int64
	startups    []int64
	endpoints   []control.EndpointMinute
	cur         hist
	total       hist
	m           ServiceMinute
	t           ServiceTotals
	waitSum     float64
	waitN       int64
	maxReps     int

	// The proxies' cache of the service (proxycache.go), over the run;
	// prev* are the counts at the last window's end.
	cacheLookups, cacheHits, cacheMisses, cacheCollapsed, cacheWarmHits int64
	warmFetches, warmStored, warmFailed, warmSkipped, warmDropped       int64
	prevLookups, prevHits                                               int64
}

func newCollector(s *Sim) *collector {
	c := &collector{s: s, svcs: make([]svcAcc, len(s.services)), open: make([]*Incident, len(s.services))}
	for i, svc := range s.services {
		c.svcs[i].t.Name = svc.name
		c.svcs[i].m.Service = svc.name
	}
	return c
}

func (c *collector) wait(svc *service, d int64) {
	a := &c.svcs[svc.idx]
	a.waitSum += float64(d)
	a.waitN++
}

func (c *collector) retry(svc *service) {
	c.svcs[svc.idx].t.Retries++
	c.totals.Retries++
}

func (c *collector) budgetExhausted(*service) { c.totals.BudgetExhausted++ }
func (c *collector) startup(svc *service, d int64) {
	a := &c.svcs[svc.idx]
	a.curStartups = append(a.curStartups, d)
}
func (c *collector) sessionStart() { c.global.Sessions++ }
func (c *collector) checkout()     { c.global.Checkouts++ }
func (c *collector) dropOff()      { c.global.DropOffs++ }
func (c *collector) lostCheckout() { c.totals.LostCheckouts++ }
func (c *collector) clientRetry()  { c.totals.ClientRetries++ }

// request records a proxy-level request's final answer.
func (c *collector) request(r *request, now int64) {
	a := &c.svcs[r.route.svc.idx]
	a.cur.record(now - r.proxyStart)
	m := &a.m
	m.Requests++
	switch {
	case r.shed:
		m.Sheds++
	case r.fail == failTimeout:
		m.Timeouts++
	case r.fail != failNone || r.status >= 500:
		m.Errors++
	default:
		m.OK++
	}
}

// finite maps NaN and infinities to 0 (JSON has no NaN).
func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func ms(ns float64) float64 { return math.Round(ns/1e3) / 1e3 }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// minute closes the minute window ending at now and returns its row
// (nil when the window is empty).
func (c *collector) minute(now int64) *Minute {
	s := c.s
	from := c.lastAt
	if now <= from {
		return nil
	}
	span := float64(now-from) / 1e9
	row := c.global
	row.Minute = c.minIdx
	row.OfferedRPS = round(s.rc.mean(from, now), 3)
	row.TraceGap = s.sc.Load.Trace != nil && s.rc.inGap((from+now)/2)
	if row.TraceGap {
		c.totals.TraceGapMinutes++
	}
	row.Services = make([]ServiceMinute, len(c.svcs))
	anyViol := false
	for i := range c.svcs {
		a := &c.svcs[i]
		svc := s.services[i]
		m := a.m
		m.P50Ms = ms(a.cur.quantile(0.50))
		m.P99Ms = ms(a.cur.quantile(0.99))
		m.P999Ms = ms(a.cur.quantile(0.999))
		if m.Requests > 0 {
			m.ErrorRate = round(float64(m.Errors+m.Sheds+m.Timeouts)/float64(m.Requests), 5)
		}
		m.GoodputRPS = round(float64(m.OK)/span, 3)
		// Utilisation of the replicas up at least half the minute.
		lo, hi, sum, n := math.Inf(1), math.Inf(-1), 0.0, 0
		ready := 0
		a.endpoints = a.endpoints[:0]
		for _, r := range svc.reps {
			if r.state == repReady {
				ready++
			}
			busy := r.busyUntil(now)
			if r.up() && now-max(r.upSince, from) >= (now-from)/2 {
				up := float64(now - max(from, r.upSince))
				u := float64(busy-r.mBusy) / (float64(r.workers) * up)
				lo, hi, sum = math.Min(lo, u), math.Max(hi, u), sum+u
				n++
				if s.loop != nil {
					a.endpoints = append(a.endpoints, control.EndpointMinute{ID: r.name, ServedRPS: float64(r.mServed) / up * 1e9, Util: u})
				}
			}
			r.mBusy, r.mAt, r.mServed = busy, now, 0
		}
		a.served, a.curServed = a.curServed, 0
		a.totServed += a.served
		if n > 0 && sum/float64(n) >= 0.2 && sum/float64(n) <= 0.9 && a.served > 0 {
			a.capSamples = append(a.capSamples, float64(a.served)/span/sum)
		}
		a.startups, a.curStartups = append(a.startups[:0], a.curStartups...), a.curStartups[:0]
		m.OfferedRPS = round(row.OfferedRPS*s.shares[svc.name], 3)
		if l := s.loop; l != nil {
			m.Floor = svc.floorNow()
			m.ExpectedRPS = finite(round(l.expected[svc.name], 3))
			m.ExpectedUpper = finite(round(l.upper[svc.name], 3))
		}
		if n > 0 {
			m.UtilMean = round(sum/float64(n), 4)
			m.UtilSpread = round(hi-lo, 4)
		}
		m.Replicas = ready
		a.maxReps = max(a.maxReps, ready)
		m.CacheLookups, m.CacheHits = a.cacheLookups-a.prevLookups, a.cacheHits-a.prevHits
		a.prevLookups, a.prevHits = a.cacheLookups, a.cacheHits
		slo := svc.spec.SLO
		m.Violation = m.Requests > 0 && (m.P99Ms > float64(slo.P99)/1e6 || m.ErrorRate > slo.ErrorRate)
		if m.Violation {
			anyViol = true
			a.t.ViolationMinutes++
			inc := c.open[i]
			if inc == nil {
				inc = &Incident{Service: svc.name, StartMinute: c.minIdx}
				c.open[i] = inc
			}
			inc.Minutes++
			inc.WorstP99Ms = math.Max(inc.WorstP99Ms, m.P99Ms)
			inc.WorstErrors = math.Max(inc.WorstErrors, m.ErrorRate)
		} else if inc := c.open[i]; inc != nil {
			c.incs = append(c.incs, *inc)
			c.open[i] = nil
		}
		// Roll the minute into the totals.
		t := &a.t
		t.Requests += m.Requests
		t.OK += m.OK
		t.Errors += m.Errors
		t.Sheds += m.Sheds
		t.Timeouts += m.Timeouts
		a.total.merge(&a.cur)
		a.cur.reset()
		row.Services[i] = m
		a.m = ServiceMinute{Service: svc.name}
	}
	if anyViol {
		c.totals.AnyViolationMinutes++
	}
	c.totals.Sessions += row.Sessions
	c.totals.Checkouts += row.Checkouts
	c.totals.DropOffs += row.DropOffs
	c.minutes = append(c.minutes, row)
	c.global = Minute{}
	c.prevAt, c.lastAt = from, now
	c.minIdx++
	return &c.minutes[len(c.minutes)-1]
}

// finish closes the last (partial) minute and the open incidents, and
// computes the replica-hours.
func (c *collector) finish(now int64) {
	if now > c.lastAt {
		c.minute(now)
	}
	for i, inc := range c.open {
		if inc != nil {
			c.incs = append(c.incs, *inc)
			c.open[i] = nil
		}
	}
	s := c.s
	for i, svc := range s.services {
		hours := 0.0
		for _, r := range svc.reps {
			if r.billStart < 0 {
				continue
			}
			end := r.billEnd
			if end < 0 || end > now {
				end = now
			}
			hours += float64(end-r.billStart) / float64(time.Hour)
		}
		c.svcs[i].t.ReplicaHours = round(hours, 4)
		c.svcs[i].t.Cost = round(hours*svc.spec.PricePerHour, 4)
	}
}

// result assembles the policy's result.
func (c *collector) result() *PolicyResult {
	s := c.s
	pr := &PolicyResult{Policy: s.policy, Minutes: c.minutes, Incidents: c.incs}
	for _, e := range c.cacheEvents {
		if e.Lookups > 0 {
			e.HitRatio = round(float64(e.Hits)/float64(e.Lookups), 4)
		}
		pr.CacheEvents = append(pr.CacheEvents, e)
	}
	if pr.Incidents == nil {
		pr.Incidents = []Incident{}
	}
	var all hist
	t := c.totals
	for i := range c.svcs {
		a := &c.svcs[i]
		st := a.t
		h := &a.total
		st.P50Ms, st.P99Ms, st.P999Ms = ms(h.quantile(0.5)), ms(h.quantile(0.99)), ms(h.quantile(0.999))
		st.MeanMs = ms(h.mean())
		if a.waitN > 0 {
			st.MeanQueueWaitMs = round(a.waitSum/float64(a.waitN)/1e6, 6)
		}
		if st.Requests > 0 {
			st.ErrorRate = round(float64(st.Errors+st.Sheds+st.Timeouts)/float64(st.Requests), 6)
		}
		st.MaxReplicas = a.maxReps
		if svc := s.services[i]; svc.ks != nil {
			ct := &CacheTotals{Lookups: a.cacheLookups, Hits: a.cacheHits, Collapsed: a.cacheCollapsed, Misses: a.cacheMisses,
				WarmHits: a.cacheWarmHits, WarmFetches: a.warmFetches, WarmStored: a.warmStored, WarmFailed: a.warmFailed,
				WarmSkipped: a.warmSkipped, WarmDropped: a.warmDropped, BackendSaved: a.cacheHits + a.cacheCollapsed - a.warmFetches}
			if ct.Lookups > 0 {
				ct.HitRatio = round(float64(ct.Hits)/float64(ct.Lookups), 4)
			}
			for _, px := range s.proxies {
				ct.Evictions += px.caches[i].st.evicted
			}
			st.Cache = ct
		}
		all.merge(h)
		t.Requests += st.Requests
		t.OK += st.OK
		t.Errors += st.Errors
		t.Sheds += st.Sheds
		t.Timeouts += st.Timeouts
		t.ViolationMinutes += st.ViolationMinutes
		t.ReplicaHours += st.ReplicaHours
		t.Cost += st.Cost
		pr.Services = append(pr.Services, st)
	}
	t.ReplicaHours = round(t.ReplicaHours, 4)
	t.Cost = round(t.Cost, 4)
	t.P50Ms, t.P99Ms, t.P999Ms = ms(all.quantile(0.5)), ms(all.quantile(0.99)), ms(all.quantile(0.999))
	t.MeanMs = ms(all.mean())
	t.Incidents = len(c.incs)
	t.Unfinished = int64(s.requests) - t.Requests
	t.Events = s.eng.events
	pr.Totals = t
	return pr
}
