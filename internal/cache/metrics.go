package cache

import (
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbsys/lbsys/internal/cache/rfc9111"
)

// Metric names, following internal/telemetry's conventions (lbsys_ prefix,
// _total for counters, base units). Exported so that dashboards and tests
// use the same strings; phase 2 may move them into internal/telemetry.
const (
	MetricHits          = "lbsys_cache_hits_total"
	MetricMisses        = "lbsys_cache_misses_total"
	MetricStale         = "lbsys_cache_stale_served_total"
	MetricRevalidations = "lbsys_cache_revalidations_total"
	MetricCoalesced     = "lbsys_cache_coalesced_total"
	MetricBypass        = "lbsys_cache_bypass_total"
	MetricStores        = "lbsys_cache_stores_total"
	MetricNotStored     = "lbsys_cache_not_stored_total"
	MetricInvalidations = "lbsys_cache_invalidations_total"
	MetricWarmFetches   = "lbsys_cache_warm_fetches_total"
	MetricWarmHits      = "lbsys_cache_warm_hits_total"
	MetricEvictions     = "lbsys_cache_evictions_total"
	MetricPurged        = "lbsys_cache_purged_total"
	MetricBytes         = "lbsys_cache_bytes"
	MetricMaxBytes      = "lbsys_cache_max_bytes"
	MetricObjects       = "lbsys_cache_objects"

	labelRoute  = "route"
	labelReason = "reason"
	labelResult = "result"
	labelCause  = "cause"
)

// Label values of the counters with a second label. Every request a route
// sees ends in exactly one of: hit, stale (any reason), miss, revalidation
// (any result), coalesced served, or bypass; coalesced fallbacks then count
// once more as the miss they became.
var (
	staleReasons       = [...]string{"while_revalidate", "if_error", "max_stale"}
	revalidateResults  = [...]string{"not_modified", "modified", "failed"}
	coalesceResults    = [...]string{"served", "timeout", "overflow", "unusable"}
	bypassReasons      = [...]string{"method", "authorization", "upgrade", "range", "conditional", "only_if_cached"}
	warmResults        = [...]string{"stored", "not_stored", "fresh", "failed", "dropped"}
	notStoredReasons   = [...]string{rfc9111.ReasonMethod, rfc9111.ReasonStatus, rfc9111.ReasonNoStore, rfc9111.ReasonPrivate, rfc9111.ReasonAuthorization, rfc9111.ReasonSetCookie, rfc9111.ReasonVaryStar, rfc9111.ReasonVaryTooMany, rfc9111.ReasonNotCacheable, rfc9111.ReasonNoFreshness, rfc9111.ReasonTooLarge, rfc9111.ReasonTrailer, reasonIncomplete, reasonRequestNoStore}
	evictionCauses     = [...]string{"size", "expired"}
	notStoredReasonIdx = func() map[string]int {
		m := map[string]int{}
		for i, r := range notStoredReasons {
			m[r] = i
		}
		return m
	}()
)

const (
	reasonIncomplete     = "incomplete"       // the body ended early or the client went away
	reasonRequestNoStore = "request-no-store" // the request said no-store
)

// Indexes into the arrays above.
const (
	staleWhileRevalidate = iota
	staleIfError
	staleMaxStale
)

const (
	revalNotModified = iota
	revalModified
	revalFailed
)

const (
	coalesceServed = iota
	coalesceTimeout
	coalesceOverflow
	coalesceUnusable
)

const (
	bypassMethod = iota
	bypassAuthorization
	bypassUpgrade
	bypassRange
	bypassConditional
	bypassOnlyIfCached
)

const (
	warmStored = iota
	warmNotStored
	warmFresh
	warmFailed
	warmDropped
)

// routeStats are one route's counters: plain atomics, so that a hit costs
// one atomic add.
type routeStats struct {
	hits, misses, stores, invalidations, warmHits atomic.Uint64
	stale                                         [len(staleReasons)]atomic.Uint64
	revalidations                                 [len(revalidateResults)]atomic.Uint64
	coalesced                                     [len(coalesceResults)]atomic.Uint64
	bypass                                        [len(bypassReasons)]atomic.Uint64
	notStored                                     [len(notStoredReasons)]atomic.Uint64
	warm                                          [len(warmResults)]atomic.Uint64
}

