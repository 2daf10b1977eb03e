package directive

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Reason is why one field of a service's directive has its value
// (DESIGN.md principle 6): the figures it was computed from, in a form a
// person and a program can both read. `lbsys explain` prints them.
type Reason struct {
	// Text is one or two sentences: the rule and its numbers, e.g. "floor
	// 30 replicas = ⌈1800 rps / (100 rps per replica × 0.6)⌉ for announced
	// flash-sale at 10:00, ready by 09:50".
	Text string `json:"text"`
	// Driver names what set the value: "forecast", "event", "capacity",
	// "telemetry", "manual".
	Driver string `json:"driver,omitempty"`
	// Event is the announced event behind the value, if any
	// ("flash-sale 2026-11-27T10:00:00Z").
	Event string `json:"event,omitempty"`
	// LoadRPS is the load the value was sized for and At when that load
	// is expected.
	LoadRPS float64    `json:"load_rps,omitempty"`
	At      *time.Time `json:"at,omitempty"`
	// PerReplicaRPS is the capacity figure used (a replica's rate at full
	// utilisation), when one was.
	PerReplicaRPS float64 `json:"per_replica_rps,omitempty"`
	// ExpectedEffect says what the value should achieve.
	ExpectedEffect string `json:"expected_effect,omitempty"`
}

func (v *validator) reason(p string, r *Reason) {
	if r == nil {
		return
	}
	if strings.TrimSpace(r.Text) == "" {
		v.add(p+".text", "required: say why the field has its value")
	}
	if len(r.Text) > maxStringBytes || len(r.ExpectedEffect) > maxStringBytes || len(r.Driver) > 64 || len(r.Event) > 256 {
		v.add(p, "text and expected_effect must be at most %d bytes, driver 64, event 256", maxStringBytes)
	}
	for name, x := range map[string]float64{"load_rps": r.LoadRPS, "per_replica_rps": r.PerReplicaRPS} {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			v.add(p+"."+name, "must be a finite number >= 0, got %v", x)
		}
	}
	if r.At != nil && (r.At.Year() < 1900 || r.At.Year() > 9999) {
		v.add(p+".at", "%s is not a plausible time", r.At.Format(time.RFC3339))
	}
}

// Explain returns the service section's reasons, one line per field that
// carries one, in a stable order.
func (s *Service) Explain() []string {
	if s == nil {
		return nil
	}
	var out []string
	add := func(field string, r *Reason) {
		if r != nil {
			out = append(out, fmt.Sprintf("%s: %s", field, r.Text))
		}
	}
	add("weights", s.WeightsWhy)
	if s.Admission != nil {
		add("admission", s.Admission.Why)
	}
	if s.Cache != nil {
		add("cache", s.Cache.Why)
	}
	if s.Scale != nil {
		add("scale", s.Scale.Why)
	}
	return out
}

