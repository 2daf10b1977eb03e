package ui

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbsys/lbsys/api/directive"
	"github.com/lbsys/lbsys/internal/telemetry"
)

// Collector turns the proxy's per-second telemetry, its state and its
// directive into the UI's bounded history. It is a telemetry.Sink: the
// proxy's aggregator calls Write once a second with that second's records,
// and the Collector samples the Source then, so a frame's figures and its
// timestamp belong to the same second. The HTTP handlers read it
// concurrently.
type Collector struct {
	src  Source
	opts Options
	// timeMap, when set, turns a telemetry second into the time the UI
	// files it under (see SetTimeMap).
	timeMap atomic.Pointer[func(time.Time) time.Time]

	mu sync.Mutex
	// frames is a ring of Window per-second frames; head is the index of
	// the oldest and n how many are filled. A frame's samples slice is
	// reused when the ring wraps, so a full ring allocates nothing more.
	frames []frame
	head   int
	n      int
	// recIdx indexes one Write's service records by name (reused).
	recIdx map[string]int
	// eps is every endpoint's last second, for the endpoint table.
	eps map[epKey]epStat

	// The directive as last seen and what the UI derived from it.
	dir      *directive.Directive
	started  bool                // the first Write happened
	forecast map[string][]fpoint // per service, sorted by time
	seq      uint64              // of the newest change
	changes  []Change            // oldest first, at most Versions
	events   []Event             // oldest first, at most Events

	minutes   map[string]*minuteAcc
	incidents []Incident // oldest first, at most Incidents

	// aheadBuf is reused by every series answer (under mu).
	aheadBuf ahead
	// replay, when set, labels the page's time axis in a replayed day's
	// time (see SetReplay).
	replay atomic.Pointer[Replay]
}

// frame is one second of every service.
type frame struct {
	t       int64 // unix seconds
	samples []sample
}

// sample is one service in one second. NaN means "no value" (null in
// JSON): no traffic for a rate or a latency, no directive for a forecast.
type sample struct {
	name                    string
	rps, errRate, p99       float64
	inFlight                float64
	endpoints, endpointsAll float64
	floor, limit            float64
	forecast, forecastHi    float64
}

type epKey struct{ service, endpoint string }

type epStat struct {
	requests, errors int64
	p99              float64
}

// fpoint is one forecast point in unix seconds.
type fpoint struct {
	t, rps, hi float64
}

// minuteAcc sums a service's current minute.
type minuteAcc struct {
	minute           int64 // unix seconds of the minute's start
	requests, errors int64
	p99w             float64 // Σ p99 × requests
}

// Change is one directive the proxy started running (or stopped running:
// None), as the timeline shows it.
type Change struct {
	Seq         uint64     `json:"seq"`
	Version     uint64     `json:"version"`
	Cluster     string     `json:"cluster,omitempty"`
	ChangeID    uint64     `json:"change,omitempty"`
	CommittedAt *time.Time `json:"committed_at,omitempty"`
	RollbackOf  uint64     `json:"rollback_of,omitempty"`
	// SeenAt is the telemetry second in which the UI first saw the
	// proxy run it (within a second of the agent applying it).
	SeenAt time.Time `json:"seen_at"`
	// Initial marks the directive already running when the UI started.
	Initial bool `json:"initial,omitempty"`
	// None marks the proxy dropping its directive.
	None     bool            `json:"none,omitempty"`
	Services []ChangeService `json:"services"`
	// Diff lists what changed from the previous directive (at most
	// maxDiff lines; DiffMore counts the rest).
	Diff     []directive.Change `json:"diff,omitempty"`
	DiffMore int                `json:"diff_more,omitempty"`
}

// ChangeService is one service's section of a directive in the timeline.
type ChangeService struct {
	Name string `json:"name"`
	// Changed is false when the section is the same as the previous
	// directive's.
	Changed bool    `json:"changed"`
	Fields  []Field `json:"fields"`
	Model   string  `json:"model,omitempty"`
	Blessed bool    `json:"blessed,omitempty"`
	// Peak is the forecast point with the highest upper band.
	Peak *directive.Point `json:"forecast_peak,omitempty"`
	// Expected is the section's expected effect (why.expected_effect).
	Expected string `json:"expected_effect,omitempty"`
}

