package demo

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"time"

	"github.com/lbsys/lbsys/internal/calendar"
	"github.com/lbsys/lbsys/internal/forecast"
	"github.com/lbsys/lbsys/internal/loadgen"
)

// trace is the NASA Kennedy Space Center web server's request counts per
// minute from 1995-07-01 to 1995-07-13 (the STS-70 launch morning: a real,
// unannounced spike around 09:30): twelve days of history for the
// forecaster and the day the demo replays. Provenance:
// shared/data/traces/nasa_http_1995_07_1min.csv (testdata/traces) —
// NASA-HTTP logs (public), per-second counts from
// reconfigurable-ml-pipeline/web-service-datasets, aggregated; cut to
// these thirteen days, values unchanged.
//
//go:embed nasa_1995-07-01_13_1min.csv
var traceCSV []byte

// calendarICS is the demo shop's marketing calendar: past flash sales in
// the history and the ones announced for the mornings the demo replays
// (their category and time; how large they will be is not in it).
//
//go:embed calendar.ics
var calendarICS []byte

// pastFactors are what the past flash sales did to the traffic (the
// shop's own history: what the controller learns the uplift from), in the
// calendar's order; a sale at or after the replay's start gets
// Config.FlashX. They are in the range issue #12 gives from the shop's
// past sales and the simulator's announced-flash-sale scenario draws from
// (×5 to ×20, ×6 to ×12 there): ×7.6 to ×10.8 here, ×9.2 their median.
var pastFactors = []float64{8.4, 10.2, 7.6, 9.2, 10.8, 8.8, 9.6}

// world is the demo's traffic on its virtual timeline.
type world struct {
	trace  *loadgen.Trace
	scale  float64 // trace requests/minute → real requests/second at the loadgen
	events []calendar.Event
	x      []float64 // factor of each event
	rise   time.Duration
	funnel loadgen.Funnel // an ordinary visit's
	sale   loadgen.Funnel // a visit that starts during a sale
}

// saleFunnel is how a flash sale's visitors walk the shop: they came for
// the featured products, so nearly all open one, and the discount makes
// them buy at about twice the usual rate (loadgen.DefaultFunnel: 60%, 30%
// and 10%). The sale multiplies the visits by its factor and the
// uncached services' load by more than that: a cart ×1.7 and a checkout
// ×2 on top. The past sales in the history were the same, so the
// controller learns each service's own uplift from them.
var saleFunnel = loadgen.Funnel{1, 0.9, 0.5, 0.2}

func newWorld(cfg *Config) (*world, error) {
	tr, err := loadgen.ParseTrace(bytes.NewReader(traceCSV), "nasa_1995-07-01_13_1min.csv", loadgen.TraceOptions{})
	if err != nil {
		return nil, err
	}
	day := cfg.From.Truncate(24 * time.Hour)
	peak := 0.0
	for t := day; t.Before(day.Add(24 * time.Hour)); t = t.Add(time.Minute) {
		peak = math.Max(peak, tr.Value(t))
	}
	if peak <= 0 {
		return nil, fmt.Errorf("the trace has no traffic on %s", day.Format("2006-01-02"))
	}
	res, err := calendar.Parse(calendarICS, calendar.Options{Name: "calendar.ics", From: tr.First(), To: cfg.From.Add(48 * time.Hour)})
	if err != nil {
		return nil, err
	}
	w := &world{trace: tr, scale: cfg.PeakRPS / peak, rise: 90 * time.Second, funnel: loadgen.DefaultFunnel, sale: saleFunnel}
	past := 0
	for _, e := range res.Events {
		w.events = append(w.events, e)
		switch {
		case !e.Start.Before(cfg.From):
			w.x = append(w.x, cfg.FlashX)
		case past < len(pastFactors):
			w.x = append(w.x, pastFactors[past])
			past++
		default:
			w.x = append(w.x, pastFactors[len(pastFactors)-1])
		}
	}
	return w, nil
}

// factor is the events' multiplier at virtual time t: rising linearly over
// rise, holding until the end.
func (w *world) factor(t time.Time) float64 {
	m := 1.0
	for i, e := range w.events {
		if t.Before(e.Start) || !t.Before(e.End) {
			continue
		}
		x := w.x[i]
		if s := t.Sub(e.Start); s < w.rise {
			x = 1 + (x-1)*float64(s)/float64(w.rise)
		}
		m *= x
	}
	return m
}

// realRPS is the request rate the load generator is given at virtual
// time t (requests per real second of ordinary visits: the visits' start
// rate is it over the ordinary funnel's requests per visit, and a sale's
// visitors send more, see serviceRPS).
func (w *world) realRPS(t time.Time) float64 {
	return w.trace.Value(t) * w.scale * w.factor(t)
}

// inSale tells whether a visit starting at virtual time t is a sale's.
func (w *world) inSale(t time.Time) bool {
	for _, e := range w.events {
		if !t.Before(e.Start) && t.Before(e.End) {
			return true
		}
	}
	return false
}

// serviceRPS is each service's request rate at virtual time t (per real
// second), for a visit rate of realRPS / the ordinary funnel's requests
// per visit, each visit walking its funnel.
func (w *world) serviceRPS(t time.Time) map[string]float64 {
	f := w.funnel
	if w.inSale(t) {
		f = w.sale
	}
	visits := w.realRPS(t) / w.funnel.ExpectedRequests()
	out := f.ServiceRequests()
	for k := range out {
		out[k] *= visits
	}
	return out
}

// rate is the load generator's rate over the run: the virtual timeline
// from From at factor virtual seconds per real one.
type rate struct {
	w      *world
	from   time.Time
	factor float64
}

func (r rate) vt(off time.Duration) time.Time {
	return r.from.Add(time.Duration(float64(off) * r.factor))
}

// At implements loadgen.Rate.
func (r rate) At(off time.Duration) float64 { return r.w.realRPS(r.vt(off)) }

// Max implements loadgen.Rate: the trace's points inside are all
// sampled (a minute of trace per virtual minute), with room for the
// interpolation between them.
func (r rate) Max(from, to time.Duration) float64 {
	m := math.Max(r.At(from), r.At(to))
	step := time.Duration(float64(time.Minute) / r.factor / 2)
	if step <= 0 {
		step = time.Millisecond
	}
	for t := from; t < to; t += step {
		m = math.Max(m, r.At(t))
	}
	return m * 1.001
}

// history is each service's load per virtual minute before from, as the
// proxy's telemetry would have recorded it: the trace's visits through
// the funnels, with the past sales' crowds and their funnel. Rates are
// per real second, the unit the live loop feeds its controller (see
// internal/liveloop).
func (w *world) history(from time.Time) map[string]*forecast.Series {
	start := w.trace.First()
	n := int(from.Sub(start) / time.Minute)
	out := map[string]*forecast.Series{}
	for i := 0; i < n; i++ {
		t := start.Add(time.Duration(i) * time.Minute)
		for svc, r := range w.serviceRPS(t) {
			s := out[svc]
			if s == nil {
				s = &forecast.Series{Name: svc, Start: start, Step: time.Minute, Values: make(forecast.Values, n)}
				out[svc] = s
			}
			s.Values[i] = r
		}
	}
	return out
}

// announced is the calendar as the controller sees it: categories and
// times.
func (w *world) announced() []forecast.Event {
	var out []forecast.Event
	for _, e := range w.events {
		out = append(out, forecast.Event{Start: e.Start, End: e.End, Category: e.Category()})
	}
	return out
}
