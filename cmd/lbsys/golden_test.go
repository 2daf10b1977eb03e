package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// updateGolden rewrites testdata/golden from the current output:
// go test ./cmd/lbsys -run Golden -update-golden
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden/* from the current output")

// golden compares got, with the parts that vary between runs (seconds,
// temporary paths, run IDs, times of day) masked by the caller, with
// testdata/golden/name.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-golden to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from testdata/golden/%s at line %d:\n got: %q\nwant: %q", name, name, i+1, g, w)
			}
		}
	}
}

// mask replaces every match of each pattern by its name.
func mask(s string, pats ...string) string {
	for i := 0; i+1 < len(pats); i += 2 {
		s = regexp.MustCompile(pats[i]).ReplaceAllString(s, pats[i+1])
	}
	return s
}

// runRoot runs the root command in process.
func runRoot(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// TestGoldenSimOutputs pins the simulator's rendering (the summary on
// stdout, report.md, results.json, comparison.md) byte for byte, so that
// moving it out of cmd is provably behaviour-preserving.
func TestGoldenSimOutputs(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(sc, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	stdout, err := runSim(t, "--scenario", sc, "--policies", "round_robin,least_request", "--seed", "3", "--out", out, "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sim-summary.md", stdout)
	for _, f := range []string{"report.md", "results.json"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "sim-"+f, string(b))
	}
	out2 := filepath.Join(dir, "out2")
	stdout, err = runSim(t, "--scenario", sc, "--policies", "round_robin", "--seeds", "1-2", "--out", out2, "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sim-comparison-stdout.md", stdout)
	for _, f := range []string{"comparison.md", "comparison.json", "seed-2/report.md"} {
		b, err := os.ReadFile(filepath.Join(out2, f))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "sim-seeds-"+strings.ReplaceAll(f, "/", "-"), string(b))
	}
}

// TestGoldenForecastEval pins `lbsys forecast eval`'s Markdown and JSON,
// and its report.md (seconds masked).
func TestGoldenForecastEval(t *testing.T) {
	if testing.Short() {
		t.Skip("trains forecasters")
	}
	dir := t.TempDir()
	args := []string{"forecast", "eval", "--trace", pedestrians, "--value-col", "location_41", "--budget", "0", "--no-lstm", "--quiet", "--horizons", "1h,1d"}
	secs := []string{`- [0-9.]+ s\n`, "- S s\n", `"seconds": [0-9.]+`, `"seconds": S`}
	stdout, _, err := runRoot(t, append(args, "--format", "md", "--report", dir)...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "forecast-eval.md", mask(stdout, secs...))
	b, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	report := mask(string(b), append(secs, `\| [0-9.]+ \| (→|[a-z_]+ → )`, "| S | $1", `\| (succeeded|cached) \| [0-9.]+ \|`, "| $1 | S |",
		regexp.QuoteMeta(dir), "DIR")...)
	golden(t, "forecast-eval-report.md", report)
	stdout, _, err = runRoot(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "forecast-eval.json", mask(stdout, secs...))
}

// TestGoldenPipelineRun pins `lbsys pipeline run`'s text and JSON
// summaries and its report.md (run IDs, seconds and paths masked).
func TestGoldenPipelineRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains forecasters")
	}
	db, _ := shopStore(t)
	rep := filepath.Join(t.TempDir(), "report")
	args := []string{"pipeline", "run", "--store", db, "--budget", "0", "--no-lstm", "--quiet", "--horizons", "15m,1h", "--until", "1995-07-28T00:00:00Z", "--window", "14d"}
	masks := []string{`run-[0-9TZ]+-[0-9a-f]{6}`, "RUN", ` in [0-9.]+s:`, " in Ss:", `"seconds": [0-9.]+`, `"seconds": S`,
		regexp.QuoteMeta(filepath.Dir(db)), "DIR", `\| (ran|cached|failed) \| [0-9.]+ \|`, "| $1 | S |"}
	stdout, _, err := runRoot(t, append(args, "--report", rep)...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pipeline-run.txt", mask(stdout, masks...))
	b, err := os.ReadFile(filepath.Join(rep, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pipeline-report.md", mask(string(b), masks...))
	// A second run reuses every component: the JSON says so.
	stdout, _, err = runRoot(t, append(args, "--format", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "pipeline-run.json", mask(stdout, masks...))
}

// TestGoldenIngestOutputs pins the ingest summaries, `ingest status` and
// `ingest graph` (times, durations and sizes masked).
func TestGoldenIngestOutputs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lbsys.db")
	masks := []string{regexp.QuoteMeta(db), "DB", `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)`, "TIME",
		`\(schema (\d+), [0-9.]+ MB\)`, "(schema $1, S MB)", `  [0-9.]+(µs|ms|s) +`, "  D ",
		// Column widths that follow from masked values.
		`(STARTED|TOOK|TIME) +`, "$1 "}
	var all strings.Builder
	run := func(args ...string) {
		t.Helper()
		out, _, err := runRoot(t, append([]string{"ingest", "--store", db}, args...)...)
		if err != nil {
			t.Fatalf("ingest %v: %v\n%s", args, err, out)
		}
		all.WriteString("$ lbsys ingest " + strings.Join(args, " ") + "\n" + out)
	}
	run("csv", "--file", testdataPath("ingest", "trace-bad.csv"), "--service", "shop", "--metric", "requests", "--time-col", "ts", "--value-col", "v", "--tz", "America/New_York")
	run("backstage", "--file", testdataPath("ingest", "catalog-info.yaml"), "--file", testdataPath("ingest", "catalog-payments.yaml"))
	run("ical", "--file", testdataPath("ingest", "campaigns.ics"), "--calendar", "marketing", "--from", "2026-11-01", "--to", "2027-12-31")
	run("status", "-n", "3")
	run("graph")
	run("graph", "--service", "checkout")
	golden(t, "ingest.txt", mask(strings.ReplaceAll(all.String(), testdataPath(), "TESTDATA"), masks...))
}
