package config

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// checker applies defaults and validates a decoded Config. When it comes
// from Parse it knows each field's line and whether the file wrote it; for
// a Config built in Go those maps are empty and lines are left out.
type checker struct {
	lines  map[string]int
	set    map[string]bool
	labels map[string][]string
	root   int
	errs   []*Error
	// zeroed holds paths already reported as an explicit invalid zero, so
	// that validation does not report them a second time.
	zeroed map[string]bool
}

// Validate checks every constraint of a Config that already has its
// defaults (see SetDefaults) and builds each service's balancer factory.
// Parse and Load call it for you; call it for a Config built in Go. The
// error is an ErrorList.
func (c *Config) Validate() error {
	ch := &checker{}
	ch.labelsFor(c)
	ch.validate(c)
	if len(ch.errs) > 0 {
		return sortErrors(ch.errs)
	}
	return nil
}

// labelsFor makes sure the bracket labels of services and listeners exist
// and match the lists (they come from the decoder when parsing).
func (ch *checker) labelsFor(c *Config) {
	if ch.labels == nil {
		ch.labels = map[string][]string{}
	}
	if len(ch.labels["services"]) != len(c.Services) {
		names := make([]string, len(c.Services))
		for i, s := range c.Services {
			names[i] = s.Name
		}
		ch.labels["services"] = sliceLabels(names)
	}
	if len(ch.labels["listeners"]) != len(c.Listeners) {
		names := make([]string, len(c.Listeners))
		for i, l := range c.Listeners {
			names[i] = l.Name
		}
		ch.labels["listeners"] = sliceLabels(names)
	}
}

func (ch *checker) servicePath(i int) string  { return "services[" + ch.labels["services"][i] + "]" }
func (ch *checker) listenerPath(i int) string { return "listeners[" + ch.labels["listeners"][i] + "]" }

// parentPath strips the last field or index from a path.
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		return p[:strings.LastIndex(p, "[")]
	}
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

// line is the line of path, or of its nearest ancestor the file wrote:
// a missing field is reported at the mapping that lacks it.
func (ch *checker) line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := ch.lines[p]; ok {
			return l
		}
	}
	return ch.root
}

// where renders " (line N)" for a path the file wrote, or "" otherwise
// (a default, or a Config built in Go).
func (ch *checker) where(path string) string {
	if l, ok := ch.lines[path]; ok {
		return fmt.Sprintf(" (line %d)", l)
	}
	return ""
}