func (s *routeStats) countNotStored(reason string) {
	if i, ok := notStoredReasonIdx[reason]; ok {
		s.notStored[i].Add(1)
	}
}

// Metrics are the cache's counters and gauges. It is a
// prometheus.Collector: register it once (reg.MustRegister(m)); counters
// survive configuration reloads because routes find theirs by name.
type Metrics struct {
	mu     sync.Mutex
	routes map[string]*routeStats

	evictions [len(evictionCauses)]atomic.Uint64
	purged    atomic.Uint64
	gauges    atomic.Pointer[func() (bytes, max, objects uint64)]

	descHits, descMisses, descStale, descReval, descCoalesced, descBypass, descStores,
	descNotStored, descInval, descWarm, descWarmHits, descEvictions, descPurged,
	descBytes, descMaxBytes, descObjects *prometheus.Desc
}

// NewMetrics returns the cache's metrics, unregistered.
func NewMetrics() *Metrics {
	r := []string{labelRoute}
	return &Metrics{
		routes:        map[string]*routeStats{},
		descHits:      prometheus.NewDesc(MetricHits, "Requests served from the cache with a fresh response, by route.", r, nil),
		descMisses:    prometheus.NewDesc(MetricMisses, "Requests forwarded because nothing usable was stored, by route.", r, nil),
		descStale:     prometheus.NewDesc(MetricStale, "Requests served a stale stored response, by route and reason (while_revalidate, if_error, max_stale).", []string{labelRoute, labelReason}, nil),
		descReval:     prometheus.NewDesc(MetricRevalidations, "Validations of stored responses with the origin, by route and result (not_modified, modified, failed).", []string{labelRoute, labelResult}, nil),
		descCoalesced: prometheus.NewDesc(MetricCoalesced, "Requests that waited for another request's fetch, by route and result (served from it; or timeout, overflow, unusable: fetched on their own).", []string{labelRoute, labelResult}, nil),
		descBypass:    prometheus.NewDesc(MetricBypass, "Requests on a cached route that the cache did not handle, by route and reason.", []string{labelRoute, labelReason}, nil),
		descStores:    prometheus.NewDesc(MetricStores, "Responses stored, by route.", r, nil),
		descNotStored: prometheus.NewDesc(MetricNotStored, "Responses not stored, by route and reason.", []string{labelRoute, labelReason}, nil),
		descInval:     prometheus.NewDesc(MetricInvalidations, "Stored URLs invalidated by unsafe requests (RFC 9111 §4.4, Link rel=invalidates), by the route that stored them.", r, nil),
		descWarm:      prometheus.NewDesc(MetricWarmFetches, "Warm requests from directives' cache.warm lists, by route and result (stored, not_stored, fresh: already fresh, failed, dropped: queue full).", []string{labelRoute, labelResult}, nil),
		descWarmHits:  prometheus.NewDesc(MetricWarmHits, "Hits on responses that warming stored, by route.", r, nil),
		descEvictions: prometheus.NewDesc(MetricEvictions, "Stored URLs removed by the cache itself, by cause (size: W-TinyLFU under the byte budget; expired: past any use).", []string{labelCause}, nil),
		descPurged:    prometheus.NewDesc(MetricPurged, "Stored URLs removed by purge requests.", nil, nil),
		descBytes:     prometheus.NewDesc(MetricBytes, "Bytes held by stored responses (bodies, headers and bookkeeping).", nil, nil),
		descMaxBytes:  prometheus.NewDesc(MetricMaxBytes, "The cache's byte budget (max_bytes).", nil, nil),
		descObjects:   prometheus.NewDesc(MetricObjects, "Stored URLs (each with up to max_variants responses).", nil, nil),
	}
}

