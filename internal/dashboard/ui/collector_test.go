package ui

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbsys/lbsys/api/directive"
)

func TestSeriesFromSeconds(t *testing.T) {
	src := twoServices()
	src.setDirective(&directive.Directive{Schema: 1, Version: 7, Services: map[string]*directive.Service{
		"catalog": {
			Scale: &directive.Scale{Replicas: 5, Until: ptime(t0.Add(2 * time.Second))},
			Why: &directive.Why{Model: "ens", Forecast: []directive.Point{
				{At: t0, RPS: 100, Hi: 150}, {At: t0.Add(10 * time.Second), RPS: 200, Hi: 300}}},
		},
	}})
	c := NewCollector(src, Options{Window: 10})
	c.Write(second(t0, 30, 3, 80, "catalog", "cart"))
	c.Write(second(t0.Add(time.Second), 0, 0, 0, "catalog", "cart"))
	c.Write(second(t0.Add(2*time.Second), 60, 0, 20, "catalog", "cart"))
	c.Write(second(t0.Add(2*time.Second), 99, 0, 20, "catalog", "cart")) // the same second again: ignored

	s := decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 10}))
	if s.Window != 10 || s.Last != t0.Unix()+2 || !slices.Equal(s.T, []int64{t0.Unix(), t0.Unix() + 1, t0.Unix() + 2}) {
		t.Fatalf("window %d, last %d, t %v", s.Window, s.Last, s.T)
	}
	if len(s.Services) != 2 || s.Services[0].Name != "cart" || s.Services[1].Name != "catalog" {
		t.Fatalf("services not sorted by name: %+v", s.Services)
	}
	cat := s.Services[1]
	for _, c := range []struct {
		name string
		got  []*float64
		want string
	}{
		{"rps", cat.RPS, "30 0 60"},
		{"error rate (null without traffic)", cat.ErrorRate, "0.1 null 0"},
		{"p99 (null without traffic)", cat.P99, "80 null 20"},
		{"forecast, interpolated", cat.Forecast, "100 110 120"},
		{"upper band, interpolated", cat.ForecastHi, "150 165 180"},
		{"endpoints in rotation (ejected one out)", cat.Endpoints, "2 2 2"},
		{"endpoints configured", cat.EndpointsTotal, "3 3 3"},
		{"replica floor until its end", cat.Floor, "5 5 null"},
		{"admission limit", cat.Limit, "42 42 42"},
		{"in flight", cat.InFlight, "7 7 7"},
	} {
		if got := strings.Join(vals(c.got), " "); got != c.want {
			t.Errorf("catalog %s = %s, want %s", c.name, got, c.want)
		}
	}
	cart := s.Services[0]
	if got := strings.Join(vals(cart.Forecast), " "); got != "null null null" {
		t.Errorf("cart has no section: forecast %s, want nulls", got)
	}
	if got := strings.Join(vals(cart.Limit), " "); got != "null null null" {
		t.Errorf("cart has no admission control: limit %s, want nulls", got)
	}

	// since is exclusive, limit keeps the newest, service filters.
	s = decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: t0.Unix(), Limit: 10, Service: "cart"}))
	if !slices.Equal(s.T, []int64{t0.Unix() + 1, t0.Unix() + 2}) || len(s.Services) != 1 || s.Services[0].Name != "cart" {
		t.Errorf("since/service: t %v, services %d", s.T, len(s.Services))
	}
	s = decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 1}))
	if !slices.Equal(s.T, []int64{t0.Unix() + 2}) {
		t.Errorf("limit 1: t %v", s.T)
	}
	s = decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: t0.Unix() + 2, Limit: 10}))
	if len(s.T) != 0 || len(s.Services) != 0 || s.Last != t0.Unix()+2 {
		t.Errorf("nothing new: %+v", s)
	}
}

func TestSeriesServiceAddedLater(t *testing.T) {
	src := twoServices()
	only := src.st.Services[1:]
	all := src.st.Services
	src.st.Services = only
	c := NewCollector(src, Options{Window: 10})
	c.Write(second(t0, 5, 0, 10, "catalog"))
	src.st.Services = all
	c.Write(second(t0.Add(time.Second), 5, 0, 10, "catalog", "cart"))
	s := decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 10}))
	if got := strings.Join(vals(s.Services[0].RPS), " "); s.Services[0].Name != "cart" || got != "null 5" {
		t.Errorf("cart before it existed: %s %s, want null then 5", s.Services[0].Name, got)
	}
}

