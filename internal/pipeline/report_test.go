package pipeline

import (
	"strings"
	"testing"
	"time"
)

// TestRunSummaryText: the terminal summary says, per series, why it was
// or was not pushed, and what the directive planner did with the
// coordinator (the golden test in cmd/lbsys pins a whole run).
func TestRunSummaryText(t *testing.T) {
	from := time.Date(1995, 7, 14, 0, 0, 0, 0, time.UTC)
	base := RunSummary{Run: "run-1", Status: "succeeded", Seconds: 1.5, From: from, To: from.Add(14 * 24 * time.Hour), Step: "5m0s",
		Store: "s.db", Data: "s.db.artifacts", Executions: []ExecutionSummary{{Component: "Trainer", State: "cached"}}, Cached: 1, Pushed: 1,
		Series: []SeriesSummary{
			{Name: "catalog", Pushed: true, Artifact: 11, Inputs: map[string]any{"incidents": 1},
				Horizons: []HorizonSummary{{Horizon: "15m", MASE: 0.5, SNMASE: 0.9, Next: 155.9, Peak: 166.5, Upper: 232.6}}},
			{Name: "cart", Reason: "not blessed: worse than seasonal naive", Serving: "run-0",
				Horizons: []HorizonSummary{{Horizon: "15m", MASE: nil, SNMASE: 0.9}}},
		}}
	cases := []struct {
		name string
		edit func(*RunSummary)
		want []string
	}{
		{"pushed and not", func(*RunSummary) {}, []string{
			"run run-1 succeeded in 1.5s: 1 of 1 components cached; 1 of 2 series pushed\n",
			"window 1995-07-14 00:00:00 .. 1995-07-28 00:00:00, step 5m0s; store s.db, artifacts s.db.artifacts\n",
			"catalog: inputs: incidents 1; pushed (forecast artifact 11)\n",
			"cart: inputs: none; not pushed: not blessed: worse than seasonal naive; serving: the model of run-0\n",
			"cart     15m      - (0.9)",
		}},
		{"dry run", func(s *RunSummary) {
			s.DryRun = true
			s.Directive = &DirectiveResult{DryRun: true, Outcome: "dry run", Base: 3}
		}, []string{"1 of 2 series would be pushed (dry run)", "catalog: inputs: incidents 1; blessed: would be pushed (dry run)",
			"dry run: no forecast written, nothing recorded as pushed, nothing proposed\n", "directive: dry run (against version 3)\n"}},
		{"standard outside the policy, then normal", func(s *RunSummary) {
			s.Directive = &DirectiveResult{Base: 3, Standard: &ProposedChange{ID: 4, Policy: []string{"weight moves 50%"}},
				Normal: &ProposedChange{ID: 5, State: "authorize"}, Withdrawn: []uint64{2}}
		}, []string{"directive: standard change 4 was outside the coordinator's policy (weight moves 50%); proposed as normal change 5, authorize: approve with `lbsys change approve 5 --reason ...`\n",
			"directive: withdrew stale pipeline changes [2]\n"}},
	}
	for _, tc := range cases {
		s := base
		tc.edit(&s)
		got := s.Text()
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the summary lacks %q:\n%s", tc.name, w, got)
			}
		}
	}
}
