package ui

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

// aheadJSON is a service's "ahead" in GET /api/ui/series.
type aheadJSON struct {
	FloorBy    *float64   `json:"floor_by"`
	FloorUntil *float64   `json:"floor_until"`
	T          []float64  `json:"t"`
	Forecast   []*float64 `json:"forecast"`
	ForecastHi []*float64 `json:"forecast_hi"`
	Floor      []*float64 `json:"replica_floor"`
}

// aheadOfService decodes the series answer and returns the service's
// ahead (nil when null), failing on arrays not aligned with its t.
func aheadOfService(t *testing.T, b []byte, service string) *aheadJSON {
	t.Helper()
	var s struct {
		Services []struct {
			Name  string     `json:"name"`
			Ahead *aheadJSON `json:"ahead"`
		} `json:"services"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("series is not JSON: %v\n%s", err, b)
	}
	for _, sv := range s.Services {
		if sv.Name != service {
			continue
		}
		if a := sv.Ahead; a != nil {
			if len(a.Forecast) != len(a.T) || len(a.ForecastHi) != len(a.T) || len(a.Floor) != len(a.T) {
				t.Fatalf("%s: ahead arrays not aligned with its t: %+v", service, a)
			}
			if !slices.IsSorted(a.T) {
				t.Fatalf("%s: ahead times out of order: %v", service, a.T)
			}
		}
		return sv.Ahead
	}
	t.Fatalf("no service %s in %s", service, b)
	return nil
}

// rel writes times as seconds after base, to the millisecond.
func rel(ts []float64, base time.Time) string {
	var out []string
	for _, v := range ts {
		out = append(out, strconv.FormatFloat(math.Round((v-float64(base.Unix()))*1000)/1000, 'f', -1, 64))
	}
	return strings.Join(out, " ")
}

// TestSeriesAhead: past the newest second, the series answer carries the
// running directive's forecast, upper band and replica floor for the
// coming seconds, so the page can draw what is coming.
func TestSeriesAhead(t *testing.T) {
	now := t0.Add(10 * time.Second) // the newest frame
	pt := func(s float64, rps, hi float64) directive.Point {
		return directive.Point{At: t0.Add(time.Duration(s * float64(time.Second))), RPS: rps, Hi: hi}
	}
	// The demo's shape: a point per wall second, the sale's rise ahead.
	demoForecast := []directive.Point{pt(8, 10, 15), pt(9, 10, 15), pt(10, 12, 18), pt(11.5, 40, 60), pt(12.5, 80, 120), pt(13.5, 80, 0)}
	dense := make([]directive.Point, 0, 2000)
	for i := 0; i < 2000; i++ { // a point per second for 2000 s: over the points' bound
		dense = append(dense, pt(float64(i), 1, 2))
	}
	var sparse []directive.Point
	for i := 0; i <= 18; i++ { // a point per 10 minutes for 3 hours: over the hour's bound
		sparse = append(sparse, pt(float64(600*i), 1, 2))
	}
	for _, c := range []struct {
		name                  string
		sec                   *directive.Service // catalog's section; nil: no directive
		want                  bool               // an ahead at all
		times, rps, hi, floor string
		by, until             string // seconds after t0, or "null"
		count                 int    // points, when the figures are not listed
	}{
		{name: "no directive", sec: nil, want: false},
		{name: "no forecast, no floor", sec: &directive.Service{Admission: &directive.Admission{Seed: 3}}, want: false},
		{name: "forecast in the past only", sec: &directive.Service{Why: &directive.Why{Forecast: []directive.Point{pt(0, 1, 2), pt(5, 3, 4)}}}, want: false},
		{
			name: "forecast ahead, upper band, floor until a lapse inside the forecast",
			sec: &directive.Service{Why: &directive.Why{Forecast: demoForecast},
				Scale: &directive.Scale{Replicas: 6, By: ptime(t0.Add(9 * time.Second)), Until: ptime(t0.Add(12 * time.Second))}},
			want:  true,
			times: "10 11.5 12 12.5 13.5", rps: "12 40 60 80 80", hi: "18 60 90 120 null", floor: "6 6 6 null null",
			by: "9", until: "12",
		},
		{
			name:  "floor without lapse: held over the whole forecast",
			sec:   &directive.Service{Why: &directive.Why{Forecast: demoForecast}, Scale: &directive.Scale{Replicas: 4}},
			want:  true,
			times: "10 11.5 12.5 13.5", rps: "12 40 80 80", hi: "18 60 120 null", floor: "4 4 4 4",
			by: "null", until: "null",
		},
		{
			name:  "a floor without forecast: drawn to its lapse",
			sec:   &directive.Service{Scale: &directive.Scale{Replicas: 5, Until: ptime(t0.Add(40 * time.Second))}},
			want:  true,
			times: "10 40", rps: "null null", hi: "null null", floor: "5 5",
			by: "null", until: "40",
		},
		{
			name:  "a lapsed floor is not drawn ahead",
			sec:   &directive.Service{Why: &directive.Why{Forecast: demoForecast}, Scale: &directive.Scale{Replicas: 5, Until: ptime(t0.Add(3 * time.Second))}},
			want:  true,
			times: "10 11.5 12.5 13.5", rps: "12 40 80 80", hi: "18 60 120 null", floor: "null null null null",
			by: "null", until: "3",
		},
		{name: "bounded: at most 360 points", sec: &directive.Service{Why: &directive.Why{Forecast: dense}}, want: true, count: maxAheadPoints},
		// now, then 600 s to 3600 s: six points within the hour.
		{name: "bounded: at most an hour ahead", sec: &directive.Service{Why: &directive.Why{Forecast: sparse}}, want: true, count: 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := twoServices()
			if c.sec != nil {
				src.setDirective(&directive.Directive{Schema: 1, Version: 3, Services: map[string]*directive.Service{"catalog": c.sec}})
			}
			coll := NewCollector(src, Options{Window: 30})
			for i := 0; i <= 10; i++ {
				coll.Write(second(t0.Add(time.Duration(i)*time.Second), 5, 0, 10, "catalog", "cart"))
			}
			b := coll.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 30})
			a := aheadOfService(t, b, "catalog")
			if got := aheadOfService(t, b, "cart"); got != nil {
				t.Errorf("cart has no section, yet an ahead: %+v", got)
			}
			if (a != nil) != c.want {
				t.Fatalf("ahead %+v, want one: %v", a, c.want)
			}
			if a == nil {
				return
			}
			if a.T[0] != float64(now.Unix()) {
				t.Errorf("the ahead starts at %v, want now (%d): the drawn line starts at the newest second", a.T[0], now.Unix())
			}
			if c.count > 0 {
				if end := a.T[len(a.T)-1] - float64(now.Unix()); len(a.T) != c.count || end > maxAheadSeconds {
					t.Errorf("%d points up to %v s ahead, want %d within %d s", len(a.T), end, c.count, maxAheadSeconds)
				}
				return
			}
			for _, f := range []struct{ name, got, want string }{
				{"times", rel(a.T, t0), c.times},
				{"forecast", strings.Join(vals(a.Forecast), " "), c.rps},
				{"upper band", strings.Join(vals(a.ForecastHi), " "), c.hi},
				{"replica floor", strings.Join(vals(a.Floor), " "), c.floor},
				{"ready by", relp(a.FloorBy), c.by},
				{"lapse", relp(a.FloorUntil), c.until},
			} {
				if f.got != f.want {
					t.Errorf("%s: %s, want %s", f.name, f.got, f.want)
				}
			}
		})
	}
}

func relp(v *float64) string {
	if v == nil {
		return "null"
	}
	return rel([]float64{*v}, t0)
}

// TestSeriesAheadFollowsTheDirective: the ahead is the running
// directive's, replaced when a new version runs, gone when none does.
func TestSeriesAheadFollowsTheDirective(t *testing.T) {
	src := twoServices()
	mk := func(v uint64, rps float64) *directive.Directive {
		return &directive.Directive{Schema: 1, Version: v, Services: map[string]*directive.Service{"catalog": {Why: &directive.Why{
			Forecast: []directive.Point{{At: t0, RPS: rps, Hi: 2 * rps}, {At: t0.Add(time.Minute), RPS: rps, Hi: 2 * rps}}}}}}
	}
	c := NewCollector(src, Options{Window: 30})
	for i, d := range []*directive.Directive{mk(1, 10), mk(2, 20), nil} {
		src.setDirective(d)
		c.Write(second(t0.Add(time.Duration(i)*time.Second), 5, 0, 10, "catalog"))
		a := aheadOfService(t, c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 30}), "catalog")
		switch {
		case d == nil && a != nil:
			t.Errorf("no directive any more, yet an ahead: %+v", a)
		case d != nil && (a == nil || *a.Forecast[1] != d.Services["catalog"].Why.Forecast[0].RPS):
			t.Errorf("version %d: ahead %+v, want its forecast", d.Version, a)
		}
	}
}

// TestAnnounce: events announced ahead of time are listed from the start
// with their source; a directive naming one updates it (no second entry);
// invalid announcements change nothing and say why.
func TestAnnounce(t *testing.T) {
	sale := t0.Add(75 * time.Second)
	name := EventName("flash-sale", sale)
	if name != "flash-sale 2031-03-01T12:01:15Z" {
		t.Fatalf("EventName = %q, want the planner's form", name)
	}
	if got := EventName(" ", sale.Add(400*time.Millisecond)); got != "event 2031-03-01T12:01:15Z" {
		t.Errorf("EventName without category = %q", got)
	}
	src := twoServices()
	c := NewCollector(src, Options{Window: 60, Events: 3})
	good := Announcement{Name: name, Title: "Summer flash sale", Start: sale, End: sale.Add(25 * time.Second)}
	if err := c.Announce([]Announcement{good}); err != nil {
		t.Fatal(err)
	}
	tl := c.Timeline(0)
	if len(tl.Events) != 1 {
		t.Fatalf("events %+v", tl.Events)
	}
	if e := tl.Events[0]; e.Name != name || e.Title != "Summer flash sale" || !e.At.Equal(sale) || !e.End.Equal(sale.Add(25*time.Second)) ||
		e.Source != SourceCalendar || len(e.Services) != 0 || len(e.NamedBy) != 0 {
		t.Errorf("announced: %+v", e)
	}

	// Invalid ones: an error naming the problem, and nothing changes.
	for _, bad := range []struct {
		a    Announcement
		want string
	}{
		{Announcement{Name: " ", Start: sale}, "name: empty"},
		{Announcement{Name: strings.Repeat("x", 300), Start: sale}, "name: 300 bytes"},
		{Announcement{Name: "x", Title: strings.Repeat("t", 300), Start: sale}, "title: 300 bytes"},
		{Announcement{Name: "x"}, "start"},
		{Announcement{Name: "x", Start: sale, End: sale.Add(-time.Second)}, "is before start"},
		{Announcement{Name: "x", Start: sale, Services: make([]string, 65)}, "services: 65"},
		{Announcement{Name: "x", Start: sale, Services: []string{"catalog", ""}}, `services: "" is not a service name`},
		{Announcement{Name: "x", Start: sale, Source: strings.Repeat("s", 40)}, "source: 40 bytes"},
	} {
		err := c.Announce([]Announcement{{Name: "ok " + bad.want, Start: sale}, bad.a})
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "announced event 1") {
			t.Errorf("%+v: error %v, want one saying %q for event 1", bad.a, err, bad.want)
		}
	}
	if err := c.Announce(make([]Announcement, 4)); err == nil || !strings.Contains(err.Error(), "at most 3") {
		t.Errorf("more than Options.Events at once: %v", err)
	}
	if got := c.Timeline(0).Events; len(got) != 1 || got[0].Name != name {
		t.Errorf("a refused announcement changed the events: %+v", got)
	}

	// A directive sized for it, for two services: the same entry, named by
	// both; its calendar time and source stand.
	src.setDirective(&directive.Directive{Schema: 1, Version: 20, Services: map[string]*directive.Service{
		"catalog": {Scale: &directive.Scale{Replicas: 12, By: ptime(t0.Add(40 * time.Second)),
			Why: &directive.Reason{Text: "floor 12 for the sale", Driver: "event", Event: name}}},
		"cart": {Scale: &directive.Scale{Replicas: 6, Why: &directive.Reason{Text: "floor 6", Driver: "event", Event: name}},
			Admission: &directive.Admission{Seed: 4, Why: &directive.Reason{Text: "seed", Event: "newsletter"}}},
	}})
	c.Write(second(t0, 1, 0, 1, "catalog", "cart"))
	tl = c.Timeline(0)
	if len(tl.Events) != 2 {
		t.Fatalf("want the sale once and the newsletter: %+v", tl.Events)
	}
	e := tl.Events[0]
	if e.Source != SourceCalendar || !e.At.Equal(sale) || e.Title != "Summer flash sale" || len(e.Services) != 0 ||
		!slices.Equal(e.NamedBy, []EventRef{{Service: "cart", Field: "scale", Version: 20, Driver: "event"}, {Service: "catalog", Field: "scale", Version: 20, Driver: "event"}}) {
		t.Errorf("the sale after a directive named it: %+v", e)
	}
	if n := tl.Events[1]; n.Name != "newsletter" || n.Source != SourceDirective || !slices.Equal(n.Services, []string{"cart"}) || n.NamedBy[0].Field != "admission" {
		t.Errorf("an event only a directive names: %+v", n)
	}

	// Announced again (the calendar read again, for two services now): the
	// same entry, updated; what directives said of it stays.
	again := good
	again.Title, again.Services = "Summer sale", []string{"catalog", "cart", "catalog"}
	if err := c.Announce([]Announcement{again}); err != nil {
		t.Fatal(err)
	}
	tl = c.Timeline(0)
	if len(tl.Events) != 2 || tl.Events[0].Title != "Summer sale" || !slices.Equal(tl.Events[0].Services, []string{"catalog", "cart"}) || len(tl.Events[0].NamedBy) != 2 {
		t.Errorf("announced again: %+v", tl.Events)
	}
	// A directive naming it for a service it was not announced for adds
	// the service, without touching the answer given before.
	before := c.Timeline(0).Events[0]
	src.setDirective(&directive.Directive{Schema: 1, Version: 21, Services: map[string]*directive.Service{
		"inventory": {Scale: &directive.Scale{Replicas: 3, Why: &directive.Reason{Text: "floor", Event: name}}}}})
	c.Write(second(t0.Add(time.Second), 1, 0, 1, "catalog", "cart"))
	after := c.Timeline(0).Events[0]
	if !slices.Equal(after.Services, []string{"catalog", "cart", "inventory"}) || len(after.NamedBy) != 3 {
		t.Errorf("named for another service: %+v", after)
	}
	if !slices.Equal(before.Services, []string{"catalog", "cart"}) || len(before.NamedBy) != 2 {
		t.Errorf("an earlier answer changed under its reader: %+v", before)
	}

	// Bounded: the oldest go first.
	for i := 0; i < 5; i++ {
		if err := c.Announce([]Announcement{{Name: EventName("promo", sale.Add(time.Duration(i)*time.Hour)), Start: sale}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Timeline(0).Events; len(got) != 3 || got[2].Name != EventName("promo", sale.Add(4*time.Hour)) {
		t.Errorf("bounded to 3, newest last: %+v", got)
	}
}

// TestReplay: the state carries the replay mapping for the page's time
// axis; unusable mappings are refused.
func TestReplay(t *testing.T) {
	c := NewCollector(twoServices(), Options{Window: 60})
	c.Write(second(t0, 1, 0, 1, "catalog"))
	if c.State().Replay != nil {
		t.Fatal("a replay without SetReplay")
	}
	from := time.Date(1995, 7, 12, 6, 30, 0, 0, time.UTC)
	for _, bad := range []*Replay{{VirtualStart: from, Factor: 60}, {WallStart: t0, Factor: 60}, {WallStart: t0, VirtualStart: from},
		{WallStart: t0, VirtualStart: from, Factor: math.NaN()}, {WallStart: t0, VirtualStart: from, Factor: 1e6}} {
		if err := c.SetReplay(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if c.State().Replay != nil {
		t.Fatal("a refused replay was kept")
	}
	if err := c.SetReplay(&Replay{WallStart: t0.In(time.FixedZone("X", 3600)), VirtualStart: from, Factor: 60}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c.State())
	if !strings.Contains(string(b), `"replay":{"wall_start":"2031-03-01T12:00:00Z","virtual_start":"1995-07-12T06:30:00Z","factor":60}`) {
		t.Errorf("state: %s", b)
	}
	if got := c.State().Replay.Virtual(t0.Add(75 * time.Second)); !got.Equal(from.Add(75 * time.Minute)) {
		t.Errorf("75 s into the run is %v, want 07:45", got)
	}
	c.SetReplay(nil)
	if c.State().Replay != nil {
		t.Error("SetReplay(nil) kept the mapping")
	}
}