func TestInterpolate(t *testing.T) {
	ps := forecastPoints(&directive.Service{Why: &directive.Why{Forecast: []directive.Point{
		{At: t0.Add(60 * time.Second), RPS: 300, Hi: 0}, // out of order, no band
		{At: t0, RPS: 100, Hi: 150},
		{At: t0.Add(30 * time.Second), RPS: 200, Hi: 250},
	}}})
	nan := math.NaN()
	for _, c := range []struct {
		name    string
		at      float64
		rps, hi float64
	}{
		{"before the forecast", -1, nan, nan},
		{"first point", 0, 100, 150},
		{"between", 15, 150, 200},
		{"exactly a point", 30, 200, 250},
		{"towards a point without band", 45, 250, nan},
		{"last point", 60, 300, nan},
		{"after the forecast", 61, nan, nan},
	} {
		rps, hi := interpolate(ps, float64(t0.Unix())+c.at)
		if !same(rps, c.rps) || !same(hi, c.hi) {
			t.Errorf("%s: got %v/%v, want %v/%v", c.name, rps, hi, c.rps, c.hi)
		}
	}
	if r, h := interpolate(nil, 0); !math.IsNaN(r) || !math.IsNaN(h) {
		t.Errorf("no forecast: %v %v", r, h)
	}
}

func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func TestIncidents(t *testing.T) {
	type minute struct {
		req, errs int64
		p99       float64
	}
	ok, slow, failing, idle := minute{100, 0, 50}, minute{100, 0, 900}, minute{100, 5, 50}, minute{0, 0, 0}
	for _, c := range []struct {
		name    string
		minutes []minute
		want    []string // start minute, minutes, latency/error minutes, open
	}{
		{"all good", []minute{ok, ok, ok}, nil},
		{"one slow minute", []minute{ok, slow, ok}, []string{"1 1 1/0 over"}},
		{"errors then slow: one incident", []minute{failing, slow, ok}, []string{"0 2 1/1 over"}},
		// The minute after the last one has only begun: not judged yet.
		{"still violating: open", []minute{ok, slow, slow}, []string{"1 2 2/0 open"}},
		{"idle minute ends it", []minute{slow, idle, slow, ok}, []string{"0 1 1/0 over", "2 1 1/0 over"}},
		{"exactly at the bounds is fine", []minute{{100, 1, 500}, ok}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := twoServices()
			src.st.Services = src.st.Services[1:]
			coll := NewCollector(src, Options{Window: 600})
			for m, mm := range c.minutes {
				for s := 0; s < 60; s++ {
					ts := t0.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
					recs := second(ts, mm.req/60, 0, mm.p99, "catalog")
					if s == 0 {
						recs[0].Requests += mm.req % 60
						recs[0].Errors = mm.errs
					}
					coll.Write(recs)
				}
			}
			// One second of the next minute closes the last one.
			coll.Write(second(t0.Add(time.Duration(len(c.minutes))*time.Minute), 1, 0, 1, "catalog"))
			var got []string
			for _, inc := range coll.Timeline(0).Incidents {
				state := "over"
				if inc.Open {
					state = "open"
				}
				got = append(got, strings.Join([]string{
					strconv.Itoa(int(inc.Start.Sub(t0) / time.Minute)), strconv.Itoa(inc.Minutes),
					strconv.Itoa(inc.LatencyMinutes) + "/" + strconv.Itoa(inc.ErrorMinutes), state}, " "))
				if inc.End.Sub(inc.Start) != time.Duration(inc.Minutes)*time.Minute {
					t.Errorf("incident %+v: end - start is not its minutes", inc)
				}
			}
			if strings.Join(got, ";") != strings.Join(c.want, ";") {
				t.Errorf("incidents %q, want %q", got, c.want)
			}
		})
	}
}

