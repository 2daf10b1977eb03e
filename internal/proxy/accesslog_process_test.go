package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/config"
)

// TestAccessLogReopenOnSIGUSR1 is logrotate's sequence against a real
// `lbsys proxy` process built by the test: the log file is renamed, the
// proxy keeps writing to it (it is the open file) until SIGUSR1, after
// which new lines land in a new file at the configured path. SIGTERM then
// drains and the last line is in the file when the process has exited.
func TestAccessLogReopenOnSIGUSR1(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the lbsys binary")
	}
	if len(ReopenSignals()) == 0 {
		t.Skip("no reopen signal on this platform")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "lbsys")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lbsys/lbsys/cmd/lbsys").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b := newBackend(t, "b")
	logPath := filepath.Join(dir, "access.log")
	cfgPath := filepath.Join(dir, "lbsys.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`admin: {listen: 127.0.0.1:0}
listeners:
  - name: main
    listen: 127.0.0.1:0
    access_log: {path: %q, format: json}
    routes: [{service: app}]
services:
  - name: app
    endpoints: [{address: %q}]
`, logPath, b.addr)), 0o600)

	cmd := exec.Command(bin, "proxy", "--config", cfgPath, "--log-level", "info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		output bytes.Buffer
	)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			output.WriteString(sc.Text() + "\n")
			mu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("lbsys proxy output:\n%s", output.String())
			mu.Unlock()
		}
	}()
	// waitLog waits for a line of the proxy's own log matching re.
	waitLog := func(re *regexp.Regexp) []string {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the proxy exited before logging %s", re)
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-timeout:
				t.Fatalf("no log line matching %s", re)
			}
		}
	}
	addr := waitLog(regexp.MustCompile(`lbsys proxy started.* listeners=([0-9.:]+)`))[1]
	url := "http://" + addr

	pathsIn := func(p string) string {
		var out []string
		for _, l := range readAccessLog(t, p, config.AccessLogJSON) {
			out = append(out, l["path"])
		}
		return strings.Join(out, ",")
	}
	waitPaths := func(p, want string) {
		t.Helper()
		eventually(t, 10*time.Second, p+" holding "+want, func() bool { return pathsIn(p) == want })
	}

	do(t, "GET", url+"/one", "", nil)
	waitPaths(logPath, "/one")
	// logrotate: rename, then postrotate kill -USR1.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", url+"/two", "", nil)
	waitPaths(logPath+".1", "/one,/two")
	if err := cmd.Process.Signal(ReopenSignals()[0]); err != nil {
		t.Fatal(err)
	}
	waitLog(regexp.MustCompile(`access logs reopened`))
	do(t, "GET", url+"/three", "", nil)
	waitPaths(logPath, "/three")
	if got := pathsIn(logPath + ".1"); got != "/one,/two" {
		t.Errorf("rotated file holds %s, want /one,/two", got)
	}
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("new log file mode %v: readable by others", fi.Mode().Perm())
	}

	// SIGTERM drains; the line of the last request is written before
	// the process exits.
	do(t, "GET", url+"/four", "", nil)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("proxy exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy did not exit after SIGINT")
	}
	if got := pathsIn(logPath); got != "/three,/four" {
		t.Errorf("after exit the log holds %s, want /three,/four", got)
	}
}
