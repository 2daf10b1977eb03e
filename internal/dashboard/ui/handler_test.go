package ui

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

func newServer(t *testing.T, c *Collector) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "status") })
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPageAndAssets(t *testing.T) {
	srv := newServer(t, NewCollector(twoServices(), Options{}))
	for _, c := range []struct {
		path, status, ctype, contains string
	}{
		{"/", "200", "text/html; charset=utf-8", `<h1>lbsys proxy</h1>`},
		{"/ui/", "200", "text/html; charset=utf-8", `src="/ui/app.js"`},
		{"/ui/app.js", "200", "text/javascript; charset=utf-8", "window.lbsysUI"},
		{"/ui/app.css", "200", "text/css; charset=utf-8", ".charts"},
		{"/ui/vendor/uplot/uPlot.iife.min.js", "200", "text/javascript; charset=utf-8", "uPlot"},
		{"/ui/vendor/uplot/uPlot.min.css", "200", "text/css; charset=utf-8", ".uplot"},
		{"/ui/vendor/uplot/LICENSE", "200", "text/plain; charset=utf-8", "MIT"},
		{"/ui/vendor/uplot/README.md", "404", "application/json", "the page is at /"},
		{"/ui/../../etc/passwd", "404", "", ""},
		{"/status", "200", "", "status"}, // the admin API is not shadowed
		{"/nothing-here", "404", "", ""}, // nor are unknown paths the page
	} {
		resp, body := get(t, srv.URL+c.path, nil)
		if got := strings.Fields(resp.Status)[0]; got != c.status {
			t.Errorf("%s: status %s, want %s", c.path, resp.Status, c.status)
			continue
		}
		if c.ctype != "" && resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s: Content-Type %q, want %q", c.path, resp.Header.Get("Content-Type"), c.ctype)
		}
		if !strings.Contains(body, c.contains) {
			t.Errorf("%s: body lacks %q", c.path, c.contains)
		}
		if c.status == "200" && c.path != "/status" {
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("%s: CSP %q", c.path, csp)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("ETag") == "" {
				t.Errorf("%s: headers %v", c.path, resp.Header)
			}
		}
	}
	// A page loaded before is revalidated, not sent again.
	resp, _ := get(t, srv.URL+"/ui/app.js", nil)
	resp2, body := get(t, srv.URL+"/ui/app.js", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
	if resp2.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("If-None-Match: %s, %d bytes", resp2.Status, len(body))
	}
	// The page loads nothing from elsewhere.
	_, page := get(t, srv.URL+"/", nil)
	for _, bad := range []string{"http://", "https://", "//cdn", "<script>"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q: it must load only its own files, with no inline script", bad)
		}
	}
}

func TestAPIErrors(t *testing.T) {
	srv := newServer(t, NewCollector(twoServices(), Options{Window: 30}))
	for _, c := range []struct {
		path, want string
	}{
		{"/api/ui/series?since=yesterday", "since: want unix seconds"},
		{"/api/ui/series?limit=0", "limit: want a whole number of seconds from 1 to 30"},
		{"/api/ui/series?limit=x", "limit: want"},
		{"/api/ui/timeline?after=-1", "after: want the seq of the last change you have"},
	} {
		resp, body := get(t, srv.URL+c.path, nil)
		var e struct{ Error string }
		if resp.StatusCode != 400 || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s: %s %s, want 400 with %q", c.path, resp.Status, body, c.want)
		}
	}
}

