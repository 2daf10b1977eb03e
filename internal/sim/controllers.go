package sim

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/lbsys/lbsys/internal/control"
	"github.com/lbsys/lbsys/internal/forecast"
)

// Controls are the controls `lbsys sim --control` compares: reactive (the
// autoscaler alone) and the controllers of internal/control.
// predictive_nowarm is predictive with cache warming off: the cold cache
// that warming is measured against (the same floors, admission and
// weights).
var Controls = []string{"reactive", "predictive", "predictive_nowarm", "oracle", "holt_winters", "hourly"}

// Controllers returns a factory for the controls' controllers. The
// predictive controller's forecaster is trained once per scenario and seed
// (the history depends on nothing else) and shared by every run of that
// seed; the training is deterministic, so sharing changes no result.
func Controllers(ctx context.Context, tune func(*control.Setup)) ControllerFactory {
	var mu sync.Mutex
	models := map[string]*modelOnce{}
	return func(s *Sim, name string) (control.Controller, error) {
		setup := s.ControlSetup()
		if tune != nil {
			tune(&setup)
		}
		switch name {
		case "", "reactive":
			return nil, nil
		case "predictive", "predictive_nowarm":
			setup.NoWarm = name == "predictive_nowarm"
			key := fmt.Sprintf("%s|%d|%d", s.sc.Name, s.seed, s.sc.History.Days)
			mu.Lock()
			mo := models[key]
			if mo == nil {
				mo = &modelOnce{}
				models[key] = mo
			}
			mu.Unlock()
			mo.once.Do(func() { mo.m, mo.err = control.TrainModel(ctx, setup) })
			if mo.err == nil {
				setup.Model = mo.m
			}
			return control.NewPredictive(ctx, setup)
		case "oracle":
			return control.NewOracle(setup)
		case "holt_winters":
			return control.NewHoltWinters(setup), nil
		case "hourly":
			return control.NewHourly(setup), nil
		}
		return nil, fmt.Errorf("unknown control %q: use one of %s", name, strings.Join(Controls, ", "))
	}
}

type modelOnce struct {
	once sync.Once
	m    *forecast.Model
	err  error
}

// ParseControls checks a comma-separated list of controls.
func ParseControls(list string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, c := range strings.Split(list, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !contains(Controls, c) {
			return nil, fmt.Errorf("unknown control %q: use one of %s", c, strings.Join(Controls, ", "))
		}
		if !seen[c] {
			out = append(out, c)
			seen[c] = true
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no control given: use one or more of %s", strings.Join(Controls, ", "))
	}
	sort.SliceStable(out, func(i, j int) bool { return indexOf(Controls, out[i]) < indexOf(Controls, out[j]) })
	return out, nil
}

func contains(xs []string, x string) bool { return indexOf(xs, x) >= 0 }

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}
