package sim

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Stat summarises one figure over seeds: mean, sample standard
// deviation, min and max.
type Stat struct {
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

func statOf(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	st := Stat{Min: math.Inf(1), Max: math.Inf(-1)}
	for _, x := range xs {
		st.Mean += x
		st.Min, st.Max = math.Min(st.Min, x), math.Max(st.Max, x)
	}
	st.Mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			st.SD += (x - st.Mean) * (x - st.Mean)
		}
		st.SD = math.Sqrt(st.SD / float64(len(xs)-1))
	}
	st.Mean, st.SD = round(st.Mean, 3), round(st.SD, 3)
	st.Min, st.Max = round(st.Min, 3), round(st.Max, 3)
	return st
}

// String is "mean ± sd".
func (s Stat) String() string {
	if s.SD == 0 {
		return trimNum(s.Mean)
	}
	return trimNum(s.Mean) + " ± " + trimNum(s.SD)
}

func trimNum(x float64) string {
	switch {
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

// Comparison is a scenario's runs over several seeds, per control and
// policy: what `lbsys sim` prints with several seeds or controls and what
// bench/closedloop.sh gathers.
type Comparison struct {
	Scenario    string   `json:"scenario"`
	Description string   `json:"description,omitempty"`
	Seeds       []uint64 `json:"seeds"`
	// Rows are per (control, policy), in the order run.
	Rows []CompRow `json:"rows"`
	// Sources are the scenario's parameter sources.
	Sources map[string]string `json:"sources,omitempty"`
}

// CompRow is one control and policy over the seeds.
type CompRow struct {
	Control string `json:"control"`
	Policy  string `json:"policy"`
	Runs    int    `json:"runs"`
	// Figures of Totals, over seeds.
	ViolationMinutes    Stat `json:"slo_violation_minutes"`
	AnyViolationMinutes Stat `json:"any_violation_minutes"`
	Incidents           Stat `json:"incidents"`
	P99Ms               Stat `json:"p99_ms"`
	Errors              Stat `json:"errors"`
	Sheds               Stat `json:"sheds"`
	Timeouts            Stat `json:"timeouts"`
	LostCheckouts       Stat `json:"lost_checkouts"`
	ReplicaHours        Stat `json:"replica_hours"`
	// Events is the number of announced events over the seeds; Ready10m
	// how many had their capacity ready at least 10 minutes before they
	// started; LeadMin the readiness lead in minutes (negative: after).
	Events   int  `json:"events"`
	Ready10m int  `json:"ready_10m"`
	LeadMin  Stat `json:"lead_min"`
	// NACKs is the total of directive sections the proxies refused.
	NACKs int `json:"nacks"`
	// Cache are the proxies' cache figures (absent: nothing cached).
	Cache *CompCache `json:"cache,omitempty"`
}

// CompCache is the proxies' cache over the seeds: per seed, hits over
// requests of every cached service, over the run (HitRatio) and over the
// first minute of every announced event (FirstMinuteHitRatio; absent
// without events); warm fetches and backend requests saved.
type CompCache struct {
	HitRatio            Stat  `json:"hit_ratio"`
	FirstMinuteHitRatio *Stat `json:"first_minute_hit_ratio,omitempty"`
	WarmFetches         Stat  `json:"warm_fetches"`
	BackendSaved        Stat  `json:"backend_saved"`
}

// Compare gathers the results of several seeds (each Results one seed,
// the same runs in the same order).
func Compare(sc *Scenario, all []*Results) *Comparison {
	c := &Comparison{Scenario: sc.Name, Description: sc.Description, Sources: sc.Sources}
	if len(all) == 0 {
		return c
	}
	type acc struct {
		row  CompRow
		vals map[string][]float64
	}
	var order []string
	accs := map[string]*acc{}
	for _, res := range all {
		c.Seeds = append(c.Seeds, res.Seed)
		for _, pr := range res.Policies {
			key := pr.Control + "|" + pr.Policy
			a := accs[key]
			if a == nil {
				a = &acc{row: CompRow{Control: pr.Control, Policy: pr.Policy}, vals: map[string][]float64{}}
				accs[key] = a
				order = append(order, key)
			}
			t := pr.Totals
			a.row.Runs++
			a.row.NACKs += pr.NACKs
			add := func(k string, v float64) { a.vals[k] = append(a.vals[k], v) }
			add("viol", float64(t.ViolationMinutes))
			add("any", float64(t.AnyViolationMinutes))
			add("inc", float64(t.Incidents))
			add("p99", t.P99Ms)
			add("err", float64(t.Errors))
			add("shed", float64(t.Sheds))
			add("to", float64(t.Timeouts))
			add("lost", float64(t.LostCheckouts))
			add("rh", t.ReplicaHours)
			var looks, hits, warm, saved, eLooks, eHits int64
			cached := false
			for _, st := range pr.Services {
				if c := st.Cache; c != nil {
					cached = true
					looks, hits, warm, saved = looks+c.Lookups, hits+c.Hits, warm+c.WarmFetches, saved+c.BackendSaved
				}
			}
			for _, e := range pr.CacheEvents {
				eLooks, eHits = eLooks+e.Lookups, eHits+e.Hits
			}
			if cached {
				add("c.hr", ratio(hits, looks))
				add("c.warm", float64(warm))
				add("c.saved", float64(saved))
				if eLooks > 0 {
					add("c.first", ratio(eHits, eLooks))
				}
			}
			for _, e := range pr.Events {
				a.row.Events++
				if !e.Never && e.LeadS >= 600 {
					a.row.Ready10m++
				}
				lead := e.LeadS / 60
				if e.Never {
					lead = -e.Start.Sub(sc.Start).Minutes() // ready never: count as the worst
					lead = math.Min(lead, -60)
				}
				add("lead", lead)
			}
		}
	}
	for _, k := range order {
		a := accs[k]
		r := a.row
		r.ViolationMinutes, r.AnyViolationMinutes, r.Incidents = statOf(a.vals["viol"]), statOf(a.vals["any"]), statOf(a.vals["inc"])
		r.P99Ms, r.Errors, r.Sheds, r.Timeouts = statOf(a.vals["p99"]), statOf(a.vals["err"]), statOf(a.vals["shed"]), statOf(a.vals["to"])
		r.LostCheckouts, r.ReplicaHours, r.LeadMin = statOf(a.vals["lost"]), statOf(a.vals["rh"]), statOf(a.vals["lead"])
		if len(a.vals["c.hr"]) > 0 {
			r.Cache = &CompCache{HitRatio: statOf(a.vals["c.hr"]), WarmFetches: statOf(a.vals["c.warm"]), BackendSaved: statOf(a.vals["c.saved"])}
			if v := a.vals["c.first"]; len(v) > 0 {
				st := statOf(v)
				r.Cache.FirstMinuteHitRatio = &st
			}
		}
		c.Rows = append(c.Rows, r)
	}
	return c
}

// Row returns the row of a control and policy.
func (c *Comparison) Row(control, policy string) (CompRow, bool) {
	for _, r := range c.Rows {
		if r.Control == control && r.Policy == policy {
			return r, true
		}
	}
	return CompRow{}, false
}

// WriteComparison writes the comparison as Markdown: the table per
// control and policy (mean ± sd over the seeds), then the goals the
// predictive control is held to, checked on these runs.
func WriteComparison(w io.Writer, c *Comparison) error {
	b := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## %s: controls × policies over %d seeds (%s)\n\n", c.Scenario, len(c.Seeds), seedList(c.Seeds))
	p("| control | policy | SLO-violation min | incidents | p99 ms | errors | sheds | timeouts | lost checkouts | replica-hours | events ready ≥10m before | readiness lead min |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range c.Rows {
		ready := "–"
		lead := "–"
		if r.Events > 0 {
			ready = fmt.Sprintf("%d/%d", r.Ready10m, r.Events)
			lead = r.LeadMin.String()
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Control, r.Policy, r.ViolationMinutes, r.Incidents, r.P99Ms,
			r.Errors, r.Sheds, r.Timeouts, r.LostCheckouts, r.ReplicaHours, ready, lead)
	}
	p("\nMean ± standard deviation over the seeds. SLO-violation minutes add up every service's minutes over its p99 objective or error budget. Lost checkouts are sessions that would have reached the checkout but left on an error or a slow answer. Readiness: when every autoscaled service first had the replicas its autoscaling policy asks for at the event's true peak (at the target utilisation, with the capacity a replica showed in the run); negative: after the start.\n")
	writeCacheComparison(p, c)
	if g := c.Goals(); len(g) > 0 {
		p("\n### Goals (issue #12), on these runs\n\n| goal | measured | met |\n|---|---|---|\n")
		for _, x := range g {
			met := "no"
			if x.Met {
				met = "yes"
			}
			p("| %s | %s | %s |\n", x.Goal, x.Measured, met)
		}
	}
	if len(c.Sources) > 0 {
		p("\n### Where the scenario's parameters come from\n\n")
		keys := make([]string, 0, len(c.Sources))
		for k := range c.Sources {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("- **%s**: %s\n", k, c.Sources[k])
		}
	}
	return b.Flush()
}

func seedList(s []uint64) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprint(x)
	}
	return "seeds " + strings.Join(parts, ", ")
}

