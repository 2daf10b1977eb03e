package planner

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// Cache warming (issue #15): which paths a service's proxies should fetch
// into their response cache before a peak, and when.
//
// Where the paths come from:
//
//   - announced events name what they feature (the calendar's
//     X-LBSYS-WARM: a sale's product pages). Those pages are cold before
//     the event — nobody asked for them — and every client of the event's
//     first minute would otherwise wait for the origin, each page missing
//     once per proxy, exactly when the origin is busiest;
//   - the cache's own hot keys (its most requested entries) before an
//     ordinary forecast peak — one that no announced event with featured
//     paths explains — so that entries which expire just before it are
//     fresh again; the list is kept as it was for the same peak.
//
// When: the warm list is part of the directive from lead before the event
// (the proxies fetch it when they apply it, at their warm rate, skipping
// what is already fresh), and stays while the event lasts so that later
// versions do not fetch it again (a proxy fetches a list only when it
// changes). The lead covers a planning interval, the commit and stream
// and the fetches themselves, and is kept shorter than the responses'
// freshness lifetime: a page fetched too early expires before the crowd
// arrives.

// Defaults of the cache planning options.
const (
	// DefaultMaxWarmPaths bounds a service's warm list: a directive is
	// streamed to every proxy and should stay small, and at the proxies'
	// default rate of 10 fetches a second 200 paths take 20 seconds.
	DefaultMaxWarmPaths = 200
	// DefaultWarmLead is how long before an event the list is proposed,
	// on top of the time its fetches take: a planning interval (1m), the
	// coordinator's commit and stream (seconds) and a margin.
	DefaultWarmLead = 2 * time.Minute
	// DefaultWarmRate is the proxies' default cache.warm.rate
	// (docs/config.md), used when the input gives none.
	DefaultWarmRate = 10
	// DefaultHotPeakRatio: hot keys are warmed before a forecast peak at
	// least this much above the current load; below it the cache's own
	// traffic keeps its hot entries fresh.
	DefaultHotPeakRatio = 1.5
	// DefaultMaxHotKeys bounds the hot keys in a list.
	DefaultMaxHotKeys = 50
	// DefaultHintAfterStart is how long into an event a TTL hint keeps
	// the warmed responses fresh: its first minutes are when a cold cache
	// would miss; afterwards the crowd's own requests keep them fresh.
	DefaultHintAfterStart = 5 * time.Minute
)

// CacheOptions tune the warm lists; a zero field takes its default.
type CacheOptions struct {
	MaxWarmPaths   int           `json:"max_warm_paths"`
	WarmLead       time.Duration `json:"warm_lead"`
	HotPeakRatio   float64       `json:"hot_peak_ratio"`
	MaxHotKeys     int           `json:"max_hot_keys"`
	HintAfterStart time.Duration `json:"hint_after_start"`
}

// WithDefaults returns o with every zero field set to its default, and
// MaxWarmPaths within the directive schema's bound.
func (o CacheOptions) WithDefaults() CacheOptions {
	if o.MaxWarmPaths <= 0 {
		o.MaxWarmPaths = DefaultMaxWarmPaths
	}
	o.MaxWarmPaths = min(o.MaxWarmPaths, directive.MaxWarmPaths)
	if o.WarmLead <= 0 {
		o.WarmLead = DefaultWarmLead
	}
	if !(o.HotPeakRatio > 1) || math.IsInf(o.HotPeakRatio, 0) {
		o.HotPeakRatio = DefaultHotPeakRatio
	}
	if o.MaxHotKeys <= 0 {
		o.MaxHotKeys = DefaultMaxHotKeys
	}
	if o.HintAfterStart <= 0 {
		o.HintAfterStart = DefaultHintAfterStart
	}
	return o
}

