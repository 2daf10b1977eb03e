package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/internal/dashboard/ui/cdp"
)

// TestDemoUIInChromium is issue #14's acceptance test of the web UI: it
// runs `lbsys demo` (the shop as processes, the proxy, the coordinator and
// the live controller replaying 1995-07-12 from 06:30 at ×60, the flash
// sale announced for 07:45, 75 s into the run), loads the proxy's page in
// headless Chromium and checks that, before 07:45 of the replayed day, a
// person sees what is coming: the charts hold measured data; the forecast
// ahead has points after now and shows the sale's rise; the calendar's
// flash sale is listed (as from the calendar) and drawn on the charts; a
// directive with a replica floor is in the timeline; the catalog's
// endpoints in rotation meet a floor above its minimum; the time axis is
// labelled in the replayed day's time; no console or CSP error. It keeps
// two screenshots (five minutes before the sale, and ten minutes into
// it) where cdp.ArtifactPath says — by default lbsys-artifacts/ui-demo.png
// and ui-demo-sale.png under the system's temporary directory — and logs
// their paths. Then it stops the demo with Ctrl-C and waits for its
// summary.
func TestDemoUIInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo and a browser for two minutes")
	}
	browserBin := cdp.Require(t, "the web UI's test against the demo")
	// Longer than the test needs: it is stopped with Ctrl-C.
	demo := startLbsys(t, "demo", "--duration", "4m", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--state-dir", t.TempDir())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			demo.cmd.Process.Signal(os.Interrupt)
			select {
			case err := <-demo.done:
				demo.done <- err
			case <-time.After(30 * time.Second):
				t.Log("lbsys demo still running 30 s after Ctrl-C: killing it")
			}
		}
	})
	adminLine := regexp.MustCompile(`web UI\s+(http://127\.0\.0\.1:\d+)/`)
	var admin string
	for deadline := time.Now().Add(120 * time.Second); admin == ""; {
		if m := adminLine.FindStringSubmatch(demo.stderr.String()); m != nil {
			admin = m[1]
			break
		}
		select {
		case err := <-demo.done:
			demo.done <- err
			t.Fatalf("lbsys demo ended before printing its web UI's address: %v\n%s", err, demo.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("lbsys demo printed no web UI address within 120 s:\n%s", demo.stderr.String())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	br, err := cdp.Start(browserBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	pg, err := br.NewPage(ctx, 1400, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Navigate(ctx, admin+"/"); err != nil {
		t.Fatal(err)
	}
	// The controller trains before the run starts: wait for the replay's
	// clock (set when the load starts) and the first data.
	readyCtx, readyCancel := context.WithTimeout(ctx, 90*time.Second)
	defer readyCancel()
	if err := pg.WaitFor(readyCtx, "the run's first data, labelled in the replayed day's time", `window.lbsysUI && lbsysUI.ready && lbsysUI.replay && Object.keys(lbsysUI.services).length === 5`); err != nil {
		t.Fatalf("%v; console: %q\n%s", err, br.Problems(), demo.stderr.String())
	}

	// What the page shows, read every half second.
	type seen struct {
		// Now and SaleAt are on the wall clock (unix s), Virtual and
		// SaleVirtual the same in the replayed day's time.
		Now, Virtual, SaleAt, SaleVirtual, Factor float64
		Polls, Failures                           int
		LastError                                 string
		RPSValues                                 int     `json:"rpsValues"`
		RPSMax                                    float64 `json:"rpsMax"`
		// FloorMet is the most endpoints in rotation at a second whose
		// floor was above the catalog's minimum of 2 and was met.
		FloorMet float64 `json:"floorMet"`
		Ahead    struct {
			Points, Forecast, Floor int
			ForecastMax             float64
			End                     float64
		}
		Event *struct {
			Name, Title, Source string
		}
		Listed, Drawn bool
		FloorVersions []int
		XMax          float64
		AxisLabels    []string
	}
	const probe = `(() => {
		const s = lbsysUI.summary(), c = s.services.catalog || {}, r = s.replay;
		const ev = s.eventList.find(e => e.name.startsWith('flash-sale ') && e.source === 'calendar') || null;
		const saleAt = ev ? Date.parse(ev.at) / 1000 : 0;
		const d = lbsysUI.services.catalog ? lbsysUI.services.catalog.data : {t: []};
		let floorMet = 0;
		d.t.forEach((t, i) => { if (t < saleAt && d.replica_floor[i] > 2 && d.endpoints[i] >= d.replica_floor[i]) floorMet = Math.max(floorMet, d.endpoints[i]); });
		const row = ev && [...document.querySelectorAll('#event-rows tr')].some(tr => tr.dataset.event === ev.name && tr.dataset.source === 'calendar');
		const floors = lbsysUI.changes.filter(ch => ev && Date.parse(ch.seen_at) / 1000 < saleAt &&
			(ch.services || []).some(sv => (sv.fields || []).some(f => f.field === 'scale'))).map(ch => ch.version);
		return {now: c.now || 0, virtual: r && c.now ? r.vs + (c.now - r.ws) * r.factor : 0, saleAt: saleAt,
			saleVirtual: r && saleAt ? r.vs + (saleAt - r.ws) * r.factor : 0, factor: r ? r.factor : 0,
			polls: s.polls, failures: s.failures, lastError: s.lastError,
			rpsValues: c.rps ? c.rps.values : 0, rpsMax: c.rps ? (c.rps.max || 0) : 0, floorMet: floorMet,
			ahead: {points: c.ahead.points, forecast: c.ahead.forecast, floor: c.ahead.floor, forecastMax: c.ahead.forecastMax || 0, end: c.ahead.end || 0},
			event: ev, listed: !!row, drawn: !!ev && (c.drawnEvents || []).includes(ev.name), floorVersions: floors, xMax: c.xMax || 0,
			axisLabels: s.axisLabels};
	})()`
	virtualClock := func(v float64) string { return time.Unix(int64(v), 0).UTC().Format("15:04:05") }
	var s seen
	// When each thing was first on the page, in the replayed day's time.
	first := map[string]float64{}
	mark := func(what string, ok bool) {
		if _, done := first[what]; ok && !done {
			first[what] = s.Virtual
		}
	}
	wants := []string{"measured data", "forecast ahead", "the sale's rise ahead", "the sale listed", "the sale drawn", "a floor before the sale",
		"capacity arriving"}
	for deadline := time.Now().Add(150 * time.Second); ; {
		s = seen{}
		if err := pg.Eval(ctx, probe, &s); err != nil {
			t.Fatal(err)
		}
		mark("measured data", s.RPSValues > 0 && s.RPSMax > 0)
		mark("forecast ahead", s.Ahead.Points > 0 && s.Ahead.Forecast > 0 && s.XMax > s.Now)
		// The sale's rise: the forecast ahead at least twice the busiest
		// second measured so far (the calendar's sale multiplies the
		// traffic; the controller learnt by how much from the past ones).
		mark("the sale's rise ahead", s.Ahead.Forecast > 0 && s.Ahead.ForecastMax >= 2*s.RPSMax && s.RPSMax > 0 && s.Ahead.End >= s.SaleAt)
		mark("the sale listed", s.Event != nil && s.Listed)
		mark("the sale drawn", s.Event != nil && s.Drawn)
		mark("a floor before the sale", len(s.FloorVersions) > 0)
		// The catalog's instances meet a floor above its minimum of 2.
		mark("capacity arriving", s.FloorMet > 2)
		if len(first) == len(wants) || s.SaleAt > 0 && s.Now >= s.SaleAt || time.Now().After(deadline) {
			break
		}
		select {
		case err := <-demo.done:
			demo.done <- err
			t.Fatalf("lbsys demo ended early: %v\n%s", err, demo.stderr.String())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if s.Event == nil {
		t.Fatalf("no flash sale from the calendar among the page's events (%+v)\n%s", s, demo.stderr.String())
	}
	// The page's sale (on the wall clock) is the calendar's 07:45 of the
	// replayed day.
	if want := time.Date(1995, 7, 12, 7, 45, 0, 0, time.UTC); s.SaleVirtual < float64(want.Unix())-1 || s.SaleVirtual > float64(want.Unix())+1 {
		t.Errorf("the sale starts at %s of the replayed day on the page, want 07:45:00", virtualClock(s.SaleVirtual))
	}
	for _, w := range wants {
		at, ok := first[w]
		switch {
		case !ok:
			t.Errorf("never on the page before the sale: %s (last read: %+v)", w, s)
		case at >= s.SaleVirtual:
			t.Errorf("%s: first on the page at %s, not before the sale", w, virtualClock(at))
		default:
			t.Logf("%-24s on the page from %s (replayed day)", w, virtualClock(at))
		}
	}
	// The time axis in the replayed morning's time (06:30 to 08:10, and
	// the forecast after), on round minutes of it: not the wall clock's,
	// whose minutes of the last few go by as seconds of the replay.
	if len(s.AxisLabels) < 2 {
		t.Errorf("time axis labels %q: want several", s.AxisLabels)
	}
	for _, l := range s.AxisLabels {
		if !regexp.MustCompile(`^0[6-9]:[0-5][05]$`).MatchString(l) {
			t.Errorf("time axis labels %q: want the replayed morning's times on round minutes (06:30, 07:00, …)", s.AxisLabels)
			break
		}
	}
	if s.Failures != 0 || s.LastError != "" {
		t.Errorf("polls failed: %d, %s", s.Failures, s.LastError)
	}
	t.Logf("at %s: catalog's forecast ahead peaks at %.0f req/s against %.0f measured so far; %d points ahead; floor versions before the sale %v; %.0f endpoints meeting a floor; event %q (%s)",
		virtualClock(s.Virtual), s.Ahead.ForecastMax, s.RPSMax, s.Ahead.Points, s.FloorVersions, s.FloorMet, s.Event.Title, s.Event.Name)
	// The screenshot five minutes before the sale: its rise ahead, the
	// floors and the capacity they brought.
	if err := pg.WaitFor(ctx, "five minutes before the sale", fmt.Sprintf(`(() => { const c = lbsysUI.summary().services.catalog; return c && c.now >= %f; })()`,
		s.SaleAt-300/max(s.Factor, 1))); err != nil {
		t.Errorf("%v\n%s", err, demo.stderr.String())
	}
	keepDemoScreenshot(ctx, t, pg, "ui-demo.png")

	// During the sale: the measured rise against what was forecast.
	if err := pg.WaitFor(ctx, "10 minutes of the sale", fmt.Sprintf(`(() => { const c = lbsysUI.summary().services.catalog; return c && c.now >= %f; })()`,
		s.SaleAt+600/max(s.Factor, 1))); err != nil {
		t.Errorf("%v\n%s", err, demo.stderr.String())
	} else {
		keepDemoScreenshot(ctx, t, pg, "ui-demo-sale.png")
	}
	if p := br.Problems(); len(p) > 0 {
		t.Errorf("console errors (a CSP violation shows here too):\n%s", strings.Join(p, "\n"))
	}

	// Ctrl-C: the demo stops, prints its summary and exits 0.
	stopped = true
	if err := demo.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-demo.done:
		demo.done <- err
		if err != nil {
			t.Errorf("lbsys demo after Ctrl-C: %v\n%s", err, demo.stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("lbsys demo still running 60 s after Ctrl-C:\n%s", demo.stderr.String())
	}
	if out := demo.stderr.String(); !strings.Contains(out, "summary (predictive control):") {
		t.Errorf("no summary after Ctrl-C:\n%s", out)
	}
}

// keepDemoScreenshot keeps the page (cdp.KeepScreenshot) and logs where,
// with the replayed day's time it shows.
func keepDemoScreenshot(ctx context.Context, t *testing.T, pg *cdp.Page, name string) {
	t.Helper()
	path, size := cdp.KeepScreenshot(ctx, t, pg, name)
	var view struct {
		Virtual string `json:"v"`
	}
	pg.Eval(ctx, `({v: (() => { const s = lbsysUI.summary(), c = s.services.catalog, r = s.replay;
		return r && c ? new Date((r.vs + (c.now - r.ws) * r.factor) * 1000).toISOString().slice(11, 16) : ''; })()})`, &view)
	t.Logf("screenshot at %s of the replayed day: %s (%d KiB)", view.Virtual, path, size>>10)
}
