// Package testnet hands tests loopback ports that nothing else on the
// machine will take before the test binds them.
//
// The usual trick, listen on 127.0.0.1:0, read the port, close, and bind
// it again later, leaves a window in which the kernel may give that very
// port to someone else: to another listener asking for port 0, or as the
// local end of an outgoing connection. On a machine running many test
// packages at once that happens (CI saw "bind: address already in use").
// The kernel only ever picks such ports from its ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), so Addr picks from below it:
// a port there can only be taken by a program that names it, and within
// one test process no port is handed out twice.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// lowest is the first port Addr considers: well above the ports services
// are usually configured on.
const lowest = 10000

var (
	mu      sync.Mutex
	given   = map[int]bool{}
	rangeLo int
	once    sync.Once
)

// ephemeralLow is the first port of the kernel's ephemeral range, or Linux's
// default 32768 when the range cannot be read.
func ephemeralLow() int {
	once.Do(func() {
		rangeLo = 32768
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		if err != nil {
			return
		}
		if lo, _, err := parseRange(string(b)); err == nil {
			rangeLo = lo
		}
	})
	return rangeLo
}

// parseRange reads "low high" as the kernel prints it.
func parseRange(line string) (lo, hi int, err error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("testnet: ip_local_port_range %q: want two numbers", line)
	}
	if lo, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("testnet: ip_local_port_range: %w", err)
	}
	if hi, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("testnet: ip_local_port_range: %w", err)
	}
	return lo, hi, nil
}

// Addr returns "127.0.0.1:PORT" for a port that is free now, outside the
// kernel's ephemeral range, and not returned before in this process.
func Addr(t testing.TB) string {
	t.Helper()
	var a string
	var err error
	if below := ephemeralLow(); below-lowest >= 1000 {
		a, err = pickBetween(lowest, below)
	} else {
		// The ephemeral range starts too low to leave room below it: take
		// a port the kernel chooses, held while it offers others so none
		// comes back twice.
		a, err = pickKernel()
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// pickBetween tries random ports in [from, below) until one binds.
func pickBetween(from, below int) (string, error) {
	for i := 0; i < 200; i++ {
		p := from + rand.IntN(below-from)
		mu.Lock()
		if given[p] {
			mu.Unlock()
			continue
		}
		given[p] = true
		mu.Unlock()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // someone holds it; it stays marked so it is not tried again
		}
		ln.Close()
		return addr, nil
	}
	return "", fmt.Errorf("testnet: no free port in [%d, %d) after 200 tries", from, below)
}

func pickKernel() (string, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		held = append(held, ln)
		p := ln.Addr().(*net.TCPAddr).Port
		mu.Lock()
		dup := given[p]
		given[p] = true
		mu.Unlock()
		if !dup {
			return ln.Addr().String(), nil
		}
	}
	return "", fmt.Errorf("testnet: no port not handed out before after 100 tries")
}