// CacheInput is what the planner knows of a service's response cache. Nil
// in Input: the proxies do not cache the service, and its section's cache
// part is left as it is.
type CacheInput struct {
	// Now is the planning instant (the planner reads no clock).
	Now time.Time
	// Prefixes are the path prefixes of the service's cached routes: a
	// path outside them would be fetched on no cached route, so it is
	// left out. Empty: every path.
	Prefixes []string
	// WarmRate is the proxies' warm fetches per second (cache.warm.rate);
	// 0: DefaultWarmRate.
	WarmRate float64
	// Freshness is how long the origin keeps the warmed responses fresh
	// (its s-maxage or max-age); 0: unknown.
	Freshness time.Duration
	// Heuristic is set when the origin gives the cached responses no
	// explicit freshness (no max-age, s-maxage or Expires: RFC 9111
	// §4.2.2's heuristic applies). Only then are TTL hints proposed: the
	// proxy would refuse to lengthen an explicit lifetime anyway, and a
	// hint nobody can apply is noise in every directive.
	Heuristic bool
	// Events are the announced events with the paths they feature that
	// concern the service, any order.
	Events []CacheEvent
	// HotKeys are the cache's most requested paths recently, most
	// requested first (empty: the cache does not tell).
	HotKeys []string
	// LoadRPS is the service's load now (rps), which a forecast peak is
	// compared with; 0: the forecast's first step.
	LoadRPS float64
	// Options tune the lists.
	Options CacheOptions
}

// CacheEvent is an announced event and what it features.
type CacheEvent struct {
	// Name is the event's title (the calendar's SUMMARY), Category its
	// category.
	Name, Category string
	// Start and End bound the event.
	Start, End time.Time
	// Paths are the request paths it features, headline first.
	Paths []string
}

// eventLabel names an event in a reason's Event field: "category start",
// the form internal/liveloop rewrites to the wall clock.
func eventLabel(category string, start time.Time) string {
	if category == "" {
		category = "event"
	}
	return category + " " + start.UTC().Format(time.RFC3339)
}

// inPrefixes reports whether path is under one of prefixes (on segment
// boundaries, as the proxy's routes match), or prefixes is empty.
func inPrefixes(path string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	p := path
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	for _, pre := range prefixes {
		if pre == "/" || p == pre || strings.HasPrefix(p, strings.TrimSuffix(pre, "/")+"/") {
			return true
		}
	}
	return false
}

// cachePlan is planCache's answer.
type cachePlan struct {
	section *directive.Cache // nil: nothing to warm now
	notes   []string
}

