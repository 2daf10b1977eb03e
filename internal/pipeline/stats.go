package pipeline

import (
	"context"
	"math"
	"sort"
	"time"
)

// SeriesStats describes one raw series (TFX's StatisticsGen output, for
// a time series): counts, timestamp consistency, gaps and the value
// distribution, overall and over the most recent part (for drift).
type SeriesStats struct {
	Name string `json:"name"`
	Rows int    `json:"rows"`
	// Missing counts rows without a value.
	Missing int `json:"missing"`
	// Step is the declared step, or the most common interval.
	Step time.Duration `json:"step"`
	// ModalStep is the most common interval between consecutive rows.
	ModalStep time.Duration `json:"modal_step"`
	First     time.Time     `json:"first"`
	Last      time.Time     `json:"last"`
	// Duplicates are rows whose timestamp equals an earlier row's;
	// Unordered rows go back in time; OffGrid rows are not a whole number
	// of steps from the first.
	Duplicates int `json:"duplicates"`
	Unordered  int `json:"unordered"`
	OffGrid    int `json:"off_grid"`
	// GapSteps are grid steps between First and Last without a row;
	// LongestGap is the longest run of them.
	GapSteps   int `json:"gap_steps"`
	LongestGap int `json:"longest_gap"`
	// Value distribution of the known values.
	Min      float64 `json:"min"`
	Max      float64 `json:"max"`
	Mean     float64 `json:"mean"`
	Std      float64 `json:"std"`
	Negative int     `json:"negative"`
	// Fractional counts known values that are not whole numbers.
	Fractional int `json:"fractional"`
	// Deciles of all known values, and the values of the most recent
	// fifth of the rows (for drift against the schema).
	Deciles []float64 `json:"deciles"`
	Recent  []float64 `json:"recent_sample"`
	// HasExo lists the exogenous inputs present.
	HasExo []string `json:"has_exo,omitempty"`
}

// Statistics are the statistics of every series.
type Statistics struct {
	Series []SeriesStats `json:"series"`
}

// ArtifactType implements Payload.
func (*Statistics) ArtifactType() string { return "Statistics" }

// maxRecentSample bounds the recent-values sample kept for drift.
const maxRecentSample = 2000

func modalStep(t []int64) time.Duration {
	counts := map[int64]int{}
	for i := 1; i < len(t); i++ {
		if d := t[i] - t[i-1]; d > 0 {
			counts[d]++
		}
	}
	var best int64
	bestN := 0
	for d, n := range counts {
		if n > bestN || (n == bestN && d < best) {
			best, bestN = d, n
		}
	}
	return time.Duration(best) * time.Millisecond
}

// statsOf computes a series' statistics.
func statsOf(r RawSeries) SeriesStats {
	s := SeriesStats{Name: r.Name, Rows: len(r.T), Step: r.Step, ModalStep: modalStep(r.T)}
	if s.Step == 0 {
		s.Step = s.ModalStep
	}
	if len(r.T) == 0 {
		return s
	}
	lo, hi := r.T[0], r.T[0]
	seen := make(map[int64]bool, len(r.T))
	for i, t := range r.T {
		if seen[t] {
			s.Duplicates++
		}
		seen[t] = true
		if i > 0 && t < r.T[i-1] {
			s.Unordered++
		}
		lo, hi = min(lo, t), max(hi, t)
	}
	s.First, s.Last = time.UnixMilli(lo).UTC(), time.UnixMilli(hi).UTC()
	if step := s.Step.Milliseconds(); step > 0 {
		slots := map[int64]bool{}
		for _, t := range r.T {
			if (t-lo)%step != 0 {
				s.OffGrid++
				continue
			}
			slots[(t-lo)/step] = true
		}
		total := (hi-lo)/step + 1
		keys := make([]int64, 0, len(slots))
		for k := range slots {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		s.GapSteps = int(total) - len(keys)
		for i := 1; i < len(keys); i++ {
			s.LongestGap = max(s.LongestGap, int(keys[i]-keys[i-1]-1))
		}
	}
	var vals []float64
	var sum, sq float64
	for _, v := range r.V {
		if math.IsNaN(v) {
			s.Missing++
			continue
		}
		if v < 0 {
			s.Negative++
		}
		if v != math.Trunc(v) {
			s.Fractional++
		}
		vals = append(vals, v)
		sum += v
		sq += v * v
	}
	if n := float64(len(vals)); n > 0 {
		s.Mean = sum / n
		s.Std = math.Sqrt(math.Max(0, sq/n-s.Mean*s.Mean))
		recent := vals[len(vals)*4/5:]
		stride := max(1, len(recent)/maxRecentSample)
		for i := 0; i < len(recent); i += stride {
			s.Recent = append(s.Recent, recent[i])
		}
		sorted := append([]float64(nil), vals...)
		sort.Float64s(sorted)
		s.Min, s.Max = sorted[0], sorted[len(sorted)-1]
		for q := 1; q <= 9; q++ {
			s.Deciles = append(s.Deciles, sorted[min(len(sorted)-1, q*len(sorted)/10)])
		}
	}
	if x := r.Exo; x != nil {
		if len(x.Upstream) > 0 {
			s.HasExo = append(s.HasExo, "upstream")
		}
		if x.Transactions != nil {
			s.HasExo = append(s.HasExo, "transactions")
		}
		if len(x.Funnel) > 0 {
			s.HasExo = append(s.HasExo, "funnel")
		}
		if x.Incidents != nil {
			s.HasExo = append(s.HasExo, "incidents")
		}
		if len(x.Changes) > 0 {
			s.HasExo = append(s.HasExo, "changes")
		}
	}
	return s
}

// StatisticsGen computes statistics over the examples.
type StatisticsGen struct{}

// Name implements Component.
func (*StatisticsGen) Name() string { return "StatisticsGen" }

// Version implements Versioned.
func (*StatisticsGen) Version() string { return "2" }

// Inputs implements Component.
func (*StatisticsGen) Inputs() []Port { return []Port{{Name: "examples"}} }

// Run implements Component.
func (*StatisticsGen) Run(_ context.Context, in Inputs) (Outputs, error) {
	ex, err := As[*Examples](in["examples"])
	if err != nil {
		return Outputs{}, err
	}
	st := &Statistics{}
	for _, r := range ex.Series {
		st.Series = append(st.Series, statsOf(r))
	}
	return Outputs{Values: map[string]Payload{"statistics": st}}, nil
}

func init() { RegisterType(&Statistics{}) }
