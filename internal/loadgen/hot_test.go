package loadgen

import (
	"context"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHotSetPick: inside a window a product choice is a hot product with
// the set's share (uniformly among them), outside it the usual
// popularity, which hardly ever picks the catalogue's tail; without hot
// sets the choices are exactly those of before (the same draws).
func TestHotSetPick(t *testing.T) {
	p := newShopPaths(200)
	hot, err := compileHot([]HotSet{{From: time.Second, To: 2 * time.Second, Products: []string{"p0191", "p0192", "p0193", "p0194"}, Share: 0.8}}, p)
	if err != nil {
		t.Fatal(err)
	}
	g := &gen{paths: p, hot: hot}
	count := func(at time.Duration) (float64, map[int]int) {
		rng := mrand.New(mrand.NewPCG(1, 2))
		by := map[int]int{}
		n, h := 100_000, 0
		for i := 0; i < n; i++ {
			k := g.pick(rng, at)
			by[k]++
			if k >= 190 && k <= 193 {
				h++
			}
		}
		return float64(h) / float64(n), by
	}
	in, by := count(1500 * time.Millisecond)
	out, _ := count(2 * time.Second)
	before, _ := count(999 * time.Millisecond)
	if in < 0.79 || in > 0.82 || out > 0.01 || before > 0.01 {
		t.Errorf("hot share %.4f in the window (want 0.8 plus their usual popularity), %.4f at its end, %.4f before", in, out, before)
	}
	for k := 190; k <= 193; k++ {
		if f := float64(by[k]) / 100_000; f < 0.19 || f > 0.215 {
			t.Errorf("product %d drawn %.4f: want a quarter of 0.8", k, f)
		}
	}
	plain := &gen{paths: p}
	r1, r2 := mrand.New(mrand.NewPCG(9, 9)), mrand.New(mrand.NewPCG(9, 9))
	for i := 0; i < 1000; i++ {
		if a, b := plain.pick(r1, time.Duration(i)*time.Millisecond), p.pickProduct(r2); a != b {
			t.Fatalf("draw %d: %d without hot sets, %d before them", i, a, b)
		}
	}
}

// TestHotSetInARun runs the generator against a loopback server: with a
// window over the whole run, most product pages asked are the hot ones,
// and a session's stock request is about its page's product.
func TestHotSetInARun(t *testing.T) {
	hot := []string{"p0191", "/catalog/products/p0192", "p0193", "p0194", "p0195"}
	isHot := func(path string) bool {
		for _, h := range []string{"p0191", "p0192", "p0193", "p0194", "p0195"} {
			if strings.HasSuffix(path, "/"+h) {
				return true
			}
		}
		return false
	}
	for _, mode := range []Mode{ModeRequests, ModeSessions} {
		t.Run(string(mode), func(t *testing.T) {
			var mu sync.Mutex
			var pages, pagesHot, stock, stockHot int
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				switch {
				case strings.HasPrefix(r.URL.Path, "/catalog/products/"):
					pages++
					if isHot(r.URL.Path) {
						pagesHot++
					}
				case strings.HasPrefix(r.URL.Path, "/inventory/stock/"):
					stock++
					if isHot(r.URL.Path) {
						stockHot++
					}
				}
				mu.Unlock()
				w.Write([]byte("{}"))
			})}
			go srv.Serve(ln)
			defer srv.Close()
			cfg := Config{Target: "http://" + ln.Addr().String(), Duration: time.Second, Rate: Constant(400), Mode: mode, Seed: 3,
				Mix: Mix{{EndpointProduct, 1}}, Think: -1, Funnel: Funnel{1, 1, 0, 0},
				Hot: []HotSet{{From: 0, To: time.Hour, Products: hot, Share: 0.8}}}
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			f := float64(pagesHot) / float64(max(pages, 1))
			t.Logf("%s: %d of %d product pages hot (%.3f); stock %d of %d", mode, pagesHot, pages, f, stockHot, stock)
			if pages < 50 || f < 0.65 || f > 0.95 {
				t.Errorf("hot share %.3f of %d pages, want ≈ 0.8", f, pages)
			}
			if mode == ModeSessions && stockHot != pagesHot {
				t.Errorf("sessions: %d hot stock requests for %d hot pages: a session's stock is its page's product", stockHot, pagesHot)
			}
		})
	}
}

