package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/agent"
)

// GET /explain[?service=NAME]: why the proxy does what it does now. First
// what the directive it runs asks of each service and why, field by field
// (directive.WriteExplanation, the text `lbsys explain` prints for a file
// or the coordinator too); then what its picks read now: each service's
// policy state (balance.Describe, as /status shows it), admission limit,
// and endpoints with health, weights and in-flight counts. Text by
// default (`lbsys explain --admin URL` prints it as it is); JSON with
// `Accept: application/json` or ?format=json.

// Explanation is the JSON body of GET /explain.
type Explanation struct {
	ConfigVersion string    `json:"config_version"`
	Time          time.Time `json:"time"`
	// Coordinator is the directive agent's state (nil: no coordinator).
	Coordinator *agent.Status `json:"coordinator,omitempty"`
	// Directive identifies the directive the proxy runs (nil: none).
	Directive *DirectiveHead       `json:"directive,omitempty"`
	Services  []ServiceExplanation `json:"services"`
}

// DirectiveHead identifies a directive.
type DirectiveHead struct {
	Version     uint64    `json:"version"`
	Change      uint64    `json:"change,omitempty"`
	Cluster     string    `json:"cluster,omitempty"`
	CommittedAt time.Time `json:"committed_at,omitzero"`
	RollbackOf  uint64    `json:"rollback_of,omitempty"`
}

// ServiceExplanation is one service: what the directive asks and why, and
// what the picks read now.
type ServiceExplanation struct {
	Name string `json:"name"`
	// Directive is the service's section of the running directive, each
	// field with its reason (nil: the directive has none for it).
	Directive *directive.Service `json:"directive,omitempty"`
	// Reasons are the section's reasons, one line per field.
	Reasons []string `json:"reasons,omitempty"`
	// Now is the service as /status shows it: policy and its state,
	// admission snapshot, endpoints with health, weights and in-flight.
	Now ServiceStatus `json:"now"`
}

// explainLines bounds the lines of one service's policy state in the
// text form; the JSON form has all of it.
const explainLines = 120