func (ch *checker) errf(path, format string, args ...any) {
	if ch.zeroed[path] {
		return
	}
	ch.errs = append(ch.errs, &Error{Line: ch.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// suppressCascades drops validation errors that only restate a decoding
// error: a field that failed to decode (or its children), or the field a
// misspelt key was probably meant to be.
func (ch *checker) suppressCascades(decodeErrs []*Error, suppress map[string]bool) []*Error {
	bad := map[string]bool{}
	for _, e := range decodeErrs {
		bad[e.Path] = true
	}
	for p := range suppress {
		bad[p] = true
	}
	var out []*Error
	for _, e := range ch.errs {
		drop := false
		for p := e.Path; p != ""; p = parentPath(p) {
			if bad[p] {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, e)
		}
	}
	return out
}

func (ch *checker) validate(c *Config) {
	ch.validateAdmin(&c.Admin)
	ch.validateServer(&c.Server)

	if len(c.Services) == 0 {
		ch.errf("services", "at least one service is required; add one, e.g.\n  services:\n    - name: web\n      endpoints: [{address: 127.0.0.1:9001}]")
	}
	svcIndex := map[string]int{}
	var svcNames []string
	for i := range c.Services {
		s := &c.Services[i]
		p := ch.servicePath(i)
		np := p + ".name"
		switch {
		case s.Name == "":
			ch.errf(np, "required: give the service a name such as `catalog` (lower-case letters, digits, `_` and `-`)")
		case !serviceNameRE.MatchString(s.Name):
			ch.errf(np, "invalid service name %s: use lower-case letters, digits, `_` and `-`, starting with a letter or digit (e.g. %s)", quote(s.Name), quote(suggestServiceName(s.Name)))
		default:
			if first, dup := svcIndex[s.Name]; dup {
				ch.errf(np, "duplicate service name %s: already used by %s%s; service names must be unique", quote(s.Name), ch.servicePath(first), ch.where(ch.servicePath(first)))
			} else {
				svcIndex[s.Name] = i
				svcNames = append(svcNames, s.Name)
			}
		}
		ch.validateService(s, p)
		if s.Timeouts.AbortOnClientClose && c.Server.Engine == EngineLbsys {
			ch.errf(p+".timeouts.abort_on_client_close", "needs `server.engine: net_http`: the default engine does not watch for clients leaving mid-request (that watch is what costs net/http a goroutine per request)")
		}
	}
	slices.Sort(svcNames)

	if len(c.Listeners) == 0 {
		ch.errf("listeners", "at least one listener is required; add one, e.g.\n  listeners:\n    - listen: 127.0.0.1:8080\n      routes: [{service: web}]")
	}
	binds := []bind{}
	if host, port, ok := ch.checkListen("admin.listen", c.Admin.Listen); ok {
		binds = append(binds, bind{path: "admin.listen", addr: c.Admin.Listen, host: host, port: port})
		ch.checkAdminLoopback(&c.Admin, host)
	}
	listenerNames := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := ch.listenerPath(i)
		if host, port, ok := ch.checkListen(p+".listen", l.Listen); ok {
			binds = append(binds, bind{path: p + ".listen", addr: l.Listen, host: host, port: port})
		}
		if first, dup := listenerNames[l.Name]; dup && l.Name != "" {
			ch.errf(p+".name", "duplicate listener name %s: already used by %s%s; names label metrics and must be unique", quote(l.Name), ch.listenerPath(first), ch.where(ch.listenerPath(first)))
		} else {
			listenerNames[l.Name] = i
		}
		ch.validateListener(l, p, svcIndex, svcNames)
	}
	ch.checkBinds(binds)

	if c.Telemetry.RingSeconds < 1 {
		ch.errf("telemetry.ring_seconds", "must be at least 1, got %d", c.Telemetry.RingSeconds)
	}
	ch.validateCoordinator(&c.Coordinator)
	ch.validateCache(c)
	ch.validateAccessLogs(c)
}

var serviceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// suggestServiceName proposes a valid spelling of an invalid name.
func suggestServiceName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		case r == ' ', r == '.', r == '/':
			b.WriteByte('-')
		}
	}
	out := strings.TrimLeft(b.String(), "_-")
	if out == "" {
		return "web"
	}
	return out
}

// ---- admin and server ----

func (ch *checker) validateAdmin(a *Admin) {
	// Token sources are read at runtime (Token), not here: the file may be
	// mounted after the config is checked, and a missing env var is legal.
	if strings.TrimSpace(a.TokenFile) != a.TokenFile {
		ch.errf("admin.token_file", "has leading or trailing spaces; remove them")
	}
	// A remote admin API without a token lets anyone who reaches the port
	// reload the proxy and steer its traffic. A token file is only read at
	// start (it may be mounted later), so its presence is what is checked
	// here; the proxy refuses to start or reload if it yields no token.
	if a.AllowRemote && a.TokenFile == "" && strings.TrimSpace(os.Getenv(a.TokenEnv)) == "" {
		ch.errf("admin.allow_remote", "is true but no admin token is configured: set admin.token_file, or the variable %s, or keep the admin API on a loopback address", a.TokenEnv)
	}
}

func (ch *checker) checkAdminLoopback(a *Admin, host string) {
	if a.AllowRemote || isLoopbackHost(host) {
		return
	}
	shown := host
	if shown == "" {
		shown = "all interfaces"
	}
	ch.errf("admin.listen", "%s listens on %s, which is not a loopback address; the admin API can reload the configuration, so it stays on 127.0.0.1, ::1 or localhost unless you set `admin.allow_remote: true` (and configure a token)", quote(a.Listen), shown)
}

