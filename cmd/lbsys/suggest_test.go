package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestMistypedFlagsAndCommandsGetSuggestions: a mistyped flag or
// subcommand is a usage error that names what was probably meant (issue
// #16), at every level of the command tree, and a typo close to nothing
// says where the list is instead of guessing.
func TestMistypedFlagsAndCommandsGetSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"sim", "--policy", "prequal"}, "unknown flag: --policy (did you mean --policies?)"},
		{[]string{"load", "--rat", "5"}, "(did you mean --rate?)"},
		{[]string{"load", "--rate=5", "--durration", "1s"}, "(did you mean --duration?)"},
		{[]string{"load", "--max-err", "5"}, "(did you mean --max-error-rate?)"},
		{[]string{"forecast", "eval", "--horizon", "1d"}, "(did you mean --horizons?)"},
		{[]string{"demo", "--polices", "prequal"}, "(did you mean --policies?)"},
		{[]string{"load", "--zzzzzz"}, "unknown flag: --zzzzzz (lbsys load --help lists the flags)"},
		{[]string{"forecast", "evl"}, `unknown command "evl" for "lbsys forecast" (did you mean eval?)`},
		{[]string{"change", "aprove", "CHG1"}, `(did you mean approve?)`},
		{[]string{"coordinator", "init-tsl"}, `unknown command "init-tsl" for "lbsys coordinator" (did you mean init-tls?)`},
		{[]string{"ingest", "icl"}, `(did you mean ical?)`},
		{[]string{"coordinator", "nothing-like-it"}, "lbsys coordinator --help lists them: init-tls, reset-agent"},
		{[]string{"demi"}, "Did you mean this?\n\tdemo"},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("lbsys %v: error %v, want one containing %q", tc.args, err, tc.want)
			continue
		}
		var ue usageError
		if !errors.As(err, &ue) && !strings.HasPrefix(err.Error(), "unknown command") {
			t.Errorf("lbsys %v: %v is not a usage error (exit 2)", tc.args, err)
		}
	}
	// A group alone still shows its help and succeeds.
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"forecast"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "eval") {
		t.Errorf("lbsys forecast: %v, output %q", err, out.String())
	}
}

func TestClosestFlag(t *testing.T) {
	names := []string{"duration", "max-error-rate", "max-inflight", "max-sessions", "policies", "rate", "seed", "seeds"}
	for _, tc := range []struct{ in, want string }{
		{"rat", "rate"},
		{"policy", "policies"}, // three edits, but a singular of it
		{"max-err", "max-error-rate"},
		{"max", ""},    // the start of three flags: no guess
		{"qqqqqq", ""}, // nothing close
		{"durations", "duration"},
	} {
		if got := closestFlag(tc.in, names); got != tc.want {
			t.Errorf("closestFlag(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestUnknownSubcommandExitsTwo runs the binary: a mistyped subcommand
// below the root used to print the help and exit 0.
func TestUnknownSubcommandExitsTwo(t *testing.T) {
	out, err := exec.Command(lbsysBinary(t), "forecast", "evl").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(out), "did you mean eval?") {
		t.Fatalf("lbsys forecast evl: %v, output %q; want exit 2 and a suggestion", err, out)
	}
}