func (px *Proxy) handleExplain(w http.ResponseWriter, r *http.Request) {
	asJSON, err := explainFormat(r.URL.Query().Get("format"), r.Header.Get("Accept"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ex, err := px.Explain(r.URL.Query().Get("service"))
	if err != nil {
		if asJSON {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		} else {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, "%s\n", err)
		}
		return
	}
	if asJSON {
		writeJSON(w, http.StatusOK, ex)
		return
	}
	var b bytes.Buffer
	px.writeExplanation(&b, ex, r.URL.Query().Get("service"))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// Explain returns why the proxy does what it does now, for one service
// or ("") every service. An unknown service is an error that lists the
// services the proxy has.
func (px *Proxy) Explain(service string) (*Explanation, error) {
	st := px.Status()
	d := px.appliedDirective()
	ex := &Explanation{ConfigVersion: st.ConfigVersion, Time: px.clock.Now().UTC()}
	if st.Coordinator != nil {
		s := st.Coordinator.Status
		ex.Coordinator = &s
	}
	if d != nil {
		ex.Directive = &DirectiveHead{Version: d.Version, Change: d.Change, Cluster: d.Cluster, CommittedAt: d.CommittedAt, RollbackOf: d.RollbackOf}
	}
	names := make([]string, 0, len(st.Services))
	for _, s := range st.Services {
		names = append(names, s.Name)
		if service != "" && s.Name != service {
			continue
		}
		se := ServiceExplanation{Name: s.Name, Now: s}
		if d != nil && d.Services[s.Name] != nil {
			se.Directive = d.Services[s.Name]
			se.Reasons = se.Directive.Explain()
		}
		ex.Services = append(ex.Services, se)
	}
	if service != "" && len(ex.Services) == 0 {
		return nil, fmt.Errorf("no service %q on this proxy; it has %s (without ?service= every one is explained)",
			clipText(service, 80), strings.Join(names, ", "))
	}
	return ex, nil
}

// writeExplanation writes the text form of ex, made for service (""
// for every service).
func (px *Proxy) writeExplanation(w io.Writer, ex *Explanation, service string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("lbsys proxy, configuration %s, at %s\n", ex.ConfigVersion, ex.Time.Format(time.RFC3339))
	switch co := ex.Coordinator; {
	case co == nil:
		p("coordinator: none configured (directives only through POST /directive)\n")
	case co.Degraded:
		p("coordinator: unreachable since %s (%s); keeping the last good directive\n", co.DegradedSince.UTC().Format(time.RFC3339), co.LastError)
	case co.Connected:
		p("coordinator: connected to %s\n", co.Leader)
	default:
		p("coordinator: connecting to %s\n", strings.Join(co.Coordinators, ", "))
	}
	if co := ex.Coordinator; co != nil && co.Rejected != 0 {
		p("coordinator: version %d refused: %s\n", co.Rejected, co.RejectError)
	}

	p("\n== What the directive asks, and why\n\n")
	d := px.appliedDirective()
	switch {
	case ex.Directive == nil || d == nil:
		p("no directive: every service runs its configured policy and admission settings\n")
	case d.Version != ex.Directive.Version:
		// A new directive arrived between Explain and here: say so
		// rather than mix two versions.
		p("the directive changed while this page was written (now version %d); ask again\n", d.Version)
	default:
		// One service: its section. Every service: the whole directive,
		// with the sections of services this proxy does not have.
		onProxy := map[string]bool{}
		for _, s := range ex.Services {
			onProxy[s.Name] = true
		}
		if service == "" || d.Services[service] != nil {
			if err := directive.WriteExplanation(w, d, service); err != nil {
				p("%v\n", err)
			}
			p("\n")
		}
		for _, s := range ex.Services {
			if s.Directive == nil {
				p("directive version %d has no section for service %s: it runs its configured policy and admission settings\n", d.Version, s.Name)
			}
		}
		if service == "" {
			for _, name := range d.ServiceNames() {
				if !onProxy[name] {
					p("service %s is not on this proxy: its section is for others\n", name)
				}
			}
		}
	}

	p("\n== What the picks read now\n")
	for _, s := range ex.Services {
		n := s.Now
		p("\nservice %s: policy %s, priority %s, %d in flight, %d retrying, affinity %s\n", n.Name, n.Policy, n.Priority, n.InFlight, n.Retrying, n.Affinity)
		if a := n.Admission; a != nil {
			p("  admission: limit %.1f (bounds %.0f to %.0f), %d in flight, gradient %.3g, RTT long %.1f ms, short %.1f ms\n",
				a.Limit, a.Min, a.Max, a.InFlight, a.Gradient, a.LongRTTms, a.ShortRTTms)
			p("    admitted %s; rejected %s; capacity %s\n", perPriority(a.Admitted), perPriority(a.Rejected), perPriority(a.Capacity))
		} else {
			p("  admission: off (no limit)\n")
		}
		p("  policy state:\n")
		lines := describeLines(n.PolicyState)
		if len(lines) > explainLines {
			more := len(lines) - explainLines
			lines = append(lines[:explainLines], fmt.Sprintf("… %d more lines (GET /explain?service=%s with Accept: application/json has them all)", more, n.Name))
		}
		for _, l := range lines {
			p("    %s\n", l)
		}
		inRotation := 0
		for _, e := range n.Endpoints {
			if e.EffectiveWeight > 0 {
				inRotation++
			}
		}
		panicking := "no"
		if n.Panic {
			panicking = "yes: too few healthy endpoints, so health is ignored and every endpoint takes traffic"
		}
		p("  endpoints: %d configured, %d in rotation; panic: %s\n", len(n.Endpoints), inRotation, panicking)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "    ENDPOINT\tSTATE\tCHECK\tWEIGHT\tDIRECTIVE\tEFFECTIVE\tIN-FLIGHT\tEJECTIONS\tLAST CHANGE\n")
		for _, e := range n.Endpoints {
			dw := "-"
			if s.Directive != nil {
				if v, ok := s.Directive.Weights[e.ID]; ok {
					dw = strconv.FormatFloat(v, 'g', 4, 64)
				}
			}
			check := "passing"
			if !e.ActiveHealthy {
				check = "failing"
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\t%g\t%s\t%.3g\t%d\t%d\t%s\n", e.ID, endpointState(e), check, e.Weight, dw,
				e.EffectiveWeight, e.InFlight, e.Ejections, e.LastChange)
		}
		tw.Flush()
	}
}

// endpointState says in words whether picks can choose an endpoint.
func endpointState(e EndpointStatus) string {
	switch {
	case e.Ejected:
		return "ejected until " + e.EjectedUntil.UTC().Format("15:04:05Z")
	case !e.Available:
		return "unavailable"
	case e.SlowStart:
		return "slow start"
	case e.EffectiveWeight > 0:
		return "in rotation"
	}
	return "out of rotation"
}

// perPriority writes "critical 10, normal 3, sheddable 0" in a stable
// order.
func perPriority(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// describeLines flattens a policy's Describe() value (maps, structs, lists
// of either) into "path: value" lines, sorted by path within each object,
// lists of objects one element per line.
func describeLines(v any) []string {
	if v == nil {
		return []string{"(none)"}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return []string{"(cannot be shown: " + err.Error() + ")"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return []string{"(cannot be shown: " + err.Error() + ")"}
	}
	var out []string
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch t := x.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				sub := k
				switch {
				case strings.ContainsAny(k, ". "):
					sub = path + "[" + k + "]" // an address or a name with dots
				case path != "":
					sub = path + "." + k
				}
				walk(sub, t[k])
			}
			if len(keys) == 0 && path != "" {
				out = append(out, path+": {}")
			}
		case []any:
			scalars := true
			for _, e := range t {
				switch e.(type) {
				case map[string]any, []any:
					scalars = false
				}
			}
			if scalars {
				b, _ := json.Marshal(t)
				out = append(out, fmt.Sprintf("%s: %s", path, b))
				return
			}
			for i, e := range t {
				b, _ := json.Marshal(e)
				out = append(out, fmt.Sprintf("%s[%d]: %s", path, i, b))
			}
		default:
			b, _ := json.Marshal(t)
			if path == "" {
				path = "value"
			}
			out = append(out, fmt.Sprintf("%s: %s", path, b))
		}
	}
	walk("", x)
	return out
}