// Goal is one of the closed loop's goals checked on a comparison.
type Goal struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// Goals checks the predictive control against the others present in the
// comparison, per the issue's goals (policy by policy where it says "same
// policy"): it lists only the goals the rows present can answer.
func (c *Comparison) Goals() []Goal {
	var out []Goal
	pct := func(a, b float64) string {
		if b == 0 {
			if a == 0 {
				return "0 vs 0"
			}
			return fmt.Sprintf("%.3g vs 0", a)
		}
		return fmt.Sprintf("%.3g vs %.3g (%+.0f%%)", a, b, 100*(a-b)/b)
	}
	fewer := func(a, b, frac float64) bool { return a <= b*(1-frac)+1e-9 }
	// Best predictive row (by violation minutes) and best reactive row.
	var preds, reacts []CompRow
	for _, r := range c.Rows {
		switch r.Control {
		case "predictive":
			preds = append(preds, r)
		case "reactive":
			reacts = append(reacts, r)
		}
	}
	if len(preds) == 0 {
		return nil
	}
	best := func(rows []CompRow) CompRow {
		b := rows[0]
		for _, r := range rows[1:] {
			if r.ViolationMinutes.Mean < b.ViolationMinutes.Mean {
				b = r
			}
		}
		return b
	}
	bp := best(preds)
	if rr, ok := c.Row("reactive", "round_robin"); ok {
		out = append(out, Goal{"predictive ≥72% fewer SLO-violation minutes than round_robin + HPA",
			fmt.Sprintf("%s (%s) vs round_robin: %s", bp.Policy, pct(bp.ViolationMinutes.Mean, rr.ViolationMinutes.Mean), trimNum(rr.ViolationMinutes.Mean)),
			fewer(bp.ViolationMinutes.Mean, rr.ViolationMinutes.Mean, 0.72)})
	}
	if len(reacts) > 0 {
		br := best(reacts)
		out = append(out, Goal{"≥30% fewer than the best reactive policy + HPA",
			fmt.Sprintf("%s %s vs reactive %s %s", bp.Policy, trimNum(bp.ViolationMinutes.Mean), br.Policy, trimNum(br.ViolationMinutes.Mean)),
			fewer(bp.ViolationMinutes.Mean, br.ViolationMinutes.Mean, 0.30)})
	}
	for _, p := range preds {
		if r, ok := c.Row("reactive", p.Policy); ok {
			extra := 0.0
			if r.ReplicaHours.Mean > 0 {
				extra = p.ReplicaHours.Mean/r.ReplicaHours.Mean - 1
			}
			out = append(out, Goal{fmt.Sprintf("%s: ≥50%% fewer violation minutes than the HPA at ≤20%% more replica-hours", p.Policy),
				fmt.Sprintf("violation %s; replica-hours %+.1f%%", pct(p.ViolationMinutes.Mean, r.ViolationMinutes.Mean), 100*extra),
				fewer(p.ViolationMinutes.Mean, r.ViolationMinutes.Mean, 0.5) && extra <= 0.20+1e-9})
		}
		for _, peer := range []string{"holt_winters", "hourly"} {
			if r, ok := c.Row(peer, p.Policy); ok {
				out = append(out, Goal{fmt.Sprintf("%s: fewer violation minutes than %s", p.Policy, peer),
					fmt.Sprintf("%s vs %s", trimNum(p.ViolationMinutes.Mean), trimNum(r.ViolationMinutes.Mean)),
					p.ViolationMinutes.Mean < r.ViolationMinutes.Mean || (p.ViolationMinutes.Mean == 0 && r.ViolationMinutes.Mean == 0)})
			}
		}
		if r, ok := c.Row("reactive", p.Policy); ok && p.Events == 0 && r.ReplicaHours.Mean > 0 {
			extra := p.ReplicaHours.Mean/r.ReplicaHours.Mean - 1
			out = append(out, Goal{fmt.Sprintf("%s, no announced event: ≤5%% more replica-hours than the HPA and no more violation minutes", p.Policy),
				fmt.Sprintf("replica-hours %+.1f%%; violation minutes %s vs %s", 100*extra, trimNum(p.ViolationMinutes.Mean), trimNum(r.ViolationMinutes.Mean)),
				extra <= 0.05+1e-9 && p.ViolationMinutes.Mean <= r.ViolationMinutes.Mean+1e-9})
		}
		if p.Events > 0 {
			share := float64(p.Ready10m) / float64(p.Events)
			out = append(out, Goal{fmt.Sprintf("%s: capacity ready ≥10 min before ≥95%% of announced events", p.Policy),
				fmt.Sprintf("%d of %d (%.0f%%)", p.Ready10m, p.Events, 100*share), share >= 0.95})
		}
		if g, ok := c.warmGoal(p); ok {
			out = append(out, g)
		}
		o, okO := c.Row("oracle", p.Policy)
		r, okR := c.Row("reactive", p.Policy)
		if okO && okR {
			pe, oe := p.ReplicaHours.Mean-r.ReplicaHours.Mean, o.ReplicaHours.Mean-r.ReplicaHours.Mean
			met := pe <= 1.5*oe+1e-9 || pe <= 0
			out = append(out, Goal{fmt.Sprintf("%s: extra replica-hours within 1.5× the oracle's", p.Policy),
				fmt.Sprintf("%+.2f vs oracle %+.2f", pe, oe), met})
		}
	}
	return out
}

