package testnet

import (
	"net"
	"strconv"
	"testing"
)

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"", 0, 0, false},
		{"32768", 0, 0, false},
		{"a b\n", 0, 0, false},
		{"1 2 3\n", 0, 0, false},
	} {
		lo, hi, err := parseRange(c.in)
		if (err == nil) != c.ok || lo != c.lo || hi != c.hi {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, ok=%v", c.in, lo, hi, err, c.lo, c.hi, c.ok)
		}
	}
}

// Every address is bindable, below the ephemeral range, and never handed
// out twice over 1,000 calls (what cmd/lbsys's TestFreePortNeverRepeats
// checked), even when the kernel's choice is used.
func TestAddrsAreFreeDistinctAndBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		a := Addr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, ps, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(ps)
		if low-lowest >= 1000 && (p < lowest || p >= low) {
			t.Fatalf("%s outside [%d, %d)", a, lowest, low)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s not bindable: %v", a, err)
		}
		ln.Close()
	}
	for i := 0; i < 20; i++ {
		a, err := pickKernel()
		if err != nil {
			t.Fatal(err)
		}
		if seen[a] {
			t.Fatalf("kernel fallback handed out %s twice", a)
		}
		seen[a] = true
	}
}

// A port someone holds is skipped.
func TestAddrSkipsAHeldPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := ln.Addr().(*net.TCPAddr).Port
	// Only the held port is in range: pick must fail rather than return it.
	mu.Lock()
	delete(given, p)
	mu.Unlock()
	if _, err := pickBetween(p, p+1); err == nil {
		t.Fatalf("pick returned the held port %d", p)
	}
}
