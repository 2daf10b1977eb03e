package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangingBackend counts the requests it reads and never answers them.
func hangingBackend(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	release := make(chan struct{})
	addr, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRawRequest(br); err != nil {
				return
			}
			n.Add(1)
			// Hold the connection until the client gives up or the
			// test ends.
			go func() { <-release; c.Close() }()
		}
	})
	t.Cleanup(func() { close(release) })
	return addr, &n
}

// delayBackend answers every request after delay.
func delayBackend(t *testing.T, delay time.Duration) string {
	t.Helper()
	addr, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRawRequest(br); err != nil {
				return
			}
			time.Sleep(delay)
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	return addr
}

// checkCounts asserts the summary's bookkeeping identities.
func checkCounts(t *testing.T, s Summary) {
	t.Helper()
	e := s.Errors
	if got := s.Responses + e.Connect + e.Timeout + e.Reset + s.Unfinished; got != s.Requests {
		t.Errorf("requests %d != responses %d + connect %d + timeout %d + reset %d + unfinished %d",
			s.Requests, s.Responses, e.Connect, e.Timeout, e.Reset, s.Unfinished)
	}
	if e.Total != e.Connect+e.Timeout+e.Reset+e.Status4xx+e.Status5xx+e.Dropped {
		t.Errorf("error total %d does not add up: %+v", e.Total, e)
	}
	var req, resp, ok, dropped, errs, lat int64
	for _, c := range s.Classes {
		req += c.Requests
		resp += c.Responses
		ok += c.OK
		dropped += c.Errors.Dropped
		errs += c.Errors.Total
		lat += c.Latency.Count
	}
	if req != s.Requests || resp != s.Responses || ok != s.OK || dropped != e.Dropped || errs != e.Total || lat != s.Latency.Count {
		t.Errorf("classes add up to requests %d responses %d ok %d dropped %d errors %d latency samples %d; totals %d %d %d %d %d %d",
			req, resp, ok, dropped, errs, lat, s.Requests, s.Responses, s.OK, e.Dropped, e.Total, s.Latency.Count)
	}
	if ss := s.Sessions; ss != nil && ss.Started != ss.Completed+ss.Abandoned+ss.Unfinished {
		t.Errorf("sessions: started %d != completed %d + abandoned %d + unfinished %d", ss.Started, ss.Completed, ss.Abandoned, ss.Unfinished)
	}
}