func TestParseSeriesQuery(t *testing.T) {
	for _, c := range []struct {
		name, since, limit string
		wantSince          int64
		wantLimit          int
		err                string
	}{
		{"defaults", "", "", math.MinInt64, 60, ""},
		{"unix seconds", "1764237600", "10", 1764237600, 10, ""},
		{"fractional seconds", "1764237600.9", "", 1764237600, 60, ""},
		{"negative fraction floors", "-0.5", "", -1, 60, ""},
		{"RFC 3339", "2025-11-27T10:00:00Z", "", 1764237600, 60, ""},
		{"limit clamped to the window", "", "1000", math.MinInt64, 60, ""},
		{"NaN", "NaN", "", 0, 0, "since"},
		{"huge float", "1e300", "", 0, 0, "since"},
		{"garbage", "soon", "", 0, 0, "since"},
		{"negative limit", "", "-3", 0, 0, "limit"},
	} {
		q, err := ParseSeriesQuery(c.since, c.limit, "", 60)
		if c.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), c.err) {
				t.Errorf("%s: err %v, want one about %s", c.name, err, c.err)
			}
			continue
		}
		if err != nil || q.Since != c.wantSince || q.Limit != c.wantLimit {
			t.Errorf("%s: %+v %v, want since %d limit %d", c.name, q, err, c.wantSince, c.wantLimit)
		}
	}
}

func TestStateView(t *testing.T) {
	src := twoServices()
	src.setDirective(&directive.Directive{Schema: 1, Version: 4, Services: map[string]*directive.Service{
		"catalog": {Weights: map[string]float64{"10.0.0.1:80": 2}, WeightsWhy: &directive.Reason{Text: "faster"}},
	}})
	c := NewCollector(src, Options{Window: 60})
	c.Write(second(t0, 30, 0, 12, "catalog", "cart"))
	srv := newServer(t, c)
	_, body := get(t, srv.URL+"/api/ui/state", nil)
	var st StateView
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.DirectiveVersion != 4 || !st.Time.Equal(t0) || st.ConfigVersion != "cfg1" || len(st.Services) != 2 {
		t.Fatalf("state: %s", body)
	}
	cat := st.Services[1]
	e := cat.Endpoints[0]
	if e.DirectiveWeight == nil || *e.DirectiveWeight != 2 || e.RPS != 10 || e.P99ms != 12 || cat.Endpoints[1].DirectiveWeight != nil {
		t.Errorf("endpoint: %+v", cat.Endpoints)
	}
	if cat.Directive == nil || len(cat.Directive.Fields) != 1 || cat.Directive.Fields[0].Why.Text != "faster" {
		t.Errorf("directive now: %+v", cat.Directive)
	}
	if st.Services[0].Directive != nil {
		t.Errorf("cart has no section: %+v", st.Services[0].Directive)
	}
}

