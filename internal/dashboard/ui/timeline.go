package ui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// describeSection is one service's section as the timeline shows it: each
// field the directive sets, in the words of directive.WriteExplanation,
// with its reason.
func describeSection(name string, s *directive.Service, changed bool) ChangeService {
	cs := ChangeService{Name: name, Changed: changed}
	if sc := s.Scale; sc != nil {
		v := fmt.Sprintf("at least %d replicas", sc.Replicas)
		if sc.By != nil {
			v += " by " + sc.By.UTC().Format(time.RFC3339)
		}
		if sc.Until != nil {
			v += ", until " + sc.Until.UTC().Format(time.RFC3339)
		}
		cs.Fields = append(cs.Fields, Field{Field: "scale", Value: v, Why: copyReason(sc.Why)})
	}
	if a := s.Admission; a != nil {
		cs.Fields = append(cs.Fields, Field{Field: "admission",
			Value: fmt.Sprintf("seed %d, min %d, cap %d (0: the proxy's configured value)", a.Seed, a.Min, a.Cap),
			Why:   copyReason(a.Why)})
	}
	if len(s.Weights) > 0 || len(s.SlowStart) > 0 {
		eps := make([]string, 0, len(s.Weights))
		for ep := range s.Weights {
			eps = append(eps, ep)
		}
		sort.Strings(eps)
		parts := make([]string, 0, len(eps))
		for _, ep := range eps {
			parts = append(parts, fmt.Sprintf("%s %g", ep, s.Weights[ep]))
		}
		v := strings.Join(parts, ", ")
		if v == "" {
			v = "none"
		}
		cs.Fields = append(cs.Fields, Field{Field: "weights",
			Value: fmt.Sprintf("%s; %d slow-start ramps", v, len(s.SlowStart)), Why: copyReason(s.WeightsWhy)})
	}
	if ca := s.Cache; ca != nil {
		cs.Fields = append(cs.Fields, Field{Field: "cache",
			Value: fmt.Sprintf("%d paths to warm, %d TTL hints", len(ca.Warm), len(ca.TTLHints)), Why: copyReason(ca.Why)})
	}
	if w := s.Why; w != nil {
		cs.Model, cs.Blessed, cs.Expected = w.Model, w.Blessed, w.ExpectedEffect
		for i := range w.Forecast {
			if cs.Peak == nil || w.Forecast[i].Hi > cs.Peak.Hi {
				p := w.Forecast[i]
				p.At = p.At.UTC()
				cs.Peak = &p
			}
		}
	}
	return cs
}

// copyReason copies r so that the timeline holds nothing of the directive
// (which may carry a forecast of thousands of points) once it is replaced.
func copyReason(r *directive.Reason) *directive.Reason {
	if r == nil {
		return nil
	}
	c := *r
	if r.At != nil {
		t := r.At.UTC()
		c.At = &t
	}
	return &c
}

// pushBounded appends v, dropping the oldest elements beyond max. The
// slice keeps its backing array once full, so a full list allocates
// nothing more.
func pushBounded[T any](s []T, v T, max int) []T {
	if len(s) < max {
		return append(s, v)
	}
	copy(s, s[len(s)-max+1:])
	s = s[:max]
	s[max-1] = v
	return s
}

// clip shortens s to at most n bytes without splitting a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