func TestTimeline(t *testing.T) {
	src := twoServices()
	c := NewCollector(src, Options{Window: 60})
	sec := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

	c.Write(second(sec(0), 1, 0, 1, "catalog", "cart"))
	if tl := c.Timeline(0); tl.Seq != 0 || len(tl.Changes) != 0 {
		t.Fatalf("no directive yet: %+v", tl)
	}
	event := "flash-sale 2031-03-01T12:05:00Z"
	v1 := &directive.Directive{Schema: 1, Version: 1, Change: 11, CommittedAt: sec(0), Services: map[string]*directive.Service{
		"catalog": {
			Scale: &directive.Scale{Replicas: 6, By: ptime(sec(200)),
				Why: &directive.Reason{Text: "floor 6 for the sale", Driver: "event", Event: event, LoadRPS: 900, PerReplicaRPS: 150}},
			Admission: &directive.Admission{Cap: 300, Why: &directive.Reason{Text: "cap from Little's law"}},
			Why:       &directive.Why{Model: "ens@3", Blessed: true, Forecast: []directive.Point{{At: sec(0), RPS: 10, Hi: 20}, {At: sec(300), RPS: 30, Hi: 90}}},
		},
		"cart": {Scale: &directive.Scale{Replicas: 2}},
	}}
	src.setDirective(v1)
	c.Write(second(sec(1), 1, 0, 1, "catalog", "cart"))
	c.Write(second(sec(2), 1, 0, 1, "catalog", "cart")) // same pointer: no change
	same := *v1
	src.setDirective(&same) // same version from disk: no change
	c.Write(second(sec(3), 1, 0, 1, "catalog", "cart"))

	tl := c.Timeline(0)
	if tl.Seq != 1 || len(tl.Changes) != 1 {
		t.Fatalf("want one change, got seq %d, %d changes", tl.Seq, len(tl.Changes))
	}
	ch := tl.Changes[0]
	if ch.Version != 1 || ch.ChangeID != 11 || ch.Initial || !ch.SeenAt.Equal(sec(1)) || len(ch.Diff) == 0 {
		t.Errorf("change 1: %+v", ch)
	}
	if len(ch.Services) != 2 || ch.Services[1].Name != "catalog" || !ch.Services[1].Changed {
		t.Fatalf("services: %+v", ch.Services)
	}
	cat := ch.Services[1]
	if cat.Model != "ens@3" || cat.Peak == nil || cat.Peak.Hi != 90 || len(cat.Fields) != 2 {
		t.Errorf("catalog: %+v", cat)
	}
	if f := cat.Fields[0]; f.Field != "scale" || !strings.HasPrefix(f.Value, "at least 6 replicas by 2031-03-01T12:03:20Z") || f.Why == nil || f.Why.Text != "floor 6 for the sale" {
		t.Errorf("scale field: %+v", f)
	}
	if f := cat.Fields[1]; f.Field != "admission" || !strings.Contains(f.Value, "cap 300") || f.Why.Text != "cap from Little's law" {
		t.Errorf("admission field: %+v", f)
	}
	if len(tl.Events) != 1 || tl.Events[0].Name != event || !tl.Events[0].At.Equal(sec(300)) || tl.Events[0].Source != SourceDirective ||
		!slices.Equal(tl.Events[0].Services, []string{"catalog"}) ||
		!slices.Equal(tl.Events[0].NamedBy, []EventRef{{Service: "catalog", Field: "scale", Version: 1, Driver: "event"}}) {
		t.Errorf("events: %+v", tl.Events)
	}

	// v2 changes catalog's floor only; the same event is named again.
	v2 := &directive.Directive{Schema: 1, Version: 2, Services: map[string]*directive.Service{
		"catalog": {Scale: &directive.Scale{Replicas: 8, Why: &directive.Reason{Text: "more", Event: event}}},
		"cart":    {Scale: &directive.Scale{Replicas: 2}},
	}}
	src.setDirective(v2)
	c.Write(second(sec(4), 1, 0, 1, "catalog", "cart"))
	tl = c.Timeline(1)
	if tl.Seq != 2 || len(tl.Changes) != 1 || tl.Changes[0].Version != 2 {
		t.Fatalf("after=1: %+v", tl.Changes)
	}
	ch = tl.Changes[0]
	if ch.Services[0].Name != "cart" || ch.Services[0].Changed || !ch.Services[1].Changed {
		t.Errorf("changed flags: %+v", ch.Services)
	}
	var paths []string
	for _, d := range ch.Diff {
		paths = append(paths, d.Path)
	}
	if !slices.Contains(paths, "services[catalog].scale.replicas") {
		t.Errorf("diff paths %v lack the replicas", paths)
	}
	if len(tl.Events) != 1 || !slices.Equal(tl.Events[0].NamedBy, []EventRef{{Service: "catalog", Field: "scale", Version: 2}}) {
		t.Errorf("the event named again is updated, not repeated: %+v", tl.Events)
	}
	// v2 has no forecast: the series shows none from then on.
	s := decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: sec(2).Unix(), Limit: 10, Service: "catalog"}))
	if got := strings.Join(vals(s.Services[0].Forecast), " "); got != "10.2 null" {
		t.Errorf("forecast around the change: %s", got)
	}

	// The directive dropped.
	src.setDirective(nil)
	c.Write(second(sec(5), 1, 0, 1, "catalog", "cart"))
	tl = c.Timeline(2)
	if len(tl.Changes) != 1 || !tl.Changes[0].None {
		t.Errorf("drop: %+v", tl.Changes)
	}
	// A client ahead of the proxy (the proxy restarted) gets everything.
	if tl := c.Timeline(99); len(tl.Changes) != 3 {
		t.Errorf("after beyond seq: %d changes, want all 3", len(tl.Changes))
	}

	// A directive running before the first sample is the initial one.
	c2 := NewCollector(src, Options{})
	src.setDirective(v1)
	c2.Write(second(sec(0), 1, 0, 1, "catalog", "cart"))
	if tl := c2.Timeline(0); len(tl.Changes) != 1 || !tl.Changes[0].Initial || tl.Changes[0].Diff != nil {
		t.Errorf("initial: %+v", tl.Changes)
	}
}

