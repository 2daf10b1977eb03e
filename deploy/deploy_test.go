// Package deploy_test checks the deployment files: deploy/Dockerfile
// (docker cannot run on the machines this project is tested on, so the
// image is not built here: the test checks what can be checked without a
// daemon, and runs the Dockerfile's own build command to see that it gives
// a static binary) and deploy/systemd/lbsys-proxy.service (with
// systemd-analyze, when installed).
package deploy_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// dockerInstructions is every instruction Dockerfile syntax 1 knows.
var dockerInstructions = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true, "EXPOSE": true,
	"FROM": true, "HEALTHCHECK": true, "LABEL": true, "MAINTAINER": true, "ONBUILD": true, "RUN": true,
	"SHELL": true, "STOPSIGNAL": true, "USER": true, "VOLUME": true, "WORKDIR": true,
}

// parseDockerfile splits a Dockerfile into instructions: comments and
// blank lines dropped, lines ending in a backslash joined with the next.
func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{start, strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s ends inside a continued line (a trailing backslash)", path)
	}
	return out
}

// TestDockerfile checks deploy/Dockerfile without a Docker daemon: known
// instructions; a Go build stage whose Go version is go.mod's; a static
// build (CGO_ENABLED=0) of ./cmd/lbsys; a final stage that is not the
// build image, copies the binary from the build stage, runs as a non-root
// user and has the binary as its exec-form entry point; a .dockerignore
// that keeps .git out of the context.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, "Dockerfile")
	args := map[string]string{} // ARG defaults before the first FROM
	type stage struct {
		name, image string
		body        []instruction
	}
	var stages []*stage
	for _, in := range ins {
		if !dockerInstructions[in.cmd] {
			t.Errorf("Dockerfile:%d: unknown instruction %q", in.line, in.cmd)
		}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			if len(f) > 0 && strings.HasPrefix(f[0], "--platform=") {
				f = f[1:]
			}
			s := &stage{image: os.Expand(f[0], func(k string) string { return args[k] })}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case len(stages) == 0:
			t.Errorf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The build stage: go.mod's Go version, a static build of the command.
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil || !strings.HasPrefix(build.image, "golang:"+string(goLine[1])) {
		t.Errorf("build stage image %q: want golang:%s (go.mod's go line)", build.image, goLine[1])
	}
	if build.name == "" {
		t.Error("the build stage has no name (FROM … AS build) for COPY --from")
	}
	var goBuild string
	for _, in := range build.body {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
		if in.cmd == "COPY" {
			for _, src := range strings.Fields(in.args) {
				if strings.HasPrefix(src, "--") || src == "./" {
					continue
				}
				if _, err := os.Stat(filepath.Join("..", src)); err != nil && src != strings.Fields(in.args)[len(strings.Fields(in.args))-1] {
					t.Errorf("Dockerfile:%d: COPY %s: not in the repository", in.line, src)
				}
			}
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "./cmd/lbsys", "-o /out/lbsys"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the build stage's go build (%q) lacks %q", goBuild, want)
		}
	}

	// The runtime stage.
	if strings.HasPrefix(final.image, "golang:") {
		t.Errorf("the runtime stage runs on the build image %q", final.image)
	}
	var user, entry string
	copied := false
	for _, in := range final.body {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entry = in.args
		case "COPY":
			if strings.Contains(in.args, "--from="+build.name+" /out/lbsys /usr/local/bin/lbsys") {
				copied = true
			}
		}
	}
	if !copied {
		t.Errorf("the runtime stage does not COPY --from=%s /out/lbsys /usr/local/bin/lbsys", build.name)
	}
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %q: want a numeric non-root user (a runtime checking runAsNonRoot can verify only a number)", user)
	}
	if entry != `["/usr/local/bin/lbsys"]` {
		t.Errorf(`ENTRYPOINT %s: want the binary in exec form, ["/usr/local/bin/lbsys"] (so that signals reach it)`, entry)
	}

	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil || !regexp.MustCompile(`(?m)^\.git$`).Match(ignore) {
		t.Errorf("Dockerfile.dockerignore should keep .git out of the build context: %v", err)
	}
}

// TestDockerBuildCommandGivesAStaticBinary runs the build stage's go build
// (its environment and flags, the output moved to a temporary directory)
// from the repository root, and checks that the binary is static (no
// program interpreter, no shared libraries: it must run on
// distroless/static) and runs.
func TestDockerBuildCommandGivesAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary with -trimpath (a fresh build on first run)")
	}
	out := filepath.Join(t.TempDir(), "lbsys")
	var goBuild string
	for _, in := range parseDockerfile(t, "Dockerfile") {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	env := os.Environ()
	var words []string
	for _, w := range shellWords(goBuild) {
		switch {
		case strings.HasPrefix(w, "--mount="): // a RUN option, not part of the command
		case len(words) == 0 && strings.Contains(w, "=") && !strings.HasPrefix(w, "-"):
			if k, v, _ := strings.Cut(w, "="); k != "GOOS" && k != "GOARCH" { // the host's: the binary is run below
				env = append(env, k+"="+v)
			}
		case w == "/out/lbsys":
			words = append(words, out)
		default:
			words = append(words, w)
		}
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("cannot read the go build command %q", goBuild)
	}
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Dir = ".."
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", words, err, b)
	}
	ef, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: it is dynamically linked and will not run on distroless/static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if b, err := exec.Command(out, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(b), "lbsys ") {
		t.Errorf("lbsys version: %v %q", err, b)
	}
}

// shellWords splits a RUN line as sh would for the words it has here:
// blanks separate words, and double or single quotes group them.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// TestSystemdUnit checks deploy/systemd/lbsys-proxy.service: the settings
// the deployment relies on are there, and, where systemd-analyze is
// installed, it verifies the unit without a warning and rates its
// exposure OK (at most 2.0 of 10).
func TestSystemdUnit(t *testing.T) {
	const unit = "systemd/lbsys-proxy.service"
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: %q is not key=value", unit, line)
			continue
		}
		set[k] = append(set[k], v)
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "NoNewPrivileges": "yes", "Restart": "on-failure",
		"ExecStart": "/usr/local/bin/lbsys proxy --config /etc/lbsys/lbsys.yaml", "CapabilityBoundingSet": "",
	} {
		if len(set[k]) == 0 || set[k][len(set[k])-1] != want {
			t.Errorf("%s: %s=%v, want %q", unit, k, set[k], want)
		}
	}
	// Reload: check the file, then SIGHUP (the proxy's reload signal).
	if r := strings.Join(set["ExecReload"], "\n"); !strings.Contains(r, "lbsys proxy --check") || !strings.Contains(r, "kill -HUP $MAINPID") {
		t.Errorf("%s: ExecReload %v: want a --check, then kill -HUP $MAINPID", unit, set["ExecReload"])
	}
	// The example listens on 8080: no capability is needed, none granted.
	if len(set["AmbientCapabilities"]) > 0 {
		t.Errorf("%s grants %v; the example listens above 1024 and needs none", unit, set["AmbientCapabilities"])
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit was checked by the rules above only")
	}
	// verify needs the executables to exist: point them at this test's
	// binary (any executable file will do).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "lbsys-proxy.service")
	os.WriteFile(tmp, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/lbsys", self)), 0o644)
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || strings.Contains(string(out), "lbsys-proxy.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", tmp).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for lbsys-proxy\.service: (\d+\.\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", level, out)
	}
}
