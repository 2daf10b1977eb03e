package planner

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// The parts of a plan that explain and spread it: the endpoints' weights
// and the why block (the evidence a person can follow).

// weights returns planned weights for the endpoints in rotation (current
// endpoints whose current weight is not 0), proportional to demonstrated
// throughput and normalised to a mean of 1 (the factor of an endpoint a
// directive leaves out), or nil and why not.
func weights(cur *directive.Service, current []endpointStats, capacity map[string]float64, basis string, o Options) (map[string]float64, string) {
	var rot []string
	for _, s := range current {
		if cur != nil {
			if w, ok := cur.Weights[s.address]; ok && w == 0 {
				continue // out of rotation by a person's choice: stays so
			}
		}
		rot = append(rot, s.address)
	}
	sort.Strings(rot)
	switch {
	case len(rot) < 2:
		return nil, fmt.Sprintf("%d endpoint(s) in rotation; weights need two or more", len(rot))
	}
	var missing, bad []string
	var sum float64
	for _, ep := range rot {
		if !hostPort(ep) {
			bad = append(bad, ep)
		}
		c, ok := capacity[ep]
		if !ok {
			missing = append(missing, ep)
		}
		sum += c
	}
	if len(bad) > 0 {
		return nil, fmt.Sprintf("endpoint names %s are not host:port addresses", strings.Join(bad, ", "))
	}
	if len(missing) > 0 {
		return nil, fmt.Sprintf("the throughput of %s is not known well enough", strings.Join(missing, ", "))
	}
	mean := sum / float64(len(rot))
	out := make(map[string]float64, len(rot))
	parts := make([]string, 0, len(rot))
	for _, ep := range rot {
		w := math.Max(o.MinWeight, round2(capacity[ep]/mean))
		out[ep] = w
		parts = append(parts, fmt.Sprintf("%s %.4g rps → %g", ep, round3(capacity[ep]), w))
	}
	return out, fmt.Sprintf("weights ∝ %s, mean 1: %s", basis, strings.Join(parts, ", "))
}

// evidence builds the why block.
func evidence(in Input, m Model, p Plan, path []pathPoint, o Options, effect []string) *directive.Why {
	w := &directive.Why{Model: m.String(), Blessed: true}
	for _, i := range thinIndexes(path, o.MaxWhyPoints) {
		pt := path[i]
		w.Forecast = append(w.Forecast, directive.Point{At: pt.at, RPS: round3(pt.rps), Hi: round3(pt.high)})
	}
	// Drivers: each feature's largest attributed effect over the
	// horizons, in rps (the forecast's unit times RPSPerUnit).
	k := in.RPSPerUnit
	if !(k > 0) || math.IsInf(k, 0) {
		k = 1
	}
	eff := map[string]float64{}
	for _, h := range in.Forecast.Horizons {
		for _, d := range h.Drivers {
			if math.IsNaN(d.Effect) || math.IsInf(d.Effect, 0) {
				continue
			}
			if v, ok := eff[d.Feature]; !ok || math.Abs(d.Effect*k) > math.Abs(v) {
				eff[d.Feature] = d.Effect * k
			}
		}
	}
	names := make([]string, 0, len(eff))
	for n := range eff {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := math.Abs(eff[names[i]]), math.Abs(eff[names[j]])
		if a != b {
			return a > b
		}
		return names[i] < names[j]
	})
	for _, n := range names[:min(len(names), o.TopFeatures)] {
		if w.Features == nil {
			w.Features = map[string]float64{}
		}
		w.Features[n] = round3(eff[n])
	}
	text := fmt.Sprintf("upper-band peak %.4g rps at %s (point peak %.4g rps at %s)", round3(p.UpperPeakRPS),
		p.UpperPeakAt.Format(time.RFC3339), round3(p.PeakRPS), p.PeakAt.Format(time.RFC3339))
	if in.Unit != "" {
		text += "; forecast in " + in.Unit
	}
	text += "; " + strings.Join(effect, "; ")
	if len(w.Features) > 0 {
		text += "; features are drivers' attributed effects in rps"
	}
	if len(text) > 4000 { // the schema allows 4096 bytes
		text = text[:3990] + " …"
	}
	w.ExpectedEffect = text
	return w
}

// thinIndexes picks at most n indexes of path, evenly spread, always
// including the peaks of the point forecast and of the upper band.
func thinIndexes(path []pathPoint, n int) []int {
	if len(path) <= n {
		out := make([]int, len(path))
		for i := range out {
			out[i] = i
		}
		return out
	}
	keep := map[int]bool{}
	pk, uk := 0, 0
	for i, pt := range path {
		if pt.rps > path[pk].rps {
			pk = i
		}
		if pt.high > path[uk].high {
			uk = i
		}
	}
	keep[pk], keep[uk] = true, true
	spread := max(1, n-2) // the other slots, evenly over the path (first and last included)
	for i := 0; i < spread; i++ {
		keep[i*(len(path)-1)/max(1, spread-1)] = true
	}
	out := make([]int, 0, len(keep))
	for i := range keep {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}
