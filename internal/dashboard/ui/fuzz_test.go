package ui

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// FuzzSeriesQuery feeds GET /api/ui/series and /api/ui/timeline any query:
// the answer is a 200 with JSON whose arrays match t, or a 400 with an
// error, never a panic.
func FuzzSeriesQuery(f *testing.F) {
	for _, s := range []string{"", "since=1764237600", "since=2025-11-27T10:00:00Z&limit=5", "limit=0", "since=NaN",
		"since=-9223372036854775808", "since=1e308", "service=catalog&limit=1", "after=18446744073709551615", "after=-1"} {
		f.Add(s)
	}
	src := twoServices()
	c := NewCollector(src, Options{Window: 20})
	for i := 0; i < 25; i++ {
		recs := second(t0.Add(time.Duration(i)*time.Second), int64(i), int64(i%3), float64(i), "catalog", "cart")
		if i == 7 {
			recs[0].P99ms = math.Inf(1) // never produced, but never breaks the JSON either
		}
		c.Write(recs)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, path := range []string{"/api/ui/series", "/api/ui/timeline"} {
			req := httptest.NewRequest("GET", "/", nil)
			req.URL = &url.URL{Path: path, RawQuery: raw}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			switch w.Code {
			case 200:
				if path == "/api/ui/series" {
					s := decodeSeries(t, w.Body.Bytes())
					for _, sv := range s.Services {
						if len(sv.RPS) != len(s.T) || len(sv.P99) != len(s.T) {
							t.Fatalf("%q: arrays not aligned with t", raw)
						}
					}
					if len(s.T) > 20 {
						t.Fatalf("%q: %d frames, window 20", raw, len(s.T))
					}
				} else if !json.Valid(w.Body.Bytes()) {
					t.Fatalf("%q: timeline is not JSON", raw)
				}
			case 400:
				var e struct{ Error string }
				if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
					t.Fatalf("%q: 400 without an error message: %s", raw, w.Body)
				}
			default:
				t.Fatalf("%q: status %d", raw, w.Code)
			}
		}
	})
}

// FuzzWrite feeds the collector records with any figures: it never
// panics and its answers stay valid JSON.
func FuzzWrite(f *testing.F) {
	f.Add(int64(10), int64(1), 12.5, int64(0))
	f.Add(int64(-5), int64(20), math.NaN(), int64(-90))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), math.Inf(-1), int64(3600))
	f.Fuzz(func(t *testing.T, req, errs int64, p99 float64, shift int64) {
		c := NewCollector(twoServices(), Options{Window: 5})
		for i := int64(0); i < 8; i++ {
			ts := t0.Add(time.Duration(i*shift) * time.Second)
			c.Write([]telemetry.Record{{Time: ts, Service: "catalog", Requests: req, Errors: errs, P99ms: p99},
				{Time: ts, Service: "cart", Requests: req}})
		}
		b := c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 5})
		if !json.Valid(b) {
			t.Fatalf("series is not JSON: %s", b)
		}
		if tb, err := json.Marshal(c.Timeline(0)); err != nil || !json.Valid(tb) {
			t.Fatalf("timeline: %v", err)
		}
	})
}

func TestIncidentFiguresStayFinite(t *testing.T) {
	c := NewCollector(twoServices(), Options{})
	for i := 0; i < 61; i++ {
		c.Write([]telemetry.Record{{Time: t0.Add(time.Duration(i) * time.Second), Service: "catalog", Requests: 1 << 40, P99ms: 1e300}})
	}
	if _, err := json.Marshal(c.Timeline(0)); err != nil {
		t.Fatal(err)
	}
	if inc := c.Timeline(0).Incidents; len(inc) != 1 || inc[0].WorstP99ms != math.MaxFloat64 {
		t.Errorf("incidents: %+v", inc)
	}
}

// FuzzAhead gives the running directive any forecast and floor: the
// series answer stays valid JSON, its ahead aligned, sorted, starting at
// the newest second and within its bounds, never a panic.
func FuzzAhead(f *testing.F) {
	f.Add(int64(-5), int64(1000), 3, 12.5, 20.0, 6, int64(30))
	f.Add(int64(0), int64(0), 1000, math.NaN(), math.Inf(1), -1, int64(-10))
	f.Add(int64(math.MinInt32), int64(math.MaxInt32), 4000, -1.0, 0.0, 1000, int64(math.MaxInt32))
	f.Fuzz(func(t *testing.T, startSec, stepMs int64, n int, rps, hi float64, replicas int, untilSec int64) {
		n = max(0, min(n, 5000))
		var fc []directive.Point
		for i := 0; i < n; i++ {
			fc = append(fc, directive.Point{At: t0.Add(time.Duration(startSec)*time.Second + time.Duration(int64(i)*stepMs)*time.Millisecond), RPS: rps, Hi: hi})
		}
		until := t0.Add(time.Duration(untilSec) * time.Second)
		src := twoServices()
		src.setDirective(&directive.Directive{Schema: 1, Version: 1, Services: map[string]*directive.Service{
			"catalog": {Why: &directive.Why{Forecast: fc}, Scale: &directive.Scale{Replicas: replicas, Until: &until}}}})
		c := NewCollector(src, Options{Window: 5})
		for i := 0; i < 3; i++ {
			c.Write(second(t0.Add(time.Duration(i)*time.Second), 1, 0, 1, "catalog", "cart"))
		}
		b := c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 5})
		if !json.Valid(b) {
			t.Fatalf("series is not JSON: %s", b)
		}
		if a := aheadOfService(t, b, "catalog"); a != nil {
			now := float64(t0.Unix() + 2)
			if a.T[0] != now || len(a.T) < 2 || len(a.T) > maxAheadPoints || a.T[len(a.T)-1] > now+maxAheadSeconds {
				t.Fatalf("ahead of %d points from %v to %v (now %v)", len(a.T), a.T[0], a.T[len(a.T)-1], now)
			}
		}
	})
}

// FuzzAnnounce announces any event: it is taken or refused with an
// error, never a panic; what the UI keeps stays within its bounds and
// its timeline valid JSON.
func FuzzAnnounce(f *testing.F) {
	f.Add("flash-sale 2031-03-01T12:01:15Z", "Summer sale", int64(75), int64(100), "catalog", "")
	f.Add("", "", int64(0), int64(-1), "", "calendar")
	f.Add(strings.Repeat("é", 200), "\x00", int64(math.MaxInt64), int64(math.MinInt64), " ", strings.Repeat("s", 33))
	f.Fuzz(func(t *testing.T, name, title string, startSec, endSec int64, service, source string) {
		c := NewCollector(twoServices(), Options{Events: 2})
		a := Announcement{Name: name, Title: title, Start: t0.Add(time.Duration(startSec) * time.Second), Services: []string{service, service}, Source: source}
		if endSec != 0 {
			a.End = t0.Add(time.Duration(endSec) * time.Second)
		}
		for i := 0; i < 3; i++ {
			err := c.Announce([]Announcement{a})
			if n := len(c.Timeline(0).Events); (err == nil) != (n == 1) || n > 1 {
				t.Fatalf("announce %d: %v, and %d events kept", i, err, n)
			}
		}
		tb, err := json.Marshal(c.Timeline(0))
		if err != nil || !json.Valid(tb) {
			t.Fatalf("timeline: %v", err)
		}
		for _, e := range c.Timeline(0).Events {
			if len(e.Name) > maxEventText || len(e.Title) > maxEventText || len(e.Services) != 1 {
				t.Fatalf("kept %+v", e)
			}
		}
	})
}