// The open-loop property: a backend that never answers still receives
// requests on schedule, and they show up as timeouts, not as silence.
func TestOpenLoopAgainstHangingBackend(t *testing.T) {
	addr, arrived := hangingBackend(t)
	var maxInFlight atomic.Int64
	var secMu sync.Mutex
	var secs []Second
	sum, err := Run(context.Background(), Config{
		Target:   addr,
		Duration: 2 * time.Second,
		Rate:     Constant(200),
		Mode:     ModeRequests,
		Timeout:  500 * time.Millisecond,
		Drain:    200 * time.Millisecond,
	}, func(s Second) {
		secMu.Lock()
		secs = append(secs, s)
		secMu.Unlock()
		if s.InFlight > maxInFlight.Load() {
			maxInFlight.Store(s.InFlight)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backend saw %d requests; summary: sent %d, timeouts %d, unfinished %d, p50 %.0f ms, max in flight %d",
		arrived.Load(), sum.Requests, sum.Errors.Timeout, sum.Unfinished, sum.Latency.P50, maxInFlight.Load())
	if n := arrived.Load(); n < 320 || n > 480 {
		t.Fatalf("backend saw %d requests in 2 s at 200/s; want 400 ±20%%", n)
	}
	if sum.Requests < 320 || sum.Requests > 480 || sum.Responses != 0 {
		t.Fatalf("summary: %d sent, %d responses", sum.Requests, sum.Responses)
	}
	if sum.Errors.Timeout+sum.Unfinished != sum.Requests || sum.Errors.Timeout < sum.Requests/2 {
		t.Fatalf("timeouts %d + unfinished %d, want all %d requests", sum.Errors.Timeout, sum.Unfinished, sum.Requests)
	}
	if sum.Latency.P50 < 500 {
		t.Fatalf("timeouts are recorded at their wait: p50 %.1f ms, want >= 500", sum.Latency.P50)
	}
	// While hanging, ~timeout × rate = 100 requests are in flight.
	if maxInFlight.Load() < 50 {
		t.Fatalf("in-flight peaked at %d, want ≈ 100", maxInFlight.Load())
	}
	if len(secs) < 2 {
		t.Fatalf("%d progress calls", len(secs))
	}
	checkCounts(t, sum)
}

// Latency is measured from the scheduled send time: arrivals that came due
// while the generator was stalled carry the stall in their latency.
func TestLatencyFromScheduledTime(t *testing.T) {
	addr := delayBackend(t, 100*time.Millisecond)
	const stall = 300 * time.Millisecond
	sum, err := Run(context.Background(), Config{
		Target:   addr,
		Duration: 2 * time.Second,
		Rate:     Constant(100),
		Arrivals: Uniform,
		Mode:     ModeRequests,
		Timeout:  5 * time.Second,
		beforeDispatch: func(i int64) {
			if i == 50 { // at 0.5 s
				time.Sleep(stall)
			}
		},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("late %d, max lag %.1f ms, latency p50 %.1f p90 %.1f max %.1f ms", sum.Late, sum.MaxLagMs, sum.Latency.P50, sum.Latency.P90, sum.Latency.Max)
	if sum.Requests != 200 || sum.OK != 200 {
		t.Fatalf("%d requests, %d ok; want 200", sum.Requests, sum.OK)
	}
	// ~30 arrivals came due during the stall, the first 300 ms late.
	if sum.Late < 20 || sum.MaxLagMs < 250 {
		t.Fatalf("late %d, max lag %.1f ms: the stall was not reported", sum.Late, sum.MaxLagMs)
	}
	if sum.Latency.Max < 350 {
		t.Fatalf("max latency %.1f ms: the stall (300 ms) is missing from latency measured from the schedule", sum.Latency.Max)
	}
	if sum.Latency.P50 < 100 || sum.Latency.P50 > 250 {
		t.Fatalf("p50 %.1f ms, want ≈ 100 (most requests were on time)", sum.Latency.P50)
	}
	checkCounts(t, sum)
}

func TestRequestsModeMixAndCounts(t *testing.T) {
	got := make(chan *rawRequest, 10000)
	addr, _ := rawServer(t, scripted(got, "HTTP/1.1 200 OK\r\nSet-Cookie: shop_session=s1; Path=/\r\nContent-Length: 2\r\n\r\nok"))
	sum, err := Run(context.Background(), Config{
		Target:   "http://" + addr,
		Duration: 2 * time.Second,
		Rate:     Constant(1000),
		Mode:     ModeRequests,
		Seed:     3,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	close(got)
	paths := map[string]int{}
	cookies := 0
	for r := range got {
		method, rest, _ := strings.Cut(r.line, " ")
		path, _, _ := strings.Cut(rest, " ")
		key := method + " " + strings.SplitN(strings.SplitN(path, "?", 2)[0], "/p0", 2)[0]
		paths[key]++
		if r.headers["cookie"] != "" {
			cookies++
		}
	}
	t.Logf("paths %v, %d with a cookie; summary %+v", paths, cookies, sum.Errors)
	if sum.Requests < 1800 || sum.Requests > 2200 || sum.OK != sum.Requests {
		t.Fatalf("%d requests, %d ok", sum.Requests, sum.OK)
	}
	total := float64(sum.Requests)
	for _, tc := range []struct {
		key   string
		share float64
	}{
		{"GET /catalog/products", 0.30 + 0.30}, // listing + product pages share the prefix
		{"GET /catalog/search", 0.10},
		{"GET /cart", 0.10},
		{"POST /cart/items", 0.05},
		{"GET /inventory/stock", 0.15},
	} {
		if got := float64(paths[tc.key]) / total; got < tc.share*0.7 || got > tc.share*1.3 {
			t.Errorf("%s: share %.3f, want ≈ %.2f", tc.key, got, tc.share)
		}
	}
	if cookies == 0 {
		t.Error("cart requests never sent the cookie the cart answers set")
	}
	for name, c := range sum.Classes {
		if c.Requests == 0 || c.Latency.Count != c.Responses {
			t.Errorf("class %s: %+v", name, c)
		}
	}
	if _, ok := sum.Classes["checkout"]; ok {
		t.Error("requests mode sent checkouts")
	}
	checkCounts(t, sum)
}

func TestDroppedWhenNoSlot(t *testing.T) {
	addr, arrived := hangingBackend(t)
	sum, err := Run(context.Background(), Config{
		Target: addr, Duration: time.Second, Rate: Constant(200), Arrivals: Uniform,
		Mode: ModeRequests, MaxInflight: 5, Timeout: 5 * time.Second, Drain: 100 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Requests != 5 || sum.Errors.Dropped != 195 || sum.Unfinished != 5 {
		t.Fatalf("sent %d, dropped %d, unfinished %d; want 5, 195, 5", sum.Requests, sum.Errors.Dropped, sum.Unfinished)
	}
	if arrived.Load() != 5 {
		t.Fatalf("backend saw %d", arrived.Load())
	}
	checkCounts(t, sum)
}

func TestRunCancelledStillSummarises(t *testing.T) {
	addr := trivialBackend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	sum, err := Run(ctx, Config{Target: addr, Duration: time.Minute, Rate: Constant(100), Mode: ModeRequests}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cancel took %v", el)
	}
	if !sum.Cancelled || sum.Requests < 20 || sum.DurationS > 2 {
		t.Fatalf("cancelled %v, %d requests, %.1f s", sum.Cancelled, sum.Requests, sum.DurationS)
	}
	checkCounts(t, sum)
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Target: "10.1.2.3:80", Duration: time.Second, Rate: Constant(1)}, "only 127.0.0.0/8 and ::1"},
		{Config{Target: "http://8.8.8.8", Duration: time.Second, Rate: Constant(1)}, "not a loopback"},
		{Config{Target: "https://127.0.0.1:443", Duration: time.Second, Rate: Constant(1)}, "not supported"},
		{Config{Target: "127.0.0.1:1", Rate: Constant(1)}, "duration is required"},
		{Config{Target: "127.0.0.1:1", Duration: 25 * time.Hour, Rate: Constant(1)}, "longer than the maximum"},
		{Config{Target: "127.0.0.1:1", Duration: time.Second}, "a rate is required"},
		{Config{Target: "127.0.0.1:1", Duration: time.Second, Rate: Constant(1), Mode: "bulk"}, "use sessions or requests"},
		{Config{Target: "127.0.0.1:1", Duration: time.Second, Rate: Constant(1), Funnel: Funnel{1, 0.2, 0.5, 0}}, "cannot grow"},
		{Config{Target: "127.0.0.1:1", Duration: time.Second, Rate: Constant(1), Mix: Mix{{"catalog", 0}}}, "add up to 0"},
	} {
		_, err := Run(context.Background(), tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	_, err := Run(context.Background(), Config{Target: "192.0.2.1:80", Duration: time.Second, Rate: Constant(1)}, nil)
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("%v is not ErrNotLoopback", err)
	}
}

func TestResolveTarget(t *testing.T) {
	for _, tc := range []struct{ in, addr, host string }{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"127.0.0.2:9", "127.0.0.2:9", "127.0.0.2:9"},
		{"http://[::1]:8080/", "[::1]:8080", "[::1]:8080"},
		{"localhost:8080", "", "localhost:8080"}, // 127.0.0.1 or ::1, whichever the resolver gives
		{":8080", "127.0.0.1:8080", "127.0.0.1:8080"},
	} {
		tg, err := ResolveTarget(context.Background(), tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if (tc.addr != "" && tg.Addr != tc.addr) || tg.Host != tc.host {
			t.Errorf("%s: addr %s host %s, want %s %s", tc.in, tg.Addr, tg.Host, tc.addr, tc.host)
		}
	}
	for _, bad := range []string{"", "10.0.0.1:80", "http://[2001:db8::1]:80", "http://127.0.0.1:80/path", "ftp://127.0.0.1"} {
		if _, err := ResolveTarget(context.Background(), bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSecondLineAndCSV(t *testing.T) {
	s := Second{T: 3, Elapsed: 3 * time.Second, TargetRPS: 500, Sent: 498, Completed: 497, RPS: 497, P50: 1500 * time.Microsecond, P99: 12 * time.Millisecond, InFlight: 4}
	if line := s.Line(); !strings.Contains(line, "sent    498") || !strings.Contains(line, "1.50ms") {
		t.Fatalf("line %q", line)
	}
	if got, want := strings.Join(s.CSV(), ","), "3,500.000,498,497,0,1.500,12.000,4,0,0"; got != want {
		t.Fatalf("csv %q, want %q", got, want)
	}
	if len(TimelineHeader) != len(s.CSV()) {
		t.Fatal("header and row differ in length")
	}
	_ = fmt.Sprint(s)
}

// The requests mode starts a new cart before the shop's 100-product limit.
func TestCookiePoolRotatesCarts(t *testing.T) {
	var p cookiePool
	if p.get(3, true) != "" {
		t.Fatal("empty slot has a cookie")
	}
	p.set(3, []string{"shop_session=a", "x=1"})
	for i := 0; i < maxCartAdds; i++ {
		if got := p.get(3, true); got != "shop_session=a; x=1" {
			t.Fatalf("add %d: cookie %q", i, got)
		}
	}
	if got := p.get(3, false); got == "" {
		t.Fatal("a GET /cart must not rotate the cart")
	}
	if got := p.get(3, true); got != "" {
		t.Fatalf("add %d still uses the old cart", maxCartAdds+1)
	}
	p.set(3, []string{"shop_session=b"})
	if got := p.get(3, true); got != "shop_session=b" {
		t.Fatalf("after rotation: %q", got)
	}
}
