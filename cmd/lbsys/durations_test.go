package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/lbsys/lbsys/internal/demo"
)

const (
	day  = 24 * time.Hour
	week = 7 * day
)

// flagDurations parses args on cmd's flags (nothing runs) and returns the
// value of each named duration flag.
func flagDurations(t *testing.T, cmd *cobra.Command, args []string, names ...string) map[string]time.Duration {
	t.Helper()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("%s %v: %v", cmd.Name(), args, err)
	}
	out := map[string]time.Duration{}
	for _, n := range names {
		d, err := cmd.Flags().GetDuration(n)
		if err != nil {
			t.Fatalf("%s --%s: %v", cmd.Name(), n, err)
		}
		out[n] = d
	}
	return out
}

// TestDurationFlagsReadDaysAndWeeks (issue #16): every duration flag of
// pipeline, ingest, shop, coordinator and demo reads 1d, 2w and 1d12h as
// textutil.ParseDuration does — pflag's own duration flags refused them.
// (lbsys sim has no duration flag: its durations are in the scenario.)
func TestDurationFlagsReadDaysAndWeeks(t *testing.T) {
	ingestSub := func(name string) *cobra.Command {
		root := newIngestCmd()
		for _, c := range root.Commands() {
			if c.Name() == name {
				return c
			}
		}
		t.Fatalf("ingest has no %s", name)
		return nil
	}
	for _, tc := range []struct {
		name string
		cmd  func() *cobra.Command
		flag string
		in   string
		want time.Duration
	}{
		{"pipeline --step", newPipelineRunCmd, "step", "1d", day},
		{"pipeline --budget", newPipelineRunCmd, "budget", "1d12h", day + 12*time.Hour},
		{"pipeline --observe", newPipelineRunCmd, "observe", "2w", 2 * week},
		{"pipeline --observe 90m", newPipelineRunCmd, "observe", "90m", 90 * time.Minute},
		{"ingest --max-future", func() *cobra.Command { return ingestSub("csv") }, "max-future", "1d", day},
		{"ingest telemetry --interval", func() *cobra.Command { return ingestSub("telemetry") }, "interval", "1.5d", 36 * time.Hour},
		{"ingest servicenow --overlap", func() *cobra.Command { return ingestSub("servicenow") }, "overlap", "1w", week},
		{"ingest ical --max-expand-time", func() *cobra.Command { return ingestSub("ical") }, "max-expand-time", "1d", day},
		{"shop --warmup", newShopCmd, "warmup", "1d", day},
		{"shop --ready-after", newShopCmd, "ready-after", "2w", 2 * week},
		{"shop --queue-timeout", newShopCmd, "queue-timeout", "250ms", 250 * time.Millisecond},
		{"shop --latency", newShopCmd, "latency", "1d1ms", day + time.Millisecond},
		{"coordinator --canary-window", newCoordinatorCmd, "canary-window", "1d", day},
		{"coordinator --rollout-timeout", newCoordinatorCmd, "rollout-timeout", "1w", week},
		{"coordinator --proxy-ttl", newCoordinatorCmd, "proxy-ttl", "1d12h", 36 * time.Hour},
		{"coordinator --watch-wait", newCoordinatorCmd, "watch-wait", "1d", day},
		{"coordinator --request-timeout", newCoordinatorCmd, "request-timeout", "5s", 5 * time.Second},
		{"coordinator --heartbeat-timeout", newCoordinatorCmd, "heartbeat-timeout", "150ms", 150 * time.Millisecond},
		{"coordinator --tick", newCoordinatorCmd, "tick", "1d", day},
		{"demo --duration", newDemoCmd, "duration", "1d", day},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := flagDurations(t, tc.cmd(), []string{"--" + tc.flag, tc.in}, tc.flag)[tc.flag]
			if got != tc.want {
				t.Errorf("--%s %s = %v, want %v", tc.flag, tc.in, got, tc.want)
			}
		})
	}
	// coordinator init-tls --valid is a flag of a subcommand.
	for _, c := range newCoordinatorCmd().Commands() {
		if c.Name() == "init-tls" {
			if got := flagDurations(t, c, []string{"--valid", "52w"}, "valid")["valid"]; got != 52*week {
				t.Errorf("init-tls --valid 52w = %v", got)
			}
		}
	}
}

// TestDurationFlagsRunWithDays: what the commands do with a 1d-style
// value, through their RunE: the shop's configuration and the demo's run
// length carry it.
func TestDurationFlagsRunWithDays(t *testing.T) {
	cfg, err := runShopCmd("--service", "catalog", "--listen", "127.0.0.1:0", "--warmup", "1d", "--ready-after", "0.5d", "--queue-timeout", "1w")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Warmup != day || cfg.ReadyAfter != 12*time.Hour || cfg.QueueTimeout != week {
		t.Errorf("shop config warmup %v ready-after %v queue-timeout %v, want 24h, 12h, 168h", cfg.Warmup, cfg.ReadyAfter, cfg.QueueTimeout)
	}
	var got time.Duration
	cmd := newDemoCmdRunning(func(_ context.Context, c demo.Config) (*demo.Result, error) {
		got = c.Duration
		return &demo.Result{}, nil
	})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--duration", "1d2h"})
	if err := cmd.Execute(); err != nil || got != 26*time.Hour {
		t.Errorf("demo --duration 1d2h: ran with %v, error %v; want 26h", got, err)
	}
	// A bad value is a usage error that names the forms.
	_, err = runShopCmd("--service", "catalog", "--warmup", "1x")
	if err == nil || !strings.Contains(err.Error(), "1d12h") {
		t.Errorf("shop --warmup 1x: %v, want an error listing the forms (…1d12h)", err)
	}
}

// TestSpansAndHorizonsReadDaysAndWeeks: the string-valued spans (ingest
// --since/--past/--future/--max-horizon, pipeline --window) and pipeline
// --horizons read d and w; a span past what a time.Duration holds is an
// error, where ingest's own day arithmetic overflowed into a negative or
// meaningless span.
func TestSpansAndHorizonsReadDaysAndWeeks(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"400d", 400 * day, ""},
		{"2w", 2 * week, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"36h", 36 * time.Hour, ""},
		{" 7d ", 7 * day, ""},
		{"0", 0, ""},
		{"106751d", 106751 * day, ""},
		{"106752d", 0, "longer than"},
		{"999999999999d", 0, "longer than"},
		{"1e300d", 0, "not a duration"},
		{"NaNd", 0, "not a duration"},
		{"-1d", 0, "zero or more"},
		{"soon", 0, "not a duration"},
	} {
		got, err := parseSpan(tc.in)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("parseSpan(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("parseSpan(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		in   string
		want []time.Duration
	}{
		{"15m,1h", []time.Duration{15 * time.Minute, time.Hour}},
		{"1d,2w", []time.Duration{day, 2 * week}},
		{"1d12h, 30m", []time.Duration{36 * time.Hour, 30 * time.Minute}},
	} {
		got, err := parseHorizons(tc.in)
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("parseHorizons(%q) = %v, %v", tc.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("parseHorizons(%q)[%d] = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
	if _, err := parseHorizons("0d"); err == nil {
		t.Error("parseHorizons(0d) accepted a zero horizon")
	}
}
