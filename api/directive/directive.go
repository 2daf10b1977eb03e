// Package directive is the only contract between lbsys's control plane (the
// Gaia coordinator, the forecasting pipeline) and its data plane (the
// proxies): the versioned schema of a directive, its validation, the diff
// between two directives, and the messages of the directive stream.
//
// A directive is the whole desired state the control plane asks of every
// proxy: per service, endpoint weights, slow-start ramps, admission bounds,
// cache warm lists and TTL hints, a scale recommendation, and why (the
// forecast and features behind it). It is not a patch: a service missing
// from a directive has no directive. Proxies apply a directive whole or not
// at all (DESIGN.md principles 1, 3 and 4).
//
// The package imports neither net nor net/http so that the coordinator's
// pure state machine can use it.
package directive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the schema this build writes and understands. A proxy
// NACKs a directive with another schema rather than guess at its meaning.
const SchemaVersion = 1

// MaxBytes bounds an encoded directive. Directives are a few kilobytes;
// anything near this size is a mistake.
const MaxBytes = 1 << 20

// Limits on list sizes, so that a bad directive cannot make every proxy
// allocate without bound.
const (
	MaxServices        = 1000
	MaxEndpoints       = 10000 // weights or ramps per service
	MaxWarmPaths       = 1000
	MaxTTLHints        = 100
	MaxForecastPoints  = 10000
	MaxFeatures        = 1000
	MaxRampDuration    = 24 * time.Hour
	MaxTTLHint         = 7 * 24 * time.Hour
	MaxWeight          = 1e6
	MaxScaleReplicas   = 100000
	maxStringBytes     = 4096
	maxAdmissionLimits = 1 << 30
)

// Directive is the desired state of every proxy at one version.
type Directive struct {
	// Schema is SchemaVersion (1). Required.
	Schema int `json:"schema"`
	// Version is assigned by the coordinator when the change carrying the
	// directive is implemented; versions only grow. 0 in a proposal.
	Version uint64 `json:"version,omitempty"`
	// Change is the ID of the change record that produced this version.
	Change uint64 `json:"change,omitempty"`
	// CommittedAt is the coordinator's time (from its replicated log) when
	// the version was created.
	CommittedAt time.Time `json:"committed_at,omitzero"`
	// RollbackOf is set on a version created by a rollback: the earlier
	// version whose content it restores.
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	// Cluster is the ID of the coordinator cluster that committed this
	// version (set by the coordinator, random, fixed when the cluster is
	// first started). Versions are only comparable within one cluster: a
	// rebuilt cluster starts at version 1 again with a new ID, and a proxy
	// refuses directives of another cluster than the one it runs (see
	// docs/coordinator.md, "Cluster identity"). Empty in a proposal.
	Cluster string `json:"cluster,omitempty"`
	// Services maps service names to their directive. A service absent
	// here has no directive: proxies clear whatever they had for it.
	Services map[string]*Service `json:"services"`
}

// Service is the directive for one service.
type Service struct {
	// Weights multiply each endpoint's health weight, by endpoint address
	// as written in the proxy configuration. An endpoint left out keeps
	// factor 1; 0 takes it out of rotation. Needs policy `weighted`.
	Weights map[string]float64 `json:"weights,omitempty"`
	// WeightsWhy is why the weights and ramps are what they are.
	WeightsWhy *Reason `json:"weights_why,omitempty"`
	// SlowStart ramps endpoints' factors linearly (for example to warm a
	// replica scaled out ahead of a forecast peak). Needs policy `weighted`.
	SlowStart []Ramp `json:"slow_start,omitempty"`
	// Admission seeds and bounds the adaptive concurrency limit. Needs
	// `admission:` in the service's proxy configuration.
	Admission *Admission `json:"admission,omitempty"`
	// Cache lists what to warm before a forecast peak and TTL hints.
	Cache *Cache `json:"cache,omitempty"`
	// Scale is a replica-count recommendation for the service's owner or
	// autoscaler; proxies only carry and show it.
	Scale *Scale `json:"scale,omitempty"`
	// Why records the forecast and features behind the directive
	// (DESIGN.md principle 6: every directive can be explained).
	Why *Why `json:"why,omitempty"`
}