func TestEventTime(t *testing.T) {
	at := t0.Add(time.Hour)
	by := t0.Add(2 * time.Hour)
	for _, c := range []struct {
		name  string
		r     directive.Reason
		field string
		want  time.Time
	}{
		{"time in the name", directive.Reason{Event: "flash-sale 2031-03-01T10:00:00Z", At: &at}, "scale", time.Date(2031, 3, 1, 10, 0, 0, 0, time.UTC)},
		{"only a time", directive.Reason{Event: "2031-03-01T10:00:00+01:00"}, "scale", time.Date(2031, 3, 1, 9, 0, 0, 0, time.UTC)},
		{"reason's load time", directive.Reason{Event: "newsletter", At: &at}, "admission", at},
		{"scale deadline", directive.Reason{Event: "newsletter"}, "scale", by},
		{"seen", directive.Reason{Event: "newsletter"}, "admission", t0},
		{"not a time", directive.Reason{Event: "sale 2031-13-45"}, "admission", t0},
	} {
		s := &directive.Service{Scale: &directive.Scale{Replicas: 1, By: &by}}
		if got := eventTime(&c.r, s, c.field, t0); !got.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClipAndPush(t *testing.T) {
	if got := clip("héllo", 2); got != "h…" {
		t.Errorf("clip splits a rune: %q", got)
	}
	if got := clip("abc", 3); got != "abc" {
		t.Errorf("clip: %q", got)
	}
	var s []int
	for i := 0; i < 10; i++ {
		s = pushBounded(s, i, 3)
	}
	if !slices.Equal(s, []int{7, 8, 9}) {
		t.Errorf("pushBounded: %v", s)
	}
}

func TestTimeMap(t *testing.T) {
	// A demo's world: 60 virtual seconds per real second from 1995.
	origin := time.Date(1995, 7, 12, 6, 30, 0, 0, time.UTC)
	virtual := func(r time.Time) time.Time { return origin.Add(r.Sub(t0) * 60) }
	src := twoServices()
	src.st.Services = src.st.Services[1:]
	src.setDirective(&directive.Directive{Schema: 1, Version: 1, Services: map[string]*directive.Service{
		"catalog": {Why: &directive.Why{Model: "m", Forecast: []directive.Point{{At: origin, RPS: 10, Hi: 20}, {At: origin.Add(time.Hour), RPS: 70, Hi: 80}}}},
	}})
	c := NewCollector(src, Options{Window: 100})
	c.SetTimeMap(virtual)
	for i := 0; i < 62; i++ {
		p99 := 10.0
		if i == 3 {
			p99 = 5000 // one slow real second is one slow virtual minute
		}
		c.Write(second(t0.Add(time.Duration(i)*time.Second), 10, 0, p99, "catalog"))
	}
	s := decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 3}))
	if want := origin.Add(61 * time.Minute).Unix(); s.Last != want || s.T[2]-s.T[1] != 60 {
		t.Errorf("frames at %v (last %d), want a virtual minute apart ending at %d", s.T, s.Last, want)
	}
	if got := strings.Join(vals(s.Services[0].RPS), " "); got != "0.166667 0.166667 0.166667" {
		t.Errorf("10 requests in a real second are 10 per virtual minute: %s", got)
	}
	if got := strings.Join(vals(s.Services[0].Forecast), " "); got != "69 70 null" {
		t.Errorf("forecast in virtual time: %s", got)
	}
	if inc := c.Timeline(0).Incidents; len(inc) != 1 || !inc[0].Start.Equal(origin.Add(3*time.Minute)) || inc[0].Minutes != 1 {
		t.Errorf("incidents in virtual minutes: %+v", inc)
	}
	c.SetTimeMap(nil)
	c.Write(second(t0.Add(100*time.Second), 1, 0, 1, "catalog")) // back to 2031: after 1995, kept
	if s := decodeSeries(t, c.AppendSeries(nil, SeriesQuery{Since: math.MinInt64, Limit: 1})); s.Last != t0.Add(100*time.Second).Unix() {
		t.Errorf("identity again: last %d", s.Last)
	}
}
