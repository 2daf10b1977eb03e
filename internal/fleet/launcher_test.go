package fleet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeShop stands in for `lbsys shop`: it writes an address to the file
// after --addr-file and sleeps (exec keeps its pid).
const fakeShop = `#!/bin/sh
while [ $# -gt 0 ]; do
  if [ "$1" = "--addr-file" ]; then echo 127.0.0.1:9 > "$2"; fi
  shift
done
exec sleep 120
`

// TestMain lets the test binary play the scaler that launches an instance
// (LBSYS_FLEET_PARENT names the fake shop): it prints the instance's pid
// and waits to be killed.
func TestMain(m *testing.M) {
	if bin := os.Getenv("LBSYS_FLEET_PARENT"); bin != "" {
		l := &ProcessLauncher{Binary: bin, Dir: filepath.Dir(bin)}
		in, err := l.Launch(context.Background(), "catalog", 1)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(in.(*process).cmd.Process.Pid)
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestInstancesDieWithTheirScaler: a scaler killed with SIGKILL (no
// chance to stop its instances) leaves no instance running.
func TestInstancesDieWithTheirScaler(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kernel kills children with their parent only on Linux")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-shop")
	if err := os.WriteFile(bin, []byte(fakeShop), 0o755); err != nil {
		t.Fatal(err)
	}
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), "LBSYS_FLEET_PARENT="+bin)
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the instance's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("parent said %q", line)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if !alive(pid) {
		t.Fatalf("instance %d not running before the scaler died", pid)
	}
	parent.Process.Signal(syscall.SIGKILL)
	parent.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("instance %d still running 10s after its scaler was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive: the process exists and is not a zombie waiting to be reaped.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}
