package planner

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/forecast"
)

// minuteForecast is a one-horizon forecast from origin t0 in one-minute
// steps (point and upper band the same).
func minuteForecast(vals ...float64) forecast.Forecast {
	h := forecast.HorizonForecast{Steps: len(vals), Point: vals, Upper: vals}
	for i := range vals {
		h.Times = append(h.Times, t0.Add(time.Duration(i+1)*time.Minute).Format(time.RFC3339))
	}
	return forecast.Forecast{Series: "catalog", Origin: t0, Step: time.Minute, Horizons: []forecast.HorizonForecast{h}}
}

func flat(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func productPaths(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, fmt.Sprintf("/catalog/products/p%04d", i))
	}
	return out
}

// TestPlanCache: the warm list is proposed lead before an announced event
// (its featured paths on the cached routes, bounded), kept while it lasts
// and dropped after; its lead respects the origin's freshness; TTL hints
// only where the origin leaves freshness to the heuristic; hot keys before
// a forecast peak well above the load, kept as they were for the same
// peak. Every planned section validates.
func TestPlanCache(t *testing.T) {
	at := func(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }
	sale := func(startMin, endMin float64, paths ...string) CacheEvent {
		return CacheEvent{Name: "Winter jackets -60%", Category: "flash-sale", Start: at(startMin), End: at(endMin), Paths: paths}
	}
	three := productPaths(181, 3)
	hotCur := &directive.Service{Cache: &directive.Cache{Warm: []string{"/catalog/products/p0009"},
		Why: &directive.Reason{Text: "x", Driver: "forecast", At: ptrTime(at(2))}}}
	for _, tc := range []struct {
		name    string
		now     float64 // minutes after t0
		fc      []float64
		cache   CacheInput
		current *directive.Service
		// want
		warm    []string
		hints   []directive.TTLHint
		driver  string
		event   string
		text    []string // substrings of the reason
		note    string   // substring of a note
		cleared bool     // the section exists and has no cache part
	}{
		{name: "event beyond the lead: nothing yet", now: 0, fc: flat(30, 100),
			cache: CacheInput{Events: []CacheEvent{sale(10, 40, three...)}}},
		{name: "event within the lead: its paths, with the event and the why", now: 0, fc: flat(30, 100),
			cache: CacheInput{Events: []CacheEvent{sale(2, 40, three...)}},
			warm:  three, driver: "event", event: "flash-sale 2026-11-27T10:02:00Z",
			text: []string{`3 paths "Winter jackets -60%" (flash-sale 2026-11-27T10:02:00Z) features`, "proposed from 09:59:59 (2m0s before", "fetched at 10/s"}},
		{name: "event under way: the same list", now: 5, fc: flat(30, 100),
			cache: CacheInput{Events: []CacheEvent{sale(2, 40, three...)}}, warm: three, driver: "event"},
		{name: "event over: the cache part is cleared", now: 41, fc: flat(30, 100),
			cache:   CacheInput{Events: []CacheEvent{sale(2, 40, three...)}},
			current: &directive.Service{Cache: &directive.Cache{Warm: three}}, cleared: true},
		{name: "paths outside the cached routes are left out", now: 0, fc: flat(30, 100),
			cache: CacheInput{Prefixes: []string{"/catalog"}, Events: []CacheEvent{sale(1, 40, "/catalog/products/p0001", "/cart", "/catalogue/x", "/catalog")}},
			warm:  []string{"/catalog/products/p0001", "/catalog"}, note: "2 paths flash-sale 2026-11-27T10:01:00Z features are on no cached route"},
		{name: "a bad featured path is left out", now: 0, fc: flat(30, 100),
			cache: CacheInput{Events: []CacheEvent{sale(1, 40, "/ok", "no-slash", "/sp ace")}}, warm: []string{"/ok"}, note: "2 paths flash-sale"},
		{name: "bounded by max_warm_paths", now: 0, fc: flat(30, 100),
			cache: CacheInput{Options: CacheOptions{MaxWarmPaths: 5}, Events: []CacheEvent{sale(1, 40, productPaths(1, 8)...)}},
			warm:  productPaths(1, 5), note: "features 8 paths; the warm list holds 5: the first 5 are warmed"},
		{name: "the fetches lengthen the lead", now: 0, fc: flat(30, 100),
			// 600 paths at 10/s: 60 s of fetches on top of 2 m.
			cache: CacheInput{Options: CacheOptions{MaxWarmPaths: 1000}, Events: []CacheEvent{sale(3, 40, productPaths(1, 600)...)}},
			warm:  productPaths(1, 600), text: []string{"proposed from 10:00:00 (3m0s before"}},
		{name: "short freshness shortens the lead: not yet", now: 0, fc: flat(30, 100),
			cache: CacheInput{Freshness: 90 * time.Second, Events: []CacheEvent{sale(1, 40, three...)}}},
		{name: "short freshness shortens the lead: now", now: 0.5, fc: flat(30, 100),
			cache: CacheInput{Freshness: 90 * time.Second, Events: []CacheEvent{sale(1, 40, three...)}},
			warm:  three, text: []string{"the origin keeps them fresh 1m30s"}},
		{name: "freshness shorter than the fetches: not warmed", now: 0.9, fc: flat(30, 100),
			cache: CacheInput{Freshness: 90 * time.Second, Options: CacheOptions{MaxWarmPaths: 1000}, Events: []CacheEvent{sale(1, 40, productPaths(1, 600)...)}},
			note:  "warming cannot finish before the start"},
		{name: "explicit freshness: no TTL hints", now: 0, fc: flat(30, 100),
			cache: CacheInput{Freshness: 30 * time.Minute, Events: []CacheEvent{sale(2, 40, three...)}}, warm: three},
		{name: "heuristic freshness: hints for the featured paths until 5m into the event", now: 0, fc: flat(30, 100),
			cache: CacheInput{Heuristic: true, Events: []CacheEvent{sale(2, 40, "/catalog/products/p0001", "/catalog/products?page=1&size=20")}},
			warm:  []string{"/catalog/products/p0001", "/catalog/products?page=1&size=20"},
			hints: []directive.TTLHint{{PathPrefix: "/catalog/products/p0001", TTL: directive.Duration(7 * time.Minute)}, {PathPrefix: "/catalog/products", TTL: directive.Duration(7 * time.Minute)}},
			text:  []string{"TTL hints of 7m0s"}},
		{name: "heuristic freshness, more paths than hints: their common prefix", now: 0, fc: flat(30, 100),
			cache: CacheInput{Heuristic: true, Events: []CacheEvent{sale(2, 40, productPaths(1, 150)...)}},
			warm:  productPaths(1, 150), hints: []directive.TTLHint{{PathPrefix: "/catalog/products", TTL: directive.Duration(7 * time.Minute)}},
			text: []string{"one hint for their common prefix /catalog/products"}},
		{name: "hot keys before a forecast peak", now: 0, fc: append(flat(1, 100), flat(29, 220)...),
			cache: CacheInput{LoadRPS: 100, HotKeys: []string{"/catalog/products/p0001", "bad", "/catalog/products/p0002"}},
			warm:  []string{"/catalog/products/p0001", "/catalog/products/p0002"}, driver: "forecast",
			text: []string{"2 of the cache's hot keys before the forecast peak of 220 rps"}},
		{name: "hot keys bounded", now: 0, fc: flat(30, 300),
			cache: CacheInput{LoadRPS: 100, Options: CacheOptions{MaxHotKeys: 2}, HotKeys: productPaths(1, 10)},
			warm:  productPaths(1, 2), driver: "forecast"},
		{name: "a modest peak: no hot keys", now: 0, fc: flat(30, 120),
			cache: CacheInput{LoadRPS: 100, HotKeys: productPaths(1, 10)}},
		{name: "the same peak keeps its list", now: 0, fc: flat(30, 300), current: hotCur,
			cache: CacheInput{LoadRPS: 100, HotKeys: productPaths(1, 10)}, warm: []string{"/catalog/products/p0009"}, driver: "forecast"},
		{name: "an event due: its paths alone, not the moving hot keys", now: 0, fc: flat(30, 300),
			cache: CacheInput{LoadRPS: 100, HotKeys: productPaths(182, 4), Events: []CacheEvent{sale(2, 40, three...)}},
			warm:  three, driver: "event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cache
			c.Now = at(tc.now)
			in := Input{Service: "catalog", Forecast: minuteForecast(tc.fc...), RPSPerUnit: 1, Current: tc.current, Cache: &c}
			p := PlanService(in, model, Options{})
			if !strings.Contains(strings.Join(p.Notes, "\n"), tc.note) {
				t.Errorf("notes %q, want one with %q", p.Notes, tc.note)
			}
			if tc.warm == nil {
				if p.Cache != nil {
					t.Fatalf("cache %+v, want none", p.Cache)
				}
				if tc.cleared && (p.Section == nil || p.Section.Cache != nil) {
					t.Fatalf("section %+v: want one without its cache part", p.Section)
				}
				return
			}
			if p.Section == nil || p.Section.Cache != p.Cache || p.Cache == nil {
				t.Fatalf("section %+v cache %+v: want the planned cache in the section", p.Section, p.Cache)
			}
			if fmt.Sprint(p.Cache.Warm) != fmt.Sprint(tc.warm) {
				t.Errorf("warm %q, want %q", p.Cache.Warm, tc.warm)
			}
			if fmt.Sprint(p.Cache.TTLHints) != fmt.Sprint(tc.hints) {
				t.Errorf("hints %v, want %v", p.Cache.TTLHints, tc.hints)
			}
			why := p.Cache.Why
			if why == nil || why.Text == "" || why.ExpectedEffect == "" {
				t.Fatalf("no reason: %+v", why)
			}
			if tc.driver != "" && why.Driver != tc.driver {
				t.Errorf("driver %q, want %q", why.Driver, tc.driver)
			}
			if tc.event != "" && why.Event != tc.event {
				t.Errorf("event %q, want %q", why.Event, tc.event)
			}
			if why.Driver == "event" && !strings.Contains(why.ExpectedEffect, "hit ratio at the sale's start") {
				t.Errorf("expected effect %q", why.ExpectedEffect)
			}
			for _, s := range tc.text {
				if !strings.Contains(why.Text, s) {
					t.Errorf("reason %q lacks %q", why.Text, s)
				}
			}
			if !containsStr(p.Planned, "cache") || !strings.Contains(p.Section.Why.ExpectedEffect, "warm ") {
				t.Errorf("planned %v, evidence %q: the cache is part of the plan and its why", p.Planned, p.Section.Why.ExpectedEffect)
			}
			if _, err := Directive(nil, []Plan{p}); err != nil {
				t.Fatalf("planned directive invalid: %v", err)
			}
		})
	}
}

// TestPlanCacheNoInput: without cache input the section's cache part is
// the current one, untouched (a person's warm list stays).
func TestPlanCacheNoInput(t *testing.T) {
	cur := &directive.Service{Cache: &directive.Cache{Warm: []string{"/manual"}, Why: &directive.Reason{Text: "by hand", Driver: "manual"}}}
	p := PlanService(Input{Service: "catalog", Forecast: minuteForecast(flat(10, 100)...), RPSPerUnit: 1, Current: cur,
		Observed: obs(ep("10.0.0.1:9001", 60, 60, 40))}, model, Options{})
	if p.Section == nil || p.Section.Cache == nil || p.Section.Cache.Warm[0] != "/manual" || p.Cache != nil {
		t.Fatalf("section %+v: the current cache part must stay", p.Section)
	}
}

func TestCommonPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"/catalog/products/p1", "/catalog/products/p2?x=1"}, "/catalog/products"},
		{[]string{"/catalog/products/p1", "/catalogue/x"}, "/"},
		{[]string{"/a/b"}, "/a/b"},
		{nil, "/"},
	} {
		if got := commonPrefix(tc.in); got != tc.want {
			t.Errorf("commonPrefix(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

func containsStr(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