func TestHotSetValidation(t *testing.T) {
	p := newShopPaths(200)
	for _, tc := range []struct {
		set  HotSet
		want string
	}{
		{HotSet{From: time.Second, To: time.Second, Products: []string{"p0001"}, Share: 0.5}, "empty or negative"},
		{HotSet{From: -time.Second, To: time.Second, Products: []string{"p0001"}, Share: 0.5}, "empty or negative"},
		{HotSet{To: time.Second, Products: []string{"p0001"}, Share: 0}, "share 0"},
		{HotSet{To: time.Second, Products: []string{"p0001"}, Share: 1.5}, "share 1.5"},
		{HotSet{To: time.Second}, "no products and no funnel"},
		{HotSet{To: time.Second, Share: 0.5, Funnel: &Funnel{1, 0.9, 0.5, 0.2}}, "share 0.5 without products"},
		{HotSet{To: time.Second, Funnel: &Funnel{1, 0.5, 0.6, 0.2}}, "hot set 0: funnel: cart=0.6 is more than product=0.5"},
		{HotSet{To: time.Second, Funnel: &Funnel{1, 0.9, 0.5, 0.2}}, ""},
		{HotSet{To: time.Second, Products: []string{"p0001"}, Share: 0.5, Funnel: &Funnel{1, 0.9, 0.5, 0.2}}, ""},
		{HotSet{To: time.Second, Products: []string{"p0201"}, Share: 0.5}, `"p0201" is not a product of the catalogue (p0001 to p0200)`},
		{HotSet{To: time.Second, Products: []string{"/cart"}, Share: 0.5}, `"/cart" is not a product`},
		{HotSet{To: time.Second, Products: []string{"/catalog/products/p0200", "p0001"}, Share: 1}, ""},
	} {
		_, err := compileHot([]HotSet{tc.set}, p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.set, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.set, err, tc.want)
		}
	}
	if _, err := compileHot(make([]HotSet, maxHotSets+1), p); err == nil {
		t.Error("too many hot sets accepted")
	}
}

// TestHotSetFunnel: sessions that start inside a window with a funnel
// walk it (more reach the cart and the checkout), the others the run's;
// the session-start rate is the run's, so the window's request rate per
// service grows by the funnels' ServiceRequests ratio.
func TestHotSetFunnel(t *testing.T) {
	p := newShopPaths(200)
	sale := Funnel{1, 0.9, 0.5, 0.2}
	hot, err := compileHot([]HotSet{
		{From: time.Second, To: 2 * time.Second, Products: []string{"p0001"}, Share: 0.5},
		{From: time.Second, To: 3 * time.Second, Funnel: &sale},
		{From: 2 * time.Second, To: 4 * time.Second, Funnel: &Funnel{1, 0.1, 0.1, 0.1}},
	}, p)
	if err != nil {
		t.Fatal(err)
	}
	g := &gen{paths: p, hot: hot, cfg: Config{Funnel: DefaultFunnel}}
	for _, tc := range []struct {
		at   time.Duration
		want Funnel
	}{
		{999 * time.Millisecond, DefaultFunnel},
		{time.Second, sale},
		{2500 * time.Millisecond, sale}, // overlapping: the first with a funnel
		{3 * time.Second, Funnel{1, 0.1, 0.1, 0.1}},
		{4 * time.Second, DefaultFunnel},
	} {
		if got := *g.funnelAt(tc.at); got != tc.want {
			t.Errorf("at %v: funnel %v, want %v", tc.at, got, tc.want)
		}
	}

	// In a run, against a loopback server: the same arrivals (same seed)
	// without and with a sale over the whole run. The sessions started are
	// the same; the share reaching each step is the window's funnel.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) })}
	go srv.Serve(ln)
	defer srv.Close()
	run := func(hot []HotSet) *SessionSummary {
		cfg := Config{Target: "http://" + ln.Addr().String(), Duration: 3 * time.Second, Rate: Constant(800), Mode: ModeSessions, Seed: 5,
			Think: -1, Hot: hot}
		s, err := Run(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Sessions
	}
	plain, inSale := run(nil), run([]HotSet{{From: 0, To: time.Hour, Funnel: &sale}})
	t.Logf("plain: %d sessions reached %v; in a sale: %d reached %v", plain.Started, plain.Reached, inSale.Started, inSale.Reached)
	if plain.Started < 600 || plain.Started != inSale.Started {
		t.Fatalf("%d and %d sessions started: want the same arrivals (hundreds) both ways", plain.Started, inSale.Started)
	}
	for i, step := range stepNames {
		for _, c := range []struct {
			s *SessionSummary
			f Funnel
		}{{plain, DefaultFunnel}, {inSale, sale}} {
			// Each session's walk is a draw: allow four standard errors
			// of the share (a funnel ignored is off by 0.1–0.3, over
			// five of them with this many sessions).
			got := float64(c.s.Reached[step]) / float64(c.s.Started)
			tol := math.Max(0.02, 4*math.Sqrt(c.f[i]*(1-c.f[i])/float64(c.s.Started)))
			if d := got - c.f[i]; math.Abs(d) > tol {
				t.Errorf("%s reached by %.3f of the sessions, want %.2f ± %.3f (funnel %v)", step, got, c.f[i], tol, c.f)
			}
		}
	}
}