// planCache decides the warm list and TTL hints at in.Now. path is the
// service's merged forecast (rps), for hot keys before a forecast peak.
// cur is the cache part of the current section (nil: none).
func planCache(in *CacheInput, path []pathPoint, cur *directive.Cache) cachePlan {
	var out cachePlan
	note := func(format string, args ...any) { out.notes = append(out.notes, fmt.Sprintf(format, args...)) }
	o := in.Options.WithDefaults()
	rate := in.WarmRate
	if !(rate > 0) || math.IsInf(rate, 0) {
		rate = DefaultWarmRate
	}
	now := in.Now

	// The featured paths of each event, within the cached routes and the
	// list's bound, events by start.
	evs := append([]CacheEvent(nil), in.Events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Start.Before(evs[j].Start) })
	type due struct {
		ev    CacheEvent
		paths []string
		lead  time.Duration
	}
	var dues []due
	var list []string
	seen := map[string]bool{}
	for _, e := range evs {
		if !now.Before(e.End) || len(e.Paths) == 0 {
			continue
		}
		var ps []string
		outside := 0
		bad := 0
		for _, p := range e.Paths {
			switch {
			case seen[p]:
			case !checkWarmPath(p):
				bad++
			case !inPrefixes(p, in.Prefixes):
				outside++
			default:
				ps = append(ps, p)
			}
		}
		if bad > 0 {
			note("%d paths %s features are not request paths a directive may carry (absolute, no space or control character, at most 2048 bytes): not warmed", bad, eventLabel(e.Category, e.Start))
		}
		if outside > 0 {
			note("%d paths %s features are on no cached route of the service (prefixes %s): not warmed", outside, eventLabel(e.Category, e.Start), strings.Join(in.Prefixes, ", "))
		}
		if room := o.MaxWarmPaths - len(list); len(ps) > room {
			note("%s features %d paths; the warm list holds %d: the first %d are warmed", eventLabel(e.Category, e.Start), len(ps), o.MaxWarmPaths, max(room, 0))
			ps = ps[:max(room, 0)]
		}
		if len(ps) == 0 {
			continue
		}
		// The lead: the fetches of the whole list so far, then WarmLead;
		// no longer than keeps the first fetched response fresh through
		// the event's first minute.
		fetch := time.Duration(float64(len(list)+len(ps)) / rate * float64(time.Second))
		lead := o.WarmLead + fetch
		if f := in.Freshness; f > 0 && lead > f-time.Minute {
			lead = f - time.Minute
			if lead < fetch {
				note("%s: its %d paths take %s to fetch at %.3g/s but stay fresh only %s: warming cannot finish before the start and still hold through its first minute; not warmed",
					eventLabel(e.Category, e.Start), len(ps), fetch.Round(time.Second), rate, f)
				continue
			}
		}
		if now.Before(e.Start.Add(-lead)) {
			continue // not yet: fetched now, it would expire or churn
		}
		for _, p := range ps {
			seen[p] = true
		}
		list = append(list, ps...)
		dues = append(dues, due{e, ps, lead})
	}

	// Hot keys before an ordinary forecast peak (one no announced event
	// with featured paths explains: those lists stay as they are, since
	// hot keys move every minute and a changed list is a new version):
	// the upper band within the lead at least HotPeakRatio above the load
	// now.
	var hotPeak *pathPoint
	var hot []string
	if len(in.HotKeys) > 0 && len(path) > 0 && len(dues) == 0 {
		level := in.LoadRPS
		if !(level > 0) {
			level = path[0].rps
		}
		reach := now.Add(o.WarmLead + time.Duration(float64(min(o.MaxHotKeys, len(in.HotKeys)))/rate*float64(time.Second)))
		for i := range path {
			pt := path[i]
			if !pt.at.After(now) || pt.at.After(reach) {
				continue
			}
			if level > 0 && pt.high >= o.HotPeakRatio*level && (hotPeak == nil || pt.high > hotPeak.high) {
				hotPeak = &path[i]
			}
		}
		if hotPeak != nil {
			// A list already made for this peak stays as it was: the hot
			// keys move every minute, and a changed list is fetched again.
			if cur != nil && cur.Why != nil && cur.Why.Driver == "forecast" && cur.Why.At != nil && !cur.Why.At.Before(now) {
				for _, p := range cur.Warm {
					if !seen[p] && len(list)+len(hot) < o.MaxWarmPaths {
						hot = append(hot, p)
						seen[p] = true
					}
				}
			} else {
				for _, p := range in.HotKeys {
					if len(hot) >= o.MaxHotKeys || len(list)+len(hot) >= o.MaxWarmPaths {
						break
					}
					if !seen[p] && inPrefixes(p, in.Prefixes) && checkWarmPath(p) {
						hot = append(hot, p)
						seen[p] = true
					}
				}
			}
		}
	}
	list = append(list, hot...)
	if len(list) == 0 {
		return out
	}

	sec := &directive.Cache{Warm: list}
	fetch := time.Duration(float64(len(list)) / rate * float64(time.Second)).Round(time.Second)
	var parts []string
	r := &directive.Reason{Driver: "event"}
	for i, d := range dues {
		name := d.ev.Name
		if name == "" {
			name = d.ev.Category
		}
		parts = append(parts, fmt.Sprintf("%d paths %q (%s) features, proposed from %s (%s before it starts)", len(d.paths), name,
			eventLabel(d.ev.Category, d.ev.Start), d.ev.Start.Add(-d.lead).UTC().Format("15:04:05"), d.lead.Round(time.Second)))
		if i == 0 {
			at := d.ev.Start.UTC()
			r.Event, r.At = eventLabel(d.ev.Category, d.ev.Start), &at
			r.LoadRPS = round3(loadAt(path, d.ev.Start))
		}
	}
	if len(hot) > 0 {
		parts = append(parts, fmt.Sprintf("%d of the cache's hot keys before the forecast peak of %.4g rps at %s (≥ %.3g× the load now)",
			len(hot), round3(hotPeak.high), hotPeak.at.UTC().Format("15:04"), o.HotPeakRatio))
		if len(dues) == 0 {
			at := hotPeak.at.UTC()
			r.Driver, r.At, r.LoadRPS = "forecast", &at, round3(hotPeak.high)
		}
	}
	text := fmt.Sprintf("warm %d paths: %s; fetched at %.3g/s in about %s", len(list), strings.Join(parts, "; "), rate, fetch)
	if in.Freshness > 0 {
		text += fmt.Sprintf("; the origin keeps them fresh %s, so they are still fresh at the start", in.Freshness)
	}
	if len(dues) > 0 {
		r.ExpectedEffect = "hit ratio at the sale's start: its featured pages are answered from the cache from its first request, instead of each missing once per proxy to the origin in its first minute, when the origin is busiest"
	} else {
		r.ExpectedEffect = "hot entries fresh at the forecast peak instead of expiring into it"
	}

	// TTL hints: only where the origin leaves freshness to the cache's
	// heuristic, and only long enough to keep what was warmed fresh into
	// the event's first minutes.
	if in.Heuristic && len(dues) > 0 {
		var paths []string
		ttl := time.Duration(0)
		for _, d := range dues {
			paths = append(paths, d.paths...)
			ttl = max(ttl, d.ev.Start.Sub(now)+o.HintAfterStart)
		}
		ttl = min(max(ttl, time.Minute), directive.MaxTTLHint).Round(time.Second)
		if len(paths) <= directive.MaxTTLHints {
			for _, p := range paths {
				if i := strings.IndexByte(p, '?'); i >= 0 {
					p = p[:i] // a hint is a path prefix: the query is not part of it
				}
				if !containsHint(sec.TTLHints, p) {
					sec.TTLHints = append(sec.TTLHints, directive.TTLHint{PathPrefix: p, TTL: directive.Duration(ttl)})
				}
			}
		} else {
			p := commonPrefix(paths)
			sec.TTLHints = append(sec.TTLHints, directive.TTLHint{PathPrefix: p, TTL: directive.Duration(ttl)})
			text += fmt.Sprintf("; more featured paths than the %d hints a directive carries: one hint for their common prefix %s", directive.MaxTTLHints, p)
		}
		text += fmt.Sprintf("; TTL hints of %s (the origin sends no explicit freshness: the warmed pages stay fresh until %s into the event)", ttl, o.HintAfterStart)
	}
	r.Text = clip(text)
	sec.Why = r
	out.section = sec
	return out
}

