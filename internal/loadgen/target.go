package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrNotLoopback is returned (wrapped) for a target outside the machine.
// The generator can send tens of thousands of requests per second; pointed
// at someone else's server that is an attack, so it only talks to
// 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("target is not a loopback address")

// Target is a resolved, checked load target.
type Target struct {
	// URL is the target as given, normalised ("http://host:port").
	URL string
	// Addr is the loopback IP and port the generator dials, resolved once
	// so that a later DNS answer cannot move the load elsewhere.
	Addr string
	// Host is the Host header sent (the host[:port] given).
	Host string
}

// ResolveTarget parses "http://host:port", "host:port" or ":port" and
// checks that every address the host resolves to is loopback.
func ResolveTarget(ctx context.Context, target string) (Target, error) {
	raw := strings.TrimSpace(target)
	if raw == "" {
		return Target{}, errors.New("target is empty: give --target http://127.0.0.1:PORT")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: %w", target, err)
	}
	if u.Scheme != "http" {
		return Target{}, fmt.Errorf("target %q: scheme %q is not supported; the generator speaks plain HTTP/1.1 (http://)", target, u.Scheme)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return Target{}, fmt.Errorf("target %q: give only scheme, host and port (the generator chooses the paths)", target)
	}
	host, port := u.Hostname(), u.Port()
	hostHeader := u.Host
	if port == "" {
		port = "80"
	}
	if host == "" {
		host = "127.0.0.1"
		hostHeader = net.JoinHostPort(host, port)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if err != nil {
			return Target{}, fmt.Errorf("target %q: cannot resolve %q (%v), so cannot check it is loopback: %w", target, host, err, ErrNotLoopback)
		}
		ips = addrs
	}
	if len(ips) == 0 {
		return Target{}, fmt.Errorf("target %q: %q resolves to no address: %w", target, host, ErrNotLoopback)
	}
	for _, ip := range ips {
		if !ip.Unmap().IsLoopback() {
			return Target{}, fmt.Errorf("target %q: %s resolves to %s; only 127.0.0.0/8 and ::1 are allowed: %w", target, host, ip, ErrNotLoopback)
		}
	}
	// Prefer IPv4 loopback: it is what servers listen on by default.
	pick := ips[0]
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			pick = ip.Unmap()
			break
		}
	}
	return Target{
		URL:  "http://" + hostHeader,
		Addr: net.JoinHostPort(pick.String(), port),
		Host: hostHeader,
	}, nil
}
