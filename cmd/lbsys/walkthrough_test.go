package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/gaia/client"
	"github.com/lbsys/lbsys/internal/testnet"
)

// walkthroughDir is the scratch directory docs/coordinator.md uses; the
// test runs the document's commands in a temporary one instead.
const walkthroughDir = "/tmp/gaia-try"

// walkthroughBlocks returns the shell blocks of docs/coordinator.md's
// "Try it on one machine" section, in order.
func walkthroughBlocks(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/coordinator.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "\n## Try it on one machine\n")
	if start < 0 {
		t.Fatal(`docs/coordinator.md has no "## Try it on one machine" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// TestCoordinatorWalkthrough runs docs/coordinator.md's walkthrough as
// written (issue #16: a newcomer could not follow it to the end: no
// directive file, no proposer token, no weighted service in the example):
// its shell blocks in order, against real processes on 127.0.0.1, with
// two substitutions only: a temporary directory for /tmp/gaia-try, and
// free ports for the document's fixed ones (in the commands, in the
// copied example files, and the CLI's default coordinator through
// $LBSYS_COORDINATOR), so the test runs beside anything else. Each
// step's outcome is checked: the tokens, the coordinator leading, the
// proxy connected, the proposal waiting for approval, the approval, the
// change closed with success and the proxy running the version.
func TestCoordinatorWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a coordinator and a proxy")
	}
	blocks := walkthroughBlocks(t)
	if len(blocks) != 7 {
		t.Fatalf("the walkthrough has %d shell blocks; this test checks 7 (setup, tokens, coordinator, proxy, propose, approve, verify): update it with the document", len(blocks))
	}
	dir := t.TempDir()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}

	// Every 127.0.0.1 port of the commands and the example files gets a
	// free one.
	portRE := regexp.MustCompile(`127\.0\.0\.1:(\d+)\b`)
	ports := map[string]string{}
	var sources []string
	sources = append(sources, blocks...)
	for _, f := range []string{"examples/lbsys.yaml", "examples/coordinator/directive.json"} {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, string(b))
	}
	for _, s := range sources {
		for _, m := range portRE.FindAllStringSubmatch(s, -1) {
			if _, ok := ports[m[1]]; !ok {
				ports[m[1]] = testnet.Addr(t)
			}
		}
	}
	remap := func(s string) string {
		s = strings.ReplaceAll(s, walkthroughDir, dir)
		return portRE.ReplaceAllStringFunc(s, func(a string) string { return ports[strings.TrimPrefix(a, "127.0.0.1:")] })
	}
	// The CLI's default coordinator, http://127.0.0.1:7101, moves with
	// the port (the variable is how the CLI's default is changed); nothing
	// else of the test's own environment leaks in.
	env := []string{"LBSYS_COORDINATOR=http://" + ports["7101"]}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LBSYS_") {
			env = append(env, kv)
		}
	}

	// run runs a block to its end, from the repository's root as the
	// document says.
	began := time.Now()
	run := func(i int) string {
		t.Helper()
		defer func() { t.Logf("block %d done at %v", i+1, time.Since(began).Round(100*time.Millisecond)) }()
		cmd := exec.Command("bash", "-e", "-c", remap(blocks[i]))
		cmd.Dir, cmd.Env = repo, env
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		done := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				cmd.Process.Kill()
			case <-done:
			}
		}()
		out, err := cmd.CombinedOutput()
		close(done)
		if err != nil {
			t.Fatalf("block %d failed: %v\n%s\n--- output:\n%s", i+1, err, blocks[i], out)
		}
		return string(out)
	}
	// start runs a block that keeps running (a server) in its own process
	// group, stopped at the end of the test.
	start := func(i int, name string) *syncBuffer {
		t.Helper()
		if !strings.Contains(blocks[i], "# keeps running") {
			t.Fatalf("block %d is expected to start the %s and say it keeps running:\n%s", i+1, name, blocks[i])
		}
		out := &syncBuffer{}
		cmd := exec.Command("bash", "-e", "-c", remap(blocks[i]))
		cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = repo, env, out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
			if t.Failed() {
				t.Logf("--- %s output:\n%s", name, out.String())
			}
		})
		return out
	}
	token := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name+".token"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	// 1. The binary and the example files.
	run(0)
	for _, f := range []string{"lbsys", "lbsys.yaml", "directive.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("step 1: %v", err)
		}
	}
	for _, f := range []string{"lbsys.yaml", "directive.json"} {
		p := filepath.Join(dir, f)
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(p, []byte(remap(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// 2. Tokens: a proposer, an approver, an admin.
	run(1)
	tokens, _ := os.ReadFile(filepath.Join(dir, "tokens"))
	if lines := strings.Split(strings.TrimSpace(string(tokens)), "\n"); len(lines) != 2 ||
		lines[0] != token("alice")+" alice proposer" || lines[1] != token("bob")+" bob approver" || len(token("admin")) != 32 {
		t.Fatalf("step 2: tokens file:\n%s", tokens)
	}

	// 3. The coordinator leads: alice can list changes.
	coordOut := start(2, "coordinator")
	coordURL := "http://" + ports["7101"]
	alice := client.New([]string{coordURL}, token("alice"))
	waitFor(t, 30*time.Second, "the coordinator to answer alice", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := alice.Changes(ctx, "", 1)
		return err == nil
	})

	// 4. The proxy takes directives from it: its agent watches, and the
	// coordinator counts it among the active proxies.
	start(3, "proxy")
	admin := ports["9901"]
	waitFor(t, 30*time.Second, "the coordinator to see the proxy", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := alice.Status(ctx)
		return err == nil && len(st.Proxies) == 1
	})
	if st := agentStatus(admin); st == nil || st.Degraded {
		t.Fatalf("step 4: the proxy's agent: %+v", st)
	}

	// 5. alice proposes: a normal change waiting for an approver.
	out := run(4)
	for _, want := range []string{"directive.json: valid (schema 1, 1 services)", "change 1 (normal): authorize", "next: an approver runs `lbsys change approve 1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("step 5: the output lacks %q:\n%s", want, out)
		}
	}

	// 6. bob approves: version 1 is committed and rolling out.
	out = run(5)
	if !regexp.MustCompile(`change 1 \(normal\): (scheduled|implement|review|closed)`).MatchString(out) || !strings.Contains(out, "version 1 (on top of 0)") {
		t.Fatalf("step 6: the approval did not commit version 1:\n%s", out)
	}

	// 7. After the canary window the change is closed with success, and
	// the proxy runs version 1 with the directive's weights.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out = run(6)
		if strings.Contains(out, "change 1 (normal): closed, success") && strings.Contains(out, "lbsys_agent_directive_version 1\n") &&
			strings.Contains(out, "lbsys_agent_degraded 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step 7: after 60 s the change is not closed with success on a proxy running version 1:\n%s\n--- coordinator:\n%s", out, coordOut.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, want := range []string{"promote", "canary window passed without regression", "version 1 live on every active proxy (1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("step 7: the audit trail lacks %q:\n%s", want, out)
		}
	}
	st := agentStatus(admin)
	if st == nil || st.Version != 1 {
		t.Fatalf("step 7: the proxy's /status: %+v", st)
	}
	w := st.Services["inventory"].Weights
	if want := fmt.Sprint(map[string]float64{ports["9041"]: 2, ports["9042"]: 1, ports["9043"]: 1}); fmt.Sprint(w) != want {
		t.Errorf("step 7: inventory's weights in the proxy %v, want %s", w, want)
	}
	if bytes.Contains([]byte(coordOut.String()), []byte("panic")) {
		t.Errorf("the coordinator panicked:\n%s", coordOut.String())
	}
}

// agentStatus reads the coordinator agent's part of the proxy's /status.
func agentStatus(admin string) *walkthroughAgent {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + admin + "/status")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		Coordinator *walkthroughAgent `json:"coordinator"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return nil
	}
	return st.Coordinator
}

type walkthroughAgent struct {
	Connected bool   `json:"connected"`
	Degraded  bool   `json:"degraded"`
	Version   uint64 `json:"version"`
	Services  map[string]struct {
		Weights map[string]float64 `json:"weights"`
	} `json:"services"`
}
