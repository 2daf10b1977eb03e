package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestClientKeepsErrorReasons: the reason header of an error answer is
// kept (X-Lbsys-Error from the proxy, X-Shop-Error from the shop), made
// printable and bounded; a success keeps none.
func TestClientKeepsErrorReasons(t *testing.T) {
	for _, tc := range []struct {
		name, resp, want string
	}{
		{"proxy", "HTTP/1.1 404 Not Found\r\nX-Lbsys-Error: no_route\r\nContent-Length: 0\r\n\r\n", "no_route"},
		{"shop", "HTTP/1.1 503 Service Unavailable\r\nx-shop-error: overloaded\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n", "overloaded"},
		{"first of two", "HTTP/1.1 502 Bad Gateway\r\nX-Lbsys-Error: upstream_reset\r\nX-Shop-Error: injected\r\nContent-Length: 0\r\n\r\n", "upstream_reset"},
		{"success keeps none", "HTTP/1.1 200 OK\r\nX-Lbsys-Error: odd\r\nContent-Length: 0\r\n\r\n", ""},
		{"no header", "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", ""},
		{"control bytes", "HTTP/1.1 500 Internal Server Error\r\nX-Shop-Error: a\x01b\xffc\r\nContent-Length: 0\r\n\r\n", "a?b?c"},
		{"bounded", "HTTP/1.1 500 Internal Server Error\r\nX-Shop-Error: " + strings.Repeat("x", 300) + "\r\nContent-Length: 0\r\n\r\n", strings.Repeat("x", maxReasonLen)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := rawServer(t, scripted(nil, tc.resp))
			c := NewClient(addr, "shop.test", 1)
			defer c.Close()
			resp, err := doOnce(c, &Request{Method: "GET", Path: "/x"}, 2*time.Second)
			if err != nil || resp.Reason != tc.want {
				t.Fatalf("reason %q, err %v; want %q", resp.Reason, err, tc.want)
			}
		})
	}
}

// routeless answers 404 no_route, as the proxy does, for paths under
// /inventory, and 200 for the rest: the example configuration of issue #16.
func routeless(t *testing.T) string {
	t.Helper()
	addr, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			r, err := readRawRequest(br)
			if err != nil {
				return
			}
			resp := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
			if strings.Contains(r.line, " /inventory/") {
				resp = "HTTP/1.1 404 Not Found\r\nX-Lbsys-Error: no_route\r\nContent-Length: 9\r\n\r\nno route\n"
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
	return addr
}

// TestErrorRateAndTopErrors: a run's summary says what share of requests
// failed and why, most frequent first, with an example request; and
// CheckErrorRate fails the run above the threshold, naming both.
func TestErrorRateAndTopErrors(t *testing.T) {
	mix, err := ParseMix("catalog=80,inventory=20")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(context.Background(), Config{Target: routeless(t), Duration: time.Second, Rate: Constant(500),
		Arrivals: Uniform, Mode: ModeRequests, Mix: mix, Seed: 7}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCounts(t, sum)
	inv := sum.Classes["inventory"].Requests
	if inv == 0 || sum.Errors.Total != inv || sum.Errors.Status4xx != inv {
		t.Fatalf("errors %+v, inventory requests %d: want every inventory request a 404", sum.Errors, inv)
	}
	if want := float64(inv) / float64(sum.Requests); sum.ErrorRate != want || want < 0.1 || want > 0.3 {
		t.Fatalf("error rate %v, want %v (≈ 0.2)", sum.ErrorRate, want)
	}
	if len(sum.TopErrors) != 1 {
		t.Fatalf("top errors %+v, want one", sum.TopErrors)
	}
	top := sum.TopErrors[0]
	if top.Class != "inventory" || top.Kind != "status_4xx" || top.Status != 404 || top.Reason != "no_route" ||
		top.Count != inv || !strings.HasPrefix(top.Example, "GET /inventory/stock/p") {
		t.Fatalf("top error %+v", top)
	}
	err = sum.CheckErrorRate(0.05)
	if err == nil {
		t.Fatal("a run with 20% errors passed a 5% threshold")
	}
	for _, want := range []string{"error rate " + percent(sum.ErrorRate), fmt.Sprintf("(%d of %d requests)", inv, sum.Requests),
		"above --max-error-rate 5%", "inventory: 404 no_route ×", "e.g. GET /inventory/stock/p", "the proxy has no route for these paths"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := sum.CheckErrorRate(0.5); err != nil {
		t.Errorf("50%% threshold: %v", err)
	}
	if err := sum.CheckErrorRate(0); err != nil {
		t.Errorf("threshold 0 (off): %v", err)
	}
	var b strings.Builder
	sum.WriteText(&b)
	if !strings.Contains(b.String(), "inventory: 404 no_route ×") || !strings.Contains(b.String(), "errors     "+fmt.Sprint(inv)+" ("+percent(sum.ErrorRate)+")") {
		t.Errorf("text summary lacks the rate or the top error:\n%s", b.String())
	}
}

// TestErrorReasonsWithoutResponse: a target nobody listens on fails every
// request as refused, and the summary says so with a hint.
func TestErrorReasonsWithoutResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sum, err := Run(context.Background(), Config{Target: addr, Duration: 300 * time.Millisecond, Rate: Constant(100),
		Arrivals: Uniform, Mode: ModeRequests, Seed: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ErrorRate != 1 || len(sum.TopErrors) == 0 || sum.TopErrors[0].Kind != "connect" ||
		!strings.HasPrefix(sum.TopErrors[0].Reason, "connection refused") {
		t.Fatalf("rate %v, top errors %+v", sum.ErrorRate, sum.TopErrors)
	}
	if err := sum.CheckErrorRate(0.05); err == nil || !strings.Contains(err.Error(), "nothing listens on --target") {
		t.Fatalf("CheckErrorRate: %v", err)
	}
}

// TestErrorReasonsAreBounded: a target answering a new reason for every
// request cannot grow the generator's memory: past maxReasons keys the
// rest are counted together.
func TestErrorReasonsAreBounded(t *testing.T) {
	st := newStats()
	req := &Request{Method: "GET", Path: "/x"}
	for i := range 3 * maxReasons {
		st.end(req, ClassOther, KindStatus5xx, 500, fmt.Sprint("r", i), time.Millisecond, 0)
	}
	st.end(req, ClassOther, KindStatus5xx, 500, "r0", time.Millisecond, 0)
	if len(st.reasons) != maxReasons || st.otherReasons != 2*maxReasons {
		t.Fatalf("%d keys, %d others", len(st.reasons), st.otherReasons)
	}
	top := topErrors(st.reasons, st.otherReasons)
	if len(top) != maxTopErrors || top[0].Reason != "r0" || top[0].Count != 2 {
		t.Fatalf("top %+v", top)
	}
}