// route returns the counters of a route, creating them once.
func (m *Metrics) route(name string) *routeStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.routes[name]
	if s == nil {
		s = &routeStats{}
		m.routes[name] = s
	}
	return s
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.descHits, m.descMisses, m.descStale, m.descReval, m.descCoalesced,
		m.descBypass, m.descStores, m.descNotStored, m.descInval, m.descWarm, m.descWarmHits, m.descEvictions,
		m.descPurged, m.descBytes, m.descMaxBytes, m.descObjects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	m.mu.Lock()
	names := make([]string, 0, len(m.routes))
	for n := range m.routes {
		names = append(names, n)
	}
	stats := make([]*routeStats, len(names))
	sort.Strings(names)
	for i, n := range names {
		stats[i] = m.routes[n]
	}
	m.mu.Unlock()
	for i, n := range names {
		s := stats[i]
		counter(m.descHits, s.hits.Load(), n)
		counter(m.descMisses, s.misses.Load(), n)
		counter(m.descStores, s.stores.Load(), n)
		counter(m.descInval, s.invalidations.Load(), n)
		counter(m.descWarmHits, s.warmHits.Load(), n)
		for j, r := range staleReasons {
			counter(m.descStale, s.stale[j].Load(), n, r)
		}
		for j, r := range revalidateResults {
			counter(m.descReval, s.revalidations[j].Load(), n, r)
		}
		for j, r := range coalesceResults {
			counter(m.descCoalesced, s.coalesced[j].Load(), n, r)
		}
		for j, r := range bypassReasons {
			counter(m.descBypass, s.bypass[j].Load(), n, r)
		}
		for j, r := range notStoredReasons {
			counter(m.descNotStored, s.notStored[j].Load(), n, r)
		}
		for j, r := range warmResults {
			counter(m.descWarm, s.warm[j].Load(), n, r)
		}
	}
	for j, c := range evictionCauses {
		counter(m.descEvictions, m.evictions[j].Load(), c)
	}
	counter(m.descPurged, m.purged.Load())
	if g := m.gauges.Load(); g != nil {
		b, max, o := (*g)()
		ch <- prometheus.MustNewConstMetric(m.descBytes, prometheus.GaugeValue, float64(b))
		ch <- prometheus.MustNewConstMetric(m.descMaxBytes, prometheus.GaugeValue, float64(max))
		ch <- prometheus.MustNewConstMetric(m.descObjects, prometheus.GaugeValue, float64(o))
	}
}

// RouteStats is a snapshot of one route's counters, for the admin status
// page and tests.
type RouteStats struct {
	Hits, Misses, Stores, Invalidations, WarmHits uint64
	Stale                                         map[string]uint64 // by reason
	Revalidations                                 map[string]uint64 // by result
	Coalesced                                     map[string]uint64 // by result
	Bypass                                        map[string]uint64 // by reason
	NotStored                                     map[string]uint64 // by reason
	Warm                                          map[string]uint64 // by result
}

// Route returns a snapshot of a route's counters (zero if the route never
// existed).
func (m *Metrics) Route(name string) RouteStats {
	s := m.route(name)
	snap := func(names []string, vals []atomic.Uint64) map[string]uint64 {
		out := make(map[string]uint64, len(names))
		for i, n := range names {
			if v := vals[i].Load(); v > 0 {
				out[n] = v
			}
		}
		return out
	}
	return RouteStats{
		Hits: s.hits.Load(), Misses: s.misses.Load(), Stores: s.stores.Load(),
		Invalidations: s.invalidations.Load(), WarmHits: s.warmHits.Load(),
		Stale:         snap(staleReasons[:], s.stale[:]),
		Revalidations: snap(revalidateResults[:], s.revalidations[:]),
		Coalesced:     snap(coalesceResults[:], s.coalesced[:]),
		Bypass:        snap(bypassReasons[:], s.bypass[:]),
		NotStored:     snap(notStoredReasons[:], s.notStored[:]),
		Warm:          snap(warmResults[:], s.warm[:]),
	}
}

// Evictions returns the evictions so far by cause ("size", "expired").
func (m *Metrics) Evictions() map[string]uint64 {
	return map[string]uint64{"size": m.evictions[0].Load(), "expired": m.evictions[1].Load()}
}

// Purged returns the URLs removed by purges so far.
func (m *Metrics) Purged() uint64 { return m.purged.Load() }