// Ramp moves one endpoint's factor from From to To over Duration.
type Ramp struct {
	Endpoint string   `json:"endpoint"`
	From     float64  `json:"from"`
	To       float64  `json:"to"`
	Duration Duration `json:"duration"`
	// Start is when the ramp begins; absent, when the proxy applies the
	// directive.
	Start *time.Time `json:"start,omitempty"`
}

// Admission seeds and bounds a service's adaptive concurrency limit. A zero
// field leaves the proxy's configured value.
type Admission struct {
	// Seed raises the limit now to at least this (for example ahead of a
	// forecast peak); a limit already above it stays.
	Seed int `json:"seed,omitempty"`
	// Min is the limit's floor.
	Min int `json:"min,omitempty"`
	// Cap is the limit's ceiling.
	Cap int `json:"cap,omitempty"`
	// Why is the reason for these bounds.
	Why *Reason `json:"why,omitempty"`
}

// Cache carries cache hints for a service.
type Cache struct {
	// Warm lists request paths (with query, if any) to fetch into the
	// cache before a forecast peak.
	Warm []string `json:"warm,omitempty"`
	// TTLHints suggest freshness lifetimes by path prefix.
	TTLHints []TTLHint `json:"ttl_hints,omitempty"`
	// Why is the reason for the warm list and hints.
	Why *Reason `json:"why,omitempty"`
}

// TTLHint is a freshness lifetime for responses under a path prefix.
type TTLHint struct {
	PathPrefix string   `json:"path_prefix"`
	TTL        Duration `json:"ttl"`
}

// Scale is a replica-count recommendation.
type Scale struct {
	// Replicas is the recommended number of replicas.
	Replicas int `json:"replicas"`
	// Current is the number running when the recommendation was made.
	Current int `json:"current,omitempty"`
	// By is when the replicas should be ready (before the forecast peak).
	By *time.Time `json:"by,omitempty"`
	// Until is when the recommendation lapses unless a later version
	// renews it: an autoscaler holds Replicas as its minimum until then
	// and returns to its own minimum after, so a control plane that stops
	// deciding leaves the fleet to the reactive autoscaler. Absent: the
	// recommendation holds while the directive does.
	Until *time.Time `json:"until,omitempty"`
	// Why is the reason for the recommendation.
	Why *Reason `json:"why,omitempty"`
}

// Why is the evidence behind a service's directive.
type Why struct {
	// Model names the model and its version, e.g. "gbdt@2026-11-27T10:00Z".
	Model string `json:"model"`
	// Blessed is true when the pipeline's evaluator found the model better
	// than the incumbent and the seasonal-naive baseline on held-out time.
	// Standard changes require it.
	Blessed bool `json:"blessed"`
	// Forecast is the predicted load the directive was made for.
	Forecast []Point `json:"forecast,omitempty"`
	// Features are the model inputs that mattered most, by name.
	Features map[string]float64 `json:"features,omitempty"`
	// ExpectedEffect says what the directive should achieve.
	ExpectedEffect string `json:"expected_effect,omitempty"`
}

// Point is one forecast value with an optional prediction interval.
type Point struct {
	At  time.Time `json:"at"`
	RPS float64   `json:"rps"`
	Lo  float64   `json:"lo,omitempty"`
	Hi  float64   `json:"hi,omitempty"`
}

// Duration is a time.Duration written as "30s" in JSON (a number is read as
// seconds).
type Duration time.Duration

// MarshalJSON writes "30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration such as \"30s\" or \"5m\"", s)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("duration: want a string such as \"30s\" or a number of seconds, got %s", truncate(string(b), 40))
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid directive")

// FieldError is one problem, at a field path such as
// `services[catalog].weights[127.0.0.1:9001]`.
type FieldError struct {
	Path string `json:"path"`
	Msg  string `json:"error"`
}

func (e FieldError) String() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ValidationError lists every problem found in a directive.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		parts[i] = f.String()
	}
	return "invalid directive: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Parse decodes a directive strictly (unknown fields, trailing data and