// isLoopbackHost reports whether a listen host only accepts local
// connections. Other host names are not resolved: a name that resolves to a
// public address today would be accepted, so only "localhost" is trusted.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

func (ch *checker) validateServer(s *Server) {
	if s.Engine != EngineLbsys && s.Engine != EngineNetHTTP {
		ch.errf("server.engine", "unknown engine %s: use %s (the proxy's own HTTP/1.1 server) or %s (Go's net/http.Server)", quote(s.Engine), EngineLbsys, EngineNetHTTP)
	}
	positiveDur(ch, "server.read_header_timeout", s.ReadHeaderTimeout)
	positiveDur(ch, "server.idle_timeout", s.IdleTimeout)
	positiveDur(ch, "server.write_timeout", s.WriteTimeout)
	if s.DrainTimeout < 0 {
		ch.errf("server.drain_timeout", "must not be negative, got %s; use 0s to close connections at once", s.DrainTimeout)
	}
	if s.MaxHeaderBytes < 1 {
		ch.errf("server.max_header_bytes", "must be at least 1 byte, got %d; the default is 64KiB", s.MaxHeaderBytes)
	}
	if s.MaxRequestBodyBytes < 1 {
		ch.errf("server.max_request_body_bytes", "must be at least 1 byte, got %d; the default is 10MiB", s.MaxRequestBodyBytes)
	}
	for i, tp := range s.TrustedProxies {
		if _, err := parseTrusted(tp); err != nil {
			ch.errf(fmt.Sprintf("server.trusted_proxies[%d]", i), "%v", err)
		}
	}
}

