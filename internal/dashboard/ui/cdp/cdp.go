// Package cdp is a minimal Chrome DevTools Protocol client for the web
// UI's browser tests (internal/dashboard/ui and cmd/lbsys): it starts
// headless Chromium with --remote-debugging-pipe, opens tabs, evaluates
// JavaScript, takes screenshots and keeps the console errors a page
// produced.
//
// Over the pipe, Chromium reads JSON commands on its file descriptor 3 and
// writes answers and events on 4, each message ended by a NUL byte: no
// WebSocket and no dependency, the way Puppeteer's pipe transport drives
// the browser. It is test support, never linked into the lbsys binary.
package cdp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Browser is a headless Chromium started for one test.
type Browser struct {
	cmd     *exec.Cmd
	w       io.WriteCloser
	out     *os.File
	profile string

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	console []string // console errors and uncaught exceptions
	closed  bool
	done    chan struct{} // the reader ended
	stderr  *strings.Builder
	once    sync.Once
}

type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Find returns the path of Debian's chromium (or another name it goes
// by), "" when none is installed.
func Find() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Start starts headless Chromium at path with the flags CI uses and a
// fresh profile in a temporary directory. Close it when done.
func Start(path string) (*Browser, error) {
	profile, err := os.MkdirTemp("", "lbsys-chromium-")
	if err != nil {
		return nil, err
	}
	cmdR, cmdW, err := os.Pipe() // we write commands, Chromium reads fd 3
	if err != nil {
		os.RemoveAll(profile)
		return nil, err
	}
	evR, evW, err := os.Pipe() // Chromium writes fd 4, we read
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		os.RemoveAll(profile)
		return nil, err
	}
	cmd := exec.Command(path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
		// A page in a background tab of a busy machine must keep its
		// timers: the UI polls once a second.
		"--disable-background-timer-throttling", "--disable-renderer-backgrounding",
		"--user-data-dir="+profile, "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, evW}
	var stderr strings.Builder
	cmd.Stderr = &limitedWriter{w: &stderr, n: 64 << 10}
	cmd.Env = append(os.Environ(), "HOME="+profile)
	// Its own process group: the renderer and helper processes go with
	// it when Close kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		cmdR.Close()
		cmdW.Close()
		evR.Close()
		evW.Close()
		os.RemoveAll(profile)
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	cmdR.Close()
	evW.Close()
	b := &Browser{cmd: cmd, w: cmdW, out: evR, profile: profile, pending: map[int64]chan message{}, done: make(chan struct{}), stderr: &stderr}
	go b.read()
	return b, nil
}

type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

func (b *Browser) read() {
	defer close(b.done)
	r := bufio.NewReaderSize(b.out, 1<<20)
	for {
		raw, err := r.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.closed = true
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m message
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		b.event(m)
	}
}

// event keeps what a test asserts on: console errors, uncaught
// exceptions and browser log errors (a CSP violation is one).
func (b *Browser) event(m message) {
	var line string
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		json.Unmarshal(m.Params, &p)
		if p.Type != "error" && p.Type != "warning" && p.Type != "assert" {
			return
		}
		var parts []string
		for _, a := range p.Args {
			parts = append(parts, fmt.Sprint(a.Value, a.Description))
		}
		line = "console." + p.Type + ": " + strings.Join(parts, " ")
	case "Runtime.exceptionThrown":
		line = "exception: " + string(m.Params)
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		json.Unmarshal(m.Params, &p)
		if p.Entry.Level != "error" && p.Entry.Level != "warning" {
			return
		}
		line = fmt.Sprintf("log %s (%s): %s %s", p.Entry.Level, p.Entry.Source, p.Entry.Text, p.Entry.URL)
	default:
		return
	}
	b.mu.Lock()
	if len(b.console) < 100 {
		b.console = append(b.console, line)
	}
	b.mu.Unlock()
}