// Field is one field of a service's directive with its reason.
type Field struct {
	Field string            `json:"field"`
	Value string            `json:"value"`
	Why   *directive.Reason `json:"why,omitempty"`
}

// Incident is a run of consecutive minutes in which a service violated
// its SLO.
type Incident struct {
	Service string    `json:"service"`
	Start   time.Time `json:"start"`
	// End is the end of the last violating minute.
	End     time.Time `json:"end"`
	Minutes int       `json:"minutes"`
	// Open is true while the last finished minute of the service violated
	// the SLO: the incident may grow.
	Open bool `json:"open"`
	// LatencyMinutes and ErrorMinutes count the minutes over each bound.
	LatencyMinutes int     `json:"latency_minutes"`
	ErrorMinutes   int     `json:"error_minutes"`
	WorstP99ms     float64 `json:"worst_p99_ms"`
	WorstErrorRate float64 `json:"worst_error_rate"`
}

// maxDiff bounds the diff lines kept per change, and maxDiffValue each
// side of a line: a forecast list differs as a whole and may be long.
const (
	maxDiff      = 40
	maxDiffValue = 160
)

// NewCollector returns a Collector reading src.
func NewCollector(src Source, opts Options) *Collector {
	opts.defaults()
	return &Collector{
		src:     src,
		opts:    opts,
		frames:  make([]frame, opts.Window),
		recIdx:  map[string]int{},
		eps:     map[epKey]epStat{},
		minutes: map[string]*minuteAcc{},
	}
}

// SetTimeMap makes the UI file each telemetry second under f(second)
// instead: a proxy whose directives speak of another time than its clock
// (`lbsys demo` replays a day of 1995 compressed, and its controller's
// forecasts, floors and events are in that day's time) passes the
// mapping from its clock to that time, so that actual traffic, forecasts,
// floors, events and SLO minutes line up on one axis. f must not go
// backwards; a second it maps at or before the last one is dropped.
// Request rates are per second of that time too: a real second mapped to
// a virtual minute has its requests spread over the minute. Nil restores
// the identity.
func (c *Collector) SetTimeMap(f func(time.Time) time.Time) {
	if f == nil {
		c.timeMap.Store(nil)
		return
	}
	c.timeMap.Store(&f)
}

// SetReplay labels the page's time axis in a replayed day's time (see
// Replay); nil labels it in UTC again. An unusable mapping (no start, a
// factor that is not a positive number up to 3600) is refused with an
// error and changes nothing.
func (c *Collector) SetReplay(r *Replay) error {
	if r == nil {
		c.replay.Store(nil)
		return nil
	}
	switch {
	case r.WallStart.IsZero() || r.VirtualStart.IsZero():
		return errors.New("replay: wall_start and virtual_start are both required")
	case !(r.Factor > 0 && r.Factor <= 3600):
		return fmt.Errorf("replay: factor %v: want virtual seconds per wall second, above 0 and at most 3600", r.Factor)
	}
	cp := Replay{WallStart: r.WallStart.UTC(), VirtualStart: r.VirtualStart.UTC(), Factor: r.Factor}
	c.replay.Store(&cp)
	return nil
}

// Options returns the options in force (defaults filled in).
func (c *Collector) Options() Options { return c.opts }

