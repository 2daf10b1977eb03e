package main

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemoRunsCleanly is the acceptance test: the one-command demo
// starts, serves traffic through the proxy and exits 0 after --duration
// with no errors and the shop's invariants intact.
func TestDemoRunsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, lbsysBinary(t), "demo", "--duration", "20s",
		"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0").CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("lbsys demo: %v\n%s", err, text)
	}
	m := regexp.MustCompile(`summary: (\d+) requests .* (\d+) ok, errors (\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no summary line:\n%s", text)
	}
	req, _ := strconv.Atoi(m[1])
	ok, _ := strconv.Atoi(m[2])
	errs, _ := strconv.Atoi(m[3])
	if req < 300 || ok != req || errs != 0 {
		t.Fatalf("requests %d ok %d errors %d:\n%s", req, ok, errs, text)
	}
	for _, want := range []string{"shop invariants held", "checkout", "catalog", "share per endpoint"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Count(text, "service  rps") < 5 {
		t.Errorf("expected a live table every 2 s:\n%s", text)
	}
}
