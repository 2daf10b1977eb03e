package main

import (
	"context"
	"os"
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

// TestDemoStopsCleanlyOnInterrupt: Ctrl-C (SIGINT) in the middle of the
// demo stops the load, prints the summary and the invariant check, and
// exits 0.
func TestDemoStopsCleanlyOnInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	var out syncBuffer
	cmd := exec.Command(lbsysBinary(t), "demo", "--duration", "10m", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	// Interrupt once the live table has shown traffic.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "service  rps") {
		if time.Now().After(deadline) {
			t.Fatalf("no live table within 60 s:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("demo ended early: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after Ctrl-C:\n%s", out.String())
	}
	text := out.String()
	for _, want := range []string{"summary:", "shop invariants held"} {
		if !strings.Contains(text, want) {
			t.Errorf("output after Ctrl-C lacks %q:\n%s", want, text)
		}
	}
	t.Logf("stopped %v after the interrupt", time.Since(start).Round(time.Millisecond))
}