// loadAt is the forecast's upper band at t (0: not on the path).
func loadAt(path []pathPoint, t time.Time) float64 {
	best := 0.0
	for _, p := range path {
		if !p.at.Before(t) && p.at.Before(t.Add(time.Minute)) {
			best = math.Max(best, p.high)
		}
	}
	return best
}

func containsHint(hs []directive.TTLHint, p string) bool {
	for _, h := range hs {
		if h.PathPrefix == p {
			return true
		}
	}
	return false
}

// commonPrefix is the longest path prefix, on segment boundaries, of
// every path ("/" at least).
func commonPrefix(paths []string) string {
	if len(paths) == 0 {
		return "/"
	}
	segs := func(p string) []string {
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
		return strings.Split(strings.Trim(p, "/"), "/")
	}
	common := segs(paths[0])
	for _, p := range paths[1:] {
		s := segs(p)
		n := 0
		for n < len(common) && n < len(s) && common[n] == s[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) == 0 || (len(common) == 1 && common[0] == "") {
		return "/"
	}
	return "/" + strings.Join(common, "/")
}

// checkWarmPath is the directive schema's path rule: a hot key reported by
// a cache that breaks it is left out rather than invalidate the directive.
func checkWarmPath(p string) bool {
	if p == "" || p[0] != '/' || len(p) > 2048 {
		return false
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