// oversized input are errors) and validates it.
func Parse(data []byte) (*Directive, error) {
	d, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Decode decodes strictly without validating (for callers that validate
// later with more context).
func Decode(data []byte) (*Directive, error) {
	if len(data) > MaxBytes {
		return nil, &ValidationError{[]FieldError{{Msg: fmt.Sprintf("%d bytes is larger than the %d allowed; a directive is a few kilobytes", len(data), MaxBytes)}}}
	}
	var d Directive
	if err := DecodeStrict(data, &d); err != nil {
		return nil, &ValidationError{[]FieldError{{Msg: err.Error()}}}
	}
	return &d, nil
}

// DecodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data. Stream messages use it too.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad JSON: data after the first value; send exactly one JSON object")
	}
	return nil
}

// Validate checks every field and returns a *ValidationError listing all
// problems (nil if none).
func (d *Directive) Validate() error {
	if d == nil {
		return &ValidationError{[]FieldError{{Msg: "no directive"}}}
	}
	v := &validator{}
	switch {
	case d.Schema == 0:
		v.add("schema", "required: set \"schema\": %d", SchemaVersion)
	case d.Schema != SchemaVersion:
		v.add("schema", "unsupported schema %d: this build understands %d; upgrade the proxy or write schema %d", d.Schema, SchemaVersion, SchemaVersion)
	}
	if d.Cluster != "" && !ValidClusterID(d.Cluster) {
		v.add("cluster", "%q is not a cluster ID: 1 to 64 lower-case letters, digits and `-`; the coordinator sets it, leave it out of a proposal", truncate(d.Cluster, 80))
	}
	if d.Services == nil {
		v.add("services", "required: an object of service name to directive (use {} to clear every service)")
	}
	if len(d.Services) > MaxServices {
		v.add("services", "%d services is more than the %d allowed", len(d.Services), MaxServices)
	}
	for _, name := range sortedKeys(d.Services) {
		p := "services[" + name + "]"
		if !validName(name) {
			v.add(p, "invalid service name %q: use lower-case letters, digits, `_` and `-`, starting with a letter or digit, as in the proxy configuration", truncate(name, 64))
		}
		s := d.Services[name]
		if s == nil {
			v.add(p, "null: give the service an object, or leave it out to clear its directive")
			continue
		}
		v.service(p, s)
	}
	if len(v.errs) > 0 {
		return &ValidationError{v.errs}
	}
	return nil
}

type validator struct{ errs []FieldError }