// Write records one second: the service records of recs (every record has
// the second's timestamp), the Source's state and its directive. It
// implements telemetry.Sink and never fails.
func (c *Collector) Write(recs []telemetry.Record) error {
	if len(recs) == 0 {
		return nil
	}
	ts := recs[0].Time
	// span is how many of the UI's seconds the telemetry second covers:
	// rates are per second of the UI's time.
	span := 1.0
	if f := c.timeMap.Load(); f != nil {
		ts, span = (*f)(ts), (*f)(ts.Add(time.Second)).Sub((*f)(ts)).Seconds()
		if !(span > 0) {
			span = 1
		}
	}
	// The Source is read before taking the lock: a handler never waits
	// for the proxy's locks.
	st := c.src.State()
	d := c.src.Directive()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.observeDirective(ts, d)

	clear(c.recIdx)
	clear(c.eps)
	for i, r := range recs {
		if r.Endpoint == "" {
			c.recIdx[r.Service] = i
		} else {
			c.eps[epKey{r.Service, r.Endpoint}] = epStat{requests: r.Requests, errors: r.Errors, p99: r.P99ms}
		}
	}
	c.observeMinutes(ts, recs)

	t := ts.Unix()
	if c.n > 0 && t <= c.frames[(c.head+c.n-1)%len(c.frames)].t {
		return nil // a second already recorded (a clock that went back)
	}
	var fr *frame
	if c.n < len(c.frames) {
		fr = &c.frames[(c.head+c.n)%len(c.frames)]
		c.n++
	} else {
		fr = &c.frames[c.head]
		c.head = (c.head + 1) % len(c.frames)
	}
	fr.t = t
	fr.samples = fr.samples[:0]
	for _, s := range st.Services {
		sm := sample{name: s.Name, rps: nan, errRate: nan, p99: nan, inFlight: float64(s.InFlight),
			floor: nan, limit: nan, forecast: nan, forecastHi: nan}
		if i, ok := c.recIdx[s.Name]; ok {
			r := recs[i]
			sm.rps = float64(r.Requests) / span
			if r.Requests > 0 {
				sm.errRate = float64(max(0, min(r.Errors, r.Requests))) / float64(r.Requests)
				sm.p99 = r.P99ms // NaN or ±Inf are written as null
			}
		}
		for _, e := range s.Endpoints {
			sm.endpointsAll++
			if e.InRotation() {
				sm.endpoints++
			}
		}
		if s.Admission != nil {
			sm.limit = s.Admission.Limit
		}
		if d != nil {
			if sec := d.Services[s.Name]; sec != nil && sec.Scale != nil && (sec.Scale.Until == nil || ts.Before(*sec.Scale.Until)) {
				sm.floor = float64(sec.Scale.Replicas)
			}
		}
		sm.forecast, sm.forecastHi = interpolate(c.forecast[s.Name], float64(t))
		fr.samples = append(fr.samples, sm)
	}
	return nil
}

var nan = math.NaN()

// observeDirective records a change when the Source's directive is not
// the one last seen. A directive that comes and goes within one second is
// not seen: the UI samples once a second.
func (c *Collector) observeDirective(ts time.Time, d *directive.Directive) {
	prev := c.dir
	initial := !c.started
	c.started = true
	switch {
	case initial && d == nil:
		return
	case initial:
	case d == prev:
		return
	case d != nil && prev != nil && d.Version == prev.Version && d.Cluster == prev.Cluster:
		c.dir = d // the same version again (restored from disk)
		return
	}
	c.dir = d
	c.seq++
	ch := Change{Seq: c.seq, SeenAt: ts.UTC(), Initial: initial}
	if d == nil {
		ch.None = true
		c.forecast = nil
	} else {
		ch.Version, ch.Cluster, ch.ChangeID, ch.RollbackOf = d.Version, d.Cluster, d.Change, d.RollbackOf
		if !d.CommittedAt.IsZero() {
			t := d.CommittedAt.UTC()
			ch.CommittedAt = &t
		}
		c.forecast = map[string][]fpoint{}
		for _, name := range d.ServiceNames() {
			sec := d.Services[name]
			if sec == nil {
				continue
			}
			var prevSec *directive.Service
			if prev != nil {
				prevSec = prev.Services[name]
			}
			ch.Services = append(ch.Services, describeSection(name, sec, prev == nil || !directive.SectionEqual(prevSec, sec)))
			c.forecast[name] = forecastPoints(sec)
			c.noteEvents(ts, d.Version, name, sec)
		}
	}
	if !ch.Initial {
		diff := directive.Diff(prev, d)
		if len(diff) > maxDiff {
			ch.DiffMore = len(diff) - maxDiff
			diff = diff[:maxDiff]
		}
		for i := range diff {
			diff[i].From = clip(diff[i].From, maxDiffValue)
			diff[i].To = clip(diff[i].To, maxDiffValue)
		}
		ch.Diff = diff
	}
	c.changes = pushBounded(c.changes, ch, c.opts.Versions)
}

// section is the running directive's section for a service (nil: none).
func (c *Collector) section(name string) *directive.Service {
	if c.dir == nil {
		return nil
	}
	return c.dir.Services[name]
}
