package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbsys/lbsys/internal/shop"
)

// ProcessLauncher starts each instance as an `lbsys shop` process on a
// free loopback port: a real process, with its real start, its readiness
// probe and its warm-up.
type ProcessLauncher struct {
	// Binary is the lbsys executable.
	Binary string
	// Dir holds the instances' address files and logs.
	Dir string
	// Args returns the shop flags of an instance beyond --service,
	// --listen and --addr-file (workers, latency, --ready-after,
	// --warmup, --data, --upstream, --seed, ...).
	Args func(service string, seq int) []string
	// StartTimeout bounds the wait for an instance to listen. Default 15s.
	StartTimeout time.Duration
}

// Launch implements Launcher.
func (l *ProcessLauncher) Launch(ctx context.Context, service string, seq int) (Instance, error) {
	name := fmt.Sprintf("%s-%d", service, seq)
	addrFile := filepath.Join(l.Dir, name+".addr")
	os.Remove(addrFile)
	logf, err := os.Create(filepath.Join(l.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	args := []string{"shop", "--service", service, "--listen", "127.0.0.1:0", "--addr-file", addrFile, "--log-level", "warn"}
	if l.Args != nil {
		args = append(args, l.Args(service, seq)...)
	}
	cmd := exec.Command(l.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{cmd: cmd, log: logf, name: name, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	timeout := l.StartTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			p.addr = strings.TrimSpace(strings.Split(string(b), "\n")[0])
			break
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before listening (%v); see %s", name, p.waitErr, logf.Name())
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("%s did not listen within %v; see %s", name, timeout, logf.Name())
		}
	}
	p.client = &http.Client{Timeout: 2 * time.Second}
	return p, nil
}

type process struct {
	cmd     *exec.Cmd
	log     *os.File
	name    string
	addr    string
	client  *http.Client
	exited  chan struct{}
	waitErr error
	once    sync.Once
}

func (p *process) Addr() string { return p.addr }

func (p *process) Ready(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *process) Usage(ctx context.Context) (float64, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/_shop/stats", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: /_shop/stats: %s", p.name, resp.Status)
	}
	var st struct {
		Instances []struct {
			BusySeconds float64 `json:"busy_seconds"`
			Workers     int     `json:"workers"`
		} `json:"instances"`
		BusySeconds float64 `json:"busy_seconds"`
		Workers     int     `json:"workers"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil {
		return 0, 0, fmt.Errorf("%s: /_shop/stats: %w", p.name, err)
	}
	return st.BusySeconds, st.Workers, nil
}

// Stop drains the process with SIGTERM and kills it if ctx ends first.
func (p *process) Stop(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-ctx.Done():
			p.kill()
			<-p.exited
			err = fmt.Errorf("%s: killed after the drain deadline", p.name)
		}
	})
	return err
}

func (p *process) kill() {
	if p.cmd.Process != nil {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// GroupLauncher starts each instance in this process (shop.Start with one
// address): for tests, and where no lbsys binary is at hand.
type GroupLauncher struct {
	// Config returns the shop configuration of an instance (its Addrs
	// are set to one free loopback port).
	Config func(service string, seq int) shop.Config
}

// Launch implements Launcher.
func (l *GroupLauncher) Launch(ctx context.Context, service string, seq int) (Instance, error) {
	if l.Config == nil {
		return nil, errors.New("fleet: GroupLauncher without Config")
	}
	cfg := l.Config(service, seq)
	cfg.Service = service
	cfg.Addrs = []string{"127.0.0.1:0"}
	cfg.Speeds = nil
	g, err := shop.Start(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return &group{g: g}, nil
}

type group struct{ g *shop.Group }

func (g *group) Addr() string { return g.g.Addrs()[0] }

func (g *group) Ready(ctx context.Context) bool {
	resp, err := http.Get("http://" + g.Addr() + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (g *group) Usage(ctx context.Context) (float64, int, error) {
	st, err := g.g.Stats(ctx, 0)
	if err != nil {
		return 0, 0, err
	}
	return st.BusySeconds, st.Workers, nil
}

func (g *group) Stop(ctx context.Context) error { return g.g.Shutdown(ctx) }
