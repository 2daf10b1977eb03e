package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbsys/lbsys/internal/clock"
	"github.com/lbsys/lbsys/internal/fleet"
	"github.com/lbsys/lbsys/internal/proxy"
)

// printTable prints the last interval per service from the proxy's
// per-second records and the fleet's state.
func printTable(w io.Writer, px *proxy.Proxy, fl *fleet.Fleet, vc *clock.Scaled, elapsed, interval time.Duration) {
	since := time.Now().Add(-interval - time.Second).Truncate(time.Second)
	recs := px.Telemetry(since, "")
	type agg struct {
		req, errs    int64
		p99          float64
		secs         map[int64]bool
		weightedP50s float64
	}
	by := map[string]*agg{}
	for _, r := range recs {
		if r.Endpoint != "" {
			continue
		}
		a := by[r.Service]
		if a == nil {
			a = &agg{secs: map[int64]bool{}}
			by[r.Service] = a
		}
		a.secs[r.Time.Unix()] = true
		a.req += r.Requests
		a.errs += r.Errors
		a.weightedP50s += r.P50ms * float64(r.Requests)
		a.p99 = math.Max(a.p99, r.P99ms)
	}
	states := map[string]fleet.ServiceState{}
	for _, s := range fl.Snapshot() {
		states[s.Service] = s
	}
	coord := map[string]string{}
	if st := px.Status(); st.Coordinator != nil {
		for svc, sd := range st.Coordinator.Services {
			if sd.Scale != nil {
				coord[svc] = fmt.Sprintf("v%d floor %d", sd.Version, sd.Scale.Replicas)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s (t=%.0fs)\tservice\trps\tp50 ms\tp99 ms\terrors\tinstances\tutil\tdirective\t\n", vc.Now().Format("15:04"), elapsed.Seconds())
	for _, d := range services {
		a := by[d.name]
		if a == nil {
			a = &agg{secs: map[int64]bool{}}
		}
		secs := float64(len(a.secs))
		if secs == 0 {
			secs = 1
		}
		p50 := 0.0
		if a.req > 0 {
			p50 = a.weightedP50s / float64(a.req)
		}
		st := states[d.name]
		inst := fmt.Sprintf("%d", st.Ready)
		if st.Starting+st.Pending > 0 {
			inst += fmt.Sprintf(" +%d", st.Starting+st.Pending)
		}
		dir := coord[d.name]
		if dir == "" {
			dir = "-"
		}
		fmt.Fprintf(tw, "\t%s\t%.0f\t%.1f\t%.1f\t%d\t%s\t%.0f%%\t%s\t\n", d.name, float64(a.req)/secs, p50, a.p99, a.errs, inst, 100*st.Util, dir)
	}
	tw.Flush()
	fmt.Fprintln(w, "  instances: ready (+ starting or waiting for a node); util: the autoscaler's last measurement; directive: the version and replica floor the proxy runs")
	fmt.Fprintln(w)
}

// totals sums each service's run: requests, errors, sheds, SLO-violation
// minutes (a virtual minute is a telemetry second at ×60: the minute's
// records are pooled by their virtual minute), the worst minute's p99,
// instance-minutes and the most instances.
func totals(px *proxy.Proxy, fl *fleet.Fleet, from, to time.Time, vc *clock.Scaled) []ServiceTotal {
	recs := px.Telemetry(from.Add(-time.Second), "")
	type minute struct {
		req, errs int64
		p99       float64
	}
	by := map[string]*ServiceTotal{}
	mins := map[string]map[int64]*minute{}
	eps := map[string]map[string]int64{}
	for _, d := range services {
		by[d.name] = &ServiceTotal{Service: d.name, Share: map[string]float64{}}
		mins[d.name] = map[int64]*minute{}
		eps[d.name] = map[string]int64{}
	}
	for _, r := range recs {
		t := by[r.Service]
		if t == nil || r.Time.After(to) {
			continue
		}
		if r.Endpoint != "" {
			eps[r.Service][r.Endpoint] += r.Requests
			continue
		}
		t.Requests += r.Requests
		t.Errors += r.Errors
		vm := vc.Virtual(r.Time).Truncate(time.Minute).Unix()
		m := mins[r.Service][vm]
		if m == nil {
			m = &minute{}
			mins[r.Service][vm] = m
		}
		m.req += r.Requests
		m.errs += r.Errors
		m.p99 = math.Max(m.p99, r.P99ms)
	}
	st := px.Status()
	for _, s := range st.Services {
		if t := by[s.Name]; t != nil && s.Admission != nil {
			for _, n := range s.Admission.Rejected {
				t.Shed += n
			}
		}
	}
	states := map[string]fleet.ServiceState{}
	for _, s := range fl.Snapshot() {
		states[s.Service] = s
	}
	var out []ServiceTotal
	for _, d := range services {
		t := by[d.name]
		for _, m := range mins[d.name] {
			if m.req == 0 {
				continue
			}
			t.P99Ms = math.Max(t.P99Ms, m.p99)
			if m.p99 > float64(d.slo)/1e6 || float64(m.errs) > 0.01*float64(m.req) {
				t.ViolationMinutes++
			}
		}
		var sum int64
		for _, n := range eps[d.name] {
			sum += n
		}
		for ep, n := range eps[d.name] {
			if sum > 0 {
				t.Share[ep] = float64(n) / float64(sum)
			}
		}
		t.InstanceMinutes = math.Round(states[d.name].InstanceMinutes*10) / 10
		t.MaxInstances = fl.MaxReady(d.name)
		out = append(out, *t)
	}
	return out
}

// checkInvariants reads the shop's state from a ready instance of the
// services that keep it (the instances share one store per service):
// stock is conserved and never negative, and every payment key was charged
// once.
func checkInvariants(ctx context.Context, fl *fleet.Fleet) []string {
	addr := map[string]string{}
	for _, s := range fl.Snapshot() {
		if len(s.Addrs) > 0 {
			addr[s.Service] = s.Addrs[0]
		}
	}
	stats := func(svc string) (map[string]float64, error) {
		a, ok := addr[svc]
		if !ok {
			return nil, fmt.Errorf("%s: no instance ready", svc)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(cctx, http.MethodGet, "http://"+a+"/_shop/stats", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s stats: %w", svc, err)
		}
		defer resp.Body.Close()
		var st struct {
			State map[string]float64 `json:"state"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
			return nil, fmt.Errorf("%s stats: %w", svc, err)
		}
		return st.State, nil
	}
	var bad []string
	if s, err := stats("inventory"); err != nil {
		bad = append(bad, err.Error())
	} else {
		if s["available_units"] < 0 || s["reserved_units"] < 0 {
			bad = append(bad, fmt.Sprintf("negative stock: %v", s))
		}
		if s["available_units"]+s["reserved_units"]+s["sold_units"] != s["initial_units"] {
			bad = append(bad, fmt.Sprintf("stock not conserved: %v", s))
		}
	}
	if s, err := stats("payment"); err != nil {
		bad = append(bad, err.Error())
	} else if s["charges"] != s["distinct_keys"] {
		bad = append(bad, fmt.Sprintf("a key was charged twice: %v", s))
	}
	return bad
}

func printSummary(w io.Writer, r *Result) {
	l := r.Load
	fmt.Fprintf(w, "summary (%s control): %d requests in %.0fs (%.0f req/s), %d ok, errors %d (5xx %d, connect %d, timeout %d, reset %d, dropped %d)\n",
		r.Control, l.Requests, l.DurationS, l.AchievedRPS, l.OK, l.Errors.Total, l.Errors.Status5xx, l.Errors.Connect, l.Errors.Timeout, l.Errors.Reset, l.Errors.Dropped)
	fmt.Fprintf(w, "latency from scheduled send: p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, p99.9 %.1f ms\n", l.Latency.P50, l.Latency.P90, l.Latency.P99, l.Latency.P999)
	if s := l.Sessions; s != nil {
		fmt.Fprintf(w, "sessions: %d started, %d completed, %d abandoned; checkouts completed: %d\n", s.Started, s.Completed, s.Abandoned, l.Checkouts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "service\trequests\terrors\tshed\tSLO-violation min\tworst p99 ms\tinstance-min\tmax instances\t")
	var viol int
	var im float64
	for _, t := range r.Services {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.0f\t%.1f\t%d\t\n", t.Service, t.Requests, t.Errors, t.Shed, t.ViolationMinutes, t.P99Ms, t.InstanceMinutes, t.MaxInstances)
		viol += t.ViolationMinutes
		im += t.InstanceMinutes
	}
	fmt.Fprintf(tw, "all\t\t\t\t%d\t\t%.1f\t\t\n", viol, im)
	tw.Flush()
	fmt.Fprintln(w, "minutes are virtual (the replayed morning's); a violation minute: p99 above the service's objective or errors above 1%")
	if r.Directives > 0 {
		fmt.Fprintf(w, "directives: the proxy runs version %d; changes proposed by the controller:\n", r.Directives)
		for _, e := range r.Timeline {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	printCache(w, r.Cache)
	if len(r.Invariants) == 0 {
		fmt.Fprintln(w, "shop invariants held: stock never negative and conserved, every payment key charged once")
	} else {
		fmt.Fprintf(w, "SHOP INVARIANTS VIOLATED: %s\n", strings.Join(r.Invariants, "; "))
	}
}

// writeComparison prints the runs side by side (the reactive run first).
func writeComparison(w io.Writer, runs []lastRun) {
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Control == ControlReactive && runs[j].Control != ControlReactive })
	fmt.Fprintf(w, "\ncomparison with the last %s run (same seed and settings):\n", runs[0].Control)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "control\tSLO-violation min\terrors\tp99 ms\tinstance-min\t")
	for _, r := range runs {
		var v int
		var im float64
		for _, s := range r.Services {
			v += s.ViolationMinutes
			im += s.InstanceMinutes
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t\n", r.Control, v, r.Errors, r.P99Ms, im)
	}
	tw.Flush()
}
