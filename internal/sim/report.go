package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteJSON writes results.json: indented, fields in declaration order, no
// wall-clock values, so equal runs give equal bytes.
func WriteJSON(w io.Writer, res *Results) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(res)
}

// WriteMarkdown writes report.md: the scenario, a table per policy of what
// it delivered and what it spent, the per-service view and the incidents.
// plots lists the PNG files written next to it (may be empty).
func WriteMarkdown(w io.Writer, res *Results, plots []string) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("# Simulation: %s\n\n", res.Scenario)
	if res.Description != "" {
		p("%s\n\n", strings.TrimSpace(res.Description))
	}
	p("Seed %d; simulated %s from %s; %d runs. Every run had the same arrivals (same seed) through the production balancing, health and admission code (internal/balance, internal/health, internal/admission) on a virtual clock.\n\n",
		res.Seed, time.Duration(res.DurationS*float64(time.Second)), res.Start.Format("2006-01-02 15:04 MST"), len(res.Policies))

	p("## Summary\n\n")
	p("| policy | requests | p50 ms | p99 ms | p99.9 ms | errors | sheds | timeouts | SLO-violation minutes | incidents | checkouts | drop-offs | replica-hours | cost |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, pr := range res.Policies {
		t := pr.Totals
		p("| %s | %d | %.1f | %.1f | %.1f | %d | %d | %d | %d | %d | %d | %d | %.1f | %.2f |\n",
			runLabel(pr), t.Requests, t.P50Ms, t.P99Ms, t.P999Ms, t.Errors, t.Sheds, t.Timeouts,
			t.ViolationMinutes, t.Incidents, t.Checkouts, t.DropOffs, t.ReplicaHours, t.Cost)
	}
	p("\nLatency is from the proxy receiving a request to its final answer (retries included), over every request of every service. SLO-violation minutes add up the minutes in which a service's p99 exceeded its objective or its error rate (errors, sheds and timeouts) exceeded its limit; an incident is a run of such minutes of one service.\n\n")

	p("## Per service\n\n")
	p("| policy | service | SLO p99 ms | p50 ms | p99 ms | p99.9 ms | error rate | violation minutes | max replicas | replica-hours |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, pr := range res.Policies {
		for i, st := range pr.Services {
			slo := 0.0
			if i < len(res.Services) {
				slo = res.Services[i].SLOP99Ms
			}
			p("| %s | %s | %.0f | %.1f | %.1f | %.1f | %.4f | %d | %d | %.1f |\n", runLabel(pr), st.Name, slo,
				st.P50Ms, st.P99Ms, st.P999Ms, st.ErrorRate, st.ViolationMinutes, st.MaxReplicas, st.ReplicaHours)
		}
	}

	p("\n## Incidents\n\n")
	any := false
	for _, pr := range res.Policies {
		for _, inc := range pr.Incidents {
			if !any {
				p("| policy | service | from minute | minutes | worst p99 ms | worst error rate |\n|---|---|---:|---:|---:|---:|\n")
				any = true
			}
			p("| %s | %s | %d | %d | %.1f | %.4f |\n", runLabel(pr), inc.Service, inc.StartMinute, inc.Minutes, inc.WorstP99Ms, inc.WorstErrors)
		}
	}
	if !any {
		p("None: no service broke its SLO in any minute under any policy.\n")
	}
	if len(plots) > 0 {
		p("\n## Plots\n\n")
		for _, f := range plots {
			p("![%s](%s)\n\n", strings.TrimSuffix(f, ".png"), f)
		}
	}
	writeCacheReport(p, res)
	if controlled(res) {
		p("\n## Closed loop\n\n| run | directives applied | NACKs | announced events: capacity ready |\n|---|---:|---:|---|\n")
		for _, pr := range res.Policies {
			var ev []string
			for _, e := range pr.Events {
				ev = append(ev, fmt.Sprintf("%s %s (×%.3g): %s", e.Category, e.Start.UTC().Format("15:04"), e.X, describeReadiness(e)))
			}
			p("| %s | %d | %d | %s |\n", runLabel(pr), pr.Directives, pr.NACKs, strings.Join(ev, "; "))
		}
		for _, pr := range res.Policies {
			if len(pr.ControlNotes) > 0 {
				p("\n%s controller notes (first %d):\n\n", runLabel(pr), min(len(pr.ControlNotes), 20))
				for _, n := range pr.ControlNotes[:min(len(pr.ControlNotes), 20)] {
					p("- %s\n", n)
				}
			}
		}
	}
	p("\nThe per-minute series are in results.json.\n")
	return b.Flush()
}

// writeCacheReport writes the proxies' cache section (nothing when no
// service is cached).
func writeCacheReport(p func(string, ...any), res *Results) {
	cached := false
	for _, pr := range res.Policies {
		for _, st := range pr.Services {
			cached = cached || st.Cache != nil
		}
	}
	if !cached {
		return
	}
	p("\n## Proxy cache\n\n| run | service | hit ratio | hits | collapsed | misses | warm fetches | warm hits | backend requests saved | evictions |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, pr := range res.Policies {
		for _, st := range pr.Services {
			if c := st.Cache; c != nil {
				p("| %s | %s | %.3f | %d | %d | %d | %d | %d | %d | %d |\n", runLabel(pr), st.Name, c.HitRatio, c.Hits, c.Collapsed, c.Misses,
					c.WarmFetches, c.WarmHits, c.BackendSaved, c.Evictions)
			}
		}
	}
	p("\nHit ratio: fresh hits over the cached classes' requests, every proxy together (a collapsed request waited for another's fetch of the same page: not a hit). Backend requests saved: hits and collapsed requests, less the warm fetches made.\n")
	any := false
	for _, pr := range res.Policies {
		for _, e := range pr.CacheEvents {
			if !any {
				p("\nFirst minute of each announced event (when its featured pages turn hot):\n\n| run | service | event | featured pages | hit ratio | hits / requests |\n|---|---|---|---:|---:|---:|\n")
				any = true
			}
			name := e.Category + " " + e.Start.UTC().Format("15:04")
			if e.Name != "" {
				name += " (" + e.Name + ")"
			}
			p("| %s | %s | %s | %d | %.3f | %d / %d |\n", runLabel(pr), e.Service, name, e.Featured, e.HitRatio, e.Hits, e.Lookups)
		}
	}
}