// TrustedNets parses TrustedProxies. Bare addresses become single-address
// prefixes. Validate has already checked them, so after Parse the error is
// always nil.
func (s Server) TrustedNets() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for i, tp := range s.TrustedProxies {
		p, err := parseTrusted(tp)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseTrusted(s string) (netip.Prefix, error) {
	bad := fmt.Errorf("cannot use %s as a trusted proxy: write a CIDR such as 10.0.0.0/8 or fd00::/8, or a single address such as 10.1.2.3", quote(s))
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, bad
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, bad
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ---- addresses ----

type bind struct{ path, addr, host, port string }

// checkListen validates a listen address; port 0 (any free port) is
// allowed because tests and the demo use it.
func (ch *checker) checkListen(path, addr string) (host, port string, ok bool) {
	if addr == "" {
		ch.errf(path, "required: set host:port, e.g. 127.0.0.1:8080 (or :8080 for all interfaces)")
		return "", "", false
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		ch.errf(path, "%v; write host:port, e.g. 127.0.0.1:8080, [::1]:8080 or :8080", err)
		return "", "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ch.errf(path, "port %s of %s is not a number from 0 to 65535; service names such as http are not accepted", quote(port), quote(addr))
		return "", "", false
	}
	return host, port, true
}

func splitHostPort(addr string) (string, string, error) {
	if strings.Contains(addr, "://") {
		return "", "", fmt.Errorf("%s has a scheme; remove it (plain HTTP is implied)", quote(addr))
	}
	host, port, why := cutHostPort(addr)
	if why != "" {
		return "", "", fmt.Errorf("cannot use %s as an address: %s", quote(addr), why)
	}
	return host, port, nil
}

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

// checkBinds reports two listeners (or a listener and the admin) that
// would bind the same port: the second bind fails at startup, and the error
// is far clearer here. A wildcard host takes the port on every interface.
func (ch *checker) checkBinds(binds []bind) {
	type portBinds struct {
		first    *bind
		wildcard *bind
		byHost   map[string]*bind
	}
	ports := map[int]*portBinds{}
	for i := range binds {
		b := &binds[i]
		port, _ := strconv.Atoi(b.port) // "08080" and "8080" are the same port
		if port == 0 {
			continue
		}
		pb := ports[port]
		if pb == nil {
			pb = &portBinds{byHost: map[string]*bind{}}
			ports[port] = pb
		}
		host := strings.ToLower(b.host)
		var prev *bind
		switch {
		case pb.wildcard != nil:
			prev = pb.wildcard
		case isWildcard(host) && pb.first != nil:
			prev = pb.first
		default:
			prev = pb.byHost[host]
		}
		if prev != nil {
			where := ch.where(prev.path)
			if where == "" && prev.path == "admin.listen" {
				where = " (the default)"
			}
			ch.errf(b.path, "%s conflicts with %s %s%s: both bind port %d; give each listener and the admin its own port", quote(b.addr), prev.path, prev.addr, where, port)
			continue
		}
		if pb.first == nil {
			pb.first = b
		}
		if isWildcard(host) {
			pb.wildcard = b
		}
		pb.byHost[host] = b
	}
}

// ---- listeners and routes ----

func (ch *checker) validateListener(l *Listener, p string, svcIndex map[string]int, svcNames []string) {
	if l.TLS != nil {
		if l.TLS.CertFile == "" {
			ch.errf(p+".tls.cert_file", "required with tls: name the PEM certificate file (or remove `tls:` to serve plain HTTP)")
		}
		if l.TLS.KeyFile == "" {
			ch.errf(p+".tls.key_file", "required with tls: name the PEM private key file (or remove `tls:` to serve plain HTTP)")
		}
	}
	if len(l.Routes) == 0 {
		ch.errf(p+".routes", "at least one route is required; `routes: [{service: <name>}]` sends all traffic to one service")
		return
	}
	routeNames := map[string]int{}
	for j := range l.Routes {
		r := &l.Routes[j]
		rp := p + ".routes[" + strconv.Itoa(j) + "]"
		if first, dup := routeNames[r.Name]; dup {
			ch.errf(rp+".name", "duplicate route name %s: already used by %s.routes[%d]; names label metrics and must be unique within a listener", quote(r.Name), p, first)
		} else {
			routeNames[r.Name] = j
		}
		switch _, ok := svcIndex[r.Service]; {
		case r.Service == "":
			ch.errf(rp+".service", "required: name the service that receives matching requests (services: %s)", listNames(svcNames))
		case !ok:
			ch.errf(rp+".service", "unknown service %s: %sdefined services: %s", quote(r.Service), didYouMean(r.Service, svcNames), listNames(svcNames))
		}
		ch.validateMatch(&r.Match, rp+".match")
		if r.Priority != "" && !slices.Contains(priorities, r.Priority) {
			ch.errf(rp+".priority", "unknown priority %s: %suse critical, normal or sheddable, or leave it out to use the service's", quote(r.Priority), didYouMean(r.Priority, priorities))
		}
		// Quadratic, so only for lists a human wrote; generated configs
		// with thousands of routes are not checked for dead routes.
		for k := range min(j, maxShadowCheck) {
			if shadows(&l.Routes[k].Match, &r.Match) {
				ch.errf(rp, "can never match: %s.routes[%d]%s comes first and matches every request this route does; move this route above it or narrow the earlier one", p, k, ch.where(p+".routes["+strconv.Itoa(k)+"]"))
				break
			}
		}
	}
}

// maxShadowCheck bounds how many earlier routes each route is compared
// with when looking for dead routes.
const maxShadowCheck = 1000

// shadows reports whether an earlier route a catches every request that b
// would, making b dead configuration (routes are first-match).
func shadows(a, b *Match) bool {
	if a.Host != "" && !strings.EqualFold(a.Host, b.Host) {
		return false
	}
	if len(a.Methods) > 0 {
		if len(b.Methods) == 0 {
			return false
		}
		for _, m := range b.Methods {
			if !slices.Contains(a.Methods, m) {
				return false
			}
		}
	}
	return pathCovers(a.PathPrefix, b.PathPrefix)
}

// pathCovers reports whether every path matched by prefix b is matched by
// prefix a, with segment-boundary matching.
func pathCovers(a, b string) bool {
	a = strings.TrimSuffix(a, "/")
	return a == "" || b == a || strings.HasPrefix(b, a+"/")
}

func (ch *checker) validateMatch(m *Match, p string) {
	if m.Host != "" {
		if err := checkHostPattern(m.Host); err != nil {
			ch.errf(p+".host", "%v", err)
		}
	}
	switch pp := m.PathPrefix; {
	case !strings.HasPrefix(pp, "/"):
		ch.errf(p+".path_prefix", "must start with `/`, got %s; write %s", quote(pp), quote("/"+pp))
	case strings.ContainsAny(pp, "?#"):
		ch.errf(p+".path_prefix", "%s contains `?` or `#`: the prefix matches the path only; remove the query or fragment", quote(pp))
	case strings.IndexFunc(pp, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		ch.errf(p+".path_prefix", "%s contains spaces or control characters; percent-encode them", quote(pp))
	case strings.IndexFunc(pp, func(r rune) bool { return r > 0x7f }) >= 0:
		// Routes match the path as it is sent and forwarded, which is
		// percent-encoded: a raw non-ASCII prefix would never match.
		ch.errf(p+".path_prefix", "%s contains non-ASCII characters; write them percent-encoded as clients send them, e.g. %s", quote(pp), quote((&url.URL{Path: pp}).EscapedPath()))
	}
	for i, meth := range m.Methods {
		mp := fmt.Sprintf("%s.methods[%d]", p, i)
		switch {
		case !isToken(meth):
			ch.errf(mp, "%s is not an HTTP method; use names such as GET, POST, PUT, DELETE", quote(meth))
		case strings.ToUpper(meth) != meth:
			ch.errf(mp, "methods are case-sensitive; write %s", quote(strings.ToUpper(meth)))
		}
	}
}

// checkHostPattern accepts a host name, an IP literal, or "*." followed by
// a host name.
func checkHostPattern(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return fmt.Errorf("invalid host %s: `*` is only allowed as a leading `*.` (e.g. \"*.example.com\"); leave host empty to match any host", quote(h))
	}
	if name != h && name == "" {
		return fmt.Errorf("invalid host %s: write a domain after `*.`", quote(h))
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && name == h {
		return nil
	}
	if strings.Contains(name, ":") {
		return fmt.Errorf("invalid host %s: remove the port; hosts are matched without it", quote(h))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return fmt.Errorf("invalid host %s: use a host name such as \"shop.example.com\" or \"*.example.com\" (letters, digits, `-`, dot-separated)", quote(h))
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (method, header and
// cookie names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ---- services ----

var priorities = []string{"critical", "normal", "sheddable"}

func (ch *checker) validateService(s *Service, p string) {
	if !slices.Contains(priorities, s.Priority) {
		ch.errf(p+".priority", "unknown priority %s: %suse critical, normal or sheddable", quote(s.Priority), didYouMean(s.Priority, priorities))
	}

	if len(s.Endpoints) == 0 {
		ch.errf(p+".endpoints", "at least one endpoint is required, e.g. `endpoints: [{address: 127.0.0.1:9001}]`")
	}
	seen := map[string]int{}
	for j, ep := range s.Endpoints {
		epp := fmt.Sprintf("%s.endpoints[%d]", p, j)
		ch.checkEndpointAddress(epp+".address", ep.Address)
		if first, dup := seen[ep.Address]; dup && ep.Address != "" {
			ch.errf(epp+".address", "duplicate endpoint %s: already listed as %s.endpoints[%d]; to give it more traffic raise its weight instead", quote(ep.Address), p, first)
		} else {
			seen[ep.Address] = j
		}
		if ep.Weight < 1 || ep.Weight > 10000 {
			ch.errf(epp+".weight", "must be between 1 and 10000, got %d", ep.Weight)
		}
	}

	ch.validatePolicy(s, p+".policy")
	ch.validateHealth(&s.Health, p+".health")
	ch.validateRetries(&s.Retries, &s.Timeouts, p)
	ch.validateTimeouts(&s.Timeouts, p+".timeouts")
	ch.validateAffinity(&s.Affinity, p+".affinity")
	if s.Upstream.MaxIdlePerEndpoint < 1 {
		ch.errf(p+".upstream.max_idle_per_endpoint", "must be at least 1, got %d", s.Upstream.MaxIdlePerEndpoint)
	}
	if a := s.Admission; a != nil {
		ch.validateAdmission(a, p+".admission")
	}
}

func (ch *checker) validateAdmission(a *Admission, p string) {
	for _, f := range []struct {
		name string
		v    int
	}{{"min_limit", a.MinLimit}, {"max_limit", a.MaxLimit}, {"initial_limit", a.InitialLimit}} {
		if f.v < 0 || f.v > 1_000_000 {
			ch.errf(p+"."+f.name, "must be between 1 and 1000000 (0 or absent: default), got %d", f.v)
		}
	}
	if a.Window < 0 {
		ch.errf(p+".window", "must be positive (e.g. 250ms), got %v", a.Window)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"tolerance", a.Tolerance}, {"smoothing", a.Smoothing}, {"sheddable_share", a.SheddableShare}, {"normal_share", a.NormalShare}} {
		if f.v < 0 || f.v != f.v {
			ch.errf(p+"."+f.name, "must be a positive number (0 or absent: default), got %v", f.v)
		}
	}
	if err := a.LimiterConfig().Validate(); err != nil {
		ch.errf(p, "%v", err)
	}
}

func (ch *checker) checkEndpointAddress(path, addr string) {
	if addr == "" {
		ch.errf(path, "required: set the backend's host:port, e.g. 127.0.0.1:9001")
		return
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		ch.errf(path, "%v; write host:port, e.g. 127.0.0.1:9001 or backend-1:8080", err)
		return
	}
	if host == "" {
		ch.errf(path, "%s has no host; write e.g. 127.0.0.1%s", quote(addr), addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		ch.errf(path, "port %s of %s is not a number from 1 to 65535", quote(port), quote(addr))
	}
}

func (ch *checker) validateHealth(h *Health, p string) {
	if a := h.Active; a != nil {
		ap := p + ".active"
		if !strings.HasPrefix(a.Path, "/") {
			ch.errf(ap+".path", "must start with `/`, got %s", quote(a.Path))
		}
		iok := positiveDur(ch, ap+".interval", a.Interval)
		tok := positiveDur(ch, ap+".timeout", a.Timeout)
		if iok && tok && a.Timeout >= a.Interval {
			ch.errf(ap+".timeout", "%s must be shorter than interval (%s), or probes would overlap; lower the timeout or raise the interval", fmtDuration(a.Timeout), fmtDuration(a.Interval))
		}
		if a.HealthyThreshold < 1 {
			ch.errf(ap+".healthy_threshold", "must be at least 1, got %d", a.HealthyThreshold)
		}
		if a.UnhealthyThreshold < 1 {
			ch.errf(ap+".unhealthy_threshold", "must be at least 1, got %d", a.UnhealthyThreshold)
		}
		for i, st := range a.ExpectedStatuses {
			if _, err := parseStatusRange(st); err != nil {
				ch.errf(fmt.Sprintf("%s.expected_statuses[%d]", ap, i), "%v", err)
			}
		}
		if strings.ContainsFunc(a.Host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			ch.errf(ap+".host", "%s contains spaces or control characters; write a host name such as \"catalog.internal\"", quote(a.Host))
		}
	}

	o := &h.Outlier
	op := p + ".outlier"
	if o.Consecutive5xx != nil && *o.Consecutive5xx < 0 {
		ch.errf(op+".consecutive_5xx", "must not be negative, got %d; 0 turns this trigger off", *o.Consecutive5xx)
	}
	if o.ConsecutiveGatewayFailure != nil && *o.ConsecutiveGatewayFailure < 0 {
		ch.errf(op+".consecutive_gateway_failure", "must not be negative, got %d; 0 turns this trigger off", *o.ConsecutiveGatewayFailure)
	}
	bok := positiveDur(ch, op+".base_ejection_time", o.BaseEjectionTime)
	mok := positiveDur(ch, op+".max_ejection_time", o.MaxEjectionTime)
	if bok && mok && o.BaseEjectionTime > o.MaxEjectionTime {
		ch.errf(op+".max_ejection_time", "%s is shorter than base_ejection_time (%s); raise it or lower the base", fmtDuration(o.MaxEjectionTime), fmtDuration(o.BaseEjectionTime))
	}
	ch.percent(op+".max_ejection_percent", o.MaxEjectionPercent)
	ch.percent(p+".panic_threshold", h.PanicThreshold)

	if ss := h.SlowStart; ss != nil {
		sp := p + ".slow_start"
		if ss.Window <= 0 {
			if ss.Window == 0 {
				ch.errf(sp+".window", "required: set the ramp length, e.g. `window: 30s` (or remove slow_start)")
			} else {
				ch.errf(sp+".window", "must be greater than 0, got %s", ss.Window)
			}
		}
		if !(ss.Aggression > 0) || math.IsInf(ss.Aggression, 0) {
			ch.errf(sp+".aggression", "must be greater than 0, got %g; 1 ramps linearly, higher values ramp faster at first", ss.Aggression)
		}
		mw := ss.MinWeightPercent
		ch.percent(sp+".min_weight_percent", &mw)
	}
}

// percent checks an optional 0..100 field.
func (ch *checker) percent(path string, v *float64) {
	if v != nil && !(*v >= 0 && *v <= 100) {
		ch.errf(path, "must be a percentage from 0 to 100, got %g", *v)
	}
}

// positiveDur reports a duration that must be > 0 and returns whether it is.
func positiveDur(ch *checker, path string, d time.Duration) bool {
	if d <= 0 {
		ch.errf(path, "must be greater than 0, got %s", d)
		return false
	}
	return true
}

// RetryConditions are the values allowed in retries.on.
var RetryConditions = []string{"connect_failure", "reset", "timeout", "gateway_error", "5xx"}

func (ch *checker) validateRetries(r *Retries, t *Timeouts, svc string) {
	p := svc + ".retries"
	if r.Attempts != nil && (*r.Attempts < 0 || *r.Attempts > 10) {
		ch.errf(p+".attempts", "must be between 0 and 10, got %d; 0 turns retries off", *r.Attempts)
	}
	seen := map[string]bool{}
	for i, cond := range r.On {
		cp := fmt.Sprintf("%s.on[%d]", p, i)
		switch {
		case !slices.Contains(RetryConditions, cond):
			ch.errf(cp, "unknown retry condition %s: %sallowed: %s", quote(cond), didYouMean(cond, RetryConditions), strings.Join(RetryConditions, ", "))
		case seen[cond]:
			ch.errf(cp, "%s is listed twice; remove one", quote(cond))
		}
		seen[cond] = true
	}
	if r.PerTryTimeout < 0 {
		ch.errf(p+".per_try_timeout", "must not be negative, got %s; 0 means only timeouts.request applies", r.PerTryTimeout)
	} else if r.PerTryTimeout > 0 && t.Request > 0 && r.PerTryTimeout >= t.Request {
		ch.errf(p+".per_try_timeout", "%s is not shorter than timeouts.request (%s), so no retry could ever start after a timed-out try; lower it", fmtDuration(r.PerTryTimeout), fmtDuration(t.Request))
	}
	ch.percent(p+".budget_percent", r.BudgetPercent)
	if r.MinRetryConcurrency != nil && *r.MinRetryConcurrency < 0 {
		ch.errf(p+".min_retry_concurrency", "must not be negative, got %d", *r.MinRetryConcurrency)
	}
	if r.BackoffBase < 0 {
		ch.errf(p+".backoff_base", "must not be negative, got %s", r.BackoffBase)
	}
	if r.BackoffMax < 0 {
		ch.errf(p+".backoff_max", "must not be negative, got %s", r.BackoffMax)
	}
	if r.BackoffBase >= 0 && r.BackoffMax >= 0 && r.BackoffBase > r.BackoffMax {
		ch.errf(p+".backoff_base", "%s is longer than backoff_max (%s); lower it or raise backoff_max", fmtDuration(r.BackoffBase), fmtDuration(r.BackoffMax))
	}
	if r.MaxBodyBytes < 0 {
		ch.errf(p+".max_body_bytes", "must not be negative, got %d", r.MaxBodyBytes)
	}
}

func (ch *checker) validateTimeouts(t *Timeouts, p string) {
	positiveDur(ch, p+".connect", t.Connect)
	if t.Request < 0 {
		ch.errf(p+".request", "must not be negative, got %s; 0s disables the request timeout", t.Request)
	}
	positiveDur(ch, p+".idle", t.Idle)
	if t.TunnelIdle < 0 {
		ch.errf(p+".tunnel_idle", "must not be negative, got %s; 0s lets an upgraded connection stay idle forever", t.TunnelIdle)
	}
}

var affinityTypes = []string{"none", "cookie", "hash"}

func (ch *checker) validateAffinity(a *Affinity, p string) {
	if a.Type != "" && !slices.Contains(affinityTypes, a.Type) {
		ch.errf(p+".type", "unknown affinity type %s: %suse none, cookie or hash", quote(a.Type), didYouMean(a.Type, affinityTypes))
		return
	}
	// Settings for a type that is not selected would be silently ignored;
	// that is almost always a forgotten `type:`.
	if a.Type != "hash" && (a.Hash.Header != "" || a.Hash.Cookie != "") {
		ch.errf(p+".hash", "is set but affinity.type is %s; set `type: hash` or remove the hash settings", quote(a.Type))
	}
	if a.Type != "cookie" && (a.Cookie.SecretFile != "" || a.Cookie.TTL != 0 || a.Cookie.Secure) {
		ch.errf(p+".cookie", "is set but affinity.type is %s; set `type: cookie` or remove the cookie settings", quote(a.Type))
	}

	if !isToken(a.Cookie.Name) {
		ch.errf(p+".cookie.name", "%s is not a valid cookie name: use letters, digits and `_`/`-` (e.g. lbsys_affinity)", quote(a.Cookie.Name))
	}
	if a.Cookie.TTL < 0 {
		ch.errf(p+".cookie.ttl", "must not be negative, got %s; 0 makes a session cookie", a.Cookie.TTL)
	}

	h := &a.Hash
	hp := p + ".hash"
	if a.Type == "hash" {
		switch {
		case h.Header == "" && h.Cookie == "":
			ch.errf(hp, "hash affinity needs a key: set exactly one of `header` (e.g. X-Session-Id) or `cookie`")
		case h.Header != "" && h.Cookie != "":
			ch.errf(hp, "set exactly one of `header` and `cookie`, not both")
		}
	}
	if h.Header != "" && !isToken(h.Header) {
		ch.errf(hp+".header", "%s is not a valid header name: use letters, digits and `-` (e.g. X-Session-Id)", quote(h.Header))
	}
	if h.Cookie != "" && !isToken(h.Cookie) {
		ch.errf(hp+".cookie", "%s is not a valid cookie name: use letters, digits and `_`/`-`", quote(h.Cookie))
	}
	if !(h.Epsilon > 0) || math.IsInf(h.Epsilon, 0) {
		ch.errf(hp+".epsilon", "must be greater than 0, got %g; 0.25 lets an endpoint take 25%% more than the average load", h.Epsilon)
	}
	if h.VirtualNodes < 1 || h.VirtualNodes > 10000 {
		ch.errf(hp+".virtual_nodes", "must be between 1 and 10000, got %d", h.VirtualNodes)
	}
}
