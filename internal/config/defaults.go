package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults that are not plain durations, named once because both the
// defaulting code and its messages use them.
const (
	defaultAdminListen        = "127.0.0.1:9901"
	defaultAdminTokenEnv      = "LBSYS_ADMIN_TOKEN"
	defaultAffinityCookie     = "lbsys_affinity"
	defaultAffinitySecretEnv  = "LBSYS_AFFINITY_SECRET"
	defaultPolicy             = "round_robin"
	defaultPriority           = "normal"
	defaultHealthPath         = "/healthz"
	defaultExpectedStatuses   = "200-399"
	defaultMaxHeaderBytes     = 64 << 10
	defaultMaxRequestBody     = 10 << 20
	defaultRetryMaxBodyBytes  = 64 << 10
	defaultMaxIdlePerEndpoint = 256
	defaultRingSeconds        = 600
)

// defaultRetryOn lists failures where the endpoint cannot have acted on
// the request (connect failure), said so (502/503/504), or the connection
// broke. Plain 5xx and timeouts are left out because the work may have
// happened.
var defaultRetryOn = []string{"connect_failure", "reset", "gateway_error"}

// SetDefaults fills every unset field with its documented default. Parse
// calls it; call it yourself for a Config built in Go, before Validate. In
// Go, unlike in YAML, a zero field counts as unset, so fields whose zero
// means "off" (timeouts.request, slow_start.min_weight_percent, ...) must be
// zeroed after SetDefaults.
func (c *Config) SetDefaults() {
	ch := &checker{}
	ch.labelsFor(c)
	ch.applyDefaults(c)
}

// applyDefaults fills unset fields. When the checker knows which fields the
// file wrote (ch.set), an explicit zero is kept where zero means "off" and
// reported where zero is invalid, rather than silently replaced.
func (ch *checker) applyDefaults(c *Config) {
	defStr(&c.Admin.Listen, defaultAdminListen)
	defStr(&c.Admin.TokenEnv, defaultAdminTokenEnv)

	s := &c.Server
	ch.defDur(&s.ReadHeaderTimeout, "server.read_header_timeout", 10*time.Second, false)
	ch.defDur(&s.IdleTimeout, "server.idle_timeout", 120*time.Second, false)
	ch.defDur(&s.WriteTimeout, "server.write_timeout", 60*time.Second, false)
	ch.defSize(&s.MaxHeaderBytes, "server.max_header_bytes", defaultMaxHeaderBytes, false)
	ch.defSize(&s.MaxRequestBodyBytes, "server.max_request_body_bytes", defaultMaxRequestBody, false)
	ch.defDur(&s.DrainTimeout, "server.drain_timeout", 30*time.Second, true)
	defStr(&s.Engine, EngineLbsys)

	for i := range c.Listeners {
		l := &c.Listeners[i]
		defStr(&l.Name, l.Listen)
		for j := range l.Routes {
			r := &l.Routes[j]
			defStr(&r.Name, l.Name+"#"+strconv.Itoa(j))
			defStr(&r.Match.PathPrefix, "/")
		}
	}

	for i := range c.Services {
		ch.serviceDefaults(&c.Services[i], ch.servicePath(i))
	}

	ch.defInt(&c.Telemetry.RingSeconds, "telemetry.ring_seconds", defaultRingSeconds, false)
	ch.coordinatorDefaults(&c.Coordinator)
	ch.cacheDefaults(c)
	ch.accessLogDefaults(c)
}

