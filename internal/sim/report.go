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
	p("Seed %d; simulated %s from %s; %d policies. Every policy ran the same arrivals (same seed) through the production balancing, health and admission code (internal/balance, internal/health, internal/admission) on a virtual clock.\n\n",
		res.Seed, time.Duration(res.DurationS*float64(time.Second)), res.Start.Format("2006-01-02 15:04 MST"), len(res.Policies))

	p("## Summary\n\n")
	p("| policy | requests | p50 ms | p99 ms | p99.9 ms | errors | sheds | timeouts | SLO-violation minutes | incidents | checkouts | drop-offs | replica-hours | cost |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, pr := range res.Policies {
		t := pr.Totals
		p("| %s | %d | %.1f | %.1f | %.1f | %d | %d | %d | %d | %d | %d | %d | %.1f | %.2f |\n",
			pr.Policy, t.Requests, t.P50Ms, t.P99Ms, t.P999Ms, t.Errors, t.Sheds, t.Timeouts,
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
			p("| %s | %s | %.0f | %.1f | %.1f | %.1f | %.4f | %d | %d | %.1f |\n", pr.Policy, st.Name, slo,
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
			p("| %s | %s | %d | %d | %.1f | %.4f |\n", pr.Policy, inc.Service, inc.StartMinute, inc.Minutes, inc.WorstP99Ms, inc.WorstErrors)
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
	p("\nThe per-minute series are in results.json.\n")
	return b.Flush()
}