// durationMin formats minutes for the report.
func durationMin(m float64) string {
	return time.Duration(m * float64(time.Minute)).Round(time.Second).String()
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// writeCacheComparison writes the proxies' cache per control and policy
// (nothing when no row has a cache).
func writeCacheComparison(p func(string, ...any), c *Comparison) {
	any := false
	for _, r := range c.Rows {
		any = any || r.Cache != nil
	}
	if !any {
		return
	}
	p("\n### Proxy cache\n\n| control | policy | hit ratio | hit ratio, first minute of announced events | warm fetches | backend requests saved |\n|---|---|---:|---:|---:|---:|\n")
	for _, r := range c.Rows {
		if r.Cache == nil {
			continue
		}
		first := "–"
		if f := r.Cache.FirstMinuteHitRatio; f != nil {
			first = f.String()
		}
		p("| %s | %s | %s | %s | %s | %s |\n", r.Control, r.Policy, r.Cache.HitRatio, first, r.Cache.WarmFetches, r.Cache.BackendSaved)
	}
	p("\nHit ratio: fresh hits over the cached classes' requests (collapsed requests are not hits), every cached service and proxy together, per seed. predictive_nowarm is predictive with warming off: the cold cache.\n")
}

// warmGoal checks warming: the first minute of the announced events hits
// at least twice as often as with a cold cache (predictive_nowarm, else
// reactive, same policy).
func (c *Comparison) warmGoal(p CompRow) (Goal, bool) {
	if p.Cache == nil || p.Cache.FirstMinuteHitRatio == nil {
		return Goal{}, false
	}
	cold, ok := c.Row("predictive_nowarm", p.Policy)
	if !ok || cold.Cache == nil || cold.Cache.FirstMinuteHitRatio == nil {
		if cold, ok = c.Row("reactive", p.Policy); !ok || cold.Cache == nil || cold.Cache.FirstMinuteHitRatio == nil {
			return Goal{}, false
		}
	}
	w, k := p.Cache.FirstMinuteHitRatio.Mean, cold.Cache.FirstMinuteHitRatio.Mean
	x := "∞"
	if k > 0 {
		x = fmt.Sprintf("%.2f×", w/k)
	}
	return Goal{fmt.Sprintf("%s: hit ratio in the first minute of announced sales ≥ 2× the cold cache's (%s, warming off)", p.Policy, cold.Control),
		fmt.Sprintf("%s vs %s (%s)", p.Cache.FirstMinuteHitRatio, cold.Cache.FirstMinuteHitRatio, x), w >= 2*k && w > 0}, true
}