func (ch *checker) serviceDefaults(s *Service, p string) {
	defStr(&s.Priority, defaultPriority)
	for j := range s.Endpoints {
		ep := p + ".endpoints[" + strconv.Itoa(j) + "].weight"
		if s.Endpoints[j].Weight == 0 && ch.set[ep] {
			ch.errf(ep, "must be between 1 and 10000, got 0; to take an endpoint out of rotation, remove it from the list")
			ch.markZeroed(ep)
			continue
		}
		defInt(&s.Endpoints[j].Weight, 1)
	}
	defStr(&s.Policy.Name, defaultPolicy)

	h := &s.Health
	if a := h.Active; a != nil {
		ap := p + ".health.active"
		defStr(&a.Path, defaultHealthPath)
		ch.defDur(&a.Interval, ap+".interval", 5*time.Second, false)
		ch.defDur(&a.Timeout, ap+".timeout", time.Second, false)
		ch.defInt(&a.HealthyThreshold, ap+".healthy_threshold", 2, false)
		ch.defInt(&a.UnhealthyThreshold, ap+".unhealthy_threshold", 3, false)
		ch.defList(&a.ExpectedStatuses, ap+".expected_statuses", []string{defaultExpectedStatuses},
			`list at least one status range such as "200-299", or remove the line to accept 200-399`)
	}
	o := &h.Outlier
	op := p + ".health.outlier"
	defIntPtr(&o.Consecutive5xx, 5)
	defIntPtr(&o.ConsecutiveGatewayFailure, 3)
	ch.defDur(&o.BaseEjectionTime, op+".base_ejection_time", 30*time.Second, false)
	ch.defDur(&o.MaxEjectionTime, op+".max_ejection_time", 300*time.Second, false)
	defFloatPtr(&o.MaxEjectionPercent, 50)
	defFloatPtr(&h.PanicThreshold, 50)
	if ss := h.SlowStart; ss != nil {
		sp := p + ".health.slow_start"
		ch.defFloat(&ss.Aggression, sp+".aggression", 1, false)
		ch.defFloat(&ss.MinWeightPercent, sp+".min_weight_percent", 10, true)
	}

	r := &s.Retries
	rp := p + ".retries"
	defIntPtr(&r.Attempts, 2)
	ch.defList(&r.On, rp+".on", defaultRetryOn,
		"list at least one condition, or set `attempts: 0` to turn retries off")
	defFloatPtr(&r.BudgetPercent, 20)
	defIntPtr(&r.MinRetryConcurrency, 3)
	ch.defDur(&r.BackoffBase, rp+".backoff_base", 25*time.Millisecond, true)
	ch.defDur(&r.BackoffMax, rp+".backoff_max", 250*time.Millisecond, true)
	ch.defSize(&r.MaxBodyBytes, rp+".max_body_bytes", defaultRetryMaxBodyBytes, true)

	t := &s.Timeouts
	tp := p + ".timeouts"
	ch.defDur(&t.Connect, tp+".connect", 2*time.Second, false)
	ch.defDur(&t.Request, tp+".request", 30*time.Second, true)
	ch.defDur(&t.Idle, tp+".idle", 60*time.Second, false)
	ch.defDur(&t.TunnelIdle, tp+".tunnel_idle", 5*time.Minute, true)

	a := &s.Affinity
	ap := p + ".affinity"
	defStr(&a.Type, "none")
	defStr(&a.Cookie.Name, defaultAffinityCookie)
	defStr(&a.Cookie.SecretEnv, defaultAffinitySecretEnv)
	ch.defFloat(&a.Hash.Epsilon, ap+".hash.epsilon", 0.25, false)
	ch.defInt(&a.Hash.VirtualNodes, ap+".hash.virtual_nodes", 100, false)

	ch.defInt(&s.Upstream.MaxIdlePerEndpoint, p+".upstream.max_idle_per_endpoint", defaultMaxIdlePerEndpoint, false)
}

func defStr(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func defInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func defIntPtr(p **int, def int) {
	if *p == nil {
		*p = &def
	}
}

func defFloatPtr(p **float64, def float64) {
	if *p == nil {
		*p = &def
	}
}

// zeroWritten reports an explicit zero in the file: kept when zero means
// "off" (zeroOK), reported otherwise. It returns true when the caller must
// leave the field alone.
func (ch *checker) zeroWritten(path string, def string, zeroOK bool) bool {
	if !ch.set[path] {
		return false
	}
	if !zeroOK {
		ch.errf(path, "must be greater than 0; remove the line to use the default %s", def)
		ch.markZeroed(path)
	}
	return true
}

// markZeroed stops validation from reporting path again.
func (ch *checker) markZeroed(path string) {
	if ch.zeroed == nil {
		ch.zeroed = map[string]bool{}
	}
	ch.zeroed[path] = true
}

func (ch *checker) defDur(p *time.Duration, path string, def time.Duration, zeroOK bool) {
	if *p == 0 && !ch.zeroWritten(path, fmtDuration(def), zeroOK) {
		*p = def
	}
}

func (ch *checker) defInt(p *int, path string, def int, zeroOK bool) {
	if *p == 0 && !ch.zeroWritten(path, strconv.Itoa(def), zeroOK) {
		*p = def
	}
}

func (ch *checker) defFloat(p *float64, path string, def float64, zeroOK bool) {
	if *p == 0 && !ch.zeroWritten(path, strconv.FormatFloat(def, 'g', -1, 64), zeroOK) {
		*p = def
	}
}

func (ch *checker) defSize(p *ByteSize, path string, def ByteSize, zeroOK bool) {
	if *p == 0 && !ch.zeroWritten(path, fmtSize(def), zeroOK) {
		*p = def
	}
}

// defList fills an absent list; an explicitly empty list is reported with
// fix, because an empty list of conditions or statuses is never meant.
func (ch *checker) defList(p *[]string, path string, def []string, fix string) {
	if len(*p) > 0 {
		return
	}
	if ch.set[path] {
		ch.errf(path, "is empty; %s", fix)
		return
	}
	*p = append([]string(nil), def...)
}

// fmtDuration prints 120s as "2m" rather than time's "2m0s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// fmtSize prints a size in the largest binary unit that divides it.
func fmtSize(b ByteSize) string {
	switch {
	case b != 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b != 0 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b != 0 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return strconv.FormatInt(int64(b), 10)
}
