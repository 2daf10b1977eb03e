package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/demo"
)

// TestDemoRunsCleanly is the acceptance test of the closed-loop demo: it
// starts the shop as processes behind the proxy, with the coordinator and
// the controller; the controller's directives reach the proxy, the local
// scaler holds their floors ahead of the announced sale, and the run ends
// with a summary, the shop's invariants intact and exit 0.
func TestDemoRunsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a minute and a half")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	state := t.TempDir()
	// 06:30 to 08:00 virtual: the sale announced for 07:45 is inside.
	out, err := exec.CommandContext(ctx, lbsysBinary(t), "demo", "--duration", "90s", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--state-dir", state).CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("lbsys demo: %v\n%s", err, text)
	}
	m := regexp.MustCompile(`summary \(predictive control\): (\d+) requests .* (\d+) ok, errors (\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no summary line:\n%s", text)
	}
	req, _ := strconv.Atoi(m[1])
	errs, _ := strconv.Atoi(m[3])
	if req < 1000 || float64(errs) > 0.05*float64(req) {
		t.Fatalf("requests %d, errors %d (want fewer than 5%%):\n%s", req, errs, text)
	}
	for _, want := range []string{"shop invariants held", "calendar flash-sale", "trained in", "directives: the proxy runs version",
		"SLO-violation min", "instance-min", "run `lbsys demo --control reactive`",
		"cache (warmed by the controller): product pages' hit ratio", "in its first virtual minute", "run `lbsys demo --warm=false`"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	// A floor reached the proxy (the table's directive column) before the
	// sale, and the catalog ran more instances than its minimum of 2.
	if !regexp.MustCompile(`catalog .* v\d+ floor \d+`).MatchString(text) {
		t.Errorf("no directive floor in the live tables:\n%s", text)
	}
	if strings.Count(text, "service  rps") < 10 {
		t.Errorf("expected a live table every 2 s:\n%s", text)
	}
	if _, err := os.Stat(state + "/last-predictive.json"); err != nil {
		t.Errorf("the run's summary was not kept for the comparison: %v", err)
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
	for _, want := range []string{"summary (predictive control):", "shop invariants held"} {
		if !strings.Contains(text, want) {
			t.Errorf("output after Ctrl-C lacks %q:\n%s", want, text)
		}
	}
	t.Logf("stopped %v after the interrupt", time.Since(start).Round(time.Millisecond))
}

// TestDemoPolicyFlags: the demo takes --policies as lbsys sim does;
// --policy, its first name, still works and says it is deprecated; a list
// is refused with a pointer to lbsys sim (issue #16).
func TestDemoPolicyFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		policy     string // what reaches the demo; "" when refused
		wantErr    string
		wantStderr string
	}{
		{nil, "peak_ewma", "", ""},
		{[]string{"--policies", "peak_ewma"}, "peak_ewma", "", ""},
		{[]string{"--policy", "least_request"}, "least_request", "", "--policy has been deprecated, use --policies"},
		{[]string{"--policies", "round_robin,prequal"}, "", "run lbsys sim --policies round_robin,prequal", ""},
		{[]string{"--policies", "fastest"}, "", `--policies "fastest": use one of `, ""},
		{[]string{"--policy", "fastest"}, "", `--policies "fastest"`, "deprecated"},
	} {
		var got string
		cmd := newDemoCmdRunning(func(_ context.Context, c demo.Config) (*demo.Result, error) {
			got = c.Policy
			return &demo.Result{}, nil
		})
		// Cobra writes the deprecation notice to the command's output,
		// which is stderr unless set (the binary sets none).
		var stderr bytes.Buffer
		cmd.SetOut(&stderr)
		cmd.SetErr(&stderr)
		cmd.SetArgs(tc.args)
		err := cmd.Execute()
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.policy):
			t.Errorf("demo %v: policy %q, error %v; want %q", tc.args, got, err, tc.policy)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || got != ""):
			t.Errorf("demo %v: policy %q, error %v; want an error with %q and no run", tc.args, got, err, tc.wantErr)
		}
		if !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("demo %v: stderr %q, want %q", tc.args, stderr.String(), tc.wantStderr)
		}
	}
}

// TestDemoConfigFlags: --warm=false reaches the demo as NoWarm (the cold
// cache of the comparison; warming is on by default), --event-confidence
// as EventConfidence.
func TestDemoConfigFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		noWarm     bool
		confidence float64
	}{
		{nil, false, defaultEventConfidence},
		{[]string{"--warm=false"}, true, defaultEventConfidence},
		{[]string{"--warm"}, false, defaultEventConfidence},
		{[]string{"--event-confidence", "0.8"}, false, 0.8},
	} {
		var got *demo.Config
		cmd := newDemoCmdRunning(func(_ context.Context, c demo.Config) (*demo.Result, error) {
			got = &c
			return &demo.Result{}, nil
		})
		cmd.SetArgs(tc.args)
		if err := cmd.Execute(); err != nil || got == nil || got.NoWarm != tc.noWarm || got.EventConfidence != tc.confidence {
			t.Errorf("demo %v: %v, config %+v; want NoWarm %v, EventConfidence %v", tc.args, err, got, tc.noWarm, tc.confidence)
		}
	}
}