// TestBounded runs the UI for ten windows' worth of seconds with a new
// directive (and a new event) and a new announced event every 10 seconds and an SLO violation every
// other minute, calling every endpoint all along: what the collector holds
// stays within its bounds and the heap does not grow.
func TestBounded(t *testing.T) {
	src := twoServices()
	const window = 120
	c := NewCollector(src, Options{Window: window, Versions: 20, Incidents: 5, Events: 7})
	srv := newServer(t, c)
	client := &http.Client{Timeout: 5 * time.Second}
	call := func(path string) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	run := func(from, to int) {
		for i := from; i < to; i++ {
			ts := t0.Add(time.Duration(i) * time.Second)
			if i%10 == 0 {
				ev := "sale-" + strings.Repeat("x", i%7) + ts.Format(time.RFC3339)
				src.setDirective(&directive.Directive{Schema: 1, Version: uint64(i + 1), Services: map[string]*directive.Service{
					"catalog": {Scale: &directive.Scale{Replicas: 1 + i%5, Why: &directive.Reason{Text: "t", Event: ev}},
						Why: &directive.Why{Model: "m", Forecast: []directive.Point{{At: ts, RPS: 1, Hi: 2}, {At: ts.Add(time.Hour), RPS: 3, Hi: 4}}}},
				}})
				// And a calendar announcing an event of its own.
				if err := c.Announce([]Announcement{{Name: EventName("promo", ts.Add(time.Hour)), Start: ts.Add(time.Hour), Services: []string{"cart"}}}); err != nil {
					t.Fatal(err)
				}
			}
			p99 := 20.0
			if (i/60)%2 == 1 {
				p99 = 900
			}
			c.Write(second(ts, 30, 0, p99, "catalog", "cart"))
			if i%3 == 0 {
				call("/api/ui/series?since=" + ts.Add(-5*time.Second).Format(time.RFC3339))
				call("/api/ui/series")
				call("/api/ui/timeline?after=0")
				call("/api/ui/state")
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	run(0, 3*window)
	before := heap()
	run(3*window, 12*window)
	after := heap()

	c.mu.Lock()
	sizes := map[string][2]int{
		"frames":              {c.n, window},
		"frame ring":          {len(c.frames), window},
		"changes":             {len(c.changes), 20},
		"events":              {len(c.events), 7},
		"incidents":           {len(c.incidents), 5},
		"minute accumulators": {len(c.minutes), 2},
		"endpoint stats":      {len(c.eps), 3},
		"forecasts":           {len(c.forecast), 1},
		"ahead buffer":        {cap(c.aheadBuf.t), 2 * maxAheadPoints},
	}
	for _, e := range c.events {
		if len(e.Services) > maxEventServices || len(e.NamedBy) > maxEventRefs {
			t.Errorf("event %s holds %d services and %d references", e.Name, len(e.Services), len(e.NamedBy))
		}
	}
	for _, f := range c.frames {
		if len(f.samples) > 2 || cap(f.samples) > 8 {
			t.Errorf("a frame holds %d samples (cap %d)", len(f.samples), cap(f.samples))
		}
	}
	c.mu.Unlock()
	for name, s := range sizes {
		if s[0] > s[1] {
			t.Errorf("%s: %d, bound %d", name, s[0], s[1])
		}
	}
	if sizes["changes"][0] != 20 || sizes["events"][0] != 7 || sizes["incidents"][0] != 5 {
		t.Errorf("the bounds were not reached, so the test proves nothing: %v", sizes)
	}
	t.Logf("heap %d KiB after %d s, %d KiB after %d s", before>>10, 3*window, after>>10, 12*window)
	if after > before+512<<10 {
		t.Errorf("heap grew from %d to %d KiB over %d more seconds", before>>10, after>>10, 9*window)
	}
	// A full answer is bounded by the window too.
	resp, body := get(t, srv.URL+"/api/ui/series", nil)
	s := decodeSeries(t, []byte(body))
	if resp.StatusCode != 200 || len(s.T) != window {
		t.Errorf("series holds %d seconds, want %d", len(s.T), window)
	}
	// The newest window of seconds, in order.
	newest := t0.Unix() + 12*window - 1
	if len(s.T) > 0 && (s.T[len(s.T)-1] != newest || s.T[0] != newest-window+1 || s.Last != newest) {
		t.Errorf("series spans %d..%d (last %d), want %d..%d", s.T[0], s.T[len(s.T)-1], s.Last, newest-window+1, newest)
	}
	for i := 1; i < len(s.T); i++ {
		if s.T[i] != s.T[i-1]+1 {
			t.Errorf("series out of order at %d: %d after %d", i, s.T[i], s.T[i-1])
			break
		}
	}
}

// TestVendoredUPlot checks the vendored files against the sums their
// README records, so an accidental edit (or a partial update) shows.
func TestVendoredUPlot(t *testing.T) {
	dir := filepath.Join("assets", "vendor", "uplot")
	f, err := os.Open(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checked := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "|")
		if len(cols) != 5 || len(strings.TrimSpace(cols[3])) != 64 {
			continue
		}
		name, want := strings.TrimSpace(cols[1]), strings.TrimSpace(cols[3])
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, README says %s", name, got, want)
		}
		checked++
	}
	if checked != 2 {
		t.Errorf("checked %d files, want 2 (the README's table changed?)", checked)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "LICENSE")); err != nil || !strings.Contains(string(b), "MIT License") {
		t.Errorf("uPlot's LICENSE: %v", err)
	}
}