// Problems returns the console errors and warnings, uncaught exceptions
// and browser log errors (a Content-Security-Policy violation is one)
// seen so far, at most 100.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// call sends one command (to a page's session, or to the browser when
// session is "") and waits for its answer.
func (b *Browser) call(ctx context.Context, session, method string, params any, result any) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("%s: the browser is gone; its stderr:\n%s", method, b.stderrText())
	}
	b.nextID++
	id := b.nextID
	ch := make(chan message, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	msg, _ := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: p})
	if _, err := b.w.Write(append(msg, 0)); err != nil {
		return fmt.Errorf("%s: writing to the browser: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: the browser closed the pipe; its stderr:\n%s", method, b.stderrText())
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *Browser) stderrText() string {
	lw := b.cmd.Stderr.(*limitedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return b.stderr.String()
}

// Page is one tab, attached with a flat session.
type Page struct {
	b       *Browser
	session string
}

// NewPage opens a tab of width×height CSS pixels and enables the domains
// whose events Problems reports.
func (b *Browser) NewPage(ctx context.Context, width, height int) (*Page, error) {
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: att.SessionID}
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := b.call(ctx, p.session, m, map[string]any{}, nil); err != nil {
			return nil, err
		}
	}
	if err := b.call(ctx, p.session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// Navigate loads url in the tab (it returns once the navigation started,
// not when the page has loaded: wait for a condition with WaitFor).
func (p *Page) Navigate(ctx context.Context, url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("navigating to %s: %s", url, r.ErrorText)
	}
	return nil
}

// Eval runs a JavaScript expression in the page (a promise is awaited)
// and decodes its value, which must be JSON-serialisable, into out (nil:
// the value is dropped).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("evaluating %q: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out == nil {
		return nil
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("evaluating %q: no value (%s)", expr, r.Result.Type)
	}
	return json.Unmarshal(r.Result.Value, out)
}

// WaitFor polls a JavaScript condition every 50 ms until it is true or
// ctx ends; the error names what was awaited.
func (p *Page) WaitFor(ctx context.Context, what, cond string) error {
	for {
		var ok bool
		err := p.Eval(ctx, "!!("+cond+")", &ok)
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waiting for %s: %v (%w)", what, err, ctx.Err())
			}
			return fmt.Errorf("waiting for %s (%s): %w", what, cond, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Screenshot captures the whole page (not only the viewport, at most
// 8000 CSS pixels high) as PNG.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var m struct {
		CSSContentSize struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := p.b.call(ctx, p.session, "Page.getLayoutMetrics", map[string]any{}, &m); err != nil {
		return nil, err
	}
	var r struct {
		Data []byte `json:"data"` // base64 in JSON, decoded by encoding/json
	}
	clip := map[string]any{"x": 0, "y": 0, "width": m.CSSContentSize.Width, "height": min(m.CSSContentSize.Height, 8000), "scale": 1}
	if err := p.b.call(ctx, p.session, "Page.captureScreenshot",
		map[string]any{"format": "png", "captureBeyondViewport": true, "clip": clip}, &r); err != nil {
		return nil, err
	}
	if len(r.Data) < 8 || string(r.Data[1:4]) != "PNG" {
		return nil, errors.New("the screenshot is not a PNG")
	}
	return r.Data, nil
}

// JSHeap returns the page's used JavaScript heap in bytes after a full
// garbage collection.
func (p *Page) JSHeap(ctx context.Context) (float64, error) {
	if err := p.b.call(ctx, p.session, "HeapProfiler.collectGarbage", map[string]any{}, nil); err != nil {
		return 0, err
	}
	var r struct {
		UsedSize float64 `json:"usedSize"`
	}
	err := p.b.call(ctx, p.session, "Runtime.getHeapUsage", map[string]any{}, &r)
	return r.UsedSize, err
}

// Close asks the browser to quit, kills its process group if it has not
// within a few seconds, and removes its profile. It may be called more
// than once.
func (b *Browser) Close() {
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		b.call(ctx, "", "Browser.close", map[string]any{}, nil)
		exited := make(chan struct{})
		go func() { b.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		// Helpers left behind by the browser (crash handler) are in its
		// group.
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		b.w.Close()
		b.out.Close()
		<-b.done
		os.RemoveAll(b.profile)
	})
}

// ArtifactPath is where a test keeps a file a person looks at after the
// run (a screenshot): in $LBSYS_ARTIFACTS when set, else in
// lbsys-artifacts under the system's temporary directory. The directory
// is created; the file is not removed after the test, unlike
// testing.T.ArtifactDir's without -artifacts.
func ArtifactPath(name string) (string, error) {
	dir := os.Getenv("LBSYS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "lbsys-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("artifact directory %s (set LBSYS_ARTIFACTS to a writable one): %w", dir, err)
	}
	return filepath.Join(dir, name), nil
}
