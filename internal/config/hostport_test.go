package config

import (
	"errors"
	"net"
	"testing"
)

// netSplit is net.SplitHostPort with the reason of a refusal.
func netSplit(addr string) (host, port, why string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", "", ae.Err
		}
		return "", "", err.Error()
	}
	return h, p, ""
}

func TestCutHostPort(t *testing.T) {
	for _, addr := range []string{
		"127.0.0.1:8080", ":9901", "[::1]:80", "[::]:0", "host:http", "", ":", "a", "a:b:c",
		"[::1]", "[::1", "::1]:80", "[a]b:80", "[a]:b:80", "a[b]:80", "[[a]]:80", "[a]]:80", "a]:80",
		"[fe80::1%eth0]:443", "example.com:", "[]:1",
	} {
		gh, gp, gw := cutHostPort(addr)
		wh, wp, ww := netSplit(addr)
		if gh != wh || gp != wp || gw != ww {
			t.Errorf("%q: (%q, %q, %q), net.SplitHostPort says (%q, %q, %q)", addr, gh, gp, gw, wh, wp, ww)
		}
	}
}

func FuzzCutHostPort(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080", "[::1]:80", "[a]:b:80", "a[b]:80", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		gh, gp, gw := cutHostPort(addr)
		wh, wp, ww := netSplit(addr)
		if gh != wh || gp != wp || gw != ww {
			t.Fatalf("%q: (%q, %q, %q), net.SplitHostPort says (%q, %q, %q)", addr, gh, gp, gw, wh, wp, ww)
		}
	})
}