// WriteExplanation writes, for each service of d (or only service when it
// is not empty), what the directive asks and why, field by field: the
// text `lbsys explain` and the proxy's /explain print. It returns an error
// naming the services d has when service is not among them.
func WriteExplanation(w io.Writer, d *Directive, service string) error {
	if d == nil {
		return fmt.Errorf("no directive")
	}
	names := d.ServiceNames()
	if service != "" {
		if d.Services[service] == nil {
			return fmt.Errorf("version %d has no section for service %q; it has %s", d.Version, service, strings.Join(names, ", "))
		}
		names = []string{service}
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	head := fmt.Sprintf("directive version %d", d.Version)
	if d.Change != 0 {
		head += fmt.Sprintf(" (change %d", d.Change)
		if !d.CommittedAt.IsZero() {
			head += ", committed " + d.CommittedAt.UTC().Format(time.RFC3339)
		}
		head += ")"
	}
	p("%s\n", head)
	if len(names) == 0 {
		p("  no service has a section: proxies run their configured policies and autoscalers their own minimum\n")
	}
	reason := func(r *Reason) {
		if r == nil {
			p("      why: (no reason recorded)\n")
			return
		}
		p("      why: %s\n", r.Text)
		var facts []string
		if r.Driver != "" {
			facts = append(facts, "driver "+r.Driver)
		}
		if r.Event != "" {
			facts = append(facts, "event "+r.Event)
		}
		if r.LoadRPS > 0 {
			at := ""
			if r.At != nil {
				at = " at " + r.At.UTC().Format(time.RFC3339)
			}
			facts = append(facts, fmt.Sprintf("load %.4g rps%s", r.LoadRPS, at))
		}
		if r.PerReplicaRPS > 0 {
			facts = append(facts, fmt.Sprintf("capacity %.4g rps per replica", r.PerReplicaRPS))
		}
		if len(facts) > 0 {
			p("      from: %s\n", strings.Join(facts, "; "))
		}
		if r.ExpectedEffect != "" {
			p("      expected effect: %s\n", r.ExpectedEffect)
		}
	}
	for _, name := range names {
		s := d.Services[name]
		p("\nservice %s\n", name)
		if s.Scale != nil {
			sc := s.Scale
			line := fmt.Sprintf("  scale: at least %d replicas", sc.Replicas)
			if sc.By != nil {
				line += " by " + sc.By.UTC().Format(time.RFC3339)
			}
			if sc.Until != nil {
				line += ", until " + sc.Until.UTC().Format(time.RFC3339)
			}
			p("%s\n", line)
			reason(sc.Why)
		}
		if a := s.Admission; a != nil {
			p("  admission: seed %d, min %d, cap %d (0: the proxy's configured value)\n", a.Seed, a.Min, a.Cap)
			reason(a.Why)
		}
		if len(s.Weights) > 0 || len(s.SlowStart) > 0 {
			eps := make([]string, 0, len(s.Weights))
			for ep := range s.Weights {
				eps = append(eps, ep)
			}
			sort.Strings(eps)
			var parts []string
			for _, ep := range eps {
				parts = append(parts, fmt.Sprintf("%s %g", ep, s.Weights[ep]))
			}
			p("  weights: %s; %d slow-start ramps\n", strings.Join(parts, ", "), len(s.SlowStart))
			reason(s.WeightsWhy)
		}
		if c := s.Cache; c != nil {
			p("  cache: %d paths to warm, %d TTL hints\n", len(c.Warm), len(c.TTLHints))
			// The paths themselves (the first few: a sale's list may hold
			// hundreds), so that a reader sees what will be fetched.
			const show = 10
			if len(c.Warm) > 0 {
				more := ""
				if len(c.Warm) > show {
					more = fmt.Sprintf(" … and %d more", len(c.Warm)-show)
				}
				p("    warm: %s%s\n", strings.Join(c.Warm[:min(len(c.Warm), show)], " "), more)
			}
			for i, h := range c.TTLHints {
				if i == show {
					p("    … and %d more TTL hints\n", len(c.TTLHints)-show)
					break
				}
				p("    ttl hint: %s fresh for %s\n", h.PathPrefix, h.TTL.Std())
			}
			reason(c.Why)
		}
		if wy := s.Why; wy != nil {
			p("  evidence: model %s (blessed %v)\n", wy.Model, wy.Blessed)
			if len(wy.Forecast) > 0 {
				pk := wy.Forecast[0]
				for _, f := range wy.Forecast {
					if f.Hi > pk.Hi {
						pk = f
					}
				}
				p("    forecast: %d points from %s to %s, upper-band peak %.4g rps at %s\n", len(wy.Forecast),
					wy.Forecast[0].At.UTC().Format(time.RFC3339), wy.Forecast[len(wy.Forecast)-1].At.UTC().Format(time.RFC3339), pk.Hi, pk.At.UTC().Format(time.RFC3339))
			}
			if len(wy.Features) > 0 {
				fs := make([]string, 0, len(wy.Features))
				for f := range wy.Features {
					fs = append(fs, f)
				}
				sort.Strings(fs)
				var parts []string
				for _, f := range fs {
					parts = append(parts, fmt.Sprintf("%s %+.4g", f, wy.Features[f]))
				}
				p("    drivers: %s\n", strings.Join(parts, ", "))
			}
		}
	}
	return nil
}

// WithoutReasons returns a copy of d with every reason and the evidence
// (each section's why) removed: what the directive asks of proxies and
// autoscalers, for telling whether a new plan changes anything. A plan
// whose only difference is its reasons (a later run's model name, a fresh
// forecast) must not become a new version.
func (d *Directive) WithoutReasons() *Directive {
	c := d.Clone()
	for _, s := range c.Services {
		if s == nil {
			continue
		}
		s.Why, s.WeightsWhy = nil, nil
		if s.Admission != nil {
			s.Admission.Why = nil
		}
		if s.Cache != nil {
			s.Cache.Why = nil
		}
		if s.Scale != nil {
			s.Scale.Why = nil
		}
	}
	return c
}