func (v *validator) add(path, format string, args ...any) {
	if len(v.errs) >= 100 {
		return // enough to act on; the rest is noise
	}
	v.errs = append(v.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) service(p string, s *Service) {
	if len(s.Weights) > MaxEndpoints {
		v.add(p+".weights", "%d endpoints is more than the %d allowed", len(s.Weights), MaxEndpoints)
	}
	positive := false
	for _, ep := range sortedKeys(s.Weights) {
		w := s.Weights[ep]
		wp := p + ".weights[" + ep + "]"
		v.endpoint(wp, ep)
		if !finite(w) || w < 0 || w > MaxWeight {
			v.add(wp, "must be a finite number between 0 and %g, got %v", float64(MaxWeight), w)
		}
		if w > 0 {
			positive = true
		}
	}
	if len(s.Weights) > 0 && !positive {
		v.add(p+".weights", "every listed endpoint has weight 0; at least one must be > 0 (the proxy would otherwise ignore the weights), or leave weights out")
	}
	if len(s.SlowStart) > MaxEndpoints {
		v.add(p+".slow_start", "%d ramps is more than the %d allowed", len(s.SlowStart), MaxEndpoints)
	}
	seen := map[string]int{}
	for i, r := range s.SlowStart {
		rp := fmt.Sprintf("%s.slow_start[%d]", p, i)
		if r.Endpoint == "" {
			v.add(rp+".endpoint", "required: the endpoint address to ramp")
		} else {
			v.endpoint(rp+".endpoint", r.Endpoint)
			if j, dup := seen[r.Endpoint]; dup {
				v.add(rp+".endpoint", "%q is already ramped by slow_start[%d]; give each endpoint one ramp", r.Endpoint, j)
			}
			seen[r.Endpoint] = i
		}
		if !finite(r.From) || r.From < 0 || r.From > MaxWeight {
			v.add(rp+".from", "must be a finite number between 0 and %g, got %v", float64(MaxWeight), r.From)
		}
		if !finite(r.To) || r.To < 0 || r.To > MaxWeight {
			v.add(rp+".to", "must be a finite number between 0 and %g, got %v", float64(MaxWeight), r.To)
		}
		if r.Duration <= 0 || r.Duration.Std() > MaxRampDuration {
			v.add(rp+".duration", "must be > 0 and at most %s, got %s", MaxRampDuration, r.Duration.Std())
		}
		if r.Start != nil && (r.Start.Year() < 2000 || r.Start.Year() > 9999) {
			v.add(rp+".start", "%s is not a plausible time; use RFC 3339 such as 2026-11-27T12:00:00Z, or leave it out to start when applied", r.Start.Format(time.RFC3339))
		}
	}
	if a := s.Admission; a != nil {
		ap := p + ".admission"
		v.reason(ap+".why", a.Why)
		if a.Seed < 0 || a.Min < 0 || a.Cap < 0 || a.Seed > maxAdmissionLimits || a.Min > maxAdmissionLimits || a.Cap > maxAdmissionLimits {
			v.add(ap, "seed, min and cap must be between 0 and %d, got seed %d min %d cap %d", maxAdmissionLimits, a.Seed, a.Min, a.Cap)
		} else {
			if a.Seed == 0 && a.Min == 0 && a.Cap == 0 {
				v.add(ap, "empty: set seed, min or cap, or leave admission out")
			}
			if a.Cap > 0 && a.Min > a.Cap {
				v.add(ap+".min", "min (%d) must not exceed cap (%d)", a.Min, a.Cap)
			}
			if a.Seed > 0 && a.Cap > 0 && a.Seed > a.Cap {
				v.add(ap+".seed", "seed (%d) must not exceed cap (%d)", a.Seed, a.Cap)
			}
			if a.Seed > 0 && a.Seed < a.Min {
				v.add(ap+".seed", "seed (%d) must not be below min (%d)", a.Seed, a.Min)
			}
		}
	}
	v.reason(p+".weights_why", s.WeightsWhy)
	if c := s.Cache; c != nil {
		cp := p + ".cache"
		v.reason(cp+".why", c.Why)
		if len(c.Warm) > MaxWarmPaths {
			v.add(cp+".warm", "%d paths is more than the %d allowed", len(c.Warm), MaxWarmPaths)
		}
		seenPath := map[string]int{}
		for i, w := range c.Warm {
			wp := fmt.Sprintf("%s.warm[%d]", cp, i)
			if err := checkPath(w); err != nil {
				v.add(wp, "%v", err)
			}
			if j, dup := seenPath[w]; dup {
				v.add(wp, "%q repeats warm[%d]", truncate(w, 64), j)
			}
			seenPath[w] = i
		}
		if len(c.TTLHints) > MaxTTLHints {
			v.add(cp+".ttl_hints", "%d hints is more than the %d allowed", len(c.TTLHints), MaxTTLHints)
		}
		seenPrefix := map[string]int{}
		for i, h := range c.TTLHints {
			hp := fmt.Sprintf("%s.ttl_hints[%d]", cp, i)
			if err := checkPath(h.PathPrefix); err != nil {
				v.add(hp+".path_prefix", "%v", err)
			}
			if j, dup := seenPrefix[h.PathPrefix]; dup {
				v.add(hp+".path_prefix", "%q repeats ttl_hints[%d]", truncate(h.PathPrefix, 64), j)
			}
			seenPrefix[h.PathPrefix] = i
			if h.TTL <= 0 || h.TTL.Std() > MaxTTLHint {
				v.add(hp+".ttl", "must be > 0 and at most %s, got %s", MaxTTLHint, h.TTL.Std())
			}
		}
	}
	if sc := s.Scale; sc != nil {
		if sc.Replicas < 0 || sc.Replicas > MaxScaleReplicas {
			v.add(p+".scale.replicas", "must be between 0 and %d, got %d", MaxScaleReplicas, sc.Replicas)
		}
		if sc.Current < 0 || sc.Current > MaxScaleReplicas {
			v.add(p+".scale.current", "must be between 0 and %d, got %d", MaxScaleReplicas, sc.Current)
		}
		if sc.Until != nil && (sc.Until.Year() < 1900 || sc.Until.Year() > 9999) {
			v.add(p+".scale.until", "%s is not a plausible time; use RFC 3339 such as 2026-11-27T12:00:00Z", sc.Until.Format(time.RFC3339))
		}
		v.reason(p+".scale.why", sc.Why)
	}
	if w := s.Why; w != nil {
		wp := p + ".why"
		if strings.TrimSpace(w.Model) == "" {
			v.add(wp+".model", "required: name the model that made the forecast (e.g. \"gbdt@2026-11-27\"), or \"manual\"")
		}
		if len(w.Model) > maxStringBytes || len(w.ExpectedEffect) > maxStringBytes {
			v.add(wp, "model and expected_effect must be at most %d bytes", maxStringBytes)
		}
		if len(w.Forecast) > MaxForecastPoints {
			v.add(wp+".forecast", "%d points is more than the %d allowed", len(w.Forecast), MaxForecastPoints)
		}
		for i, pt := range w.Forecast {
			if !finite(pt.RPS) || pt.RPS < 0 || !finite(pt.Lo) || !finite(pt.Hi) {
				v.add(fmt.Sprintf("%s.forecast[%d]", wp, i), "rps, lo and hi must be finite and rps >= 0")
			} else if pt.Hi != 0 && pt.Lo > pt.Hi {
				v.add(fmt.Sprintf("%s.forecast[%d]", wp, i), "lo (%v) above hi (%v)", pt.Lo, pt.Hi)
			}
		}
		if len(w.Features) > MaxFeatures {
			v.add(wp+".features", "%d features is more than the %d allowed", len(w.Features), MaxFeatures)
		}
		for _, k := range sortedKeys(w.Features) {
			if !finite(w.Features[k]) {
				v.add(wp+".features["+k+"]", "must be finite, got %v", w.Features[k])
			}
		}
	}
}

// endpoint checks an endpoint key: the proxy's endpoint identity is the
// address as configured (host:port). The check stays textual: this package
// may not import net.
func (v *validator) endpoint(path, ep string) {
	host, port, ok := "", "", false
	if i := strings.LastIndex(ep, ":"); i >= 0 {
		host, port, ok = ep[:i], ep[i+1:], true
	}
	n, err := strconv.Atoi(port)
	switch {
	case len(ep) > 300:
		v.add(path, "endpoint address longer than 300 bytes")
	case !ok || host == "" || err != nil || n < 1 || n > 65535 || strings.ContainsAny(ep, " \t\r\n/"):
		v.add(path, "%q is not host:port; use the endpoint address exactly as written in the proxy configuration (e.g. 127.0.0.1:9001)", truncate(ep, 64))
	}
}

func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path; write an absolute path such as /catalog/items")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must start with /", truncate(p, 64))
	case len(p) > 2048:
		return errors.New("path longer than 2048 bytes")
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q contains a space or control character; percent-encode it", truncate(p, 64))
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '_' || r == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Clone returns a deep copy (through JSON, which is the directive's
// canonical form anyway).
func (d *Directive) Clone() *Directive {
	if d == nil {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		panic("directive: marshal: " + err.Error()) // only finite numbers reach here after Validate
	}
	var c Directive
	if err := json.Unmarshal(b, &c); err != nil {
		panic("directive: unmarshal: " + err.Error())
	}
	return &c
}

// Content returns a copy with the coordinator-assigned fields (version,
// change, commit time, rollback origin, cluster) cleared: what a rollback
// restores and what two versions are compared on.
func (d *Directive) Content() *Directive {
	c := d.Clone()
	c.Version, c.Change, c.CommittedAt, c.RollbackOf, c.Cluster = 0, 0, time.Time{}, 0, ""
	return c
}

// ValidClusterID reports whether s is a well-formed cluster ID: 1 to 64
// lower-case ASCII letters, digits and `-`. The coordinator generates
// 32 hex digits; the check is loose so that IDs stay readable in tests.
func ValidClusterID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Equal reports whether a and b have the same content (ignoring version,
// change, commit time, rollback origin and cluster).
func Equal(a, b *Directive) bool {
	if a == nil || b == nil {
		return a == b
	}
	ja, _ := json.Marshal(a.Content())
	jb, _ := json.Marshal(b.Content())
	return bytes.Equal(ja, jb)
}

// ServiceNames returns the services of d, sorted.
func (d *Directive) ServiceNames() []string {
	if d == nil {
		return nil
	}
	return sortedKeys(d.Services)
}

// SectionEqual reports whether two service directives are the same.
func SectionEqual(a, b *Service) bool {
	if a == nil || b == nil {
		return a == b
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