// explainFormat decides between text (the default) and JSON: ?format=
// when given, else the Accept header (JSON only when it prefers
// application/json to text/plain).
func explainFormat(format, accept string) (asJSON bool, err error) {
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "":
	case "json":
		return true, nil
	case "text", "txt":
		return false, nil
	default:
		return false, fmt.Errorf("format: want json or text, got %q", clipText(format, 40))
	}
	return acceptQ(accept, "application", "json") > acceptQ(accept, "text", "plain"), nil
}

// acceptQ is the quality an Accept header gives to typ/sub: the q of the
// most specific range that matches it (RFC 9110 §12.5.1), 0 when none
// does. An empty header accepts everything equally (q 1). A range whose
// q does not parse is ignored.
func acceptQ(accept, typ, sub string) float64 {
	if strings.TrimSpace(accept) == "" {
		return 1
	}
	best, bestSpec := 0.0, 0
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		t, s, ok := strings.Cut(mt, "/")
		if !ok {
			continue
		}
		spec := 0
		switch {
		case t == typ && s == sub:
			spec = 3
		case t == typ && s == "*":
			spec = 2
		case t == "*" && s == "*":
			spec = 1
		default:
			continue
		}
		q := 1.0
		valid := true
		for _, prm := range fields[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(prm), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 || f != f {
					valid = false
				}
				q = f
			}
		}
		if !valid {
			continue
		}
		if spec > bestSpec || (spec == bestSpec && q > best) {
			best, bestSpec = q, spec
		}
	}
	return best
}

// clipText shortens s for an error message (which quotes it with %q).
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
